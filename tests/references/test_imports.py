"""CSV import (preview, atomic confirm, row-by-row report, bad files) and the injection-safe export."""

from __future__ import annotations

import csv
import io
import math
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from references import imports
from references.models import Account, Contact, Reference, ReferenceLabel
from refmgr.audit.models import AuditEvent
from refmgr.tenancy.context import tenant_context
from tests.factories.references import AccountFactory, ContactFactory, ReferenceFactory


@pytest.fixture(autouse=True)
def _private_storage(settings, tmp_path):
    # Stashed files (between preview and confirm) go to the default storage: keep them per test.
    settings.MEDIA_ROOT = tmp_path


def url(name: str, slug: str = "acme") -> str:
    return reverse(f"references:{name}", kwargs={"organization_slug": slug})


def in_org(organization, fn):
    with tenant_context(organization):
        return fn()


def upload(client, kind: str, content: str | bytes, name: str = "data.csv"):
    data = content.encode() if isinstance(content, str) else content
    return client.post(url("import"), {"kind": kind, "file": SimpleUploadedFile(name, data, content_type="text/csv")})


def confirm(client, preview, valid_only: bool = False):
    token = preview.context["confirm_form"].initial["token"]
    data = {"token": token}
    if valid_only:
        data["valid_only"] = "on"
    return client.post(url("import"), data)


ACCOUNTS_ONE_BAD = (
    "name,industry,region,size_band,website,crm_id\n"
    "Globex,Energy,EMEA,1000-4999,https://globex.example,CRM-1\n"
    "Initech,Software,NA,huge,,CRM-2\n"
    "Umbrella,Pharma,APAC,,not a url,\n"
)


def test_it_previews_without_writing_and_reports_row_by_row(client, carol, org_a):
    client.force_login(carol)
    response = upload(client, "accounts", ACCOUNTS_ONE_BAD)
    assert response.status_code == 200
    report = response.context["report"]
    assert [(r.number, r.ok) for r in report.rows] == [(2, True), (3, False), (4, False)]
    assert "size_band" in report.rows[1].errors
    assert "website" in report.rows[2].errors
    body = response.content.decode()
    assert "is not one of" in body
    assert "Enter a valid URL" in body
    assert in_org(org_a, lambda: Account.objects.count()) == 0
    assert in_org(org_a, lambda: AuditEvent.objects.count()) == 0


def test_it_writes_nothing_when_one_row_is_bad(client, carol, org_a):
    client.force_login(carol)
    response = confirm(client, upload(client, "accounts", ACCOUNTS_ONE_BAD))
    assert response.status_code == 400
    assert "Nothing was imported" in response.content.decode()
    assert in_org(org_a, lambda: Account.objects.count()) == 0


def test_it_imports_only_the_valid_rows_when_asked(client, carol, org_a):
    client.force_login(carol)
    response = confirm(client, upload(client, "accounts", ACCOUNTS_ONE_BAD), valid_only=True)
    assert response.status_code == 302
    assert in_org(org_a, lambda: list(Account.objects.values_list("name", flat=True))) == ["Globex"]
    event = in_org(org_a, lambda: AuditEvent.objects.get(action="references.imported"))
    assert event.details == {"kind": "accounts", "rows": 3, "created": 1, "updated": 0, "skipped_invalid": 2}
    assert in_org(org_a, lambda: AuditEvent.objects.filter(action="account.created").count()) == 1


def test_it_imports_a_valid_file_and_upserts_by_crm_id(client, carol, org_a):
    AccountFactory(organization=org_a, name="Old name", crm_id="CRM-1")
    client.force_login(carol)
    text = "\ufeffName,Industry,CRM ID\nNew name,Energy,CRM-1\nFresh Co,Retail,\n"
    preview = upload(client, "accounts", text)
    assert [r.action for r in preview.context["report"].rows] == ["update", "create"]
    assert confirm(client, preview).status_code == 302
    names = in_org(org_a, lambda: sorted(Account.objects.values_list("name", "crm_id")))
    assert names == [("Fresh Co", ""), ("New name", "CRM-1")]


def test_it_rejects_a_token_used_twice_or_tampered(client, carol, org_a):
    client.force_login(carol)
    preview = upload(client, "accounts", "name\nSolo\n")
    assert confirm(client, preview).status_code == 302
    again = confirm(client, preview)
    assert again.status_code == 302
    assert in_org(org_a, lambda: Account.objects.count()) == 1
    forged = client.post(url("import"), {"token": "made-up"}, follow=True)
    assert "expired" in forged.content.decode()


