"""Reads of the consent app that pages, the API and tasks share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from privacy.selectors import privacy_policy_current_version
from references.models import Contact
from refmgr.tenancy.context import assert_current_organization, cross_organization
from refmgr.tenancy.models import Organization

from .evidence import Evidence
from .models import (
    ConsentEvent,
    ConsentEventKind,
    ConsentLink,
    ConsentMessage,
    ConsentRequest,
    ConsentRequestStatus,
    ConsentSettings,
    ConsentState,
    ConsentStatus,
    MessageStatus,
    Party,
    TakedownStatus,
    TakedownTask,
)

TOKEN_SEPARATOR = "."  # noqa: S105  (a separator, not a secret)


def consent_settings_get(*, organization: Organization) -> ConsentSettings:
    """The organization's consent rules; the defaults until an admin changes them."""
    assert_current_organization(organization)
    found = ConsentSettings.objects.first()
    return found if found is not None else ConsentSettings(organization=organization)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- The customer's link ----------------------------------------------------------------


@dataclass(frozen=True)
class LinkLookup:
    """The link a token stands for, or why it cannot be used (never which organization it was)."""

    link: ConsentLink | None = None
    problem: str = ""  # "unknown", "expired", "superseded"

    @property
    def organization(self) -> Organization | None:
        return self.link.organization if self.link is not None else None


def _link_lookup(
    token: str, now: datetime | None, annotate: dict[str, Any] | None = None
) -> tuple[LinkLookup, ConsentLink | None]:
    organization_part, _, secret = token.partition(TOKEN_SEPARATOR)
    if not (organization_part.isascii() and organization_part.isdigit()) or len(secret) < 43 or len(token) > 200:
        return LinkLookup(problem="unknown"), None
    with cross_organization("consent link lookup by its secret's hash"):
        links = ConsentLink.all_tenants.select_related(
            "organization", "contact__account", "consent_request__reference", "consent_request__requested_by"
        ).filter(organization_id=int(organization_part), token_hash=token_hash(token), organization__is_active=True)
        if annotate:
            links = links.annotate(**annotate)
        link = links.first()
    if link is None:
        return LinkLookup(problem="unknown"), None
    if link.expires_at <= (now or timezone.now()):
        return LinkLookup(problem="expired"), link
    request = link.consent_request
    if request is not None and request.status in (ConsentRequestStatus.SUPERSEDED, ConsentRequestStatus.CANCELLED):
        return LinkLookup(problem="superseded"), link
    return LinkLookup(link=link), link


def consent_link_lookup(*, token: str, now: datetime | None = None) -> LinkLookup:
    """Find the link behind ``token`` (``<organization id>.<secret>``), outside any organization.

    The organization id in the token only says where to look; the secret's
    hash must match a link of that organization. Every failure looks the
    same to the caller's page.
    """
    return _link_lookup(token, now)[0]


def notice_fingerprint(consent_request: ConsentRequest | None) -> str:
    """The ``text_hash`` of a ``notice_served`` event: one fingerprint over all the material the request shows."""
    if consent_request is None or not consent_request.fingerprints:
        return ""
    return hashlib.sha256("|".join(sorted(consent_request.fingerprints.values())).encode()).hexdigest()


@dataclass(frozen=True)
class ConsentPage:
    """What the customer's page needs besides its lists, read with the link in one query.

    ``notice_recorded``: the ledger already holds a ``notice_served`` event for
    this link, this client (address network and browser hash) and exactly
    this policy version and material, so showing the page again records
    nothing (reloads, the reload after each answer, a scanner's re-fetches).
    """

    link: ConsentLink
    policy_version: int | None
    grant_valid_months: int
    notice_recorded: bool


