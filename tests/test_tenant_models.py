"""Rules every tenant-owned model follows, checked on every model (new ones included)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import models

from refmgr.tenancy.managers import TenantManager
from refmgr.tenancy.models import Organization, TenantOwnedModel

TENANT_MODELS = [m for m in apps.get_models() if issubclass(m, TenantOwnedModel)]


def test_it_finds_the_tenant_models():
    assert {m._meta.label for m in TENANT_MODELS} >= {"tenancy.Membership", "audit.AuditEvent"}


@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m._meta.label)
def test_it_scopes_the_default_manager(model):
    assert isinstance(model._default_manager, TenantManager)
    assert isinstance(model.all_tenants, models.Manager)
    field = model._meta.get_field("organization")
    assert field.related_model is Organization
    assert not field.null


@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m._meta.label)
def test_it_includes_the_organization_in_every_unique_constraint(model):
    # Citus enforces uniqueness only with the distribution column in the key.
    uniques = [c for c in model._meta.constraints if isinstance(c, models.UniqueConstraint)]
    assert any(tuple(c.fields) == ("organization", "id") for c in uniques), "missing (organization, id)"
    for constraint in uniques:
        assert "organization" in constraint.fields, constraint.name
    for field in model._meta.local_fields:
        assert not (field.unique and not field.primary_key), f"{field.name} is unique without the organization"
    assert not model._meta.unique_together, "use UniqueConstraint with organization"
