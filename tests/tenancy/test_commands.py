"""The management commands of DESIGN.md's contract: create_org, add_member, api_token, seed_demo."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from refmgr.audit.models import AuditEvent
from refmgr.tenancy.context import cross_organization, tenant_context
from refmgr.tenancy.management.commands.seed_demo import DEMO_ORGANIZATIONS, DEMO_PASSWORD
from refmgr.tenancy.models import ApiToken, Membership, Organization, Role
from refmgr.tenancy.selectors import api_token_authenticate

pytestmark = pytest.mark.django_db


def run(*args: str, **options: Any) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def audit_actions(organization: Organization) -> list[str]:
    with tenant_context(organization):
        return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def counts() -> dict[str, int]:
    # Counting across organizations is what this test is about; on PostgreSQL
    # the policies would otherwise hide every row.
    with cross_organization("test: count everything seed_demo created"):
        return {
            "organizations": Organization.objects.count(),
            "users": get_user_model().objects.count(),
            "memberships": Membership.all_tenants.count(),
            "audit events": AuditEvent.all_tenants.count(),
        }


# --- create_org ---------------------------------------------------------------------


def test_it_creates_an_organization_and_records_it():
    output = run("create_org", "globex", "--name", "Globex Corporation")

    organization = Organization.objects.get(slug="globex")
    assert organization.name == "Globex Corporation"
    assert "globex" in output
    assert audit_actions(organization) == ["organization.created"]


def test_it_refuses_a_duplicate_slug(org_a):
    with pytest.raises(CommandError, match="already exists"):
        run("create_org", org_a.slug, "--name", "Another")


def test_it_refuses_an_invalid_slug():
    with pytest.raises(CommandError, match="slug"):
        run("create_org", "Not A Slug", "--name", "Bad")
    assert not Organization.objects.exists()


def test_it_requires_a_name():
    with pytest.raises(CommandError, match="--name"):
        run("create_org", "globex")


# --- add_member -----------------------------------------------------------------------


def test_it_creates_the_user_and_the_membership(org_a):
    run(
        "add_member",
        org_a.slug,
        "zoe",
        Role.REFERENCE_MANAGER,
        "--email",
        "zoe@acme.example",
        "--password",
        "a-long-pass-phrase",
    )

    user = get_user_model().objects.get(username="zoe")
    assert user.email == "zoe@acme.example"
    assert user.check_password("a-long-pass-phrase")
    with tenant_context(org_a):
        assert Membership.objects.get(user=user).role == Role.REFERENCE_MANAGER
    assert "membership.added" in audit_actions(org_a)


def test_it_gives_an_existing_member_the_new_role(bob, org_a):
    run("add_member", org_a.slug, "bob", Role.COMPLIANCE)

    with tenant_context(org_a):
        assert Membership.objects.get(user=bob).role == Role.COMPLIANCE


def test_it_adds_an_existing_user_to_a_second_organization(mallory, org_a, org_b):
    run("add_member", org_a.slug, "mallory", Role.SALES)

    with tenant_context(org_a):
        assert Membership.objects.get(user=mallory).role == Role.SALES
    with tenant_context(org_b):
        assert Membership.objects.get(user=mallory).role == Role.ADMIN


def test_it_gives_a_new_user_without_a_password_an_unusable_one(org_a):
    output = run("add_member", org_a.slug, "nopass", Role.SALES)

    assert not get_user_model().objects.get(username="nopass").has_usable_password()
    assert "password reset" in output


def test_it_refuses_an_unknown_organization():
    with pytest.raises(CommandError, match="No organization with the slug 'nowhere'"):
        run("add_member", "nowhere", "zoe", Role.SALES)
    assert not get_user_model().objects.filter(username="zoe").exists()


def test_it_refuses_an_unknown_role(org_a):
    with pytest.raises(CommandError, match=r"Unknown role 'boss'.*admin, reference_manager, sales, compliance"):
        run("add_member", org_a.slug, "zoe", "boss")
    assert not get_user_model().objects.filter(username="zoe").exists()


def test_it_refuses_a_weak_password_and_creates_nothing(org_a):
    with pytest.raises(CommandError, match="Password refused"):
        run("add_member", org_a.slug, "zoe", Role.SALES, "--password", "123")
    assert not get_user_model().objects.filter(username="zoe").exists()


# --- api_token ----------------------------------------------------------------------------


def test_it_prints_only_a_key_bound_to_the_membership(alice_membership, org_a):
    output = run("api_token", "alice", org_a.slug, "--name", "CRM sync")

    key = output.strip()
    assert output == key + "\n", "nothing but the key on stdout, so scripts can capture it"
    token = api_token_authenticate(key=key)
    assert token is not None
    assert token.membership_id == alice_membership.pk
    assert token.name == "CRM sync"
    with tenant_context(org_a):
        assert ApiToken.objects.filter(membership=alice_membership).count() == 1


def test_it_refuses_a_token_for_a_non_member(mallory, org_a):
    with pytest.raises(CommandError, match="not an active member"):
        run("api_token", "mallory", org_a.slug)


def test_it_refuses_a_token_for_an_unknown_user_or_organization(alice, org_a):
    with pytest.raises(CommandError, match="No user"):
        run("api_token", "nobody", org_a.slug)
    with pytest.raises(CommandError, match="No active organization"):
        run("api_token", "alice", "nowhere")


# --- seed_demo -----------------------------------------------------------------------------


def test_it_seeds_three_organizations_with_every_role():
    output = run("seed_demo")

    assert Organization.objects.count() == 3
    for demo in DEMO_ORGANIZATIONS:
        organization = Organization.objects.get(slug=demo.slug)
        with tenant_context(organization):
            roles = set(Membership.objects.filter(is_active=True).values_list("role", flat=True))
        assert roles == set(Role.values), demo.slug
        for person in demo.people:
            assert person.username in output
    assert DEMO_PASSWORD in output


def test_it_seeds_logins_that_work():
    run("seed_demo")

    for demo in DEMO_ORGANIZATIONS:
        for person in demo.people:
            assert get_user_model().objects.get(username=person.username).check_password(DEMO_PASSWORD)


def test_it_creates_nothing_new_when_run_twice():
    run("seed_demo")
    before = counts()

    output = run("seed_demo")

    assert counts() == before
    assert "nothing new" in output
