"""CSV import (preview, atomic confirm, row-by-row report, bad files) and the injection-safe export."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from references import imports
from references.models import Account, Contact, Reference, ReferenceLabel
from refmgr.audit.models import AuditEvent
from refmgr.tenancy.context import tenant_context
from tests.factories.references import AccountFactory, ContactFactory, ReferenceFactory


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
    assert "larger than 5 MB" in " ".join(response.context["upload_form"].errors["file"])
    many = "name\n" + "".join(f"A{i}\n" for i in range(imports.MAX_ROWS + 1))
    response = upload(client, "accounts", many)
    assert "more than 10,000 rows" in " ".join(response.context["upload_form"].errors["file"])


def test_it_refuses_import_to_sales(client, bob, org_a):
    client.force_login(bob)
    assert upload(client, "accounts", "name\nX\n").status_code == 403


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
