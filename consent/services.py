"""Writes of the consent app: every state change goes through a function here.

Each runs in a transaction, appends to the consent ledger, keeps the
materialised ``ConsentState`` in step through ``ledger.state_apply`` (the
same rule the rebuild uses), tells the references app whether a scope may be
used, and records its audit event. Emails go through the ``ConsentMessage``
outbox in the same transaction, so a commit never loses one.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from dateutil.relativedelta import relativedelta
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from privacy.selectors import privacy_policy_current
from references import selectors as reference_selectors
from references import services as reference_services
from references.models import (
    Contact,
    Publication,
    Reference,
    ReferenceStatus,
    Scope,
    UsageRequest,
    UsageStatus,
)
from refmgr.audit.services import record
from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.context import assert_current_organization
from refmgr.tenancy.models import Membership, Organization, Role

from . import ledger, sweeps
from .evidence import Evidence
from .models import (
    PUBLISHED_SCOPES,
    ConsentEvent,
    ConsentEventKind,
    ConsentLedgerHead,
    ConsentLink,
    ConsentMessage,
    ConsentRequest,
    ConsentRequestKind,
    ConsentRequestStatus,
    ConsentSettings,
    ConsentState,
    ConsentStatus,
    Mechanism,
    MessageKind,
    Party,
    TakedownStatus,
    TakedownTask,
    required_parties,
)
from .selectors import TOKEN_SEPARATOR, consent_settings_get, notice_fingerprint, revocable_by_filter, token_hash

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.core.files.uploadedfile import UploadedFile

NO_EVIDENCE = Evidence()
PROOF_MAX_BYTES = 10 * 1024 * 1024
PROOF_TYPES = {
    ".pdf": lambda head: head.startswith(b"%PDF-"),
    ".png": lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"),
    ".jpg": lambda head: head.startswith(b"\xff\xd8\xff"),
    ".jpeg": lambda head: head.startswith(b"\xff\xd8\xff"),
    ".eml": lambda head: bool(head.strip()) and b"\x00" not in head,
    ".txt": lambda head: b"\x00" not in head,
}


def _source(reference: Reference, scope: str) -> str:
    return f"consent:{reference.pk}:{scope}"


# --- Links ----------------------------------------------------------------------------


def consent_link_issue(
    *, organization: Organization, contact: Contact, consent_request: ConsentRequest | None = None
) -> tuple[ConsentLink, str]:
    """A new emailed link for ``contact``; returns it and its token, which is never stored.

    The token is the organization id and 32 random bytes; only its SHA-256 is kept.
    """
    assert_current_organization(organization)
    token = f"{organization.pk}{TOKEN_SEPARATOR}{secrets.token_urlsafe(32)}"
    days = consent_settings_get(organization=organization).link_valid_days
    expires_at = timezone.now() + timedelta(days=days)
    if consent_request is not None and consent_request.expires_at is not None:
        expires_at = max(expires_at, consent_request.expires_at)
    # Withdrawing must stay as easy as consenting: a link opens the manage page for as
    # long as any consent it can withdraw lasts, not only for the link period.
    longest = (
        ConsentState.objects.filter(contact=contact, status=ConsentStatus.GRANTED)
        .aggregate(until=Max("valid_until"))
        .get("until")
    )
    if longest is not None:
        expires_at = max(expires_at, longest)
    link = ConsentLink.objects.create(
        organization=organization,
        token_hash=token_hash(token),
        contact=contact,
        consent_request=consent_request,
        expires_at=expires_at,
    )
    return link, token


# --- Outbox ---------------------------------------------------------------------------


def _enqueue_on_commit(organization: Organization, message_ids: list[int]) -> None:
    if not message_ids:
        return
    from .tasks import consent_message_send

    def enqueue() -> None:
        for message_id in message_ids:
            try:
                consent_message_send.delay(organization_id=organization.pk, message_id=message_id)
            except Exception:
                return

    transaction.on_commit(enqueue, robust=True)


def _message(organization: Organization, kind: str, **fields: Any) -> ConsentMessage:
    message = ConsentMessage.objects.create(organization=organization, kind=kind, **fields)
    _enqueue_on_commit(organization, [message.pk])
    return message


# --- Helpers shared by the writes ------------------------------------------------------


def _event(kind: str, **fields: Any) -> ConsentEvent:
    return ConsentEvent(kind=kind, **fields)


def _apply_to_states(organization: Organization, events: Iterable[ConsentEvent]) -> set[tuple[int, str]]:
    """Move the materialised states by the events just appended; returns the (reference, scope) touched.

    A fixed number of statements per batch: one locked read of every state the
    events speak about, one insert of the new ones, one update of the changed.
    """
    relevant = [e for e in events if e.kind in ledger.STATE_KINDS and e.reference_id is not None]
    if not relevant:
        return set()
    keys = {(e.reference_id, e.scope, e.party) for e in relevant}
    wanted = Q()
    for reference_id, scope, party in sorted(keys):  # type: ignore[type-var]
        wanted |= Q(reference_id=reference_id, scope=scope, party=party)
    # Locked in id order, as before, after the ledger head (the lock order of docs/consent.md).
    found = {
        (s.reference_id, s.scope, s.party): s
        for s in ConsentState.objects.select_for_update().filter(wanted).order_by("id")
    }
    values: dict[tuple[Any, str, str], ledger.StateValues] = {
        key: ledger.StateValues.of(state) for key, state in found.items()
    }
    changed: list[tuple[Any, str, str]] = []
    for event in relevant:  # in ledger order: two events on one state apply one after the other
        key = (event.reference_id, event.scope, event.party)
        result = ledger.state_apply(values.get(key), event)
        if result is None:
            continue
        values[key] = result
        if key not in changed:
            changed.append(key)
    now = timezone.now()
    created: list[ConsentState] = []
    updated: list[ConsentState] = []
    for key in changed:
        fields = {name: getattr(values[key], name) for name in ledger.STATE_FIELDS}
        state = found.get(key)
        if state is None:
            reference_id, scope, party = key
            created.append(
                ConsentState(organization=organization, reference_id=reference_id, scope=scope, party=party, **fields)
            )
        else:
            for name, value in fields.items():
                setattr(state, name, value)
            state.updated_at = now  # bulk_update skips auto_now
            updated.append(state)
    if created:
        ConsentState.objects.bulk_create(created)
    if updated:
        ConsentState.objects.bulk_update(updated, [*ledger.STATE_FIELDS, "updated_at"])
    return {(reference_id, scope) for reference_id, scope, _party in changed}


def _sync_usability(organization: Organization, touched: Iterable[tuple[int, str]], now: datetime) -> None:
    """Tell references whether each touched scope may be used: only while every grant it needs is current."""
    touched = sorted(touched)
    if not touched:
        return
    reference_ids = {reference_id for reference_id, _scope in touched}
    # One read of the states and one of the references for the whole batch, not one of each per scope.
    states_of: dict[tuple[int, str], list[ConsentState]] = {}
    for state in ConsentState.objects.filter(
        reference_id__in=reference_ids, scope__in={scope for _reference_id, scope in touched}
    ):
        states_of.setdefault((state.reference_id, state.scope), []).append(state)
    references = Reference.objects.in_bulk(reference_ids)
    for reference_id, scope in touched:
        needed = required_parties(scope)
        states = [s for s in states_of.get((reference_id, scope), []) if s.party in needed]
        current = [
            s for s in states if s.status == ConsentStatus.GRANTED and s.valid_until is not None and s.valid_until > now
        ]
        reference = references[reference_id]
        if len(current) == len(needed):
            reference_services.reference_scope_grant(
                organization=organization,
                reference=reference,
                scope=scope,
                granted_until=min(s.valid_until for s in current),  # type: ignore[type-var]
                source=_source(reference, scope),
            )
        else:
            reference_services.reference_scope_withdraw(
                organization=organization, reference=reference, scope=scope, source=_source(reference, scope)
            )


def _record_events(
    organization: Organization,
    events: list[ConsentEvent],
    now: datetime | None = None,
    head: ConsentLedgerHead | None = None,
) -> list[ConsentEvent]:
    now = now or timezone.now()
    appended = ledger.ledger_append(organization=organization, events=events, now=now, head=head)
    _sync_usability(organization, _apply_to_states(organization, appended), now)
    return appended


# From the most to the least protective: a reference is published no more widely than
# the most careful choice among the people and companies whose consent it rests on.
_PUBLICATION_ORDER = (Publication.INTERNAL_ONLY, Publication.ANONYMISED, Publication.ATTRIBUTED)


def _publication_allowed(reference: Reference) -> str | None:
    """The most careful naming choice among the reference's current grants (None: nobody chose yet)."""
    chosen = set(
        ConsentState.objects.filter(reference=reference, status=ConsentStatus.GRANTED)
        .exclude(publication="")
        .values_list("publication", flat=True)
    )
    return next((p for p in _PUBLICATION_ORDER if p in chosen), None)


