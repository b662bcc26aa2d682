"""Fatigue limits, enforced at request and at approval, at their boundaries."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from references import selectors, services
from references.models import ReferenceSettings, UsageRequest
from refmgr.audit.models import AuditEvent
from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.context import tenant_context
from tests.factories.references import ReferenceFactory, grant


@pytest.fixture
def reference(org_a):
    reference = ReferenceFactory(organization=org_a)
    grant(reference, "call", "quote", "site_visit")
    return reference


def approved_call(org, reference, bob, carol, *, days_ago: int) -> UsageRequest:
    """A call approved ``days_ago`` days ago (the approval time is what counts)."""
    usage_request = services.usage_request_create(
        organization=org, reference=reference, scope="call", requested_by=bob, opportunity_name=f"deal {days_ago}"
    )
    services.usage_request_approve(organization=org, usage_request=usage_request, actor=carol)
    UsageRequest.objects.filter(pk=usage_request.pk).update(decided_at=timezone.now() - timedelta(days=days_ago))
    usage_request.refresh_from_db()
    return usage_request


def test_it_allows_the_third_call_and_refuses_the_fourth_until_the_window_frees_one(reference, org_a, bob, carol):
    with tenant_context(org_a):
        approved_call(org_a, reference, bob, carol, days_ago=80)
        approved_call(org_a, reference, bob, carol, days_ago=50)
        # Two calls in the window: the third is allowed (rested 20 days > 14).
        third = approved_call(org_a, reference, bob, carol, days_ago=20)
        assert third.status == "approved"
        with pytest.raises(ApplicationError, match="asked 3 times") as error:
            services.usage_request_create(
                organization=org_a, reference=reference, scope="call", requested_by=bob, opportunity_name="fourth"
            )
        refusal = AuditEvent.objects.filter(action="usage_request.refused").get()
    # Possible again when the call of 80 days ago leaves the 90-day window: in 10 days.
    available = datetime.fromisoformat(error.value.extra["available_from"])
    assert abs(available - (timezone.now() + timedelta(days=10))) < timedelta(seconds=5)
    assert refusal.details["stage"] == "request"
    assert refusal.details["available_from"] == error.value.extra["available_from"]
    assert "It becomes possible on" in error.value.message


def test_it_allows_a_call_once_the_oldest_use_leaves_the_window(reference, org_a, bob, carol):
    with tenant_context(org_a):
        approved_call(org_a, reference, bob, carol, days_ago=91)
        approved_call(org_a, reference, bob, carol, days_ago=50)
        approved_call(org_a, reference, bob, carol, days_ago=20)
        verdict = selectors.contact_fatigue(organization=org_a, contact=reference.advocate, scope="call")
    assert verdict.allowed


def test_it_makes_the_person_rest_after_each_use(reference, org_a, bob, carol):
    with tenant_context(org_a):
        approved_call(org_a, reference, bob, carol, days_ago=3)
        verdict = selectors.contact_fatigue(organization=org_a, contact=reference.advocate, scope="site_visit")
        quote = selectors.contact_fatigue(organization=org_a, contact=reference.advocate, scope="quote")
    assert not verdict.allowed
    assert "resting" in verdict.reason
    assert abs(verdict.available_from - (timezone.now() + timedelta(days=11))) < timedelta(seconds=5)
    assert quote.allowed  # a quote takes none of the person's time


def test_it_uses_the_persons_override_before_the_organizations_setting(reference, org_a, bob, carol):
    with tenant_context(org_a):
        ReferenceSettings.objects.create(organization=org_a, usage_cap=3, usage_window_days=90, cooldown_days=0)
        reference.advocate.usage_cap = 1
        reference.advocate.save()
        approved_call(org_a, reference, bob, carol, days_ago=30)
        assert not selectors.contact_fatigue(organization=org_a, contact=reference.advocate, scope="call").allowed
        reference.advocate.usage_cap = 0
        reference.advocate.save()
        verdict = selectors.contact_fatigue(organization=org_a, contact=reference.advocate, scope="call")
    assert not verdict.allowed
    assert verdict.available_from is None


def test_it_enforces_the_limit_again_at_approval(reference, org_a, bob, carol):
    with tenant_context(org_a):
        ReferenceSettings.objects.create(organization=org_a, usage_cap=1, usage_window_days=90, cooldown_days=0)
        first = services.usage_request_create(
            organization=org_a, reference=reference, scope="call", requested_by=bob, opportunity_name="one"
        )
        second = services.usage_request_create(
            organization=org_a, reference=reference, scope="call", requested_by=bob, opportunity_name="two"
        )
        services.usage_request_approve(organization=org_a, usage_request=first, actor=carol)
        with pytest.raises(ApplicationError, match="asked 1 times"):
            services.usage_request_approve(organization=org_a, usage_request=second, actor=carol)
        second.refresh_from_db()
        refusal = AuditEvent.objects.filter(action="usage_request.refused").get()
    assert second.status == "pending"
    assert refusal.details["stage"] == "approval"
