"""Demo consent: eight months of asking, granting, declining, revoking, expiring and rewording.

Called by ``manage.py seed_demo`` through ``ConsentConfig.seed_demo`` for each
demo organization, inside its context, after the privacy demo (its policies)
and the references demo (its references). Everything goes through the
consent services, so every usable scope of the demo is backed by ledger
events and the chain verifies, exactly as in production.

The past is replayed, not faked: each step runs at its own moment (oldest
first) with ``django.utils.timezone.now`` held at that moment, so events,
requests, links and audit rows carry the times they would have had and
the ledger's sequence follows time. The history starts after the first
privacy policy took effect (the services refuse consent without one).
Then, at the real present: the nightly sweep expires what lapsed, the
references demo adds salespeople's usage of what is usable, and a few
customers revoke (cancelling open uses and opening takedowns for completed
ones) or see their quote reworded (voiding consent and proposing the new
text).

Deterministic (``random.Random`` seeded by the organization's slug) and
idempotent: an organization whose ledger has any event is left alone.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

from dateutil.relativedelta import relativedelta
from django.db import transaction
from django.utils import timezone

from privacy.selectors import privacy_policy_current
from references.models import (
    Contact,
    Publication,
    Reference,
    ReferenceAsset,
    ReferenceStatus,
    Scope,
    UsageRequest,
    UsageStatus,
)
from references.services import reference_asset_update
from refmgr.tenancy.models import Organization, Role

from .evidence import Evidence
from .models import (
    PUBLISHED_SCOPES,
    ConsentEvent,
    ConsentLink,
    ConsentMessage,
    ConsentRequest,
    ConsentState,
    ConsentStatus,
    MessageStatus,
)
from .services import (
    consent_answer,
    consent_expire_lapsed,
    consent_link_issue,
    consent_request_cancel,
    consent_request_create,
    consent_revoke,
)

INDIVIDUAL_SCOPES = (Scope.CALL, Scope.QUOTE, Scope.SITE_VISIT, Scope.VIDEO)
COMPANY_SCOPES = (Scope.LOGO, Scope.NAME_IN_LIST)
# Documentation addresses (RFC 5737): evidence that looks real and points at no one.
NETWORKS = ("192.0.2.0", "198.51.100.0", "203.0.113.0")
BROWSERS = ("3f9a1c0e5b7d2a46", "a1b2c3d4e5f60718", "9e8d7c6b5a493827")


@dataclass
class Plan:
    """What happens to one reference's consent: asked when, answered how, and what follows."""

    reference: Reference
    fate: str  # granted, lapsing_30, lapsing_7, expired, declined, partial, open, revoked, voided
    asked_at: datetime
    valid_months: int = 12
    individual: list[str] = field(default_factory=list)
    company: list[str] = field(default_factory=list)
    signatory: Contact | None = None
    links: list[ConsentLink] = field(default_factory=list)


@contextmanager
def _clock(when: datetime) -> Iterator[None]:
    # Every service reads the time through django.utils.timezone.now (so do auto_now fields and
    # localdate()); holding it at ``when`` replays one past step through the real code.
    with mock.patch("django.utils.timezone.now", return_value=when):
        yield


def seed_consent(*, organization: Organization, members: dict[str, Any]) -> dict[str, int]:
    """Replay the organization's consent history; returns counts by state (empty when it was there)."""
    if ConsentEvent.objects.exists() or not Reference.objects.exists():
        return {}
    now = timezone.now()
    first_policy_day = _first_policy_day(organization, now)
    if first_policy_day is None:
        return {}  # consent needs a published policy; the privacy demo had nothing to publish
    rng = random.Random(zlib.crc32(f"{organization.slug}:consent".encode()))  # noqa: S311 (demo data)
    manager = members.get(Role.REFERENCE_MANAGER) or members.get(Role.ADMIN)
    with transaction.atomic():
        plans = _plans(rng, organization, now, first_policy_day)
        _replay(rng, organization, plans, manager)
        # The emails of the replayed past went out back then; only today's wait in the outbox.
        ConsentMessage.objects.filter(status=MessageStatus.PENDING).update(status=MessageStatus.SENT, sent_at=now)
        consent_expire_lapsed(organization=organization)
        from references.demo import seed_usage_history

        seed_usage_history(organization=organization, members=members)
        _revoke(organization, [p for p in plans if p.fate == "revoked"])
        _cancel(organization, [p for p in plans if p.fate == "open"][:2], manager)
        _reword(organization, [p for p in plans if p.fate == "voided"], manager)
    counts: dict[str, int] = {}
    for status in ConsentState.objects.values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    counts["open requests"] = ConsentRequest.objects.filter(status="sent").count()
    return counts


