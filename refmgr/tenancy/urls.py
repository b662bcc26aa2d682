"""Organization pages under /o/<slug>/."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "tenancy"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("members/", views.members, name="members"),
    path("members/<int:membership_id>/role/", views.member_role_change, name="member_role_change"),
    path("members/<int:membership_id>/deactivate/", views.member_deactivate, name="member_deactivate"),
    path("invitations/<int:invitation_id>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    path("tokens/", views.api_tokens, name="api_tokens"),
    path("tokens/<int:token_id>/revoke/", views.api_token_revoke, name="api_token_revoke"),
    path("audit/", views.audit_log, name="audit_log"),
    path("audit/export.csv", views.audit_export, name="audit_export"),
]
