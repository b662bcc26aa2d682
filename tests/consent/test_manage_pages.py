"""The managers' consent pages: roles, isolation, requests and their refusals, offline consent,
withdrawals, proposals with their diff, the ledger and its export, takedowns, settings, queries."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from consent.models import (
    ConsentEvent,
    ConsentRequest,
    ConsentRequestStatus,
    ConsentSettings,
    ConsentState,
    TakedownTask,
)
from consent.services import consent_revoke
from references.models import UsageRequest
from references.services import reference_asset_update
from refmgr.audit.models import AuditEvent
from refmgr.tenancy.context import tenant_context
from tests.factories.consent import ask, ask_and_grant, consent_case, published_policy
from tests.factories.references import AccountFactory, ContactFactory, ReferenceFactory

PDF = b"%PDF-1.7\n" + b"0" * 64


def url(name: str, slug: str = "acme", query: str = "", **kwargs: object) -> str:
    return reverse(f"consent:{name}", kwargs={"organization_slug": slug, **kwargs}) + query


def in_org(organization, fn):
    # Row-level security on PostgreSQL hides rows from reads outside their organization.
    with tenant_context(organization):
        return fn()


def actions(organization) -> list[str]:
    return in_org(organization, lambda: list(AuditEvent.objects.order_by("id").values_list("action", flat=True)))


@pytest.fixture
def case(org_a):
    return consent_case(org_a)


@pytest.fixture
def granted(case, bob):
    """A quote and a logo granted, the quote already used once (so a withdrawal opens a takedown)."""
    ask_and_grant(case, "quote", "logo")
    with tenant_context(case.organization):
        UsageRequest.objects.create(
            reference=case.reference, scope="quote", requested_by=bob, opportunity_name="Deal", status="completed"
        )
    return case


def takedown(case, carol) -> TakedownTask:
    with tenant_context(case.organization):
        state = ConsentState.objects.get(scope="quote")
        consent_revoke(organization=case.organization, contact=None, state_ids=[state.pk], actor=carol, note="phone")
        return TakedownTask.objects.get()


def pages(case, request_id: int, task_id: int) -> list[tuple[str, str, dict]]:
    ref = f"?reference={case.reference.pk}"
    return [
        ("overview", "", {}),
        ("request_new", ref, {}),
        ("request_detail", "", {"request_id": request_id}),
        ("offline", ref, {}),
        ("reference_states", "", {"reference_id": case.reference.pk}),
        ("ledger", "", {}),
        ("ledger_csv", "", {}),
        ("takedowns", "", {}),
        ("takedown_detail", "", {"task_id": task_id}),
        ("settings", "", {}),
    ]


READABLE_BY_COMPLIANCE = {"overview", "request_detail", "reference_states", "ledger", "ledger_csv"}


# --- Roles and isolation -----------------------------------------------------------------------------


def test_it_applies_roles_to_every_page(client, granted, alice, bob, carol, dave):
    task = takedown(granted, carol)
    consent_request = in_org(granted.organization, lambda: ConsentRequest.objects.get())
    for name, query, kwargs in pages(granted, consent_request.pk, task.pk):
        target = url(name, query=query, **kwargs)
        client.force_login(alice)
        assert client.get(target).status_code == 200, name
        client.force_login(carol)
        assert client.get(target).status_code == (403 if name == "settings" else 200), name
        client.force_login(bob)
        assert client.get(target).status_code == 403, name
        client.force_login(dave)
        assert client.get(target).status_code == (200 if name in READABLE_BY_COMPLIANCE else 403), name


def test_it_keeps_compliance_read_only(client, granted, carol, dave):
    consent_request = in_org(granted.organization, lambda: ConsentRequest.objects.get())
    client.force_login(dave)
    body = client.get(url("overview")).content.decode()
    assert "Ask for consent on a reference" not in body
    assert (
        "Record a withdrawal"
        not in client.get(url("reference_states", reference_id=granted.reference.pk)).content.decode()
    )
    assert client.post(url("request_cancel", request_id=consent_request.pk)).status_code == 403
    assert client.post(url("reference_revoke", reference_id=granted.reference.pk), {"note": "x"}).status_code == 403
    assert client.post(url("ledger_verify")).status_code == 200


def test_it_hides_other_tenants_consent_objects(client, granted, carol, mallory):
    task = takedown(granted, carol)
    consent_request = in_org(granted.organization, lambda: ConsentRequest.objects.get())
    client.force_login(mallory)
    for name, query, kwargs in pages(granted, consent_request.pk, task.pk):
        if kwargs or query:
            assert client.get(url(name, slug="borealis", query=query, **kwargs)).status_code == 404, name
        assert client.get(url(name, query=query, **kwargs)).status_code == 404, name
    assert client.post(url("request_cancel", slug="borealis", request_id=consent_request.pk)).status_code == 404
    with tenant_context(granted.organization):
        assert ConsentRequest.objects.get().status == ConsentRequestStatus.ANSWERED


# --- New request -------------------------------------------------------------------------------------


def test_it_sends_a_request_and_shows_the_exact_text(client, case, carol, django_capture_on_commit_callbacks):
    client.force_login(carol)
    form_url = url("request_new", query=f"?reference={case.reference.pk}")
    body = client.get(form_url).content.decode()
    assert "Refmgr cut our reference prep from days to minutes." in body
    assert "advocate" in body
    assert "authorised signatory" in body
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            form_url, {"contact": case.advocate.pk, "scopes": ["quote", "logo"], "message": "For our website."}
        )
    assert response.status_code == 302
    with tenant_context(case.organization):
        consent_request = ConsentRequest.objects.get()
        assert consent_request.scopes == ["quote", "logo"]
        assert consent_request.requested_by == carol
        assert ConsentEvent.objects.filter(kind="requested").count() == 2
    detail = client.get(response["Location"]).content.decode()
    assert "For our website." in detail
    assert "Requested" in detail


def test_it_refuses_another_organizations_reference(client, carol, org_b):
    other = consent_case(org_b)
    client.force_login(carol)
    assert client.get(url("request_new", query=f"?reference={other.reference.pk}")).status_code == 404
    assert client.get(url("request_new", query="?reference=abc")).status_code == 404
    assert client.get(url("offline", query=f"?reference={other.reference.pk}")).status_code == 404


def post_request(client, case, contact, scopes) -> str:
    response = client.post(
        url("request_new", query=f"?reference={case.reference.pk}"), {"contact": contact.pk, "scopes": scopes}
    )
    assert response.status_code == 400
    return response.content.decode()


def test_it_shows_each_refusal_on_its_field(client, org_a, carol):
    client.force_login(carol)
    case = consent_case(org_a, signatory=False)
    with tenant_context(org_a):
        signatory = ContactFactory(organization=org_a, account=case.reference.account, is_authorised_signatory=True)
    # The advocate does not sign for the company: no logo.
    body = post_request(client, case, case.advocate, ["logo"])
    assert 'id="id_scopes_error"' in body or "errorlist" in body
    assert "Only an authorised signatory" in body
    # The signatory is not the advocate: no quote of their own.
    body = post_request(client, case, signatory, ["quote"])
    assert "Only the reference&#x27;s advocate" in body
    # Paused contact.
    with tenant_context(org_a):
        signatory.requests_paused = True
        signatory.save()
    body = post_request(client, case, signatory, ["logo"])
    assert "has paused all requests" in body
    with tenant_context(org_a):
        assert not ConsentRequest.objects.exists()


def test_it_says_to_publish_a_privacy_policy_first(client, org_a, carol):
    client.force_login(carol)
    with tenant_context(org_a):
        account = AccountFactory(organization=org_a)
        advocate = ContactFactory(organization=org_a, account=account)
        reference = ReferenceFactory(organization=org_a, account=account, advocate=advocate)
    response = client.post(
        url("request_new", query=f"?reference={reference.pk}"), {"contact": advocate.pk, "scopes": ["call"]}
    )
    assert response.status_code == 400
    assert "Publish the organization" in response.content.decode()


def test_it_rejects_a_contact_outside_the_choices(client, case, carol, org_a):
    client.force_login(carol)
    with tenant_context(org_a):
        stranger = ContactFactory(organization=org_a)
    body = post_request(client, case, stranger, ["call"])
    assert "Select a valid choice" in body


# --- Offline consent and withdrawals -------------------------------------------------------------------


def test_it_records_offline_consent_with_proof(client, case, carol, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    client.force_login(carol)
    until = (timezone.localdate() + timezone.timedelta(days=60)).isoformat()
    data = {
        "contact": case.advocate.pk,
        "scopes": ["quote"],
        "valid_until": until,
        "publication": "anonymised",
        "note": "signed form",
    }
    bad = client.post(
        url("offline", query=f"?reference={case.reference.pk}"),
        {**data, "proof": SimpleUploadedFile("proof.exe", b"MZ\x90\x00", content_type="application/octet-stream")},
    )
    assert bad.status_code == 400
    assert "Upload a PDF, PNG, JPEG" in bad.content.decode()
    assert in_org(case.organization, lambda: not ConsentEvent.objects.exists())
    good = client.post(
        url("offline", query=f"?reference={case.reference.pk}"),
        {**data, "proof": SimpleUploadedFile("consent.pdf", PDF, content_type="application/pdf")},
    )
    assert good.status_code == 302
    with tenant_context(case.organization):
        event = ConsentEvent.objects.get()
        assert (event.kind, event.mechanism, event.actor) == ("granted", "offline", carol)
        assert event.proof.name.endswith(".pdf")
        assert ConsentState.objects.get().status == "granted"
    assert "consent.recorded_offline" in actions(case.organization)


def test_it_records_a_withdrawal_for_the_customer(client, granted, carol):
    client.force_login(carol)
    states_url = url("reference_states", reference_id=granted.reference.pk)
    body = client.get(states_url).content.decode()
    assert "Record a withdrawal" in body
    quote = in_org(granted.organization, lambda: ConsentState.objects.get(scope="quote"))
    missing_note = client.post(url("reference_revoke", reference_id=granted.reference.pk), {"states": [quote.pk]})
    assert missing_note.status_code == 400
    response = client.post(
        url("reference_revoke", reference_id=granted.reference.pk), {"states": [quote.pk], "note": "Phoned on Monday"}
    )
    assert response.status_code == 302
    with tenant_context(granted.organization):
        quote.refresh_from_db()
        assert quote.status == "revoked"
        event = ConsentEvent.objects.get(kind="revoked")
        assert (event.actor, event.note, event.mechanism) == (carol, "Phoned on Monday", "manager")
        assert TakedownTask.objects.count() == 1


# --- Proposals after new wording ----------------------------------------------------------------------


def test_it_shows_the_proposal_diff_and_sends_it(client, granted, carol, django_capture_on_commit_callbacks):
    with tenant_context(granted.organization):
        asset = granted.reference.assets.get(kind="quote")
        reference_asset_update(
            organization=granted.organization,
            asset=asset,
            actor=carol,
            text="Refmgr cut our reference prep from weeks to minutes.",
        )
        proposal = ConsentRequest.objects.get(status=ConsentRequestStatus.PROPOSED)
    client.force_login(carol)
    body = client.get(url("overview")).content.decode()
    assert "<del>days</del>" in body
    assert "<ins>weeks</ins>" in body
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(url("request_send", request_id=proposal.pk), {"next": "overview"})
    assert response.status_code == 302
    assert response["Location"] == url("overview")
    with tenant_context(granted.organization):
        proposal.refresh_from_db()
        assert proposal.status == ConsentRequestStatus.SENT
        assert proposal.texts["quote"].endswith("weeks to minutes.")
    # Sending twice is refused with a message, not an error page.
    again = client.post(url("request_send", request_id=proposal.pk), follow=True)
    assert "Only a proposed request can be sent." in again.content.decode()


def test_it_cancels_a_request(client, case, carol):
    consent_request, _link, _token = ask(case, "quote")
    client.force_login(carol)
    assert client.get(url("request_cancel", request_id=consent_request.pk)).status_code == 405
    response = client.post(url("request_cancel", request_id=consent_request.pk))
    assert response.status_code == 302
    assert in_org(case.organization, lambda: ConsentRequest.objects.get().status) == ConsentRequestStatus.CANCELLED


# --- Ledger ------------------------------------------------------------------------------------------


def read_csv(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def test_it_exports_the_ledger_as_safe_csv(client, granted, carol, dave):
    takedown(granted, carol)
    with tenant_context(granted.organization):
        # A note that a spreadsheet would run as a formula.
        state = ConsentState.objects.get(scope="logo")
        consent_revoke(
            organization=granted.organization,
            contact=None,
            state_ids=[state.pk],
            actor=carol,
            note="=HYPERLINK(evil)",
        )
        total = ConsentEvent.objects.count()
    client.force_login(dave)
    response = client.get(url("ledger_csv"))
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = read_csv(response)
    header = rows[0]
    for column in ("sequence", "time", "kind", "scope", "party", "reference", "contact", "valid_until"):
        assert column in header
    for column in ("publication", "policy_version", "text_hash", "mechanism", "proof", "ip_prefix"):
        assert column in header
    for column in ("user_agent_hash", "actor", "note", "previous_hash", "hash"):
        assert column in header
    assert len(rows) == total + 1
    sequences = [int(row[0]) for row in rows[1:]]
    assert sequences == sorted(sequences, reverse=True)
    assert sequences[0] == total
    notes = [row[header.index("note")] for row in rows[1:]]
    assert "'=HYPERLINK(evil)" in notes
    assert "=HYPERLINK(evil)" not in notes
    assert "consent.ledger_exported" in actions(granted.organization)


def test_it_streams_the_export_in_chunks_with_filters(client, granted, carol, monkeypatch):
    import consent.views

    monkeypatch.setattr(consent.views, "CSV_CHUNK", 1)
    client.force_login(carol)
    everything = read_csv(client.get(url("ledger_csv")))
    with tenant_context(granted.organization):
        assert len(everything) == ConsentEvent.objects.count() + 1
        granted_count = ConsentEvent.objects.filter(kind="granted").count()
    only_granted = read_csv(client.get(url("ledger_csv", query="?kind=granted")))
    assert len(only_granted) == granted_count + 1


def test_it_filters_and_verifies_the_ledger(client, granted, carol):
    client.force_login(carol)
    body = client.get(url("ledger", query="?kind=granted&scope=logo")).content.decode()
    assert body.count("<tr>") == 2  # the header row and the logo's grant
    verified = client.post(url("ledger_verify"))
    assert verified.status_code == 200
    assert "The chain is intact." in verified.content.decode()
    assert client.get(url("ledger_verify")).status_code == 405
    assert "consent.ledger_verified" in actions(granted.organization)


# --- Takedowns ---------------------------------------------------------------------------------------


def test_it_closes_a_takedown_only_with_evidence(client, granted, alice, carol):
    task = takedown(granted, carol)
    client.force_login(carol)
    assert "Deal" in client.get(url("takedowns")).content.decode()
    empty = client.post(url("takedown_detail", task_id=task.pk), {"action": "close", "evidence": "  "})
    assert empty.status_code == 400
    assert in_org(granted.organization, lambda: TakedownTask.objects.get().status) == "open"
    assigned = client.post(url("takedown_detail", task_id=task.pk), {"action": "assign", "assigned_to": alice.pk})
    assert assigned.status_code == 302
    closed = client.post(
        url("takedown_detail", task_id=task.pk), {"action": "close", "evidence": "Removed from the pricing page."}
    )
    assert closed.status_code == 302
    with tenant_context(granted.organization):
        task.refresh_from_db()
        assert (task.status, task.assigned_to, task.closed_by) == ("done", alice, carol)
    assert "Nothing to take down" in client.get(url("takedowns")).content.decode()
    assert "Removed from" not in client.get(url("takedowns", query="?status=done")).content.decode()
    assert "Done" in client.get(url("takedowns", query="?status=done")).content.decode()


def test_it_refuses_a_non_manager_assignee(client, granted, bob, carol):
    task = takedown(granted, carol)
    client.force_login(carol)
    response = client.post(url("takedown_detail", task_id=task.pk), {"action": "assign", "assigned_to": bob.pk})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


def test_it_marks_overdue_takedowns(client, granted, carol):
    task = takedown(granted, carol)
    with tenant_context(granted.organization):
        TakedownTask.objects.filter(pk=task.pk).update(due_on=timezone.localdate() - timezone.timedelta(days=1))
    client.force_login(carol)
    assert "Overdue" in client.get(url("takedowns")).content.decode()


# --- Settings ----------------------------------------------------------------------------------------


def test_it_validates_and_saves_the_settings(client, org_a, alice):
    client.force_login(alice)
    data = {
        "link_valid_days": 14,
        "grant_valid_months": 24,
        "reminder_days": "every week",
        "reminders_max": 2,
        "takedown_due_days": 5,
    }
    bad = client.post(url("settings"), data)
    assert bad.status_code == 400
    assert "Up to five numbers of days" in bad.content.decode()
    too_long = client.post(url("settings"), {**data, "reminder_days": "7", "link_valid_days": 365})
    assert too_long.status_code == 400
    good = client.post(url("settings"), {**data, "reminder_days": "7, 30, 7"})
    assert good.status_code == 302
    with tenant_context(org_a):
        saved = ConsentSettings.objects.get()
        assert (saved.link_valid_days, saved.reminder_days, saved.reminder_points) == (14, "30, 7", [30, 7])
    assert "consent.settings_changed" in actions(org_a)


# --- Query counts ------------------------------------------------------------------------------------


def many(org_a, carol, count: int) -> None:
    """``count`` references with a request and a grant each, and a takedown per reference."""
    published_policy(org_a)
    for _ in range(count):
        case = consent_case(org_a)
        ask_and_grant(case, "quote", "call")
        with tenant_context(org_a):
            UsageRequest.objects.create(
                reference=case.reference, scope="quote", requested_by=carol, opportunity_name="D", status="completed"
            )
            # The call lapses soon, so the overview's list fills up too; the quote is withdrawn (a takedown).
            ConsentState.objects.filter(reference=case.reference, scope="call").update(
                valid_until=timezone.now() + timezone.timedelta(days=3)
            )
            quote = ConsentState.objects.get(reference=case.reference, scope="quote")
            consent_revoke(organization=org_a, contact=None, state_ids=[quote.pk], actor=carol, note="x")


@pytest.mark.parametrize("name", ["overview", "ledger", "takedowns"])
def test_it_lists_in_a_constant_number_of_queries(client, org_a, carol, name, django_assert_num_queries):
    client.force_login(carol)
    many(org_a, carol, 5)
    client.get(url(name))  # warm the session and caches
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small:
        assert client.get(url(name)).status_code == 200
    many(org_a, carol, 35)
    with django_assert_num_queries(len(small.captured_queries)):
        assert client.get(url(name)).status_code == 200
