"""The consent core, through the services: ask, grant, revoke, expire, remind, reword — and the ledger."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from consent import ledger
from consent.evidence import Evidence
from consent.models import (
    ConsentEvent,
    ConsentMessage,
    ConsentRequestStatus,
    ConsentState,
    TakedownTask,
)
from consent.services import (
    consent_answer,
    consent_expire_lapsed,
    consent_reminders_queue,
    consent_request_create,
    consent_revoke,
)
from references.models import ReferenceScopeGrant, UsageRequest
from references.selectors import reference_usable_scopes
from references.services import reference_asset_update
from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.context import tenant_context
from tests.factories.consent import ask, ask_and_grant, consent_case


def usable(case) -> set[str]:
    with tenant_context(case.organization):
        return reference_usable_scopes(organization=case.organization, reference_ids=[case.reference.pk]).get(
            case.reference.pk, set()
        )


def test_grant_then_revoke_one_scope(org_a, carol) -> None:
    case = consent_case(org_a)
    link = ask_and_grant(case, "quote", "logo")
    assert usable(case) == {"quote", "logo"}
    with tenant_context(org_a):
        logo = ConsentState.objects.get(scope="logo")
        result = consent_revoke(organization=org_a, contact=case.advocate, state_ids=[logo.pk], link=link)
        assert [s.scope for s in result.revoked] == ["logo"]
        assert ledger.ledger_verify(organization=org_a).ok
        comparison, _ = ledger.states_compare(organization=org_a)
        assert comparison.ok
    assert usable(case) == {"quote"}


def test_double_submission_records_one_answer(org_a) -> None:
    case = consent_case(org_a)
    _request, link, _token = ask(case, "quote")
    with tenant_context(org_a):
        args = {
            "organization": org_a,
            "link": link,
            "grant": ["quote"],
            "valid_months": 12,
            "publication": "attributed",
            "evidence": Evidence(),
        }
        consent_answer(**args)
        with pytest.raises(ApplicationError):
            consent_answer(**args)
        assert ConsentEvent.objects.filter(kind="granted").count() == 1


def test_scope_not_asked_is_refused(org_a) -> None:
    case = consent_case(org_a)
    _request, link, _token = ask(case, "quote")
    with tenant_context(org_a), pytest.raises(ApplicationError):
        consent_answer(
            organization=org_a,
            link=link,
            grant=["logo"],
            valid_months=12,
            publication="attributed",
            evidence=Evidence(),
        )
    with tenant_context(org_a):
        assert not ConsentEvent.objects.filter(kind__in=["granted", "declined"]).exists()


def test_company_scope_needs_a_signatory(org_a) -> None:
    case = consent_case(org_a, signatory=False)
    with tenant_context(org_a), pytest.raises(ApplicationError, match="signatory"):
        consent_request_create(
            organization=org_a, actor=None, reference=case.reference, contact=case.advocate, scopes=["logo"]
        )


def test_revocation_cancels_requests_and_opens_takedowns(org_a, bob, carol) -> None:
    case = consent_case(org_a)
    link = ask_and_grant(case, "quote")
    with tenant_context(org_a):
        pending = UsageRequest.objects.create(
            reference=case.reference, scope="quote", requested_by=bob, opportunity_name="Deal A"
        )
        done = UsageRequest.objects.create(
            reference=case.reference, scope="quote", requested_by=bob, opportunity_name="Deal B", status="completed"
        )
        consent_revoke(organization=org_a, contact=case.advocate, state_ids=None, link=link)
        pending.refresh_from_db()
        assert pending.status == "cancelled"
        task = TakedownTask.objects.get()
        assert task.usage_request_id == done.pk
        assert task.revocation.kind == "revoked"
        assert task.assigned_to == carol  # no owner: the reference manager takes it
        assert task.revocation.scope == "quote"
        assert ConsentMessage.objects.filter(kind="revocation").count() == 1


def test_quote_edit_voids_consent_and_proposes_a_request(org_a, carol) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote")
    with tenant_context(org_a):
        asset = case.reference.assets.get(kind="quote")
        reference_asset_update(organization=org_a, asset=asset, actor=carol, text="New words entirely.")
        state = ConsentState.objects.get(scope="quote")
        assert state.status == "voided"
        proposal = case.reference.consent_requests.get(status=ConsentRequestStatus.PROPOSED)
        assert proposal.previous_texts["quote"].startswith("Refmgr cut")
        assert proposal.texts["quote"] == "New words entirely."
        assert ledger.states_compare(organization=org_a)[0].ok
    assert usable(case) == set()


def test_expiry_and_reminders_are_idempotent(org_a) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote", months=1)
    with tenant_context(org_a):
        soon = timezone.now() + timedelta(days=25)
        assert consent_reminders_queue(organization=org_a, now=soon) == 1
        assert consent_reminders_queue(organization=org_a, now=soon) == 0
        later = timezone.now() + timedelta(days=40)
        assert consent_expire_lapsed(organization=org_a, now=later) == 1
        assert consent_expire_lapsed(organization=org_a, now=later) == 0
        assert ConsentState.objects.get().status == "expired"
        assert not ReferenceScopeGrant.objects.exists()
        assert ledger.ledger_verify(organization=org_a).ok
        assert ledger.states_compare(organization=org_a)[0].ok