def _first_policy_day(organization: Organization, now: datetime) -> datetime | None:
    # The earliest day on which a policy was in force: the published version effective first.
    from privacy.models import PrivacyPolicy

    if privacy_policy_current(organization=organization) is None:
        return None
    first = PrivacyPolicy.objects.filter(status="published").order_by("effective_date").first()
    if first is None:
        return None
    return max(timezone.make_aware(datetime.combine(first.effective_date, datetime.min.time())), now - timedelta(365))


# Share of references by what happens to their consent (the rest are granted and current).
FATES = (
    ("never_asked", 0.07),
    ("open", 0.05),
    ("declined", 0.04),
    ("partial", 0.06),
    ("expired", 0.06),
    ("lapsing_7", 0.03),
    ("lapsing_30", 0.05),
    ("revoked", 0.04),
    ("voided", 0.03),
)


def _fate(rng: random.Random) -> str:
    roll, total = rng.random(), 0.0
    for fate, share in FATES:
        total += share
        if roll < total:
            return fate
    return "granted"


def _plans(rng: random.Random, organization: Organization, now: datetime, start: datetime) -> list[Plan]:
    references = list(
        Reference.objects.filter(status=ReferenceStatus.ACTIVE, advocate__isnull=False)
        .select_related("advocate", "account")
        .order_by("id")
    )
    quotes = set(ReferenceAsset.objects.filter(kind="quote").values_list("reference_id", flat=True))
    signatories: dict[int, Contact] = {}
    for contact in Contact.objects.filter(is_authorised_signatory=True).order_by("id"):
        signatories.setdefault(contact.account_id, contact)
    span = (now - start).days - 2
    plans: list[Plan] = []
    for reference in references:
        fate = _fate(rng)
        advocate = reference.advocate
        if fate == "never_asked" or advocate is None or advocate.requests_paused:
            continue
        if fate == "voided" and reference.pk not in quotes:
            fate = "granted"  # only a quote's wording can change under the customer
        individual = [s for s in rng.sample(INDIVIDUAL_SCOPES, rng.randint(1, 3)) if s != Scope.QUOTE]
        if reference.pk in quotes and (fate == "voided" or rng.random() < 0.8):
            individual.append(Scope.QUOTE)
        if not individual:
            individual = [Scope.CALL]
        signatory = signatories.get(reference.account_id)
        if signatory is not None and signatory.requests_paused:
            signatory = None
        company = rng.sample(COMPANY_SCOPES, rng.randint(1, 2)) if signatory and rng.random() < 0.45 else []
        # When asked, and for how long they agree: chosen so that the state today is the fate's.
        valid_months = 12
        if fate == "open":
            asked = now - timedelta(days=rng.randint(1, 20), hours=rng.randint(0, 8))
        elif fate == "expired":
            valid_months = rng.choice((1, 3))
            asked = now - relativedelta(months=valid_months) - timedelta(days=rng.randint(3, 60))
        elif fate in ("lapsing_7", "lapsing_30"):
            valid_months = 6
            ahead = rng.randint(1, 6) if fate == "lapsing_7" else rng.randint(8, 29)
            asked = now - relativedelta(months=6) + timedelta(days=ahead, hours=-1)
        else:
            asked = now - timedelta(days=rng.randint(3, span), hours=rng.randint(0, 8))
        asked = max(asked, start + timedelta(hours=9))
        plans.append(
            Plan(
                reference=reference,
                fate=fate,
                asked_at=asked,
                valid_months=valid_months,
                individual=individual,
                company=company,
                signatory=signatory,
            )
        )
    return plans


