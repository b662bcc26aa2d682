"""Pages of the consent app, under /o/<slug>/consent/ (reference managers, admins, compliance)."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "consent"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("requests/new/", views.request_new, name="request_new"),
    path("requests/<int:request_id>/", views.request_detail, name="request_detail"),
    path("requests/<int:request_id>/send/", views.request_send, name="request_send"),
    path("requests/<int:request_id>/cancel/", views.request_cancel, name="request_cancel"),
    path("offline/", views.offline_record, name="offline"),
    path("references/<int:reference_id>/", views.reference_states, name="reference_states"),
    path("references/<int:reference_id>/revoke/", views.reference_revoke, name="reference_revoke"),
    path("ledger/", views.ledger_list, name="ledger"),
    path("ledger/verify/", views.ledger_verify, name="ledger_verify"),
    path("ledger.csv", views.ledger_csv, name="ledger_csv"),
    path("takedowns/", views.takedowns, name="takedowns"),
    path("takedowns/<int:task_id>/", views.takedown_detail, name="takedown_detail"),
    path("settings/", views.consent_settings, name="settings"),
]
