"""``verify_ledger`` and ``consent_state_check``: they say OK when all is well, and find what was tampered with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from consent.models import ConsentEvent, ConsentState
from references.models import ReferenceScopeGrant
from refmgr.tenancy.context import tenant_context
from tests.factories.consent import ask_and_grant, consent_case

pytestmark = pytest.mark.django_db


@contextmanager
def forging() -> Iterator[None]:
    """Let the test rewrite the ledger as a forger with full database rights would.

    SQLite has no guard; on PostgreSQL only the table's owner can switch the
    append-only trigger off (test_ledger_pg.py shows the app role cannot), so
    the test steps out of the app role, disables the trigger, and restores both.
    """
    if connection.vendor != "postgresql":
        yield
        return
    from django.conf import settings

    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses pending deferred FK checks
        cursor.execute("RESET ROLE")
        cursor.execute("ALTER TABLE consent_consentevent DISABLE TRIGGER append_only")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE consent_consentevent ENABLE TRIGGER append_only")
            cursor.execute(f"SET ROLE {settings.DATABASE_APP_ROLE}")


def run(name: str, *args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=StringIO())
    except CommandError as error:
        return error.returncode, out.getvalue() + str(error)
    return 0, out.getvalue()


@pytest.fixture
def two_ledgers(org_a, org_b):
    ask_and_grant(consent_case(org_a), "quote", "logo")
    ask_and_grant(consent_case(org_b), "quote")
    return org_a, org_b


def test_verify_ledger_reports_every_organization_ok(two_ledgers) -> None:
    org_a, _org_b = two_ledgers
    with tenant_context(org_a):
        events_a = ConsentEvent.objects.count()

    code, out = run("verify_ledger")

    assert code == 0
    assert f"acme: {events_a} events checked, OK" in out
    assert "borealis:" in out


def test_verify_ledger_names_the_first_tampered_event(two_ledgers) -> None:
    org_a, _org_b = two_ledgers
    with tenant_context(org_a):
        granted = ConsentEvent.objects.filter(kind="granted").order_by("sequence").first()
        # Backdating consent, as a forger would.
        with forging(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE consent_consentevent SET valid_until = %s WHERE id = %s",
                [connection.ops.adapt_datetimefield_value(granted.valid_until + timedelta(days=365)), granted.pk],
            )

    code, out = run("verify_ledger")

    assert code == 1
    assert f"acme: {granted.sequence} events checked, BROKEN at event #{granted.sequence}" in out
    assert "does not match its hash" in out
    assert "borealis:" in out
    assert "OK" in out.split("borealis:")[1].splitlines()[0]  # the other organization is still fine


def test_verify_ledger_notices_a_removed_event(two_ledgers) -> None:
    org_a, _org_b = two_ledgers
    with tenant_context(org_a):
        first = ConsentEvent.objects.order_by("sequence").first()
        with forging(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM consent_consentevent WHERE id = %s", [first.pk])

    code, out = run("verify_ledger", "--organization", "acme")

    assert code == 1
    assert "BROKEN at event #2: expected event #1 next" in out
    assert "borealis" not in out


def test_verify_ledger_refuses_an_unknown_organization(two_ledgers) -> None:
    code, out = run("verify_ledger", "--organization", "nope")
    assert code == 1
    assert "No organization with the slug 'nope'" in out


def test_verify_ledger_prints_progress_on_long_runs(two_ledgers) -> None:
    code, out = run("verify_ledger", "--organization", "acme", "--progress-every", "2")
    assert code == 0
    assert "acme: 2 events checked so far" in out


def test_consent_state_check_is_ok_after_normal_use(two_ledgers) -> None:
    code, out = run("consent_state_check")
    assert code == 0
    assert "acme: 2 states agree with the ledger, OK" in out
    assert "borealis: 1 states agree with the ledger, OK" in out


def test_consent_state_check_finds_a_corrupted_state_and_repair_fixes_it(two_ledgers) -> None:
    org_a, _org_b = two_ledgers
    with tenant_context(org_a):
        logo = ConsentState.objects.get(scope="logo")
        ConsentState.objects.filter(pk=logo.pk).update(valid_until=logo.valid_until + timedelta(days=400))
        quote = ConsentState.objects.get(scope="quote")
        ConsentState.objects.filter(pk=quote.pk).delete()

    code, out = run("consent_state_check", "--organization", "acme")
    assert code == 1
    assert f"1 states missing (reference/scope/party): {quote.reference_id}/quote/individual" in out
    assert f"1 states that differ from the ledger: {logo.reference_id}/logo/company" in out
    # Without its quote state, references still let salespeople use the quote: reported too.
    assert f"1 usable scopes references should not have: {quote.reference_id}/quote" in out

    code, out = run("consent_state_check", "--organization", "acme", "--repair")
    assert code == 0
    assert "repaired: 1 states created, 0 removed, 1 rewritten" in out
    assert run("consent_state_check")[0] == 0
    with tenant_context(org_a):
        assert ConsentState.objects.get(scope="logo").valid_until == logo.valid_until
        assert ConsentState.objects.get(scope="quote").status == "granted"


def test_consent_state_check_finds_a_usable_scope_references_lost(two_ledgers) -> None:
    org_a, _org_b = two_ledgers
    with tenant_context(org_a):
        grant = ReferenceScopeGrant.objects.get(scope="logo")
        grant.delete()

    code, out = run("consent_state_check", "--organization", "acme")
    assert code == 1
    assert f"1 usable scopes missing in references (reference/scope): {grant.reference_id}/logo" in out

    assert run("consent_state_check", "--organization", "acme", "--repair")[0] == 0
    with tenant_context(org_a):
        assert ReferenceScopeGrant.objects.filter(scope="logo").exists()


def test_consent_state_check_removes_a_state_the_ledger_does_not_explain(two_ledgers) -> None:
    org_a, _org_b = two_ledgers
    with tenant_context(org_a):
        invented = ConsentState.objects.get(scope="quote")
        invented.pk = None
        invented.scope = "call"
        invented.save()

    code, out = run("consent_state_check", "--organization", "acme")
    assert code == 1
    assert f"1 states the ledger does not explain: {invented.reference_id}/call/individual" in out

    assert run("consent_state_check", "--organization", "acme", "--repair")[0] == 0
    with tenant_context(org_a):
        assert not ConsentState.objects.filter(scope="call").exists()
        assert not ReferenceScopeGrant.objects.filter(scope="call").exists()
