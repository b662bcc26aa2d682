"""References pages: manage (see references/urls.py)."""

from __future__ import annotations

urlpatterns: list = []
