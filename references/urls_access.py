"""References pages: access (see references/urls.py)."""

from __future__ import annotations

from django.urls import path

from . import access_views

urlpatterns: list = [
    path("manage/<int:reference_id>/access/", access_views.reference_access, name="access"),
]