def test_it_revalidates_on_confirm(client, carol, org_a):
    client.force_login(carol)
    preview = upload(client, "contacts", "account,name,email\nAcme Customer,Ann,ann@example.com\n")
    assert not preview.context["report"].all_valid  # the account does not exist yet
    AccountFactory(organization=org_a, name="Acme Customer")
    assert confirm(client, preview).status_code == 302
    assert in_org(org_a, lambda: Contact.objects.get().account.name) == "Acme Customer"


def test_it_imports_contacts_and_references_with_lists(client, carol, org_a):
    account = AccountFactory(organization=org_a, name="Globex", crm_id="G-1")
    client.force_login(carol)
    contacts = "account,name,title,email,phone,authorised_signatory\nG-1,Hank,CEO,hank@globex.example,,yes\n"
    assert confirm(client, upload(client, "contacts", contacts)).status_code == 302
    hank = in_org(org_a, lambda: Contact.objects.get(email="hank@globex.example"))
    assert hank.account_id == account.pk
    assert hank.is_authorised_signatory
    references = (
        "account,advocate_email,title,summary,publication,products,use_cases,tags\n"
        'Globex,hank@globex.example,Grid rollout,"Ten plants, one ledger",anonymised,Ledger; Close;ledger,Audit,\n'
    )
    assert confirm(client, upload(client, "references", references)).status_code == 302
    reference = in_org(org_a, lambda: Reference.objects.get(title="Grid rollout"))
    assert reference.advocate_id == hank.pk
    assert reference.publication == "anonymised"
    labels = in_org(org_a, lambda: sorted(ReferenceLabel.objects.values_list("kind", "value")))
    assert labels == [("product", "Close"), ("product", "Ledger"), ("use_case", "Audit")]


def test_it_reports_an_advocate_of_another_account_and_unknown_accounts(client, carol, org_a):
    AccountFactory(organization=org_a, name="Globex")
    ContactFactory(organization=org_a, email="other@elsewhere.example")
    client.force_login(carol)
    text = (
        "account,advocate_email,title\n"
        "Globex,other@elsewhere.example,Wrong advocate\n"
        "Nowhere Inc,,Unknown account\n"
        "Globex,,\n"
    )
    rows = upload(client, "references", text).context["report"].rows
    assert rows[0].errors == {"advocate_email": ["The advocate must be a contact of this reference's account."]}
    assert rows[1].errors == {"account": ["No account with this name or CRM id."]}
    assert rows[2].errors == {"title": ["Required."]}


def test_it_reports_duplicates_within_the_file(client, carol, org_a):
    client.force_login(carol)
    rows = upload(client, "accounts", "name\nTwin\ntwin\n").context["report"].rows
    assert rows[0].ok
    assert rows[1].errors == {"name": ["Same as row 2 of this file."]}


def test_it_cannot_reach_another_organizations_accounts(client, carol, org_a, org_b):
    AccountFactory(organization=org_b, name="Borealis Only", crm_id="B-1")
    client.force_login(carol)
    rows = upload(client, "contacts", "account,name,email\nB-1,Zed,zed@example.com\n").context["report"].rows
    assert rows[0].errors == {"account": ["No account with this name or CRM id."]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name\n".encode("utf-16"), "not UTF-8"),
        ("name;industry\nCafé,Food\n".encode("latin-1"), "not UTF-8"),
        (b"", "empty"),
        (b"name\n", "no rows"),
        (b"nom,pays\nA,B\n", "Missing columns: name"),
        (b"name,name\nA,B\n", "Repeated columns: name"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
        (b'name\n"unterminated\n', "not valid CSV"),
    ],
)
def test_it_refuses_unreadable_files_with_a_message(client, carol, org_a, content, message):
    client.force_login(carol)
    response = upload(client, "accounts", content)
    assert response.status_code == 400
    assert message in " ".join(response.context["upload_form"].errors["file"])


