"""Beat's consent entry points find the work across organizations in one statement, then do only that.

The per-organization services are tested in test_tasks.py; these tests are about the entry points:
an empty night costs the same few statements with 3 or 12 organizations, work goes only where it is
due, never into another organization, and re-runs and duplicated tasks change and send nothing twice.
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.db.models import AutoField
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from consent import ledger, tasks
from consent.models import ConsentEvent, ConsentMessage, ConsentSettings, ConsentState
from references.models import ReferenceScopeGrant
from refmgr.audit.models import AuditEvent
from refmgr.celery import app
from refmgr.tenancy.context import cross_organization, tenant_context
from refmgr.tenancy.models import Organization
from tests.factories.consent import ask_and_grant, consent_case, due_states
from tests.factories.tenancy import OrganizationFactory

pytestmark = pytest.mark.django_db

NIGHTLY = [tasks.consent_expiry_nightly, tasks.consent_reminders_nightly, tasks.consent_outbox_relay]


@pytest.fixture
def published(monkeypatch) -> list[tuple[str, dict[str, Any]]]:
    """What the entry points hand to the broker (``send_task`` is where ``delay`` ends up too)."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def send_task(name: str, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        sent.append((name, kwargs))

    monkeypatch.setattr(app, "send_task", send_task)
    return sent


def event_insert_batches(rows: int) -> int:
    """How many INSERTs Django splits ``rows`` ledger events into (SQLite caps parameters per statement)."""
    fields = [f for f in ConsentEvent._meta.concrete_fields if not isinstance(f, AutoField)]
    return math.ceil(rows / max(connection.ops.bulk_batch_size(fields, [ConsentEvent()] * rows), 1))


def state_pk(case: Any) -> int:
    with tenant_context(case.organization):
        return ConsentState.objects.get(reference=case.reference).pk


def run(task: Any) -> Any:
    outcome = task.apply()
    assert outcome.successful(), outcome.traceback
    return outcome.get()


def statements_of(task: Any) -> int:
    with CaptureQueriesContext(connection) as queries:
        run(task)
    return len(queries)


def messages(organization: Organization, kind: str) -> list[ConsentMessage]:
    with tenant_context(organization):
        return list(ConsentMessage.objects.filter(kind=kind).order_by("id"))


# --- A night with nothing due --------------------------------------------------------------------


@pytest.mark.parametrize("task", NIGHTLY, ids=lambda task: task.name.rsplit(".", 1)[1])
def test_an_empty_night_costs_the_same_few_statements_with_3_or_12_organizations(task, published) -> None:
    organizations = OrganizationFactory.create_batch(3)
    for organization in organizations:
        due_states(organization, 2, ends_in=timedelta(days=200))  # granted, nothing due for months
    few = statements_of(task)
    more = OrganizationFactory.create_batch(9)
    for organization in more:
        due_states(organization, 2, ends_in=timedelta(days=200))

    many = statements_of(task)

    assert many == few <= 8
    assert published == []
    with cross_organization("test: nothing was queued anywhere"):
        assert ConsentMessage.all_tenants.count() == 0


# --- Expiry ----------------------------------------------------------------------------------------


def test_expiry_touches_only_lapsed_consents_each_on_its_own_ledger(org_a, org_b, published) -> None:
    lapsed_a = due_states(org_a, 3, ends_in=timedelta(seconds=-1))
    lapsed_b = due_states(org_b, 1, ends_in=timedelta(seconds=-1))
    later_b = due_states(org_b, 2, ends_in=timedelta(days=30))
    OrganizationFactory.create_batch(4)
    inactive = OrganizationFactory(is_active=False)
    due_states(inactive, 1, ends_in=timedelta(seconds=-1))
    case = consent_case(org_a)
    ask_and_grant(case, "quote")  # a real chain before tonight's events

    assert run(tasks.consent_expiry_nightly) == 4

    assert published == []
    for organization, lapsed, current in ((org_a, lapsed_a, []), (org_b, lapsed_b, later_b)):
        with tenant_context(organization):
            assert sorted(ConsentState.objects.filter(status="expired").values_list("pk", flat=True)) == lapsed
            expired = list(ConsentEvent.objects.filter(kind="expired").order_by("sequence"))
            assert {(e.organization_id, e.reference_id) for e in expired} == {
                (organization.pk, s.reference_id) for s in ConsentState.objects.filter(pk__in=lapsed)
            }
            # Each state points at its own organization's event, and each chain still verifies.
            assert {s.last_sequence for s in ConsentState.objects.filter(pk__in=lapsed)} == {
                e.sequence for e in expired
            }
            assert ledger.ledger_verify(organization=organization).ok
            if organization == org_a:
                current = [state_pk(case)]  # granted for a year: untouched
            assert ReferenceScopeGrant.objects.count() == len(current)
            assert sorted(ConsentState.objects.filter(status="granted").values_list("pk", flat=True)) == current
            assert AuditEvent.objects.filter(action="consent.expired").get().details["consents"] == len(lapsed)
    with tenant_context(inactive):
        assert not ConsentState.objects.filter(status="expired").exists()
    # The next night, and a duplicated beat tonight, find nothing left.
    assert run(tasks.consent_expiry_nightly) == 0
    with tenant_context(org_a):
        assert ConsentEvent.objects.filter(kind="expired").count() == 3


