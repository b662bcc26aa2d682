"""Celery tasks of the consent app (thin: they call services)."""

from __future__ import annotations

import logging
from datetime import timedelta

from kombu.exceptions import OperationalError as KombuOperationalError

from refmgr.common.exceptions import TransientError
from refmgr.tenancy.context import get_current_organization
from refmgr.tenancy.tasks import tenant_task

logger = logging.getLogger(__name__)


@tenant_task(name="consent.tasks.consent_message_send")
def consent_message_send(*, organization_id: int, message_id: int) -> str:
    from .delivery import consent_message_deliver

    try:
        return consent_message_deliver(organization=get_current_organization(), message_id=message_id)
    except OSError as exc:  # the database or the mail server went away: worth another try
        raise TransientError(str(exc)) from exc


@tenant_task(name="consent.tasks.consent_outbox_dispatch")
def consent_outbox_dispatch(*, organization_id: int) -> int:
    """Re-enqueue outbox rows whose task never ran (the broker was down at commit); report stuck ones.

    Returns how many were enqueued. Sending claims each row first, so enqueueing one whose task
    is merely slow is harmless: the later of the two finds it taken.
    """
    from .delivery import consent_outbox_stuck
    from .selectors import consent_messages_pending

    organization = get_current_organization()
    pending = consent_messages_pending(organization=organization, older_than=timedelta(minutes=1))
    enqueued = 0
    for message_id in pending:
        try:
            consent_message_send.delay(organization_id=organization_id, message_id=message_id)
        except (OSError, KombuOperationalError) as exc:
            # Still no broker: the rows stay pending and the next run (a minute later) tries again.
            logger.warning("consent outbox: broker unavailable, %s email(s) wait: %s", len(pending) - enqueued, exc)
            break
        enqueued += 1
    stuck = consent_outbox_stuck(organization=organization)
    if stuck:
        logger.warning(
            "consent outbox: %s email(s) of organization %s were claimed but never recorded as sent; "
            "check whether they went out (they are not resent)",
            stuck,
            organization_id,
        )
    return enqueued


@tenant_task(name="consent.tasks.consent_expiry_sweep")
def consent_expiry_sweep(*, organization_id: int) -> int:
    from .services import consent_expire_lapsed

    return consent_expire_lapsed(organization=get_current_organization())


@tenant_task(name="consent.tasks.consent_reminders_sweep")
def consent_reminders_sweep(*, organization_id: int) -> int:
    from .services import consent_reminders_queue

    return consent_reminders_queue(organization=get_current_organization())
