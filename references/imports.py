"""CSV import and export of accounts, contacts and references.

Import is two steps, preview then confirm, and both run the very same
checks, in one transaction: the preview reports on every row and writes
nothing that stays; the confirm checks every row again (the data may have
changed since) and writes only when every row is valid, or when the user
chose to import only the valid rows. So the report a user reads is exactly
what the confirm does, and nothing is half-written.

- Accounts and contacts (up to 10,000 rows) go row by row through the
  ordinary services (``account_create``, ``contact_update`` …), each row in
  its own savepoint, so rows that depend on earlier rows of the same file
  validate correctly; the preview rolls the transaction back
  (django-import-export's ``dry_run`` works the same way).
- References (up to 100,000 rows) are checked in Python against lookups
  loaded once, with the service's own checks, and the preview writes no new
  reference at all; the confirm writes them set-based, a few statements per
  10,000 rows (:class:`_ReferenceImport`). Rows that update an existing
  reference go through ``reference_update`` in a savepoint each, in both
  steps (consent may refuse them), and the preview rolls those back.
- If the database still refuses a confirm that passed every check (an
  account or contact the file names was deleted meanwhile), the whole
  confirm rolls back and ``ImportReport.failure`` says so.

Between the two steps the decoded file is kept server-side, in private
storage, under a random token: the browser only holds the token.
"""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from refmgr.audit.services import record, record_many
from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.admin import FORMULA_PREFIXES, csv_safe
from refmgr.tenancy.context import assert_current_organization
from refmgr.tenancy.models import Organization

from . import services
from .models import Account, Contact, LabelKind, Publication, Reference, ReferenceLabel, SizeBand

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.contrib.sessions.backends.base import SessionBase

# 100,000 references with summaries are about 35 MB of CSV (bench/importcsv.py).
MAX_BYTES = 64 * 1024 * 1024
# Accounts, contacts (and incentives) go row by row through their services: 10,000 rows at most.
MAX_ROWS = 10_000
# References are validated in Python against lookups loaded once and written in bulk (issue 6: 100,000 rows ≤ 30 s).
MAX_REFERENCE_ROWS = 100_000
# References written per statement (their values go as arrays, so PostgreSQL's 65,535-parameter limit does
# not apply): it bounds the statement's size, some 4 MB of text, and Python's copies of it.
BATCH_SIZE = 10_000
# A confirmed import that created this many references refreshes the planner's statistics at once
# (docs/known-limitations.md "Performance"): autovacuum would wait for 10 % of the table to change.
ANALYZE_AFTER_ROWS = 1_000
# The report lists every row with errors up to this many, then a count; valid rows likewise.
REPORT_MAX_ERRORS = 1_000
REPORT_MAX_VALID = 500
SESSION_KEY = "refmgr_reference_imports"
# A user rarely has more than one import open; older ones are dropped so the session stays small.
MAX_STASHED = 2
STASH_MAX_AGE_SECONDS = 60 * 60
# Stashed files live in the private default storage (MEDIA_ROOT, not served), per organization.
STASH_FOLDER = "imports"

COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": ("name", "industry", "region", "size_band", "website", "crm_id"),
    "contacts": ("account", "name", "title", "email", "phone", "authorised_signatory"),
    "references": ("account", "advocate_email", "title", "summary", "publication", "products", "use_cases", "tags"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "accounts": ("name",),
    "contacts": ("account", "name", "email"),
    "references": ("account", "title"),
}
KIND_LABELS = {"accounts": "Accounts", "contacts": "Contacts", "references": "References"}
# Service field name → the CSV column a user sees in the report.
_FIELD_TO_COLUMN = {
    "is_authorised_signatory": "authorised_signatory",
    "advocate": "advocate_email",
}
NON_FIELD = "row"

_YES = {"yes", "y", "true", "1", "x"}
_NO = {"no", "n", "false", "0", ""}


class ImportFileError(ApplicationError):
    """The file as a whole cannot be read (size, encoding, header); nothing row-by-row to report."""


# --- Reading the file ---------------------------------------------------------------------------


