"""Pages of the consent app, under /o/<slug>/."""

from __future__ import annotations

app_name = "consent"
urlpatterns: list = []
