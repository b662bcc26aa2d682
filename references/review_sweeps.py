"""The nightly review-flag sweep across organizations: a fixed number of statements (issue 6).

Beat used to read which organizations changed since their checkpoint, then publish one
``review_flags_sweep`` task per organization, each reading its incentives and text in Python and
inserting flags and holds in 15 to 25 statements: 25,001 statements and 72 to 87 s for the first
sweep of 1,000 organizations and 1,000,000 references. Now one transaction does every organization
(on a first sweep of a large data set, as many as :data:`FULL_READ_BUDGET` allows, then another run):

- **Checkpoints.** Every active organization gets its ``ReviewScan`` (one ``INSERT … SELECT`` for the
  new ones), then all of them are read and locked in one statement, in organization order, with
  each organization's incentive words and look-back window and whether anything it owns changed
  since its checkpoint. A duplicated beat waits on the locks, then reads from the first one's
  checkpoints. The fingerprint (words and window) is computed in Python from those rows: an
  organization never swept, or whose fingerprint changed, is read in full; one with changes is read
  in (checkpoint, now]; the rest are not read at all.
- **Flags.** One ``INSERT … SELECT`` for the incentives (each joined to its contact's, or for an
  account-wide one its account's, references active within that organization's window) and one per
  text place (reference title and summary, material title and text, usage request purpose and
  notes), each matching the rows to their own organization's words, which travel as parameters
  (arrays on PostgreSQL, a JSON document on SQLite). On PostgreSQL the holds are inserted from the
  new flags in the same statement (a data-modifying CTE), which returns the new flags per organization;
  SQLite has no data-modifying CTE, so it counts the flags its ``INSERT`` returns and copies holds
  from the flags this run stamped, in one more statement. The unique keys (``ON CONFLICT DO NOTHING``)
  keep a re-run, a duplicated beat or the on-commit ``incentive_flag`` task from raising a flag twice.
- **Audit and checkpoints.** One ``INSERT … SELECT`` writes the ``review_flag.raised`` rows (one per
  organization and source with new flags), one ``UPDATE`` moves every read organization's checkpoint.

These statements cross organizations, so they run inside ``cross_organization`` (beat's entry), which
lets them past the row-level security policy; each join still matches rows of one organization only,
so one organization's words never flag another's rows. Statements grow with neither rows nor
organizations: 2 on a night with nothing to read, at most 9 (10 on SQLite) otherwise. A night with
much to read in full (a first sweep) is cut into runs of :data:`FULL_READ_BUDGET` references, each
its own transaction, one after the other.
"""

# ruff: noqa: S608 - the SQL is assembled from this module's constants (tables, columns, vendor
# spellings); every value, the words included, is a parameter.

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, Subquery
from django.utils import timezone

from refmgr.tenancy.models import TenantOwnedModel

from .models import (
    DEFAULT_INCENTIVE_WORDS,
    FlagStatus,
    HoldKind,
    Incentive,
    Reference,
    ReferenceAsset,
    ReferenceSettings,
    ReferenceStatus,
    ReviewScan,
    UsageRequest,
)

# Rows are read again if they changed up to this long before the last sweep started: a write whose
# transaction began before the sweep's snapshot but committed after it carries an ``updated_at``
# older than the sweep, and would otherwise never be read (requests and tasks end within minutes).
RESCAN_MARGIN = timedelta(minutes=15)

# References one run reads in full at most (organizations never swept, or whose words or window
# changed), whole organizations at a time and at least one: a first sweep of 1,000,000 references
# becomes a few runs of seconds each, one after the other (``review_flags_nightly``), instead of one
# transaction of 20 s that would hold back every on-commit ``incentive_flag`` task meeting its
# flags. On the 2-core benchmark machine a run costs about 20 µs per reference read in full, most
# of it inserting the flags and holds (and checking their foreign keys at commit).
FULL_READ_BUDGET = 200_000

# Characters quoted on a text flag either side of the matching words.
SNIPPET_MARGIN = 60

# What Python's ``str.strip()`` removes, for the quoted passage (SQL's trim removes only spaces).
_WHITESPACE = "".join(chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace())

