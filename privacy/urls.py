"""Pages of the privacy app, under /o/<slug>/."""

from __future__ import annotations

app_name = "privacy"
urlpatterns: list = []
