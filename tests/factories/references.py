"""Factories for accounts, contacts, references and their grants."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import factory
from django.utils import timezone

from references.models import Account, Contact, Reference, ReferenceAsset, ReferenceLabel
from refmgr.tenancy.context import tenant_context
from tests.factories.tenancy import TenantFactory


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
