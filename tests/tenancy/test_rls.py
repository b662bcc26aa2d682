"""Row-level security on PostgreSQL: the database refuses to leak even when the code forgets."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import DatabaseError, connection, transaction

from refmgr.audit.services import record
from refmgr.tenancy.context import cross_organization, tenant_context
from refmgr.tenancy.models import TenantOwnedModel

pytestmark = pytest.mark.postgres


def raw(sql: str, params: tuple = ()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@pytest.fixture
def two_orgs_with_events(org_a, org_b, alice, mallory):
    with tenant_context(org_a):
        record(organization=org_a, actor=alice, action="test.a")
    with tenant_context(org_b):
        record(organization=org_b, actor=mallory, action="test.b")


def tenant_tables() -> list[str]:
    return sorted(
        model._meta.db_table
        for model in apps.get_models()
        if issubclass(model, TenantOwnedModel) and not model._meta.proxy
    )


def test_it_runs_the_suite_as_a_role_that_cannot_bypass_policies(db):
    [(user, superuser, bypass)] = raw(
        "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    )
    assert (user, superuser, bypass) == ("refmgr_app", False, False)


def test_it_shows_a_raw_query_only_the_current_organizations_rows(two_orgs_with_events, org_a):
    # No WHERE clause at all: the policy alone narrows the rows.
    with tenant_context(org_a):
        rows = raw("SELECT organization_id, action FROM audit_auditevent")
        memberships = raw("SELECT DISTINCT organization_id FROM tenancy_membership")
    assert {org for org, _ in rows} == {org_a.pk}
    assert "test.a" in {action for _, action in rows}
    assert memberships == [(org_a.pk,)]


def test_it_shows_no_rows_outside_any_organization(two_orgs_with_events):
    for table in tenant_tables():
        assert raw(f'SELECT count(*) FROM "{table}"') == [(0,)], table  # noqa: S608


def test_it_shows_every_organization_only_when_asked_to(two_orgs_with_events, org_a, org_b):
    with cross_organization("test"):
        rows = raw("SELECT DISTINCT organization_id FROM audit_auditevent ORDER BY 1")
    assert rows == [(org_a.pk,), (org_b.pk,)]


def test_it_refuses_to_write_a_row_into_another_organization(org_a, org_b, alice):
    with tenant_context(org_a), pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
        raw(
            "INSERT INTO audit_auditevent (organization_id, actor_label, action, object_type, object_id,"
            " object_repr, details, created_at, updated_at)"
            " VALUES (%s, 'x', 'forged', '', '', '', '{}', now(), now()) RETURNING id",
            (org_b.pk,),
        )


def test_it_does_not_carry_an_organization_over_to_the_next_statement(two_orgs_with_events, org_a):
    # A transaction that ran inside A, then a query outside any context on the
    # same connection and still inside the same transaction: nothing leaks.
    with transaction.atomic():
        with tenant_context(org_a):
            assert raw("SELECT count(*) FROM audit_auditevent")[0][0] > 0
        assert raw("SELECT count(*) FROM audit_auditevent") == [(0,)]


def test_it_recovers_cleanly_after_an_error_on_the_same_connection(two_orgs_with_events, org_a):
    with tenant_context(org_a), pytest.raises(DatabaseError), transaction.atomic():
        raw("SELECT 1/0")
    assert raw("SELECT count(*) FROM audit_auditevent") == [(0,)]
    with tenant_context(org_a):
        assert raw("SELECT count(*) FROM audit_auditevent")[0][0] > 0


def test_it_survives_an_empty_setting_left_on_a_pooled_connection(two_orgs_with_events):
    # The trap in STACK.md: '' must mean "no organization", not an invalid bigint.
    with transaction.atomic():
        raw("SELECT set_config('app.org_id', '', true)")
        assert raw("SELECT count(*) FROM audit_auditevent") == [(0,)]


def test_it_forces_row_level_security_on_every_tenant_table(db):
    tables = tenant_tables()
    assert "audit_auditevent" in tables
    rows = {
        name: (enabled, forced)
        for name, enabled, forced in raw(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = ANY(%s)", (tables,)
        )
    }
    policies = {
        name for (name,) in raw("SELECT tablename FROM pg_policies WHERE policyname = 'organization_isolation'")
    }
    for table in tables:
        assert rows.get(table) == (True, True), f"{table}: row-level security not enabled and forced"
        assert table in policies, f"{table}: no organization_isolation policy"


@pytest.mark.django_db(transaction=True)
def test_it_scopes_executemany_outside_a_transaction(org_a, alice):
    # Autocommit: the organization must still reach the rows executemany writes.
    from refmgr.audit.models import AuditEvent

    with tenant_context(org_a), connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO audit_auditevent (organization_id, actor_label, action, object_type, object_id,"
            " object_repr, details, created_at, updated_at) VALUES (%s, 'x', %s, '', '', '', '{}', now(), now())",
            [(org_a.pk, "bulk.one"), (org_a.pk, "bulk.two")],
        )
    with tenant_context(org_a):
        assert set(AuditEvent.objects.filter(action__startswith="bulk.").values_list("action", flat=True)) == {
            "bulk.one",
            "bulk.two",
        }
