"""The Celery application (cookiecutter-django's config/celery_app.py)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault(
    "DJANGO_SETTINGS_MODULE",
    "refmgr.settings.production" if os.environ.get("DJANGO_ENV") == "production" else "refmgr.settings.local",
)

app = Celery("refmgr")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