def consent_page_lookup(*, token: str, evidence: Evidence, now: datetime | None = None) -> ConsentPage | None:
    """The link behind ``token`` with its organization's current policy version, longest consent period,
    and whether this client was already served this notice: one query, outside any organization.

    None for every failure, as ``consent_link_lookup``. The subqueries are
    correlated on the link's own organization (and the last one on the link),
    so reading across organizations here reads nothing of another's.
    """
    notices = ConsentEvent.all_tenants.filter(
        organization_id=OuterRef("organization_id"),
        link_id=OuterRef("pk"),
        kind=ConsentEventKind.NOTICE_SERVED,
        ip_prefix=evidence.ip_prefix,
        user_agent_hash=evidence.user_agent_hash,
    ).order_by("-sequence")
    default_months = ConsentSettings._meta.get_field("grant_valid_months").get_default()
    found, link = _link_lookup(
        token,
        now,
        annotate={
            "page_policy_version": privacy_policy_current_version(organization_id=OuterRef("organization_id")),
            "page_grant_valid_months": Coalesce(
                Subquery(
                    ConsentSettings.all_tenants.filter(organization_id=OuterRef("organization_id")).values(
                        "grant_valid_months"
                    )[:1]
                ),
                default_months,
            ),
            # The latest notice this client was served through this link; a notice is one row
            # per (link, client, policy version, material), compared below.
            "last_notice_policy_version": Subquery(notices.values("policy_version")[:1]),
            "last_notice_text_hash": Subquery(notices.values("text_hash")[:1]),
        },
    )
    if found.link is None or link is None:
        return None
    last_text_hash = link.last_notice_text_hash  # type: ignore[attr-defined]
    policy_version = link.page_policy_version  # type: ignore[attr-defined]
    return ConsentPage(
        link=link,
        policy_version=policy_version,
        grant_valid_months=link.page_grant_valid_months,  # type: ignore[attr-defined]
        notice_recorded=last_text_hash is not None
        and (link.last_notice_policy_version, last_text_hash)  # type: ignore[attr-defined]
        == (policy_version, notice_fingerprint(link.consent_request)),
    )


def consent_answer_events(*, organization: Organization, consent_request: ConsentRequest) -> list[ConsentEvent]:
    """The answer recorded for ``consent_request``: each scope granted, re-confirmed or declined."""
    assert_current_organization(organization)
    return list(
        ConsentEvent.objects.filter(
            consent_request=consent_request,
            kind__in=(ConsentEventKind.GRANTED, ConsentEventKind.RECONFIRMED, ConsentEventKind.DECLINED),
        ).order_by("sequence")
    )


def revocable_by_filter(contact: Contact) -> Q:
    """The consents a person may withdraw: their own, and their company's if they sign for it."""
    mine = Q(contact=contact)
    if contact.is_authorised_signatory:
        mine |= Q(party=Party.COMPANY, reference__account_id=contact.account_id)
    return mine


def consent_states_revocable_by(*, organization: Organization, contact: Contact) -> QuerySet[ConsentState]:
    """The current grants this person may withdraw: their own, and their company's if they sign for it."""
    assert_current_organization(organization)
    return (
        ConsentState.objects.filter(
            revocable_by_filter(contact), status=ConsentStatus.GRANTED, valid_until__gt=timezone.now()
        )
        .select_related("reference__account", "contact")
        .order_by("reference__title", "scope", "party")
    )


# --- Managers' lists --------------------------------------------------------------------


def consent_request_list(
    *, organization: Organization, status: str = "", reference_id: int | None = None
) -> QuerySet[ConsentRequest]:
    assert_current_organization(organization)
    requests = ConsentRequest.objects.select_related("reference__account", "contact", "requested_by")
    if status:
        requests = requests.filter(status=status)
    if reference_id is not None:
        requests = requests.filter(reference_id=reference_id)
    return requests.order_by("-created_at", "-id")


def consent_state_list(
    *, organization: Organization, reference_id: int | None = None, status: str = ""
) -> QuerySet[ConsentState]:
    assert_current_organization(organization)
    states = ConsentState.objects.select_related("reference__account", "contact")
    if reference_id is not None:
        states = states.filter(reference_id=reference_id)
    if status:
        states = states.filter(status=status)
    return states.order_by("reference__title", "scope", "party")