_DEFAULT_WINDOW_DAYS: int = ReferenceSettings._meta.get_field("incentive_window_days").default  # type: ignore[assignment]

# The places whose text can mention an incentive: (place, table, fields in the order a word is looked
# for, the column naming the reference). A word found in both fields is flagged once, on the first.
_TEXT_PLACES: tuple[tuple[str, type[TenantOwnedModel], tuple[str, str], str], ...] = (
    ("reference", Reference, ("title", "summary"), "id"),
    ("asset", ReferenceAsset, ("title", "text"), "reference_id"),
    ("usage_request", UsageRequest, ("purpose", "outcome_notes"), "reference_id"),
)


def incentive_words(configured: str) -> list[str]:
    """An organization's words, from its settings' text (one a line); the built-in list when empty."""
    words = [line.strip().lower() for line in configured.splitlines() if line.strip()]
    return words or list(DEFAULT_INCENTIVE_WORDS)


def scan_fingerprint(words: list[str], window_days: int) -> str:
    """What a scan's result depends on besides the rows: the words and the look-back window."""
    basis = json.dumps({"words": words, "window_days": window_days})
    return hashlib.sha256(basis.encode()).hexdigest()


@dataclass(frozen=True)
class ReviewPlan:
    """One organization's part of tonight's sweep."""

    organization_id: int
    words: list[str]
    window_days: int
    fingerprint: str
    since: datetime | None  # read rows changed after this (and up to now); None: read everything


def review_plans_locked(*, now: datetime) -> list[ReviewPlan]:
    """Lock every active organization's checkpoint, in organization order, and say what to read.

    Two statements whatever the number of organizations: the missing checkpoints are created (never
    swept: an empty fingerprint, so a full read), then every checkpoint is read ``FOR UPDATE`` with
    the organization's settings and, per table the sweep reads, whether a row changed in
    (checkpoint, now]; each ``EXISTS`` is one probe of an index on (organization, updated_at).
    Organizations with nothing to read are left out (their checkpoints stay where they are).
    """
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        # In organization order, as the lock below, so that two sweeps creating checkpoints never cross.
        cursor.execute(
            """INSERT INTO references_reviewscan (organization_id, scanned_until, fingerprint, created_at, updated_at)
               SELECT o.id, %(now)s, '', %(now)s, %(now)s FROM tenancy_organization o
                WHERE o.is_active = %(true)s
                  AND NOT EXISTS (SELECT 1 FROM references_reviewscan s WHERE s.organization_id = o.id)
                ORDER BY o.id
               ON CONFLICT (organization_id) DO NOTHING""",
            {"now": adapt(now), "true": True},
        )

    def changed(model: type[TenantOwnedModel]) -> Exists:
        return Exists(
            model.all_tenants.filter(
                organization_id=OuterRef("organization_id"),
                updated_at__gt=OuterRef("scanned_until"),
                updated_at__lte=now,
            )
        )

    settings = ReferenceSettings.all_tenants.filter(organization_id=OuterRef("organization_id"))
    anything_changed = Q()
    for model in (Reference, ReferenceAsset, UsageRequest, Incentive, ReferenceSettings):
        anything_changed |= Q(changed(model))
    checkpoints = (
        ReviewScan.all_tenants.select_for_update(of=("self",))
        .filter(organization__is_active=True)
        .annotate(
            configured=Subquery(settings.values("incentive_words")[:1]),
            window=Subquery(settings.values("incentive_window_days")[:1]),
            changed=ExpressionWrapper(anything_changed, output_field=BooleanField()),
        )
        .order_by("organization_id")
        .values_list("organization_id", "scanned_until", "fingerprint", "configured", "window", "changed")
    )
    plans = []
    for organization_id, scanned_until, stored, configured, window, has_changes in checkpoints:
        words = incentive_words(configured or "")
        window_days = window if window is not None else _DEFAULT_WINDOW_DAYS
        fingerprint = scan_fingerprint(words, window_days)
        if fingerprint != stored:
            since = None  # never swept, or other words or another window: everything again
        elif has_changes:
            # Up to now only: a row stamped in the future (a clock ahead, imported data) is read once
            # its time has come, rather than every night until then.
            since = scanned_until
        else:
            continue
        plans.append(ReviewPlan(organization_id, words, window_days, fingerprint, since))
    return plans


