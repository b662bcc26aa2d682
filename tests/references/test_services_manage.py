"""The manager services: validation as field errors, organization checks, labels, assets, limits."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from references import services
from references.models import Account, ReferenceLabel, ReferenceSettings
from refmgr.audit.models import AuditEvent
from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.context import tenant_context
from tests.factories.references import AccountFactory, ContactFactory, ReferenceFactory


def test_it_creates_an_account_and_records_it(in_org_a, alice):
    account = services.account_create(organization=in_org_a, actor=alice, name="  Globex ", crm_id="G-1")
    assert account.name == "Globex"
    event = AuditEvent.objects.get(action="account.created")
    assert event.object_id == str(account.pk)
    assert event.actor == alice


def test_it_names_the_field_of_a_duplicate(in_org_a):
    services.account_create(organization=in_org_a, actor=None, name="Globex", crm_id="G-1")
    with pytest.raises(ApplicationError) as error:
        services.account_create(organization=in_org_a, actor=None, name="Other", crm_id="G-1")
    assert error.value.field == "crm_id"
    with pytest.raises(ApplicationError) as error:
        services.account_create(organization=in_org_a, actor=None, name="GLOBEX")
    assert error.value.field == "name"


def test_it_turns_model_validation_into_a_field_error(in_org_a):
    with pytest.raises(ApplicationError) as error:
        services.account_create(organization=in_org_a, actor=None, name="X", website="javascript:alert(1)")
    assert error.value.field == "website"
    assert Account.objects.count() == 0


def test_it_records_only_changed_fields_on_update(in_org_a):
    account = services.account_create(organization=in_org_a, actor=None, name="Globex")
    services.account_update(organization=in_org_a, account=account, actor=None, name="Globex", region="EMEA")
    event = AuditEvent.objects.get(action="account.updated")
    assert event.details == {"region": ["", "EMEA"]}
    services.account_update(organization=in_org_a, account=account, actor=None, name="Globex", region="EMEA")
    assert AuditEvent.objects.filter(action="account.updated").count() == 1


def test_it_refuses_an_account_of_another_organization(org_a, org_b):
    foreign = AccountFactory(organization=org_b)
    with tenant_context(org_a), pytest.raises(ApplicationError) as error:
        services.contact_create(organization=org_a, actor=None, account=foreign, name="Eve", email="eve@example.com")
    assert error.value.field == "account"


def test_it_keeps_contact_personal_data_out_of_the_audit_log(in_org_a):
    contact = ContactFactory(organization=in_org_a)
    services.contact_update(organization=in_org_a, contact=contact, actor=None, phone="+44 20 7946 0000")
    event = AuditEvent.objects.get(action="contact.updated")
    assert event.details == {"fields": ["phone"]}


def test_it_refuses_to_move_an_advocate_to_another_account(in_org_a):
    reference = ReferenceFactory(organization=in_org_a)
    other = AccountFactory(organization=in_org_a)
    with pytest.raises(ApplicationError) as error:
        services.contact_update(organization=in_org_a, contact=reference.advocate, actor=None, account=other)
    assert error.value.field == "account"


def test_it_requires_the_advocate_to_be_at_the_references_account(in_org_a):
    account = AccountFactory(organization=in_org_a)
    stranger = ContactFactory(organization=in_org_a)
    with pytest.raises(ApplicationError) as error:
        services.reference_create(organization=in_org_a, actor=None, account=account, advocate=stranger, title="T")
    assert error.value.field == "advocate"
    reference = ReferenceFactory(organization=in_org_a)
    with pytest.raises(ApplicationError):
        services.reference_update(organization=in_org_a, reference=reference, actor=None, advocate=stranger)


def test_it_normalises_labels(in_org_a):
    assert services.labels_parse(" a,  b  c ;A,,", field="tags") == ["a", "b c"]
    with pytest.raises(ApplicationError):
        services.labels_parse("x" * 101, field="tags")
    with pytest.raises(ApplicationError):
        services.labels_parse(",".join(str(i) for i in range(31)), field="tags")
    account = AccountFactory(organization=in_org_a)
    reference = services.reference_create(
        organization=in_org_a, actor=None, account=account, title="T", products="Ledger, Close", tags="vip"
    )
    services.reference_update(organization=in_org_a, reference=reference, actor=None, products="Close, Payroll")
    labels = sorted(ReferenceLabel.objects.filter(reference=reference).values_list("kind", "value"))
    assert labels == [("product", "Close"), ("product", "Payroll"), ("tag", "vip")]


def _docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("kind", "name", "content", "ok"),
    [
        ("logo", "a.png", b"\x89PNG\r\n\x1a\n0000", True),
        ("logo", "a.JPG", b"\xff\xd8\xff\xe0000", True),
        ("logo", "a.webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ", True),
        ("logo", "a.svg", b"<svg/>", False),
        ("logo", "a.jpg", b"\x89PNG\r\n\x1a\n0000", False),
        ("case_study", "a.docx", _docx(), True),
        ("case_study", "a.docx", b"PK\x03\x04notazip", False),
        ("case_study", "a.pdf", b"%PDF-1.4", True),
        ("quote", "a.pdf", b"%PDF-1.4", False),
    ],
)
def test_it_checks_uploads_by_extension_and_contents(kind, name, content, ok):
    upload = SimpleUploadedFile(name, content)
    if ok:
        services.asset_file_check(kind=kind, upload=upload)
    else:
        with pytest.raises(ApplicationError) as error:
            services.asset_file_check(kind=kind, upload=upload)
        assert error.value.field == "file"


def test_it_saves_limits_with_defaults_first(in_org_a, alice):
    saved = services.reference_settings_update(
        organization=in_org_a, actor=alice, usage_cap=3, usage_window_days=90, cooldown_days=14
    )
    assert saved.pk is not None
    assert not AuditEvent.objects.filter(action="reference_settings.updated").exists()
    services.reference_settings_update(
        organization=in_org_a, actor=alice, usage_cap=5, usage_window_days=90, cooldown_days=14
    )
    assert ReferenceSettings.objects.get().usage_cap == 5
    assert AuditEvent.objects.get(action="reference_settings.updated").details == {"usage_cap": [3, 5]}
    with pytest.raises(ApplicationError) as error:
        services.reference_settings_update(
            organization=in_org_a, actor=alice, usage_cap=101, usage_window_days=90, cooldown_days=14
        )
    assert error.value.field == "usage_cap"
