"""The reference managers' pages: roles, writes through services with audit events, isolation, uploads, queries."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from references.models import Account, Contact, Reference, ReferenceAsset, ReferenceLabel, ReferenceSettings
from refmgr.audit.models import AuditEvent
from refmgr.tenancy.context import tenant_context
from tests.factories.references import (
    AccountFactory,
    ContactFactory,
    ReferenceAssetFactory,
    ReferenceFactory,
    grant,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.7\n" + b"0" * 64


def url(name: str, slug: str = "acme", **kwargs: object) -> str:
    return reverse(f"references:{name}", kwargs={"organization_slug": slug, **kwargs})


def actions(organization) -> list[str]:
    with tenant_context(organization):
        return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def in_org(organization, fn):
    # Row-level security on PostgreSQL hides rows from reads outside their organization.
    with tenant_context(organization):
        return fn()


@pytest.fixture
def objects(org_a):
    reference = ReferenceFactory(organization=org_a)
    asset = ReferenceAssetFactory(organization=org_a, reference=reference)
    return {
        "account_id": reference.account_id,
        "contact_id": reference.advocate_id,
        "reference_id": reference.pk,
        "asset_id": asset.pk,
    }


def manager_pages(objects) -> list[tuple[str, dict]]:
    return [
        ("manage", {}),
        ("account_list", {}),
        ("account_create", {}),
        ("account_edit", {"account_id": objects["account_id"]}),
        ("contact_list", {}),
        ("contact_create", {}),
        ("contact_edit", {"contact_id": objects["contact_id"]}),
        ("reference_create", {}),
        ("reference_edit", {"reference_id": objects["reference_id"]}),
        ("reference_retire", {"reference_id": objects["reference_id"]}),
        ("asset_create", {"reference_id": objects["reference_id"]}),
        ("asset_edit", {"asset_id": objects["asset_id"]}),
        ("asset_delete", {"asset_id": objects["asset_id"]}),
        ("import", {}),
    ]


# --- Roles ---------------------------------------------------------------------------------------


def test_it_opens_every_manager_page_to_managers_and_admins(client, alice, carol, objects):
    for user in (alice, carol):
        client.force_login(user)
        for name, kwargs in manager_pages(objects):
            assert client.get(url(name, **kwargs)).status_code == 200, (user, name)
        assert client.get(url("export"), {"kind": "accounts"}).status_code == 200


@pytest.mark.parametrize("who", ["bob", "dave"])
def test_it_refuses_manager_pages_to_sales_and_compliance(client, who, request, objects):
    client.force_login(request.getfixturevalue(who))
    for name, kwargs in [*manager_pages(objects), ("settings", {}), ("export", {})]:
        assert client.get(url(name, **kwargs)).status_code == 403, name
    response = client.post(url("account_create"), {"name": "Sneaky Co"})
    assert response.status_code == 403


def test_it_opens_the_settings_page_to_admins_only(client, alice, carol):
    client.force_login(carol)
    assert client.get(url("settings")).status_code == 403
    client.force_login(alice)
    assert client.get(url("settings")).status_code == 200


def test_it_sends_anonymous_visitors_to_sign_in(client, org_a, objects):
    for name, kwargs in manager_pages(objects):
        response = client.get(url(name, **kwargs))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_it_hides_other_tenants_objects(client, mallory, org_a, objects):
    client.force_login(mallory)
    # In A's URLs: not a member, so A does not exist for mallory.
    for name, kwargs in manager_pages(objects):
        assert client.get(url(name, **kwargs)).status_code == 404, name
    # A's ids in mallory's own organization: no such object there.
    for name, kwargs in manager_pages(objects):
        if kwargs:
            assert client.get(url(name, slug="borealis", **kwargs)).status_code == 404, name
            assert client.post(url(name, slug="borealis", **kwargs), {"title": "x"}).status_code == 404, name
    assert in_org(org_a, lambda: Reference.objects.get(pk=objects["reference_id"]).status) == "active"


# --- Accounts and contacts ------------------------------------------------------------------------


def test_it_creates_and_edits_an_account_with_audit_events(client, carol, org_a):
    client.force_login(carol)
    response = client.post(
        url("account_create"),
        {"name": "Globex", "industry": "Energy", "region": "EMEA", "size_band": "1000-4999", "crm_id": "CRM-1"},
    )
    assert response.status_code == 302
    account = in_org(org_a, lambda: Account.objects.get(name="Globex"))
    response = client.post(
        url("account_edit", account_id=account.pk),
        {"name": "Globex Corp", "industry": "Energy", "region": "APAC", "size_band": "", "crm_id": "CRM-1"},
    )
    assert response.status_code == 302
    account = in_org(org_a, lambda: Account.objects.get(pk=account.pk))
    assert (account.name, account.region) == ("Globex Corp", "APAC")
    assert actions(org_a)[-2:] == ["account.created", "account.updated"]


def test_it_shows_a_duplicate_account_name_as_a_field_error(client, carol, org_a):
    AccountFactory(organization=org_a, name="Initech")
    client.force_login(carol)
    response = client.post(url("account_create"), {"name": "initech"})
    assert response.status_code == 400
    assert "name" in response.context["form"].errors


def test_it_refuses_another_organizations_account_in_a_contact_form(client, carol, org_a, org_b):
    foreign = AccountFactory(organization=org_b, name="Borealis customer")
    client.force_login(carol)
    response = client.post(url("contact_create"), {"account": foreign.pk, "name": "Eve", "email": "eve@example.com"})
    assert response.status_code == 400
    assert "account" in response.context["form"].errors
    assert in_org(org_a, lambda: Contact.objects.filter(email="eve@example.com").exists()) is False


def test_it_creates_and_edits_a_contact(client, carol, org_a):
    account = AccountFactory(organization=org_a)
    client.force_login(carol)
    data = {"account": account.pk, "name": "Ada", "email": "ADA@Example.com", "is_authorised_signatory": "on"}
    assert client.post(url("contact_create"), data).status_code == 302
    contact = in_org(org_a, lambda: Contact.objects.get(name="Ada"))
    assert contact.email == "ada@example.com"
    assert contact.is_authorised_signatory
    data.update({"usage_cap": "1", "cooldown_days": "30", "title": "CFO"})
    assert client.post(url("contact_edit", contact_id=contact.pk), data).status_code == 302
    contact = in_org(org_a, lambda: Contact.objects.get(pk=contact.pk))
    assert (contact.usage_cap, contact.cooldown_days, contact.title) == (1, 30, "CFO")
    assert actions(org_a)[-2:] == ["contact.created", "contact.updated"]


# --- References ------------------------------------------------------------------------------------


def test_it_creates_a_reference_with_normalised_labels(client, carol, org_a):
    contact = ContactFactory(organization=org_a)
    client.force_login(carol)
    response = client.post(
        url("reference_create"),
        {
            "account": contact.account_id,
            "advocate": contact.pk,
            "title": "  Faster close  ",
            "summary": "From ten days to three.",
            "publication": "anonymised",
            "owner": carol.pk,
            "products": "Ledger, ledger ,  Close  Manager,",
            "use_cases": "Month-end close",
            "tags": "",
        },
    )
    assert response.status_code == 302
    reference = in_org(org_a, lambda: Reference.objects.get(title="Faster close"))
    labels = in_org(
        org_a, lambda: sorted(ReferenceLabel.objects.filter(reference=reference).values_list("kind", "value"))
    )
    assert labels == [("product", "Close Manager"), ("product", "Ledger"), ("use_case", "Month-end close")]
    assert "reference.created" in actions(org_a)


def test_it_refuses_an_advocate_from_another_account(client, carol, org_a):
    account = AccountFactory(organization=org_a)
    stranger = ContactFactory(organization=org_a)  # at another account
    client.force_login(carol)
    response = client.post(
        url("reference_create"),
        {"account": account.pk, "advocate": stranger.pk, "title": "Wrong person", "publication": "internal_only"},
    )
    assert response.status_code == 400
    assert "advocate" in response.context["form"].errors


def test_it_refuses_another_organizations_advocate(client, carol, org_a, org_b):
    account = AccountFactory(organization=org_a)
    foreign = ContactFactory(organization=org_b)
    client.force_login(carol)
    response = client.post(
        url("reference_create"),
        {"account": account.pk, "advocate": foreign.pk, "title": "x", "publication": "internal_only"},
    )
    assert response.status_code == 400
    assert "advocate" in response.context["form"].errors


def test_it_edits_a_reference_and_replaces_its_labels(client, carol, org_a):
    reference = ReferenceFactory(organization=org_a)
    in_org(org_a, lambda: ReferenceLabel.objects.create(reference=reference, kind="tag", value="old"))
    client.force_login(carol)
    page = client.get(url("reference_edit", reference_id=reference.pk))
    assert page.context["form"].initial["tags"] == "old"
    response = client.post(
        url("reference_edit", reference_id=reference.pk),
        {
            "account": reference.account_id,
            "advocate": reference.advocate_id,
            "title": "New title",
            "publication": "attributed",
            "tags": "new",
        },
    )
    assert response.status_code == 302
    assert in_org(
        org_a, lambda: list(ReferenceLabel.objects.filter(reference=reference).values_list("value", flat=True))
    ) == ["new"]
    assert actions(org_a)[-1] == "reference.updated"


def test_it_retires_a_reference_after_confirmation(client, carol, org_a):
    reference = ReferenceFactory(organization=org_a)
    client.force_login(carol)
    page = client.get(url("reference_retire", reference_id=reference.pk))
    assert "cannot be undone" in page.content.decode()
    assert in_org(org_a, lambda: Reference.objects.get(pk=reference.pk).status) == "active"
    response = client.post(url("reference_retire", reference_id=reference.pk), {"reason": "Customer churned"})
    assert response.status_code == 302
    assert in_org(org_a, lambda: Reference.objects.get(pk=reference.pk).status) == "retired"
    assert "reference.retired" in actions(org_a)


def test_it_explains_why_references_are_not_usable(client, carol, org_a):
    usable = ReferenceFactory(organization=org_a, title="Usable one")
    grant(usable, "call")
    ReferenceFactory(organization=org_a, title="No consent")
    expired = ReferenceFactory(organization=org_a, title="Expired one")
    grant(expired, "quote", days=-1)
    ReferenceFactory(organization=org_a, title="Old one", status="retired")
    client.force_login(carol)
    rows = {row.reference.title: row for row in client.get(url("manage")).context["page"].object_list}
    assert rows["Usable one"].usable == ["Reference call"]
    assert rows["No consent"].reasons == ["No consent granted yet"]
    assert rows["Expired one"].reasons == ["Consent expired"]
    assert "Retired" in rows["Old one"].reasons
    retired_only = client.get(url("manage"), {"status": "retired"}).context["page"].object_list
    assert [row.reference.title for row in retired_only] == ["Old one"]


def test_it_searches_sorts_and_paginates_lists(client, carol, org_a):
    for i in range(30):
        AccountFactory(organization=org_a, name=f"Account {i:02d}", region="EMEA" if i % 2 else "APAC")
    client.force_login(carol)
    page = client.get(url("account_list"), {"sort": "-name"}).context["page"]
    assert page.paginator.count == 30
    assert len(page.object_list) == 25
    assert page.object_list[0].name == "Account 29"
    page = client.get(url("account_list"), {"q": "account 07"}).context["page"]
    assert [a.name for a in page.object_list] == ["Account 07"]
    # Unknown sorts and page numbers are ignored, never a 500.
    assert client.get(url("account_list"), {"sort": "password", "page": "zzz"}).status_code == 200
    response = client.get(url("account_list"), {"q": "nothing-like-this"})
    assert "No account matches" in response.content.decode()


def test_it_shows_helpful_empty_states(client, carol, org_a):
    client.force_login(carol)
    assert "No references yet" in client.get(url("manage")).content.decode()
    assert "No accounts yet" in client.get(url("account_list")).content.decode()
    assert "No contacts yet" in client.get(url("contact_list")).content.decode()


def _queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


@pytest.mark.parametrize("name", ["manage", "account_list", "contact_list"])
def test_it_runs_a_constant_number_of_queries(client, carol, org_a, name):
    client.force_login(carol)

    def add(n: int) -> None:
        for _ in range(n):
            reference = ReferenceFactory(organization=org_a)
            grant(reference, "call")
            in_org(org_a, lambda r=reference: ReferenceLabel.objects.create(reference=r, kind="tag", value="x"))

    add(5)
    client.get(url(name))  # the first page of a session writes the session once
    few = _queries(client, url(name))
    add(35)
    many = _queries(client, url(name))
    assert few == many, (few, many)


# --- Assets and uploads --------------------------------------------------------------------------------


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def test_it_uploads_a_logo_and_serves_it_to_managers(client, carol, bob, org_a, media):
    reference = ReferenceFactory(organization=org_a)
    client.force_login(carol)
    logo = SimpleUploadedFile("logo.png", PNG, content_type="image/png")
    response = client.post(url("asset_create", reference_id=reference.pk), {"kind": "logo", "file": logo})
    assert response.status_code == 302
    asset = in_org(org_a, lambda: ReferenceAsset.objects.get(reference=reference, kind="logo"))
    assert asset.file.name.endswith(".png")
    assert "logo" not in asset.file.name
    download = client.get(url("asset_file", asset_id=asset.pk))
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PNG
    assert "reference_asset.created" in actions(org_a)
    client.force_login(bob)
    assert client.get(url("asset_file", asset_id=asset.pk)).status_code == 403


@pytest.mark.parametrize(
    ("kind", "name", "content", "message"),
    [
        ("logo", "logo.svg", b"<svg onload='alert(1)'/>", "Upload a PNG, JPEG or WebP file"),
        ("logo", "logo.png", b"GIF89a" + b"0" * 20, "contents are not a PNG file"),
        ("logo", "logo.png", PNG + b"0" * (2 * 1024 * 1024), "the limit is 2 MB"),
        ("case_study", "story.exe", b"MZ" + b"0" * 20, "Upload a PDF or Word"),
        ("case_study", "story.pdf", b"<html>", "contents are not a PDF file"),
        ("case_study", "story.docx", b"PK\x03\x04" + b"0" * 30, "contents are not a DOCX file"),
    ],
)
def test_it_refuses_wrong_or_oversized_uploads(client, carol, org_a, media, kind, name, content, message):
    reference = ReferenceFactory(organization=org_a)
    client.force_login(carol)
    response = client.post(
        url("asset_create", reference_id=reference.pk),
        {"kind": kind, "file": SimpleUploadedFile(name, content)},
    )
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors["file"])
    assert in_org(org_a, lambda: ReferenceAsset.objects.filter(reference=reference).count()) == 0


def test_it_accepts_a_pdf_case_study(client, carol, org_a, media):
    reference = ReferenceFactory(organization=org_a)
    client.force_login(carol)
    response = client.post(
        url("asset_create", reference_id=reference.pk),
        {"kind": "case_study", "title": "Story", "file": SimpleUploadedFile("story.pdf", PDF)},
    )
    assert response.status_code == 302


def test_it_voids_the_quote_consent_when_the_words_change(client, carol, org_a):
    reference = ReferenceFactory(organization=org_a)
    asset = ReferenceAssetFactory(organization=org_a, reference=reference, text="Great.")
    grant(reference, "quote", "call")
    client.force_login(carol)
    response = client.post(url("asset_edit", asset_id=asset.pk), {"kind": "quote", "text": "Really great."})
    assert response.status_code == 302
    from references.models import ReferenceScopeGrant

    scopes = in_org(
        org_a, lambda: set(ReferenceScopeGrant.objects.filter(reference=reference).values_list("scope", flat=True))
    )
    assert scopes == {"call"}
    assert actions(org_a)[-2:] == ["reference_asset.updated", "reference.scope_withdrawn"]


def test_it_deletes_an_asset_after_confirmation(client, carol, org_a):
    asset = ReferenceAssetFactory(organization=org_a)
    client.force_login(carol)
    assert client.get(url("asset_delete", asset_id=asset.pk)).status_code == 200
    assert client.post(url("asset_delete", asset_id=asset.pk)).status_code == 302
    assert in_org(org_a, lambda: ReferenceAsset.objects.filter(pk=asset.pk).exists()) is False
    assert actions(org_a)[-1] == "reference_asset.deleted"


def test_it_requires_the_quote_text(client, carol, org_a):
    reference = ReferenceFactory(organization=org_a)
    client.force_login(carol)
    response = client.post(url("asset_create", reference_id=reference.pk), {"kind": "quote", "text": "  "})
    assert response.status_code == 400
    assert "text" in response.context["form"].errors


# --- Settings ------------------------------------------------------------------------------------------


def test_it_shows_the_default_limits_and_saves_new_ones(client, alice, org_a):
    client.force_login(alice)
    form = client.get(url("settings")).context["form"]
    assert (form.initial["usage_cap"], form.initial["usage_window_days"], form.initial["cooldown_days"]) == (3, 90, 14)
    response = client.post(url("settings"), {"usage_cap": "2", "usage_window_days": "60", "cooldown_days": "7"})
    assert response.status_code == 302
    saved = in_org(org_a, lambda: ReferenceSettings.objects.get())
    assert (saved.usage_cap, saved.usage_window_days, saved.cooldown_days) == (2, 60, 7)
    event = in_org(org_a, lambda: AuditEvent.objects.get(action="reference_settings.updated"))
    assert event.details["usage_cap"] == [3, 2]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"usage_cap": "0", "usage_window_days": "90", "cooldown_days": "14"}, "usage_cap"),
        ({"usage_cap": "3", "usage_window_days": "0", "cooldown_days": "14"}, "usage_window_days"),
        ({"usage_cap": "3", "usage_window_days": "30", "cooldown_days": "60"}, "cooldown_days"),
        ({"usage_cap": "x", "usage_window_days": "90", "cooldown_days": "14"}, "usage_cap"),
    ],
)
def test_it_rejects_invalid_limits(client, alice, org_a, data, field):
    client.force_login(alice)
    response = client.post(url("settings"), data)
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert in_org(org_a, lambda: ReferenceSettings.objects.exists()) is False
