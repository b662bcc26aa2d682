"""Reads of the privacy app that pages, the API and other apps (consent) share.

The names and signatures of ``privacy_policy_current``, ``privacy_policy_history``
and ``privacy_policy_list`` are an interface other apps call: keep them.
Each filters on the organization explicitly as well as through the scoped
manager (index use, and Citus routes on it), and checks it against the context.
"""

from __future__ import annotations

from datetime import date

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from refmgr.tenancy.context import assert_current_organization as _assert_current
from refmgr.tenancy.models import Organization

from .models import PolicyStatus, PrivacyPolicy


def _published(organization: Organization) -> QuerySet[PrivacyPolicy]:
    return PrivacyPolicy.objects.filter(organization=organization, status=PolicyStatus.PUBLISHED)


def privacy_policy_current(*, organization: Organization, today: date | None = None) -> PrivacyPolicy | None:
    """The version in force on ``today`` (default: today in the site's time zone), or None.

    That is the published version with the latest effective date on or before
    ``today``, the highest version on a tie. A version published to take
    effect later is not current until its day comes.
    """
    _assert_current(organization)
    today = today or timezone.localdate()
    return _published(organization).filter(effective_date__lte=today).order_by("-effective_date", "-version").first()


def privacy_policy_current_version(*, organization_id: OuterRef, today: date | None = None) -> Subquery:
    """``privacy_policy_current``'s version as a correlated subquery on ``organization_id``.

    For a read that must bring the policy in with its own row, in one round
    trip (the customer's consent page, looked up before any organization is
    set). The same rule as ``privacy_policy_current``, kept beside it.
    """
    today = today or timezone.localdate()
    return Subquery(
        PrivacyPolicy.all_tenants.filter(
            organization_id=organization_id, status=PolicyStatus.PUBLISHED, effective_date__lte=today
        )
        .order_by("-effective_date", "-version")
        .values("version")[:1]
    )


def privacy_policy_history(*, organization: Organization) -> QuerySet[PrivacyPolicy]:
    """Every published version, newest first (upcoming ones included: they are public too)."""
    _assert_current(organization)
    return _published(organization).order_by("-version")


def privacy_policy_published_get(*, organization: Organization, version: int) -> PrivacyPolicy | None:
    """One published version by its number; None for drafts and unknown numbers."""
    _assert_current(organization)
    return _published(organization).filter(version=version).first()


def privacy_policy_list(*, organization: Organization) -> QuerySet[PrivacyPolicy]:
    """Every version, drafts included, newest first (for admins)."""
    _assert_current(organization)
    return (
        PrivacyPolicy.objects.filter(organization=organization)
        .select_related("created_by", "published_by")
        .order_by("-version")
    )


def privacy_policy_get(*, organization: Organization, version: int) -> PrivacyPolicy | None:
    """One version by its number, draft or published (for admins)."""
    _assert_current(organization)
    return privacy_policy_list(organization=organization).filter(version=version).first()
