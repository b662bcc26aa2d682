"""Consent's Celery side: the emails of the whole flow, the nightly sweeps, and their beat schedule."""

from __future__ import annotations

import math
import re
from datetime import timedelta

import pytest
from celery.schedules import crontab
from django.conf import settings
from django.core import mail
from django.db import connection
from django.db.models import AutoField
from django.test.utils import CaptureQueriesContext
from django.urls import resolve
from django.utils import timezone

from consent import ledger, tasks
from consent.evidence import Evidence
from consent.models import ConsentEvent, ConsentMessage, ConsentState
from consent.selectors import consent_link_lookup
from consent.services import (
    consent_answer,
    consent_expire_lapsed,
    consent_pause,
    consent_reminders_queue,
    consent_request_create,
    consent_revoke,
    consent_settings_update,
)
from references.models import ReferenceScopeGrant
from references.selectors import reference_usable_scopes
from refmgr.celery import app
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Organization
from tests.factories.consent import ask_and_grant, consent_case, due_states

pytestmark = pytest.mark.django_db

LINK = re.compile(r"https?://[^/\s\"<>]+(/consent/([^/\s\"<>]+)/)")


def send_pending(organization: Organization) -> list[str]:
    """Run the send task (locally, as a worker would) for every pending outbox row."""
    with tenant_context(organization):
        pending = list(ConsentMessage.objects.filter(status="pending").order_by("id").values_list("pk", flat=True))
    return [
        tasks.consent_message_send.apply(kwargs={"organization_id": organization.pk, "message_id": pk}).get()
        for pk in pending
    ]


def link_of(email: mail.EmailMessage) -> tuple[str, str]:
    """The consent page's path and token in an email; the HTML part must carry the same link."""
    match = LINK.search(email.body)
    assert match is not None, email.body
    html = {mimetype: content for content, mimetype in email.alternatives}["text/html"]
    assert match.group(0) in html
    return match.group(1), match.group(2)


# --- The whole flow with the in-memory backend -----------------------------------------------


def test_the_customer_gets_a_working_link_in_every_email(org_a, django_capture_on_commit_callbacks) -> None:
    case = consent_case(org_a)
    with django_capture_on_commit_callbacks() as enqueued, tenant_context(org_a):
        request = consent_request_create(
            organization=org_a, actor=None, reference=case.reference, contact=case.advocate, scopes=["quote", "logo"]
        )
    assert len(enqueued) == 1  # the send task is enqueued after commit

    assert send_pending(org_a) == ["sent"]
    [asking] = mail.outbox
    assert asking.to == [case.advocate.email]
    assert org_a.name in asking.subject
    assert "\n" not in asking.subject
    path, token = link_of(asking)
    assert resolve(path).view_name == "consent_public:page"
    found = consent_link_lookup(token=token)
    assert found.link is not None
    assert found.link.consent_request_id == request.pk

    with tenant_context(org_a):
        consent_answer(
            organization=org_a,
            link=found.link,
            grant=["quote", "logo"],
            valid_months=12,
            publication="attributed",
            evidence=Evidence(),
        )
    assert send_pending(org_a) == ["sent"]
    confirmation = mail.outbox[1]
    assert "recorded" in confirmation.subject
    _path, manage_token = link_of(confirmation)
    manage = consent_link_lookup(token=manage_token).link
    assert manage is not None
    assert manage.consent_request_id is None  # answered: this link manages, it asks nothing
    assert manage.contact_id == case.advocate.pk

    with tenant_context(org_a):
        consent_revoke(organization=org_a, contact=case.advocate, state_ids=None, link=manage)
    assert send_pending(org_a) == ["sent"]
    revocation = mail.outbox[2]
    assert "withdrew" in revocation.subject
    _path, revoke_token = link_of(revocation)
    assert consent_link_lookup(token=revoke_token).link is not None

    for email in mail.outbox:
        assert email.to == [case.advocate.email]
        assert "<img" not in email.alternatives[0][0]  # no remote images: nothing tracks the customer
    with tenant_context(org_a):
        assert ledger.ledger_verify(organization=org_a).ok
        assert ledger.states_compare(organization=org_a)[0].ok