def _publication_apply(organization: Organization, reference: Reference, *, source: str) -> None:
    allowed = _publication_allowed(reference)
    if allowed is not None:
        reference_services.reference_publication_set(
            organization=organization, reference=reference, publication=allowed, source=source
        )


def consent_publication_check(*, organization: Organization, reference: Reference) -> None:
    """Refuse a publication wider than the most careful choice among the reference's current grants."""
    assert_current_organization(organization)
    allowed = _publication_allowed(reference)
    if allowed is not None and _PUBLICATION_ORDER.index(reference.publication) > _PUBLICATION_ORDER.index(allowed):
        raise ApplicationError(
            _("The customer agreed to %(allowed)s use only.") % {"allowed": Publication(allowed).label.lower()},
            field="publication",
        )


def _policy_version(organization: Organization) -> int:
    policy = privacy_policy_current(organization=organization)
    if policy is None:
        raise ApplicationError(
            _("Publish the organization's privacy policy first: every consent must point to it."), field="policy"
        )
    return policy.version


def _check_party(*, reference: Reference, contact: Contact, scope: str) -> None:
    """Company scopes need an authorised signatory of the account; the others, the advocate."""
    if Party.COMPANY in required_parties(scope):
        if not contact.is_authorised_signatory or contact.account_id != reference.account_id:
            raise ApplicationError(
                _("Only an authorised signatory of %(account)s can give the company's consent to %(scope)s.")
                % {"account": reference.account.name, "scope": Scope(scope).label.lower()},
                field="scopes",
            )
    elif reference.advocate_id != contact.pk:
        raise ApplicationError(
            _("Only the reference's advocate can consent to %(scope)s for themselves.")
            % {"scope": Scope(scope).label.lower()},
            field="scopes",
        )


def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    cleaned: list[str] = []
    for scope in scopes:
        if scope not in Scope.values:
            raise ApplicationError(_("Unknown use: %(scope)s.") % {"scope": scope}, field="scopes")
        if scope not in cleaned:
            cleaned.append(scope)
    if not cleaned:
        raise ApplicationError(_("Choose at least one use to ask about."), field="scopes")
    return [s for s in Scope.values if s in cleaned]


def _materials(
    organization: Organization, reference: Reference, scopes: Iterable[str]
) -> tuple[dict[str, str], dict[str, str]]:
    texts: dict[str, str] = {}
    fingerprints: dict[str, str] = {}
    for scope in scopes:
        material = reference_selectors.reference_material(organization=organization, reference=reference, scope=scope)
        if material.fingerprint:
            texts[scope] = material.text
            fingerprints[scope] = material.fingerprint
        if scope in (Scope.QUOTE, Scope.CASE_STUDY) and not material.text:
            raise ApplicationError(
                _("Add the exact text of the %(scope)s before asking for consent to it.")
                % {"scope": Scope(scope).label.lower()},
                field="scopes",
            )
    return texts, fingerprints


def _check_requestable(organization: Organization, reference: Reference, contact: Contact, scopes: list[str]) -> None:
    if reference.organization_id != organization.pk or contact.organization_id != organization.pk:
        raise ApplicationError(_("Not found."))
    if reference.status != ReferenceStatus.ACTIVE:
        raise ApplicationError(_("This reference is retired."), field="reference")
    if contact.account_id != reference.account_id:
        raise ApplicationError(
            _("Choose a person at %(account)s.") % {"account": reference.account.name}, field="contact"
        )
    if contact.requests_paused:
        raise ApplicationError(
            _("%(name)s has paused all requests; they can resume them from their consent page.")
            % {"name": contact.name},
            field="contact",
        )
    for scope in scopes:
        _check_party(reference=reference, contact=contact, scope=scope)