def consent_states_lapsing(
    *, organization: Organization, within_days: int, now: datetime | None = None
) -> QuerySet[ConsentState]:
    """Granted consents that end within ``within_days``, soonest first."""
    assert_current_organization(organization)
    now = now or timezone.now()
    return (
        ConsentState.objects.filter(
            status=ConsentStatus.GRANTED, valid_until__gt=now, valid_until__lte=now + timedelta(days=within_days)
        )
        .select_related("reference__account", "contact")
        .order_by("valid_until", "id")
    )


def consent_event_list(
    *,
    organization: Organization,
    kind: str = "",
    scope: str = "",
    reference_id: int | None = None,
    contact_id: int | None = None,
) -> QuerySet[ConsentEvent]:
    """The ledger, newest first, with what its pages and exports show."""
    assert_current_organization(organization)
    events = ConsentEvent.objects.select_related("reference", "contact", "actor")
    if kind:
        events = events.filter(kind=kind)
    if scope:
        events = events.filter(scope=scope)
    if reference_id is not None:
        events = events.filter(reference_id=reference_id)
    if contact_id is not None:
        events = events.filter(contact_id=contact_id)
    return events.order_by("-sequence")


def takedown_task_list(*, organization: Organization, status: str = TakedownStatus.OPEN) -> QuerySet[TakedownTask]:
    assert_current_organization(organization)
    tasks = TakedownTask.objects.select_related("reference__account", "usage_request__requested_by", "assigned_to")
    if status:
        tasks = tasks.filter(status=status)
    return tasks.order_by("due_on", "id")


def consent_messages_pending(*, organization: Organization, older_than: timedelta) -> list[int]:
    """Outbox rows still waiting after ``older_than`` (their task was lost, or the broker was down)."""
    assert_current_organization(organization)
    cutoff = timezone.now() - older_than
    return list(
        ConsentMessage.objects.filter(status=MessageStatus.PENDING, created_at__lte=cutoff)
        .order_by("created_at")
        .values_list("pk", flat=True)[:500]
    )


def consent_messages_interrupted(*, organization: Organization, older_than: timedelta) -> QuerySet[ConsentMessage]:
    """Rows claimed for sending that never recorded the result: maybe sent, so reported, never resent."""
    assert_current_organization(organization)
    return ConsentMessage.objects.filter(
        status=MessageStatus.SENDING, claimed_at__lte=timezone.now() - older_than
    ).order_by("claimed_at")


@dataclass
class UsabilityComparison:
    """Where references' ``ReferenceScopeGrant`` disagrees with the consent states: (reference, scope) pairs."""

    missing: list[tuple[int, str]]
    unexpected: list[tuple[int, str]]
    different: list[tuple[int, str]]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.different)


def consent_usability_compare(*, organization: Organization, now: datetime | None = None) -> UsabilityComparison:
    """Check that a scope is granted in references exactly while every grant it needs is current.

    Expected: usable until the earliest end among the required parties' current
    grants. Grants already past their date are left to the expiry sweep (usability
    ignores them), so they are neither expected nor reported.
    """
    from references.models import ReferenceScopeGrant

    from .models import required_parties

    assert_current_organization(organization)
    now = now or timezone.now()
    current: dict[tuple[int, str], dict[str, datetime]] = {}
    for reference_id, scope, party, valid_until in ConsentState.objects.filter(
        status=ConsentStatus.GRANTED, valid_until__gt=now
    ).values_list("reference_id", "scope", "party", "valid_until"):
        current.setdefault((reference_id, scope), {})[party] = valid_until
    expected = {
        key: min(parties.values()) for key, parties in current.items() if required_parties(key[1]) <= parties.keys()
    }
    actual = {
        (reference_id, scope): until
        for reference_id, scope, until in ReferenceScopeGrant.objects.filter(granted_until__gt=now).values_list(
            "reference_id", "scope", "granted_until"
        )
    }
    return UsabilityComparison(
        missing=sorted(key for key in expected if key not in actual),
        unexpected=sorted(key for key in actual if key not in expected),
        different=sorted(key for key in expected if key in actual and actual[key] != expected[key]),
    )
