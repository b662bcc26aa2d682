"""Celery tasks of the references app (thin: they call services)."""

from __future__ import annotations

from refmgr.tenancy.context import get_current_organization
from refmgr.tenancy.tasks import tenant_task


@tenant_task(name="references.tasks.usage_request_notify")
def usage_request_notify(*, organization_id: int, usage_request_id: int, event: str) -> str:
    from .notifications import usage_request_notify as usage_request_notify_service

    return usage_request_notify_service(
        organization=get_current_organization(), usage_request_id=usage_request_id, event=event
    )
