"""Tasks that belong to no organization."""

from __future__ import annotations

from collections.abc import Iterable

from celery import shared_task
from django.db import connection


@shared_task(name="refmgr.common.tasks.health_check", ignore_result=False)
def health_check() -> dict[str, str]:
    """Proves a worker is alive and can reach the database; beat runs it every few minutes."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"status": "ok", "database": connection.vendor}


def organizations_send(task_name: str, organization_ids: Iterable[int]) -> int:
    """Enqueue ``task_name`` (a ``TenantTask``) for each organization named; returns how many.

    The counterpart of ``refmgr.tenancy.tasks.fan_out`` for sweeps that first find, in one
    statement across organizations, which organizations have work: only those get a task, so a
    night with nothing due publishes nothing. ``send_task`` follows ``task_routes`` by name, as
    ``fan_out`` does.
    """
    from refmgr.celery import app

    sent = 0
    for organization_id in organization_ids:
        app.send_task(task_name, kwargs={"organization_id": organization_id})
        sent += 1
    return sent
