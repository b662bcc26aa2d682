"""Celery tasks of the references app (thin: they call services)."""

from __future__ import annotations

from celery import shared_task
from django.db import transaction
from django.utils import timezone

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


@shared_task(name="references.tasks.review_flags_nightly", acks_late=True)
def review_flags_nightly() -> dict[str, int]:
    """Beat, nightly: flag what changed since each organization's checkpoint, every organization in
    one transaction of a fixed number of statements (``review_sweeps.review_flags_sweep_all``).

    A night with nothing changed is two statements; a re-run or a duplicated beat waits on the
    checkpoint locks, then finds nothing new. When organizations to read in full are left past the
    run's budget (a first sweep), the task enqueues itself again after commit; a lost publish leaves
    them to the next night. Returns the organizations read, the new flags and the organizations left.
    """
    from .review_sweeps import review_flags_sweep_all

    with (
        cross_organization("review sweep: every organization's new flags, each from its own words and rows"),
        transaction.atomic(),
    ):
        result = review_flags_sweep_all(now=timezone.now())
        if result["left"]:
            transaction.on_commit(review_flags_nightly.delay, robust=True)
    return result