def import_check_size(*, size: int) -> None:
    if size > MAX_BYTES:
        raise ImportFileError(
            _("The file is larger than %(mb)d MB. Split it into smaller files.") % {"mb": MAX_BYTES // 1048576},
            field="file",
        )


def import_decode(*, data: bytes) -> str:
    """The text of an uploaded file: UTF-8, with or without a byte-order mark (Excel adds one)."""
    import_check_size(size=len(data))
    if not data.strip():
        raise ImportFileError(_("The file is empty."), field="file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFileError(
            _(
                "The file is not UTF-8 text. In your spreadsheet, save it as “CSV UTF-8 (comma delimited)” "
                "and upload it again."
            ),
            field="file",
        ) from None
    if "\x00" in text:
        raise ImportFileError(_("This does not look like a CSV file (it contains binary data)."), field="file")
    return text


@dataclass
class ParsedFile:
    kind: str
    columns: list[str]
    rows: list[tuple[int, dict[str, str], list[str]]]  # (row number, values, problems with the row's shape)


def _column_key(header: str) -> str:
    return "_".join(header.strip().lower().replace("-", " ").split())


def import_parse(*, kind: str, text: str) -> ParsedFile:
    """Split the text into rows keyed by column; checks the header, the row limit and the CSV syntax.

    Rows are numbered as a spreadsheet shows them: the header is row 1.
    Blank lines are skipped. A cell that an export protected against
    formula injection (a leading ``'`` before ``= + - @``) is read back as it was.
    """
    if kind not in COLUMNS:
        raise ImportFileError(_("Choose what the file contains."), field="kind")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise ImportFileError(_("The file is empty."), field="file")
        columns = [_column_key(h) for h in header]
        _check_header(kind, columns)
        limit = max_rows(kind)
        rows: list[tuple[int, dict[str, str], list[str]]] = []
        for index, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) >= limit:
                raise ImportFileError(
                    _("The file has more than %(max)s rows. Split it into smaller files.") % {"max": f"{limit:,}"},
                    field="file",
                )
            problems = []
            if len(cells) > len(columns) and any(c.strip() for c in cells[len(columns) :]):
                problems.append(
                    _("This row has %(n)d cells but the header has %(m)d columns.")
                    % {"n": len(cells), "m": len(columns)}
                )
            values = {
                column: _unprotect(cells[i].strip()) if i < len(cells) else ""
                for i, column in enumerate(columns)
                if column
            }
            rows.append((index, values, problems))
    except csv.Error as error:
        raise ImportFileError(
            _("The file is not valid CSV (near line %(line)d: %(error)s).") % {"line": reader.line_num, "error": error},
            field="file",
        ) from None
    if not rows:
        raise ImportFileError(_("The file has a header but no rows."), field="file")
    return ParsedFile(kind=kind, columns=columns, rows=rows)


def max_rows(kind: str) -> int:
    """How many rows a file of ``kind`` may have: references are written in bulk, the others row by row."""
    return MAX_REFERENCE_ROWS if kind == "references" else MAX_ROWS


def _check_header(kind: str, columns: list[str]) -> None:
    known = set(COLUMNS[kind])
    unknown = [c for c in columns if c and c not in known]
    missing = [c for c in REQUIRED[kind] if c not in columns]
    duplicates = sorted({c for c in columns if c and columns.count(c) > 1})
    problems = []
    if missing:
        problems.append(_("Missing columns: %(columns)s.") % {"columns": ", ".join(missing)})
    if unknown:
        problems.append(_("Unknown columns: %(columns)s.") % {"columns": ", ".join(unknown)})
    if duplicates:
        problems.append(_("Repeated columns: %(columns)s.") % {"columns": ", ".join(duplicates)})
    if problems:
        expected = ", ".join(COLUMNS[kind])
        problems.append(_("The first row must name the columns: %(columns)s.") % {"columns": expected})
        raise ImportFileError(" ".join(problems), field="file")


def _unprotect(value: str) -> str:
    if len(value) > 1 and value[0] == "'" and value[1:].startswith(FORMULA_PREFIXES):
        return value[1:]
    return value


# --- Validating and applying rows ------------------------------------------------------------------


@dataclass
class RowResult:
    number: int
    values: dict[str, str]
    action: str = ""  # "create" or "update"
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def label(self) -> str:
        return self.values.get("name") or self.values.get("title") or ""

    def add(self, column: str | None, message: str) -> None:
        self.errors.setdefault(column or NON_FIELD, []).append(message)


@dataclass
class ImportReport:
    kind: str
    rows: list[RowResult]
    committed: bool = False
    # Why a confirm that passed every check still wrote nothing (the database refused it).
    failure: str = ""

    @property
    def invalid(self) -> list[RowResult]:
        return [row for row in self.rows if not row.ok]

    @property
    def valid_count(self) -> int:
        return sum(1 for row in self.rows if row.ok)

    @property
    def created(self) -> int:
        return sum(1 for row in self.rows if row.ok and row.action == "create")

    @property
    def updated(self) -> int:
        return sum(1 for row in self.rows if row.ok and row.action == "update")

    @property
    def all_valid(self) -> bool:
        return all(row.ok for row in self.rows)

    # What the page lists: a report of 100,000 rows would be a page of tens of megabytes.
    @property
    def invalid_listed(self) -> list[RowResult]:
        """The rows with errors the page lists, in file order: all of them up to REPORT_MAX_ERRORS."""
        return self.invalid[:REPORT_MAX_ERRORS]

    @property
    def invalid_unlisted(self) -> int:
        return max(0, len(self.invalid) - REPORT_MAX_ERRORS)

    @property
    def valid_listed(self) -> list[RowResult]:
        """The first REPORT_MAX_VALID valid rows, in file order."""
        listed: list[RowResult] = []
        for row in self.rows:
            if len(listed) >= REPORT_MAX_VALID:
                break
            if row.ok:
                listed.append(row)
        return listed

    @property
    def valid_unlisted(self) -> int:
        return max(0, self.valid_count - REPORT_MAX_VALID)


class _RowError(Exception):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


