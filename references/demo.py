"""Demo data for the references app: accounts, contacts, references, and their usage history.

Called by ``manage.py seed_demo`` through ``ReferencesConfig.seed_demo`` for
each demo organization, inside its context. Rows are written with
``bulk_create`` for speed; ``bulk_create`` skips ``save()``, so every row
gets its organization explicitly. Deterministic (``random.Random`` seeded by
the organization's slug) and idempotent: an organization that already has
references is left alone.

No scope is made usable here: usability is consent's verdict, so the consent
demo (``consent/demo.py``, which runs after this one) asks, grants and
revokes through its services, then calls :func:`seed_usage_history` so that
salespeople's requests are only for uses the customers agreed to.
"""

from __future__ import annotations

import random
import zlib
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from refmgr.tenancy.models import Organization, Role

from .models import (
    Account,
    AssetKind,
    Contact,
    FlagStatus,
    HoldKind,
    Incentive,
    IncentiveCondition,
    IncentiveKind,
    LabelKind,
    Outcome,
    Publication,
    Reference,
    ReferenceAsset,
    ReferenceHold,
    ReferenceLabel,
    ReferenceScopeGrant,
    ReferenceStatus,
    ReviewFlag,
    SizeBand,
    UsageEvent,
    UsageEventKind,
    UsageRequest,
    UsageStatus,
)

REFERENCES_PER_ORGANIZATION = 250

INDUSTRIES = (
    "Manufacturing",
    "Logistics",
    "Healthcare",
    "Financial services",
    "Retail",
    "Energy",
    "Public sector",
    "Education",
    "Telecommunications",
    "Software",
)
REGIONS = ("EMEA", "North America", "LATAM", "APAC", "Nordics", "DACH")
PRODUCTS = ("Ledger", "Insights", "Connect", "Field Service", "Customs Cloud", "Planner", "Secure Vault")
USE_CASES = (
    "Month-end close",
    "Demand forecasting",
    "Customs automation",
    "Patient scheduling",
    "Fleet tracking",
    "Supplier onboarding",
    "Compliance reporting",
    "Self-service portal",
)
TAGS = ("migration", "enterprise", "quick win", "multi-country", "regulated", "award winner")
NAME_PARTS = (
    ("Fjord", "Aster", "Harbor", "Summit", "Cobalt", "Linden", "Meridian", "Orchid", "Pioneer", "Quarry"),
    ("Freight", "Foods", "Health", "Energy", "Bank", "Retail", "Systems", "Labs", "Works", "Logistics"),
    ("AS", "GmbH", "Ltd", "Inc.", "S.A.", "BV", "AB", "Oy"),
)
FIRST_NAMES = ("Ingrid", "Tomás", "Amara", "Kenji", "Lena", "Ravi", "Sofia", "Oliver", "Mei", "Jonas", "Fatima")
LAST_NAMES = ("Solberg", "Alvarez", "Okoye", "Tanaka", "Fischer", "Patel", "Rossi", "Hughes", "Chen", "Berg")
TITLES = ("Head of Operations", "CFO", "IT Director", "VP Supply Chain", "Finance Manager", "CIO", "COO")
STORIES = (
    "Cut {case} effort by {n}% within two quarters of go-live.",
    "Rolled out {product} to {m} sites without downtime.",
    "Replaced three legacy tools with {product} for {case}.",
    "Saved {m} hours a month on {case} with {product}.",
)


def _rng(organization: Organization) -> random.Random:
    # Deterministic per organization (crc32 is stable across runs, unlike hash()).
    return random.Random(zlib.crc32(organization.slug.encode()))  # noqa: S311 (demo data, not security)