def test_managers_hear_what_is_about_to_lapse(org_a, carol) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote", months=1)
    mail.outbox.clear()
    with tenant_context(org_a):
        consent_reminders_queue(organization=org_a, now=timezone.now() + timedelta(days=25))
        digest = ConsentMessage.objects.get(kind="lapsing_digest")
        reminder = ConsentMessage.objects.get(kind="reminder")

    results = send_pending(org_a)

    # The request's email is skipped (answered before it went out); then the confirmation, reminder, digest.
    assert sorted(results) == ["sent", "sent", "sent", "skipped"]
    to_carol = [email for email in mail.outbox if email.to == [carol.email]]
    assert len(to_carol) == 1
    assert "/o/acme/consent/" in to_carol[0].body
    with tenant_context(org_a):
        assert ConsentMessage.objects.get(pk=digest.pk).status == "sent"
        assert ConsentMessage.objects.get(pk=reminder.pk).status == "sent"
    reminder_email = next(e for e in mail.outbox if "ends soon" in e.subject and e.to == [case.advocate.email])
    _path, token = link_of(reminder_email)
    found = consent_link_lookup(token=token).link
    assert found is not None
    assert found.consent_request.kind == "renewal"  # Renew, on the page that also revokes


# --- Reminders -------------------------------------------------------------------------------


def state_of(case) -> ConsentState:
    with tenant_context(case.organization):
        return ConsentState.objects.get(reference=case.reference, scope="quote")


def queue(organization: Organization, now) -> int:
    with tenant_context(organization):
        return consent_reminders_queue(organization=organization, now=now)


def reminders(organization: Organization) -> list[tuple[int, int]]:
    with tenant_context(organization):
        return list(
            ConsentMessage.objects.filter(kind="reminder").order_by("id").values_list("state_id", "reminder_days")
        )


def test_it_reminds_once_per_point_30_then_7_days_before(org_a) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote")
    until = state_of(case).valid_until

    assert queue(org_a, until - timedelta(days=40)) == 0  # not due yet
    assert queue(org_a, until - timedelta(days=20)) == 1
    assert queue(org_a, until - timedelta(days=19)) == 0  # re-run, next night: still the 30-day point
    assert queue(org_a, until - timedelta(days=5)) == 1
    assert queue(org_a, until - timedelta(days=5)) == 0
    assert reminders(org_a) == [(state_of(case).pk, 30), (state_of(case).pk, 7)]


def test_it_caps_reminders_per_consent(org_a, alice) -> None:
    with tenant_context(org_a):
        consent_settings_update(organization=org_a, actor=alice, reminder_days="30, 14, 7", reminders_max=2)
    case = consent_case(org_a)
    ask_and_grant(case, "quote")
    until = state_of(case).valid_until

    assert [queue(org_a, until - timedelta(days=d)) for d in (20, 10, 5)] == [1, 1, 0]
    assert [days for _state, days in reminders(org_a)] == [30, 14]


def test_no_reminders_when_the_organization_turns_them_off(org_a, alice) -> None:
    with tenant_context(org_a):
        consent_settings_update(organization=org_a, actor=alice, reminders_max=0)
    case = consent_case(org_a)
    ask_and_grant(case, "quote")

    assert queue(org_a, state_of(case).valid_until - timedelta(days=5)) == 0


def test_a_contact_who_paused_requests_gets_no_reminder(org_a) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote")
    with tenant_context(org_a):
        consent_pause(organization=org_a, contact=case.advocate, paused=True, link=None, evidence=Evidence())

    assert queue(org_a, state_of(case).valid_until - timedelta(days=5)) == 0
    assert reminders(org_a) == []


def test_a_reminder_queued_before_a_pause_is_not_sent(org_a) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote")
    assert queue(org_a, state_of(case).valid_until - timedelta(days=5)) == 1
    with tenant_context(org_a):
        consent_pause(organization=org_a, contact=case.advocate, paused=True, link=None, evidence=Evidence())
    mail.outbox.clear()
    with tenant_context(org_a):
        reminder = ConsentMessage.objects.get(kind="reminder")
    result = tasks.consent_message_send.apply(kwargs={"organization_id": org_a.pk, "message_id": reminder.pk})

    assert result.get() == "skipped"
    assert mail.outbox == []