def test_it_refuses_files_over_the_size_and_row_limits(client, carol, org_a, settings):
    client.force_login(carol)
    big = b"name\n" + b"x" * (imports.MAX_BYTES + 1)
    response = upload(client, "accounts", big)
    assert f"larger than {imports.MAX_BYTES // 1048576} MB" in " ".join(response.context["upload_form"].errors["file"])
    many = "name\n" + "".join(f"A{i}\n" for i in range(imports.MAX_ROWS + 1))
    response = upload(client, "accounts", many)
    assert "more than 10,000 rows" in " ".join(response.context["upload_form"].errors["file"])
    # References are written in bulk: ten times as many rows, and no more.
    references = "account,title\n" + "".join(f"A,T{i}\n" for i in range(imports.MAX_REFERENCE_ROWS + 1))
    response = upload(client, "references", references)
    assert "more than 100,000 rows" in " ".join(response.context["upload_form"].errors["file"])


def test_it_refuses_import_to_sales(client, bob, org_a):
    client.force_login(bob)
    assert upload(client, "accounts", "name\nX\n").status_code == 403


# --- References in bulk (issue 6: 100,000 rows in ≤ 30 s) --------------------------------------------

REFERENCE_HEADER = "account,advocate_email,title,summary,publication,products,use_cases,tags\n"


def _reference_rows(count: int, start: int = 0) -> str:
    return "".join(
        f"Globex,ann@globex.example,Story {n},Summary {n},attributed,Ledger; Close,Audit,{'emea' if n % 2 else ''}\n"
        for n in range(start, start + count)
    )


@pytest.fixture
def globex(org_a):
    account = AccountFactory(organization=org_a, name="Globex", crm_id="G-1")
    ContactFactory(organization=org_a, account=account, email="ann@globex.example")
    return account


def test_it_imports_a_thousand_references_with_labels_and_one_audit_event_each(client, carol, org_a, globex):
    client.force_login(carol)
    preview = upload(client, "references", REFERENCE_HEADER + _reference_rows(1_200))
    assert preview.context["report"].created == 1_200
    assert in_org(org_a, lambda: Reference.objects.count()) == 0  # the preview wrote nothing that stayed
    assert confirm(client, preview).status_code == 302

    def written():
        reference = Reference.objects.select_related("advocate").get(title="Story 7")
        events = AuditEvent.objects.filter(action="reference.created")
        event = events.get(object_id=str(reference.pk))
        return (
            Reference.objects.count(),
            ReferenceLabel.objects.count(),
            events.count(),
            reference,
            sorted(reference.labels.values_list("kind", "value")),
            event,
        )

    count, labels, events, reference, reference_labels, event = in_org(org_a, written)
    assert (count, labels, events) == (1_200, 1_200 * 3 + 600, 1_200)
    assert reference.owner_id == carol.pk
    assert reference.advocate.email == "ann@globex.example"
    assert reference.publication == "attributed"
    assert reference_labels == [("product", "Close"), ("product", "Ledger"), ("tag", "emea"), ("use_case", "Audit")]
    # The event reference_create records, field for field.
    assert (event.actor_id, event.actor_label, event.object_type, event.object_repr) == (
        carol.pk,
        "carol",
        "references.reference",
        "Story 7",
    )
    assert event.details == {
        "account": globex.pk,
        "product": ["Ledger", "Close"],
        "use_case": ["Audit"],
        "tag": ["emea"],
    }


def test_it_writes_no_reference_when_the_last_of_a_thousand_rows_is_bad(client, carol, org_a, globex):
    client.force_login(carol)
    text = REFERENCE_HEADER + _reference_rows(1_500) + "Nowhere Inc,,Last story,,,,,\n"
    preview = upload(client, "references", text)
    report = preview.context["report"]
    assert (report.valid_count, [(r.number, r.errors) for r in report.invalid]) == (
        1_500,
        [(1_502, {"account": ["No account with this name or CRM id."]})],
    )
    response = confirm(client, preview)
    assert response.status_code == 400
    counts = in_org(
        org_a,
        lambda: (Reference.objects.count(), ReferenceLabel.objects.count(), AuditEvent.objects.count()),
    )
    assert counts == (0, 0, 0)
    assert confirm(client, preview, valid_only=True).status_code == 302
    assert in_org(org_a, lambda: Reference.objects.count()) == 1_500


def _statements_for(organization, actor, text: str) -> tuple[int, int]:
    """(INSERT statements, other statements) of a confirmed import of ``text``."""
    parsed = imports.import_parse(kind="references", text=text)
    with tenant_context(organization), CaptureQueriesContext(connection) as queries:
        report = imports.import_run(organization=organization, actor=actor, parsed=parsed, commit=True)
    assert report.committed
    inserts = sum(1 for query in queries if "INSERT INTO" in query["sql"])
    return inserts, len(queries) - inserts


