"""Celery tasks of the consent app (thin: they call services)."""

from __future__ import annotations
