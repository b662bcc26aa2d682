"""Pages of the feedback app, under /o/<slug>/."""

from __future__ import annotations

app_name = "feedback"
urlpatterns: list = []