def seed_references(
    *, organization: Organization, members: dict[str, Any], count: int = REFERENCES_PER_ORGANIZATION
) -> int:
    """Create the organization's demo references and history; returns how many references were created."""
    if Reference.objects.exists():
        return 0
    rng = _rng(organization)
    now = timezone.now()
    org = organization
    with transaction.atomic():
        accounts = _accounts(rng, org, count=max(count // 2, 1))
        contacts = _contacts(rng, org, accounts)
        references = _references(rng, org, accounts, contacts, members, count)
        _labels_and_assets(rng, org, references)
        _holds(org, references)
        _incentives(rng, org, references, members, now)
    return len(references)


def seed_usage_history(*, organization: Organization, members: dict[str, Any]) -> int:
    """Usage requests in every status for scopes usable now; returns how many (idempotent).

    Runs once consent has granted scopes (the consent demo calls it), because
    a salesperson can only ask for a use the customer agreed to.
    """
    if UsageRequest.objects.exists():
        return 0
    rng = random.Random(zlib.crc32(f"{organization.slug}:usage".encode()))  # noqa: S311 (demo data)
    references = list(Reference.objects.select_related("advocate").order_by("id"))
    with transaction.atomic():
        return _usage(rng, organization, references, members, timezone.now())


def _accounts(rng: random.Random, org: Organization, *, count: int) -> list[Account]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        name = " ".join(rng.choice(part) for part in NAME_PARTS)
        if name in seen:
            name = f"{name} {len(names) + 1}"
        seen.add(name)
        names.append(name)
    accounts = [
        Account(
            organization=org,
            name=name,
            industry=rng.choice(INDUSTRIES),
            region=rng.choice(REGIONS),
            size_band=rng.choice(SizeBand.values),
            website=f"https://www.{name.split()[0].lower()}{index}.example",
            crm_id=f"ACC-{org.pk}-{index:05d}",
        )
        for index, name in enumerate(names, start=1)
    ]
    return Account.objects.bulk_create(accounts)


def _contacts(rng: random.Random, org: Organization, accounts: list[Account]) -> dict[int, list[Contact]]:
    rows = []
    for account in accounts:
        for position in range(rng.randint(1, 3)):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            rows.append(
                Contact(
                    organization=org,
                    account=account,
                    name=f"{first} {last}",
                    title=rng.choice(TITLES),
                    email=f"{first.lower()}.{last.lower()}.{account.pk}.{position}@customer.example",
                    phone=f"+44 20 7946 {rng.randint(0, 9999):04d}",
                    # The first contact of most accounts may sign for the company (logo, name in a list);
                    # the consent demo asks them for the company's consent.
                    is_authorised_signatory=position == 0 and rng.random() < 0.8,
                    requests_paused=rng.random() < 0.03,
                )
            )
    by_account: dict[int, list[Contact]] = {}
    for contact in Contact.objects.bulk_create(rows):
        by_account.setdefault(contact.account_id, []).append(contact)
    return by_account


def _references(
    rng: random.Random,
    org: Organization,
    accounts: list[Account],
    contacts: dict[int, list[Contact]],
    members: dict[str, Any],
    count: int,
) -> list[Reference]:
    owner = members.get(Role.REFERENCE_MANAGER)
    rows = []
    for index in range(count):
        account = accounts[index % len(accounts)]
        product, case = rng.choice(PRODUCTS), rng.choice(USE_CASES)
        story = rng.choice(STORIES).format(
            case=case.lower(), product=product, n=rng.randint(20, 70), m=rng.randint(3, 40)
        )
        retired = rng.random() < 0.04
        rows.append(
            Reference(
                organization=org,
                account=account,
                advocate=rng.choice(contacts[account.pk]),
                # No company name in the title: an anonymised reference must not give it away.
                title=f"{case} with {product}",
                summary=story,
                publication=rng.choices(Publication.values, weights=(6, 3, 1))[0],
                owner=owner,
                status=ReferenceStatus.RETIRED if retired else ReferenceStatus.ACTIVE,
                retired_at=timezone.now() if retired else None,
                disclosure="The customer received a discount on training." if rng.random() < 0.03 else "",
            )
        )
    return Reference.objects.bulk_create(rows)


def _labels_and_assets(rng: random.Random, org: Organization, references: list[Reference]) -> None:
    labels, assets = [], []
    for reference in references:
        product_case = reference.title.rsplit(" with ", 1)
        products = {product_case[-1], *rng.sample(PRODUCTS, rng.randint(0, 1))}
        cases = {product_case[0].split(": ", 1)[-1], *rng.sample(USE_CASES, rng.randint(0, 1))}
        tags = set(rng.sample(TAGS, rng.randint(0, 2)))
        for kind, values in ((LabelKind.PRODUCT, products), (LabelKind.USE_CASE, cases), (LabelKind.TAG, tags)):
            labels += [
                ReferenceLabel(organization=org, reference=reference, kind=kind, value=v) for v in sorted(values)
            ]
        if rng.random() < 0.6:
            assets.append(
                ReferenceAsset(
                    organization=org,
                    reference=reference,
                    kind=AssetKind.QUOTE,
                    title="Customer quote",
                    text=f"“{reference.summary}” — {reference.advocate.title if reference.advocate else 'Customer'}",
                )
            )
        if rng.random() < 0.2:
            assets.append(
                ReferenceAsset(
                    organization=org,
                    reference=reference,
                    kind=AssetKind.VIDEO,
                    title="Customer video",
                    url=f"https://video.example/{org.slug}/{reference.pk}",
                )
            )
    ReferenceLabel.objects.bulk_create(labels)
    ReferenceAsset.objects.bulk_create(assets)


def _holds(org: Organization, references: list[Reference]) -> None:
    # Review holds come from real flags (see _incentives), so each one has its place in the queue.
    ReferenceHold.objects.bulk_create(
        [
            ReferenceHold(
                organization=org,
                reference=references[7],
                kind=HoldKind.COMPLAINT,
                source=f"demo:{HoldKind.COMPLAINT}",
                reason="Open complaint about the last reference call.",
            )
        ]
    )


def _usage(
    rng: random.Random, org: Organization, references: list[Reference], members: dict[str, Any], now: Any
) -> int:
    """Usage requests in every status, with the ledger events the services would have written."""
    sales, manager = members.get(Role.SALES), members.get(Role.REFERENCE_MANAGER) or members.get(Role.ADMIN)
    if sales is None or manager is None:
        return 0
    statuses = [
        *[UsageStatus.COMPLETED] * 12,
        *[UsageStatus.APPROVED] * 5,
        *[UsageStatus.PENDING] * 6,
        *[UsageStatus.DECLINED] * 3,
        *[UsageStatus.CANCELLED] * 2,
    ]
    usable: dict[int, list[str]] = {}
    for reference_id, scope in ReferenceScopeGrant.objects.filter(granted_until__gt=now).values_list(
        "reference_id", "scope"
    ):
        usable.setdefault(reference_id, []).append(scope)
    # Requests are for uses the customer agreed to, as the services would insist.
    active = [r for r in references if r.status == ReferenceStatus.ACTIVE and r.pk in usable]
    # Spread over different references and far apart, so the demo stays inside the fatigue limits.
    chosen = rng.sample(active, min(len(statuses), len(active)))
    requests = []
    for index, (reference, usage_status) in enumerate(zip(chosen, statuses, strict=False)):
        pending = usage_status == UsageStatus.PENDING
        # Pending requests are recent, so the queue shows a realistic mix of due dates.
        created = now - timedelta(days=rng.randint(0, 6) if pending else 10 + index * 6)
        decided = created + timedelta(days=2) if not pending else None
        completed = usage_status == UsageStatus.COMPLETED
        requests.append(
            UsageRequest(
                organization=org,
                reference=reference,
                scope=rng.choice(sorted(usable[reference.pk])),
                requested_by=sales,
                opportunity_name=f"{rng.choice(NAME_PARTS[0])} {rng.choice(NAME_PARTS[1])} renewal",
                opportunity_value=Decimal(rng.randint(10, 500) * 1000),
                currency="EUR",
                opportunity_stage=rng.choice(("Discovery", "Proposal", "Negotiation")),
                crm_opportunity_id=f"OPP-{org.pk}-{index:04d}",
                needed_by=(created + timedelta(days=rng.randint(3, 21))).date(),
                purpose="The prospect asked to speak with a customer in their industry.",
                status=usage_status,
                decided_by=manager if decided and usage_status != UsageStatus.CANCELLED else None,
                decided_at=decided if usage_status != UsageStatus.CANCELLED else None,
                decision_reason="Prospect is in a different region." if usage_status == UsageStatus.DECLINED else "",
                outcome=rng.choice(Outcome.values) if completed else "",
                outcome_notes="Call went well." if completed else "",
                completed_at=decided + timedelta(days=5) if completed and decided else None,
                created_at=created,
            )
        )
    created_at = [usage_request.created_at for usage_request in requests]
    requests = UsageRequest.objects.bulk_create(requests)
    # auto_now_add overwrote the back-dated creation times; put them back (a couple of dozen rows).
    for usage_request, when in zip(requests, created_at, strict=True):
        UsageRequest.objects.filter(pk=usage_request.pk).update(created_at=when)
    events = []
    for usage_request in requests:
        kinds = {
            UsageStatus.APPROVED: (UsageEventKind.APPROVED,),
            UsageStatus.COMPLETED: (UsageEventKind.APPROVED, UsageEventKind.COMPLETED),
        }.get(usage_request.status, ())
        for kind in kinds:
            events.append(
                UsageEvent(
                    organization=org,
                    reference=usage_request.reference,
                    contact_id=usage_request.reference.advocate_id,
                    usage_request=usage_request,
                    kind=kind,
                    scope=usage_request.scope,
                    actor=manager if kind == UsageEventKind.APPROVED else sales,
                    salesperson_label=sales.get_username(),
                    opportunity_name=usage_request.opportunity_name,
                    crm_opportunity_id=usage_request.crm_opportunity_id,
                    outcome=usage_request.outcome if kind == UsageEventKind.COMPLETED else "",
                )
            )
    UsageEvent.objects.bulk_create(events)
    return len(requests)


def _incentives(
    rng: random.Random, org: Organization, references: list[Reference], members: dict[str, Any], now: Any
) -> None:
    """A few incentives, the flags they raise (through the real, idempotent flagging) and a decision of each kind.

    Account-wide and per-contact incentives, one conditioned on taking part;
    recorded by the reference manager, decided by the compliance member (who
    did not record them), so separation of duties holds. The rest stay open.
    """
    from .incentives import incentive_flag_references, review_flag_clear, review_flag_reject

    recorder = members.get(Role.REFERENCE_MANAGER) or members.get(Role.ADMIN)
    if recorder is None:
        return
    active = [r for r in references if r.status == ReferenceStatus.ACTIVE and r.advocate_id is not None]
    if len(active) < 6:
        return
    picked = rng.sample(active, 6)
    today = now.date()
    rows = [
        # (contact or None for account-wide, account, kind, value, currency, days ago, condition, note)
        (picked[0].advocate, picked[0].account, IncentiveKind.GIFT_CARD, "100", "EUR", 40, IncentiveCondition.NONE,
         "Thank-you after the customer advisory board."),
        (picked[1].advocate, picked[1].account, IncentiveKind.EVENT_TRAVEL, "1450", "USD", 75,
         IncentiveCondition.PARTICIPATION, "Flights and hotel to speak at our user conference."),
        (None, picked[2].account, IncentiveKind.DISCOUNT, "12000", "EUR", 120, IncentiveCondition.NONE,
         "Renewal discount negotiated by the account team."),
        (picked[3].advocate, picked[3].account, IncentiveKind.MERCHANDISE, "60", "GBP", 20, IncentiveCondition.NONE,
         "Branded hoodie and mug."),
        (None, picked[4].account, IncentiveKind.FREE_SERVICE, "3000", "EUR", 200, IncentiveCondition.OTHER,
         "Free onboarding workshop in exchange for early feedback."),
        (picked[5].advocate, picked[5].account, IncentiveKind.DONATION, "500", "USD", 10, IncentiveCondition.NONE,
         "Donation to a charity of the customer's choice."),
    ]  # fmt: skip
    Incentive.objects.bulk_create(
        Incentive(
            organization=org,
            contact=contact,
            account=account,
            kind=kind,
            value=Decimal(value),
            currency=currency,
            given_on=today - timedelta(days=days),
            given_by=rng.choice(("Account executive", "Customer success manager", "Marketing")),
            recorded_by=recorder,
            condition=condition,
            note=note,
        )
        for contact, account, kind, value, currency, days, condition, note in rows
    )
    incentive_flag_references(organization=org)
    reviewer = members.get(Role.COMPLIANCE)
    if reviewer is None or reviewer.pk == recorder.pk:
        return
    first_flag: dict[str, ReviewFlag] = {}
    for flag in ReviewFlag.objects.filter(status=FlagStatus.OPEN).select_related("incentive").order_by("id"):
        if flag.incentive is not None:
            first_flag.setdefault(flag.incentive.kind, flag)
    to_clear, to_reject = first_flag.get(IncentiveKind.GIFT_CARD), first_flag.get(IncentiveKind.EVENT_TRAVEL)
    if to_clear is None or to_reject is None or to_clear.reference_id == to_reject.reference_id:
        return
    review_flag_clear(
        organization=org,
        flag=to_clear,
        actor=reviewer,
        justification="A small thank-you after the advisory board; not tied to what the customer says.",
        disclosure="This customer received a gift card.",
    )
    review_flag_reject(
        organization=org,
        flag=to_reject,
        actor=reviewer,
        justification="The trip was offered on condition of speaking; the story cannot be shown as independent.",
    )