def test_expiry_statements_do_not_grow_with_rows_or_organizations(published) -> None:
    for organization in OrganizationFactory.create_batch(2):
        due_states(organization, 2, ends_in=timedelta(seconds=-1))
    with CaptureQueriesContext(connection) as few:
        assert run(tasks.consent_expiry_nightly) == 4
    for organization in OrganizationFactory.create_batch(6):
        due_states(organization, 15, ends_in=timedelta(seconds=-1))

    with CaptureQueriesContext(connection) as many:
        assert run(tasks.consent_expiry_nightly) == 6 * 15

    # The only growth allowed: Django splitting one bulk INSERT at SQLite's parameter cap.
    assert len(many) == len(few) + event_insert_batches(6 * 15) - event_insert_batches(4)


def test_expiry_also_goes_where_only_a_scope_grant_lapsed(org_a, published) -> None:
    due_states(org_a, 1, ends_in=timedelta(days=30))
    with tenant_context(org_a):
        ReferenceScopeGrant.objects.update(granted_until=timezone.now() - timedelta(seconds=1))

    assert run(tasks.consent_expiry_nightly) == 0
    with tenant_context(org_a):
        assert not ReferenceScopeGrant.objects.exists()
        assert AuditEvent.objects.filter(action="reference.scope_grants_lapsed").get().details["count"] == 1
        assert not ConsentEvent.objects.filter(kind="expired").exists()


def test_two_expiry_sweeps_at_once_expire_each_consent_once(org_a, org_b, published) -> None:
    """A duplicated beat: the second transaction runs on the same connection after the first
    (SQLite has no row locks); on PostgreSQL the ledger locks make the concurrent case wait, as
    tests/consent/test_concurrency covers for the per-organization sweep."""
    due_states(org_a, 2, ends_in=timedelta(seconds=-1))
    due_states(org_b, 2, ends_in=timedelta(seconds=-1))

    assert [run(tasks.consent_expiry_nightly), run(tasks.consent_expiry_nightly)] == [4, 0]
    for organization in (org_a, org_b):
        with tenant_context(organization):
            assert ConsentEvent.objects.filter(kind="expired").count() == 2


# --- Reminders -------------------------------------------------------------------------------------


def test_reminders_are_queued_across_organizations_each_in_its_own(org_a, org_b, published) -> None:
    states_a = due_states(org_a, 3)
    states_b = due_states(org_b, 2)
    off = OrganizationFactory()
    due_states(off, 2)
    with tenant_context(off):
        ConsentSettings.objects.create(organization=off, reminders_max=0)
    with tenant_context(org_b):
        ConsentSettings.objects.all().delete()  # org B runs on the defaults

    assert run(tasks.consent_reminders_nightly) == 5

    for organization, states in ((org_a, states_a), (org_b, states_b)):
        reminders = messages(organization, "reminder")
        assert sorted(m.state_id for m in reminders) == states
        assert {(m.organization_id, m.reminder_days, m.status) for m in reminders} == {(organization.pk, 7, "pending")}
        with tenant_context(organization):
            # Each reminder's consent and contact belong to the reminder's organization.
            assert ConsentState.objects.filter(pk__in=[m.state_id for m in reminders]).count() == len(reminders)
        assert [m.payload for m in messages(organization, "lapsing_digest")] == [
            {"lapsing": len(states), "within_days": 30}
        ]
    assert messages(off, "reminder") == messages(off, "lapsing_digest") == []


