"""Reads of the references app that pages and the API share."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from refmgr.tenancy.context import get_current_organization
from refmgr.tenancy.models import Organization

from .models import (
    FATIGUE_SCOPES,
    Contact,
    Reference,
    ReferenceHold,
    ReferenceScopeGrant,
    ReferenceSettings,
    ReferenceStatus,
    Scope,
    UsageRequest,
    UsageStatus,
)


def _assert_current(organization: Organization) -> None:
    # Selectors take the organization explicitly and check it against the
    # context, so a caller cannot read one organization while in another.
    if get_current_organization().pk != organization.pk:
        raise ValueError("The organization passed does not match the current organization context")


def reference_settings_get(*, organization: Organization) -> ReferenceSettings:
    """The organization's usage limits; the defaults until an admin changes them."""
    _assert_current(organization)
    found = ReferenceSettings.objects.first()
    return found if found is not None else ReferenceSettings(organization=organization)


# --- Usability: the one place that decides ---------------------------------------


def _open_holds() -> QuerySet[ReferenceHold]:
    return ReferenceHold.objects.filter(reference=OuterRef("pk"), released_at=None)


def usable_scope_grants(*, now: datetime | None = None) -> QuerySet[ReferenceScopeGrant]:
    """Grants that make a scope usable now: current, on an active reference with no open hold."""
    now = now or timezone.now()
    return ReferenceScopeGrant.objects.filter(
        granted_until__gt=now,
        reference__status=ReferenceStatus.ACTIVE,
    ).filter(~Exists(ReferenceHold.objects.filter(reference=OuterRef("reference_id"), released_at=None)))


def reference_usable_scopes(
    *, organization: Organization, reference_ids: Iterable[int] | None = None, now: datetime | None = None
) -> dict[int, set[str]]:
    """For each reference, the scopes that may be used now (one query).

    A scope is usable when the customer's grant for it is current (consent),
    the reference is active (not retired), and no hold is open on it
    (incentive review, complaint). References without a usable scope are absent.
    """
    _assert_current(organization)
    grants = usable_scope_grants(now=now)
    if reference_ids is not None:
        grants = grants.filter(reference_id__in=list(reference_ids))
    usable: dict[int, set[str]] = defaultdict(set)
    for reference_id, scope in grants.values_list("reference_id", "scope"):
        usable[reference_id].add(scope)
    return dict(usable)


def reference_usable_filter(*, now: datetime | None = None, scope: str | None = None) -> Q:
    """A filter for ``Reference`` querysets: at least one usable scope (or ``scope`` usable)."""
    now = now or timezone.now()
    grants = ReferenceScopeGrant.objects.filter(reference=OuterRef("pk"), granted_until__gt=now)
    if scope:
        grants = grants.filter(scope=scope)
    return Q(status=ReferenceStatus.ACTIVE) & Q(Exists(grants)) & ~Q(Exists(_open_holds()))


# --- Fatigue ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FatigueVerdict:
    """Whether the person behind a reference may be asked for a use now, and if not, from when."""

    allowed: bool
    available_from: datetime | None = None
    reason: str = ""


def contact_fatigue(
    *,
    organization: Organization,
    contact: Contact | None,
    scope: str,
    now: datetime | None = None,
    exclude_request_id: int | None = None,
) -> FatigueVerdict:
    """Apply the caps and the rest period to ``contact`` for one more use of ``scope``.

    Counts approved and completed uses of scopes that take the person's time
    (calls, site visits, videos) inside the window, across all references the
    person speaks for. ``exclude_request_id`` leaves out the request being
    approved, so approval re-checks exactly what the request will add.
    """
    _assert_current(organization)
    if contact is None or scope not in FATIGUE_SCOPES:
        return FatigueVerdict(allowed=True)
    now = now or timezone.now()
    limits = reference_settings_get(organization=organization)
    cap = contact.usage_cap if contact.usage_cap is not None else limits.usage_cap
    rest = timedelta(days=contact.cooldown_days if contact.cooldown_days is not None else limits.cooldown_days)
    window = timedelta(days=limits.usage_window_days)
    if cap == 0:
        return FatigueVerdict(allowed=False, reason="This person does not take part in calls, visits or videos.")
    uses = UsageRequest.objects.filter(
        reference__advocate=contact,
        scope__in=FATIGUE_SCOPES,
        status__in=(UsageStatus.APPROVED, UsageStatus.COMPLETED),
        decided_at__gt=now - window,
    )
    if exclude_request_id is not None:
        uses = uses.exclude(pk=exclude_request_id)
    times = sorted(uses.values_list("decided_at", flat=True))
    available_from: datetime | None = None
    reason = ""
    if len(times) >= cap:
        # The oldest use that has to leave the window before one more fits.
        available_from = times[len(times) - cap] + window
        reason = f"{contact.name} has been asked {len(times)} times in the last {window.days} days (limit {cap})."
    if times and times[-1] + rest > now:
        rested = times[-1] + rest
        if available_from is None or rested > available_from:
            available_from = rested
            reason = reason or f"{contact.name} is resting for {rest.days} days after the last use."
    if available_from is not None:
        return FatigueVerdict(allowed=False, available_from=available_from, reason=reason)
    return FatigueVerdict(allowed=True)


def scope_is_usable(*, organization: Organization, reference: Reference, scope: str) -> bool:
    return scope in reference_usable_scopes(organization=organization, reference_ids=[reference.pk]).get(
        reference.pk, set()
    )


__all__ = [
    "FatigueVerdict",
    "Scope",
    "contact_fatigue",
    "reference_settings_get",
    "reference_usable_filter",
    "reference_usable_scopes",
    "scope_is_usable",
    "usable_scope_grants",
]
