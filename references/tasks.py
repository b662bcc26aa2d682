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


@tenant_task(name="references.tasks.incentive_flag")
def incentive_flag(*, organization_id: int, incentive_id: int) -> int:
    """Flag the references of one new or changed incentive (enqueued on commit)."""
    from .incentives import incentive_flag_references

    return incentive_flag_references(organization=get_current_organization(), incentive_ids=[incentive_id])


@tenant_task(name="references.tasks.review_flags_sweep")
def review_flags_sweep(*, organization_id: int) -> dict[str, int]:
    """The nightly sweep: every incentive and every tell-tale word, idempotently."""
    from .incentives import incentive_flag_references, review_flag_text_scan

    organization = get_current_organization()
    return {
        "incentives": incentive_flag_references(organization=organization),
        "text": review_flag_text_scan(organization=organization),
    }