def _supersede_open_requests(*, contact: Contact, reference: Reference, except_pk: int | None = None) -> int:
    """A newer request replaces the older unanswered ones; their links stop working."""
    open_requests = ConsentRequest.objects.filter(
        contact=contact, reference=reference, status=ConsentRequestStatus.SENT
    )
    if except_pk is not None:
        open_requests = open_requests.exclude(pk=except_pk)
    return open_requests.update(status=ConsentRequestStatus.SUPERSEDED, updated_at=timezone.now())


# --- Asking -----------------------------------------------------------------------------


@transaction.atomic
def consent_request_create(
    *,
    organization: Organization,
    actor: AbstractBaseUser | None,
    reference: Reference,
    contact: Contact,
    scopes: Iterable[str],
    message: str = "",
    kind: str = ConsentRequestKind.REQUEST,
) -> ConsentRequest:
    """Ask ``contact`` to consent to ``scopes`` of ``reference``; the email goes out after commit."""
    assert_current_organization(organization)
    reference = Reference.objects.select_related("account").get(pk=reference.pk)
    contact = Contact.objects.get(pk=contact.pk)
    cleaned = _clean_scopes(scopes)
    _check_requestable(organization, reference, contact, cleaned)
    policy_version = _policy_version(organization)
    texts, fingerprints = _materials(organization, reference, cleaned)
    if len(message) > 2000:
        raise ApplicationError(_("Keep the note under 2,000 characters."), field="message")
    now = timezone.now()
    settings = consent_settings_get(organization=organization)
    _supersede_open_requests(contact=contact, reference=reference)
    consent_request = ConsentRequest.objects.create(
        organization=organization,
        reference=reference,
        contact=contact,
        kind=kind,
        status=ConsentRequestStatus.SENT,
        scopes=cleaned,
        texts=texts,
        fingerprints=fingerprints,
        message=message.strip(),
        requested_by=actor if actor is not None and actor.is_authenticated else None,
        sent_at=now,
        expires_at=now + timedelta(days=settings.link_valid_days),
    )
    _request_sent(organization, consent_request, actor, policy_version, now)
    return consent_request


def _request_sent(
    organization: Organization,
    consent_request: ConsentRequest,
    actor: AbstractBaseUser | None,
    policy_version: int,
    now: datetime,
) -> None:
    user = actor if actor is not None and actor.is_authenticated else None
    _record_events(
        organization,
        [
            _event(
                ConsentEventKind.REQUESTED,
                contact=consent_request.contact,
                reference=consent_request.reference,
                consent_request=consent_request,
                scope=scope,
                party=next(iter(required_parties(scope))),
                policy_version=policy_version,
                text_hash=consent_request.fingerprints.get(scope, ""),
                mechanism=Mechanism.MANAGER if user else Mechanism.SYSTEM,
                actor=user,
            )
            for scope in consent_request.scopes
        ],
        now,
    )
    _message(
        organization,
        MessageKind.CONSENT_REQUEST,
        contact=consent_request.contact,
        consent_request=consent_request,
    )
    record(
        organization=organization,
        actor=user,
        action="consent_request.sent",
        target=consent_request,
        details={"kind": consent_request.kind, "scopes": consent_request.scopes, "contact": consent_request.contact_id},
    )


@transaction.atomic
def consent_request_send_proposal(
    *, organization: Organization, actor: AbstractBaseUser | None, consent_request: ConsentRequest
) -> ConsentRequest:
    """Send a proposed request (new wording after an edit) as it stands now."""
    assert_current_organization(organization)
    consent_request = (
        ConsentRequest.objects.select_for_update()
        .select_related("reference__account", "contact")
        .get(pk=consent_request.pk)
    )
    if consent_request.status != ConsentRequestStatus.PROPOSED:
        raise ApplicationError(_("Only a proposed request can be sent."))
    reference, contact = consent_request.reference, consent_request.contact
    _check_requestable(organization, reference, contact, consent_request.scopes)
    policy_version = _policy_version(organization)
    texts, fingerprints = _materials(organization, reference, consent_request.scopes)
    now = timezone.now()
    _supersede_open_requests(contact=contact, reference=reference, except_pk=consent_request.pk)
    consent_request.texts, consent_request.fingerprints = texts, fingerprints
    consent_request.status = ConsentRequestStatus.SENT
    consent_request.sent_at = now
    consent_request.expires_at = now + timedelta(days=consent_settings_get(organization=organization).link_valid_days)
    consent_request.requested_by = actor if actor is not None and actor.is_authenticated else None
    consent_request.save()
    _request_sent(organization, consent_request, actor, policy_version, now)
    return consent_request


@transaction.atomic
def consent_request_cancel(
    *, organization: Organization, actor: AbstractBaseUser | None, consent_request: ConsentRequest
) -> ConsentRequest:
    """Withdraw an unanswered or proposed request; its links stop working at once."""
    assert_current_organization(organization)
    updated = ConsentRequest.objects.filter(
        pk=consent_request.pk, status__in=(ConsentRequestStatus.SENT, ConsentRequestStatus.PROPOSED)
    ).update(status=ConsentRequestStatus.CANCELLED, updated_at=timezone.now())
    if not updated:
        raise ApplicationError(_("Only a request that is still open can be cancelled."))
    consent_request.refresh_from_db()
    record(organization=organization, actor=actor, action="consent_request.cancelled", target=consent_request)
    return consent_request


# --- The customer's answers -------------------------------------------------------------


def grant_valid_choices(*, organization: Organization) -> list[int]:
    """The validity periods (months) a customer may pick: the organization's longest and shorter ones."""
    return grant_valid_choices_for(consent_settings_get(organization=organization).grant_valid_months)


def grant_valid_choices_for(longest: int) -> list[int]:
    """The periods offered when the longest allowed is ``longest`` months (the page reads it with its link)."""
    return sorted({longest, *(m for m in (1, 3, 6, 12, 24) if m < longest)}, reverse=True)