def import_run(
    *,
    organization: Organization,
    actor: AbstractBaseUser | None,
    parsed: ParsedFile,
    commit: bool,
    valid_only: bool = False,
) -> ImportReport:
    """Check every row, then write the file, or nothing.

    ``commit=False`` is the preview. With ``commit=True`` the file is written
    when every row is valid, or, with ``valid_only=True``, the valid rows
    are; otherwise nothing is. Both run the same checks in one transaction
    (see the module docstring). If the database still refuses what the
    checks accepted (a row it names was deleted meanwhile), nothing is
    written and ``report.failure`` says why. A confirmed import that created
    many references refreshes the planner's statistics once it has committed
    (:func:`import_analyze`).
    """
    assert_current_organization(organization)
    report = ImportReport(kind=parsed.kind, rows=[])
    try:
        with transaction.atomic():
            if parsed.kind == "references":
                importer = _ReferenceImport(organization=organization, actor=actor)
                new = importer.check(parsed, report)
            else:
                _run_row_by_row(organization=organization, actor=actor, parsed=parsed, report=report)
            report.committed = commit and (report.all_valid or valid_only) and report.valid_count > 0
            if not report.committed:
                transaction.set_rollback(True)
                return report
            if parsed.kind == "references":
                importer.create(new)
            record(
                organization=organization,
                actor=actor,
                action="references.imported",
                details={
                    "kind": parsed.kind,
                    "rows": len(report.rows),
                    "created": report.created,
                    "updated": report.updated,
                    "skipped_invalid": len(report.invalid),
                },
            )
            # The foreign keys are checked at commit (DEFERRABLE INITIALLY DEFERRED); checked here,
            # a refusal is caught below even when the caller's transaction commits later.
            connection.check_constraints(table_names=_IMPORT_TABLES[parsed.kind])
    except IntegrityError:
        # The checks found every account and contact the rows name; the database no longer does
        # (deleted by someone else since). Everything rolled back with the atomic block.
        report.committed = False
        report.failure = _(
            "Nothing was imported: the organization's data changed while the file was being imported "
            "(an account or contact it names was removed). Check the file again."
        )
        return report
    if parsed.kind == "references" and report.created >= ANALYZE_AFTER_ROWS:
        # After the commit (of the outermost transaction, if the caller holds one): the statistics
        # then count the new rows, and ANALYZE's lock is not held for the rest of a long transaction.
        transaction.on_commit(import_analyze)
    return report


# What ``connection.check_constraints`` checks on SQLite (PostgreSQL checks every deferred constraint).
_IMPORT_TABLES = {
    "accounts": ["references_account", "audit_auditevent"],
    "contacts": ["references_contact", "audit_auditevent"],
    "references": ["references_reference", "references_referencelabel", "audit_auditevent"],
}


def _start_row(kind: str, number: int, values: dict[str, str], problems: list[str], report: ImportReport) -> RowResult:
    result = RowResult(number=number, values=values)
    report.rows.append(result)
    for problem in problems:
        result.add(None, problem)
    _check_required(kind, result)
    return result


def _add_error(result: RowResult, error: Exception) -> None:
    """Put a refused row's error in the report, under the CSV column the user sees."""
    if isinstance(error, _RowError):
        result.add(error.column, error.message)
    elif isinstance(error, ApplicationError):
        _add_application_error(result, error)
    elif isinstance(error, ValidationError):
        for name, messages in error.message_dict.items():
            for message in messages:
                result.add(_FIELD_TO_COLUMN.get(name, name), message)
    else:
        raise error


def _run_row_by_row(
    *, organization: Organization, actor: AbstractBaseUser | None, parsed: ParsedFile, report: ImportReport
) -> None:
    """Accounts and contacts: every row through the ordinary services, each in its own savepoint."""
    apply_row = _APPLY[parsed.kind]
    seen: dict[str, int] = {}
    for number, values, problems in parsed.rows:
        result = _start_row(parsed.kind, number, values, problems, report)
        if not result.ok:
            continue
        try:
            # One savepoint a row: a refused row leaves no trace, the next one carries on.
            with transaction.atomic():
                result.action = apply_row(organization=organization, actor=actor, values=values, seen=seen)
                seen.setdefault(_row_key(parsed.kind, values), number)
        except (_RowError, ApplicationError, ValidationError) as error:
            _add_error(result, error)


@dataclass(slots=True)
class _NewReference:
    """A checked row that creates a reference: what the INSERTs need, without a model instance.

    100,000 model instances held from the check to the write would take hundreds of megabytes.
    """

    title: str
    summary: str
    publication: str
    account_id: int
    advocate_id: int | None
    labels: dict[str, list[str]]


# The columns the import writes, in the INSERT's order; ``search_document`` is the trigger's. A new
# column of Reference must be added here (tests/references/test_imports.py compares the two).
REFERENCE_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "organization_id",
    "owner_id",
    "status",
    "retired_at",
    "disclosure",
    "restricted",
    "title",
    "summary",
    "publication",
    "account_id",
    "advocate_id",
)

# The search document is computed here, in the statement, from the labels inserted just before (the row
# trigger keeps it while ``refmgr.bulk_document`` is on, migration 0010): half the time of the trigger's
# call a row.
_INSERT_REFERENCES = f"""
    INSERT INTO references_reference ({", ".join(REFERENCE_COLUMNS)}, search_document)
    SELECT r.id, %s, %s, %s, %s, %s, NULL, %s, %s, r.title, r.summary, r.publication, r.account_id, r.advocate_id,
           refmgr_reference_document(r.id, r.title, r.summary, r.publication, r.account_id)
      FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[])
           AS r (id, title, summary, publication, account_id, advocate_id)
"""  # noqa: S608 - the column names are the constants above, every value a parameter
_INSERT_LABELS = """
    INSERT INTO references_referencelabel (created_at, updated_at, organization_id, reference_id, kind, value)
    SELECT %s, %s, %s, l.reference_id, l.kind, l.value
      FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS l (reference_id, kind, value)
"""
# Transaction-local (SET LOCAL), and turned off again after each batch: see migration 0010.
_BULK_DOCUMENT = "SELECT set_config('refmgr.bulk_document', %s, true)"
_NEXT_REFERENCE_IDS = "SELECT nextval(pg_get_serial_sequence('references_reference', 'id')) FROM generate_series(1, %s)"


