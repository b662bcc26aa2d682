"""CSV import of incentives: preview, then confirm, as ``imports.py`` does for accounts and contacts.

Every row goes through ``incentives.incentive_record`` inside one transaction,
each row in its own savepoint; a preview rolls everything back, a confirm
commits only when every row is valid (or the user chose the valid rows only).
The file-level checks, the report and the session stash are ``imports.py``'s own.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils.translation import gettext as _

from refmgr.audit.services import record
from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.context import assert_current_organization
from refmgr.tenancy.models import Organization

from . import imports, incentives
from .imports import ImportFileError, ImportReport, ParsedFile, RowResult
from .models import CURRENCIES, Contact, IncentiveCondition, IncentiveKind

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

KIND = "incentives"
COLUMNS = ("contact_email", "account", "kind", "value", "currency", "given_on", "given_by", "condition", "note")
REQUIRED = ("kind", "value", "currency", "given_on", "given_by")
_FIELD_TO_COLUMN = {"contact": "contact_email"}


def incentive_import_parse(*, text: str) -> ParsedFile:
    """Rows keyed by column (the header is row 1); checks the header, the row limit and the CSV syntax."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise ImportFileError(_("The file is empty."), field="file")
        columns = [imports._column_key(h) for h in header]
        unknown = [c for c in columns if c and c not in COLUMNS]
        missing = [c for c in REQUIRED if c not in columns]
        if "contact_email" not in columns and "account" not in columns:
            missing.append("contact_email or account")
        if unknown or missing:
            problems = []
            if missing:
                problems.append(_("Missing columns: %(columns)s.") % {"columns": ", ".join(missing)})
            if unknown:
                problems.append(_("Unknown columns: %(columns)s.") % {"columns": ", ".join(unknown)})
            problems.append(_("The first row must name the columns: %(columns)s.") % {"columns": ", ".join(COLUMNS)})
            raise ImportFileError(" ".join(problems), field="file")
        rows: list[tuple[int, dict[str, str], list[str]]] = []
        for index, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) >= imports.MAX_ROWS:
                raise ImportFileError(_("The file has too many rows. Split it into smaller files."), field="file")
            values = {
                column: imports._unprotect(cells[i].strip()) if i < len(cells) else ""
                for i, column in enumerate(columns)
                if column
            }
            rows.append((index, values, []))
    except csv.Error as error:
        raise ImportFileError(
            _("The file is not valid CSV (near line %(line)d: %(error)s).") % {"line": reader.line_num, "error": error},
            field="file",
        ) from None
    if not rows:
        raise ImportFileError(_("The file has a header but no rows."), field="file")
    return ParsedFile(kind=KIND, columns=columns, rows=rows)


def _apply(*, organization: Organization, actor: AbstractBaseUser, values: dict[str, str]) -> None:
    contact = None
    if values.get("contact_email"):
        contact = Contact.objects.filter(email__iexact=values["contact_email"]).first()
        if contact is None:
            raise imports._RowError("contact_email", _("No contact with this email."))
    account = imports._account_lookup(values["account"]) if values.get("account") else None
    if contact is None and account is None:
        raise imports._RowError("contact_email", _("Give the contact's email or the account."))
    try:
        value = Decimal(values["value"].replace(",", ""))
    except InvalidOperation:
        raise imports._RowError("value", _("Not a number.")) from None
    currency = values["currency"].upper()
    if currency not in CURRENCIES:
        raise imports._RowError("currency", _("Unknown currency: %(code)s.") % {"code": values["currency"]})
    try:
        given_on = date.fromisoformat(values["given_on"])
    except ValueError:
        raise imports._RowError("given_on", _("Write the date as YYYY-MM-DD.")) from None
    condition = imports._choice(values.get("condition", ""), IncentiveCondition.choices, "condition")
    incentives.incentive_record(
        organization=organization,
        actor=actor,
        contact=contact,
        account=account,
        kind=imports._choice(values["kind"], IncentiveKind.choices, "kind"),
        value=value,
        currency=currency,
        given_on=given_on,
        given_by=values["given_by"],
        condition=condition or IncentiveCondition.NONE,
        note=values.get("note", ""),
    )


def incentive_import_run(
    *, organization: Organization, actor: AbstractBaseUser, parsed: ParsedFile, commit: bool, valid_only: bool = False
) -> ImportReport:
    """Validate every row by recording it, then commit or roll back the whole file (one transaction)."""
    assert_current_organization(organization)
    report = ImportReport(kind=KIND, rows=[])
    with transaction.atomic():
        for number, values, problems in parsed.rows:
            result = RowResult(number=number, values=values)
            report.rows.append(result)
            for problem in problems:
                result.add(None, problem)
            for column in REQUIRED:
                if not values.get(column):
                    result.add(column, _("Required."))
            if not result.ok:
                continue
            try:
                with transaction.atomic():  # one savepoint a row
                    _apply(organization=organization, actor=actor, values=values)
                    result.action = "create"
            except imports._RowError as error:
                result.add(error.column, error.message)
            except ApplicationError as error:
                result.add(_FIELD_TO_COLUMN.get(error.field or "", error.field), error.message)
        report.committed = commit and (report.all_valid or valid_only) and report.valid_count > 0
        if report.committed:
            record(
                organization=organization,
                actor=actor,
                action="incentives.imported",
                details={"rows": len(report.rows), "created": report.created, "skipped_invalid": len(report.invalid)},
            )
        else:
            # The flagging tasks enqueued on commit are dropped with the rollback.
            transaction.set_rollback(True)
    return report
