"""Celery tasks of the privacy app (thin: they call services)."""

from __future__ import annotations
