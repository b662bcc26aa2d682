"""References pages: catalogue (see references/urls.py)."""

from __future__ import annotations

urlpatterns: list = []
