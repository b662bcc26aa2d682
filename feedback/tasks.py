"""Celery tasks of the feedback app (thin: they call services)."""

from __future__ import annotations
