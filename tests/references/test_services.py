"""Usability is derived from grants, holds and status; usage requests follow their lifecycle."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from references import selectors, services
from references.models import ReferenceScopeGrant, UsageEvent, UsageStatus
from refmgr.audit.models import AuditEvent
from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.context import tenant_context
from tests.factories.references import ReferenceFactory, grant


@pytest.fixture
def reference(org_a):
    reference = ReferenceFactory(organization=org_a)
    grant(reference, "call", "quote")
    return reference


def usable(reference) -> set[str]:
    with tenant_context(reference.organization):
        return selectors.reference_usable_scopes(organization=reference.organization, reference_ids=[reference.pk]).get(
            reference.pk, set()
        )


def test_it_derives_usable_scopes_from_current_grants(reference):
    assert usable(reference) == {"call", "quote"}


def test_it_treats_an_expired_grant_as_unusable(reference):
    with tenant_context(reference.organization):
        ReferenceScopeGrant.objects.filter(scope="quote").update(granted_until=timezone.now() - timedelta(seconds=1))
    assert usable(reference) == {"call"}


def test_it_stops_all_use_while_a_hold_is_open_and_resumes_after_release(reference, org_a):
    with tenant_context(org_a):
        services.reference_hold_place(
            organization=org_a, reference=reference, kind="review", source="review_flag:1", reason="Gift card"
        )
        # Placing the same hold again is a no-op, not a second hold.
        services.reference_hold_place(
            organization=org_a, reference=reference, kind="review", source="review_flag:1", reason="Gift card"
        )
    assert usable(reference) == set()
    with tenant_context(org_a):
        assert services.reference_hold_release(
            organization=org_a, reference=reference, kind="review", source="review_flag:1"
        )
    assert usable(reference) == {"call", "quote"}


def test_it_makes_a_retired_reference_unusable_and_cancels_its_pending_requests(reference, org_a, bob, carol):
    with tenant_context(org_a):
        pending = services.usage_request_create(
            organization=org_a, reference=reference, scope="call", requested_by=bob, opportunity_name="Acme renewal"
        )
        services.reference_retire(organization=org_a, reference=reference, actor=carol, reason="Customer churned")
        pending.refresh_from_db()
    assert usable(reference) == set()
    assert pending.status == UsageStatus.CANCELLED


def test_it_withdraws_a_scope_at_once(reference, org_a):
    with tenant_context(org_a):
        assert services.reference_scope_withdraw(organization=org_a, reference=reference, scope="quote", source="t")
        assert not services.reference_scope_withdraw(organization=org_a, reference=reference, scope="quote", source="t")
    assert usable(reference) == {"call"}


def test_it_refuses_a_request_for_a_scope_that_is_not_usable(reference, org_a, bob):
    with tenant_context(org_a), pytest.raises(ApplicationError, match="not available"):
        services.usage_request_create(
            organization=org_a, reference=reference, scope="logo", requested_by=bob, opportunity_name="x"
        )


def test_it_refuses_requests_while_the_customer_paused_them(reference, org_a, bob):
    with tenant_context(org_a):
        reference.advocate.requests_paused = True
        reference.advocate.save()
        with pytest.raises(ApplicationError, match="paused"):
            services.usage_request_create(
                organization=org_a, reference=reference, scope="quote", requested_by=bob, opportunity_name="x"
            )


def test_it_runs_a_request_from_pending_to_completed_and_keeps_the_ledger(reference, org_a, bob, carol):
    with tenant_context(org_a):
        usage_request = services.usage_request_create(
            organization=org_a,
            reference=reference,
            scope="call",
            requested_by=bob,
            opportunity_name="Globex expansion",
            crm_opportunity_id="OPP-7",
        )
        services.usage_request_approve(organization=org_a, usage_request=usage_request, actor=carol, reason="ok")
        with pytest.raises(ApplicationError, match="pending"):
            services.usage_request_approve(organization=org_a, usage_request=usage_request, actor=carol)
        services.usage_request_complete(organization=org_a, usage_request=usage_request, actor=bob, outcome="won")
        events = list(UsageEvent.objects.order_by("id").values_list("kind", "scope", "contact_id", "outcome"))
        actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert events == [
        ("approved", "call", reference.advocate_id, ""),
        ("completed", "call", reference.advocate_id, "won"),
    ]
    assert {"usage_request.created", "usage_request.approved", "usage_request.completed"} <= actions


def test_it_needs_a_reason_to_decline(reference, org_a, bob, carol):
    with tenant_context(org_a):
        usage_request = services.usage_request_create(
            organization=org_a, reference=reference, scope="quote", requested_by=bob, opportunity_name="x"
        )
        with pytest.raises(ApplicationError) as error:
            services.usage_request_decline(organization=org_a, usage_request=usage_request, actor=carol, reason=" ")
        assert error.value.field == "reason"
        declined = services.usage_request_decline(
            organization=org_a, usage_request=usage_request, actor=carol, reason="Customer is mid-renewal"
        )
    assert declined.status == UsageStatus.DECLINED


def test_it_rechecks_usability_at_approval(reference, org_a, bob, carol):
    with tenant_context(org_a):
        usage_request = services.usage_request_create(
            organization=org_a, reference=reference, scope="quote", requested_by=bob, opportunity_name="x"
        )
        services.reference_scope_withdraw(organization=org_a, reference=reference, scope="quote", source="revoked")
        with pytest.raises(ApplicationError, match="no longer available"):
            services.usage_request_approve(organization=org_a, usage_request=usage_request, actor=carol)


def test_it_hides_other_tenants_references(reference, org_b):
    from references.models import Reference

    with tenant_context(org_b):
        assert not Reference.objects.filter(pk=reference.pk).exists()
        assert selectors.reference_usable_scopes(organization=org_b, reference_ids=[reference.pk]) == {}