def test_a_renewal_starts_a_new_reminder_cycle(org_a) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote", months=1)
    first_until = state_of(case).valid_until
    assert queue(org_a, first_until - timedelta(days=5)) == 1

    ask_and_grant(case, "quote", months=12)
    renewed = state_of(case)
    assert renewed.valid_until > first_until
    assert renewed.reminders_sent == 0

    assert queue(org_a, renewed.valid_until - timedelta(days=5)) == 1
    with tenant_context(org_a):
        cycles = list(ConsentMessage.objects.filter(kind="reminder").values_list("cycle_until", flat=True))
    assert sorted(cycles) == [first_until, renewed.valid_until]


def test_managers_get_one_lapsing_digest_a_day(org_a) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote", months=1)
    soon = state_of(case).valid_until - timedelta(days=5)

    queue(org_a, soon)
    queue(org_a, soon + timedelta(hours=1))
    with tenant_context(org_a):
        assert ConsentMessage.objects.filter(kind="lapsing_digest").count() == 1
    queue(org_a, soon + timedelta(days=1))
    with tenant_context(org_a):
        digests = list(ConsentMessage.objects.filter(kind="lapsing_digest").values_list("payload", flat=True))
    assert digests == [{"lapsing": 1, "within_days": 30}] * 2


def test_reminders_stay_in_their_organization(org_a, org_b) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote", months=1)

    assert queue(org_b, state_of(case).valid_until - timedelta(days=5)) == 0
    assert reminders(org_a) == []


# --- Expiry ----------------------------------------------------------------------------------


def usable(case) -> set[str]:
    with tenant_context(case.organization):
        return reference_usable_scopes(organization=case.organization, reference_ids=[case.reference.pk]).get(
            case.reference.pk, set()
        )


def test_the_expiry_sweep_touches_only_lapsed_consents(org_a) -> None:
    short, long = consent_case(org_a), consent_case(org_a)
    ask_and_grant(short, "quote", months=1)
    ask_and_grant(long, "quote", months=12)
    later = timezone.now() + timedelta(days=40)

    with tenant_context(org_a):
        assert consent_expire_lapsed(organization=org_a, now=later) == 1
        assert consent_expire_lapsed(organization=org_a, now=later) == 0
        assert ConsentEvent.objects.filter(kind="expired").count() == 1
    assert (state_of(short).status, state_of(long).status) == ("expired", "granted")
    assert usable(short) == set()
    assert usable(long) == {"quote"}
    with tenant_context(org_a):
        assert ReferenceScopeGrant.objects.filter(reference=short.reference).count() == 0
        assert ledger.ledger_verify(organization=org_a).ok
        assert ledger.states_compare(organization=org_a)[0].ok


def test_the_expiry_task_runs_inside_its_organization(org_a, org_b) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote")
    with tenant_context(org_a):
        ConsentState.objects.update(valid_until=timezone.now() - timedelta(seconds=1))

    assert tasks.consent_expiry_sweep.apply(kwargs={"organization_id": org_b.pk}).get() == 0
    assert tasks.consent_expiry_sweep.apply(kwargs={"organization_id": org_a.pk}).get() == 1
    assert state_of(case).status == "expired"


# --- Both sweeps cost the same number of statements whatever the number of due rows -----------


def statements(organization: Organization, sweep) -> tuple[int, int]:
    """How many statements one sweep ran, and how many rows it handled."""
    with tenant_context(organization), CaptureQueriesContext(connection) as queries:
        handled = sweep(organization)
    return len(queries), handled


def event_insert_batches(rows: int) -> int:
    """How many INSERTs Django splits ``rows`` ledger events into (SQLite caps parameters per statement)."""
    fields = [f for f in ConsentEvent._meta.concrete_fields if not isinstance(f, AutoField)]
    return math.ceil(rows / max(connection.ops.bulk_batch_size(fields, [ConsentEvent()] * rows), 1))


