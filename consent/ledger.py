"""The consent ledger's chain and its arithmetic: appending, verifying, and adding it up into states.

Every event's ``hash`` is SHA-256 over a canonical JSON of its content and
the previous event's hash in the same organization, so removing, editing or
reordering any event breaks every hash after it. Appends lock the
organization's ``ConsentLedgerHead`` row, which serialises them without
reading the (append-only) event table for update.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from refmgr.tenancy.context import assert_current_organization
from refmgr.tenancy.models import Organization

from .models import ConsentEvent, ConsentEventKind, ConsentLedgerHead, ConsentState, ConsentStatus

GENESIS_HASH = "0" * 64


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="microseconds") if value is not None else None


def event_canonical(event: ConsentEvent) -> bytes:
    """The bytes an event's hash covers: every field that says what happened, in a fixed order."""
    content: dict[str, Any] = {
        "organization": event.organization_id,
        "sequence": event.sequence,
        "kind": event.kind,
        "occurred_at": _iso(event.occurred_at),
        "contact": event.contact_id,
        "reference": event.reference_id,
        "consent_request": event.consent_request_id,
        "link": event.link_id,
        "scope": event.scope,
        "party": event.party,
        "valid_until": _iso(event.valid_until),
        "publication": event.publication,
        "policy_version": event.policy_version,
        "text_hash": event.text_hash,
        "mechanism": event.mechanism,
        "proof": event.proof.name or "",
        "ip_prefix": event.ip_prefix,
        "user_agent_hash": event.user_agent_hash,
        "actor": event.actor_id,
        "note": event.note,
        "previous_hash": event.previous_hash,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()


def event_hash(event: ConsentEvent) -> str:
    return hashlib.sha256(event_canonical(event)).hexdigest()


def _head_locked(organization: Organization) -> ConsentLedgerHead:
    # The lock first: the head exists after an organization's first append, so this is one
    # statement on every later one (it sits on every consent page's first view and every answer).
    head = ConsentLedgerHead.objects.select_for_update().first()
    if head is not None:
        return head
    try:
        with transaction.atomic():
            ConsentLedgerHead.objects.create(organization=organization)
    except IntegrityError:
        pass  # another transaction created it first; the lock below waits for it
    return ConsentLedgerHead.objects.select_for_update().get()


def ledger_lock(*, organization: Organization) -> ConsentLedgerHead:
    """Take the organization's ledger lock until the end of the caller's transaction.

    A sweep that decides *what* to append from a read (the due rows) must
    hold it before that read; otherwise two sweeps read the same rows and
    both append them, one after the other. Returns the locked head, which
    the caller may hand to ``ledger_append`` so it is not read twice.
    """
    assert_current_organization(organization)
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("ledger_lock() must run inside a transaction")
    return _head_locked(organization)


def ledger_append(
    *,
    organization: Organization,
    events: Iterable[ConsentEvent],
    now: datetime | None = None,
    head: ConsentLedgerHead | None = None,
) -> list[ConsentEvent]:
    """Number, chain and insert ``events`` (unsaved) in one statement; they share one time.

    Must run inside the caller's transaction, so the events commit with the
    change they record. A fixed number of statements whatever the count.
    ``head``: what ``ledger_lock`` returned in this transaction (the lock is
    held until it ends, so the row cannot have moved); otherwise it is locked here.
    """
    assert_current_organization(organization)
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("ledger_append() must run inside a transaction")
    batch = list(events)
    if not batch:
        return []
    now = now or timezone.now()
    if head is None or head.organization_id != organization.pk:
        head = _head_locked(organization)
    sequence, previous = head.sequence, head.last_hash or GENESIS_HASH
    for event in batch:
        sequence += 1
        event.organization = organization
        event.sequence = sequence
        event.occurred_at = now
        event.previous_hash = previous
        event.hash = previous = event_hash(event)
    ConsentEvent.objects.bulk_create(batch)
    ConsentLedgerHead.objects.filter(pk=head.pk).update(sequence=sequence, last_hash=previous, updated_at=now)
    # Keep a caller's head in step, so a second append in the same transaction chains on.
    head.sequence, head.last_hash = sequence, previous
    return batch


@dataclass
class LedgerVerdict:
    """What ``verify`` found: ``ok``, how many events it read, and the first broken link if any."""

    checked: int = 0
    broken_at: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None and not self.problem


Progress = Callable[[int], None]


def ledger_verify(
    *, organization: Organization, chunk_size: int = 5000, progress: Progress | None = None
) -> LedgerVerdict:
    """Recompute the organization's chain from the first event; stop at the first broken link.

    ``progress`` is called with the count so far after every ``chunk_size`` events (long runs).
    """
    assert_current_organization(organization)
    verdict = LedgerVerdict()
    expected_previous, expected_sequence = GENESIS_HASH, 1
    # The head first: appends keep running while we read (every consent page adds a notice),
    # and everything up to the head's number was committed before we read it.
    head = ConsentLedgerHead.objects.first()
    events = ConsentEvent.objects.order_by("sequence")
    if head is not None:
        events = events.filter(sequence__lte=head.sequence)
    for event in events.iterator(chunk_size=chunk_size):
        verdict.checked += 1
        if progress is not None and verdict.checked % chunk_size == 0:
            progress(verdict.checked)
        if event.sequence != expected_sequence:
            verdict.broken_at, verdict.problem = event.sequence, f"expected event #{expected_sequence} next"
            return verdict
        if event.previous_hash != expected_previous:
            verdict.broken_at, verdict.problem = event.sequence, "does not follow the previous event's hash"
            return verdict
        if event_hash(event) != event.hash:
            verdict.broken_at, verdict.problem = event.sequence, "its content does not match its hash"
            return verdict
        expected_previous, expected_sequence = event.hash, expected_sequence + 1
    last_sequence = expected_sequence - 1
    if head is not None and (head.sequence != last_sequence or (last_sequence and head.last_hash != expected_previous)):
        verdict.broken_at = last_sequence + 1
        verdict.problem = f"the ledger's head says #{head.sequence}; events end at #{last_sequence}"
    return verdict


# --- Adding the ledger up -----------------------------------------------------------------

STATE_FIELDS = (
    "contact_id",
    "status",
    "valid_until",
    "publication",
    "policy_version",
    "text_hash",
    "consent_request_id",
    "last_sequence",
    "reminders_sent",
)

StateKey = tuple[int, str, str]


@dataclass
class StateValues:
    """The fields of a ``ConsentState`` that the ledger decides."""

    contact_id: int | None = None
    status: str = ""
    valid_until: datetime | None = None
    publication: str = ""
    policy_version: int | None = None
    text_hash: str = ""
    consent_request_id: int | None = None
    last_sequence: int = 0
    reminders_sent: int = 0

    @classmethod
    def of(cls, state: ConsentState) -> StateValues:
        return cls(**{name: getattr(state, name) for name in STATE_FIELDS})

    def as_tuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in STATE_FIELDS)