class _ReferenceImport:
    """References, set-based: what ``services.reference_create`` checks and writes, for 100,000 rows.

    Row by row, an import of references cost about ten statements a row (lookups, the
    foreign-key checks of ``full_clean``, a savepoint, the insert, each kind of label, the
    audit event): 100,000 rows took most of an hour. Here the lookups are loaded once (the
    organization's accounts and contacts, and the references of the accounts the file names),
    every row is checked in Python in file order with the service's own functions
    (``labels_parse``, ``_reference_check``, ``_full_clean``) so the report is the same
    (:meth:`check`), and only then, when the import commits, are the new references, their
    labels and their ``reference.created`` audit events written (:meth:`create`): on PostgreSQL
    one ``INSERT … SELECT … FROM unnest(…)`` per table and batch, the values as arrays, because
    Django's ``bulk_create`` spent more time composing its statements than the database took
    to run them. ``reference_create`` sends no signal, so there is none to send here either; the
    search document is computed by ``refmgr_reference_document`` in the INSERT, the triggers
    standing aside for it (migrations 0006 and 0010). Rows that match an
    existing reference still go through ``services.reference_update`` in a savepoint each,
    during the check, because an update can be refused by consent (signals) and replaces
    labels: those rows cost what they cost in the UI.

    Differences from applying the rows one by one: names and emails are compared with
    ``str.casefold()`` in Python rather than the database's ``UPPER()`` (they differ only on
    a few non-ASCII letters), and a row whose account and title match a reference created by
    an earlier row of the same file (the account once by name, once by CRM id) is reported as
    the same as that row instead of updating the reference just created.
    """

    def __init__(self, *, organization: Organization, actor: AbstractBaseUser | None) -> None:
        self.organization = organization
        self.actor = actor
        # The owner is the importing user, as the UI's reference_create(owner=actor) makes it.
        self.owner = actor if actor is not None and actor.is_authenticated else None
        self.template = Reference(organization=organization, owner=self.owner)
        # What full_clean validates of a new reference, split in two (tests/references/test_imports.py
        # pins the assumptions). The foreign keys are not checked: the account and the advocate are
        # found through the organization's scoped managers and the owner is the signed-in user, so
        # full_clean's query for each (three a row) would only repeat that. Nor the constraints and
        # unique fields: Reference's only constraint is (organization, id) and its only unique field
        # its id, which a row without an id cannot break. Every other column but the file's holds the
        # same default on every row: validated once, here (raises if a default were ever invalid).
        services._full_clean(
            self.template,
            exclude=[*_FOREIGN_KEYS_FOUND, *_ROW_FIELDS],
            validate_constraints=False,
            validate_unique=False,
        )
        self.row_fields = [Reference._meta.get_field(name) for name in _ROW_FIELDS]
        self.defaults = {"summary": self.template.summary, "publication": self.template.publication}
        self.publications = _publication_choices()
        # _choice's lookup, computed once: it renders every choice's translated label for every row.
        self.publication_by_word = {
            word: value
            for value, label in reversed(self.publications)
            for word in (str(value).casefold(), str(label).casefold())
        }

    def check(self, parsed: ParsedFile, report: ImportReport) -> list[_NewReference]:
        """Report on every row; returns the references the valid new rows create, in file order.

        Writes nothing but the updates of existing references, each through the service in
        a savepoint (the caller's transaction decides whether they stay).
        """
        self._load(parsed)
        seen: dict[str, int] = {}
        # (account id, casefolded title) of references this file creates → the row creating it.
        creating: dict[tuple[int, str], int] = {}
        new: list[_NewReference] = []
        for number, values, problems in parsed.rows:
            result = _start_row("references", number, values, problems, report)
            if not result.ok:
                continue
            try:
                created = self._check_row(values, seen, creating, number)
                if created is None:
                    with transaction.atomic():
                        self._update(values)
                    result.action = "update"
                else:
                    new.append(created)
                    creating[(created.account_id, values["title"].casefold())] = number
                    result.action = "create"
                seen.setdefault(_row_key("references", values), number)
            except (_RowError, ApplicationError, ValidationError) as error:
                _add_error(result, error)
        return new

    def _load(self, parsed: ParsedFile) -> None:
        """The lookups every row needs, in a number of queries that does not depend on the rows."""
        # Account: by CRM id, else by name, case-insensitively; the first in the default ordering,
        # as ``_account_lookup``'s ``.first()`` takes it.
        self.accounts_by_crm: dict[str, int] = {}
        self.accounts_by_name: dict[str, int] = {}
        for pk, name, crm_id in Account.objects.order_by("name", "pk").values_list("pk", "name", "crm_id"):
            if crm_id:
                self.accounts_by_crm.setdefault(crm_id, pk)
            self.accounts_by_name.setdefault(name.casefold(), pk)
        emails = {values["advocate_email"].casefold() for _n, values, _p in parsed.rows if values.get("advocate_email")}
        # Only the contacts the file names (the organization may have many more).
        self.contacts: dict[str, tuple[int, int, int]] = {}
        contacts = Contact.objects.order_by("name", "pk").values_list("pk", "email", "account_id", "organization_id")
        for pk, email, account_id, organization_id in contacts.iterator(chunk_size=BATCH_SIZE):
            if email.casefold() in emails:
                self.contacts.setdefault(email.casefold(), (pk, account_id, organization_id))
        # Existing references of the accounts the file names, newest first (``Reference``'s
        # default ordering, which ``.first()`` follows): a match is an update.
        account_ids = sorted(
            {pk for _n, values, _p in parsed.rows if (pk := self._account_id(values.get("account", ""))) is not None}
        )
        self.existing: dict[tuple[int, str], int] = {}
        for start in range(0, len(account_ids), BATCH_SIZE):
            references = Reference.objects.filter(account_id__in=account_ids[start : start + BATCH_SIZE])
            for pk, account_id, title in references.order_by("-updated_at", "-id").values_list(
                "pk", "account_id", "title"
            ):
                self.existing.setdefault((account_id, title.casefold()), pk)

    def _account_id(self, value: str) -> int | None:
        if not value:
            return None
        found = self.accounts_by_crm.get(value)
        return found if found is not None else self.accounts_by_name.get(value.casefold())

    def _check_row(
        self, values: dict[str, str], seen: dict[str, int], creating: dict[tuple[int, str], int], number: int
    ) -> _NewReference | None:
        """The reference a valid new row creates, with its labels; None for an update; raises for an error.

        Checks in the order ``_apply_reference`` and ``reference_create`` make them, so the
        first problem reported is the same one.
        """
        _check_duplicate("references", values, seen)
        account_id = self._account_id(values["account"])
        if account_id is None:
            raise _RowError("account", _("No account with this name or CRM id."))
        fields: dict[str, Any] = {"account_id": account_id, "title": values["title"]}
        if "summary" in values:
            fields["summary"] = values["summary"]
        if values.get("publication"):
            publication = self.publication_by_word.get(values["publication"].casefold())
            # Unknown: _choice raises the error the row-by-row import reports.
            fields["publication"] = publication or _choice(values["publication"], self.publications, "publication")
        advocate = None
        if values.get("advocate_email"):
            advocate = self.contacts.get(values["advocate_email"].casefold())
            if advocate is None:
                raise _RowError("advocate_email", _("No contact with this email."))
        key = (account_id, values["title"].casefold())
        earlier = creating.get(key)
        if earlier is not None:
            raise _RowError("title", _("Same as row %(row)d of this file.") % {"row": earlier})
        if key in self.existing:
            return None
        # What reference_create does, in its order: labels, then parties, then the model's own validation.
        for name in ("title", "summary"):
            if name in fields:
                fields[name] = (fields[name] or "").strip()
        # An empty cell (or column) has no labels: labels_parse would say the same, a few µs later.
        labels = {
            kind: services.labels_parse(raw, field=name) if (raw := values.get(name)) else []
            for name, kind in services._LABEL_FIELDS.items()
        }
        if advocate is not None:
            advocate_id, advocate_account_id, advocate_organization_id = advocate
            if advocate_organization_id != self.organization.pk:
                raise ApplicationError("Choose one of the listed options.", field="advocate")
            if advocate_account_id != account_id:
                raise ApplicationError("The advocate must be a contact of this reference's account.", field="advocate")
            fields["advocate_id"] = advocate_id
        # One instance for every row, its fields set anew each time: building a model instance a row
        # (foreign-key descriptors, defaults) cost as much as validating it.
        reference = self.template
        reference.title = fields["title"]
        reference.summary = fields.get("summary", self.defaults["summary"])
        reference.publication = fields.get("publication", self.defaults["publication"])
        reference.account_id = account_id
        reference.advocate_id = fields.get("advocate_id")
        self._clean_row_fields(reference)
        return _NewReference(
            title=reference.title,
            summary=reference.summary,
            publication=str(reference.publication),  # the default is an enum member
            account_id=account_id,
            advocate_id=reference.advocate_id,
            labels=labels,
        )

    def _clean_row_fields(self, reference: Reference) -> None:
        """``full_clean`` of the fields a row sets, as Django's ``Model.clean_fields`` does it (same
        order, same messages, every field's errors), raised as ``services._full_clean`` raises them.

        A third of a row's Python time went to validating, on every row, the columns that hold
        the same default on every row (checked once in ``__init__``).
        """
        errors: dict[str, list[ValidationError]] = {}
        for model_field in self.row_fields:
            raw_value = getattr(reference, model_field.attname)
            if model_field.blank and raw_value in model_field.empty_values:
                continue
            try:
                setattr(reference, model_field.attname, model_field.clean(raw_value, reference))
            except ValidationError as error:
                errors[model_field.name] = error.error_list
        if errors:
            message_dict = ValidationError(errors).message_dict
            name, messages = next(iter(message_dict.items()))
            raise ApplicationError(" ".join(messages), field=name, extra=message_dict)

    def _update(self, values: dict[str, str]) -> None:
        """An existing reference, through the service (labels replaced, consent told of changes)."""
        account = Account.objects.get(pk=self._account_id(values["account"]))
        existing = Reference.objects.get(pk=self.existing[(account.pk, values["title"].casefold())])
        fields: dict[str, Any] = {"account": account, "title": values["title"]}
        if "summary" in values:
            fields["summary"] = values["summary"]
        if values.get("publication"):
            fields["publication"] = _choice(values["publication"], self.publications, "publication")
        if "advocate_email" in values:
            advocate = None
            if values["advocate_email"]:
                advocate = Contact.objects.get(pk=self.contacts[values["advocate_email"].casefold()][0])
            fields["advocate"] = advocate
        for column in ("products", "use_cases", "tags"):
            if column in values:
                fields[column] = values[column]
        services.reference_update(organization=self.organization, reference=existing, actor=self.actor, **fields)

    def create(self, new: list[_NewReference]) -> None:
        """Write the checked new references, their labels and one ``reference.created`` event each."""
        for start in range(0, len(new), BATCH_SIZE):
            batch = new[start : start + BATCH_SIZE]
            if connection.vendor == "postgresql":
                ids = self._insert_postgresql(batch)
            else:
                ids = self._insert_bulk_create(batch)
            record_many(
                organization=self.organization,
                actor=self.actor,
                action="reference.created",
                object_type=Reference._meta.label_lower,
                events=[
                    (str(pk), row.title, {"account": row.account_id, **{k: v for k, v in row.labels.items() if v}})
                    for pk, row in zip(ids, batch, strict=True)
                ],
            )

    def _insert_postgresql(self, batch: list[_NewReference]) -> list[int]:
        """One batch in three statements: ids from the sequence, the labels, the references."""
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(_NEXT_REFERENCE_IDS, [len(batch)])
            ids = [pk for (pk,) in cursor.fetchall()]
            # Labels first, under the ids just taken: the foreign key is checked at commit (Django
            # makes it DEFERRABLE INITIALLY DEFERRED), and the references' INSERT then builds each
            # search document once, labels included. References first, the labels' trigger rebuilt
            # every document a second time with an UPDATE: 40 % of the database time.
            # The triggers stand aside for these two statements only (migration 0010): a rollback of
            # the import's savepoint or transaction also undoes the setting.
            label_ids: list[int] = []
            kinds: list[str] = []
            label_values: list[str] = []
            for pk, row in zip(ids, batch, strict=True):
                for kind, values_of_kind in row.labels.items():
                    for value in values_of_kind:
                        label_ids.append(pk)
                        kinds.append(kind)
                        label_values.append(value)
            cursor.execute(_BULK_DOCUMENT, ["on"])
            if label_ids:
                cursor.execute(_INSERT_LABELS, [now, now, self.organization.pk, label_ids, kinds, label_values])
            cursor.execute(
                _INSERT_REFERENCES,
                [
                    now,
                    now,
                    self.organization.pk,
                    self.owner.pk if self.owner is not None else None,
                    _REFERENCE_DEFAULTS["status"],
                    _REFERENCE_DEFAULTS["disclosure"],
                    _REFERENCE_DEFAULTS["restricted"],
                    ids,
                    [row.title for row in batch],
                    [row.summary for row in batch],
                    [row.publication for row in batch],
                    [row.account_id for row in batch],
                    [row.advocate_id for row in batch],
                ],
            )
            cursor.execute(_BULK_DOCUMENT, ["off"])
        return ids

    def _insert_bulk_create(self, batch: list[_NewReference]) -> list[int]:
        """SQLite (the tests' other database): Django's bulk_create, which returns the ids there too."""
        references = Reference.objects.bulk_create(
            Reference(
                organization=self.organization,
                owner=self.owner,
                title=row.title,
                summary=row.summary,
                publication=row.publication,
                account_id=row.account_id,
                advocate_id=row.advocate_id,
            )
            for row in batch
        )
        ReferenceLabel.objects.bulk_create(
            ReferenceLabel(organization=self.organization, reference=reference, kind=kind, value=value)
            for reference, row in zip(references, batch, strict=True)
            for kind, values_of_kind in row.labels.items()
            for value in values_of_kind
        )
        return [reference.pk for reference in references]