def review_flags_sweep_all(*, now: datetime, budget: int | None = None) -> dict[str, int]:
    """The nightly review sweep of every active organization: flag what changed since its checkpoint.

    Incentives and text are read only where rows changed since the organization's last sweep (less
    :data:`RESCAN_MARGIN`); everything is read on its first sweep, and again when its incentive words
    or look-back window change, as far as ``budget`` references (:data:`FULL_READ_BUDGET`): the
    organizations past it are left, untouched, to the next run. Must run in a transaction, inside
    ``cross_organization``. A fixed number of statements (the module docstring). Idempotent: flags
    and holds are unique. Returns the organizations read, the new flags by source, and how many
    organizations are ``left`` for another run.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("review_flags_sweep_all() must run inside a transaction")
    plans = review_plans_locked(now=now)
    if not plans:
        return {"organizations": 0, "incentives": 0, "text": 0, "left": 0}
    sql = _Sql(connection.vendor, now)
    plans, left = _within_budget(sql, plans, FULL_READ_BUDGET if budget is None else budget)
    full = [plan.organization_id for plan in plans if plan.since is None]
    since = [plan for plan in plans if plan.since is not None]
    sql.bigints("full_ids", full)
    sql.relation(
        "since",
        [("organization_id", "bigint"), ("scanned_until", "timestamptz")],
        [(plan.organization_id, sql.datetime(plan.since)) for plan in since if plan.since is not None],
    )
    sql.relation(
        "org_window",
        [("organization_id", "bigint"), ("window_days", "integer")],
        [(plan.organization_id, plan.window_days) for plan in plans],
    )
    labels = {kind: str(label) for kind, label in Incentive._meta.get_field("kind").choices}  # type: ignore[misc]
    sql.relation("kind_label", [("kind", "text"), ("label", "text")], sorted(labels.items()))
    # Each word with its longest run of ASCII characters: a row whose text, lower-cased in ASCII only
    # (cheap), lacks the run cannot hold the word, so only the rest are matched properly (Unicode).
    sql.relation(
        "org_word",
        [("organization_id", "bigint"), ("word", "text"), ("token", "text")],
        [(plan.organization_id, word, _ascii_run(word)) for plan in plans for word in sorted(set(plan.words))],
    )

    flagged = {"incentives": Counter[int](), "text": Counter[int]()}
    flagged["incentives"].update(sql.insert_flags("incentives", sql.incentive_candidates()))
    for place, model, fields, reference_column in _TEXT_PLACES:
        candidates = sql.text_candidates(place, model._meta.db_table, fields, reference_column)
        flagged["text"].update(sql.insert_flags(f"text of {place}", candidates))
    sql.holds_for_stamped_flags()  # SQLite only: PostgreSQL inserted them with the flags
    sql.audit(
        [
            (organization_id, source, counts[organization_id])
            for organization_id in sorted(set(flagged["incentives"]) | set(flagged["text"]))
            for source, counts in flagged.items()
            if counts[organization_id]
        ]
    )
    sql.checkpoints_move([(plan.organization_id, plan.fingerprint) for plan in plans], until=now - RESCAN_MARGIN)
    return {
        "organizations": len(plans),
        "incentives": sum(flagged["incentives"].values()),
        "text": sum(flagged["text"].values()),
        "left": left,
    }


def _within_budget(sql: _Sql, plans: list[ReviewPlan], budget: int) -> tuple[list[ReviewPlan], int]:
    """The plans to run now: every incremental one, and the full reads, in organization order, while
    their references fit in ``budget`` (the first always runs); and how many full reads are left.
    One statement counts the references, on the nights with a full read only."""
    full = [plan.organization_id for plan in plans if plan.since is None]
    if not full:
        return plans, 0
    sizes = sql.references_per_organization(full)
    kept, left, total = [], 0, 0
    for plan in plans:
        if plan.since is None:
            size = sizes.get(plan.organization_id, 0)
            if total and total + size > budget:
                left += 1
                continue
            total += size
        kept.append(plan)
    return kept, left


def _ascii_run(word: str) -> str:
    runs = "".join(char if char.isascii() else "\0" for char in word).split("\0")
    return max(runs, key=len)


# --- The statements ----------------------------------------------------------------------------------

_FLAG_COLUMNS = (
    "organization_id, reference_id, incentive_id, source_key, reason, matched_text, status, resolved_by_id,"
    " resolved_at, justification, disclosure, created_at, updated_at"
)
_FLAG_VALUES = (
    "c.organization_id, c.reference_id, c.incentive_id, c.source_key, c.reason, c.matched_text, %(open)s, NULL,"
    " NULL, '', '', %(now)s, %(now)s"
)
_HOLD_COLUMNS = "organization_id, reference_id, kind, source, reason, released_at, created_at, updated_at"
# The unique keys that make a flag or hold once (references_flag_once, references_hold_uniq): naming them
# spares the other unique indexes (the ids') a check per row.
_FLAG_KEY = "(organization_id, reference_id, source_key)"
_HOLD_KEY = "(organization_id, reference_id, kind, source)"


class _Sql:
    """The sweep's statements, for PostgreSQL or SQLite, and the parameters they share.

    Lists travel as one parameter each, never spliced into the SQL: on PostgreSQL typed arrays (the
    planner sees how many elements, so a night with no full read plans no sequential scan), on SQLite
    a JSON document read with ``json_each``.
    """

    def __init__(self, vendor: str, now: datetime) -> None:
        self.postgresql = vendor == "postgresql"
        self.now = now
        self.params: dict[str, Any] = {
            "now": connection.ops.adapt_datetimefield_value(now),
            "open": FlagStatus.OPEN,
            "review": HoldKind.REVIEW,
            "retired": ReferenceStatus.RETIRED,
            "tz": timezone.get_current_timezone_name(),
            "margin": SNIPPET_MARGIN,
            "whitespace": _WHITESPACE,
        }
        self.relations: dict[str, str] = {}

    # Parameters

    def datetime(self, value: datetime) -> Any:
        return connection.ops.adapt_datetimefield_value(value)

    def bigints(self, name: str, values: list[int]) -> None:
        self.params[name] = values if self.postgresql else json.dumps(values)

    def in_list(self, column: str, name: str) -> str:
        if self.postgresql:
            return f"{column} = ANY(%({name})s::bigint[])"
        return f"{column} IN (SELECT value FROM json_each(%({name})s))"

    def relation(self, name: str, columns: list[tuple[str, str]], rows: list[tuple[Any, ...]]) -> None:
        """A named table of ``rows``, for the statements' ``WITH`` lists."""
        names = ", ".join(column for column, _type in columns)
        if self.postgresql:
            arrays = []
            for index, (column, sql_type) in enumerate(columns):
                self.params[f"{name}_{column}"] = [row[index] for row in rows]
                arrays.append(f"%({name}_{column})s::{sql_type}[]")
            self.relations[name] = f"{name} AS (SELECT * FROM unnest({', '.join(arrays)}) AS r({names}))"
        else:
            self.params[name] = json.dumps(rows)
            picks = ", ".join(
                f"json_extract(value, '$[{index}]') AS {column}" for index, (column, _type) in enumerate(columns)
            )
            self.relations[name] = f"{name} AS (SELECT {picks} FROM json_each(%({name})s))"

    def with_(self, *names: str) -> str:
        return "WITH " + ",\n".join(self.relations[name] for name in names)

    # Vendor spellings

    def day_start(self, day: str, sign: str, days: str) -> str:
        """Midnight, in the current time zone, ``days`` days before or after the date ``day``, as the
        column compares (Python's ``make_aware(datetime.combine(day, time.min)) ± timedelta(days)``)."""
        if self.postgresql:
            return f"(({day} {sign} {days})::timestamp AT TIME ZONE %(tz)s)"
        # SQLite stores UTC text; 'utc' reads the local midnight in the process's zone, which Django
        # sets to TIME_ZONE.
        return f"datetime({day}, '{sign}' || {days} || ' days', 'utc')"

    def date_text(self, day: str) -> str:
        return f"to_char({day}, 'YYYY-MM-DD')" if self.postgresql else day

    def ascii_lower(self, text: str) -> str:
        # On PostgreSQL, lower() under the "C" collation folds ASCII letters only, three times as fast
        # as the full Unicode lower() over 1,000,000 summaries; SQLite's lower() is ASCII-only anyway.
        return f'lower(({text}) COLLATE "C")' if self.postgresql else f"lower({text})"

    def find(self, text: str, word: str) -> str:
        return f"strpos({text}, {word})" if self.postgresql else f"instr({text}, {word})"

    def greatest(self, a: str, b: str) -> str:
        return f"greatest({a}, {b})" if self.postgresql else f"max({a}, {b})"

    def trim(self, text: str) -> str:
        return f"btrim({text}, %(whitespace)s)" if self.postgresql else f"trim({text}, %(whitespace)s)"

    def changed_since(self, table: str, alias: str) -> str:
        """``table``'s rows (as ``alias``) changed in (checkpoint, now] of the organizations in ``since``.

        On PostgreSQL a ``LATERAL`` subquery that cannot be flattened (``OFFSET 0``): one range scan of
        the (organization, updated_at) index per organization, whatever the planner guesses of the row
        counts. Joined plainly, the row-level security filter made it guess a handful of rows, and it
        chose a sequential scan of the table compared with every organization (20,000 references
        times 17 organizations on the small benchmark, a million times a thousand on the full one).
        """
        if self.postgresql:
            return (
                f"since s CROSS JOIN LATERAL (SELECT * FROM {table} c WHERE c.organization_id = s.organization_id"
                f" AND c.updated_at > s.scanned_until AND c.updated_at <= %(now)s OFFSET 0) {alias}"
            )
        return (
            f"since s JOIN {table} {alias} ON {alias}.organization_id = s.organization_id"
            f" AND {alias}.updated_at > s.scanned_until AND {alias}.updated_at <= %(now)s"
        )

    def newline(self) -> str:
        return "E'\\n'" if self.postgresql else "char(10)"

    # The candidate flags: SELECTs of (organization_id, reference_id, incentive_id, source_key, reason,
    # matched_text), one row per flag the rules raise, new or not.

    def incentive_candidates(self) -> tuple[str, str]:
        """Every reference of the contact (or, for an account-wide incentive, the account) that was
        active within the organization's window around an incentive that changed, or whose contact's
        or account's references changed (a new reference, a new advocate); every incentive for an
        organization read in full. ``incentive_flag_references``'s rule, for many organizations."""
        ctes = self.with_("since", "org_window", "kind_label")
        select = f"""
changed AS (
    SELECT r.organization_id, r.advocate_id, r.account_id
      FROM {self.changed_since("references_reference", "r")}
),
picked AS (
    SELECT i.id, i.organization_id, i.contact_id, i.account_id, i.kind, i.given_on
      FROM references_incentive i WHERE {self.in_list("i.organization_id", "full_ids")}
    UNION
    SELECT i.id, i.organization_id, i.contact_id, i.account_id, i.kind, i.given_on
      FROM {self.changed_since("references_incentive", "i")}
    UNION
    SELECT i.id, i.organization_id, i.contact_id, i.account_id, i.kind, i.given_on
      FROM references_incentive i
      JOIN changed c ON c.organization_id = i.organization_id AND c.advocate_id = i.contact_id
    UNION
    SELECT i.id, i.organization_id, i.contact_id, i.account_id, i.kind, i.given_on
      FROM references_incentive i
      JOIN changed c ON c.organization_id = i.organization_id AND c.account_id = i.account_id
     WHERE i.contact_id IS NULL
),
incentive AS (
    -- Once per incentive, not per flag: its flags' key and reason, and its window (_active_between).
    SELECT p.id, p.organization_id, p.contact_id, p.account_id,
           'incentive:' || p.id AS source_key,
           'Incentive recorded: ' || COALESCE(l.label, p.kind) || ' on ' || {self.date_text("p.given_on")} AS reason,
           {self.day_start("p.given_on", "-", "w.window_days")} AS window_start,
           {self.day_start("p.given_on", "+", "w.window_days")} AS window_end
      FROM picked p
      JOIN org_window w ON w.organization_id = p.organization_id
      LEFT JOIN kind_label l ON l.kind = p.kind
),
candidate AS (
    -- The references it touches that existed, and were not yet retired, at some point of the window.
    SELECT i.organization_id, r.id AS reference_id, i.id AS incentive_id, i.source_key, i.reason, '' AS matched_text
      FROM incentive i
      JOIN references_reference r ON r.organization_id = i.organization_id AND r.advocate_id = i.contact_id
     WHERE r.created_at <= i.window_end
       AND (r.status <> %(retired)s OR r.retired_at IS NULL OR r.retired_at >= i.window_start)
    UNION ALL
    SELECT i.organization_id, r.id, i.id, i.source_key, i.reason, ''
      FROM incentive i
      JOIN references_reference r ON r.organization_id = i.organization_id AND r.account_id = i.account_id
     WHERE i.contact_id IS NULL AND r.created_at <= i.window_end
       AND (r.status <> %(retired)s OR r.retired_at IS NULL OR r.retired_at >= i.window_start)
)"""
        return ctes, select

    def text_candidates(
        self, place: str, table: str, fields: tuple[str, str], reference_column: str
    ) -> tuple[str, str]:
        """One flag per row and word of its organization found in either field (on the first that has
        it, in ``fields`` order), quoting the passage: what ``review_flag_text_scan`` raised."""
        first, second = fields
        prefix = f"text_{place}"
        self.params.update(
            {
                f"{prefix}_key": f"text:{place}:",
                f"{prefix}_where": place.replace("_", " "),
                f"{prefix}_first": first.replace("_", " "),
                f"{prefix}_second": second.replace("_", " "),
            }
        )
        both = f"COALESCE(t.{first}, '') || {self.newline()} || COALESCE(t.{second}, '')"
        # Python's text[max(0, start - margin) : end + margin], in SQL's 1-based substr.
        begin = self.greatest("start - %(margin)s", "0")
        passage = self.trim(f"substr(body, {begin} + 1, start + length(word) + %(margin)s - {begin})")
        rows = f"""t.id, t.organization_id, t.{reference_column} AS reference_id,
                   COALESCE(t.{first}, '') AS first_text, COALESCE(t.{second}, '') AS second_text,
                   {self.ascii_lower(both)} AS folded"""
        ctes = self.with_("since", "org_word")
        select = f"""
scoped AS (
    SELECT {rows} FROM {table} t WHERE {self.in_list("t.organization_id", "full_ids")}
    UNION ALL
    SELECT {rows} FROM {self.changed_since(table, "t")}
),
hit AS (
    -- Each row meets its own organization's words only; the token (ASCII) check is the cheap one, the
    -- position is then found in the fully lower-cased field.
    SELECT r.id, r.organization_id, r.reference_id, w.word,
           {self.find("lower(r.first_text)", "w.word")} AS at_first,
           {self.find("lower(r.second_text)", "w.word")} AS at_second,
           r.first_text, r.second_text
      FROM scoped r
      JOIN org_word w ON w.organization_id = r.organization_id AND {self.find("r.folded", "w.token")} > 0
),
found AS (
    SELECT organization_id, reference_id, id, word,
           CASE WHEN at_first > 0 THEN %({prefix}_first)s ELSE %({prefix}_second)s END AS field,
           CASE WHEN at_first > 0 THEN first_text ELSE second_text END AS body,
           CASE WHEN at_first > 0 THEN at_first ELSE at_second END - 1 AS start
      FROM hit
     WHERE at_first > 0 OR at_second > 0
),
candidate AS (
    SELECT organization_id, reference_id, CAST(NULL AS bigint) AS incentive_id,
           substr(%({prefix}_key)s || id || ':' || word, 1, 200) AS source_key,
           substr('Mentions “' || word || '” (' || %({prefix}_where)s || ' ' || field || ')', 1, 300) AS reason,
           -- _snippet: the margin either side, stripped, with an ellipsis where the text goes on.
           CASE WHEN start > %(margin)s THEN '…' ELSE '' END
           || {passage}
           || CASE WHEN start + length(word) + %(margin)s < length(body) THEN '…' ELSE '' END AS matched_text
      FROM found
)"""
        return ctes, select

    def references_per_organization(self, organization_ids: list[int]) -> dict[int, int]:
        self.bigints("count_ids", organization_ids)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""/* review sweep: what the full reads cost */
                    SELECT r.organization_id, count(*) FROM references_reference r
                     WHERE {self.in_list("r.organization_id", "count_ids")} GROUP BY r.organization_id""",
                self.params,
            )
            return dict(cursor.fetchall())

    # Writes

    def insert_flags(self, label: str, candidates: tuple[str, str]) -> Counter[int]:
        """Insert the candidate flags that are new, and on PostgreSQL their holds; new flags per organization."""
        ctes, select = candidates
        # The comment names the statement in logs and in the benchmark's slowest statements.
        ctes = f"/* review sweep: {label} */ {ctes}"
        if self.postgresql:
            # Every new flag holds its reference; a hold already there (or released) stays as it is.
            statement = f"""{ctes},{select},
