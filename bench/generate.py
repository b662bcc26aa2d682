"""Generate issue 6's benchmark data set into a dedicated PostgreSQL database, with COPY.

    python -m bench.generate --scale small          # 20 organizations, 20,000 references (CI smoke)
    python -m bench.generate --scale full           # 1,000 organizations, 1,000,000 references
    python -m bench.generate --scale small --database-url postgres://postgres@127.0.0.1:5432/refmgr_bench_small

The database (default ``refmgr_bench_<scale>`` on 127.0.0.1) is created if missing and migrated with
Django's ``migrate`` (settings ``refmgr.settings.local``). Rows are then streamed with psycopg2's
``copy_expert`` (COPY … FROM STDIN, text format) from in-memory buffers, one transaction per table,
with ids assigned here and every sequence reset afterwards; ANALYZE runs last.

Row-level security is bypassed on purpose, for the bulk load only: the loader connects as the database
owner from DATABASE_URL (a superuser skips every policy) and sets ``app.cross_org = 'on'`` for its
session, which the policies of ``refmgr/tenancy/rls.py`` accept, so it also works for a non-superuser
owner under FORCE ROW LEVEL SECURITY. The application itself never connects this way.

The consent ledger is a real one: each organization's events are numbered from 1 and chained with
``consent.ledger.event_hash``, its ``ConsentLedgerHead`` ends the chain, and ``ConsentState`` and
``ReferenceScopeGrant`` are folded from the events with ``consent.ledger.states_from_ledger``, so
``manage.py verify_ledger`` and ``manage.py consent_state_check`` pass on the result.

Everything is seeded (``--seed``), so two runs at one scale produce the same rows apart from the
timestamps, which are relative to the moment of generation.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from typing import Any

SCALES: dict[str, dict[str, int]] = {
    "small": {
        "organizations": 20,
        "references": 20_000,
        "consent_events": 40_000,
        "usage_requests": 10_000,
        "incentives": 1_000,
    },
    "full": {
        "organizations": 1_000,
        "references": 1_000_000,
        "consent_events": 2_000_000,
        "usage_requests": 500_000,
        "incentives": 50_000,
    },
}
LARGEST_SHARE = 0.10  # the largest organization holds 10 % of all references (100,000 at full scale)
SKEW = 0.5  # the other organizations' sizes fall off as rank ** -SKEW (median about 660 at full scale)
MIN_REFERENCES = 5
REFERENCES_PER_ACCOUNT = 10
CONTACTS_PER_ACCOUNT = 2  # the first is the account's authorised signatory
ROLES = (("admin", "admin"), ("manager", "reference_manager"), ("sales1", "sales"), ("sales2", "sales"))
ROLES += (("compliance", "compliance"),)
MULTI_ORG_MEMBERSHIPS = 10  # one salesperson belongs to the first ten organizations
BENCH_PASSWORD = "bench-password"  # noqa: S105 - every generated user's password, for the load generator
FLUSH_ROWS = 50_000  # rows per COPY chunk
HISTORY_DAYS = 540  # consent stories start within this many days before now
SWEEP_LAG = timedelta(days=1)  # the sweeps last ran this long ago: what fell due since is still due

PRODUCTS = ("Atlas", "Beacon", "Cobalt", "Delta", "Ember", "Flux", "Granite", "Harbor", "Ion", "Juniper")
PRODUCTS += ("Keystone", "Lumen")
USE_CASES = ("migration", "analytics", "compliance", "onboarding", "automation", "security", "reporting")
USE_CASES += ("forecasting", "integration", "support")
TAGS = ("enterprise", "mid-market", "public-sector", "healthcare", "fintech", "retail", "emea", "apac", "amer")
TAGS += ("award", "fast-rollout", "cost-saving", "greenfield", "replacement", "multi-site", "api", "mobile")
TAGS += ("pilot", "expansion", "renewal")
INDUSTRIES = ("Software", "Banking", "Insurance", "Healthcare", "Retail", "Manufacturing", "Logistics")
INDUSTRIES += ("Education", "Government", "Energy", "Telecom", "Media")
REGIONS = ("North America", "Latin America", "Western Europe", "Nordics", "DACH", "UK & Ireland", "APAC")
REGIONS += ("Middle East", "Africa")
SIZE_BANDS = ("1-49", "50-249", "250-999", "1000-4999", "5000+")
NAME_PARTS = ("Acme", "Blue", "Cedar", "Delta", "Evergreen", "Falcon", "Globex", "Helix", "Initech", "Juno")
NAME_PARTS += ("Kestrel", "Lyra", "Meridian", "Nimbus", "Orion", "Pioneer", "Quantum", "Redwood", "Summit", "Tandem")
NAME_SUFFIXES = ("Systems", "Group", "Labs", "Partners", "Holdings", "Industries", "Health", "Bank", "Retail")
FIRST_NAMES = ("Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Lars")
FIRST_NAMES += ("Maya", "Nils", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Victor", "Wen", "Yusuf")
LAST_NAMES = ("Adams", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen")
LAST_NAMES += ("Kowalski", "Larsen", "Moreau", "Nakamura", "Okafor", "Petrov", "Rossi", "Silva", "Tanaka", "Weber")
TITLES = ("CIO", "CTO", "VP Engineering", "Head of Operations", "IT Director", "Product Manager", "CFO")
TITLES += ("Data Lead", "Security Officer", "Procurement Manager")
WORDS = (
    "migration", "rollout", "platform", "analytics", "dashboard", "compliance", "audit", "savings", "integration",
    "workflow", "automation", "cloud", "legacy", "onboarding", "pipeline", "forecast", "revenue", "support",
    "uptime", "latency", "security", "privacy", "reporting", "mobile", "partner", "global", "team", "customer",
    "faster", "reduced", "improved", "scaled", "replaced", "consolidated", "launched", "adopted", "months",
    "weeks", "hours", "percent", "regions", "sites", "users", "licences", "data", "warehouse", "billing",
    "procurement", "training", "champion", "executive", "sponsor", "results", "impact", "quarter", "growth",
)  # fmt: skip
# A long tail for summaries, as in real text: 5,000 made-up terms ("velkora", "tamsund"…) drawn with
# Zipf frequencies (s = 1.1), so a search for the 50th most common term matches about 1 % of the
# references, while WORDS (each in a third or more of the summaries) give the worst case.
_SYLLABLES = ("ka", "lo", "mi", "ra", "ten", "vo", "zu", "bel", "dor", "fin", "gar", "hu", "jas", "kel")
_SYLLABLES += ("mon", "nor", "pel", "quin", "sor", "tam", "und", "vel", "wyn", "yor")
_ENDINGS = ("a", "is", "ora", "und", "ek", "il", "on", "ar", "um")
TERMS = tuple(f"{a}{b}{c}" for a in _SYLLABLES for b in _SYLLABLES for c in _ENDINGS)[:5000]
_TERM_WEIGHTS = tuple(accumulate(1 / rank**1.1 for rank in range(1, len(TERMS) + 1)))


def search_term(rank: int) -> str:
    """The ``rank``-th most frequent long-tail term (1-based), for the benchmark's searches."""
    return TERMS[rank - 1]