@dataclass
class AnswerResult:
    granted: list[str] = field(default_factory=list)
    declined: list[str] = field(default_factory=list)
    valid_until: datetime | None = None


@transaction.atomic
def consent_answer(
    *,
    organization: Organization,
    link: ConsentLink,
    grant: Iterable[str],
    valid_months: int,
    publication: str,
    evidence: Evidence,
    decline_all: bool = False,
) -> AnswerResult:
    """Record the customer's answer to the request behind ``link``: each asked scope granted or declined.

    A second submission of the same form finds the request answered and
    changes nothing. Scopes that were not asked, wording that changed since
    the request was sent, or a validity longer than allowed are refused
    before anything is recorded.
    """
    assert_current_organization(organization)
    if link.consent_request_id is None:
        raise ApplicationError(_("This link has no question to answer."))
    consent_request = (
        ConsentRequest.objects.select_for_update()
        .select_related("reference__account", "contact")
        .get(pk=link.consent_request_id)
    )
    if consent_request.status == ConsentRequestStatus.ANSWERED:
        raise ApplicationError(_("You have already answered this request."), extra={"code": "answered"})
    if consent_request.status != ConsentRequestStatus.SENT:
        raise ApplicationError(_("This request is no longer open."), extra={"code": "closed"})
    now = timezone.now()
    if consent_request.expires_at is not None and consent_request.expires_at <= now:
        raise ApplicationError(_("This request has expired."), extra={"code": "closed"})
    asked = list(consent_request.scopes)
    granted = [] if decline_all else list(dict.fromkeys(grant))
    not_asked = [scope for scope in granted if scope not in asked]
    if not_asked:
        raise ApplicationError(_("You were not asked about that use."), field="scopes")
    if not decline_all and not granted:
        raise ApplicationError(_("Tick at least one use to grant, or choose Decline."), field="scopes")
    reference, contact = consent_request.reference, consent_request.contact
    if not decline_all and reference.status != ReferenceStatus.ACTIVE:
        raise ApplicationError(_("This reference is no longer in use; there is nothing to consent to."))
    if not decline_all:
        if valid_months not in grant_valid_choices(organization=organization):
            raise ApplicationError(_("Choose one of the periods offered."), field="valid_months")
        if publication not in Publication.values:
            raise ApplicationError(_("Choose how you may be named."), field="publication")
        for scope in granted:
            _check_party(reference=reference, contact=contact, scope=scope)
            if scope in reference_selectors.MATERIAL_KINDS:
                current = reference_selectors.reference_material(
                    organization=organization, reference=reference, scope=scope
                )
                # A logo uploaded after the request was sent is one the customer never saw.
                if current.fingerprint != consent_request.fingerprints.get(scope, ""):
                    raise ApplicationError(
                        _("The text changed after this request was sent; we will send you the new version."),
                        field="scopes",
                    )
    policy_version = _policy_version(organization)
    valid_until = now + relativedelta(months=valid_months) if granted else None
    renewal = consent_request.kind == ConsentRequestKind.RENEWAL
    events: list[ConsentEvent] = []
    for scope in asked:
        is_granted = scope in granted
        kind = ConsentEventKind.DECLINED
        if is_granted:
            kind = ConsentEventKind.RECONFIRMED if renewal else ConsentEventKind.GRANTED
        events.append(
            _event(
                kind,
                contact=contact,
                reference=reference,
                consent_request=consent_request,
                link=link,
                scope=scope,
                party=next(iter(required_parties(scope))),
                valid_until=valid_until if is_granted else None,
                publication=publication if is_granted else "",
                policy_version=policy_version,
                text_hash=consent_request.fingerprints.get(scope, ""),
                mechanism=Mechanism.LINK,
                ip_prefix=evidence.ip_prefix,
                user_agent_hash=evidence.user_agent_hash,
            )
        )
    _record_events(organization, events, now)
    if granted:
        _publication_apply(organization, reference, source=f"consent_request:{consent_request.pk}")
    consent_request.status = ConsentRequestStatus.ANSWERED
    consent_request.answered_at = now
    consent_request.save(update_fields=["status", "answered_at", "updated_at"])
    _message(organization, MessageKind.CONFIRMATION, contact=contact, consent_request=consent_request)
    record(
        organization=organization,
        actor=None,
        action="consent_request.answered",
        target=consent_request,
        details={"granted": granted, "declined": [s for s in asked if s not in granted]},
    )
    return AnswerResult(granted=granted, declined=[s for s in asked if s not in granted], valid_until=valid_until)


_UNREAD: Any = object()


@transaction.atomic
def consent_notice_served(
    *, organization: Organization, link: ConsentLink, evidence: Evidence, policy_version: int | None = _UNREAD
) -> ConsentEvent | None:
    """Record that the consent page was shown (with the policy version and material it showed), once.

    One ``notice_served`` event per link, client (``evidence``: address network
    and browser hash) and content (policy version and material fingerprint):
    the first serving is the evidence, and a reload, the reload after an
    answer or a scanner's re-fetch adds nothing. Returns None when this
    notice was recorded before. ``policy_version`` is the version the page
    showed (read with the link); by default the current one is read here.
    """
    assert_current_organization(organization)
    if policy_version is _UNREAD:
        policy = privacy_policy_current(organization=organization)
        policy_version = policy.version if policy is not None else None
    consent_request = link.consent_request
    text_hash = notice_fingerprint(consent_request)
    # Checked again under the ledger lock: two first views at once would both have read "not yet".
    head = ledger.ledger_lock(organization=organization)
    last = (
        ConsentEvent.objects.filter(
            link=link,
            kind=ConsentEventKind.NOTICE_SERVED,
            ip_prefix=evidence.ip_prefix,
            user_agent_hash=evidence.user_agent_hash,
        )
        .order_by("-sequence")
        .values_list("policy_version", "text_hash")
        .first()
    )
    if last == (policy_version, text_hash):
        return None
    return _record_events(
        organization,
        [
            _event(
                ConsentEventKind.NOTICE_SERVED,
                contact_id=link.contact_id,
                reference_id=consent_request.reference_id if consent_request is not None else None,
                consent_request=consent_request,
                link=link,
                policy_version=policy_version,
                text_hash=text_hash,
                mechanism=Mechanism.LINK,
                ip_prefix=evidence.ip_prefix,
                user_agent_hash=evidence.user_agent_hash,
            )
        ],
        head=head,
    )[0]


