"""The consent demo: a verifiable ledger with consents in every state, backing every usable scope; idempotent."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

from django.core.management import call_command
from django.utils import timezone

from consent import ledger
from consent.models import (
    ConsentEvent,
    ConsentRequest,
    ConsentRequestStatus,
    ConsentState,
    ConsentStatus,
    TakedownTask,
    required_parties,
)
from references.models import ReferenceScopeGrant, UsageRequest, UsageStatus
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Organization


def _counts() -> dict[str, tuple[int, ...]]:
    # Inside each organization: on PostgreSQL row-level security shows nothing outside one.
    models = (ConsentEvent, ConsentRequest, ConsentState, TakedownTask, ReferenceScopeGrant, UsageRequest)
    counts = {}
    for organization in Organization.objects.all():
        with tenant_context(organization):
            counts[organization.slug] = tuple(model.objects.count() for model in models)
    return counts


def test_it_seeds_a_verifiable_consent_history_once(db):
    call_command("seed_demo", "--no-logins", stdout=StringIO())
    before = _counts()
    now = timezone.now()
    organizations = list(Organization.objects.all())
    assert len(organizations) == 3
    for organization in organizations:
        with tenant_context(organization):
            assert ledger.ledger_verify(organization=organization).ok
            assert ledger.states_compare(organization=organization)[0].ok
            # Replayed in the order it happened: the chain's order is the clock's.
            times = list(ConsentEvent.objects.order_by("sequence").values_list("occurred_at", flat=True))
            assert times == sorted(times)
            assert times[0] < now - timedelta(days=90)

            statuses = set(ConsentState.objects.values_list("status", flat=True))
            assert statuses == set(ConsentStatus.values)
            granted = ConsentState.objects.filter(status=ConsentStatus.GRANTED, valid_until__gt=now)
            assert granted.filter(valid_until__lte=now + timedelta(days=7)).exists()
            assert granted.filter(valid_until__gt=now + timedelta(days=7), valid_until__lte=now + timedelta(days=30))
            assert granted.count() > ConsentState.objects.exclude(status=ConsentStatus.GRANTED).count()
            requests = set(ConsentRequest.objects.values_list("status", flat=True))
            assert {ConsentRequestStatus.SENT, ConsentRequestStatus.ANSWERED} <= requests
            assert {ConsentRequestStatus.PROPOSED, ConsentRequestStatus.CANCELLED} <= requests

            # Every usable scope is consent's verdict: each grant needs every party's current consent.
            states = {(s.reference_id, s.scope, s.party): s for s in granted}
            grants = list(ReferenceScopeGrant.objects.filter(granted_until__gt=now))
            assert grants
            for grant in grants:
                assert grant.source.startswith("consent:")
                needed = [
                    states.get((grant.reference_id, grant.scope, party)) for party in required_parties(grant.scope)
                ]
                assert all(needed), (grant.reference_id, grant.scope)
                assert grant.granted_until == min(state.valid_until for state in needed)

            # Revocation's effects: a takedown for a completed use, open uses cancelled.
            assert TakedownTask.objects.exists()
            assert UsageRequest.objects.filter(status=UsageStatus.CANCELLED, decision_reason__contains="withdrew")

    call_command("seed_demo", "--no-logins", stdout=StringIO())
    assert _counts() == before
