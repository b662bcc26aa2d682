"""The customer's pages, outside /o/: /consent/<token>/ (no account, no login) and its POST actions."""

from __future__ import annotations

from django.urls import path

from . import public_views

app_name = "consent_public"
urlpatterns = [
    path("<str:token>/", public_views.consent_page, name="page"),
    path("<str:token>/answer/", public_views.consent_answer_post, name="answer"),
    path("<str:token>/revoke/", public_views.consent_revoke_post, name="revoke"),
    path("<str:token>/revoke-all/", public_views.consent_revoke_all_post, name="revoke_all"),
    path("<str:token>/pause/", public_views.consent_pause_post, name="pause"),
]
