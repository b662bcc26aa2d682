"""The consent sweeps across organizations: find the work in one statement, then do only that (issue 6).

Beat used to fan every sweep out to every active organization (``fan_out``): a thousand tasks a night
each, nearly all finding nothing, and one broker publish per reminder. Now:

- **Expiry** reads, in one statement across organizations, which ones have a lapsed consent or scope
  grant, then expires them all in one transaction of a fixed number of statements: each
  organization's ``expired`` events are chained onto its own ledger under its own ledger lock (the
  heads locked in organization order, before the due rows are read; docs/consent.md's lock order).
- **Reminders** write the same thing for every organization (one row per due consent and reminder
  point), so the insert runs across organizations: one ``INSERT … SELECT`` per reminder point and per
  distinct reminder configuration, the digests in one more. Row-level security lets these statements
  past the organization policy only inside ``cross_organization``; the unique keys that made re-runs
  and concurrent workers harmless are unchanged. After commit, one send task per organization (per
  batch of :data:`SEND_BATCH` rows), not one per email.
- **The outbox relay** (every minute) reads the rows left pending (their task was lost) and the ones
  stuck in ``sending`` across organizations in two statements, and enqueues sends only where there are any.

Statements grow with neither rows nor organizations; only the publishes grow, with the organizations
that have work.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Exists, Max, OuterRef, Subquery
from django.utils import timezone

from references.models import ReferenceScopeGrant
from refmgr.audit.models import AuditEvent
from refmgr.tenancy.models import Organization

from . import ledger
from .models import (
    ConsentEvent,
    ConsentEventKind,
    ConsentLedgerHead,
    ConsentMessage,
    ConsentSettings,
    ConsentState,
    ConsentStatus,
    Mechanism,
    MessageKind,
    MessageStatus,
)

# Outbox rows one send task handles: a task stays far below Celery's soft time limit even with a slow
# mail server, and a night's thousands of reminders become tens of publishes, not thousands.
SEND_BATCH = 100

_DEFAULTS = ConsentSettings()


# --- Expiry ------------------------------------------------------------------------------------


def organizations_with_lapsed_consent(*, now: datetime) -> list[int]:
    """Active organizations with a granted consent or a scope grant whose end has passed; one statement.

    Called inside ``cross_organization``. Each ``EXISTS`` is one probe of a partial index that leads
    on the organization (``consent_state_granted_until``, ``references_grant_until``).
    """
    lapsed_state = ConsentState.all_tenants.filter(
        organization=OuterRef("pk"), status=ConsentStatus.GRANTED, valid_until__lte=now
    )
    lapsed_grant = ReferenceScopeGrant.all_tenants.filter(organization=OuterRef("pk"), granted_until__lte=now)
    return list(
        Organization.objects.filter(is_active=True)
        .filter(Exists(lapsed_state) | Exists(lapsed_grant))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _heads_locked(organization_ids: list[int]) -> dict[int, ConsentLedgerHead]:
    """Lock the organizations' ledger heads, in organization order (two sweeps never cross), creating
    any missing one first (an organization's first append creates it; the lock then waits for it)."""

    def locked() -> dict[int, ConsentLedgerHead]:
        heads = ConsentLedgerHead.all_tenants.select_for_update().filter(organization_id__in=organization_ids)
        return {head.organization_id: head for head in heads.order_by("organization_id")}

    heads = locked()
    if len(heads) < len(organization_ids):
        ConsentLedgerHead.all_tenants.bulk_create(
            [ConsentLedgerHead(organization_id=pk) for pk in organization_ids if pk not in heads],
            ignore_conflicts=True,
        )
        heads = locked()
    return heads


def consent_expire(*, now: datetime, organization_ids: list[int]) -> dict[int, int]:
    """Expire every granted consent past its end, and drop every lapsed scope grant, in the organizations
    named; returns the consents expired per organization. A fixed number of statements however many
    organizations and rows.

    Must run in a transaction; for more than the current organization, inside ``cross_organization``.
    Each organization's ``expired`` events are chained onto its own ledger under its own ledger lock,
    taken before the due rows are read (so a second sweep waits, then finds them expired) and before
    the states are updated (docs/consent.md's lock order: request rows, ledger head, states).
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("consent_expire() must run inside a transaction")
    organization_ids = sorted(set(organization_ids))
    if not organization_ids:
        return {}
    heads = _heads_locked(organization_ids)
    due_states = ConsentState.all_tenants.filter(
        organization_id__in=organization_ids, status=ConsentStatus.GRANTED, valid_until__lte=now
    )
    due = list(
        due_states.order_by("organization_id", "id").values(
            "organization_id", "reference_id", "scope", "party", "contact_id"
        )
    )
    expired: dict[int, int] = {}
    events: list[ConsentEvent] = []
    for row in due:
        # ledger.ledger_append's arithmetic, for several chains at once: number and chain each
        # organization's events after its locked head, all at the same time.
        head = heads[row["organization_id"]]
        head.sequence += 1
        event = ConsentEvent(
            organization_id=row["organization_id"],
            kind=ConsentEventKind.EXPIRED,
            contact_id=row["contact_id"],
            reference_id=row["reference_id"],
            scope=row["scope"],
            party=row["party"],
            mechanism=Mechanism.SYSTEM,
            sequence=head.sequence,
            occurred_at=now,
            previous_hash=head.last_hash or ledger.GENESIS_HASH,
        )
        event.hash = head.last_hash = ledger.event_hash(event)
        events.append(event)
        expired[row["organization_id"]] = expired.get(row["organization_id"], 0) + 1
    if events:
        ConsentEvent.all_tenants.bulk_create(events)
        moved = [heads[pk] for pk in expired]
        for head in moved:
            head.updated_at = now  # bulk_update skips auto_now
        ConsentLedgerHead.all_tenants.bulk_update(moved, ["sequence", "last_hash", "updated_at"])
        last_event = (
            ConsentEvent.all_tenants.filter(
                organization_id=OuterRef("organization_id"),
                reference_id=OuterRef("reference_id"),
                scope=OuterRef("scope"),
                party=OuterRef("party"),
            )
            .values("reference_id")
            .annotate(last=Max("sequence"))
            .values("last")
        )
        # The read's own predicate, not a list of ids (which would grow the statement with the rows and
        # meet SQLite's parameter cap): every change to a state appends to its ledger, whose lock this
        # transaction holds, so the rows it matches are exactly the ones read above.
        due_states.update(status=ConsentStatus.EXPIRED, last_sequence=Subquery(last_event), updated_at=now)
    # The references app's verdict, as ``reference_scope_grants_lapse`` gives it for one organization:
    # usability already ignores a grant past its date; this keeps the table to what is current.
    lapsed_grants = ReferenceScopeGrant.all_tenants.filter(organization_id__in=organization_ids, granted_until__lte=now)
    lapsed = dict(
        lapsed_grants.values("organization_id").annotate(count=Count("id")).values_list("organization_id", "count")
    )
    if lapsed:
        lapsed_grants.delete()  # one DELETE: no signals or cascades hang on a scope grant
    # The audit rows ``record`` writes, for every organization at once.
    audit = [
        AuditEvent(
            organization_id=pk,
            actor=None,
            actor_label="system",
            action="reference.scope_grants_lapsed",
            details={"count": lapsed[pk], "at": now.isoformat()},
        )
        for pk in sorted(lapsed)
    ] + [
        AuditEvent(
            organization_id=pk,
            actor=None,
            actor_label="system",
            action="consent.expired",
            details={"consents": expired[pk], "scope_grants": lapsed.get(pk, 0), "at": now.isoformat()},
        )
        for pk in sorted(expired)
    ]
    if audit:
        AuditEvent.all_tenants.bulk_create(audit)
    return expired


# --- Reminders ---------------------------------------------------------------------------------

# Both inserts read the granted consents of active organizations whose reminder configuration (their
# settings row, or the defaults) is the one being run; ``{organization}`` narrows them to one.
# Paused contacts are a short list read once (a hashed NOT IN): as a join or EXISTS per consent,
# PostgreSQL probed each organization's contacts by organization (11 s over 25,000 consents, not 0.7 s).
# The cap's count is a subquery per consent; on a young outbox table (no statistics yet) PostgreSQL
# ran it as a sequential scan of the very table the INSERT was growing (6 s on the benchmark's first
# night, not 0.7 s), so it is left out where it cannot bind (:data:`_REMINDER_CAP`).
_REMINDER_INSERT = """
INSERT INTO consent_consentmessage
    (organization_id, kind, status, contact_id, consent_request_id, state_id, reminder_days, cycle_until,
     dedupe_key, payload, attempts, last_error, claimed_at, sent_at, created_at, updated_at)
SELECT s.organization_id, 'reminder', 'pending', s.contact_id, NULL, s.id, %(days)s, s.valid_until,
       '', '{{}}', 0, '', NULL, NULL, %(now)s, %(now)s
FROM consent_consentstate s
JOIN tenancy_organization o ON o.id = s.organization_id AND o.is_active = %(true)s
LEFT JOIN consent_consentsettings cs ON cs.organization_id = s.organization_id
WHERE s.status = 'granted'
  AND s.valid_until > %(band_start)s
  AND s.valid_until <= %(band_end)s
  AND COALESCE(cs.reminder_days, %(default_days)s) = %(reminder_days)s
  AND COALESCE(cs.reminders_max, %(default_max)s) = %(cap)s
  {organization}
  AND s.contact_id NOT IN (SELECT c.id FROM references_contact c WHERE c.requests_paused = %(true)s)
  {cap}
ON CONFLICT DO NOTHING
"""

# Only where the cap can bind: with no more reminder points than the cap (the defaults: 2 and 3),
# the unique key (consent, point, end date) already keeps a cycle within it (points changed in the
# middle of a cycle can add the new ones to those already sent).
_REMINDER_CAP = """AND (SELECT count(*) FROM consent_consentmessage m
       WHERE m.organization_id = s.organization_id AND m.state_id = s.id
         AND m.kind = 'reminder' AND m.cycle_until = s.valid_until) < %(cap)s"""

# One digest per organization and day (its dedupe key), counting what lapses within the largest point.
_DIGEST_INSERT = """
INSERT INTO consent_consentmessage
    (organization_id, kind, status, contact_id, consent_request_id, state_id, reminder_days, cycle_until,
     dedupe_key, payload, attempts, last_error, claimed_at, sent_at, created_at, updated_at)
SELECT s.organization_id, 'lapsing_digest', 'pending', NULL, NULL, NULL, NULL, NULL,
       %(dedupe_key)s, {json_object}('lapsing', count(*), 'within_days', %(within_days)s), 0, '', NULL, NULL,
       %(now)s, %(now)s
FROM consent_consentstate s
JOIN tenancy_organization o ON o.id = s.organization_id AND o.is_active = %(true)s
LEFT JOIN consent_consentsettings cs ON cs.organization_id = s.organization_id
WHERE s.status = 'granted'
  AND s.valid_until > %(now)s
  AND s.valid_until <= %(until)s
  AND COALESCE(cs.reminder_days, %(default_days)s) = %(reminder_days)s
  AND COALESCE(cs.reminders_max, %(default_max)s) = %(cap)s
  {organization}
GROUP BY s.organization_id
ON CONFLICT DO NOTHING
"""


def _configurations(organization_id: int | None) -> list[tuple[str, int]]:
    """The distinct (reminder days, cap) among active organizations, the defaults for those without settings."""
    organizations = Organization.objects.filter(is_active=True)
    if organization_id is not None:
        organizations = organizations.filter(pk=organization_id)
    settings = ConsentSettings.all_tenants.filter(organization__in=organizations)
    found = set(settings.values_list("reminder_days", "reminders_max").distinct())
    # Without a settings row an organization runs on the defaults; one more cheap read tells whether any does.
    if organizations.exclude(pk__in=settings.values("organization_id")).exists():
        found.add((_DEFAULTS.reminder_days, _DEFAULTS.reminders_max))
    return sorted(found)


def consent_reminders_insert(*, now: datetime, organization_id: int | None = None) -> tuple[int, dict[int, list[int]]]:
    """Queue every due reminder and today's digests, for one organization or (``None``) all of them.

    Must run in a transaction; across organizations, inside ``cross_organization``. For each distinct
    reminder configuration, one ``INSERT … SELECT`` per reminder point and one for the digests: a
    consent falls in exactly one band, (next smaller point, point], so a short consent gets only its
    nearest reminder; the unique constraint on (consent, point, end date) makes re-runs and concurrent
    workers insert each reminder once, and a renewed consent (a new end date) starts a new cycle.
    Returns how many reminders were inserted, and the new outbox rows (reminders and digests) by
    organization, for sending after commit.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("consent_reminders_insert() must run inside a transaction")
    # Raw SQL gets the database's own datetime format (SQLite stores text), as the ORM would write it.
    adapt = connection.ops.adapt_datetimefield_value
    only = "AND s.organization_id = %(organization)s" if organization_id is not None else ""
    json_object = "jsonb_build_object" if connection.vendor == "postgresql" else "json_object"
    common = {
        "organization": organization_id,
        "now": adapt(now),
        "true": True,
        "default_days": _DEFAULTS.reminder_days,
        "default_max": _DEFAULTS.reminders_max,
    }
    inserted = 0
    with connection.cursor() as cursor:
        for reminder_days, cap in _configurations(organization_id):
            points = ConsentSettings(reminder_days=reminder_days).reminder_points
            if not points or cap == 0:
                continue  # reminders are off for these organizations, and so is their digest
            group = {**common, "reminder_days": reminder_days, "cap": cap}
            for days, next_smaller in zip(points, [*points[1:], 0], strict=True):
                cursor.execute(
                    _REMINDER_INSERT.format(organization=only, cap=_REMINDER_CAP if len(points) > cap else ""),
                    {
                        **group,
                        "days": days,
                        "band_start": adapt(now + timedelta(days=next_smaller)),
                        "band_end": adapt(now + timedelta(days=days)),
                    },
                )
                inserted += max(cursor.rowcount, 0)
            cursor.execute(
                _DIGEST_INSERT.format(organization=only, json_object=json_object),
                {
                    **group,
                    "dedupe_key": f"lapsing:{timezone.localdate(now).isoformat()}",
                    "within_days": points[0],
                    "until": adapt(now + timedelta(days=points[0])),
                },
            )
    # The rows this run inserted carry its time (a conflicting row, already queued, keeps its own).
    queued = ConsentMessage.all_tenants.filter(
        kind__in=[MessageKind.REMINDER, MessageKind.LAPSING_DIGEST], status=MessageStatus.PENDING, created_at=now
    )
    if organization_id is not None:
        queued = queued.filter(organization_id=organization_id)
    by_organization: dict[int, list[int]] = {}
    for organization, message_id in queued.order_by("organization_id", "id").values_list("organization_id", "id"):
        by_organization.setdefault(organization, []).append(message_id)
    return inserted, by_organization


# --- The outbox ----------------------------------------------------------------------------------


def outbox_send_on_commit(by_organization: dict[int, list[int]]) -> None:
    """After commit, one send task per organization and batch of rows; the rows are already claimable.

    A publish that fails (broker down) is left alone: the rows stay pending and the outbox relay
    enqueues them a minute later. Enqueueing a row twice is harmless, as sending claims it first.
    """
    if not by_organization:
        return

    def enqueue() -> None:
        outbox_send(by_organization)

    transaction.on_commit(enqueue, robust=True)


def outbox_send(by_organization: dict[int, list[int]]) -> int:
    """Enqueue the send tasks now; returns how many rows were handed to the broker (stops at its first refusal)."""
    from .tasks import consent_messages_send

    handed = 0
    for organization_id, message_ids in sorted(by_organization.items()):
        for start in range(0, len(message_ids), SEND_BATCH):
            batch = message_ids[start : start + SEND_BATCH]
            try:
                consent_messages_send.delay(organization_id=organization_id, message_ids=batch)
            except Exception:  # the broker: every later publish would fail the same way
                return handed
            handed += len(batch)
    return handed


def outbox_pending(*, older_than: timedelta, limit: int = 5000) -> dict[int, list[int]]:
    """Rows of active organizations still pending after ``older_than`` (their task was lost); one statement.

    Called inside ``cross_organization``; the partial index ``consent_message_pending`` holds only
    pending rows. At most ``limit`` a run, oldest first: the next minute takes the rest.
    """
    cutoff = timezone.now() - older_than
    rows = (
        ConsentMessage.all_tenants.filter(
            status=MessageStatus.PENDING, created_at__lte=cutoff, organization__is_active=True
        )
        .order_by("created_at", "id")
        .values_list("organization_id", "id")[:limit]
    )
    by_organization: dict[int, list[int]] = {}
    for organization_id, message_id in rows:
        by_organization.setdefault(organization_id, []).append(message_id)
    return by_organization


def outbox_stuck(*, older_than: timedelta = timedelta(minutes=15)) -> dict[int, int]:
    """Per organization, the rows claimed for sending that never recorded the result (reported, never resent)."""
    rows = (
        ConsentMessage.all_tenants.filter(
            status=MessageStatus.SENDING, claimed_at__lte=timezone.now() - older_than, organization__is_active=True
        )
        .values("organization_id")
        .annotate(stuck=Count("id"))
        .values_list("organization_id", "stuck")
    )
    return dict(rows)
