"""Sending one outbox row, exactly once: claim it in a committed UPDATE, then send, then record."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from refmgr.common.exceptions import TransientError
from refmgr.tenancy.context import assert_current_organization
from refmgr.tenancy.models import Organization

from .models import ConsentMessage, MessageKind, MessageStatus

MAX_ATTEMPTS = 8


def _release(message_id: int, error: str, *, give_up: bool) -> None:
    ConsentMessage.objects.filter(pk=message_id, status=MessageStatus.SENDING).update(
        status=MessageStatus.FAILED if give_up else MessageStatus.PENDING,
        last_error=error[:300],
        claimed_at=None,
        updated_at=timezone.now(),
    )


def consent_message_deliver(*, organization: Organization, message_id: int) -> str:
    """Send one consent email at most once; returns sent, duplicate, skipped or gone.

    Whoever moves the row from pending to sending (committed) is the only one
    who sends it; a retried or duplicated task finds it taken. Anything that
    fails before the mail server is reached puts it back to pending; a crash
    after sending leaves it in ``sending``, which is reported, never resent.
    """
    from .emails import message_email_build
    from .services import consent_reminder_recorded

    assert_current_organization(organization)
    with transaction.atomic():
        claimed = ConsentMessage.objects.filter(pk=message_id, status=MessageStatus.PENDING).update(
            status=MessageStatus.SENDING,
            claimed_at=timezone.now(),
            attempts=F("attempts") + 1,
            updated_at=timezone.now(),
        )
    if not claimed:
        return "gone" if not ConsentMessage.objects.filter(pk=message_id).exists() else "duplicate"
    message = ConsentMessage.objects.select_related(
        "contact__account", "consent_request__reference", "state__reference"
    ).get(pk=message_id)
    try:
        email = message_email_build(organization=organization, message=message)
    except Exception as exc:
        _release(message_id, f"{type(exc).__name__}: {exc}", give_up=message.attempts >= MAX_ATTEMPTS)
        raise
    if email is None:
        ConsentMessage.objects.filter(pk=message_id).update(status=MessageStatus.SKIPPED, updated_at=timezone.now())
        return "skipped"
    try:
        email.send()
    except OSError as exc:
        # The server refused before taking the message: nothing went out, so it may go again.
        _release(message_id, f"{type(exc).__name__}: {exc}", give_up=message.attempts >= MAX_ATTEMPTS)
        raise TransientError(str(exc)) from exc
    with transaction.atomic():
        ConsentMessage.objects.filter(pk=message_id).update(
            status=MessageStatus.SENT, sent_at=timezone.now(), updated_at=timezone.now()
        )
        if message.kind == MessageKind.REMINDER:
            consent_reminder_recorded(organization=organization, message=message)
    return "sent"


def consent_outbox_stuck(*, organization: Organization, older_than: timedelta = timedelta(minutes=15)) -> int:
    """How many rows were claimed but never recorded as sent (reported by the outbox sweep)."""
    from .selectors import consent_messages_interrupted

    return consent_messages_interrupted(organization=organization, older_than=older_than).count()