def REMIND(org: Organization) -> int:  # noqa: N802  (a constant-like sweep, named for the parametrize ids)
    return consent_reminders_queue(organization=org)


def EXPIRE(org: Organization) -> int:  # noqa: N802
    return consent_expire_lapsed(organization=org, now=timezone.now() + timedelta(days=6))


@pytest.mark.parametrize("sweep", [REMIND, EXPIRE], ids=["reminders", "expiry"])
def test_the_sweeps_statement_count_does_not_grow_with_due_rows(org_a, org_b, sweep) -> None:
    due_states(org_a, 5)
    due_states(org_b, 50)

    (few, handled_few), (many, handled_many) = statements(org_a, sweep), statements(org_b, sweep)

    assert (handled_few, handled_many) == (5, 50)
    if sweep is EXPIRE:  # the lapsed grants went too, in the same fixed number of statements
        for organization in (org_a, org_b):
            with tenant_context(organization):
                assert not ReferenceScopeGrant.objects.filter(granted_until__lte=timezone.now() + timedelta(days=6))
    # The only growth allowed: Django splitting one bulk INSERT when the database caps its parameters
    # (SQLite's 999; one INSERT on PostgreSQL). The reminders' INSERT … SELECT never splits.
    extra = event_insert_batches(50) - event_insert_batches(5) if sweep is EXPIRE else 0
    assert many == few + extra


# --- Beat ------------------------------------------------------------------------------------


CONSENT_SWEEPS = {
    "consent.tasks.consent_expiry_sweep",
    "consent.tasks.consent_reminders_sweep",
    "consent.tasks.consent_outbox_dispatch",
}
CONSENT_ENTRY_POINTS = {
    "consent.tasks.consent_expiry_nightly",
    "consent.tasks.consent_reminders_nightly",
    "consent.tasks.consent_outbox_relay",
}


def test_beat_runs_the_consent_sweeps_through_their_entry_points() -> None:
    # Beat's entries find the organizations with work themselves (test_nightly_sweeps.py); they are
    # not fanned out to every organization any more.
    entries = {entry["task"]: entry for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert entries.keys() >= CONSENT_ENTRY_POINTS
    assert not {entry.get("kwargs", {}).get("task_name") for entry in entries.values()} & CONSENT_SWEEPS
    assert entries["consent.tasks.consent_outbox_relay"]["schedule"] == timedelta(minutes=1)
    expiry = entries["consent.tasks.consent_expiry_nightly"]["schedule"]
    remind = entries["consent.tasks.consent_reminders_nightly"]["schedule"]
    assert isinstance(expiry, crontab)
    assert isinstance(remind, crontab)
    # Nightly, and reminders after expiry, so nothing that lapsed tonight is reminded.
    assert len(expiry.hour) == len(remind.hour) == 1
    assert (min(expiry.hour), min(expiry.minute)) < (min(remind.hour), min(remind.minute))


def test_the_workers_find_every_consent_task() -> None:
    app.loader.import_default_modules()  # what `celery worker` does at start: autodiscovery
    sends = {"consent.tasks.consent_message_send", "consent.tasks.consent_messages_send"}
    assert {*CONSENT_SWEEPS, *CONSENT_ENTRY_POINTS, *sends, "refmgr.tenancy.tasks.fan_out"} <= set(app.tasks)
    for name in CONSENT_SWEEPS | CONSENT_ENTRY_POINTS | sends:
        # The default queue, which every worker consumes: no route sends them where nobody listens.
        assert app.amqp.router.route({}, name).get("queue").name == app.conf.task_default_queue


def test_fan_out_sends_one_task_per_active_organization(org_a, org_b, monkeypatch) -> None:
    from refmgr.tenancy.tasks import fan_out

    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(app, "send_task", lambda name, kwargs: sent.append((name, kwargs)))  # the broker
    org_b.is_active = False
    org_b.save()

    assert fan_out.apply(kwargs={"task_name": "consent.tasks.consent_expiry_sweep"}).get() == 1
    assert sent == [("consent.tasks.consent_expiry_sweep", {"organization_id": org_a.pk})]
