"""Factories for accounts, contacts, references and their grants."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import factory
from django.utils import timezone

from references.models import Account, Contact, Incentive, Reference, ReferenceAsset, ReferenceLabel
from refmgr.tenancy.context import tenant_context
from tests.factories.tenancy import TenantFactory, UserFactory
from tests.fixtures.services import analyze


class AccountFactory(TenantFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Customer {n} Ltd")
    industry = "Manufacturing"
    region = "EMEA"
    size_band = "250-999"


class ContactFactory(TenantFactory):
    class Meta:
        model = Contact

    account = factory.SubFactory(AccountFactory, organization=factory.SelfAttribute("..organization"))
    name = factory.Sequence(lambda n: f"Contact {n}")
    title = "Head of Operations"
    email = factory.Sequence(lambda n: f"contact{n}@customer.example")


class ReferenceFactory(TenantFactory):
    class Meta:
        model = Reference

    account = factory.SubFactory(AccountFactory, organization=factory.SelfAttribute("..organization"))
    advocate = factory.SubFactory(
        ContactFactory,
        organization=factory.SelfAttribute("..organization"),
        account=factory.SelfAttribute("..account"),
    )
    title = factory.Sequence(lambda n: f"Reference story {n}")
    summary = "Cut month-end close from ten days to three with automated reconciliation."


class ReferenceLabelFactory(TenantFactory):
    class Meta:
        model = ReferenceLabel

    reference = factory.SubFactory(ReferenceFactory, organization=factory.SelfAttribute("..organization"))
    kind = "product"
    value = "Ledger"


class ReferenceAssetFactory(TenantFactory):
    class Meta:
        model = ReferenceAsset

    reference = factory.SubFactory(ReferenceFactory, organization=factory.SelfAttribute("..organization"))
    kind = "quote"
    text = "It paid for itself in a quarter."


class IncentiveFactory(TenantFactory):
    """An incentive written straight to its table (no flagging task): the sweeps must find it themselves."""

    class Meta:
        model = Incentive

    account = factory.SubFactory(AccountFactory, organization=factory.SelfAttribute("..organization"))
    contact = None
    kind = "gift_card"
    value = Decimal("50")
    currency = "EUR"
    given_on = factory.LazyFunction(timezone.localdate)
    given_by = "Account executive"
    recorded_by = factory.SubFactory(UserFactory)


def grant(reference: Reference, *scopes: str, days: int = 365, **kwargs: Any) -> None:
    """Make scopes usable, as the consent app will, through the references service."""
    from references.services import reference_scope_grant

    with tenant_context(reference.organization):
        for scope in scopes:
            reference_scope_grant(
                organization=reference.organization,
                reference=reference,
                scope=scope,
                granted_until=timezone.now() + timedelta(days=days),
                source=kwargs.get("source", "test"),
            )


def bulk_references(organization: Any, count: int, *, scopes: tuple[str, ...] = ("call", "quote")) -> list[Reference]:
    """``count`` usable references in a handful of statements, for query-count tests at scale.

    Rows that the services would write one by one are bulk-inserted here,
    with the organization set explicitly, as bulk_create skips ``save()``.
    """
    from references.models import ReferenceScopeGrant

    industries = ["Logistics", "Retail", "Banking", "Health"]
    until = timezone.now() + timedelta(days=365)
    with tenant_context(organization):
        start = Account.objects.count()
        accounts = Account.objects.bulk_create(
            Account(
                organization=organization,
                name=f"Bulk account {start + n}",
                industry=industries[n % 4],
                region=["EMEA", "NA"][n % 2],
                size_band="250-999",
            )
            for n in range(count)
        )
        contacts = Contact.objects.bulk_create(
            Contact(
                organization=organization,
                account=account,
                name=f"Bulk person {start + n}",
                title="CFO",
                email=f"bulk{start + n}@customer.example",
            )
            for n, account in enumerate(accounts)
        )
        references = Reference.objects.bulk_create(
            Reference(
                organization=organization,
                account=account,
                advocate=contact,
                title=f"Month-end close story {start + n}",
                summary="Closed the month in three days.",
                disclosure="Incentive disclosed." if n % 5 == 0 else "",
            )
            for n, (account, contact) in enumerate(zip(accounts, contacts, strict=True))
        )
        ReferenceScopeGrant.objects.bulk_create(
            ReferenceScopeGrant(
                organization=organization, reference=reference, scope=scope, granted_until=until, source="test"
            )
            for reference in references
            for scope in scopes
        )
        ReferenceLabel.objects.bulk_create(
            ReferenceLabel(organization=organization, reference=reference, kind="product", value=f"Product {n % 3}")
            for n, reference in enumerate(references)
        )
    analyze(
        "references_account",
        "references_contact",
        "references_reference",
        "references_referencescopegrant",
        "references_referencelabel",
    )
    return references