# --- Withdrawal -------------------------------------------------------------------------


def _may_revoke(contact: Contact, state: ConsentState) -> bool:
    if state.contact_id == contact.pk:
        return True
    return (
        state.party == Party.COMPANY
        and contact.is_authorised_signatory
        and contact.account_id == state.reference.account_id
    )


@dataclass
class RevocationResult:
    revoked: list[ConsentState] = field(default_factory=list)
    cancelled_requests: list[int] = field(default_factory=list)
    takedown_tasks: list[int] = field(default_factory=list)


@transaction.atomic
def consent_revoke(
    *,
    organization: Organization,
    contact: Contact | None,
    state_ids: Iterable[int] | None,
    evidence: Evidence = NO_EVIDENCE,
    link: ConsentLink | None = None,
    actor: AbstractBaseUser | None = None,
    note: str = "",
) -> RevocationResult:
    """Withdraw consent at once: the scopes stop being usable, open requests for them are
    cancelled (their salespeople told) and a takedown task opens for each place they were used.

    ``contact`` is the customer acting through their link (they may withdraw
    what they gave, and what their company gave if they sign for it);
    ``state_ids`` None means everything they may withdraw. A manager
    recording a customer's withdrawal passes ``actor`` and no ``contact``.
    """
    assert_current_organization(organization)
    now = timezone.now()
    # Lock order everywhere: request rows, then the ledger, then states (an answer takes them so).
    head = ledger.ledger_lock(organization=organization)
    states = ConsentState.objects.select_for_update(of=("self",)).select_related("reference__account")
    states = states.filter(status=ConsentStatus.GRANTED, valid_until__gt=now)
    if state_ids is not None:
        states = states.filter(pk__in=list(state_ids))
    elif contact is not None:
        states = states.filter(revocable_by_filter(contact))  # the same rule as the page that lists them
    if contact is None and (actor is None or state_ids is None):
        raise ApplicationError(_("Say who is withdrawing the consent, and which."))
    chosen = [s for s in states.order_by("id") if contact is None or _may_revoke(contact, s)]
    result = RevocationResult()
    if not chosen:
        return result
    user = actor if actor is not None and actor.is_authenticated else None
    revocations = _record_events(
        organization,
        [
            _event(
                ConsentEventKind.REVOKED,
                contact=contact if contact is not None else state.contact,
                reference=state.reference,
                link=link,
                scope=state.scope,
                party=state.party,
                mechanism=Mechanism.LINK if link is not None else Mechanism.MANAGER,
                ip_prefix=evidence.ip_prefix,
                user_agent_hash=evidence.user_agent_hash,
                actor=user,
                note=note[:300],
            )
            for state in chosen
        ],
        now,
        head=head,
    )
    result.revoked = chosen
    settings = consent_settings_get(organization=organization)
    for state, revocation in zip(chosen, revocations, strict=True):
        reference = state.reference
        for usage_request in UsageRequest.objects.filter(
            reference=reference, scope=state.scope, status__in=(UsageStatus.PENDING, UsageStatus.APPROVED)
        ).order_by("id"):
            reference_services.usage_request_cancel(
                organization=organization,
                usage_request=usage_request,
                actor=None,
                reason=_("The customer withdrew their consent to this use."),
            )
            result.cancelled_requests.append(usage_request.pk)
        if state.scope in PUBLISHED_SCOPES:
            result.takedown_tasks += _takedowns_open(organization, revocation, settings, now)
    recipient = contact if contact is not None else chosen[0].contact
    _message(
        organization,
        MessageKind.REVOCATION,
        contact=recipient,
        payload={"states": [s.pk for s in chosen], "scopes": sorted({s.scope for s in chosen})},
    )
    if result.takedown_tasks:
        _message(organization, MessageKind.TAKEDOWN, payload={"tasks": result.takedown_tasks})
    record(
        organization=organization,
        actor=user,
        action="consent.revoked",
        target=recipient,
        details={
            "states": [s.pk for s in chosen],
            "cancelled_requests": result.cancelled_requests,
            "takedown_tasks": result.takedown_tasks,
            "mechanism": "link" if link is not None else "manager",
        },
    )
    return result


def _takedown_assignee(reference: Reference) -> Any:
    """The reference's owner while they manage references here; else the longest-serving reference manager."""
    owner = reference.owner
    managers = Membership.objects.filter(
        is_active=True, user__is_active=True, role__in=(Role.REFERENCE_MANAGER, Role.ADMIN)
    )
    if owner is not None and managers.filter(user=owner).exists():
        return owner
    fallback = managers.filter(role=Role.REFERENCE_MANAGER).select_related("user").order_by("created_at", "id").first()
    return fallback.user if fallback is not None else None


def _takedowns_open(
    organization: Organization, revocation: ConsentEvent, settings: ConsentSettings, now: datetime
) -> list[int]:
    """One takedown per completed use of the revoked scope, pointing at the revocation that caused it."""
    reference, scope = revocation.reference, revocation.scope
    completed = list(
        UsageRequest.objects.filter(reference=reference, scope=scope, status=UsageStatus.COMPLETED)
        .exclude(takedown_tasks__isnull=False)
        .values_list("pk", flat=True)
    )
    if not completed:
        return []
    assignee = _takedown_assignee(reference)
    due_on = timezone.localdate(now) + timedelta(days=settings.takedown_due_days)
    TakedownTask.objects.bulk_create(
        [
            TakedownTask(
                organization=organization,
                reference=reference,
                scope=scope,
                usage_request_id=pk,
                revocation=revocation,
                assigned_to=assignee,
                due_on=due_on,
            )
            for pk in completed
        ],
        ignore_conflicts=True,
    )
    return list(TakedownTask.objects.filter(usage_request_id__in=completed).values_list("pk", flat=True))


