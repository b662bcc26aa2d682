"""The customer's pages, outside /o/: /consent/<token>/ (no account, no login)."""

from __future__ import annotations

from django.urls import path

from . import public_views

app_name = "consent_public"
urlpatterns = [
    path("<str:token>/", public_views.consent_page, name="page"),
]
