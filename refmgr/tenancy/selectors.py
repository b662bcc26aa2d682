"""Reads for organizations, members, invitations and API tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from .context import cross_organization, get_current_organization, tenant_context
from .models import ApiToken, Invitation, Membership, Organization, Role

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
    from django.http import HttpRequest

ACTIVE_ORGANIZATION_SESSION_KEY = "refmgr_active_organization"


def _assert_current(organization: Organization) -> None:
    # Selectors take the organization explicitly *and* check it against the
    # context, so a test cannot pass by reading the wrong organization.
    if get_current_organization().pk != organization.pk:
        raise ValueError("The organization passed does not match the current organization context")


def organization_get_by_slug(*, slug: str) -> Organization | None:
    """The active organization with this slug, or None."""
    return Organization.objects.filter(slug=slug, is_active=True).first()


def membership_for_user(*, organization: Organization, user: AbstractBaseUser | AnonymousUser) -> Membership | None:
    """The user's active membership in ``organization`` (inside its context), or None."""
    _assert_current(organization)
    if not user.is_authenticated or not user.is_active:
        return None
    return Membership.objects.select_related("user").filter(user=user, is_active=True).first()


def memberships_of_user(*, user: AbstractBaseUser) -> list[Membership]:
    """Every active membership of ``user`` in active organizations, for the switcher.

    This is the one read that is cross-organization by nature: which
    organizations does this person belong to? It is limited to the user's own rows.
    """
    with cross_organization("a user's own memberships, for the organization switcher"):
        return list(
            Membership.all_tenants.select_related("organization")
            .filter(user=user, is_active=True, organization__is_active=True)
            .order_by("organization__name")
        )


def admin_membership_for_session(*, request: HttpRequest) -> Membership | None:
    """The admin membership Django admin works in: the active organization if the user
    is its admin, else their first organization where they are admin."""
    admin_memberships = [m for m in memberships_of_user(user=request.user) if m.role == Role.ADMIN]
    active_id = request.session.get(ACTIVE_ORGANIZATION_SESSION_KEY)
    for membership in admin_memberships:
        if membership.organization_id == active_id:
            return membership
    return admin_memberships[0] if admin_memberships else None


def membership_list(*, organization: Organization) -> QuerySet[Membership]:
    """All members of the organization, active first."""
    _assert_current(organization)
    return Membership.objects.select_related("user").order_by("-is_active", "user__username")


def invitation_list_open(*, organization: Organization) -> QuerySet[Invitation]:
    _assert_current(organization)
    return Invitation.objects.select_related("invited_by").filter(accepted_at=None, revoked_at=None)


def api_token_list(*, organization: Organization, membership: Membership) -> QuerySet[ApiToken]:
    _assert_current(organization)
    return ApiToken.objects.filter(membership=membership, revoked_at=None)


def api_token_authenticate(*, key: str) -> ApiToken | None:
    """The live token for ``key`` (``<organization id>.<secret>``), loaded inside its organization.

    The caller must then activate the organization for the request; this only
    proves the key. Returns None for malformed, unknown or revoked keys and for
    deactivated members or organizations.
    """
    org_part, dot, secret = key.partition(".")
    if not dot or not org_part.isdigit() or len(secret) < 32:
        return None
    organization = Organization.objects.filter(pk=int(org_part), is_active=True).first()
    if organization is None:
        return None
    with tenant_context(organization):
        return (
            ApiToken.objects.select_related("membership__user", "organization")
            .filter(
                key_hash=ApiToken.hash_key(key),
                revoked_at=None,
                membership__is_active=True,
                membership__user__is_active=True,
            )
            .first()
        )