@transaction.atomic
def takedown_task_close(
    *,
    organization: Organization,
    task: TakedownTask,
    actor: AbstractBaseUser,
    evidence: str,
    evidence_file: UploadedFile | None = None,
) -> TakedownTask:
    """Close a takedown with what was removed and where; the evidence is required."""
    assert_current_organization(organization)
    task = TakedownTask.objects.select_for_update().get(pk=task.pk)
    if task.status != TakedownStatus.OPEN:
        raise ApplicationError(_("This takedown is already closed."))
    if not evidence.strip():
        raise ApplicationError(_("Say what was taken down, and where."), field="evidence")
    if evidence_file:
        _proof_check(evidence_file, field_name="evidence_file")
        task.evidence_file = evidence_file
    task.evidence = evidence.strip()
    task.status = TakedownStatus.DONE
    task.closed_by = actor
    task.closed_at = timezone.now()
    task.save()
    record(
        organization=organization,
        actor=actor,
        action="takedown.closed",
        target=task,
        details={"evidence": task.evidence[:300]},
    )
    return task


@transaction.atomic
def takedown_task_assign(
    *, organization: Organization, task: TakedownTask, actor: AbstractBaseUser, assignee: Any
) -> TakedownTask:
    assert_current_organization(organization)
    if (
        assignee is not None
        and not Membership.objects.filter(
            user=assignee, is_active=True, role__in=(Role.REFERENCE_MANAGER, Role.ADMIN)
        ).exists()
    ):
        raise ApplicationError(_("Assign it to a reference manager or an admin."), field="assigned_to")
    task = TakedownTask.objects.select_for_update().get(pk=task.pk)
    task.assigned_to = assignee
    task.save(update_fields=["assigned_to", "updated_at"])
    record(
        organization=organization,
        actor=actor,
        action="takedown.assigned",
        target=task,
        details={"assigned_to": assignee.pk if assignee is not None else None},
    )
    return task


@transaction.atomic
def consent_pause(
    *, organization: Organization, contact: Contact, paused: bool, link: ConsentLink | None, evidence: Evidence
) -> bool:
    """The customer's "pause all requests" switch; returns whether it changed."""
    assert_current_organization(organization)
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    changed = reference_services.contact_requests_pause(
        organization=organization, contact=contact, paused=paused, source="consent_link" if link else "manager"
    )
    if changed:
        _record_events(
            organization,
            [
                _event(
                    ConsentEventKind.PAUSED if paused else ConsentEventKind.RESUMED,
                    contact=contact,
                    link=link,
                    mechanism=Mechanism.LINK if link is not None else Mechanism.MANAGER,
                    ip_prefix=evidence.ip_prefix,
                    user_agent_hash=evidence.user_agent_hash,
                )
            ],
        )
        if paused:
            ConsentRequest.objects.filter(contact=contact, status=ConsentRequestStatus.PROPOSED).update(
                status=ConsentRequestStatus.CANCELLED, updated_at=timezone.now()
            )
    return changed


# --- Consent given outside the link -------------------------------------------------------


def _proof_check(upload: UploadedFile, *, field_name: str = "proof") -> None:
    from pathlib import PurePath

    suffix = PurePath(upload.name or "").suffix.lower()
    check = PROOF_TYPES.get(suffix)
    if check is None:
        raise ApplicationError(_("Upload a PDF, PNG, JPEG, .eml or .txt file."), field=field_name)
    if upload.size is not None and upload.size > PROOF_MAX_BYTES:
        raise ApplicationError(_("The file is larger than 10 MB."), field=field_name)
    upload.seek(0)
    head = upload.read(512)
    upload.seek(0)
    if not check(head):
        raise ApplicationError(_("The file's content does not match its type."), field=field_name)


@transaction.atomic
def consent_record_offline(
    *,
    organization: Organization,
    actor: AbstractBaseUser,
    reference: Reference,
    contact: Contact,
    scopes: Iterable[str],
    valid_until: date,
    publication: str,
    proof: UploadedFile,
    note: str = "",
) -> list[ConsentEvent]:
    """Record consent the customer gave in writing outside refmgr, with the proof uploaded."""
    assert_current_organization(organization)
    reference = Reference.objects.select_related("account").get(pk=reference.pk)
    contact = Contact.objects.get(pk=contact.pk)
    cleaned = _clean_scopes(scopes)
    _check_requestable(organization, reference, contact, cleaned)
    if publication not in Publication.values:
        raise ApplicationError(_("Choose how the customer may be named."), field="publication")
    today = timezone.localdate()
    longest = today + relativedelta(months=consent_settings_get(organization=organization).grant_valid_months)
    if not today < valid_until <= longest:
        raise ApplicationError(
            _("Choose an end date after today and no later than %(date)s.") % {"date": longest.isoformat()},
            field="valid_until",
        )
    if not proof:
        raise ApplicationError(_("Upload the customer's written consent."), field="proof")
    _proof_check(proof)
    policy_version = _policy_version(organization)
    _texts, fingerprints = _materials(organization, reference, cleaned)
    # Stored before hashing: the file's name is part of what the ledger proves.
    from .models import proof_upload_to

    probe = ConsentEvent(organization=organization)
    proof_name = default_storage.save(proof_upload_to(probe, proof.name or "proof"), proof)
    end = timezone.make_aware(datetime.combine(valid_until, time.max.replace(microsecond=0)))
    events = []
    for scope in cleaned:
        event = _event(
            ConsentEventKind.GRANTED,
            contact=contact,
            reference=reference,
            scope=scope,
            party=next(iter(required_parties(scope))),
            valid_until=end,
            publication=publication,
            policy_version=policy_version,
            text_hash=fingerprints.get(scope, ""),
            mechanism=Mechanism.OFFLINE,
            actor=actor,
            note=note[:300],
        )
        event.proof.name = proof_name
        events.append(event)
    appended = _record_events(organization, events)
    _publication_apply(organization, reference, source="consent:offline")
    record(
        organization=organization,
        actor=actor,
        action="consent.recorded_offline",
        target=reference,
        details={"contact": contact.pk, "scopes": cleaned, "until": end.isoformat(), "proof": proof_name},
    )
    return appended


# --- New wording voids consent ------------------------------------------------------------


