"""Django admin for the consent app: scoped to the organization, the ledger read-only with CSV export."""

from __future__ import annotations

import csv
import io

import pytest

from consent.models import ConsentEvent, ConsentMessage, ConsentRequest, ConsentState, TakedownTask
from consent.services import consent_revoke
from references.models import UsageRequest
from refmgr.tenancy.context import tenant_context
from tests.factories.consent import ask_and_grant, consent_case

LEDGER = "/admin/consent/consentevent/"


@pytest.fixture
def history(org_a, bob, carol):
    """A granted quote that was used and then withdrawn with a note a spreadsheet would run."""
    case = consent_case(org_a, title="Acme story")
    ask_and_grant(case, "quote")
    with tenant_context(org_a):
        UsageRequest.objects.create(
            reference=case.reference, scope="quote", requested_by=bob, opportunity_name="Deal", status="completed"
        )
        state = ConsentState.objects.get()
        consent_revoke(organization=org_a, contact=None, state_ids=[state.pk], actor=carol, note="=HYPERLINK(evil)")
    return case


@pytest.mark.parametrize(
    "model",
    ["consentrequest", "consentevent", "consentstate", "consentmessage", "takedowntask", "consentsettings"],
)
def test_it_registers_the_models(client, alice, history, model):
    client.force_login(alice)
    assert client.get(f"/admin/consent/{model}/").status_code == 200


def test_it_filters_the_ledger_and_the_outbox(client, alice, history):
    client.force_login(alice)
    assert client.get(LEDGER, {"kind": "revoked", "scope": "quote", "mechanism": "manager"}).status_code == 200
    assert client.get(LEDGER, {"q": "Acme"}).status_code == 200
    assert client.get("/admin/consent/consentmessage/", {"status": "sending"}).status_code == 200


def test_it_opens_each_row(client, alice, history, org_a):
    client.force_login(alice)
    with tenant_context(org_a):
        rows = {
            "consentevent": ConsentEvent.objects.first().pk,
            "consentrequest": ConsentRequest.objects.first().pk,
            "consentstate": ConsentState.objects.first().pk,
            "consentmessage": ConsentMessage.objects.first().pk,
            "takedowntask": TakedownTask.objects.first().pk,
        }
    for model, pk in rows.items():
        assert client.get(f"/admin/consent/{model}/{pk}/change/").status_code == 200, model


def test_it_keeps_the_ledger_read_only(client, alice, history, org_a):
    client.force_login(alice)
    with tenant_context(org_a):
        event = ConsentEvent.objects.first()
        state = ConsentState.objects.first()
    assert client.get(f"{LEDGER}add/").status_code == 403
    assert client.post(f"{LEDGER}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"{LEDGER}{event.pk}/change/", {"note": "forged"}).status_code == 403
    assert client.post(f"/admin/consent/consentstate/{state.pk}/delete/", {"post": "yes"}).status_code == 403
    for model in ("consentevent", "consentstate", "consentmessage", "consentrequest", "takedowntask"):
        assert client.get(f"/admin/consent/{model}/add/").status_code == 403, model
    body = client.get(LEDGER).content.decode()
    assert "delete_selected" not in body
    with tenant_context(org_a):
        assert ConsentEvent.objects.get(pk=event.pk).note == event.note


def test_it_exports_the_ledger_as_csv(client, alice, history, org_a):
    client.force_login(alice)
    with tenant_context(org_a):
        pks = list(ConsentEvent.objects.values_list("pk", flat=True))
    response = client.post(LEDGER, {"action": "export_csv", "_selected_action": pks})
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["sequence", "occurred_at", "kind"]
    assert rows[0][-2:] == ["previous_hash", "hash"]
    assert len(rows) == len(pks) + 1
    notes = {row[rows[0].index("note")] for row in rows[1:]}
    assert "'=HYPERLINK(evil)" in notes


def test_it_shows_an_org_admin_only_their_ledger(client, alice, history, org_b):
    other = consent_case(org_b, title="Borealis secret")
    ask_and_grant(other, "quote")
    client.force_login(alice)
    body = client.get("/admin/consent/consentrequest/").content.decode()
    assert "Acme story" in body
    assert "Borealis secret" not in body


def test_it_keeps_other_roles_out(client, bob, carol):
    for user in (bob, carol):
        client.force_login(user)
        assert client.get(LEDGER).status_code == 302