def test_it_imports_references_in_a_number_of_queries_that_does_not_grow_with_the_rows(
    carol, org_a, globex, monkeypatch
):
    few = _statements_for(org_a, carol, REFERENCE_HEADER + _reference_rows(10))
    many = _statements_for(org_a, carol, REFERENCE_HEADER + _reference_rows(200, start=10))
    # The lookups, the ids, the constraint check and the import's own audit event: the same for 10 rows as for 200.
    assert few[1] == many[1]
    # References, labels, audit events, and the import's event: one INSERT each per batch.
    assert few[0] == 4
    if connection.vendor == "postgresql":
        assert many[0] == 4
        # Statements grow with the batches only: three batches, three INSERTs each, and an id query and
        # the search-document switch turned on and off (migration 0010) each.
        monkeypatch.setattr(imports, "BATCH_SIZE", 100)
        more = _statements_for(org_a, carol, REFERENCE_HEADER + _reference_rows(250, start=210))
        assert more == (1 + 3 * 3, many[1] + 2 * 3)
    else:
        # SQLite allows 999 parameters a statement, so Django splits each INSERT in batches of 66 or more.
        assert many[0] <= 1 + 3 * math.ceil(200 / 66)


def test_it_previews_references_without_writing_and_confirms_exactly_the_report(client, carol, org_a, globex):
    ReferenceFactory(organization=org_a, account=globex, advocate=None, title="Story 3", summary="Old")
    client.force_login(carol)
    text = REFERENCE_HEADER + _reference_rows(300) + "Nowhere Inc,,Lost story,,,,,\n"

    def counts():
        return (
            Reference.objects.count(),
            ReferenceLabel.objects.count(),
            AuditEvent.objects.count(),
            Reference.objects.get(title="Story 3").summary,
        )

    before = in_org(org_a, counts)
    with CaptureQueriesContext(connection) as queries:
        preview = upload(client, "references", text)
    report = preview.context["report"]
    assert (report.created, report.updated, len(report.invalid)) == (299, 1, 1)
    assert in_org(org_a, counts) == before == (1, 0, 0, "Old")
    # New references are not written and rolled back: they are not written at all. Only the update of
    # Story 3 goes through the service (its three kinds of labels and its event), and is rolled back.
    inserts = [q["sql"] for q in queries if "INSERT INTO" in q["sql"]]
    assert not [sql for sql in inserts if re.search(r'INSERT INTO "?references_reference"?\s*\(', sql)]
    assert len([sql for sql in inserts if "references_referencelabel" in sql or "audit_auditevent" in sql]) == 4

    assert confirm(client, preview, valid_only=True).status_code == 302

    def written():
        created = Reference.objects.exclude(title="Story 3")
        return (
            sorted(created.values_list("title", flat=True)),
            sorted(AuditEvent.objects.filter(action="reference.created").values_list("object_repr", flat=True)),
            AuditEvent.objects.filter(action="reference.updated").count(),
            ReferenceLabel.objects.filter(reference__in=created).count(),
            Reference.objects.get(title="Story 3").summary,
        )

    titles, events, updated, labels, summary = in_org(org_a, written)
    expected = sorted(row.values["title"] for row in report.rows if row.ok and row.action == "create")
    assert titles == events == expected
    assert (updated, summary) == (1, "Summary 3")
    assert labels == sum(3 + (n % 2) for n in range(300) if n != 3)


def test_it_rolls_the_confirm_back_when_the_database_refuses_a_checked_row(client, carol, org_a, globex, monkeypatch):
    """A contact deleted after the check (by someone else, in real life): the insert's foreign key fails."""
    client.force_login(carol)
    preview = upload(client, "references", REFERENCE_HEADER + _reference_rows(20))
    assert preview.context["report"].all_valid
    check = imports._ReferenceImport.check

    def check_then_lose_the_advocate(self, parsed, report):
        new = check(self, parsed, report)
        Contact.objects.filter(email="ann@globex.example").delete()
        return new

    monkeypatch.setattr(imports._ReferenceImport, "check", check_then_lose_the_advocate)
    response = confirm(client, preview)
    assert response.status_code == 400
    assert "data changed while the file was being imported" in response.content.decode()
    state = in_org(
        org_a,
        lambda: (
            Reference.objects.count(),
            ReferenceLabel.objects.count(),
            AuditEvent.objects.count(),
            Contact.objects.filter(email="ann@globex.example").exists(),  # the deletion rolled back with the rest
        ),
    )
    assert state == (0, 0, 0, True)


