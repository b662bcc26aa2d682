"""Celery tasks of the references app (thin: they call services)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from refmgr.common.tasks import organizations_send
from refmgr.tenancy.context import cross_organization, get_current_organization
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
    """One organization's nightly review: incentives and tell-tale words, over what changed since
    its checkpoint (everything the first time, or when its words change). Idempotent."""
    from .incentives import review_flags_sweep as review_flags_sweep_service

    return review_flags_sweep_service(organization=get_current_organization())


@shared_task(name="references.tasks.review_flags_nightly", acks_late=True)
def review_flags_nightly() -> int:
    """Beat, nightly: one read across organizations names those with anything changed since their
    checkpoint; only they get ``review_flags_sweep``. A night with no change is one statement.
    Returns how many organizations were sent work."""
    from .incentives import organizations_to_review

    with cross_organization("review sweep: which organizations changed since their checkpoint (one statement)"):
        organization_ids = organizations_to_review(now=timezone.now())
    return organizations_send("references.tasks.review_flags_sweep", organization_ids)
