from __future__ import annotations

import pytest

from refmgr.audit.models import AuditEvent
from refmgr.tenancy.context import (
    OrganizationNotSet,
    cross_organization,
    current_organization_or_none,
    get_current_organization,
    tenant_context,
)
from refmgr.tenancy.models import Membership
from tests.factories.tenancy import UserFactory


def test_it_raises_outside_an_organization(db):
    with pytest.raises(OrganizationNotSet):
        Membership.objects.all()


def test_it_raises_even_when_reading_across_organizations_is_allowed(db):
    # cross_organization() opens the database policy, never the scoped manager.
    with cross_organization("test"), pytest.raises(OrganizationNotSet):
        AuditEvent.objects.count()


def test_it_restores_the_previous_organization_after_an_exception(org_a, org_b):
    def fail_inside_b() -> None:
        with tenant_context(org_b):
            assert get_current_organization() == org_b
            raise ZeroDivisionError

    with tenant_context(org_a):
        with pytest.raises(ZeroDivisionError):
            fail_inside_b()
        assert get_current_organization() == org_a
    assert current_organization_or_none() is None


def test_it_scopes_the_default_manager(alice_membership, mallory_membership, org_a, org_b):
    with tenant_context(org_a):
        assert list(Membership.objects.all()) == [alice_membership]
    with tenant_context(org_b):
        assert list(Membership.objects.all()) == [mallory_membership]


def test_it_refuses_to_save_into_another_organization(alice_membership, org_b):
    with tenant_context(org_b), pytest.raises(ValueError, match="Refusing to save"):
        alice_membership.save()


def test_it_refuses_to_save_without_an_organization(db):
    with pytest.raises(OrganizationNotSet):
        Membership(user=UserFactory(), role="sales").save()


def test_it_stamps_the_organization_from_the_context(org_a):
    with tenant_context(org_a):
        membership = Membership(user=UserFactory(), role="sales")
        membership.save()
    assert membership.organization_id == org_a.pk
