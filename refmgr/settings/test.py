"""Tests: fast hashers, in-memory email, never eager Celery (cookiecutter-django)."""

from __future__ import annotations

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = False
# The lockout tests set their own limit; a fixed cool-off keeps them predictable.
AXES_FAILURE_LIMIT = 3
LOGGING = {"version": 1, "disable_existing_loggers": False}
# Serve static files from the apps' folders, without a collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# Every test client comes from 127.0.0.1, so a suite-wide count would trip the
# public pages' limit by chance; the rate-limit tests set their own.
RATELIMIT_PUBLIC = ""