new_flag AS (
    INSERT INTO references_reviewflag ({_FLAG_COLUMNS})
    SELECT {_FLAG_VALUES} FROM candidate c
    ON CONFLICT {_FLAG_KEY} DO NOTHING
    RETURNING organization_id, reference_id, source_key, reason
),
new_hold AS (
    INSERT INTO references_referencehold ({_HOLD_COLUMNS})
    SELECT f.organization_id, f.reference_id, %(review)s, f.source_key, f.reason, NULL, %(now)s, %(now)s
      FROM new_flag f
    ON CONFLICT {_HOLD_KEY} DO NOTHING
)
SELECT organization_id, count(*) FROM new_flag GROUP BY organization_id"""
        else:
            # WHERE true: SQLite reads "ON CONFLICT" after a bare FROM as a join's ON.
            statement = f"""{ctes},{select}
INSERT INTO references_reviewflag ({_FLAG_COLUMNS})
SELECT {_FLAG_VALUES} FROM candidate c WHERE true
ON CONFLICT {_FLAG_KEY} DO NOTHING
RETURNING organization_id"""
        with connection.cursor() as cursor:
            cursor.execute(statement, self.params)
            rows = cursor.fetchall()
        if self.postgresql:
            return Counter(dict(rows))
        return Counter(organization_id for (organization_id,) in rows)

    def holds_for_stamped_flags(self) -> None:
        """SQLite: hold the reference of every flag this run inserted (they carry its time)."""
        if self.postgresql:
            return
        with connection.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO references_referencehold ({_HOLD_COLUMNS})
                    SELECT f.organization_id, f.reference_id, %(review)s, f.source_key, f.reason, NULL, %(now)s, %(now)s
                      FROM references_reviewflag f WHERE f.created_at = %(now)s
                    ON CONFLICT {_HOLD_KEY} DO NOTHING""",
                self.params,
            )

    def audit(self, raised: list[tuple[int, str, int]]) -> None:
        """The ``review_flag.raised`` rows ``record`` writes, for every organization at once."""
        if not raised:
            return
        self.relation(
            "raised",
            [("ordinal", "integer"), ("organization_id", "bigint"), ("source", "text"), ("flags", "integer")],
            [(ordinal, *row) for ordinal, row in enumerate(raised)],
        )
        details = "jsonb_build_object" if self.postgresql else "json_object"
        with connection.cursor() as cursor:
            cursor.execute(
                f"""{self.with_("raised")}
                    INSERT INTO audit_auditevent
                        (organization_id, actor_id, actor_label, action, object_type, object_id, object_repr, details,
                         created_at, updated_at)
                    SELECT a.organization_id, NULL, 'system', 'review_flag.raised', '', '', '',
                           {details}('source', a.source, 'count', a.flags), %(now)s, %(now)s
                      FROM raised a ORDER BY a.ordinal""",
                self.params,
            )

    def checkpoints_move(self, moved: list[tuple[int, str]], *, until: datetime) -> None:
        self.relation("moved", [("organization_id", "bigint"), ("fingerprint", "text")], moved)
        self.params["until"] = self.datetime(until)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""{self.with_("moved")}
                    UPDATE references_reviewscan
                       SET scanned_until = %(until)s, fingerprint = moved.fingerprint, updated_at = %(now)s
                      FROM moved WHERE references_reviewscan.organization_id = moved.organization_id""",
                self.params,
            )
