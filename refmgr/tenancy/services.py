"""Writes for organizations, members, invitations and API tokens.

Keyword-only, typed, each in its own transaction with its audit event
(HackSoft styleguide). Business-rule refusals raise ``ApplicationError``.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.db import transaction
from django.utils import timezone

from refmgr.audit.services import record
from refmgr.common.exceptions import ApplicationError

from .context import assert_current_organization as _assert_current
from .context import tenant_context
from .models import ApiToken, Invitation, Membership, Organization, Role

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

INVITATION_SALT = "refmgr.tenancy.invitation"


@transaction.atomic
def organization_create(*, slug: str, name: str, actor: AbstractBaseUser | None = None) -> Organization:
    """Create an organization; its first audit event records who did."""
    if Organization.objects.filter(slug=slug).exists():
        raise ApplicationError(f"An organization with the slug {slug!r} already exists.", field="slug")
    organization = Organization(slug=slug, name=name)
    organization.full_clean()
    organization.save()
    with tenant_context(organization):
        record(organization=organization, actor=actor, action="organization.created", target=organization)
    return organization


@transaction.atomic
def membership_add(
    *, organization: Organization, user: AbstractBaseUser, role: str, actor: AbstractBaseUser | None
) -> Membership:
    """Give ``user`` a role in the organization, reactivating an old membership if there is one."""
    _assert_current(organization)
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.", field="role")
    membership = Membership.objects.filter(user=user).first()
    if membership is None:
        membership = Membership(organization=organization, user=user, role=role)
        membership.full_clean()
        membership.save()
        action = "membership.added"
    else:
        membership.role, membership.is_active = role, True
        membership.save(update_fields=["role", "is_active", "updated_at"])
        action = "membership.reactivated"
    if role == Role.ADMIN and not user.is_staff:
        # Organization admins audit usage in Django admin, which needs is_staff.
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    record(organization=organization, actor=actor, action=action, target=membership, details={"role": role})
    return membership


def _active_admin_count(exclude: Membership) -> int:
    return Membership.objects.filter(role=Role.ADMIN, is_active=True).exclude(pk=exclude.pk).count()


@transaction.atomic
def membership_role_change(
    *, organization: Organization, membership: Membership, role: str, actor: AbstractBaseUser
) -> Membership:
    """Change a member's role; an organization always keeps at least one active admin."""
    _assert_current(organization)
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}.", field="role")
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == role:
        return membership
    if membership.role == Role.ADMIN and _active_admin_count(membership) == 0:
        raise ApplicationError("The organization needs at least one active admin.", field="role")
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    record(
        organization=organization,
        actor=actor,
        action="membership.role_changed",
        target=membership,
        details={"from": old, "to": role},
    )
    return membership


@transaction.atomic
def membership_deactivate(*, organization: Organization, membership: Membership, actor: AbstractBaseUser) -> Membership:
    """Remove a member's access (their history stays); their API tokens stop working with it."""
    _assert_current(organization)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if not membership.is_active:
        return membership
    if membership.role == Role.ADMIN and _active_admin_count(membership) == 0:
        raise ApplicationError("You cannot deactivate the last active admin.")
    membership.is_active = False
    membership.save(update_fields=["is_active", "updated_at"])
    ApiToken.objects.filter(membership=membership, revoked_at=None).update(revoked_at=timezone.now())
    record(organization=organization, actor=actor, action="membership.deactivated", target=membership)
    return membership


# --- Invitations ----------------------------------------------------------------


def invitation_token(invitation: Invitation) -> str:
    """The signed value in an invitation link: organization and invitation ids, timestamped."""
    return signing.TimestampSigner(salt=INVITATION_SALT).sign_object(
        {"o": invitation.organization_id, "i": invitation.pk}
    )


