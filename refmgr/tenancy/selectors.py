"""Reads for organizations, members, invitations and API tokens."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from django.db.models import QuerySet

from .context import assert_current_organization as _assert_current
from .context import cross_organization, tenant_context
from .models import ApiToken, Invitation, Membership, Organization, Role

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
    from django.http import HttpRequest

    from refmgr.audit.models import AuditEvent

ACTIVE_ORGANIZATION_SESSION_KEY = "refmgr_active_organization"


def organization_get_by_slug(*, slug: str) -> Organization | None:
    """The active organization with this slug, or None."""
    return Organization.objects.filter(slug=slug, is_active=True).first()


def manager_emails(*, organization: Organization) -> list[str]:
    """Who hears about reference work: the reference managers' addresses, or the admins' when there is none."""
    _assert_current(organization)
    for role in (Role.REFERENCE_MANAGER, Role.ADMIN):
        members = Membership.objects.filter(role=role, is_active=True, user__is_active=True).select_related("user")
        emails = sorted({m.user.email for m in members if m.user.email})
        if emails:
            return emails
    return []


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
    if not dot or not (org_part.isascii() and org_part.isdigit()) or len(secret) < 32:
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


# --- Pages: members, invitations, tokens, audit log -----------------------------------


def membership_get(*, organization: Organization, membership_id: int) -> Membership | None:
    """One member of the organization (active or not), or None: other organizations' ids are unknown here."""
    _assert_current(organization)
    return Membership.objects.select_related("user").filter(pk=membership_id).first()


def membership_search(*, organization: Organization, query: str = "") -> QuerySet[Membership]:
    """Members whose username, name or email contains ``query``, active first."""
    from django.db.models import Q

    members = membership_list(organization=organization)
    query = query.strip()
    if query:
        members = members.filter(
            Q(user__username__icontains=query)
            | Q(user__email__icontains=query)
            | Q(user__first_name__icontains=query)
            | Q(user__last_name__icontains=query)
        )
    return members


def membership_counts(*, organization: Organization) -> dict[str, int]:
    """Active members per role, plus ``total`` and open ``invitations``: the dashboard's numbers."""
    from django.db.models import Count

    _assert_current(organization)
    counts = dict.fromkeys(Role.values, 0)
    rows = Membership.objects.filter(is_active=True).values("role").annotate(n=Count("id")).order_by()
    for row in rows:
        counts[row["role"]] = row["n"]
    counts["total"] = sum(counts[role] for role in Role.values)
    counts["invitations"] = invitation_list_open(organization=organization).count()
    return counts


def invitation_get_open(*, organization: Organization, invitation_id: int) -> Invitation | None:
    """An invitation that can still be revoked or accepted, or None."""
    return invitation_list_open(organization=organization).filter(pk=invitation_id).first()


def invitation_get(*, organization: Organization, invitation_id: int) -> Invitation | None:
    """An invitation in any state (the accept page explains why a link no longer works)."""
    _assert_current(organization)
    return Invitation.objects.select_related("invited_by").filter(pk=invitation_id).first()


def api_token_get(*, organization: Organization, membership: Membership, token_id: int) -> ApiToken | None:
    """One of the member's own live tokens; nobody reaches another member's token through this."""
    return api_token_list(organization=organization, membership=membership).filter(pk=token_id).first()


def audit_event_search(
    *,
    organization: Organization,
    action: str = "",
    actor: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet[AuditEvent]:
    """The audit log narrowed by action, actor username and an inclusive date range (local days).

    The range is turned into timestamps rather than filtering on ``created_at__date``,
    so the (organization, created_at) index still serves it.
    """
    from refmgr.audit.selectors import audit_event_list

    events = audit_event_list(organization=organization)
    if action:
        events = events.filter(action=action)
    if actor:
        events = events.filter(actor_label__iexact=actor.strip())
    if date_from:
        events = events.filter(created_at__gte=_start_of_day(date_from))
    if date_to:
        events = events.filter(created_at__lt=_start_of_day(date_to + timedelta(days=1)))
    return events


def audit_action_list(*, organization: Organization) -> list[str]:
    """The actions that occur in the organization's log, for the filter's choices."""
    from refmgr.audit.models import AuditEvent

    _assert_current(organization)
    return list(AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct())


def _start_of_day(day: date) -> datetime:
    from django.utils import timezone

    return timezone.make_aware(datetime.combine(day, time.min))


def organization_get_active(*, organization_id: int) -> Organization | None:
    """The active organization with this id, or None (for links that carry an id, like invitations)."""
    return Organization.objects.filter(pk=organization_id, is_active=True).first()
