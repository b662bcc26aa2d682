"""The consent ledger and the sweeps on PostgreSQL: append-only for real, and safe when two run at once."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from consent import ledger
from consent.evidence import Evidence
from consent.models import ConsentEvent, ConsentMessage, ConsentState
from consent.services import consent_expire_lapsed, consent_notice_served, consent_reminders_queue
from references.models import ReferenceScopeGrant
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Organization
from tests.factories.consent import ask, ask_and_grant, consent_case
from tests.fixtures.concurrency import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def granted_cases(organization: Organization, count: int, months: int = 1) -> None:
    for _ in range(count):
        ask_and_grant(consent_case(organization), "quote", months=months)


def test_the_application_role_may_neither_update_nor_delete_ledger_events(org_a) -> None:
    granted_cases(org_a, 1)
    with tenant_context(org_a):
        assert ConsentEvent.objects.count() >= 2  # requested, granted
        for statement in (
            "UPDATE consent_consentevent SET note = 'rewritten'",
            "DELETE FROM consent_consentevent",
        ):
            with (
                pytest.raises(DatabaseError, match="permission denied"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute(statement)
        assert not ConsentEvent.objects.filter(note="rewritten").exists()


def test_the_trigger_refuses_even_the_tables_owner(org_a) -> None:
    granted_cases(org_a, 1)
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")  # the migrating owner, who holds every table right
    try:
        for statement in (
            "UPDATE consent_consentevent SET note = 'rewritten'",
            "DELETE FROM consent_consentevent",
        ):
            with (
                pytest.raises(DatabaseError, match="append-only"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute(statement)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {settings.DATABASE_APP_ROLE}")
    with tenant_context(org_a):
        assert ledger.ledger_verify(organization=org_a).ok


def test_concurrent_appends_keep_one_chain(org_a) -> None:
    case = consent_case(org_a)
    _request, link, _token = ask(case, "quote")
    with tenant_context(org_a):
        before = ConsentEvent.objects.count()

    clients = itertools.count(1)

    def append_ten() -> int:
        for _ in range(10):
            # A notice is recorded once per client: each call is a new one, so each appends.
            client = next(clients)
            consent_notice_served(organization=org_a, link=link, evidence=Evidence(ip_prefix=f"10.0.{client}.0"))
        return 10

    run_together(org_a, append_ten)
    with tenant_context(org_a):
        verdict = ledger.ledger_verify(organization=org_a)
        assert verdict.ok, verdict.problem
        assert verdict.checked == before + 20
        sequences = list(ConsentEvent.objects.order_by("sequence").values_list("sequence", flat=True))
        assert sequences == list(range(1, before + 21))  # no gap, no fork


def test_two_expiry_sweeps_at_once_expire_each_consent_once(org_a) -> None:
    granted_cases(org_a, 8)
    later = timezone.now() + timedelta(days=40)

    results = run_together(org_a, lambda: consent_expire_lapsed(organization=org_a, now=later))

    assert sorted(results) == [0, 8]
    with tenant_context(org_a):
        assert ConsentEvent.objects.filter(kind="expired").count() == 8
        assert set(ConsentState.objects.values_list("status", flat=True)) == {"expired"}
        assert not ReferenceScopeGrant.objects.exists()
        assert ledger.ledger_verify(organization=org_a).ok
        assert ledger.states_compare(organization=org_a)[0].ok


def test_two_reminder_sweeps_at_once_queue_each_reminder_once(org_a) -> None:
    granted_cases(org_a, 8)
    soon = timezone.now() + timedelta(days=25)  # one-month consents now end within 7 days

    results = run_together(org_a, lambda: consent_reminders_queue(organization=org_a, now=soon))

    assert sorted(results) == [0, 8]
    with tenant_context(org_a):
        reminders = ConsentMessage.objects.filter(kind="reminder")
        assert reminders.count() == 8
        assert set(reminders.values_list("reminder_days", flat=True)) == {7}
        assert ConsentMessage.objects.filter(kind="lapsing_digest").count() == 1
        assert ledger.ledger_verify(organization=org_a).ok
