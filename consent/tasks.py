"""Celery tasks of the consent app (thin: they call services).

Beat's entry points are the ``*_nightly`` tasks and the outbox relay. None is fanned out to every
organization: each finds the due rows across organizations in one statement and handles them in
a fixed number of set-based statements (``consent.sweeps``, docs/consent.md), publishing send tasks
only for organizations with email to send. The per-organization sweeps below stay for operators
(``celery call``) and share the same code.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from refmgr.common.exceptions import TransientError
from refmgr.tenancy.context import cross_organization, get_current_organization
from refmgr.tenancy.tasks import tenant_task

logger = logging.getLogger(__name__)


@tenant_task(name="consent.tasks.consent_message_send")
def consent_message_send(*, organization_id: int, message_id: int) -> str:
    from .delivery import consent_message_deliver

    try:
        return consent_message_deliver(organization=get_current_organization(), message_id=message_id)
    except OSError as exc:  # the database or the mail server went away: worth another try
        raise TransientError(str(exc)) from exc


@tenant_task(name="consent.tasks.consent_messages_send")
def consent_messages_send(*, organization_id: int, message_ids: list[int]) -> dict[str, int]:
    """Send a batch of one organization's outbox rows, each at most once (each is claimed first).

    A mail server that fails part-way (a transient error) does not stop the batch; the task is then
    retried as a whole, and the rows already sent answer "duplicate" to their second claim. Any other
    failure of one row is logged and leaves it to the outbox relay, never holding up the rest.
    """
    from .delivery import consent_message_deliver

    organization = get_current_organization()
    outcomes: dict[str, int] = {}
    transient: list[str] = []
    for message_id in message_ids:
        try:
            outcome = consent_message_deliver(organization=organization, message_id=message_id)
        except (OSError, TransientError) as exc:
            transient.append(str(exc))
            outcome = "retry"
        except Exception:
            logger.exception("consent outbox: message %s of organization %s failed", message_id, organization_id)
            outcome = "failed"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    if transient:
        raise TransientError(f"{len(transient)} consent email(s) to retry: {transient[0]}")
    return outcomes


@shared_task(name="consent.tasks.consent_outbox_relay", acks_late=True)
def consent_outbox_relay() -> int:
    """Beat, every minute: enqueue the outbox rows whose task never ran (the broker was down at
    commit) and report the rows stuck in ``sending``, reading both across organizations.

    Two statements a minute however many organizations, instead of one task per organization; a
    send task only where rows wait. Returns how many rows were handed to the broker.
    """
    from .sweeps import outbox_pending, outbox_send, outbox_stuck

    with cross_organization("consent outbox relay: which organizations have emails left pending or stuck"):
        pending = outbox_pending(older_than=timedelta(minutes=1))
        stuck = outbox_stuck()
    for organization_id, count in sorted(stuck.items()):
        logger.warning(
            "consent outbox: %s email(s) of organization %s were claimed but never recorded as sent; "
            "check whether they went out (they are not resent)",
            count,
            organization_id,
        )
    handed = outbox_send(pending)
    waiting = sum(len(ids) for ids in pending.values())
    if handed < waiting:
        # Still no broker: the rows stay pending and the next run (a minute later) tries again.
        logger.warning("consent outbox: broker unavailable, %s email(s) wait", waiting - handed)
    return handed


@shared_task(name="consent.tasks.consent_expiry_nightly", acks_late=True)
def consent_expiry_nightly() -> int:
    """Beat, nightly: one read across organizations names those with lapsed consents or scope grants,
    then one transaction expires them all in a fixed number of statements, each organization's events
    chained onto its own ledger under its own lock (``consent.sweeps.consent_expire``).

    A night with nothing due is one statement; a re-run or a duplicated beat finds nothing left.
    Returns how many consents expired.
    """
    from .sweeps import consent_expire, organizations_with_lapsed_consent

    now = timezone.now()
    with (
        cross_organization("consent expiry: lapsed consents of every organization, each on its own ledger"),
        transaction.atomic(),
    ):
        organization_ids = organizations_with_lapsed_consent(now=now)
        return sum(consent_expire(now=now, organization_ids=organization_ids).values())


@shared_task(name="consent.tasks.consent_reminders_nightly", acks_late=True)
def consent_reminders_nightly() -> int:
    """Beat, nightly: queue every due reminder and digest across organizations in one transaction,
    then send them after commit, one task per organization and batch (``consent.sweeps``).

    The insert is the same for every organization and carries its organization id, which the policy
    checks on the way in; its unique keys make a re-run or a duplicated beat insert nothing.
    Returns how many reminders were queued.
    """
    from .sweeps import consent_reminders_insert, outbox_send_on_commit

    with (
        cross_organization("consent reminders: one INSERT … SELECT per reminder point over every organization"),
        transaction.atomic(),
    ):
        inserted, queued = consent_reminders_insert(now=timezone.now())
        outbox_send_on_commit(queued)
    return inserted


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
