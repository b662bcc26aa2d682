"""Pages of the references app, under /o/<slug>/."""

from __future__ import annotations

app_name = "references"
urlpatterns: list = []
