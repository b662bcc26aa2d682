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
from refmgr.tenancy.context import assert_current_organization as _assert_current
from refmgr.tenancy.models import Organization

from . import selectors
from .models import (
    Contact,
    HoldKind,
    Outcome,
    Publication,
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


def reference_scope_grants_lapse(*, organization: Organization, now: datetime | None = None) -> int:
    """Drop every grant whose time has passed, in one statement (the nightly expiry sweep's verdict).

    Usability already ignores a grant past its date; this keeps the table to
    what is current, so the catalogue's filter stays small.
    """
    _assert_current(organization)
    now = now or timezone.now()
    with transaction.atomic():
        deleted, _ = ReferenceScopeGrant.objects.filter(granted_until__lte=now).delete()
        if deleted:
            record(
                organization=organization,
                actor=None,
                action="reference.scope_grants_lapsed",
                details={"count": deleted, "at": now.isoformat()},
            )
    return deleted


@transaction.atomic
def reference_publication_set(
    *, organization: Organization, reference: Reference, publication: str, source: str
) -> bool:
    """Apply the customer's choice of attributed, anonymised or internal-only use. Returns whether it changed."""
    _assert_current(organization)
    if publication not in Publication.values:
        raise ApplicationError("Choose how the reference may be published.", field="publication")
    updated = (
        Reference.objects.filter(pk=reference.pk)
        .exclude(publication=publication)
        .update(publication=publication, updated_at=timezone.now())
    )
    if updated:
        record(
            organization=organization,
            actor=None,
            action="reference.publication_set",
            target=reference,
            details={"publication": publication, "source": source},
        )
    return bool(updated)


@transaction.atomic
def contact_requests_pause(*, organization: Organization, contact: Contact, paused: bool, source: str) -> bool:
    """The person's own switch: no usage or consent requests while paused. Returns whether it changed."""
    _assert_current(organization)
    updated = (
        Contact.objects.filter(pk=contact.pk)
        .exclude(requests_paused=paused)
        .update(requests_paused=paused, updated_at=timezone.now())
    )
    if updated:
        contact.requests_paused = paused
        record(
            organization=organization,
            actor=None,
            action="contact.requests_paused" if paused else "contact.requests_resumed",
            target=contact,
            details={"source": source},
        )
    return bool(updated)


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
    # The salesperson withdrawing their own request tells the managers; anyone
    # else cancelling it (a manager, a revoked consent) tells the salesperson.
    withdrawn = actor is not None and actor.pk == usage_request.requested_by_id
    _notify(organization=organization, usage_request=usage_request, event="withdrawn" if withdrawn else "cancelled")
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


# --- Manager writes: accounts, contacts, references, assets, settings ------------------------
# Appended for the manager pages and the CSV import (issue 3, points 1, 5, 8 and 10).

from .models import (  # noqa: E402  (appended section: its own imports keep the diff additive)
    Account,
    AssetKind,
    LabelKind,
    ReferenceAsset,
    ReferenceLabel,
    ReferenceSettings,
)

LOGO_MAX_BYTES = 2 * 1024 * 1024
CASE_STUDY_MAX_BYTES = 20 * 1024 * 1024
LABEL_MAX_LENGTH = 100
LABELS_MAX_PER_KIND = 30

# Extension → a check of the first bytes. The extension alone is the client's word;
# the bytes are what a browser or office suite will actually open. SVG is refused
# on purpose: it is XML that can carry script.
_LOGO_TYPES = {
    ".png": lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"),
    ".jpg": lambda head: head.startswith(b"\xff\xd8\xff"),
    ".jpeg": lambda head: head.startswith(b"\xff\xd8\xff"),
    ".webp": lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP",
}
_CASE_STUDY_TYPES = {
    ".pdf": lambda head: head.startswith(b"%PDF-"),
    ".docx": lambda head: head.startswith(b"PK\x03\x04"),
}


def _account_fields(data: dict[str, Any]) -> dict[str, Any]:
    allowed = ("name", "industry", "region", "size_band", "website", "crm_id")
    return {name: (data.get(name) or "").strip() for name in allowed if name in data}


def _full_clean(
    instance: Any, exclude: list[str] | None = None, validate_constraints: bool = True, validate_unique: bool = True
) -> None:
    """``full_clean()`` with Django's ValidationError turned into the first ApplicationError per field."""
    from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

    try:
        instance.full_clean(exclude=exclude, validate_unique=validate_unique, validate_constraints=validate_constraints)
    except ValidationError as error:
        field, messages = next(iter(error.message_dict.items()))
        raise ApplicationError(
            " ".join(messages), field=None if field == NON_FIELD_ERRORS else field, extra=error.message_dict
        ) from None


def _unique_message(field: str, label: str) -> ApplicationError:
    return ApplicationError(f"Another {label} already has this {field.replace('_', ' ')}.", field=field)


@transaction.atomic
def account_create(*, organization: Organization, actor: AbstractBaseUser | None, **fields: Any) -> Account:
    """Add a customer company. Names and CRM ids are unique within the organization."""
    _assert_current(organization)
    account = Account(organization=organization, **_account_fields(fields))
    _account_check_unique(account)
    _full_clean(account)
    account.save()
    record(organization=organization, actor=actor, action="account.created", target=account, details={})
    return account


@transaction.atomic
def account_update(
    *, organization: Organization, account: Account, actor: AbstractBaseUser | None, **fields: Any
) -> Account:
    """Change an account's details; the audit event lists the fields that changed."""
    _assert_current(organization)
    account = Account.objects.select_for_update().get(pk=account.pk)
    changed = _assign(account, _account_fields(fields))
    if not changed:
        return account
    _account_check_unique(account)
    _full_clean(account)
    account.save()
    record(organization=organization, actor=actor, action="account.updated", target=account, details=changed)
    return account


def _account_check_unique(account: Account) -> None:
    # Checked here, before the database constraint, so the message names the field.
    others = Account.objects.exclude(pk=account.pk)
    if others.filter(name__iexact=account.name).exists():
        raise _unique_message("name", "account")
    if account.crm_id and others.filter(crm_id=account.crm_id).exists():
        raise _unique_message("crm_id", "account")


def _assign(instance: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Set ``values`` on ``instance``; returns {field: [old, new]} for the ones that changed."""
    changed: dict[str, Any] = {}
    for name, value in values.items():
        old = getattr(instance, name)
        if old != value:
            changed[name] = [_audit_value(old), _audit_value(value)]
            setattr(instance, name, value)
    return changed


def _audit_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    return getattr(value, "pk", str(value))


_CONTACT_TEXT_FIELDS = ("name", "title", "email", "phone")
_CONTACT_OTHER_FIELDS = ("account", "is_authorised_signatory", "usage_cap", "cooldown_days")


def _contact_fields(data: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {name: (data.get(name) or "").strip() for name in _CONTACT_TEXT_FIELDS if name in data}
    if "email" in values:
        values["email"] = values["email"].lower()
    values.update({name: data[name] for name in _CONTACT_OTHER_FIELDS if name in data})
    if "is_authorised_signatory" in values:
        values["is_authorised_signatory"] = bool(values["is_authorised_signatory"])
    return values


def _check_same_organization(organization: Organization, obj: Any, field: str) -> None:
    # Forms and the import look objects up through the scoped managers; this is
    # the last line, so a caller passing a stray object cannot link two organizations.
    if obj is not None and obj.organization_id != organization.pk:
        raise ApplicationError("Choose one of the listed options.", field=field)


@transaction.atomic
def contact_create(*, organization: Organization, actor: AbstractBaseUser | None, **fields: Any) -> Contact:
    """Add a person at an account. Emails are unique within the organization."""
    _assert_current(organization)
    values = _contact_fields(fields)
    _check_same_organization(organization, values.get("account"), "account")
    contact = Contact(organization=organization, **values)
    _contact_check_unique(contact)
    _full_clean(contact)
    contact.save()
    record(
        organization=organization,
        actor=actor,
        action="contact.created",
        target=contact,
        details={"account": contact.account_id},
    )
    return contact


@transaction.atomic
def contact_update(
    *, organization: Organization, contact: Contact, actor: AbstractBaseUser | None, **fields: Any
) -> Contact:
    """Change a contact. Personal data is not copied into the audit log, only which fields changed."""
    _assert_current(organization)
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    values = _contact_fields(fields)
    _check_same_organization(organization, values.get("account"), "account")
    if "account" in values and values["account"].pk != contact.account_id and contact.references.exists():
        # The person speaks for references of their account; moving them would
        # make those references name an advocate from another company.
        raise ApplicationError(
            "This person is the advocate of references of their current account; change those first.",
            field="account",
        )
    changed = _assign(contact, values)
    if not changed:
        return contact
    _contact_check_unique(contact)
    _full_clean(contact)
    contact.save()
    record(
        organization=organization,
        actor=actor,
        action="contact.updated",
        target=contact,
        details={"fields": sorted(changed)},
    )
    return contact


def _contact_check_unique(contact: Contact) -> None:
    if Contact.objects.exclude(pk=contact.pk).filter(email__iexact=contact.email).exists():
        raise _unique_message("email", "contact")


def labels_parse(raw: str | list[str] | None, *, field: str, separators: str = ",;") -> list[str]:
    """Split a comma- (or semicolon-) separated input into clean labels: trimmed, de-duplicated
    case-insensitively, first spelling kept, in the order given."""
    if raw is None:
        return []
    parts = raw if isinstance(raw, list) else [raw]
    for separator in separators:
        parts = [piece for part in parts for piece in part.split(separator)]
    labels: list[str] = []
    seen: set[str] = set()
    for part in parts:
        label = " ".join(part.split())
        if not label or label.casefold() in seen:
            continue
        if len(label) > LABEL_MAX_LENGTH:
            raise ApplicationError(f"“{label[:30]}…” is longer than {LABEL_MAX_LENGTH} characters.", field=field)
        seen.add(label.casefold())
        labels.append(label)
    if len(labels) > LABELS_MAX_PER_KIND:
        raise ApplicationError(f"At most {LABELS_MAX_PER_KIND} entries.", field=field)
    return labels


_LABEL_FIELDS = {"products": LabelKind.PRODUCT, "use_cases": LabelKind.USE_CASE, "tags": LabelKind.TAG}
_REFERENCE_FIELDS = ("account", "advocate", "title", "summary", "publication", "owner")


def _reference_labels_set(*, reference: Reference, kind: str, values: list[str]) -> bool:
    """Make the reference's labels of ``kind`` exactly ``values``; returns whether anything changed."""
    current = {label.value: label.pk for label in ReferenceLabel.objects.filter(reference=reference, kind=kind)}
    wanted = set(values)
    stale = [pk for value, pk in current.items() if value not in wanted]
    new = [value for value in values if value not in current]
    if stale:
        ReferenceLabel.objects.filter(pk__in=stale).delete()
    ReferenceLabel.objects.bulk_create(
        [ReferenceLabel(organization=reference.organization, reference=reference, kind=kind, value=v) for v in new]
    )
    return bool(stale or new)


def _reference_check(organization: Organization, reference: Reference) -> None:
    _check_same_organization(organization, reference.account, "account")
    _check_same_organization(organization, reference.advocate, "advocate")
    if reference.advocate is not None and reference.advocate.account_id != reference.account_id:
        raise ApplicationError("The advocate must be a contact of this reference's account.", field="advocate")


@transaction.atomic
def reference_create(*, organization: Organization, actor: AbstractBaseUser | None, **fields: Any) -> Reference:
    """Add a reference of an account, with its products, use cases and tags.

    The advocate must be a contact of the same account. A new reference has
    no usable scope until the customer grants one (consent).
    """
    _assert_current(organization)
    values = {name: fields[name] for name in _REFERENCE_FIELDS if name in fields}
    for name in ("title", "summary"):
        if name in values:
            values[name] = (values[name] or "").strip()
    labels = {kind: labels_parse(fields.get(name), field=name) for name, kind in _LABEL_FIELDS.items()}
    reference = Reference(organization=organization, **values)
    _reference_check(organization, reference)
    _full_clean(reference)
    reference.save()
    for kind, values_of_kind in labels.items():
        _reference_labels_set(reference=reference, kind=kind, values=values_of_kind)
    record(
        organization=organization,
        actor=actor,
        action="reference.created",
        target=reference,
        details={"account": reference.account_id, **{k: v for k, v in labels.items() if v}},
    )
    return reference


@transaction.atomic
def reference_update(
    *, organization: Organization, reference: Reference, actor: AbstractBaseUser | None, **fields: Any
) -> Reference:
    """Change a reference; label inputs that are passed replace that kind of label completely."""
    _assert_current(organization)
    reference = Reference.objects.select_for_update().get(pk=reference.pk)
    values = {name: fields[name] for name in _REFERENCE_FIELDS if name in fields}
    for name in ("title", "summary"):
        if name in values:
            values[name] = (values[name] or "").strip()
    labels = {kind: labels_parse(fields[name], field=name) for name, kind in _LABEL_FIELDS.items() if name in fields}
    changed = _assign(reference, values)
    _reference_check(organization, reference)
    if changed:
        _full_clean(reference)
        reference.save()
    for kind, values_of_kind in labels.items():
        if _reference_labels_set(reference=reference, kind=kind, values=values_of_kind):
            changed[kind] = values_of_kind
    if changed:
        record(organization=organization, actor=actor, action="reference.updated", target=reference, details=changed)
    if "publication" in changed:
        from .signals import reference_publication_changed

        reference_publication_changed.send(
            sender=Reference, organization=organization, reference=reference, actor=actor
        )
    if {"advocate", "account"} & set(changed):
        from .signals import reference_parties_changed

        # Consent was given by the previous advocate or for the previous company: it no longer speaks for this one.
        reference_parties_changed.send(
            sender=Reference,
            organization=organization,
            reference=reference,
            advocate_changed="advocate" in changed or "account" in changed,
            account_changed="account" in changed,
            actor=actor,
        )
    return reference


def asset_file_check(*, kind: str, upload: Any) -> None:
    """Refuse an upload that is not what it claims to be, or too large, with a message to show.

    Logos: PNG, JPEG or WebP up to 2 MB. Case studies: PDF or Word (.docx) up
    to 20 MB. Both the extension and the first bytes must agree.
    """
    from pathlib import PurePath

    if kind == AssetKind.LOGO:
        types, limit, allowed = _LOGO_TYPES, LOGO_MAX_BYTES, "PNG, JPEG or WebP"
    elif kind == AssetKind.CASE_STUDY:
        types, limit, allowed = _CASE_STUDY_TYPES, CASE_STUDY_MAX_BYTES, "PDF or Word (.docx)"
    else:
        raise ApplicationError("Only logos and case studies take a file; use the text or link instead.", field="file")
    suffix = PurePath(upload.name or "").suffix.lower()
    check = types.get(suffix)
    if check is None:
        raise ApplicationError(f"Upload a {allowed} file.", field="file")
    if upload.size > limit:
        raise ApplicationError(
            f"The file is {upload.size / 1048576:.1f} MB; the limit is {limit // 1048576} MB.", field="file"
        )
    upload.seek(0)
    head = upload.read(16)
    valid = check(head)
    if valid and suffix == ".docx":
        valid = _is_docx(upload)
    upload.seek(0)
    if not valid:
        raise ApplicationError(
            f"The file's contents are not a {suffix[1:].upper()} file. Upload a {allowed} file.", field="file"
        )


def _is_docx(upload: Any) -> bool:
    # A .docx is a zip with word/document.xml; reading the directory only, never extracting.
    import zipfile

    upload.seek(0)
    try:
        with zipfile.ZipFile(upload) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _asset_check(asset: ReferenceAsset) -> None:
    required = {
        AssetKind.QUOTE: (bool(asset.text.strip()), "text", "A quote needs the customer's exact words."),
        AssetKind.CASE_STUDY: (bool(asset.file or asset.url), "file", "Upload the case study or give a link to it."),
        AssetKind.LOGO: (bool(asset.file), "file", "Upload the logo file."),
        AssetKind.VIDEO: (bool(asset.url), "url", "Give the link to the video."),
    }
    ok, field, message = required[AssetKind(asset.kind)]
    if not ok:
        raise ApplicationError(message, field=field)
    if asset.kind in (AssetKind.QUOTE, AssetKind.VIDEO) and asset.file:
        raise ApplicationError("Only logos and case studies take a file.", field="file")


# Changing these on an asset changes what the customer agreed to: the consent
# for that scope is void until they approve the new version (DESIGN.md "Authentic references").
_ASSET_SCOPES = {AssetKind.QUOTE: Scope.QUOTE, AssetKind.CASE_STUDY: Scope.CASE_STUDY, AssetKind.LOGO: Scope.LOGO}


@transaction.atomic
def reference_asset_create(
    *,
    organization: Organization,
    reference: Reference,
    actor: AbstractBaseUser | None,
    kind: str,
    title: str = "",
    text: str = "",
    file: Any = None,
    url: str = "",
) -> ReferenceAsset:
    """Add a quote, case study, logo or video link to a reference; uploads are type- and size-checked."""
    _assert_current(organization)
    _check_same_organization(organization, reference, "reference")
    if kind not in AssetKind.values:
        raise ApplicationError("Choose a kind of material.", field="kind")
    if file:
        asset_file_check(kind=kind, upload=file)
    asset = ReferenceAsset(
        organization=organization, reference=reference, kind=kind, title=title.strip(), text=text, url=url.strip()
    )
    if file:
        asset.file = file
    _asset_check(asset)
    _full_clean(asset)
    asset.save()
    record(
        organization=organization,
        actor=actor,
        action="reference_asset.created",
        target=asset,
        details={"reference": reference.pk, "kind": kind, "text_hash": asset.text_hash if text else ""},
    )
    _material_changed(organization=organization, reference=reference, kind=kind, actor=actor)
    return asset


@transaction.atomic
def reference_asset_update(
    *,
    organization: Organization,
    asset: ReferenceAsset,
    actor: AbstractBaseUser | None,
    title: str | None = None,
    text: str | None = None,
    file: Any = None,
    url: str | None = None,
) -> ReferenceAsset:
    """Change an asset. New wording or a new file voids the customer's consent to that scope."""
    _assert_current(organization)
    asset = ReferenceAsset.objects.select_for_update().select_related("reference").get(pk=asset.pk)
    old_file = asset.file.name if asset.file else ""
    values: dict[str, Any] = {}
    if title is not None:
        values["title"] = title.strip()
    if text is not None:
        values["text"] = text
    if url is not None:
        values["url"] = url.strip()
    changed = _assign(asset, values)
    if "text" in changed:
        changed["text"] = {"text_hash": asset.text_hash}
    if file:
        asset_file_check(kind=asset.kind, upload=file)
        asset.file = file
        changed["file"] = "replaced"
    if not changed:
        return asset
    _asset_check(asset)
    _full_clean(asset)
    asset.save()
    if file:
        _asset_file_delete_on_commit(old_file)
    record(organization=organization, actor=actor, action="reference_asset.updated", target=asset, details=changed)
    scope = _ASSET_SCOPES.get(AssetKind(asset.kind))
    if scope is not None and ({"text", "file"} & set(changed) or (scope == Scope.CASE_STUDY and "url" in changed)):
        # Listeners first: consent takes its request rows and ledger lock before it touches
        # this scope's grant row, and so must we, or an edit and a revocation could deadlock.
        _material_changed(organization=organization, reference=asset.reference, kind=asset.kind, actor=actor)
        reference_scope_withdraw(
            organization=organization, reference=asset.reference, scope=scope, source=f"asset:{asset.pk}:changed"
        )
    return asset


@transaction.atomic
def reference_asset_delete(
    *, organization: Organization, asset: ReferenceAsset, actor: AbstractBaseUser | None
) -> None:
    """Remove an asset; its file goes once the deletion has committed."""
    _assert_current(organization)
    asset = ReferenceAsset.objects.select_for_update().select_related("reference").get(pk=asset.pk)
    file_name = asset.file.name if asset.file else ""
    record(
        organization=organization,
        actor=actor,
        action="reference_asset.deleted",
        target=asset.reference,
        details={"asset": asset.pk, "kind": asset.kind, "title": asset.title},
    )
    reference, kind = asset.reference, asset.kind
    asset.delete()
    _asset_file_delete_on_commit(file_name)
    _material_changed(organization=organization, reference=reference, kind=kind, actor=actor)


def _material_changed(
    *, organization: Organization, reference: Reference, kind: str, actor: AbstractBaseUser | None
) -> None:
    """Tell listeners (consent) that what a customer approved for a scope is no longer what we hold."""
    from .signals import reference_material_changed

    scope = _ASSET_SCOPES.get(AssetKind(kind))
    if scope is not None:
        reference_material_changed.send(
            sender=Reference, organization=organization, reference=reference, scope=str(scope), actor=actor
        )


def _asset_file_delete_on_commit(name: str) -> None:
    if name:
        from django.core.files.storage import default_storage

        transaction.on_commit(lambda: default_storage.delete(name), robust=True)


@transaction.atomic
def reference_settings_update(
    *,
    organization: Organization,
    actor: AbstractBaseUser | None,
    usage_cap: int,
    usage_window_days: int,
    cooldown_days: int,
) -> ReferenceSettings:
    """Set the organization's usage limits (admins); the audit event keeps the old and new values."""
    _assert_current(organization)
    current = ReferenceSettings.objects.select_for_update().first()
    if current is None:
        current = ReferenceSettings(organization=organization)
    if cooldown_days > usage_window_days:
        raise ApplicationError("The rest after each use cannot be longer than the window.", field="cooldown_days")
    changed = _assign(
        current, {"usage_cap": usage_cap, "usage_window_days": usage_window_days, "cooldown_days": cooldown_days}
    )
    _full_clean(current)
    if changed or current.pk is None:
        current.save()
    if changed:
        record(
            organization=organization, actor=actor, action="reference_settings.updated", target=current, details=changed
        )
    return current


# --- Restricted references (django-guardian, on top of organization scoping) ---------------
# Appended for restricted references (issue 3 point 7); its own imports keep the diff additive.
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402

from refmgr.tenancy.models import Membership  # noqa: E402

from .models import ReferenceGroupObjectPermission, ReferenceUserObjectPermission  # noqa: E402


def _restriction_targets(
    organization: Organization, users: Any, groups: Any
) -> tuple[list[AbstractBaseUser], list[Group]]:
    users, groups = list(users or ()), list(groups or ())
    member_ids = set(
        Membership.objects.filter(user__in=[u.pk for u in users], is_active=True).values_list("user_id", flat=True)
    )
    strangers = [u.get_username() for u in users if u.pk not in member_ids]
    if strangers:
        raise ApplicationError("Only active members of the organization can be named.", field="users")
    # Groups are not tenant-owned (django.contrib.auth): accept only groups that
    # have an active member here, so a name from another organization cannot be used.
    group_ids = set(
        Group.objects.filter(
            pk__in=[g.pk for g in groups],
            user__memberships__organization=organization,
            user__memberships__is_active=True,
        ).values_list("pk", flat=True)
    )
    if any(g.pk not in group_ids for g in groups):
        raise ApplicationError("Only groups with members in this organization can be named.", field="groups")
    return users, groups


@transaction.atomic
def reference_restrict(
    *, organization: Organization, reference: Reference, users: Any, groups: Any, actor: AbstractBaseUser | None
) -> Reference:
    """Limit a reference to exactly these users and groups (replacing any earlier list).

    Admins and reference managers keep seeing it; everyone else needs a
    guardian object permission, given here directly or through a group.
    """
    from guardian.shortcuts import assign_perm, remove_perm

    from .restrictions import PERMISSION_CODENAME

    _assert_current(organization)
    _check_same_organization(organization, reference, "reference")
    users, groups = _restriction_targets(organization, users, groups)
    if not users and not groups:
        raise ApplicationError("Name at least one person or group, or lift the restriction.", field="users")
    reference = Reference.objects.select_for_update().get(pk=reference.pk)
    current_users = set(
        ReferenceUserObjectPermission.objects.filter(content_object=reference).values_list("user_id", flat=True)
    )
    current_groups = set(
        ReferenceGroupObjectPermission.objects.filter(content_object=reference).values_list("group_id", flat=True)
    )
    for user in users:
        if user.pk not in current_users:
            assign_perm(PERMISSION_CODENAME, user, reference)
    for group in groups:
        if group.pk not in current_groups:
            assign_perm(PERMISSION_CODENAME, group, reference)
    for user_id in current_users - {u.pk for u in users}:
        remove_perm(PERMISSION_CODENAME, get_user_model()(pk=user_id), reference)
    for group_id in current_groups - {g.pk for g in groups}:
        remove_perm(PERMISSION_CODENAME, Group(pk=group_id), reference)
    if not reference.restricted:
        reference.restricted = True
        reference.save(update_fields=["restricted", "updated_at"])
    record(
        organization=organization,
        actor=actor,
        action="reference.restricted",
        target=reference,
        details={"users": sorted(u.get_username() for u in users), "groups": sorted(g.name for g in groups)},
    )
    return reference


@transaction.atomic
def reference_unrestrict(
    *, organization: Organization, reference: Reference, actor: AbstractBaseUser | None
) -> Reference:
    """Make a restricted reference visible to every member again; its permission rows go."""
    _assert_current(organization)
    _check_same_organization(organization, reference, "reference")
    reference = Reference.objects.select_for_update().get(pk=reference.pk)
    ReferenceUserObjectPermission.objects.filter(content_object=reference).delete()
    ReferenceGroupObjectPermission.objects.filter(content_object=reference).delete()
    if reference.restricted:
        reference.restricted = False
        reference.save(update_fields=["restricted", "updated_at"])
        record(organization=organization, actor=actor, action="reference.unrestricted", target=reference)
    return reference


# --- Compliance review settings (issue 5) ------------------------------------------------------
# Appended: the look-back window around an incentive and the words that suggest one.


# The longest incentive word or phrase: "text:usage_request:<id>:<word>" must fit a hold's 100-character source.
INCENTIVE_WORD_MAX = 60


@transaction.atomic
def reference_review_settings_update(
    *,
    organization: Organization,
    actor: AbstractBaseUser | None,
    incentive_window_days: int,
    incentive_words: str,
) -> ReferenceSettings:
    """Set the incentive look-back window and word list (admins); audited with old and new values."""
    _assert_current(organization)
    current = ReferenceSettings.objects.select_for_update().first()
    if current is None:
        current = ReferenceSettings(organization=organization)
    words = "\n".join(line.strip() for line in incentive_words.splitlines() if line.strip())
    too_long = [word for word in words.splitlines() if len(word) > INCENTIVE_WORD_MAX]
    if too_long:
        # A text flag's key names the word, and its hold's source (100 characters) copies the key.
        raise ApplicationError(
            f"Each word or phrase may have at most {INCENTIVE_WORD_MAX} characters; "
            f"“{too_long[0][:30]}…” has {len(too_long[0])}.",
            field="incentive_words",
        )
    changed = _assign(current, {"incentive_window_days": incentive_window_days, "incentive_words": words})
    _full_clean(current)
    if changed or current.pk is None:
        current.save()
    if changed:
        record(
            organization=organization, actor=actor, action="reference_settings.updated", target=current, details=changed
        )
    return current
