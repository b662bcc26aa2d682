"""CSV import and export of accounts, contacts and references.

Import is two steps, preview then confirm, and both run the very same code:
every row goes through the ordinary services (``account_create``,
``contact_update`` …) inside one transaction, each row in its own savepoint.
A preview rolls the whole transaction back; a confirm commits it only when
every row is valid, or when the user chose to import only the valid rows.
So the report a user reads is exactly what the confirm would do, rows that
depend on earlier rows of the same file validate correctly, and nothing is
half-written (django-import-export's ``dry_run`` works the same way).

Between the two steps the decoded file is kept server-side, in the
session, under a random token: the browser only holds the token, and the
rows are validated again on confirm, because the data may have changed.
"""

from __future__ import annotations

import base64
import csv
import io
import secrets
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from refmgr.audit.services import record
from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.admin import FORMULA_PREFIXES, csv_safe
from refmgr.tenancy.context import assert_current_organization
from refmgr.tenancy.models import Organization

from . import services
from .models import Account, Contact, LabelKind, Publication, Reference, SizeBand

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.contrib.sessions.backends.base import SessionBase

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 10_000
SESSION_KEY = "refmgr_reference_imports"
# A user rarely has more than one import open; older ones are dropped so the session stays small.
MAX_STASHED = 2
STASH_MAX_AGE_SECONDS = 60 * 60

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
        rows: list[tuple[int, dict[str, str], list[str]]] = []
        for index, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) >= MAX_ROWS:
                raise ImportFileError(
                    _("The file has more than %(max)s rows. Split it into smaller files.") % {"max": f"{MAX_ROWS:,}"},
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
    """Validate every row by applying it, then commit or roll back the whole file.

    ``commit=False`` is the preview. With ``commit=True`` the file is written
    when every row is valid, or, with ``valid_only=True``, the valid rows
    are; otherwise nothing is. One transaction either way.
    """
    assert_current_organization(organization)
    apply_row = _APPLY[parsed.kind]
    report = ImportReport(kind=parsed.kind, rows=[])
    seen: dict[str, int] = {}
    with transaction.atomic():
        for number, values, problems in parsed.rows:
            result = RowResult(number=number, values=values)
            report.rows.append(result)
            for problem in problems:
                result.add(None, problem)
            _check_required(parsed.kind, result)
            if not result.ok:
                continue
            try:
                # One savepoint a row: a refused row leaves no trace, the next one carries on.
                with transaction.atomic():
                    result.action = apply_row(organization=organization, actor=actor, values=values, seen=seen)
                    seen_key = _row_key(parsed.kind, values)
                    seen.setdefault(seen_key, number)
            except _RowError as error:
                result.add(error.column, error.message)
            except ApplicationError as error:
                _add_application_error(result, error)
            except ValidationError as error:
                for name, messages in error.message_dict.items():
                    for message in messages:
                        result.add(_FIELD_TO_COLUMN.get(name, name), message)
        report.committed = commit and (report.all_valid or valid_only) and report.valid_count > 0
        if report.committed:
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
        else:
            transaction.set_rollback(True)
    return report


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


_APPLY = {"accounts": _apply_account, "contacts": _apply_contact, "references": _apply_reference}


# --- Keeping the file between preview and confirm ----------------------------------------------------


def import_stash(*, session: SessionBase, organization: Organization, kind: str, text: str, filename: str) -> str:
    """Keep the decoded file in the (server-side) session; returns the token the confirm form carries."""
    token = secrets.token_urlsafe(16)
    stash: dict[str, Any] = dict(session.get(SESSION_KEY) or {})
    stash[token] = {
        "organization": organization.pk,
        "kind": kind,
        "filename": filename[:200],
        "created": time.time(),
        "data": base64.b64encode(zlib.compress(text.encode(), 6)).decode("ascii"),
    }
    newest = sorted(stash, key=lambda key: stash[key]["created"])[-MAX_STASHED:]
    session[SESSION_KEY] = {key: stash[key] for key in newest}
    return token


def import_unstash(*, session: SessionBase, organization: Organization, token: str) -> tuple[str, str, str] | None:
    """(kind, text, filename) of a stashed import of this organization, or None when gone or expired."""
    entry = (session.get(SESSION_KEY) or {}).get(token)
    if not isinstance(entry, dict) or entry.get("organization") != organization.pk:
        return None
    if time.time() - entry.get("created", 0) > STASH_MAX_AGE_SECONDS:
        import_discard(session=session, token=token)
        return None
    text = zlib.decompress(base64.b64decode(entry["data"])).decode()
    return entry["kind"], text, entry["filename"]


def import_discard(*, session: SessionBase, token: str) -> None:
    stash = dict(session.get(SESSION_KEY) or {})
    if stash.pop(token, None) is not None:
        session[SESSION_KEY] = stash


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