SCOPE_WEIGHTS = (
    ("call", 30), ("quote", 20), ("logo", 15), ("case_study", 10), ("name_in_list", 15), ("site_visit", 5),
    ("video", 5),
)  # fmt: skip
COMPANY_SCOPE_VALUES = frozenset({"logo", "name_in_list"})
PUBLICATIONS = ("attributed", "anonymised", "internal_only")
USAGE_STATUSES = (("pending", 20), ("approved", 20), ("declined", 10), ("completed", 45), ("cancelled", 5))
INCENTIVE_KINDS = ("gift_card", "discount", "free_service", "payment", "merchandise", "event_travel", "donation")
INCENTIVE_CONDITIONS = (("none", 70), ("participation", 20), ("positive_sentiment", 5), ("other", 5))
CURRENCIES = ("USD", "EUR", "GBP", "SEK", "JPY", "CAD", "AUD")
STAGES = ("Discovery", "Evaluation", "Proposal", "Negotiation", "Closed")


# --- Output: progress and timings ---------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal; a line per quarter otherwise (CI logs). No dependency."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, max(total, 1), 0
        self.started = self.shown = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.quarter = 0

    def add(self, count: int) -> None:
        self.done += count
        now = time.perf_counter()
        if self.tty and now - self.shown >= 0.25:
            self.shown = now
            self._draw("\r")
        elif not self.tty and self.done * 4 // self.total > self.quarter and self.done < self.total:
            self.quarter = self.done * 4 // self.total
            self._draw("")
            sys.stderr.write("\n")

    def close(self) -> None:
        self._draw("\r" if self.tty else "")
        sys.stderr.write("\n")

    def _draw(self, start: str) -> None:
        width = 30
        filled = min(width, self.done * width // self.total)
        elapsed = time.perf_counter() - self.started
        sys.stderr.write(
            f"{start}  {self.label:<26} [{'#' * filled}{'.' * (width - filled)}] "
            f"{self.done:>10,}/{self.total:,} {elapsed:7.1f} s"
        )
        sys.stderr.flush()


@dataclass
class Timings:
    rows: list[tuple[str, int, float]] = field(default_factory=list)

    def add(self, what: str, count: int, seconds: float) -> None:
        self.rows.append((what, count, seconds))

    def print(self, total_seconds: float) -> None:
        print(f"\n{'step':<34} {'rows':>12} {'seconds':>9} {'rows/s':>10}")
        for what, count, seconds in self.rows:
            rate = f"{count / seconds:,.0f}" if count and seconds > 0 else ""
            print(f"{what:<34} {count:>12,} {seconds:>9.2f} {rate:>10}")
        print(f"{'total (migrate excluded)':<34} {sum(r[1] for r in self.rows):>12,} {total_seconds:>9.2f}")


# --- COPY ------------------------------------------------------------------------------------

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: Any) -> str:
    """One value in COPY's text format."""
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


