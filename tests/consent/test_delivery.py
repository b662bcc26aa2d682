"""The consent outbox: each email goes out once, a failure before the server took it goes out later,
an interrupted send is reported and never repeated, and a commit never loses its email when the broker is down."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.test import override_settings
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from consent import ledger, tasks
from consent.delivery import MAX_ATTEMPTS, consent_message_deliver
from consent.models import ConsentEvent, ConsentMessage, ConsentRequest, ConsentState
from consent.selectors import consent_messages_interrupted
from consent.services import consent_reminders_queue, consent_request_create, consent_revoke
from refmgr.common.exceptions import TransientError
from refmgr.tenancy.context import tenant_context
from tests.factories.consent import ask_and_grant, consent_case

pytestmark = pytest.mark.django_db


class RefusingSMTPBackend(BaseEmailBackend):
    """The outside world failing: a mail server that refuses the connection."""

    def send_messages(self, email_messages: Any) -> int:
        raise ConnectionRefusedError(111, "Connection refused")


REFUSING = "tests.consent.test_delivery.RefusingSMTPBackend"


def request_message(org, case) -> ConsentMessage:
    with tenant_context(org):
        consent_request_create(
            organization=org, actor=None, reference=case.reference, contact=case.advocate, scopes=["quote"]
        )
        return ConsentMessage.objects.get(kind="consent_request")


def deliver(org, message: ConsentMessage) -> str:
    with tenant_context(org):
        return consent_message_deliver(organization=org, message_id=message.pk)


def reload(org, message: ConsentMessage) -> ConsentMessage:
    with tenant_context(org):
        return ConsentMessage.objects.get(pk=message.pk)


def test_it_sends_a_message_once_however_often_delivery_runs(org_a) -> None:
    message = request_message(org_a, consent_case(org_a))

    assert [deliver(org_a, message), deliver(org_a, message)] == ["sent", "duplicate"]
    assert len(mail.outbox) == 1
    sent = reload(org_a, message)
    assert (sent.status, sent.attempts) == ("sent", 1)
    assert sent.sent_at is not None


def test_it_never_resends_an_interrupted_message_and_reports_it(org_a, caplog) -> None:
    message = request_message(org_a, consent_case(org_a))
    # A worker claimed it and died between sending and recording: it may have gone out.
    with tenant_context(org_a):
        ConsentMessage.objects.filter(pk=message.pk).update(
            status="sending", claimed_at=timezone.now() - timedelta(hours=1)
        )

    assert deliver(org_a, message) == "duplicate"
    assert mail.outbox == []
    with tenant_context(org_a):
        assert list(consent_messages_interrupted(organization=org_a, older_than=timedelta(minutes=15))) == [
            reload(org_a, message)
        ]
    with caplog.at_level(logging.WARNING, logger="consent.tasks"):
        enqueued = tasks.consent_outbox_dispatch.apply(kwargs={"organization_id": org_a.pk}).get()
    assert enqueued == 0  # not pending, so not re-enqueued
    assert "claimed but never recorded as sent" in caplog.text
    assert reload(org_a, message).status == "sending"


def test_a_refused_connection_puts_it_back_and_a_later_attempt_sends_it(org_a) -> None:
    message = request_message(org_a, consent_case(org_a))

    with override_settings(EMAIL_BACKEND=REFUSING), pytest.raises(TransientError):
        deliver(org_a, message)
    failed = reload(org_a, message)
    assert (failed.status, failed.attempts) == ("pending", 1)
    assert "ConnectionRefusedError" in failed.last_error
    assert mail.outbox == []

    assert deliver(org_a, message) == "sent"
    assert len(mail.outbox) == 1
    assert reload(org_a, message).attempts == 2


def test_it_gives_up_after_the_last_attempt(org_a) -> None:
    message = request_message(org_a, consent_case(org_a))
    with tenant_context(org_a):
        ConsentMessage.objects.filter(pk=message.pk).update(attempts=MAX_ATTEMPTS - 1)

    with override_settings(EMAIL_BACKEND=REFUSING), pytest.raises(TransientError):
        deliver(org_a, message)

    assert reload(org_a, message).status == "failed"
    assert deliver(org_a, message) == "duplicate"  # failed rows are never picked up again
    assert mail.outbox == []


def queued_reminder(org, case) -> ConsentMessage:
    with tenant_context(org):
        state = ConsentState.objects.get(reference=case.reference, scope="quote")
        assert consent_reminders_queue(organization=org, now=state.valid_until - timedelta(days=5)) == 1
        return ConsentMessage.objects.get(kind="reminder", state=state)


def test_a_reminder_for_a_consent_revoked_since_it_was_queued_is_skipped(org_a) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote")
    reminder = queued_reminder(org_a, case)
    with tenant_context(org_a):
        consent_revoke(organization=org_a, contact=case.advocate, state_ids=None)

    assert deliver(org_a, reminder) == "skipped"
    assert reload(org_a, reminder).status == "skipped"
    assert all("ends on" not in email.body for email in mail.outbox)


def test_a_reminder_for_a_consent_renewed_since_it_was_queued_is_skipped(org_a) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote", months=1)
    reminder = queued_reminder(org_a, case)
    ask_and_grant(case, "quote", months=12)  # renewed: a new end date, a new reminder cycle

    assert deliver(org_a, reminder) == "skipped"
    assert mail.outbox == []


def test_a_delivered_reminder_is_recorded_in_the_ledger(org_a) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote")
    reminder = queued_reminder(org_a, case)

    assert deliver(org_a, reminder) == "sent"

    [email] = mail.outbox
    assert email.to == [case.advocate.email]
    assert "/consent/" in email.body
    with tenant_context(org_a):
        state = ConsentState.objects.get(reference=case.reference, scope="quote")
        assert state.reminders_sent == 1
        assert ConsentEvent.objects.filter(kind="reminded", reference=case.reference, scope="quote").count() == 1
        # The link answers a renewal request for exactly this scope (Renew), and manages (Revoke).
        renewal = ConsentRequest.objects.get(kind="renewal", reference=case.reference)
        assert (renewal.scopes, renewal.status) == (["quote"], "sent")
        assert ledger.ledger_verify(organization=org_a).ok
        assert ledger.states_compare(organization=org_a)[0].ok


# --- The broker is down when the change commits ----------------------------------------------


def test_a_commit_keeps_its_email_when_the_broker_is_down(org_a, monkeypatch, django_capture_on_commit_callbacks):
    def broker_down(**kwargs: Any) -> None:
        raise KombuOperationalError("Error 111 connecting to 127.0.0.1:6399. Connection refused.")

    monkeypatch.setattr(tasks.consent_message_send, "delay", broker_down)
    case = consent_case(org_a)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        message = request_message(org_a, case)
    assert len(callbacks) == 1  # the enqueue ran after commit, failed, and did not undo the commit
    assert reload(org_a, message).status == "pending"

    # The broker is back; the outbox sweep relays what waited more than a minute.
    with tenant_context(org_a):
        ConsentMessage.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    relayed: list[dict[str, int]] = []
    monkeypatch.setattr(tasks.consent_message_send, "delay", lambda **kwargs: relayed.append(kwargs))
    assert tasks.consent_outbox_dispatch.apply(kwargs={"organization_id": org_a.pk}).get() == 1
    assert relayed == [{"organization_id": org_a.pk, "message_id": message.pk}]

    assert tasks.consent_message_send.apply(kwargs=relayed[0]).get() == "sent"
    assert len(mail.outbox) == 1
    assert reload(org_a, message).status == "sent"


def test_the_outbox_sweep_stops_quietly_while_the_broker_is_still_down(org_a, monkeypatch) -> None:
    message = request_message(org_a, consent_case(org_a))
    with tenant_context(org_a):
        ConsentMessage.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(minutes=2))

    def broker_down(**kwargs: Any) -> None:
        raise KombuOperationalError("Connection refused.")

    monkeypatch.setattr(tasks.consent_message_send, "delay", broker_down)
    assert tasks.consent_outbox_dispatch.apply(kwargs={"organization_id": org_a.pk}).get() == 0
    assert reload(org_a, message).status == "pending"


def test_the_outbox_sweep_leaves_fresh_rows_to_their_own_task(org_a, monkeypatch) -> None:
    request_message(org_a, consent_case(org_a))
    relayed: list[dict[str, int]] = []
    monkeypatch.setattr(tasks.consent_message_send, "delay", lambda **kwargs: relayed.append(kwargs))

    assert tasks.consent_outbox_dispatch.apply(kwargs={"organization_id": org_a.pk}).get() == 0
    assert relayed == []


def test_the_outbox_sweep_relays_only_its_organizations_rows(org_a, org_b, monkeypatch) -> None:
    message = request_message(org_a, consent_case(org_a))
    with tenant_context(org_a):
        ConsentMessage.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    relayed: list[dict[str, int]] = []
    monkeypatch.setattr(tasks.consent_message_send, "delay", lambda **kwargs: relayed.append(kwargs))

    assert tasks.consent_outbox_dispatch.apply(kwargs={"organization_id": org_b.pk}).get() == 0
    assert relayed == []