@transaction.atomic
def consent_material_changed(
    *, organization: Organization, reference: Reference, scope: str, actor: AbstractBaseUser | None
) -> list[ConsentRequest]:
    """The material behind ``scope`` changed: void consent given to other wording, close requests
    that showed it, and propose a new request with the new text beside the approved one."""
    assert_current_organization(organization)
    material = reference_selectors.reference_material(organization=organization, reference=reference, scope=scope)
    now = timezone.now()
    stale_requests = [
        r
        for r in ConsentRequest.objects.select_for_update().filter(
            reference=reference, status=ConsentRequestStatus.SENT
        )
        if scope in r.scopes and r.fingerprints.get(scope, "") != material.fingerprint
    ]
    if stale_requests:
        ConsentRequest.objects.filter(pk__in=[r.pk for r in stale_requests]).update(
            status=ConsentRequestStatus.SUPERSEDED, updated_at=now
        )
    ledger.ledger_lock(organization=organization)  # request rows, then the ledger, then states
    states = [
        s
        for s in ConsentState.objects.select_for_update(of=("self",))
        .select_related("contact", "consent_request")
        .filter(reference=reference, scope=scope, status=ConsentStatus.GRANTED)
        if s.text_hash != material.fingerprint
    ]
    if not states:
        return []
    user = actor if actor is not None and actor.is_authenticated else None
    _record_events(
        organization,
        [
            _event(
                ConsentEventKind.VOIDED,
                contact=state.contact,
                reference=reference,
                scope=scope,
                party=state.party,
                text_hash=material.fingerprint,
                mechanism=Mechanism.MANAGER if user else Mechanism.SYSTEM,
                actor=user,
                note=_("The material changed after consent was given."),
            )
            for state in states
        ],
        now,
    )
    proposals: list[ConsentRequest] = []
    if not material.fingerprint:
        return proposals
    for state in states:
        approved = state.consent_request.texts.get(scope, "") if state.consent_request is not None else ""
        proposal = ConsentRequest.objects.filter(
            reference=reference,
            contact=state.contact,
            kind=ConsentRequestKind.REWORDING,
            status=ConsentRequestStatus.PROPOSED,
        ).first() or ConsentRequest(
            organization=organization,
            reference=reference,
            contact=state.contact,
            kind=ConsentRequestKind.REWORDING,
            status=ConsentRequestStatus.PROPOSED,
        )
        # One proposal per person gathers every scope reworded since (a quote, then the case study).
        proposal.scopes = [s for s in Scope.values if s in {*proposal.scopes, scope}]
        proposal.texts = {**proposal.texts, scope: material.text} if material.text else proposal.texts
        proposal.fingerprints = {**proposal.fingerprints, scope: material.fingerprint}
        proposal.previous_texts = {scope: approved, **proposal.previous_texts}
        proposal.save()
        proposals.append(proposal)
    record(
        organization=organization,
        actor=user,
        action="consent.voided",
        target=reference,
        details={"scope": scope, "states": [s.pk for s in states], "proposals": [p.pk for p in proposals]},
    )
    return proposals


@transaction.atomic
def consent_parties_changed(
    *,
    organization: Organization,
    reference: Reference,
    advocate_changed: bool,
    account_changed: bool,
    actor: AbstractBaseUser | None,
) -> int:
    """A new advocate or account: consent from the previous person, or for the previous company,
    no longer speaks for this reference. Returns how many consents were voided."""
    assert_current_organization(organization)
    reference = Reference.objects.select_related("account").get(pk=reference.pk)
    now = timezone.now()
    # Lock order: request rows, then the ledger, then states.
    open_requests = list(
        ConsentRequest.objects.select_for_update()
        .filter(reference=reference, status__in=(ConsentRequestStatus.SENT, ConsentRequestStatus.PROPOSED))
        .values_list("pk", "contact_id")
    )
    stale = [pk for pk, contact_id in open_requests if contact_id != reference.advocate_id or account_changed]
    ConsentRequest.objects.filter(pk__in=stale).update(status=ConsentRequestStatus.SUPERSEDED, updated_at=now)
    ledger.ledger_lock(organization=organization)
    states = [
        state
        for state in ConsentState.objects.select_for_update(of=("self",))
        .select_related("contact")
        .filter(reference=reference, status=ConsentStatus.GRANTED)
        if (state.party == Party.INDIVIDUAL and advocate_changed and state.contact_id != reference.advocate_id)
        or (state.party == Party.COMPANY and account_changed and state.contact.account_id != reference.account_id)
    ]
    if not states:
        return 0
    user = actor if actor is not None and actor.is_authenticated else None
    _record_events(
        organization,
        [
            _event(
                ConsentEventKind.VOIDED,
                contact=state.contact,
                reference=reference,
                scope=state.scope,
                party=state.party,
                mechanism=Mechanism.MANAGER if user else Mechanism.SYSTEM,
                actor=user,
                note="The reference's advocate changed."
                if state.party == Party.INDIVIDUAL
                else "The reference's account changed.",
            )
            for state in states
        ],
        now,
    )
    record(
        organization=organization,
        actor=user,
        action="consent.voided",
        target=reference,
        details={"reason": "parties_changed", "states": [s.pk for s in states]},
    )
    return len(states)


# --- Sweeps (set-based: they touch only due rows, in a fixed number of statements) ----------


@transaction.atomic
def consent_expire_lapsed(*, organization: Organization, now: datetime | None = None) -> int:
    """Mark every granted consent whose end has passed as expired, and make its scope unusable.

    The nightly sweep's statements (``consent.sweeps.consent_expire``) for one organization: a fixed
    number whatever the number of due consents; its ledger locked before the due rows are read, so a
    second sweep (duplicate beat, two workers) waits, then finds them expired. Returns how many expired.
    """
    assert_current_organization(organization)
    return sweeps.consent_expire(now=now or timezone.now(), organization_ids=[organization.pk]).get(organization.pk, 0)


@transaction.atomic
def consent_reminders_queue(*, organization: Organization, now: datetime | None = None) -> int:
    """Queue one reminder per consent per reminder point, once, and today's managers' digest.

    The same statements as the nightly sweep across organizations (``consent.sweeps``), for one
    organization: a fixed number of them, and the new outbox rows sent after commit, a batch per
    task. Returns how many reminders were queued.
    """
    assert_current_organization(organization)
    inserted, queued = sweeps.consent_reminders_insert(now=now or timezone.now(), organization_id=organization.pk)
    sweeps.outbox_send_on_commit(queued)
    return inserted