def test_it_writes_every_column_of_a_reference():
    """The set-based INSERT names its columns: a new column of Reference must be added to it."""
    columns = {field.column for field in Reference._meta.concrete_fields} - {"search_document"}
    assert set(imports.REFERENCE_COLUMNS) == columns


def test_it_skips_only_the_uniqueness_checks_a_new_reference_cannot_fail():
    """The import's full_clean skips unique fields and constraints: Reference must have none but its id."""
    assert [field.name for field in Reference._meta.fields if field.unique] == ["id"]
    assert Reference._meta.unique_together == ()
    assert [constraint.fields for constraint in Reference._meta.constraints] == [("organization", "id")]


def test_it_validates_per_row_exactly_the_fields_a_row_sets():
    """full_clean is split: the columns every new row shares are validated once, the file's per row."""
    from django.db.models import Model

    # full_clean would also call clean(), which the import does not: Reference must not define one.
    assert Reference.clean is Model.clean
    # The columns the INSERT takes from a row (the rest are defaults, timestamps, the organization and
    # the owner), in the model's field order, as Model.clean_fields goes through them.
    from_the_row = {"title", "summary", "publication", "account_id", "advocate_id"}
    assert set(imports.REFERENCE_COLUMNS) - from_the_row == {
        "id",
        "created_at",
        "updated_at",
        "organization_id",
        "owner_id",
        "status",
        "retired_at",
        "disclosure",
        "restricted",
    }
    fields = [field.name for field in Reference._meta.fields if field.name in imports._ROW_FIELDS]
    assert tuple(fields) == imports._ROW_FIELDS
    assert {"account", "advocate"} <= set(imports._FOREIGN_KEYS_FOUND)


@pytest.mark.parametrize(
    ("title", "publication", "errors"),
    [
        ("T" * 201, "attributed", {"title"}),
        ("", "", {"title", "publication"}),
        ("T" * 201, "bogus", {"title", "publication"}),
        ("Fine", "bogus", {"publication"}),
    ],
)
def test_it_reports_every_field_error_of_a_row_as_full_clean_does(org_a, carol, title, publication, errors):
    from references import services
    from refmgr.common.exceptions import ApplicationError

    with tenant_context(org_a):
        importer = imports._ReferenceImport(organization=org_a, actor=carol)
        ours = Reference(organization=org_a, title=title, publication=publication)
        theirs = Reference(organization=org_a, title=title, publication=publication)
        with pytest.raises(ApplicationError) as mine:
            importer._clean_row_fields(ours)
        with pytest.raises(ApplicationError) as full:
            services._full_clean(
                theirs, exclude=list(imports._FOREIGN_KEYS_FOUND), validate_constraints=False, validate_unique=False
            )
    assert set(mine.value.extra) == errors
    assert (mine.value.message, mine.value.field, mine.value.extra) == (
        full.value.message,
        full.value.field,
        full.value.extra,
    )


TRICKY = (
    REFERENCE_HEADER
    + "Globex,ann@globex.example,New story,Fine,attributed,Ledger,,\n"
    + "globex,,new STORY,,,,,\n"  # the same account and title, differently written: a duplicate
    + "G-1,,Existing story,Changed summary,,Close,,\n"  # matches a reference: an update, labels replaced
    + "Globex,nobody@example.com,Ghost advocate,,,,,\n"
    + "Globex,other@initech.example,Wrong advocate,,,,,\n"
    + "Globex,,Bad publication,,everywhere,,,\n"
    + f"Globex,,Long label,,,{'x' * 101},,\n"
    + f"Globex,,{'T' * 201},,,,,\n"
    + f"Globex,,Many tags,,,,,{';'.join(f't{n}' for n in range(31))}\n"
    + "Nowhere,,Unknown account,,,,,\n"
    + ",,,,,,,\n"
    + "Globex,,,no title,,,,\n"
)


