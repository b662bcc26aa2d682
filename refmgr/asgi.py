"""ASGI entry point."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault(
    "DJANGO_SETTINGS_MODULE",
    "refmgr.settings.production" if os.environ.get("DJANGO_ENV") == "production" else "refmgr.settings.local",
)

application = get_asgi_application()