def _replay(rng: random.Random, organization: Organization, plans: list[Plan], manager: Any) -> None:
    """Ask and answer, each step at its own past moment, in the order they happened."""
    steps: list[tuple[datetime, int, Callable[[], None]]] = []
    for plan in plans:
        asks = [(plan.reference.advocate, plan.individual), (plan.signatory, plan.company)]
        if plan.signatory is not None and plan.signatory.pk == plan.reference.advocate_id:
            # One request per person: a second one would supersede the first.
            asks = [(plan.reference.advocate, plan.individual + plan.company)]
        for who, scopes in asks:
            if not scopes or who is None:
                continue
            steps.append((plan.asked_at, len(steps), _asker(organization, plan, who, scopes, manager)))
            if plan.fate != "open":
                answered = plan.asked_at + timedelta(hours=rng.randint(1, 70))
                steps.append((answered, len(steps), _answerer(rng, organization, plan, scopes)))
    steps.sort(key=lambda step: (step[0], step[1]))
    for when, _order, step in steps:
        with _clock(when):
            step()


def _asker(organization: Organization, plan: Plan, contact: Contact, scopes: list[str], manager: Any) -> Callable:
    def ask() -> None:
        consent_request = consent_request_create(
            organization=organization,
            actor=manager,
            reference=plan.reference,
            contact=contact,
            scopes=scopes,
            message="We would like to mention you to prospects in your industry.",
        )
        link, _token = consent_link_issue(organization=organization, contact=contact, consent_request=consent_request)
        plan.links.append(link)

    return ask


def _answerer(rng: random.Random, organization: Organization, plan: Plan, scopes: list[str]) -> Callable:
    # Decided now, so the answers do not depend on the order the steps run in.
    evidence = Evidence(ip_prefix=rng.choice(NETWORKS), user_agent_hash=rng.choice(BROWSERS))
    publication = rng.choices(Publication.values, weights=(6, 3, 1))[0]
    keep = [s for s in scopes if s == Scope.QUOTE or rng.random() < 0.6]  # what a partial answer grants

    def answer() -> None:
        link = next(link for link in plan.links if set(link.consent_request.scopes) == set(scopes))
        declined = plan.fate == "declined"
        grant = scopes if plan.fate != "partial" else (keep if 0 < len(keep) < len(scopes) else scopes[:1])
        consent_answer(
            organization=organization,
            link=link,
            grant=[] if declined else grant,
            decline_all=declined,
            valid_months=plan.valid_months,
            publication=publication,
            evidence=evidence,
        )

    return answer


def _revoke(organization: Organization, plans: list[Plan]) -> None:
    """Customers withdrawing today through a fresh "manage my consent" link: everything they gave."""
    references = [plan.reference for plan in plans]
    # Make sure one withdrawing customer was quoted in a won deal (its takedown waits) and one
    # has a use still open (it is cancelled, its salesperson told). Their own consent, not the company's.
    for statuses, scopes in (
        ((UsageStatus.COMPLETED,), PUBLISHED_SCOPES - set(COMPANY_SCOPES)),
        ((UsageStatus.PENDING, UsageStatus.APPROVED), set(INDIVIDUAL_SCOPES)),
    ):
        uses = UsageRequest.objects.filter(status__in=statuses, scope__in=scopes).select_related("reference__advocate")
        chosen = {r.pk for r in references}
        if not uses.filter(reference_id__in=chosen).exists() and (use := uses.order_by("id").first()) is not None:
            references.insert(0, use.reference)
    for reference in references:
        contact = reference.advocate
        if contact is None:
            continue
        link, _token = consent_link_issue(organization=organization, contact=contact)
        consent_revoke(
            organization=organization,
            contact=contact,
            state_ids=list(
                ConsentState.objects.filter(reference=reference, status=ConsentStatus.GRANTED).values_list(
                    "pk", flat=True
                )
            ),
            link=link,
            evidence=Evidence(ip_prefix=NETWORKS[0], user_agent_hash=BROWSERS[0]),
            note="No longer comfortable being a reference.",
        )


def _cancel(organization: Organization, plans: list[Plan], manager: Any) -> None:
    """A manager takes back a request sent to the wrong person: its link stops working."""
    for plan in plans:
        for link in plan.links:
            consent_request_cancel(organization=organization, actor=manager, consent_request=link.consent_request)


def _reword(organization: Organization, plans: list[Plan], manager: Any) -> None:
    """A manager polishes an approved quote: the consent to it is void until the customer approves the new text."""
    for plan in plans:
        asset = ReferenceAsset.objects.filter(reference=plan.reference, kind="quote").order_by("id").first()
        if asset is None:
            continue
        reference_asset_update(
            organization=organization,
            asset=asset,
            actor=manager,
            text=f"{asset.text.rstrip()} We would recommend it to any team our size.",
        )
