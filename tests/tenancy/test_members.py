"""Members management, invitations from sending to accepting, and API tokens."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from refmgr.audit.models import AuditEvent
from refmgr.tenancy import services
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import ApiToken, Invitation, Membership, Role
from tests.factories.tenancy import PASSWORD, MembershipFactory, UserFactory

NEW_PASSWORD = "a-long-and-unusual-passphrase-42"


def url(name: str, slug: str = "acme", **kwargs: object) -> str:
    return reverse(f"tenancy:{name}", kwargs={"organization_slug": slug, **kwargs})


def actions(organization) -> list[str]:
    with tenant_context(organization):
        return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def membership_of(organization, user) -> Membership | None:
    with tenant_context(organization):
        return Membership.objects.filter(user=user).first()


def invite(organization, actor, email: str = "newbie@example.com", role: str = Role.SALES) -> tuple[Invitation, str]:
    """An invitation created and 'emailed' as production does; returns it and the token in the email."""
    with tenant_context(organization):
        invitation = services.invitation_create(organization=organization, email=email, role=role, actor=actor)
        services.invitation_send(organization=organization, invitation_id=invitation.pk)
    match = re.search(r"/invite/([^/\s]+)/", mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    return invitation, match[1]


def refresh(obj) -> None:
    # Row-level security on PostgreSQL hides the row from a reload outside its organization.
    with tenant_context(obj.organization):
        obj.refresh_from_db()


def accept_url(token: str) -> str:
    return reverse("invitation_accept", kwargs={"token": token})


# --- The members page ---------------------------------------------------------------------


def test_it_lists_members_with_their_roles(client, alice, bob, carol, mallory):
    client.force_login(alice)
    response = client.get(url("members"))
    body = response.content.decode()
    assert "alice@example.com" in body
    assert "bob@example.com" in body
    assert "mallory" not in body
    assert response.context["page"].paginator.count == 3


def test_it_searches_members(client, alice, bob, carol):
    client.force_login(alice)
    page = client.get(url("members"), {"q": "CAR"}).context["page"]
    assert [m.user.username for m in page.object_list] == ["carol"]
    response = client.get(url("members"), {"q": "nobody-here"})
    assert "No member matches" in response.content.decode()


def test_it_paginates_members(client, alice, org_a):
    for i in range(30):
        MembershipFactory(organization=org_a, user=UserFactory(username=f"member{i:02d}"))
    client.force_login(alice)
    assert len(client.get(url("members")).context["page"].object_list) == 25
    assert len(client.get(url("members"), {"page": 2}).context["page"].object_list) == 6


def test_it_invites_by_email_and_sends_the_link_after_commit(client, alice, org_a, django_capture_on_commit_callbacks):
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(url("members"), {"email": "Newbie@Example.com", "role": Role.REFERENCE_MANAGER})
    assert response.status_code == 302
    assert len(callbacks) == 1  # the Celery task, enqueued only once the invitation is committed
    with tenant_context(org_a):
        invitation = Invitation.objects.get()
    assert (invitation.email, invitation.role) == ("newbie@example.com", Role.REFERENCE_MANAGER)
    assert "invitation.created" in actions(org_a)
    follow = client.get(url("members"))
    assert "Invitation sent to newbie@example.com" in follow.content.decode()
    assert "newbie@example.com" in follow.content.decode()


def test_it_emails_a_working_invitation_link(alice, org_a):
    invitation, token = invite(org_a, alice)
    message = mail.outbox[0]
    assert message.to == ["newbie@example.com"]
    assert "Acme Analytics" in message.subject
    assert services.invitation_unsign(token) == (org_a.pk, invitation.pk)


@pytest.mark.parametrize(
    ("data", "field"),
    [({"email": "not-an-email", "role": Role.SALES}, "email"), ({"email": "x@example.com", "role": "owner"}, "role")],
)
def test_it_rejects_a_malformed_invitation(client, alice, org_a, data, field):
    client.force_login(alice)
    response = client.post(url("members"), data)
    assert response.status_code == 400
    assert field in response.context["invite_form"].errors
    with tenant_context(org_a):
        assert not Invitation.objects.exists()


def test_it_shows_the_services_refusal_on_the_form(client, alice, bob):
    client.force_login(alice)
    response = client.post(url("members"), {"email": "bob@example.com", "role": Role.SALES})
    assert response.status_code == 400
    assert "already a member" in response.context["invite_form"].errors["email"][0]


def test_it_revokes_an_open_invitation(client, alice, org_a):
    invitation, token = invite(org_a, alice)
    client.force_login(alice)
    response = client.post(url("invitation_revoke", invitation_id=invitation.pk))
    assert response.status_code == 302
    refresh(invitation)
    assert invitation.revoked_at is not None
    assert "invitation.revoked" in actions(org_a)
    client.logout()
    assert client.get(accept_url(token)).status_code == 410


def test_it_refuses_to_revoke_with_get(client, alice, org_a):
    invitation, _ = invite(org_a, alice)
    client.force_login(alice)
    assert client.get(url("invitation_revoke", invitation_id=invitation.pk)).status_code == 405


def test_it_hides_other_tenants_invitations(client, mallory, alice, org_a):
    invitation, _ = invite(org_a, alice)
    client.force_login(mallory)
    response = client.post(url("invitation_revoke", slug="borealis", invitation_id=invitation.pk))
    assert response.status_code == 404
    refresh(invitation)
    assert invitation.revoked_at is None


# --- Role change and deactivation -------------------------------------------------------------


def test_it_changes_a_role_and_records_it(client, alice, bob, org_a):
    client.force_login(alice)
    bob_membership = membership_of(org_a, bob)
    response = client.post(url("member_role_change", membership_id=bob_membership.pk), {"role": Role.COMPLIANCE})
    assert response.status_code == 302
    assert membership_of(org_a, bob).role == Role.COMPLIANCE
    with tenant_context(org_a):
        event = AuditEvent.objects.get(action="membership.role_changed")
    assert event.details == {"from": Role.SALES, "to": Role.COMPLIANCE}
    assert event.actor == alice
    assert "bob is now Compliance reviewer" in client.get(url("members")).content.decode()


def test_it_refuses_to_demote_the_last_admin_with_a_message(client, alice, org_a):
    client.force_login(alice)
    alice_membership = membership_of(org_a, alice)
    response = client.post(
        url("member_role_change", membership_id=alice_membership.pk), {"role": Role.SALES}, follow=True
    )
    assert response.status_code == 200
    assert "at least one active admin" in response.content.decode()
    assert membership_of(org_a, alice).role == Role.ADMIN


def test_it_rejects_an_unknown_role(client, alice, bob, org_a):
    client.force_login(alice)
    bob_membership = membership_of(org_a, bob)
    response = client.post(url("member_role_change", membership_id=bob_membership.pk), {"role": "owner"}, follow=True)
    assert "Choose one of the listed roles" in response.content.decode()
    assert membership_of(org_a, bob).role == Role.SALES


def test_it_confirms_before_deactivating(client, alice, bob, org_a):
    client.force_login(alice)
    bob_membership = membership_of(org_a, bob)
    response = client.get(url("member_deactivate", membership_id=bob_membership.pk))
    assert response.status_code == 200
    assert "Deactivate bob?" in response.content.decode()
    assert membership_of(org_a, bob).is_active


def test_it_deactivates_a_member_who_then_loses_access(client, alice, bob, org_a):
    with tenant_context(org_a):
        services.api_token_create(organization=org_a, membership=membership_of(org_a, bob), actor=bob)
    client.force_login(alice)
    response = client.post(url("member_deactivate", membership_id=membership_of(org_a, bob).pk))
    assert response.status_code == 302
    assert not membership_of(org_a, bob).is_active
    assert "membership.deactivated" in actions(org_a)
    with tenant_context(org_a):
        assert not ApiToken.objects.filter(revoked_at=None).exists()
    client.force_login(bob)
    assert client.get(url("dashboard")).status_code == 404


def test_it_refuses_to_deactivate_the_last_admin_with_a_message(client, alice, org_a):
    client.force_login(alice)
    response = client.post(url("member_deactivate", membership_id=membership_of(org_a, alice).pk), follow=True)
    assert response.status_code == 200
    assert "last active admin" in response.content.decode()
    assert membership_of(org_a, alice).is_active


def test_it_lets_an_admin_leave_when_another_admin_remains(client, alice, carol, org_a):
    with tenant_context(org_a):
        services.membership_role_change(
            organization=org_a, membership=membership_of(org_a, carol), role=Role.ADMIN, actor=alice
        )
    client.force_login(alice)
    response = client.post(url("member_deactivate", membership_id=membership_of(org_a, alice).pk))
    assert response["Location"] == reverse("home")
    assert not membership_of(org_a, alice).is_active


@pytest.mark.parametrize("who", ["bob", "carol", "dave"])
def test_it_lets_only_admins_manage_members(client, request, alice, org_a, who):
    user = request.getfixturevalue(who)
    client.force_login(user)
    target = membership_of(org_a, alice).pk
    assert client.post(url("member_role_change", membership_id=target), {"role": Role.SALES}).status_code == 403
    assert client.post(url("member_deactivate", membership_id=target)).status_code == 403
    assert client.post(url("members"), {"email": "x@example.com", "role": Role.ADMIN}).status_code == 403
    assert membership_of(org_a, alice).role == Role.ADMIN


def test_it_hides_other_tenants_members(client, alice, mallory, org_b):
    client.force_login(alice)
    target = membership_of(org_b, mallory).pk
    assert client.post(url("member_role_change", membership_id=target), {"role": Role.SALES}).status_code == 404
    assert client.get(url("member_deactivate", membership_id=target)).status_code == 404
    assert membership_of(org_b, mallory).role == Role.ADMIN


def test_it_needs_csrf_for_changes(alice, bob, org_a):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    response = strict.post(url("member_role_change", membership_id=membership_of(org_a, bob).pk), {"role": "admin"})
    assert response.status_code == 403
    assert membership_of(org_a, bob).role == Role.SALES


# --- Accepting an invitation ---------------------------------------------------------------------


def test_it_shows_the_invitation_without_changing_anything(client, alice, org_a):
    invitation, token = invite(org_a, alice)
    response = client.get(accept_url(token))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Join Acme Analytics" in body
    assert "newbie@example.com" in body
    refresh(invitation)
    assert invitation.accepted_at is None


def test_it_creates_an_account_from_an_invitation(client, alice, org_a):
    _, token = invite(org_a, alice, role=Role.REFERENCE_MANAGER)
    response = client.post(
        accept_url(token), {"username": "newbie", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == url("dashboard")
    user = get_user_model().objects.get(username="newbie")
    assert user.email == "newbie@example.com"
    assert membership_of(org_a, user).role == Role.REFERENCE_MANAGER
    assert {"invitation.accepted", "membership.added"} <= set(actions(org_a))
    # Signed in straight away, and landing on the dashboard works.
    assert client.get(url("dashboard")).status_code == 200


def test_it_validates_the_new_password(client, alice, org_a):
    _, token = invite(org_a, alice)
    response = client.post(accept_url(token), {"username": "newbie", "password1": "newbie", "password2": "newbie"})
    assert response.status_code == 400
    assert response.context["form"].errors["password1"]
    assert not get_user_model().objects.filter(username="newbie").exists()
    body = response.content.decode()
    assert 'aria-describedby="id_password1_helptext id_password1_error"' in body
    assert 'aria-invalid="true"' in body


def test_it_refuses_a_taken_username(client, alice, bob, org_a):
    invitation, token = invite(org_a, alice)
    response = client.post(accept_url(token), {"username": "BOB", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 400
    assert "taken" in response.context["form"].errors["username"][0]
    refresh(invitation)
    assert invitation.accepted_at is None


def test_it_lets_a_signed_in_user_accept_with_one_post(client, alice, mallory, org_a):
    _, token = invite(org_a, alice, email="mallory@example.com", role=Role.COMPLIANCE)
    client.force_login(mallory)
    assert "Accept and join Acme Analytics" in client.get(accept_url(token)).content.decode()
    assert membership_of(org_a, mallory) is None
    response = client.post(accept_url(token))
    assert response["Location"] == url("dashboard")
    assert membership_of(org_a, mallory).role == Role.COMPLIANCE
    assert "invitation.accepted" in actions(org_a)
    assert client.get(url("dashboard")).status_code == 200


def test_it_sends_anonymous_visitors_back_to_the_invitation_after_sign_in(client, alice, mallory, org_a):
    _, token = invite(org_a, alice, email="mallory@example.com")
    body = client.get(accept_url(token)).content.decode()
    login_url = f"{reverse('login')}?next={accept_url(token)}"
    assert login_url in body
    response = client.post(reverse("login"), {"username": "mallory", "password": PASSWORD, "next": accept_url(token)})
    assert response["Location"] == accept_url(token)


def test_it_does_not_let_a_member_accept_over_their_own_role(client, alice, bob, org_a):
    invitation, token = invite(org_a, alice, email="someone@example.com", role=Role.ADMIN)
    client.force_login(bob)
    assert "already a member" in client.get(accept_url(token)).content.decode()
    client.post(accept_url(token))
    assert membership_of(org_a, bob).role == Role.SALES
    refresh(invitation)
    assert invitation.accepted_at is None


def _nothing_changed(org_a, invitation_pk: int, users_before: int) -> None:
    assert get_user_model().objects.count() == users_before
    with tenant_context(org_a):
        assert Invitation.objects.get(pk=invitation_pk).accepted_at is None


def test_it_rejects_a_tampered_link(client, alice, org_a):
    invitation, token = invite(org_a, alice)
    users = get_user_model().objects.count()
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for method in (client.get, client.post):
        response = method(accept_url(tampered), {"username": "x", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
        assert response.status_code == 404
        assert "This invitation can" in response.content.decode()
        assert "Acme" not in response.content.decode()
    _nothing_changed(org_a, invitation.pk, users)


def test_it_rejects_an_expired_link(client, alice, org_a):
    invitation, token = invite(org_a, alice)
    users = get_user_model().objects.count()
    with override_settings(INVITATION_MAX_AGE=timedelta(seconds=-1)):
        response = client.post(
            accept_url(token), {"username": "late", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
        )
    assert response.status_code in (404, 410)
    assert "expired" in response.content.decode()
    _nothing_changed(org_a, invitation.pk, users)


def test_it_rejects_an_invitation_past_its_expiry_date(client, alice, org_a):
    invitation, token = invite(org_a, alice)
    with tenant_context(org_a):
        Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    users = get_user_model().objects.count()
    response = client.post(
        accept_url(token), {"username": "late", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert response.status_code == 410
    _nothing_changed(org_a, invitation.pk, users)


def test_it_accepts_a_link_only_once(client, alice, mallory, org_a):
    _, token = invite(org_a, alice)
    client.post(accept_url(token), {"username": "newbie", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    client.logout()
    client.force_login(mallory)
    response = client.post(accept_url(token))
    assert response.status_code == 410
    assert membership_of(org_a, mallory) is None


# --- API tokens ------------------------------------------------------------------------------------


def test_it_shows_a_new_token_key_exactly_once(client, alice, org_a):
    client.force_login(alice)
    response = client.post(url("api_tokens"), {"name": "CRM sync"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = response.context["key"]
    assert key in response.content.decode()
    assert "able to see it again" in response.content.decode()
    listing = client.get(url("api_tokens")).content.decode()
    assert "CRM sync" in listing
    assert key not in listing
    assert key[:12] in listing
    assert "api_token.created" in actions(org_a)


def test_it_authenticates_with_the_new_token_until_revoked(client, alice, org_a):
    from rest_framework.test import APIClient

    client.force_login(alice)
    key = client.post(url("api_tokens"), {"name": "script"}).context["key"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/members/").status_code == 200
    with tenant_context(org_a):
        token = ApiToken.objects.get()
    response = client.post(url("api_token_revoke", token_id=token.pk))
    assert response.status_code == 302
    assert "api_token.revoked" in actions(org_a)
    assert api.get("/api/v1/members/").status_code == 401
    assert "no API tokens" in client.get(url("api_tokens")).content.decode()


def test_it_lists_only_the_members_own_tokens(client, alice, bob, org_a):
    with tenant_context(org_a):
        token, _ = services.api_token_create(
            organization=org_a, membership=membership_of(org_a, alice), name="alice-only", actor=alice
        )
    client.force_login(bob)
    assert "alice-only" not in client.get(url("api_tokens")).content.decode()
    assert client.post(url("api_token_revoke", token_id=token.pk)).status_code == 404
    refresh(token)
    assert token.revoked_at is None


def test_it_hides_other_tenants_tokens(client, alice, mallory, org_b):
    with tenant_context(org_b):
        token, _ = services.api_token_create(
            organization=org_b, membership=membership_of(org_b, mallory), actor=mallory
        )
    client.force_login(alice)
    assert client.post(url("api_token_revoke", token_id=token.pk)).status_code == 404
    refresh(token)
    assert token.revoked_at is None