def _report_of(organization, actor, bulk: bool):
    parsed = imports.import_parse(kind="references", text=TRICKY)
    report = imports.ImportReport(kind="references", rows=[])
    with tenant_context(organization), transaction.atomic():
        if bulk:
            importer = imports._ReferenceImport(organization=organization, actor=actor)
            importer.create(importer.check(parsed, report))
        else:
            imports._run_row_by_row(organization=organization, actor=actor, parsed=parsed, report=report)
        state = sorted(
            (
                r.title,
                r.summary,
                r.publication,
                r.advocate_id,
                r.owner_id,
                r.status,
                r.disclosure,
                r.restricted,
                r.retired_at,
                r.created_at is not None and r.updated_at is not None,
                sorted(r.labels.values_list("kind", "value")),
                # Filled by the triggers on PostgreSQL: the same document either way.
                str(Reference.objects.values_list("search_document", flat=True).get(pk=r.pk)),
            )
            for r in Reference.objects.all()
        )
        events = sorted(AuditEvent.objects.values_list("action", "object_repr", "details"), key=str)
        transaction.set_rollback(True)
    return [(row.number, row.action if row.ok else "", row.errors) for row in report.rows], state, events


def test_it_reports_and_writes_references_exactly_as_row_by_row_through_the_services(carol, org_a, globex):
    initech = AccountFactory(organization=org_a, name="Initech")
    ContactFactory(organization=org_a, account=initech, email="other@initech.example")
    ReferenceFactory(organization=org_a, account=globex, advocate=None, title="Existing story")
    bulk = _report_of(org_a, carol, bulk=True)
    assert bulk == _report_of(org_a, carol, bulk=False)
    rows = {number: (action, errors) for number, action, errors in bulk[0]}
    assert rows[2] == ("create", {})
    assert rows[3] == ("", {"title": ["Same as row 2 of this file."]})
    assert rows[4] == ("update", {})
    assert rows[5] == ("", {"advocate_email": ["No contact with this email."]})
    assert rows[6] == ("", {"advocate_email": ["The advocate must be a contact of this reference's account."]})
    assert list(rows[7][1]) == ["publication"]
    assert list(rows[8][1]) == ["products"]
    assert "200 characters" in rows[9][1]["title"][0]
    assert rows[10] == ("", {"tags": ["At most 30 entries."]})
    assert rows[11] == ("", {"account": ["No account with this name or CRM id."]})
    assert rows[13] == ("", {"title": ["Required."]})


def test_it_makes_imported_references_searchable_and_leaves_the_triggers_on(client, carol, org_a, globex):
    """The import computes the search documents itself (the triggers stand aside, migration 0010):
    found by title, label and account name, but an anonymised one not by its account's name; and
    the switch is off again after the import, so later writes in the same transaction keep their
    documents current through the triggers."""
    from references import services
    from references.selectors import reference_search

    rows = (
        REFERENCE_HEADER
        + "Globex,,Quarterly zeppelin rollout,Finance team,attributed,Ledger,Audit,emea\n"
        + "Globex,,Hidden walrus story,Quiet,anonymised,Close,,\n"
    )
    client.force_login(carol)
    assert confirm(client, upload(client, "references", rows)).status_code == 302

    def found(query: str) -> list[str]:
        return sorted(reference_search(Reference.objects.all(), query).values_list("title", flat=True))

    with tenant_context(org_a):
        assert found("zeppelin") == ["Quarterly zeppelin rollout"]
        assert found("walrus") == ["Hidden walrus story"]
        assert found("ledger") == ["Quarterly zeppelin rollout"]  # a product label
        assert found("emea") == ["Quarterly zeppelin rollout"]  # a tag
        assert found("close") == ["Hidden walrus story"]
        assert found("globex") == ["Quarterly zeppelin rollout"]  # not the anonymised one
        assert found("walrus globex") == []
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_setting('refmgr.bulk_document', true)")
                assert cursor.fetchone()[0] in (None, "", "off")
        # Later writes go through the triggers again (inside the test's transaction, like the import).
        hidden = Reference.objects.get(title="Hidden walrus story")
        services.reference_update(organization=org_a, reference=hidden, actor=carol, tags="narwhal")
        assert found("narwhal") == ["Hidden walrus story"]


