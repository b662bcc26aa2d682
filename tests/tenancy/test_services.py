"""Services for organizations, members, invitations and tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from refmgr.audit.models import AuditEvent
from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy import services
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import ApiToken, Invitation, Membership, Role
from tests.factories.tenancy import UserFactory


def actions(organization) -> list[str]:
    with tenant_context(organization):
        return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def test_it_creates_an_organization_with_its_first_audit_event(db):
    organization = services.organization_create(slug="cobalt", name="Cobalt Health")
    assert actions(organization) == ["organization.created"]


def test_it_refuses_a_duplicate_slug(org_a):
    with pytest.raises(ApplicationError) as error:
        services.organization_create(slug=org_a.slug, name="Other")
    assert error.value.field == "slug"


def test_it_refuses_an_invalid_slug(db):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.organization_create(slug="Not A Slug!", name="x")


def test_it_adds_a_member_and_makes_admins_staff(org_a, alice):
    user = UserFactory()
    with tenant_context(org_a):
        membership = services.membership_add(organization=org_a, user=user, role=Role.ADMIN, actor=alice)
    user.refresh_from_db()
    assert membership.role == Role.ADMIN
    assert user.is_staff
    assert actions(org_a)[-1] == "membership.added"


def test_it_refuses_an_unknown_role(org_a):
    with tenant_context(org_a), pytest.raises(ApplicationError, match="Unknown role"):
        services.membership_add(organization=org_a, user=UserFactory(), role="owner", actor=None)


def test_it_changes_a_role_and_records_from_and_to(org_a, alice, bob_membership):
    with tenant_context(org_a):
        services.membership_role_change(
            organization=org_a, membership=bob_membership, role=Role.REFERENCE_MANAGER, actor=alice
        )
        event = AuditEvent.objects.filter(action="membership.role_changed").get()
    assert event.details == {"from": "sales", "to": "reference_manager"}
    assert event.actor == alice


def test_it_keeps_at_least_one_admin(org_a, alice, alice_membership):
    with tenant_context(org_a):
        with pytest.raises(ApplicationError, match="at least one active admin"):
            services.membership_role_change(
                organization=org_a, membership=alice_membership, role=Role.SALES, actor=alice
            )
        with pytest.raises(ApplicationError, match="last active admin"):
            services.membership_deactivate(organization=org_a, membership=alice_membership, actor=alice)


def test_it_deactivates_a_member_and_revokes_their_tokens(org_a, alice, bob_membership):
    with tenant_context(org_a):
        token, _ = services.api_token_create(organization=org_a, membership=bob_membership, actor=alice)
        services.membership_deactivate(organization=org_a, membership=bob_membership, actor=alice)
        token.refresh_from_db()
        bob_membership.refresh_from_db()
    assert not bob_membership.is_active
    assert token.revoked_at is not None


def test_it_invites_and_sends_the_link_once(org_a, alice, django_capture_on_commit_callbacks):
    with tenant_context(org_a):
        with django_capture_on_commit_callbacks() as callbacks:
            invitation = services.invitation_create(
                organization=org_a, email="New.Person@Example.com", role=Role.SALES, actor=alice
            )
        assert len(callbacks) == 1  # the send is enqueued only after commit
        assert invitation.email == "new.person@example.com"
        assert services.invitation_send(organization=org_a, invitation_id=invitation.pk) is True
        assert services.invitation_send(organization=org_a, invitation_id=invitation.pk) is False
    assert len(mail.outbox) == 1
    token = services.invitation_token(invitation)
    assert f"/invite/{token}/" in mail.outbox[0].body
    assert services.invitation_unsign(token) == (org_a.pk, invitation.pk)


def test_it_replaces_an_open_invitation_for_the_same_address(org_a, alice):
    with tenant_context(org_a):
        first = services.invitation_create(organization=org_a, email="x@example.com", role=Role.SALES, actor=alice)
        services.invitation_create(organization=org_a, email="x@example.com", role=Role.ADMIN, actor=alice)
        first.refresh_from_db()
        assert first.revoked_at is not None
        assert Invitation.objects.filter(revoked_at=None).count() == 1


def test_it_refuses_to_invite_an_existing_member(org_a, alice, bob):
    with tenant_context(org_a), pytest.raises(ApplicationError, match="already a member"):
        services.invitation_create(organization=org_a, email=bob.email, role=Role.SALES, actor=alice)


def test_it_accepts_an_invitation_once(org_a, alice):
    newcomer = UserFactory()
    with tenant_context(org_a):
        invitation = services.invitation_create(
            organization=org_a, email=newcomer.email, role=Role.COMPLIANCE, actor=alice
        )
        membership = services.invitation_accept(organization=org_a, invitation_id=invitation.pk, user=newcomer)
        assert membership.role == Role.COMPLIANCE
        with pytest.raises(ApplicationError, match="already been used"):
            services.invitation_accept(organization=org_a, invitation_id=invitation.pk, user=UserFactory())
        assert Membership.objects.filter(user=newcomer).count() == 1


def test_it_refuses_an_expired_or_revoked_invitation(org_a, alice):
    with tenant_context(org_a):
        expired = services.invitation_create(organization=org_a, email="e@example.com", role="sales", actor=alice)
        Invitation.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        with pytest.raises(ApplicationError, match="expired"):
            services.invitation_accept(organization=org_a, invitation_id=expired.pk, user=UserFactory())
        revoked = services.invitation_create(organization=org_a, email="r@example.com", role="sales", actor=alice)
        services.invitation_revoke(organization=org_a, invitation=revoked, actor=alice)
        with pytest.raises(ApplicationError, match="no longer valid"):
            services.invitation_accept(organization=org_a, invitation_id=revoked.pk, user=UserFactory())


@pytest.mark.parametrize("token", ["", "garbage", "eyJvIjoxLCJpIjoxfQ:1abc:forged"])
def test_it_rejects_a_tampered_invitation_token(db, token):
    with pytest.raises(ApplicationError, match="not valid"):
        services.invitation_unsign(token)


def test_it_stores_only_a_hash_of_the_api_key(org_a, alice_membership):
    with tenant_context(org_a):
        token, key = services.api_token_create(organization=org_a, membership=alice_membership, actor=None)
        stored = ApiToken.objects.get(pk=token.pk)
    assert key.startswith(f"{org_a.pk}.")
    assert key not in (stored.key_hash, stored.prefix)
    assert stored.key_hash == ApiToken.hash_key(key)


def test_it_hides_other_tenants_invitations(org_a, org_b, alice, mallory):
    from refmgr.tenancy.selectors import invitation_list_open

    with tenant_context(org_b):
        services.invitation_create(organization=org_b, email="b@example.com", role=Role.SALES, actor=mallory)
    with tenant_context(org_a):
        services.invitation_create(organization=org_a, email="a@example.com", role=Role.SALES, actor=alice)
        assert [i.email for i in invitation_list_open(organization=org_a)] == ["a@example.com"]
        with pytest.raises(ValueError, match="does not match"):
            invitation_list_open(organization=org_b)


def test_it_hides_other_tenants_api_tokens(org_a, org_b, alice_membership, mallory_membership):
    from refmgr.tenancy.selectors import api_token_list

    with tenant_context(org_b):
        services.api_token_create(organization=org_b, membership=mallory_membership, actor=None)
    with tenant_context(org_a):
        mine, _ = services.api_token_create(organization=org_a, membership=alice_membership, actor=None)
        assert list(ApiToken.objects.all()) == [mine]
        assert list(api_token_list(organization=org_a, membership=mallory_membership)) == []


def test_it_refuses_an_invitation_for_someone_already_a_member(org_a, alice, bob, bob_membership):
    with tenant_context(org_a):
        invitation = services.invitation_create(
            organization=org_a, email="bob.other@example.com", role=Role.ADMIN, actor=alice
        )
        with pytest.raises(ApplicationError, match="already a member"):
            services.invitation_accept(organization=org_a, invitation_id=invitation.pk, user=bob)
        bob_membership.refresh_from_db()
    assert bob_membership.role == Role.SALES
