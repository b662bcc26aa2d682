"""References pages: the catalogue, a reference, usage requests and the ledger export (see references/urls.py)."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.catalogue, name="catalogue"),
    path("<int:reference_id>/", views.detail, name="detail"),
    path("<int:reference_id>/request/", views.request_create, name="request_create"),
    path("<int:reference_id>/usage.csv", views.usage_csv, name="usage_csv"),
    path("usage.csv", views.usage_csv, name="usage_csv"),
    path("requests/mine/", views.my_requests, name="my_requests"),
    path("requests/queue/", views.queue, name="queue"),
    path("requests/<int:usage_request_id>/decide/", views.request_decide, name="request_decide"),
    path("requests/<int:usage_request_id>/complete/", views.request_complete, name="request_complete"),
    path("requests/<int:usage_request_id>/cancel/", views.request_cancel, name="request_cancel"),
]