def invitation_unsign(token: str) -> tuple[int, int]:
    """Check the signature and age of an invitation token; raises ``ApplicationError`` if bad."""
    max_age = settings.INVITATION_MAX_AGE
    try:
        payload = signing.TimestampSigner(salt=INVITATION_SALT).unsign_object(token, max_age=max_age)
    except signing.SignatureExpired:
        raise ApplicationError("This invitation has expired. Ask your administrator for a new one.") from None
    except signing.BadSignature:
        raise ApplicationError("This invitation link is not valid.") from None
    try:
        return int(payload["o"]), int(payload["i"])
    except (KeyError, TypeError, ValueError):
        raise ApplicationError("This invitation link is not valid.") from None


@transaction.atomic
def invitation_create(*, organization: Organization, email: str, role: str, actor: AbstractBaseUser) -> Invitation:
    """Invite someone by email; the link is sent by a Celery task after commit."""
    _assert_current(organization)
    email = email.strip().lower()
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}.", field="role")
    if Membership.objects.filter(user__email__iexact=email, is_active=True).exists():
        raise ApplicationError("Someone with this email address is already a member.", field="email")
    # One open invitation per address: a new one replaces the old.
    Invitation.objects.filter(email=email, accepted_at=None, revoked_at=None).update(revoked_at=timezone.now())
    invitation = Invitation(
        organization=organization,
        email=email,
        role=role,
        invited_by=actor,
        expires_at=timezone.now() + settings.INVITATION_MAX_AGE,
    )
    invitation.full_clean()
    invitation.save()
    record(
        organization=organization, actor=actor, action="invitation.created", target=invitation, details={"role": role}
    )

    from .tasks import invitation_send as invitation_send_task

    transaction.on_commit(
        lambda: invitation_send_task.delay(organization_id=organization.pk, invitation_id=invitation.pk), robust=True
    )
    return invitation


def invitation_send(*, organization: Organization, invitation_id: int, accept_url_base: str = "") -> bool:
    """Send the invitation email once: the row is claimed before the email goes out.

    Returns False when there is nothing to send (already sent, accepted,
    revoked or gone), so a retried or duplicated task is harmless.
    """
    from django.core.mail import send_mail
    from django.template.loader import render_to_string
    from django.urls import reverse

    _assert_current(organization)
    claimed = Invitation.objects.filter(pk=invitation_id, sent_at=None, accepted_at=None, revoked_at=None).update(
        sent_at=timezone.now()
    )
    if claimed != 1:
        return False
    invitation = Invitation.objects.select_related("invited_by").get(pk=invitation_id)
    base = accept_url_base or settings.SITE_URL
    link = base.rstrip("/") + reverse("invitation_accept", kwargs={"token": invitation_token(invitation)})
    context = {"invitation": invitation, "organization": organization, "link": link}
    try:
        send_mail(
            subject=render_to_string("tenancy/email/invitation_subject.txt", context).strip(),
            message=render_to_string("tenancy/email/invitation.txt", context),
            from_email=None,
            recipient_list=[invitation.email],
        )
    except Exception:
        # Nothing went out: release the claim so a retry or the pending sweep sends it.
        Invitation.objects.filter(pk=invitation_id).update(sent_at=None)
        raise
    return True


def invitations_send_pending(*, organization: Organization, older_than: timedelta, limit: int = 100) -> int:
    """Send open invitations whose send never happened (the task was lost with the broker).

    The invitation row is its own outbox: ``sent_at`` stays empty until a
    send is claimed, so this sweep finds exactly what is owed. Returns how
    many were sent.
    """
    _assert_current(organization)
    now = timezone.now()
    owed = Invitation.objects.filter(
        sent_at=None, accepted_at=None, revoked_at=None, created_at__lt=now - older_than, expires_at__gt=now
    ).values_list("pk", flat=True)[:limit]
    return sum(invitation_send(organization=organization, invitation_id=pk) for pk in list(owed))


@transaction.atomic
def invitation_revoke(*, organization: Organization, invitation: Invitation, actor: AbstractBaseUser) -> None:
    _assert_current(organization)
    updated = Invitation.objects.filter(pk=invitation.pk, accepted_at=None, revoked_at=None).update(
        revoked_at=timezone.now()
    )
    if updated:
        record(organization=organization, actor=actor, action="invitation.revoked", target=invitation)