def test_reminders_are_sent_after_commit_one_task_per_organization(
    org_a, org_b, published, django_capture_on_commit_callbacks
) -> None:
    due_states(org_a, 3)
    due_states(org_b, 2)

    with django_capture_on_commit_callbacks(execute=True):
        run(tasks.consent_reminders_nightly)

    by_organization = {kwargs["organization_id"]: kwargs["message_ids"] for _name, kwargs in published}
    assert [name for name, _kwargs in published] == ["consent.tasks.consent_messages_send"] * 2
    for organization in (org_a, org_b):
        queued = [m.pk for m in messages(organization, "reminder") + messages(organization, "lapsing_digest")]
        assert sorted(by_organization[organization.pk]) == sorted(queued)


def test_a_rerun_or_a_duplicated_beat_queues_nothing_more(org_a, published) -> None:
    due_states(org_a, 4)

    assert run(tasks.consent_reminders_nightly) == 4
    first = [(m.pk, m.status) for m in messages(org_a, "reminder")]
    assert run(tasks.consent_reminders_nightly) == 0
    assert run(tasks.consent_reminders_nightly) == 0

    assert [(m.pk, m.status) for m in messages(org_a, "reminder")] == first
    assert len(messages(org_a, "lapsing_digest")) == 1


def test_the_reminder_statements_do_not_grow_with_rows_or_organizations(published) -> None:
    small = OrganizationFactory.create_batch(2)
    for organization in small:
        due_states(organization, 2)
    few = statements_of(tasks.consent_reminders_nightly)
    large = OrganizationFactory.create_batch(6)
    for organization in large:
        due_states(organization, 15)

    with CaptureQueriesContext(connection) as queries:
        assert run(tasks.consent_reminders_nightly) == 6 * 15

    assert len(queries) == few


def test_a_batch_sent_twice_sends_each_email_once(org_a, carol, published, django_capture_on_commit_callbacks) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote", months=1)
    with tenant_context(org_a):
        ConsentState.objects.update(valid_until=timezone.now() + timedelta(days=5))
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        run(tasks.consent_reminders_nightly)
    [(name, kwargs)] = published
    assert name == "consent.tasks.consent_messages_send"

    first = tasks.consent_messages_send.apply(kwargs=kwargs).get()
    again = tasks.consent_messages_send.apply(kwargs=kwargs).get()  # a duplicated or retried task

    assert first == {"sent": 2}  # the reminder, and the digest to carol (a manager)
    assert again == {"duplicate": 2}
    assert len(mail.outbox) == 2
    assert {m.status for m in messages(org_a, "reminder") + messages(org_a, "lapsing_digest")} == {"sent"}


def test_a_batch_runs_only_inside_its_organization(org_a, org_b, published) -> None:
    due_states(org_a, 2)
    run(tasks.consent_reminders_nightly)
    ids_a = [m.pk for m in messages(org_a, "reminder")]
    mail.outbox.clear()

    # Org A's rows named in a task for org B: invisible there, so nothing is claimed or sent.
    assert tasks.consent_messages_send.apply(kwargs={"organization_id": org_b.pk, "message_ids": ids_a}).get() == {
        "gone": 2
    }
    assert mail.outbox == []
    assert {m.status for m in messages(org_a, "reminder")} == {"pending"}


# --- The outbox relay ------------------------------------------------------------------------------


def test_the_relay_enqueues_only_what_waits_and_reports_what_is_stuck(org_a, org_b, published, caplog) -> None:
    due_states(org_a, 2)
    due_states(org_b, 1)
    run(tasks.consent_reminders_nightly)
    a_reminders = messages(org_a, "reminder")
    a_digest, b_digest = messages(org_a, "lapsing_digest")[0], messages(org_b, "lapsing_digest")[0]
    with tenant_context(org_a):
        ConsentMessage.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    with tenant_context(org_b):
        ConsentMessage.objects.filter(pk=b_digest.pk).update(
            status="sending", claimed_at=timezone.now() - timedelta(hours=1)
        )

    with caplog.at_level(logging.WARNING, logger="consent.tasks"):
        assert run(tasks.consent_outbox_relay) == 3

    # Org B's fresh reminder is not a minute old (its own task is on its way); its stuck digest is reported.
    assert published == [
        (
            "consent.tasks.consent_messages_send",
            {"organization_id": org_a.pk, "message_ids": sorted([m.pk for m in a_reminders] + [a_digest.pk])},
        )
    ]
    assert f"1 email(s) of organization {org_b.pk} were claimed but never recorded as sent" in caplog.text