class Copier:
    """Streams rows into one table with COPY, FLUSH_ROWS at a time, inside the caller's transaction."""

    def __init__(self, cursor: Any, table: str, columns: Sequence[str], progress: Progress | None = None) -> None:
        self.cursor, self.table, self.columns, self.progress = cursor, table, columns, progress
        self.sql = f'COPY "{table}" ({", ".join(columns)}) FROM STDIN'
        self.buffer = io.StringIO()
        self.pending = self.count = 0

    def add(self, row: Sequence[Any]) -> None:
        self.buffer.write("\t".join(map(_text, row)))
        self.buffer.write("\n")
        self.pending += 1
        if self.pending >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        self.buffer.seek(0)
        self.cursor.copy_expert(self.sql, self.buffer)
        self.count += self.pending
        if self.progress is not None:
            self.progress.add(self.pending)
        self.buffer = io.StringIO()
        self.pending = 0


# --- Shapes --------------------------------------------------------------------------------


def apportion(total: int, weights: Sequence[float], minimum: int = 0) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder), each part at least ``minimum``."""
    if not weights:
        return []
    rest = total - minimum * len(weights)
    if rest < 0:
        raise ValueError(f"cannot give {len(weights)} parts {minimum} each out of {total}")
    scale = sum(weights)
    quotas = [rest * w / scale for w in weights]
    parts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(weights)), key=lambda i: quotas[i] - parts[i], reverse=True)
    for i in by_remainder[: rest - sum(parts)]:
        parts[i] += 1
    return [p + minimum for p in parts]


def reference_counts(total: int, organizations: int) -> list[int]:
    """Skewed sizes, largest first: the first organization gets LARGEST_SHARE, the rest fall off as a power law."""
    if organizations == 1:
        return [total]
    largest = round(total * LARGEST_SHARE)
    others = apportion(total - largest, [rank**-SKEW for rank in range(2, organizations + 1)], MIN_REFERENCES)
    return [largest, *others]


def weighted(rng: random.Random, pairs: Sequence[tuple[str, int]]) -> Callable[[], str]:
    values, weights = zip(*pairs, strict=True)
    cumulative = list(accumulate(weights))
    return lambda: rng.choices(values, cum_weights=cumulative)[0]


@dataclass
class Org:
    """What later tables need to know of an organization; its rows have contiguous ids."""

    id: int
    slug: str
    references: int
    reference_start: int = 0  # first reference id
    account_start: int = 0  # first account id
    accounts: int = 0
    user_start: int = 0  # admin, manager, sales1, sales2, compliance
    active: list[int] = field(default_factory=list)  # ids of active references

    @property
    def manager(self) -> int:
        return self.user_start + 1

    @property
    def salespeople(self) -> tuple[int, int]:
        return self.user_start + 2, self.user_start + 3

    @property
    def compliance(self) -> int:
        return self.user_start + 4


def contact_id(account: int, k: int) -> int:
    return (account - 1) * CONTACTS_PER_ACCOUNT + 1 + k


# --- The generator ---------------------------------------------------------------------------


class Generator:
    def __init__(self, connection: Any, scale: dict[str, int], seed: int) -> None:
        self.connection, self.scale = connection, scale
        self.rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
        self.now = datetime.now(UTC)
        self.timings = Timings()
        counts = reference_counts(scale["references"], scale["organizations"])
        self.orgs = [Org(id=i, slug=f"bench-{i:04d}", references=n) for i, n in enumerate(counts, start=1)]
        # Per reference (indexed by id): its account, its advocate (0: none), publication and status.
        size = scale["references"] + 1
        self.ref_account = array("q", bytes(8 * size))
        self.ref_advocate = array("q", bytes(8 * size))
        self.ref_publication = bytearray(size)
        self.ref_created = array("d", bytes(8 * size))

    # Helpers

    def ago(self, low_days: float, high_days: float) -> datetime:
        return self.now - timedelta(days=self.rng.uniform(low_days, high_days))

    def table(
        self, name: str, columns: Sequence[str], total: int, rows: Iterable[Sequence[Any]], *, triggers: bool = True
    ) -> int:
        started = time.perf_counter()
        progress = Progress(name, total)
        with self.connection.cursor() as cursor:
            if not triggers:
                # Skips the row triggers (and foreign-key checks, also triggers) for this load only;
                # search_documents() then does in one statement what they would do row by row.
                cursor.execute("SET LOCAL session_replication_role = replica")
            copier = Copier(cursor, name, columns, progress)
            for row in rows:
                copier.add(row)
            copier.flush()
        self.connection.commit()
        progress.close()
        self.timings.add(name, copier.count, time.perf_counter() - started)
        return copier.count

    def run(self) -> None:
        self.organizations()
        self.users()
        self.memberships()
        self.privacy_policies()
        self.accounts()
        self.contacts()
        self.references()
        self.labels()
        self.search_documents()
        self.consent()
        self.usage()
        self.incentives()
        self.finish()

    # Tables

    def organizations(self) -> None:
        created = self.now - timedelta(days=1000)

        def rows() -> Iterator[Sequence[Any]]:
            for org in self.orgs:
                yield (org.id, created, created, f"Bench Organization {org.id:04d}", org.slug, True)

        columns = ("id", "created_at", "updated_at", "name", "slug", "is_active")
        self.table("tenancy_organization", columns, len(self.orgs), rows())

    def users(self) -> None:
        from django.contrib.auth.hashers import make_password

        # One hash for all: PBKDF2 costs ~0.5 s a call, and these logins guard nothing.
        password = make_password(BENCH_PASSWORD)
        joined = self.now - timedelta(days=1000)
        user_id = 0
        for org in self.orgs:
            org.user_start = user_id + 1
            user_id += len(ROLES)
        self.multi_user = user_id + 1

        def rows() -> Iterator[Sequence[Any]]:
            for org in self.orgs:
                for offset, (key, _role) in enumerate(ROLES):
                    username = f"{org.slug}-{key}"
                    first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
                    yield (org.user_start + offset, password, None, False, username, first, last)
            yield (self.multi_user, password, None, False, "bench-multi", "Multi", "Org")

        def complete() -> Iterator[Sequence[Any]]:
            for row in rows():
                yield (*row, f"{row[4]}@example.com", False, True, joined)

        columns = ("id", "password", "last_login", "is_superuser", "username", "first_name", "last_name", "email")
        columns += ("is_staff", "is_active", "date_joined")
        self.table("auth_user", columns, user_id + 1, complete())

    def memberships(self) -> None:
        created = self.now - timedelta(days=1000)

        def rows() -> Iterator[Sequence[Any]]:
            membership_id = 0
            for org in self.orgs:
                for offset, (_key, role) in enumerate(ROLES):
                    membership_id += 1
                    yield (membership_id, created, created, role, True, org.user_start + offset, org.id)
            for org in self.orgs[:MULTI_ORG_MEMBERSHIPS]:
                membership_id += 1
                yield (membership_id, created, created, "sales", True, self.multi_user, org.id)

        columns = ("id", "created_at", "updated_at", "role", "is_active", "user_id", "organization_id")
        total = len(self.orgs) * len(ROLES) + min(MULTI_ORG_MEMBERSHIPS, len(self.orgs))
        self.table("tenancy_membership", columns, total, rows())

    def privacy_policies(self) -> None:
        published = self.now - timedelta(days=950)
        body = "We keep only what we need to run our customer reference programme.\n\nYou can ask us any time."

        def rows() -> Iterator[Sequence[Any]]:
            for org in self.orgs:
                admin = org.user_start
                yield (
                    org.id, published, published, 1, "published", "Privacy policy", body, "", published.date(),
                    published, admin, org.id, admin,
                )  # fmt: skip

        columns = ("id", "created_at", "updated_at", "version", "status", "title", "body", "summary_of_changes")
        columns += ("effective_date", "published_at", "created_by_id", "organization_id", "published_by_id")
        self.table("privacy_privacypolicy", columns, len(self.orgs), rows())

    def accounts(self) -> None:
        total_accounts = max(len(self.orgs), self.scale["references"] // REFERENCES_PER_ACCOUNT)
        per_org = apportion(total_accounts, [org.references for org in self.orgs], 1)
        account_id = 0
        for org, count in zip(self.orgs, per_org, strict=True):
            org.account_start, org.accounts = account_id + 1, count
            account_id += count
        self.total_accounts = account_id
        rng = self.rng

        def rows() -> Iterator[Sequence[Any]]:
            for org in self.orgs:
                for account in range(org.account_start, org.account_start + org.accounts):
                    created = self.ago(900, 1000)
                    name = f"{rng.choice(NAME_PARTS)} {rng.choice(NAME_SUFFIXES)} {account}"
                    yield (
                        account, created, created, name, rng.choice(INDUSTRIES), rng.choice(REGIONS),
                        rng.choice(SIZE_BANDS), f"https://account{account}.example.com", f"CRM-{account}", org.id,
                    )  # fmt: skip

        columns = ("id", "created_at", "updated_at", "name", "industry", "region", "size_band", "website", "crm_id")
        columns += ("organization_id",)
        self.table("references_account", columns, account_id, rows())

    def contacts(self) -> None:
        rng = self.rng

        def rows() -> Iterator[Sequence[Any]]:
            for org in self.orgs:
                for account in range(org.account_start, org.account_start + org.accounts):
                    for k in range(CONTACTS_PER_ACCOUNT):
                        contact = contact_id(account, k)
                        created = self.ago(850, 900)
                        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
                        yield (
                            contact, created, created, name, rng.choice(TITLES),
                            f"contact{contact}@account{account}.example.com", "+1 555 0100", k == 0, None, None,
                            rng.random() < 0.01, account, org.id,
                        )  # fmt: skip

        columns = ("id", "created_at", "updated_at", "name", "title", "email", "phone", "is_authorised_signatory")
        columns += ("usage_cap", "cooldown_days", "requests_paused", "account_id", "organization_id")
        self.table("references_contact", columns, self.total_accounts * CONTACTS_PER_ACCOUNT, rows())

    def references(self) -> None:
        rng = self.rng
        reference_id = 0
        for org in self.orgs:
            org.reference_start = reference_id + 1
            reference_id += org.references

        def rows() -> Iterator[Sequence[Any]]:
            for org in self.orgs:
                for ref in range(org.reference_start, org.reference_start + org.references):
                    account = org.account_start + rng.randrange(org.accounts)
                    advocate = contact_id(account, rng.randrange(CONTACTS_PER_ACCOUNT)) if rng.random() < 0.9 else 0
                    publication = rng.randrange(len(PUBLICATIONS))
                    created = self.ago(1, 1000)
                    updated = created + (self.now - created) * rng.random()
                    retired = rng.random() < 0.05
                    self.ref_account[ref], self.ref_advocate[ref] = account, advocate
                    self.ref_publication[ref] = publication
                    self.ref_created[ref] = created.timestamp()
                    if not retired:
                        org.active.append(ref)
                    product = rng.choice(PRODUCTS)
                    title = f"{product} {rng.choice(USE_CASES)} at account {account}: {rng.choice(WORDS)} story"
                    summary = " ".join(
                        rng.choices(WORDS, k=rng.randint(12, 32))
                        + rng.choices(TERMS, cum_weights=_TERM_WEIGHTS, k=rng.randint(3, 8))
                    )
                    yield (
                        ref, created, updated, title, summary, PUBLICATIONS[publication],
                        "retired" if retired else "active", updated if retired else None, "", account,
                        advocate or None, org.id, org.manager, False,
                    )  # fmt: skip

        columns = ("id", "created_at", "updated_at", "title", "summary", "publication", "status", "retired_at")
        columns += ("disclosure", "account_id", "advocate_id", "organization_id", "owner_id", "restricted")
        self.table("references_reference", columns, reference_id, rows(), triggers=False)

    def labels(self) -> None:
        rng = self.rng
        expected = int(self.scale["references"] * 2.2)

        def rows() -> Iterator[Sequence[Any]]:
            label_id = 0
            for org in self.orgs:
                for ref in range(org.reference_start, org.reference_start + org.references):
                    created = datetime.fromtimestamp(self.ref_created[ref], UTC)
                    chosen = [("product", rng.choice(PRODUCTS))]
                    if rng.random() < 0.7:
                        chosen.append(("use_case", rng.choice(USE_CASES)))
                    if rng.random() < 0.5:
                        chosen.append(("tag", rng.choice(TAGS)))
                    for kind, value in chosen:
                        label_id += 1
                        yield (label_id, created, created, kind, value, org.id, ref)

        columns = ("id", "created_at", "updated_at", "kind", "value", "organization_id", "reference_id")
        self.table("references_referencelabel", columns, expected, rows(), triggers=False)

    def search_documents(self) -> None:
        """Fill every reference's search document with the function the triggers use (migration 0006)."""
        started = time.perf_counter()
        print("  references_reference.search_document (one UPDATE) ...", flush=True)
        with self.connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute(
                "UPDATE references_reference SET search_document = "
                "refmgr_reference_document(id, title, summary, publication, account_id)"
            )
            count = cursor.rowcount
        self.connection.commit()
        self.timings.add("references_reference.search_document", count, time.perf_counter() - started)

    # The consent ledger, its states and the usable scopes

    def consent(self) -> None:
        from consent.ledger import GENESIS_HASH, event_hash, states_from_ledger
        from consent.models import ConsentEvent

        budgets = apportion(self.scale["consent_events"], [org.references for org in self.orgs])
        total = sum(budgets)
        started = time.perf_counter()
        progress = Progress("consent_consentevent", total)
        event_columns = (
            "id", "created_at", "updated_at", "sequence", "kind", "occurred_at", "scope", "party", "valid_until",
            "publication", "policy_version", "text_hash", "mechanism", "proof", "ip_prefix", "user_agent_hash",
            "note", "previous_hash", "hash", "actor_id", "contact_id", "organization_id", "reference_id", "link_id",
            "consent_request_id",
        )  # fmt: skip
        state_columns = (
            "id", "created_at", "updated_at", "scope", "party", "status", "valid_until", "publication",
            "policy_version", "text_hash", "last_sequence", "reminders_sent", "consent_request_id", "contact_id",
            "organization_id", "reference_id",
        )  # fmt: skip
        grant_columns = ("id", "created_at", "updated_at", "scope", "granted_until", "source", "organization_id")
        grant_columns += ("reference_id",)
        head_columns = ("id", "created_at", "updated_at", "sequence", "last_hash", "organization_id")
        fold_seconds = 0.0
        with self.connection.cursor() as cursor:
            events_out = Copier(cursor, "consent_consentevent", event_columns, progress)
            states_out = Copier(cursor, "consent_consentstate", state_columns)
            grants_out = Copier(cursor, "references_referencescopegrant", grant_columns)
            heads_out = Copier(cursor, "consent_consentledgerhead", head_columns)
            event_id = state_id = grant_id = head_id = 0
            for org, budget in zip(self.orgs, budgets, strict=True):
                if not budget or not org.active:
                    continue
                events: list[ConsentEvent] = []
                previous = GENESIS_HASH
                for sequence, (when, kind, fields) in enumerate(self.stories(org, budget), start=1):
                    event = ConsentEvent(
                        organization_id=org.id, sequence=sequence, kind=kind, occurred_at=when,
                        previous_hash=previous, **fields,
                    )  # fmt: skip
                    event.hash = previous = event_hash(event)
                    events.append(event)
                    event_id += 1
                    events_out.add((
                        event_id, when, when, sequence, kind, when, event.scope, event.party, event.valid_until,
                        event.publication, event.policy_version, event.text_hash, event.mechanism, "",
                        event.ip_prefix, event.user_agent_hash, event.note, event.previous_hash, event.hash,
                        event.actor_id,
                        event.contact_id, org.id, event.reference_id, None, None,
                    ))  # fmt: skip
                head_id += 1
                last = events[-1]
                heads_out.add((head_id, self.now, last.occurred_at, last.sequence, last.hash, org.id))
                # The states are what the ledger adds up to, by the application's own rule.
                fold_started = time.perf_counter()
                first_seen: dict[tuple[int, str, str], datetime] = {}
                for event in events:
                    if event.reference_id is not None:
                        first_seen.setdefault((event.reference_id, event.scope, event.party), event.occurred_at)
                states = states_from_ledger(events)
                fold_seconds += time.perf_counter() - fold_started
                for (reference, scope, party), values in sorted(states.items()):
                    state_id += 1
                    changed = events[values.last_sequence - 1].occurred_at
                    states_out.add((
                        state_id, first_seen[(reference, scope, party)], changed, scope, party, values.status,
                        values.valid_until, values.publication, values.policy_version, values.text_hash,
                        values.last_sequence, values.reminders_sent, None, values.contact_id, org.id, reference,
                    ))  # fmt: skip
                    # One party per scope here (required_parties), so the grant runs until that party's end.
                    if values.status == "granted":
                        grant_id += 1
                        grants_out.add((
                            grant_id, changed, changed, scope, values.valid_until, f"consent:{reference}:{scope}",
                            org.id, reference,
                        ))  # fmt: skip
            for copier in (events_out, states_out, grants_out, heads_out):
                copier.flush()
        self.connection.commit()
        progress.close()
        seconds = time.perf_counter() - started
        self.timings.add("consent (events+states+grants)", events_out.count, seconds)
        self.timings.add("  of which folding states", 0, fold_seconds)
        self.timings.add("  consent_consentstate rows", state_id, 0)
        self.timings.add("  references_referencescopegrant rows", grant_id, 0)
        self.timings.add("  consent_consentledgerhead rows", head_id, 0)

    def stories(self, org: Org, budget: int) -> list[tuple[datetime, str, dict[str, Any]]]:
        """Exactly ``budget`` events of consent stories for ``org``, in time order.

        Each story is one scope of one active reference, asked of the party that scope needs: granted
        (by link, after a request or with the page shown first) or declined; grants get a reminder 30
        days before they end, then are re-confirmed (extended a year), expired or, sometimes, revoked.
        Whatever fell due within SWEEP_LAG of now is left for the sweeps (expiry, reminders).
        """
        rng = self.rng
        pick_scope = weighted(rng, SCOPE_WEIGHTS)
        horizon = self.now - SWEEP_LAG
        used: set[tuple[int, str]] = set()
        out: list[tuple[float, int, int, str, dict[str, Any]]] = []
        count = story = 0
        capacity = len(org.active) * len(SCOPE_WEIGHTS)
        while count < budget and len(used) < capacity:
            ref = rng.choice(org.active)
            scope = pick_scope()
            if (ref, scope) in used:
                continue
            used.add((ref, scope))
            story += 1
            account = self.ref_account[ref]
            if scope in COMPANY_SCOPE_VALUES:
                party, contact = "company", contact_id(account, 0)
            else:
                party, contact = "individual", self.ref_advocate[ref] or contact_id(account, 1)
            text = f"{scope} of reference {ref}" if scope in ("quote", "case_study") else ""
            base = {
                "reference_id": ref, "contact_id": contact, "scope": scope, "party": party,
                "publication": PUBLICATIONS[self.ref_publication[ref]], "policy_version": 1,
                "text_hash": hashlib.sha256(text.encode()).hexdigest() if text else "",
            }  # fmt: skip
            by_link = {"mechanism": "link", "ip_prefix": "203.0.113.0", "user_agent_hash": f"{ref % 65536:016x}"}
            steps: list[tuple[datetime, str, dict[str, Any]]] = []
            start = self.ago(4, HISTORY_DAYS)  # a request answered up to 3 days later still lies in the past
            shape = rng.random()
            if shape < 0.35:
                steps.append((start, "requested", {**base, "mechanism": "manager", "actor_id": org.manager}))
                start += timedelta(hours=rng.uniform(1, 72))
            elif shape < 0.45:
                steps.append((start, "requested", {**base, "mechanism": "manager", "actor_id": org.manager}))
                start += timedelta(hours=rng.uniform(1, 72))
                steps.append((start, "notice_served", {**base, **by_link, "scope": "", "party": "", "publication": ""}))
                start += timedelta(minutes=rng.uniform(1, 30))
            elif shape < 0.55:
                steps.append((start, "requested", {**base, "mechanism": "manager", "actor_id": org.manager}))
                start += timedelta(hours=rng.uniform(1, 72))
                if start < horizon:
                    steps.append((start, "declined", {**base, **by_link, "publication": ""}))
                self._emit(out, steps, story)
                count += len(steps)
                continue
            if start >= horizon:
                self._emit(out, steps, story)
                count += len(steps)
                continue
            until = start + timedelta(days=365 if rng.random() < 0.8 else 182)
            steps.append((start, "granted", {**base, **by_link, "valid_until": until}))
            while True:
                if rng.random() < 0.05:  # revoked some time during the grant
                    revoked = start + (until - start) * rng.random()
                    if revoked < horizon:
                        steps.append((revoked, "revoked", {**base, **by_link, "publication": ""}))
                        break
                reminder = until - timedelta(days=30)
                if reminder >= horizon:
                    break  # no reminder due yet; still granted
                steps.append((
                    reminder, "reminded",
                    {**base, "mechanism": "system", "valid_until": until, "publication": "", "note": "30 days before"},
                ))  # fmt: skip
                if rng.random() < 0.6:  # re-confirmed through the reminder's link, for another year
                    start = reminder + timedelta(days=rng.uniform(0, 25))
                    if start >= horizon:
                        break  # reminded; the answer has not come yet
                    until = start + timedelta(days=365)
                    steps.append((start, "reconfirmed", {**base, **by_link, "valid_until": until}))
                    continue
                if until < horizon:
                    steps.append((until, "expired", {**base, "mechanism": "system", "publication": ""}))
                break  # expired, or past its reminder and not yet due for expiry
            self._emit(out, steps, story)
            count += len(steps)
        # Trim the most recent events to land exactly on the budget: a ledger's prefix is still a ledger.
        out.sort()
        return [(datetime.fromtimestamp(t, UTC), kind, fields) for t, _s, _i, kind, fields in out[:budget]]

    @staticmethod
    def _emit(
        out: list[tuple[float, int, int, str, dict[str, Any]]],
        steps: list[tuple[datetime, str, dict[str, Any]]],
        story: int,
    ) -> None:
        for index, (when, kind, fields) in enumerate(steps):
            out.append((when.timestamp(), story, index, kind, fields))

    # Usage requests and their ledger, incentives

    def usage(self) -> None:
        rng = self.rng
        per_org = apportion(self.scale["usage_requests"], [org.references for org in self.orgs])
        pick_status = weighted(rng, USAGE_STATUSES)
        pick_scope = weighted(rng, SCOPE_WEIGHTS)
        started = time.perf_counter()
        progress = Progress("references_usagerequest", sum(per_org))
        request_columns = (
            "id", "created_at", "updated_at", "scope", "opportunity_name", "opportunity_value", "currency",
            "opportunity_stage", "crm_opportunity_id", "needed_by", "purpose", "status", "decided_at",
            "decision_reason", "outcome", "outcome_notes", "completed_at", "decided_by_id", "organization_id",
            "reference_id", "requested_by_id",
        )  # fmt: skip
        event_columns = (
            "id", "created_at", "updated_at", "kind", "scope", "salesperson_label", "opportunity_name",
            "crm_opportunity_id", "outcome", "actor_id", "contact_id", "organization_id", "reference_id",
            "usage_request_id",
        )  # fmt: skip
        with self.connection.cursor() as cursor:
            requests_out = Copier(cursor, "references_usagerequest", request_columns, progress)
            events_out = Copier(cursor, "references_usageevent", event_columns)
            request_id = event_id = 0
            for org, count in zip(self.orgs, per_org, strict=True):
                for _ in range(count if org.active else 0):
                    request_id += 1
                    ref = rng.choice(org.active)
                    scope = pick_scope()
                    status = pick_status()
                    requested_by = rng.choice(org.salespeople)
                    created = self.ago(2, 720)
                    decided = created + timedelta(hours=rng.uniform(1, 96)) if status != "pending" else None
                    completed = decided + timedelta(days=rng.uniform(1, 30)) if status == "completed" else None
                    outcome = rng.choice(("won", "lost", "open")) if status == "completed" else ""
                    deal = f"Deal {request_id}"
                    crm = f"OPP-{request_id}"
                    value = Decimal(rng.randrange(5_000, 2_000_000)) if rng.random() < 0.8 else None
                    requests_out.add((
                        request_id, created, completed or decided or created, scope, deal, value,
                        "USD" if value is not None else "", rng.choice(STAGES), crm,
                        (created + timedelta(days=rng.randint(3, 60))).date(), "For the evaluation stage.", status,
                        decided, "" if decided is None else "OK", outcome, "", completed,
                        org.manager if decided else None, org.id, ref, requested_by,
                    ))  # fmt: skip
                    contact = self.ref_advocate[ref] or None
                    label = f"{org.slug} salesperson {requested_by}"
                    if status in ("approved", "completed"):
                        event_id += 1
                        events_out.add((
                            event_id, decided, decided, "approved", scope, label, deal, crm, "", org.manager,
                            contact, org.id, ref, request_id,
                        ))  # fmt: skip
                    if status == "completed":
                        event_id += 1
                        events_out.add((
                            event_id, completed, completed, "completed", scope, label, deal, crm, outcome,
                            requested_by, contact, org.id, ref, request_id,
                        ))  # fmt: skip
            requests_out.flush()
            events_out.flush()
        self.connection.commit()
        progress.close()
        self.timings.add("usage requests (+usage events)", request_id, time.perf_counter() - started)
        self.timings.add("  references_usageevent rows", event_id, 0)

    def incentives(self) -> None:
        rng = self.rng
        per_org = apportion(self.scale["incentives"], [org.references for org in self.orgs])
        pick_condition = weighted(rng, INCENTIVE_CONDITIONS)

        def rows() -> Iterator[Sequence[Any]]:
            incentive_id = 0
            for org, count in zip(self.orgs, per_org, strict=True):
                for _ in range(count):
                    incentive_id += 1
                    account = org.account_start + rng.randrange(org.accounts)
                    contact = contact_id(account, rng.randrange(CONTACTS_PER_ACCOUNT)) if rng.random() < 0.7 else None
                    created = self.ago(1, 700)
                    yield (
                        incentive_id, created, created, rng.choice(INCENTIVE_KINDS),
                        Decimal(rng.randrange(1_000, 100_000)) / 100, rng.choice(CURRENCIES), created.date(),
                        "Account executive", pick_condition(), "", account, contact, org.id, org.compliance,
                    )  # fmt: skip

        columns = ("id", "created_at", "updated_at", "kind", "value", "currency", "given_on", "given_by", "condition")
        columns += ("note", "account_id", "contact_id", "organization_id", "recorded_by_id")
        self.table("references_incentive", columns, sum(per_org), rows())

    def finish(self) -> None:
        started = time.perf_counter()
        with self.connection.cursor() as cursor:
            for name in LOADED_TABLES:
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence(%s, 'id'), COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) "  # noqa: S608
                    f'FROM "{name}"',
                    (name,),
                )
        self.connection.commit()
        self.timings.add("reset sequences", 0, time.perf_counter() - started)
        started = time.perf_counter()
        self.connection.autocommit = True
        with self.connection.cursor() as cursor:
            # VACUUM for the references the search-document UPDATE rewrote (and the visibility map
            # that index-only scans need); ANALYZE for the planner, as autovacuum would later.
            cursor.execute("VACUUM ANALYZE")
        self.timings.add("VACUUM ANALYZE", 0, time.perf_counter() - started)


