"""Django admin for the references app: scoped to the organization, the ledger read-only with CSV export."""

from __future__ import annotations

import csv
import io

import pytest

from references.models import UsageEvent, UsageRequest
from references.services import usage_request_approve, usage_request_complete, usage_request_create
from refmgr.tenancy.context import tenant_context
from tests.factories.references import ReferenceFactory, grant

LEDGER = "/admin/references/usageevent/"


@pytest.fixture
def ledger(org_a, bob, carol):
    reference = ReferenceFactory(organization=org_a, title="Acme story")
    grant(reference, "call")
    with tenant_context(org_a):
        usage_request = usage_request_create(
            organization=org_a,
            reference=reference,
            scope="call",
            requested_by=bob,
            opportunity_name="=HYPERLINK(evil)",
            crm_opportunity_id="OPP-1",
        )
        usage_request = usage_request_approve(organization=org_a, usage_request=usage_request, actor=carol)
        usage_request_complete(organization=org_a, usage_request=usage_request, actor=bob, outcome="won")
    return reference


@pytest.mark.parametrize(
    "model",
    [
        "account",
        "contact",
        "reference",
        "referenceasset",
        "usagerequest",
        "referencesettings",
        "referencescopegrant",
        "referencehold",
        "usagenotification",
        "usageevent",
    ],
)
def test_it_registers_the_models(client, alice, model):
    client.force_login(alice)
    assert client.get(f"/admin/references/{model}/").status_code == 200


def test_it_shows_an_org_admin_only_their_references(client, alice, org_a, org_b):
    ReferenceFactory(organization=org_a, title="Acme story")
    ReferenceFactory(organization=org_b, title="Borealis secret")
    client.force_login(alice)
    body = client.get("/admin/references/reference/").content.decode()
    assert "Acme story" in body
    assert "Borealis secret" not in body


def test_it_opens_a_reference_with_its_inlines(client, alice, ledger):
    client.force_login(alice)
    assert client.get(f"/admin/references/reference/{ledger.pk}/change/").status_code == 200


def test_it_keeps_the_ledger_read_only(client, alice, ledger, org_a):
    client.force_login(alice)
    with tenant_context(org_a):
        event = UsageEvent.objects.first()
    assert client.get(f"{LEDGER}add/").status_code == 403
    assert client.post(f"{LEDGER}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"{LEDGER}{event.pk}/change/", {"opportunity_name": "forged"}).status_code == 403


def test_it_exports_the_ledger_as_csv(client, alice, ledger, org_a):
    client.force_login(alice)
    with tenant_context(org_a):
        pks = list(UsageEvent.objects.values_list("pk", flat=True))
    response = client.post(LEDGER, {"action": "export_csv", "_selected_action": pks})
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [
        "created_at",
        "salesperson_label",
        "reference",
        "contact",
        "scope",
        "opportunity_name",
        "crm_opportunity_id",
        "outcome",
    ]
    assert len(rows) == 3
    assert {row[1] for row in rows[1:]} == {"bob"}
    assert {row[2] for row in rows[1:]} == {"Acme story"}
    # Formula injection: the opportunity name is quoted.
    assert {row[5] for row in rows[1:]} == {"'=HYPERLINK(evil)"}
    assert "won" in {row[7] for row in rows[1:]}


def test_it_keeps_usage_requests_out_of_reach_of_admin_forms(client, alice, ledger, org_a):
    client.force_login(alice)
    with tenant_context(org_a):
        usage_request = UsageRequest.objects.get()
    assert client.get("/admin/references/usagerequest/add/").status_code == 403
    assert client.post(f"/admin/references/usagerequest/{usage_request.pk}/delete/", {"post": "yes"}).status_code == 403


def test_it_keeps_salespeople_out(client, bob):
    client.force_login(bob)
    assert client.get("/admin/references/reference/").status_code == 302