@transaction.atomic
def invitation_accept(*, organization: Organization, invitation_id: int, user: AbstractBaseUser) -> Membership:
    """Turn an open, unexpired invitation into a membership for ``user``. Single use."""
    _assert_current(organization)
    invitation = Invitation.objects.select_for_update().filter(pk=invitation_id).first()
    if invitation is None or invitation.revoked_at is not None:
        raise ApplicationError("This invitation is no longer valid.")
    if invitation.accepted_at is not None:
        raise ApplicationError("This invitation has already been used.")
    if invitation.expires_at <= timezone.now():
        raise ApplicationError("This invitation has expired. Ask your administrator for a new one.")
    if Membership.objects.filter(user=user, is_active=True).exists():
        # Accepting must never change an existing member's role (it could demote the last admin).
        raise ApplicationError("You are already a member of this organization.")
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by", "updated_at"])
    membership = membership_add(organization=organization, user=user, role=invitation.role, actor=user)
    record(organization=organization, actor=user, action="invitation.accepted", target=invitation)
    return membership


@transaction.atomic
def user_create_from_invitation(*, username: str, email: str, password: str) -> AbstractBaseUser:
    """A new account for someone accepting an invitation (the caller validates the password)."""
    user_model = get_user_model()
    if user_model.objects.filter(username__iexact=username).exists():
        raise ApplicationError("This username is taken.", field="username")
    user = user_model(username=username, email=email)
    user.set_password(password)
    user.full_clean()
    user.save()
    return user


# --- API tokens ---------------------------------------------------------------------


@transaction.atomic
def api_token_create(
    *, organization: Organization, membership: Membership, name: str = "", actor: AbstractBaseUser | None
) -> tuple[ApiToken, str]:
    """Create a token; returns it and the key, which is shown once and never stored."""
    _assert_current(organization)
    if not membership.is_active:
        raise ApplicationError("The membership is not active.")
    key = f"{organization.pk}.{secrets.token_urlsafe(32)}"
    token = ApiToken(
        organization=organization,
        membership=membership,
        name=name,
        key_hash=ApiToken.hash_key(key),
        prefix=key[: min(len(key), 12)],
    )
    token.save()
    record(organization=organization, actor=actor, action="api_token.created", target=token, details={"name": name})
    return token, key


@transaction.atomic
def api_token_revoke(*, organization: Organization, token: ApiToken, actor: AbstractBaseUser | None) -> None:
    _assert_current(organization)
    if ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=timezone.now()):
        record(organization=organization, actor=actor, action="api_token.revoked", target=token)


def api_token_touch(*, token: ApiToken) -> None:
    """Note when a token was last used, at most once a minute (not worth a write per request)."""
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)


# --- The invitation accept page ---------------------------------------------------------


@transaction.atomic
def invitation_accept_existing_user(
    *, organization: Organization, invitation_id: int, user: AbstractBaseUser
) -> Membership:
    """Accept an invitation as a signed-in user, who must not already be an active member.

    Accepting would otherwise overwrite an existing member's role with the
    invitation's, which could even demote the last admin.
    """
    _assert_current(organization)
    if Membership.objects.filter(user=user, is_active=True).exists():
        raise ApplicationError("You are already a member of this organization.")
    return invitation_accept(organization=organization, invitation_id=invitation_id, user=user)


@transaction.atomic
def invitation_accept_new_user(
    *, organization: Organization, invitation_id: int, username: str, password: str
) -> tuple[AbstractBaseUser, Membership]:
    """Create an account with the invitation's email address and accept the invitation, all or nothing.

    The caller validates the password (Django's validators need the form's context).
    """
    _assert_current(organization)
    invitation = Invitation.objects.filter(pk=invitation_id).first()
    if invitation is None:
        raise ApplicationError("This invitation is no longer valid.")
    user = user_create_from_invitation(username=username, email=invitation.email, password=password)
    membership = invitation_accept(organization=organization, invitation_id=invitation_id, user=user)
    return user, membership
