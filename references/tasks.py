"""Celery tasks of the references app (thin: they call services)."""

from __future__ import annotations
