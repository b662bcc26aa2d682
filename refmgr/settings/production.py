"""Production: the hardening in base.py is switched on by DJANGO_ENV=production."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import PRODUCTION

if not PRODUCTION:
    raise ImproperlyConfigured("DJANGO_ENV: refmgr.settings.production needs DJANGO_ENV=production")