def state_apply(current: StateValues | None, event: ConsentEvent) -> StateValues | None:
    """The one rule for how an event changes a state; the services and the rebuild both use it.

    A "no" to a renewal does not cut short a consent that is still running:
    it simply will not be extended.
    """
    kind = event.kind
    if kind in (ConsentEventKind.GRANTED, ConsentEventKind.RECONFIRMED):
        return StateValues(
            contact_id=event.contact_id,
            status=ConsentStatus.GRANTED,
            valid_until=event.valid_until,
            publication=event.publication,
            policy_version=event.policy_version,
            text_hash=event.text_hash,
            consent_request_id=event.consent_request_id,
            last_sequence=event.sequence,
            reminders_sent=0,
        )
    if kind == ConsentEventKind.DECLINED:
        if (
            current is not None
            and current.status == ConsentStatus.GRANTED
            and current.valid_until is not None
            and current.valid_until > event.occurred_at
        ):
            return current
        return StateValues(
            contact_id=event.contact_id,
            status=ConsentStatus.DECLINED,
            policy_version=event.policy_version,
            text_hash=event.text_hash,
            consent_request_id=event.consent_request_id,
            last_sequence=event.sequence,
        )
    if current is None:
        return None
    ends = {
        ConsentEventKind.REVOKED: ConsentStatus.REVOKED,
        ConsentEventKind.EXPIRED: ConsentStatus.EXPIRED,
        ConsentEventKind.VOIDED: ConsentStatus.VOIDED,
    }
    if kind in ends:
        current.status = ends[kind]
        current.last_sequence = event.sequence
        return current
    if kind == ConsentEventKind.REMINDED:
        current.reminders_sent += 1
        current.last_sequence = event.sequence
        return current
    return current


# The kinds that speak about one reference's scope and party.
STATE_KINDS = frozenset(
    {
        ConsentEventKind.GRANTED,
        ConsentEventKind.RECONFIRMED,
        ConsentEventKind.DECLINED,
        ConsentEventKind.REVOKED,
        ConsentEventKind.EXPIRED,
        ConsentEventKind.VOIDED,
        ConsentEventKind.REMINDED,
    }
)


def states_from_ledger(events: Iterable[ConsentEvent]) -> dict[StateKey, StateValues]:
    """Fold events (in sequence order) into the state of every reference, scope and party."""
    states: dict[StateKey, StateValues] = {}
    for event in events:
        if event.kind not in STATE_KINDS or event.reference_id is None:
            continue
        key = (event.reference_id, event.scope, event.party)
        result = state_apply(states.get(key), event)
        if result is not None:
            states[key] = result
    return states


@dataclass
class StateComparison:
    missing: list[StateKey] = field(default_factory=list)
    unexpected: list[StateKey] = field(default_factory=list)
    different: list[StateKey] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.different)


def _ledger_events(chunk_size: int, progress: Progress | None = None) -> Iterator[ConsentEvent]:
    events = ConsentEvent.objects.filter(kind__in=STATE_KINDS).order_by("sequence").iterator(chunk_size=chunk_size)
    for count, event in enumerate(events, start=1):
        if progress is not None and count % chunk_size == 0:
            progress(count)
        yield event


def states_compare(
    *, organization: Organization, chunk_size: int = 5000, progress: Progress | None = None
) -> tuple[StateComparison, dict]:
    """Rebuild every state from the ledger and compare it with the materialised table."""
    assert_current_organization(organization)
    rebuilt = states_from_ledger(_ledger_events(chunk_size, progress))
    stored = {
        (state.reference_id, state.scope, state.party): StateValues.of(state)
        for state in ConsentState.objects.all().iterator(chunk_size=chunk_size)
    }
    comparison = StateComparison()
    for key, values in rebuilt.items():
        if key not in stored:
            comparison.missing.append(key)
        elif stored[key].as_tuple() != values.as_tuple():
            comparison.different.append(key)
    comparison.unexpected = [key for key in stored if key not in rebuilt]
    return comparison, rebuilt