# The columns of a new Reference a row of the file sets, in the model's field order (full_clean's);
# the foreign keys among them are found in the organization's lookups, not validated by queries.
_ROW_FIELDS = ("title", "summary", "publication")
_FOREIGN_KEYS_FOUND = ("organization", "account", "advocate", "owner")

# What a new Reference holds in the columns the import does not take from the file.
_REFERENCE_DEFAULTS = {
    "status": str(Reference._meta.get_field("status").get_default()),
    "disclosure": str(Reference._meta.get_field("disclosure").get_default()),
    "restricted": bool(Reference._meta.get_field("restricted").get_default()),
}


def import_analyze() -> None:
    """Refresh the planner's statistics of the tables a large import filled.

    Right after a bulk insert, before autovacuum's ANALYZE (which waits for 10 % of a table
    to change), the catalogue's queries were planned for the old row counts: 27 s for a
    page, measured (docs/known-limitations.md). Only a table's owner may ANALYZE it, and the
    application role is not the owner, so on PostgreSQL this calls ``refmgr_analyze_import()``,
    a SECURITY DEFINER function the owner created in migration 0007 that analyzes exactly
    the import's tables. SQLite has no planner statistics worth the time.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT refmgr_analyze_import()")


def _add_application_error(result: RowResult, error: ApplicationError) -> None:
    detailed = error.extra if error.extra and all(isinstance(v, list) for v in error.extra.values()) else None
    if detailed:
        for name, messages in detailed.items():
            for message in messages:
                result.add(_FIELD_TO_COLUMN.get(name, name) if name != "__all__" else None, str(message))
    else:
        result.add(_FIELD_TO_COLUMN.get(error.field or "", error.field), error.message)


def _check_required(kind: str, result: RowResult) -> None:
    for column in REQUIRED[kind]:
        if not result.values.get(column):
            result.add(column, _("Required."))


def _row_key(kind: str, values: dict[str, str]) -> str:
    if kind == "accounts":
        return f"crm:{values['crm_id']}" if values.get("crm_id") else f"name:{values['name'].casefold()}"
    if kind == "contacts":
        return f"email:{values['email'].casefold()}"
    return f"ref:{values['account'].casefold()}:{values['title'].casefold()}"


def _check_duplicate(kind: str, values: dict[str, str], seen: dict[str, int]) -> None:
    earlier = seen.get(_row_key(kind, values))
    if earlier is not None:
        column = {"accounts": "crm_id" if values.get("crm_id") else "name", "contacts": "email"}.get(kind, "title")
        raise _RowError(column, _("Same as row %(row)d of this file.") % {"row": earlier})


def _choice(value: str, choices: Any, column: str) -> str:
    if not value:
        return ""
    for choice_value, label in choices:
        if value.casefold() in (str(choice_value).casefold(), str(label).casefold()):
            return choice_value
    allowed = ", ".join(str(v) for v, _label in choices)
    raise _RowError(column, _("“%(value)s” is not one of: %(allowed)s.") % {"value": value, "allowed": allowed})


def _account_lookup(value: str) -> Account:
    """An account of the current organization by CRM id, or else by name (case-insensitive)."""
    account = Account.objects.filter(crm_id=value).first() if value else None
    if account is None:
        account = Account.objects.filter(name__iexact=value).first()
    if account is None:
        raise _RowError("account", _("No account with this name or CRM id."))
    return account


def _apply_account(
    *, organization: Organization, actor: AbstractBaseUser | None, values: dict[str, str], seen: dict[str, int]
) -> str:
    _check_duplicate("accounts", values, seen)
    fields = {name: values.get(name, "") for name in COLUMNS["accounts"] if name in values}
    if "size_band" in fields:
        fields["size_band"] = _choice(fields["size_band"], SizeBand.choices, "size_band")
    existing = Account.objects.filter(crm_id=values["crm_id"]).first() if values.get("crm_id") else None
    if existing is None:
        existing = Account.objects.filter(name__iexact=values["name"]).first()
    if existing is not None:
        services.account_update(organization=organization, account=existing, actor=actor, **fields)
        return "update"
    services.account_create(organization=organization, actor=actor, **fields)
    return "create"


def _apply_contact(
    *, organization: Organization, actor: AbstractBaseUser | None, values: dict[str, str], seen: dict[str, int]
) -> str:
    _check_duplicate("contacts", values, seen)
    fields: dict[str, Any] = {name: values[name] for name in ("name", "title", "email", "phone") if name in values}
    fields["account"] = _account_lookup(values["account"])
    if "authorised_signatory" in values:
        flag = values["authorised_signatory"].casefold()
        if flag not in _YES | _NO:
            raise _RowError("authorised_signatory", _("Write yes or no."))
        fields["is_authorised_signatory"] = flag in _YES
    existing = Contact.objects.filter(email__iexact=values["email"]).first()
    if existing is not None:
        services.contact_update(organization=organization, contact=existing, actor=actor, **fields)
        return "update"
    services.contact_create(organization=organization, actor=actor, **fields)
    return "create"


def _apply_reference(
    *, organization: Organization, actor: AbstractBaseUser | None, values: dict[str, str], seen: dict[str, int]
) -> str:
    _check_duplicate("references", values, seen)
    account = _account_lookup(values["account"])
    fields: dict[str, Any] = {"account": account, "title": values["title"]}
    if "summary" in values:
        fields["summary"] = values["summary"]
    if values.get("publication"):
        fields["publication"] = _choice(values["publication"], _publication_choices(), "publication")
    if "advocate_email" in values:
        advocate = None
        if values["advocate_email"]:
            advocate = Contact.objects.filter(email__iexact=values["advocate_email"]).first()
            if advocate is None:
                raise _RowError("advocate_email", _("No contact with this email."))
        fields["advocate"] = advocate
    for column in ("products", "use_cases", "tags"):
        if column in values:
            # Lists are semicolon-separated in a CSV cell; the service splits and normalises them.
            fields[column] = values[column]
    existing = Reference.objects.filter(account=account, title__iexact=values["title"]).first()
    if existing is not None:
        services.reference_update(organization=organization, reference=existing, actor=actor, **fields)
        return "update"
    services.reference_create(organization=organization, actor=actor, owner=actor, **fields)
    return "create"


def _publication_choices() -> list[tuple[str, str]]:
    # Also accept the short words people type: "internal only", "anonymised".
    return [*Publication.choices, ("internal_only", "internal only"), ("anonymised", "anonymized")]


# References are imported by ``_ReferenceImport``; ``_apply_reference`` stays as the row-by-row
# definition that the set-based path must agree with, row for row (tests/references/test_imports.py).
_APPLY = {"accounts": _apply_account, "contacts": _apply_contact, "references": _apply_reference}


# --- Keeping the file between preview and confirm ----------------------------------------------------


def _stash_folder(organization: Organization) -> str:
    return f"{STASH_FOLDER}/{organization.pk}"


def import_stash(*, session: SessionBase, organization: Organization, kind: str, text: str, filename: str) -> str:
    """Keep the decoded file server-side, compressed; returns the token the confirm form carries.

    The file goes to the private storage (``default_storage``, never served by a URL) under a
    name derived from the token; the session holds only the token and a few fields. A file of
    100,000 rows is some 35 MB: kept in the session, it would be read and written back with
    every request the user makes.
    """
    token = secrets.token_urlsafe(16)
    digest = hashlib.sha256(token.encode()).hexdigest()
    name = default_storage.save(
        f"{_stash_folder(organization)}/{digest}.csv.z", ContentFile(zlib.compress(text.encode(), 6))
    )
    stash: dict[str, Any] = dict(session.get(SESSION_KEY) or {})
    stash[token] = {
        "organization": organization.pk,
        "kind": kind,
        "filename": filename[:200],
        "created": time.time(),
        "file": name,
    }
    newest = sorted(stash, key=lambda key: stash[key]["created"])[-MAX_STASHED:]
    for key in set(stash) - set(newest):
        _delete_file(stash[key])
    session[SESSION_KEY] = {key: stash[key] for key in newest}
    _delete_expired(organization)
    return token


def import_unstash(*, session: SessionBase, organization: Organization, token: str) -> tuple[str, str, str] | None:
    """(kind, text, filename) of a stashed import of this organization, or None when gone or expired."""
    entry = (session.get(SESSION_KEY) or {}).get(token)
    if not isinstance(entry, dict) or entry.get("organization") != organization.pk or "file" not in entry:
        return None
    if time.time() - entry.get("created", 0) > STASH_MAX_AGE_SECONDS:
        import_discard(session=session, token=token)
        return None
    try:
        with default_storage.open(entry["file"], "rb") as stored:
            text = zlib.decompress(stored.read()).decode()
    except FileNotFoundError:
        return None
    return entry["kind"], text, entry["filename"]


def import_discard(*, session: SessionBase, token: str) -> None:
    stash = dict(session.get(SESSION_KEY) or {})
    entry = stash.pop(token, None)
    if entry is not None:
        session[SESSION_KEY] = stash
        _delete_file(entry)


def _delete_file(entry: Any) -> None:
    if isinstance(entry, dict) and entry.get("file"):
        default_storage.delete(entry["file"])


def _delete_expired(organization: Organization) -> None:
    """Remove the organization's stashed files nobody confirmed within the hour (abandoned previews)."""
    folder = _stash_folder(organization)
    try:
        _folders, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    cutoff = time.time() - STASH_MAX_AGE_SECONDS
    for file in files:
        name = f"{folder}/{file}"
        try:
            if default_storage.get_modified_time(name).timestamp() < cutoff:
                default_storage.delete(name)
        except FileNotFoundError:
            continue  # removed meanwhile by another request


