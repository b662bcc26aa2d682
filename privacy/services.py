"""Writes of the privacy app: every state change goes through a function here.

Keyword-only and typed; each runs in a transaction, checks the organization
against the context and records its audit event. Business-rule refusals
raise ``ApplicationError`` with a message safe to show and the field at fault.

The privacy policy's life: a draft (numbered max + 1 in its organization) is
edited or deleted freely; publishing fixes it for good. A published version
applies from its effective date, which may be today or later, never earlier:
a policy cannot start to apply before people could read it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from refmgr.audit.services import record
from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.context import assert_current_organization as _assert_current
from refmgr.tenancy.models import Organization

from .models import PolicyStatus, PrivacyPolicy

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

EDITABLE_FIELDS = ("title", "body", "summary_of_changes", "effective_date")


def _full_clean(policy: PrivacyPolicy) -> None:
    """``full_clean()`` with Django's ValidationError turned into an ApplicationError on the first field."""
    try:
        # The version is assigned by this module and checked by the database constraint.
        policy.full_clean(exclude=["version"], validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        field, messages = next(iter(error.message_dict.items()))
        raise ApplicationError(
            " ".join(messages), field=None if field == NON_FIELD_ERRORS else field, extra=error.message_dict
        ) from None


def _clean_text(value: str) -> str:
    # Windows line ends from a browser textarea would otherwise double every paragraph break.
    return value.replace("\r\n", "\n").strip()


def _locked_draft(policy: PrivacyPolicy, verb: str) -> PrivacyPolicy:
    policy = PrivacyPolicy.objects.select_for_update().get(pk=policy.pk)
    if not policy.is_draft:
        raise ApplicationError(
            f"Version {policy.version} is published and can no longer be {verb}; start a new draft instead."
        )
    return policy


@transaction.atomic
def privacy_policy_draft_create(
    *,
    organization: Organization,
    actor: AbstractBaseUser | None,
    title: str,
    body: str,
    summary_of_changes: str = "",
    effective_date: date,
) -> PrivacyPolicy:
    """Start a new draft version, numbered one above the organization's highest version."""
    _assert_current(organization)
    # Locking the organization row serialises numbering: two admins saving at
    # once get consecutive versions instead of one unique-constraint error.
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    highest = PrivacyPolicy.objects.filter(organization=organization).aggregate(v=Max("version"))["v"] or 0
    policy = PrivacyPolicy(
        organization=organization,
        version=highest + 1,
        status=PolicyStatus.DRAFT,
        title=title.strip(),
        body=_clean_text(body),
        summary_of_changes=_clean_text(summary_of_changes),
        effective_date=effective_date,
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    _full_clean(policy)
    policy.save()
    record(
        organization=organization,
        actor=actor,
        action="privacy_policy.draft_created",
        target=policy,
        details={"version": policy.version, "effective_date": effective_date.isoformat()},
    )
    return policy


@transaction.atomic
def privacy_policy_draft_update(
    *,
    organization: Organization,
    policy: PrivacyPolicy,
    actor: AbstractBaseUser | None,
    title: str | None = None,
    body: str | None = None,
    summary_of_changes: str | None = None,
    effective_date: date | None = None,
) -> PrivacyPolicy:
    """Change a draft; arguments left as ``None`` keep their value. A published version is refused."""
    _assert_current(organization)
    policy = _locked_draft(policy, "changed")
    values: dict[str, Any] = {
        "title": title.strip() if title is not None else None,
        "body": _clean_text(body) if body is not None else None,
        "summary_of_changes": _clean_text(summary_of_changes) if summary_of_changes is not None else None,
        "effective_date": effective_date,
    }
    changed = []
    for name, value in values.items():
        if value is not None and getattr(policy, name) != value:
            setattr(policy, name, value)
            changed.append(name)
    if not changed:
        return policy
    _full_clean(policy)
    policy.save(update_fields=[*changed, "updated_at"])
    record(
        organization=organization,
        actor=actor,
        action="privacy_policy.draft_updated",
        target=policy,
        details={"version": policy.version, "fields": changed},
    )
    return policy


@transaction.atomic
def privacy_policy_publish(
    *,
    organization: Organization,
    policy: PrivacyPolicy,
    actor: AbstractBaseUser | None,
    now: datetime | None = None,
) -> PrivacyPolicy:
    """Publish a draft: from its effective date it is the organization's current policy.

    Refused when the effective date is in the past, or earlier than that of a
    version already published (versions take effect in the order they are
    published, so the history reads as one line), or when a later version
    has no summary of changes (people must be able to see what changed).
    ``now`` is for the demo data, which publishes as if months ago.
    """
    _assert_current(organization)
    now = now or timezone.now()
    today = timezone.localdate(now)
    policy = _locked_draft(policy, "published again")
    if policy.effective_date < today:
        raise ApplicationError(
            "The effective date is in the past; choose today or a later date.", field="effective_date"
        )
    published = PrivacyPolicy.objects.filter(organization=organization, status=PolicyStatus.PUBLISHED)
    latest = published.order_by("-effective_date", "-version").first()
    if latest is not None:
        if policy.effective_date < latest.effective_date:
            raise ApplicationError(
                f"Version {latest.version} takes effect on {latest.effective_date.isoformat()}; "
                "this version cannot take effect before it.",
                field="effective_date",
            )
        if not policy.summary_of_changes:
            raise ApplicationError(
                f"Say what changed since version {latest.version}: readers see this summary.",
                field="summary_of_changes",
            )
    policy.status = PolicyStatus.PUBLISHED
    policy.published_at = now
    policy.published_by = actor if actor is not None and actor.is_authenticated else None
    policy.save(update_fields=["status", "published_at", "published_by", "updated_at"])
    record(
        organization=organization,
        actor=actor,
        action="privacy_policy.published",
        target=policy,
        details={"version": policy.version, "effective_date": policy.effective_date.isoformat()},
    )
    return policy


@transaction.atomic
def privacy_policy_draft_delete(
    *, organization: Organization, policy: PrivacyPolicy, actor: AbstractBaseUser | None
) -> None:
    """Throw a draft away; published versions stay forever (consents point at them)."""
    _assert_current(organization)
    policy = _locked_draft(policy, "deleted")
    # Recorded first, while the row still has its id for the event's target.
    record(
        organization=organization,
        actor=actor,
        action="privacy_policy.draft_deleted",
        target=policy,
        details={"version": policy.version, "title": policy.title},
    )
    policy.delete()
