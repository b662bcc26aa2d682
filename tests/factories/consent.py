"""Consent test data, written through the services as the app writes it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone

from consent.evidence import Evidence
from consent.models import ConsentLink, ConsentRequest, ConsentState
from consent.services import consent_answer, consent_link_issue, consent_request_create
from privacy.models import PrivacyPolicy
from privacy.services import privacy_policy_draft_create, privacy_policy_publish
from references.models import Contact, Reference, ReferenceScopeGrant
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Organization
from tests.factories.references import AccountFactory, ContactFactory, ReferenceAssetFactory, ReferenceFactory

QUOTE = "Refmgr cut our reference prep from days to minutes."


def published_policy(organization: Organization) -> PrivacyPolicy:
    """Version 1 of the organization's privacy policy, in force today (one per organization)."""
    with tenant_context(organization):
        existing = PrivacyPolicy.objects.filter(status="published").order_by("version").first()
        if existing is not None:
            return existing
        draft = privacy_policy_draft_create(
            organization=organization,
            actor=None,
            title="Privacy policy",
            body="We keep your name, title, email and your consent records.",
            effective_date=timezone.localdate(),
        )
        return privacy_policy_publish(organization=organization, policy=draft, actor=None)


@dataclass
class ConsentCase:
    """A reference whose advocate also signs for the company, with a quote to approve."""

    organization: Organization
    reference: Reference
    advocate: Contact


def consent_case(
    organization: Organization, *, signatory: bool = True, quote: str = QUOTE, **kwargs: Any
) -> ConsentCase:
    published_policy(organization)
    with tenant_context(organization):
        account = AccountFactory(organization=organization)
        advocate = ContactFactory(organization=organization, account=account, is_authorised_signatory=signatory)
        reference = ReferenceFactory(organization=organization, account=account, advocate=advocate, **kwargs)
        if quote:
            ReferenceAssetFactory(organization=organization, reference=reference, kind="quote", text=quote)
    return ConsentCase(organization=organization, reference=reference, advocate=advocate)


def ask(
    case: ConsentCase, *scopes: str, actor: Any = None, contact: Contact | None = None
) -> tuple[ConsentRequest, ConsentLink, str]:
    """Send a request and issue the link its email would carry; returns the request, link and token."""
    with tenant_context(case.organization):
        consent_request = consent_request_create(
            organization=case.organization,
            actor=actor,
            reference=case.reference,
            contact=contact or case.advocate,
            scopes=scopes,
        )
        link, token = consent_link_issue(
            organization=case.organization, contact=consent_request.contact, consent_request=consent_request
        )
    return consent_request, link, token


def ask_and_grant(case: ConsentCase, *scopes: str, months: int = 12, publication: str = "attributed") -> ConsentLink:
    _request, link, _token = ask(case, *scopes)
    with tenant_context(case.organization):
        consent_answer(
            organization=case.organization,
            link=link,
            grant=scopes,
            valid_months=months,
            publication=publication,
            evidence=Evidence(ip_prefix="203.0.113.0", user_agent_hash="abc"),
        )
    return link


def days_from_now(days: int) -> Any:
    return timezone.now() + timedelta(days=days)


def due_states(organization: Organization, count: int, *, ends_in: timedelta = timedelta(days=5)) -> list[int]:
    """``count`` granted consents ending in ``ends_in`` (negative: already lapsed), with their references'
    grants, as straight rows (the sweeps read only the states and the grants); returns the states' ids."""
    case = consent_case(organization)
    until = timezone.now() + ends_in
    with tenant_context(organization):
        references = [
            ReferenceFactory(organization=organization, account=case.reference.account, advocate=case.advocate)
            for _ in range(count)
        ]
        states = ConsentState.objects.bulk_create(
            [
                ConsentState(
                    organization=organization,
                    reference=reference,
                    scope="quote",
                    party="individual",
                    contact=case.advocate,
                    status="granted",
                    valid_until=until,
                    last_sequence=0,
                )
                for reference in references
            ]
        )
        ReferenceScopeGrant.objects.bulk_create(
            [
                ReferenceScopeGrant(
                    organization=organization,
                    reference=reference,
                    scope="quote",
                    granted_until=until,
                    source=f"consent:{reference.pk}:quote",
                )
                for reference in references
            ]
        )
    return [state.pk for state in states]
