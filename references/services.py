"""Writes of the references app: every state change goes through a function here.

Keyword-only and typed; each runs in a transaction and records its audit
event. Business-rule refusals raise ``ApplicationError`` with a message
safe to show and, where it helps, the field at fault.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from refmgr.audit.services import record
from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.context import get_current_organization
from refmgr.tenancy.models import Organization

from . import selectors
from .models import (
    Contact,
    HoldKind,
    Outcome,
    Reference,
    ReferenceHold,
    ReferenceScopeGrant,
    ReferenceStatus,
    Scope,
    UsageEvent,
    UsageEventKind,
    UsageRequest,
    UsageStatus,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def _assert_current(organization: Organization) -> None:
    if get_current_organization().pk != organization.pk:
        raise ValueError("The organization passed does not match the current organization context")


# --- Verdicts from other apps: grants and holds ---------------------------------------


@transaction.atomic
def reference_scope_grant(
    *, organization: Organization, reference: Reference, scope: str, granted_until: datetime, source: str
) -> ReferenceScopeGrant:
    """Record that ``scope`` of ``reference`` may be used until ``granted_until`` (consent's verdict)."""
    _assert_current(organization)
    if scope not in Scope.values:
        raise ApplicationError(f"Unknown scope {scope!r}.", field="scope")
    grant, _ = ReferenceScopeGrant.objects.update_or_create(
        reference=reference,
        scope=scope,
        defaults={"granted_until": granted_until, "source": source, "organization": organization},
    )
    record(
        organization=organization,
        actor=None,
        action="reference.scope_granted",
        target=reference,
        details={"scope": scope, "until": granted_until.isoformat(), "source": source},
    )
    return grant


@transaction.atomic
def reference_scope_withdraw(*, organization: Organization, reference: Reference, scope: str, source: str) -> bool:
    """Make ``scope`` unusable at once (revocation, expiry, voided wording). Returns whether it was granted."""
    _assert_current(organization)
    deleted, _ = ReferenceScopeGrant.objects.filter(reference=reference, scope=scope).delete()
    if deleted:
        record(
            organization=organization,
            actor=None,
            action="reference.scope_withdrawn",
            target=reference,
            details={"scope": scope, "source": source},
        )
    return bool(deleted)


@transaction.atomic
def reference_hold_place(
    *, organization: Organization, reference: Reference, kind: str, source: str, reason: str
) -> ReferenceHold:
    """Stop all use of a reference until the hold from ``source`` is released (idempotent)."""
    _assert_current(organization)
    if kind not in HoldKind.values:
        raise ApplicationError(f"Unknown hold kind {kind!r}.")
    hold, created = ReferenceHold.objects.get_or_create(
        reference=reference,
        kind=kind,
        source=source,
        defaults={"reason": reason[:300], "organization": organization},
    )
    if not created and hold.released_at is not None:
        hold.released_at = None
        hold.reason = reason[:300]
        hold.save(update_fields=["released_at", "reason", "updated_at"])
        created = True
    if created:
        record(
            organization=organization,
            actor=None,
            action="reference.hold_placed",
            target=reference,
            details={"kind": kind, "source": source, "reason": reason[:300]},
        )
    return hold


@transaction.atomic
def reference_hold_release(*, organization: Organization, reference: Reference, kind: str, source: str) -> bool:
    _assert_current(organization)
    released = ReferenceHold.objects.filter(reference=reference, kind=kind, source=source, released_at=None).update(
        released_at=timezone.now()
    )
    if released:
        record(
            organization=organization,
            actor=None,
            action="reference.hold_released",
            target=reference,
            details={"kind": kind, "source": source},
        )
    return bool(released)


@transaction.atomic
def reference_retire(
    *, organization: Organization, reference: Reference, actor: AbstractBaseUser | None, reason: str = ""
) -> Reference:
    """Take a reference out of use for good; pending requests for it are cancelled."""
    _assert_current(organization)
    reference = Reference.objects.select_for_update().get(pk=reference.pk)
    if reference.status == ReferenceStatus.RETIRED:
        return reference
    reference.status = ReferenceStatus.RETIRED
    reference.retired_at = timezone.now()
    reference.save(update_fields=["status", "retired_at", "updated_at"])
    for usage_request in UsageRequest.objects.filter(reference=reference, status=UsageStatus.PENDING):
        usage_request_cancel(
            organization=organization,
            usage_request=usage_request,
            actor=actor,
            reason=reason or "The reference was retired.",
        )
    record(
        organization=organization, actor=actor, action="reference.retired", target=reference, details={"reason": reason}
    )
    return reference


# --- Usage requests -------------------------------------------------------------------------


def _record_refusal(
    *, organization: Organization, actor: AbstractBaseUser | None, reference: Reference, details: dict[str, Any]
) -> None:
    record(organization=organization, actor=actor, action="usage_request.refused", target=reference, details=details)


def usage_request_create(
    *,
    organization: Organization,
    reference: Reference,
    scope: str,
    requested_by: AbstractBaseUser,
    opportunity_name: str,
    opportunity_value: Any = None,
    currency: str = "",
    opportunity_stage: str = "",
    crm_opportunity_id: str = "",
    needed_by: Any = None,
    purpose: str = "",
) -> UsageRequest:
    """A salesperson asks to use one scope of a reference for a deal.

    Refused (``ApplicationError``) when the scope is not usable now, the
    person paused all requests, or the fatigue limits say no; a fatigue
    refusal is audit-logged with the date the use becomes possible.
    """
    _assert_current(organization)
    if not selectors.scope_is_usable(organization=organization, reference=reference, scope=scope):
        raise ApplicationError("This use is not available for this reference.", field="scope")
    if reference.advocate is not None and reference.advocate.requests_paused:
        raise ApplicationError("This customer has paused all requests for now.", field="scope")
    verdict = selectors.contact_fatigue(organization=organization, contact=reference.advocate, scope=scope)
    if not verdict.allowed:
        _log_refusal_and_raise(
            organization=organization,
            actor=requested_by,
            reference=reference,
            scope=scope,
            stage="request",
            verdict=verdict,
        )
    with transaction.atomic():
        usage_request = UsageRequest(
            organization=organization,
            reference=reference,
            scope=scope,
            requested_by=requested_by,
            opportunity_name=opportunity_name,
            opportunity_value=opportunity_value,
            currency=currency.upper(),
            opportunity_stage=opportunity_stage,
            crm_opportunity_id=crm_opportunity_id,
            needed_by=needed_by,
            purpose=purpose,
        )
        usage_request.full_clean()
        usage_request.save()
        record(
            organization=organization,
            actor=requested_by,
            action="usage_request.created",
            target=usage_request,
            details={"scope": scope, "reference": reference.pk},
        )
        _notify(organization=organization, usage_request=usage_request, event="created")
    return usage_request


def _log_refusal_and_raise(
    *,
    organization: Organization,
    actor: AbstractBaseUser | None,
    reference: Reference,
    scope: str,
    stage: str,
    verdict: selectors.FatigueVerdict,
) -> None:
    details: dict[str, Any] = {"scope": scope, "stage": stage, "reason": verdict.reason}
    if verdict.available_from is not None:
        details["available_from"] = verdict.available_from.isoformat()
    # Its own transaction: the refusal stays on record although nothing else is written.
    with transaction.atomic():
        _record_refusal(organization=organization, actor=actor, reference=reference, details=details)
    when = ""
    if verdict.available_from is not None:
        day = timezone.localtime(verdict.available_from)
        when = f" It becomes possible on {day.day} {day:%B %Y}."
    raise ApplicationError(verdict.reason + when, field="scope", extra=details)


def usage_request_approve(
    *, organization: Organization, usage_request: UsageRequest, actor: AbstractBaseUser, reason: str = ""
) -> UsageRequest:
    """A reference manager approves: usability and fatigue are checked again, then the use is on the ledger.

    The person's row is locked while checking and writing, so two managers
    approving two requests for the same person at once cannot pass the cap.
    """
    _assert_current(organization)
    refused: selectors.FatigueVerdict | None = None
    with transaction.atomic():
        usage_request = UsageRequest.objects.select_for_update().select_related("reference").get(pk=usage_request.pk)
        reference = usage_request.reference
        if reference.advocate_id is not None:
            reference.advocate = Contact.objects.select_for_update().get(pk=reference.advocate_id)
        if usage_request.status != UsageStatus.PENDING:
            raise ApplicationError("Only a pending request can be approved.")
        if not selectors.scope_is_usable(organization=organization, reference=reference, scope=usage_request.scope):
            raise ApplicationError("This use is no longer available for this reference.")
        verdict = selectors.contact_fatigue(
            organization=organization,
            contact=reference.advocate,
            scope=usage_request.scope,
            exclude_request_id=usage_request.pk,
        )
        if verdict.allowed:
            now = timezone.now()
            UsageRequest.objects.filter(pk=usage_request.pk).update(
                status=UsageStatus.APPROVED, decided_by=actor, decided_at=now, decision_reason=reason, updated_at=now
            )
            usage_request.refresh_from_db()
            _ledger(organization=organization, usage_request=usage_request, kind=UsageEventKind.APPROVED, actor=actor)
            record(
                organization=organization,
                actor=actor,
                action="usage_request.approved",
                target=usage_request,
                details={"reason": reason},
            )
            _notify(organization=organization, usage_request=usage_request, event="approved")
        else:
            refused = verdict
    if refused is not None:
        _log_refusal_and_raise(
            organization=organization,
            actor=actor,
            reference=reference,
            scope=usage_request.scope,
            stage="approval",
            verdict=refused,
        )
    return usage_request


@transaction.atomic
def usage_request_decline(
    *, organization: Organization, usage_request: UsageRequest, actor: AbstractBaseUser, reason: str
) -> UsageRequest:
    _assert_current(organization)
    if not reason.strip():
        raise ApplicationError("Say why the request is declined; the salesperson will read it.", field="reason")
    updated = UsageRequest.objects.filter(pk=usage_request.pk, status=UsageStatus.PENDING).update(
        status=UsageStatus.DECLINED,
        decided_by=actor,
        decided_at=timezone.now(),
        decision_reason=reason.strip(),
        updated_at=timezone.now(),
    )
    if updated != 1:
        raise ApplicationError("Only a pending request can be declined.")
    usage_request.refresh_from_db()
    record(
        organization=organization,
        actor=actor,
        action="usage_request.declined",
        target=usage_request,
        details={"reason": reason.strip()},
    )
    _notify(organization=organization, usage_request=usage_request, event="declined")
    return usage_request


@transaction.atomic
def usage_request_complete(
    *,
    organization: Organization,
    usage_request: UsageRequest,
    actor: AbstractBaseUser,
    outcome: str,
    notes: str = "",
) -> UsageRequest:
    """The salesperson records how the use went and the deal's outcome."""
    _assert_current(organization)
    if outcome not in Outcome.values:
        raise ApplicationError("Choose won, lost or still open.", field="outcome")
    updated = UsageRequest.objects.filter(pk=usage_request.pk, status=UsageStatus.APPROVED).update(
        status=UsageStatus.COMPLETED,
        outcome=outcome,
        outcome_notes=notes,
        completed_at=timezone.now(),
        updated_at=timezone.now(),
    )
    if updated != 1:
        raise ApplicationError("Only an approved request can be completed.")
    usage_request.refresh_from_db()
    _ledger(organization=organization, usage_request=usage_request, kind=UsageEventKind.COMPLETED, actor=actor)
    record(
        organization=organization,
        actor=actor,
        action="usage_request.completed",
        target=usage_request,
        details={"outcome": outcome},
    )
    return usage_request


@transaction.atomic
def usage_request_cancel(
    *, organization: Organization, usage_request: UsageRequest, actor: AbstractBaseUser | None, reason: str
) -> UsageRequest:
    """Cancel a pending or approved request (by its salesperson, or because consent was withdrawn)."""
    _assert_current(organization)
    updated = UsageRequest.objects.filter(
        pk=usage_request.pk, status__in=(UsageStatus.PENDING, UsageStatus.APPROVED)
    ).update(status=UsageStatus.CANCELLED, decision_reason=reason, updated_at=timezone.now())
    if updated != 1:
        raise ApplicationError("Only a pending or approved request can be cancelled.")
    usage_request.refresh_from_db()
    record(
        organization=organization,
        actor=actor,
        action="usage_request.cancelled",
        target=usage_request,
        details={"reason": reason},
    )
    _notify(organization=organization, usage_request=usage_request, event="cancelled")
    return usage_request


def _ledger(*, organization: Organization, usage_request: UsageRequest, kind: str, actor: AbstractBaseUser) -> None:
    reference = usage_request.reference
    UsageEvent.objects.create(
        organization=organization,
        reference=reference,
        contact_id=reference.advocate_id,
        usage_request=usage_request,
        kind=kind,
        scope=usage_request.scope,
        actor=actor,
        salesperson_label=usage_request.requested_by.get_username(),
        opportunity_name=usage_request.opportunity_name,
        crm_opportunity_id=usage_request.crm_opportunity_id,
        outcome=usage_request.outcome,
    )


def _notify(*, organization: Organization, usage_request: UsageRequest, event: str) -> None:
    """Email the other side about a request, by a Celery task after commit."""
    from .tasks import usage_request_notify as usage_request_notify_task

    request_id = usage_request.pk
    transaction.on_commit(
        lambda: usage_request_notify_task.delay(
            organization_id=organization.pk, usage_request_id=request_id, event=event
        ),
        robust=True,
    )
