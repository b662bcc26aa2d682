"""Consent stays honest at the edges: changed people, late material, several voices, long-lived withdrawal."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from consent.evidence import Evidence
from consent.models import ConsentRequest, ConsentState
from consent.selectors import consent_link_lookup
from consent.services import consent_answer, consent_link_issue, consent_renewal_request
from references.models import Reference
from references.selectors import reference_usable_scopes
from references.services import reference_asset_create, reference_asset_update, reference_update
from refmgr.common.exceptions import ApplicationError
from refmgr.common.logging import RedactConsentTokens
from refmgr.tenancy.context import tenant_context
from tests.factories.consent import ask, ask_and_grant, consent_case
from tests.factories.references import AccountFactory, ContactFactory

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def usable(case) -> set[str]:
    with tenant_context(case.organization):
        return reference_usable_scopes(organization=case.organization, reference_ids=[case.reference.pk]).get(
            case.reference.pk, set()
        )


def test_a_new_advocate_voids_the_previous_persons_consent_but_not_the_companys(org_a, carol) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote", "logo")
    with tenant_context(org_a):
        successor = ContactFactory(organization=org_a, account=case.reference.account)
        reference_update(organization=org_a, reference=case.reference, actor=carol, advocate=successor)
        statuses = dict(ConsentState.objects.values_list("scope", "status"))
    assert statuses == {"quote": "voided", "logo": "granted"}
    assert usable(case) == {"logo"}


def test_a_new_account_voids_the_companys_consent_too(org_a, carol) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote", "logo")
    with tenant_context(org_a):
        other = AccountFactory(organization=org_a)
        person = ContactFactory(organization=org_a, account=other)
        reference_update(organization=org_a, reference=case.reference, actor=carol, account=other, advocate=person)
        assert set(ConsentState.objects.values_list("status", flat=True)) == {"voided"}
    assert usable(case) == set()


def test_a_logo_uploaded_after_the_request_cannot_be_granted_unseen(org_a, carol) -> None:
    case = consent_case(org_a)
    _request, link, _token = ask(case, "logo")
    with tenant_context(org_a):
        reference_asset_create(
            organization=org_a,
            reference=case.reference,
            actor=carol,
            kind="logo",
            file=SimpleUploadedFile("logo.png", PNG, content_type="image/png"),
        )
        assert ConsentRequest.objects.get(pk=link.consent_request_id).status == "superseded"
    assert consent_link_lookup(token=_token).problem == "superseded"
    assert usable(case) == set()


def test_the_most_careful_naming_choice_wins(org_a) -> None:
    case = consent_case(org_a, signatory=False)
    ask_and_grant(case, "quote", publication="anonymised")
    with tenant_context(org_a):
        signatory = ContactFactory(organization=org_a, account=case.reference.account, is_authorised_signatory=True)
    _request, link, _token = ask(case, "logo", contact=signatory)
    with tenant_context(org_a):
        consent_answer(
            organization=org_a,
            link=link,
            grant=["logo"],
            valid_months=12,
            publication="attributed",
            evidence=Evidence(),
        )
        assert Reference.objects.get(pk=case.reference.pk).publication == "anonymised"


def test_reminders_for_two_scopes_keep_both_links_working(org_a) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote", "call")
    with tenant_context(org_a):
        first, second = ConsentState.objects.order_by("scope")
        one = consent_renewal_request(organization=org_a, state=first)
        two = consent_renewal_request(organization=org_a, state=second)
        assert set(ConsentRequest.objects.filter(pk__in=[one.pk, two.pk]).values_list("status", flat=True)) == {"sent"}


def test_a_manage_link_lasts_as_long_as_the_consent_it_can_withdraw(org_a) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote", months=12)
    with tenant_context(org_a):
        link, _token = consent_link_issue(organization=org_a, contact=case.advocate)
        assert link.expires_at >= timezone.now() + timedelta(days=360)


def test_a_quote_link_change_is_not_new_wording(org_a, carol) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote")
    with tenant_context(org_a):
        asset = case.reference.assets.get(kind="quote")
        reference_asset_update(organization=org_a, asset=asset, actor=carol, url="https://example.com/story")
        assert ConsentState.objects.get().status == "granted"
    assert usable(case) == {"quote"}


def test_rewording_two_scopes_gathers_them_in_one_proposal(org_a, carol) -> None:
    case = consent_case(org_a)
    with tenant_context(org_a):
        reference_asset_create(
            organization=org_a,
            reference=case.reference,
            actor=carol,
            kind="case_study",
            text="How they did it.",
            url="https://example.com/case",
        )
    ask_and_grant(case, "quote", "case_study")
    with tenant_context(org_a):
        for asset in case.reference.assets.all():
            reference_asset_update(organization=org_a, asset=asset, actor=carol, text=f"New {asset.kind} words.")
        proposal = ConsentRequest.objects.get(status="proposed")
        assert proposal.scopes == ["quote", "case_study"]
        assert set(proposal.previous_texts) == {"quote", "case_study"}


def test_a_retired_reference_cannot_be_granted(org_a, carol) -> None:
    case = consent_case(org_a)
    _request, link, _token = ask(case, "quote")
    with tenant_context(org_a):
        Reference.objects.filter(pk=case.reference.pk).update(status="retired")
        with pytest.raises(ApplicationError, match="no longer in use"):
            consent_answer(
                organization=org_a,
                link=link,
                grant=["quote"],
                valid_months=12,
                publication="attributed",
                evidence=Evidence(),
            )


def test_non_ascii_digits_are_not_found_not_a_crash(org_a, carol_membership) -> None:
    assert Client().get("/consent/%C2%B2." + "x" * 43 + "/").status_code == 404
    client = Client()
    client.force_login(carol_membership.user)
    assert client.get("/o/acme/consent/offline/?reference=%C2%B2").status_code == 404
    assert Client().get("/api/v1/references/", HTTP_AUTHORIZATION="Token ²." + "x" * 40).status_code == 401


def test_tokens_never_reach_the_log() -> None:
    record = logging.LogRecord(
        "django.request", logging.WARNING, __file__, 1, "Bad Request: %s", ("/consent/1.secret-token/answer/",), None
    )
    RedactConsentTokens().filter(record)
    assert record.getMessage() == "Bad Request: /consent/[token]/answer/"


def test_a_manager_cannot_publish_wider_than_the_customer_agreed(org_a, carol) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote", publication="anonymised")
    with tenant_context(org_a):
        with pytest.raises(ApplicationError, match="anonymised"):
            reference_update(organization=org_a, reference=case.reference, actor=carol, publication="attributed")
        narrowed = reference_update(
            organization=org_a, reference=case.reference, actor=carol, publication="internal_only"
        )
        assert narrowed.publication == "internal_only"