# --- Export -----------------------------------------------------------------------------------------


def export_rows(*, organization: Organization, kind: str) -> Iterator[list[str]]:
    """The header and every row of ``kind``, in the import's columns, safe to open in a spreadsheet.

    The export reads the same columns the import takes, so a file can go out,
    be edited and come back. Every cell goes through ``csv_safe``.
    """
    assert_current_organization(organization)
    yield list(COLUMNS[kind])
    if kind == "accounts":
        rows: Iterator[tuple[Any, ...]] = Account.objects.order_by("name").values_list(*COLUMNS["accounts"]).iterator()
        for row in rows:
            yield [csv_safe(cell) for cell in row]
    elif kind == "contacts":
        contacts = Contact.objects.order_by("name", "pk").values_list(
            "account__name", "name", "title", "email", "phone", "is_authorised_signatory"
        )
        for *cells, signatory in contacts.iterator():
            yield [*(csv_safe(cell) for cell in cells), "yes" if signatory else "no"]
    elif kind == "references":
        yield from _export_references()
    else:
        raise ValueError(f"unknown export kind {kind!r}")


def _export_references() -> Iterator[list[str]]:
    references = (
        Reference.objects.select_related("account", "advocate")
        .prefetch_related("labels")
        .order_by("account__name", "title", "pk")
    )
    for reference in references:
        labels: dict[str, list[str]] = {kind: [] for kind in LabelKind.values}
        for label in reference.labels.all():
            labels[label.kind].append(label.value)
        yield [
            csv_safe(reference.account.name),
            csv_safe(reference.advocate.email if reference.advocate else ""),
            csv_safe(reference.title),
            csv_safe(reference.summary),
            csv_safe(reference.publication),
            csv_safe("; ".join(labels[LabelKind.PRODUCT])),
            csv_safe("; ".join(labels[LabelKind.USE_CASE])),
            csv_safe("; ".join(labels[LabelKind.TAG])),
        ]


@transaction.atomic
def export_record(*, organization: Organization, actor: AbstractBaseUser | None, kind: str, rows: int) -> None:
    """Put an export on record: contacts are personal data, so who took a copy, and when, is kept."""
    record(organization=organization, actor=actor, action="references.exported", details={"kind": kind, "rows": rows})