def test_it_lists_the_first_errors_and_valid_rows_and_counts_the_rest(client, carol, org_a, globex, monkeypatch):
    monkeypatch.setattr(imports, "REPORT_MAX_ERRORS", 3)
    monkeypatch.setattr(imports, "REPORT_MAX_VALID", 5)
    client.force_login(carol)
    bad = "".join(f"Nowhere,,Lost {n},,,,,\n" for n in range(10))
    preview = upload(client, "references", REFERENCE_HEADER + _reference_rows(1_000) + bad)
    report = preview.context["report"]
    assert len(report.invalid) == 10
    assert [row.number for row in report.invalid_listed] == [1_002, 1_003, 1_004]
    assert [row.number for row in report.valid_listed] == [2, 3, 4, 5, 6]
    body = preview.content.decode()
    assert "…and 7 more rows with errors, not listed." in body
    assert "…and 995 more valid rows, not listed." in body
    assert body.count("import-report__row--error") == 3


def test_it_keeps_the_file_out_of_the_session_and_removes_it_when_done(client, carol, org_a, globex, settings):
    client.force_login(carol)
    preview = upload(client, "references", REFERENCE_HEADER + _reference_rows(2_000))
    token = preview.context["confirm_form"].initial["token"]
    entry = client.session[imports.SESSION_KEY][token]
    assert set(entry) == {"organization", "kind", "filename", "created", "file"}
    stored = settings.MEDIA_ROOT / entry["file"]
    assert stored.exists()
    assert token not in entry["file"]  # the name is derived from the token, not the token itself
    assert confirm(client, preview).status_code == 302
    assert not stored.exists()


def test_it_analyzes_after_a_large_confirmed_import(client, carol, org_a, globex, django_capture_on_commit_callbacks):
    client.force_login(carol)
    preview = upload(client, "references", REFERENCE_HEADER + _reference_rows(imports.ANALYZE_AFTER_ROWS))
    # On PostgreSQL this runs the owner's SECURITY DEFINER function as the application role.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert confirm(client, preview).status_code == 302
    assert imports.import_analyze in callbacks
    small = upload(client, "references", REFERENCE_HEADER + _reference_rows(10, start=5_000))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert confirm(client, small).status_code == 302
    assert imports.import_analyze not in callbacks


# --- Export ------------------------------------------------------------------------------------------


def _csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_it_escapes_formulas_in_the_export(client, carol, org_a):
    AccountFactory(organization=org_a, name='=HYPERLINK("http://evil")', industry="+cmd", region="-1", crm_id="@x")
    AccountFactory(organization=org_a, name="\tTabbed", industry="Plain")
    client.force_login(carol)
    response = client.get(url("export"), {"kind": "accounts"})
    assert response["Content-Type"].startswith("text/csv")
    rows = _csv(response)
    assert rows[0] == list(imports.COLUMNS["accounts"])
    cells = [cell for row in rows[1:] for cell in row if cell]
    assert '\'=HYPERLINK("http://evil")' in cells
    assert "'+cmd" in cells
    assert "'-1" in cells
    assert "'@x" in cells
    assert "'\tTabbed" in cells
    assert not any(cell.startswith(("=", "+", "-", "@", "\t")) for cell in cells)
    assert in_org(org_a, lambda: AuditEvent.objects.filter(action="references.exported").count()) == 1


def test_it_exports_references_and_contacts_in_the_import_columns(client, carol, org_a, org_b):
    reference = ReferenceFactory(organization=org_a, title="=1+1")
    in_org(org_a, lambda: ReferenceLabel.objects.create(reference=reference, kind="product", value="Ledger"))
    ReferenceFactory(organization=org_b, title="Borealis secret")
    client.force_login(carol)
    rows = _csv(client.get(url("export"), {"kind": "references"}))
    assert len(rows) == 2
    assert rows[1][2] == "'=1+1"
    assert rows[1][5] == "Ledger"
    contacts = _csv(client.get(url("export"), {"kind": "contacts"}))
    assert contacts[0] == list(imports.COLUMNS["contacts"])
    assert len(contacts) == 2
    assert client.get(url("export"), {"kind": "passwords"}).status_code == 400


def test_it_round_trips_an_escaped_export(client, carol, org_a):
    AccountFactory(organization=org_a, name="-Minus Corp")
    client.force_login(carol)
    exported = client.get(url("export"), {"kind": "accounts"}).content
    preview = upload(client, "accounts", exported)
    assert [r.action for r in preview.context["report"].rows] == ["update"]
