"""Pages of the privacy app, under /o/<slug>/privacy/: the public policy, and the admins' pages under manage/."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "privacy"
urlpatterns = [
    path("", views.policy, name="policy"),
    path("v/<int:version>/", views.policy_version, name="policy_version"),
    path("manage/", views.manage, name="manage"),
    path("manage/new/", views.create, name="manage_create"),
    path("manage/<int:version>/", views.detail, name="manage_detail"),
    path("manage/<int:version>/edit/", views.edit, name="manage_edit"),
    path("manage/<int:version>/publish/", views.publish, name="manage_publish"),
    path("manage/<int:version>/delete/", views.delete, name="manage_delete"),
]
