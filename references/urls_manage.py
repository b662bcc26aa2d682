"""References pages: manage (see references/urls.py). Reference managers and admins, under manage/."""

from __future__ import annotations

from django.urls import path

from . import manage_views as views

urlpatterns = [
    path("manage/", views.manage, name="manage"),
    path("manage/accounts/", views.account_list, name="account_list"),
    path("manage/accounts/new/", views.account_create, name="account_create"),
    path("manage/accounts/<int:account_id>/edit/", views.account_edit, name="account_edit"),
    path("manage/contacts/", views.contact_list, name="contact_list"),
    path("manage/contacts/new/", views.contact_create, name="contact_create"),
    path("manage/contacts/<int:contact_id>/edit/", views.contact_edit, name="contact_edit"),
    path("manage/references/new/", views.reference_create, name="reference_create"),
    path("manage/references/<int:reference_id>/edit/", views.reference_edit, name="reference_edit"),
    path("manage/references/<int:reference_id>/retire/", views.reference_retire, name="reference_retire"),
    path("manage/references/<int:reference_id>/assets/new/", views.asset_create, name="asset_create"),
    path("manage/assets/<int:asset_id>/edit/", views.asset_edit, name="asset_edit"),
    path("manage/assets/<int:asset_id>/delete/", views.asset_delete, name="asset_delete"),
    path("manage/assets/<int:asset_id>/file/", views.asset_file, name="asset_file"),
    path("manage/settings/", views.reference_settings, name="settings"),
    path("manage/import/", views.import_csv, name="import"),
    path("manage/export/", views.export_csv, name="export"),
]
