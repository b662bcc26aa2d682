"""The audit log is append-only inside PostgreSQL, whoever asks."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from refmgr.audit.models import AuditEvent
from refmgr.audit.services import record
from refmgr.tenancy.context import tenant_context

pytestmark = pytest.mark.postgres


@pytest.fixture
def event(org_a):
    with tenant_context(org_a):
        return record(organization=org_a, actor=None, action="test.created")


def privileges(table: str) -> dict[str, bool]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p, has_table_privilege(current_user, %s, p) FROM unnest(ARRAY['SELECT','INSERT','UPDATE',"
            "'DELETE','TRUNCATE']) AS p",
            [table],
        )
        return dict(cursor.fetchall())


def test_it_grants_the_app_role_only_insert_and_select(db):
    assert privileges("audit_auditevent") == {
        "SELECT": True,
        "INSERT": True,
        "UPDATE": False,
        "DELETE": False,
        "TRUNCATE": False,
    }


def test_it_refuses_updates_from_the_application(event, org_a):
    with tenant_context(org_a), pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="rewritten")


def test_it_refuses_deletes_from_the_application(event, org_a):
    with tenant_context(org_a), pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_auditevent SET action = 'rewritten'", "DELETE FROM audit_auditevent"]
)
def test_it_refuses_changes_even_from_the_table_owner(event, statement):
    # The trigger binds every role, the owner and superusers included; the
    # RESET ROLE is undone when the test's transaction rolls back.
    def as_owner() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
            cursor.execute(statement)

    with pytest.raises(DatabaseError, match="append-only"):
        as_owner()
