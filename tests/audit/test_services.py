from __future__ import annotations

import pytest

from refmgr.audit.models import AuditEvent
from refmgr.audit.selectors import audit_event_list
from refmgr.audit.services import record
from refmgr.tenancy.context import tenant_context


def test_it_records_who_did_what_to_which_object(org_a, alice, bob_membership):
    with tenant_context(org_a):
        event = record(
            organization=org_a,
            actor=alice,
            action="membership.role_changed",
            target=bob_membership,
            details={"from": "sales", "to": "admin"},
        )
        stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor == alice
    assert stored.actor_label == "alice"
    assert stored.object_type == "tenancy.membership"
    assert stored.object_id == str(bob_membership.pk)
    assert stored.details == {"from": "sales", "to": "admin"}
    assert stored.organization_id == org_a.pk


def test_it_records_system_actions_without_an_actor(org_a):
    with tenant_context(org_a):
        event = record(organization=org_a, actor=None, action="consent.expired")
    assert event.actor is None
    assert event.actor_label == "system"


def test_it_refuses_to_record_for_another_organization(org_a, org_b):
    with tenant_context(org_a), pytest.raises(ValueError, match="inside the organization"):
        record(organization=org_b, actor=None, action="x")


def test_it_hides_other_tenants_audit_events(org_a, org_b):
    with tenant_context(org_b):
        record(organization=org_b, actor=None, action="b.only")
    with tenant_context(org_a):
        record(organization=org_a, actor=None, action="a.only")
        actions = set(audit_event_list(organization=org_a).values_list("action", flat=True))
    assert "a.only" in actions
    assert "b.only" not in actions