@transaction.atomic
def consent_renewal_request(*, organization: Organization, state: ConsentState) -> ConsentRequest | None:
    """The question a reminder carries: renew these exact scopes as they stand, or let them go."""
    assert_current_organization(organization)
    state = ConsentState.objects.select_related("reference__account", "contact").get(pk=state.pk)
    if state.status != ConsentStatus.GRANTED or state.contact.requests_paused:
        return None
    reference, contact = state.reference, state.contact
    scopes = [state.scope]
    try:
        _check_requestable(organization, reference, contact, scopes)
        policy_version = _policy_version(organization)
        texts, fingerprints = _materials(organization, reference, scopes)
    except ApplicationError:
        return None  # the person can no longer give it (left the account, stopped signing): the reminder still goes
    now = timezone.now()
    # Only an earlier renewal of this same scope: a reminder for another scope, or a
    # manager's own question, keeps its link working.
    earlier = [
        r.pk
        for r in ConsentRequest.objects.filter(
            contact=contact, reference=reference, kind=ConsentRequestKind.RENEWAL, status=ConsentRequestStatus.SENT
        )
        if r.scopes == scopes
    ]
    ConsentRequest.objects.filter(pk__in=earlier).update(status=ConsentRequestStatus.SUPERSEDED, updated_at=now)
    consent_request = ConsentRequest.objects.create(
        organization=organization,
        reference=reference,
        contact=contact,
        kind=ConsentRequestKind.RENEWAL,
        status=ConsentRequestStatus.SENT,
        scopes=scopes,
        texts=texts,
        fingerprints=fingerprints,
        sent_at=now,
        expires_at=min(
            state.valid_until, now + timedelta(days=consent_settings_get(organization=organization).link_valid_days)
        )
        if state.valid_until
        else None,
    )
    ledger_events = [
        _event(
            ConsentEventKind.REQUESTED,
            contact=contact,
            reference=reference,
            consent_request=consent_request,
            scope=state.scope,
            party=state.party,
            policy_version=policy_version,
            text_hash=fingerprints.get(state.scope, ""),
            mechanism=Mechanism.SYSTEM,
            note="renewal",
        )
    ]
    _record_events(organization, ledger_events, now)
    return consent_request


@transaction.atomic
def consent_reminder_recorded(*, organization: Organization, message: ConsentMessage) -> None:
    """After a reminder went out: the ledger's "reminded" event and the consent's reminder count."""
    assert_current_organization(organization)
    state = ConsentState.objects.select_related("reference").filter(pk=message.state_id).first()
    if state is None:
        return
    _record_events(
        organization,
        [
            _event(
                ConsentEventKind.REMINDED,
                contact_id=state.contact_id,
                reference=state.reference,
                consent_request_id=message.consent_request_id,
                scope=state.scope,
                party=state.party,
                valid_until=state.valid_until,
                mechanism=Mechanism.SYSTEM,
                note=f"{message.reminder_days} days before",
            )
        ],
    )


@transaction.atomic
def consent_settings_update(*, organization: Organization, actor: AbstractBaseUser, **fields: Any) -> ConsentSettings:
    """Change the organization's consent rules (admins)."""
    assert_current_organization(organization)
    settings = ConsentSettings.objects.select_for_update().first() or ConsentSettings(organization=organization)
    allowed = ("link_valid_days", "grant_valid_months", "reminder_days", "reminders_max", "takedown_due_days")
    changed = {}
    for name in allowed:
        if name in fields and getattr(settings, name) != fields[name]:
            setattr(settings, name, fields[name])
            changed[name] = fields[name]
    from django.core.exceptions import ValidationError

    try:
        settings.full_clean(exclude=["organization"])
    except ValidationError as exc:
        name, messages = next(iter(exc.message_dict.items()))
        raise ApplicationError(messages[0], field=name) from exc
    settings.save()
    if changed:
        record(organization=organization, actor=actor, action="consent.settings_changed", details=changed)
    return settings


# --- Checks and repair ------------------------------------------------------------------------


@dataclass
class StateRepair:
    created: int = 0
    deleted: int = 0
    updated: int = 0
    usability_synced: int = 0


@transaction.atomic
def consent_states_repair(*, organization: Organization, actor: AbstractBaseUser | None = None) -> StateRepair:
    """Rewrite ``ConsentState`` from the ledger, and references' grants from the states.

    Holds the ledger lock throughout, so no consent change lands between the
    rebuild and the rewrite. The ledger is the truth: a state it does not
    explain is removed, one it explains differently is overwritten.
    """
    from .selectors import consent_usability_compare

    assert_current_organization(organization)
    ledger.ledger_lock(organization=organization)
    comparison, rebuilt = ledger.states_compare(organization=organization)
    result = StateRepair()
    touched: set[tuple[int, str]] = set()
    if comparison.unexpected:
        for reference_id, scope, party in comparison.unexpected:
            ConsentState.objects.filter(reference_id=reference_id, scope=scope, party=party).delete()
            touched.add((reference_id, scope))
        result.deleted = len(comparison.unexpected)
    ConsentState.objects.bulk_create(
        [
            ConsentState(
                organization=organization,
                reference_id=key[0],
                scope=key[1],
                party=key[2],
                **{name: getattr(rebuilt[key], name) for name in ledger.STATE_FIELDS},
            )
            for key in comparison.missing
        ]
    )
    result.created = len(comparison.missing)
    for key in comparison.different:
        ConsentState.objects.filter(reference_id=key[0], scope=key[1], party=key[2]).update(
            **{name: getattr(rebuilt[key], name) for name in ledger.STATE_FIELDS}, updated_at=timezone.now()
        )
    result.updated = len(comparison.different)
    touched |= {(key[0], key[1]) for key in (*comparison.missing, *comparison.different)}
    now = timezone.now()
    usability = consent_usability_compare(organization=organization, now=now)
    touched |= {*usability.missing, *usability.unexpected, *usability.different}
    _sync_usability(organization, touched, now)
    result.usability_synced = len(touched)
    if touched or result.deleted:
        record(
            organization=organization,
            actor=actor,
            action="consent.states_repaired",
            details={
                "created": result.created,
                "deleted": result.deleted,
                "updated": result.updated,
                "usability_synced": result.usability_synced,
            },
        )
    return result
