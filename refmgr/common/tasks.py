"""Tasks that belong to no organization."""

from __future__ import annotations

from celery import shared_task
from django.db import connection


@shared_task(name="refmgr.common.tasks.health_check", ignore_result=False)
def health_check() -> dict[str, str]:
    """Proves a worker is alive and can reach the database; beat runs it every few minutes."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"status": "ok", "database": connection.vendor}