LOADED_TABLES = (
    "tenancy_organization", "auth_user", "tenancy_membership", "privacy_privacypolicy", "references_account",
    "references_contact", "references_reference", "references_referencelabel", "consent_consentevent",
    "consent_consentstate", "references_referencescopegrant", "consent_consentledgerhead",
    "references_usagerequest", "references_usageevent", "references_incentive",
)  # fmt: skip


# --- Database set-up ---------------------------------------------------------------------------


def _connect(settings: dict[str, Any], dbname: str) -> Any:
    import psycopg2

    return psycopg2.connect(
        dbname=dbname,
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        **settings.get("OPTIONS", {}),
    )


def ensure_database(settings: dict[str, Any], *, recreate: bool) -> None:
    """Create the benchmark database if missing; with ``recreate``, drop it first (refmgr_bench* names only)."""
    from psycopg2 import sql

    name = settings["NAME"]
    maintenance = _connect(settings, "postgres")
    maintenance.autocommit = True
    try:
        with maintenance.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            exists = cursor.fetchone() is not None
            if exists and recreate:
                if not name.startswith("refmgr_bench"):
                    raise SystemExit(f"--recreate drops only databases named refmgr_bench*, not {name!r}")
                print(f"==> dropping database {name}")
                cursor.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
                exists = False
            if not exists:
                print(f"==> creating database {name}")
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        maintenance.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument(
        "--database-url",
        help="postgres://… of the benchmark database (default: $DATABASE_URL if it names a refmgr_bench* "
        "database, else postgres://postgres@127.0.0.1:5432/refmgr_bench_<scale>)",
    )
    parser.add_argument("--recreate", action="store_true", help="Drop and recreate the database first.")
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args(argv)

    url = args.database_url
    if url is None:
        env_url = os.environ.get("DATABASE_URL", "")
        url = env_url if "/refmgr_bench" in env_url else f"postgres://postgres@127.0.0.1:5432/refmgr_bench_{args.scale}"
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "refmgr.settings.local"

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        raise SystemExit("The benchmark needs PostgreSQL: give --database-url postgres://…")
    scale = SCALES[args.scale]
    print(f"==> refmgr bench data, scale {args.scale}: {scale}")
    ensure_database(database, recreate=args.recreate)

    started = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    connections.close_all()
    print(f"==> migrated in {time.perf_counter() - started:.1f} s")

    connection = _connect(database, database["NAME"])
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT EXISTS (SELECT 1 FROM tenancy_organization)")
            if cursor.fetchone()[0]:
                raise SystemExit(f"{database['NAME']} already holds organizations; run again with --recreate")
            # The deliberate RLS bypass for the bulk load (see the module docstring), and no fsync wait.
            cursor.execute("SELECT set_config('app.cross_org', 'on', false)")
            cursor.execute("SET synchronous_commit = off")
        connection.commit()
        generator = Generator(connection, scale, args.seed)
        started = time.perf_counter()
        generator.run()
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    generator.timings.print(elapsed)
    orgs = generator.orgs
    median = orgs[len(orgs) // 2]
    print(
        f"\nGenerated in {elapsed:.1f} s. Largest organization {orgs[0].slug} ({orgs[0].references:,} references), "
        f"median {median.slug} ({median.references:,}), smallest {orgs[-1].slug} ({orgs[-1].references:,}).\n"
        f"Every user's password is {BENCH_PASSWORD!r}; usernames are <slug>-admin|manager|sales1|sales2|compliance."
    )


if __name__ == "__main__":
    main()
