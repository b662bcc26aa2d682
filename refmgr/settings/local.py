"""Development: `make run`. SQLite and a server-less Celery broker unless configured."""

from __future__ import annotations

from .base import *  # noqa: F403
