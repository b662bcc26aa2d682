"""/api/v1/incentives/ and /api/v1/review-flags/: roles, isolation, refusals, decisions, schema, queries."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from references import incentives
from references.models import FlagStatus, Incentive, Reference, ReferenceStatus, ReviewFlag
from refmgr.tenancy.context import tenant_context
from tests.factories.references import AccountFactory, ContactFactory, ReferenceFactory, bulk_references, grant

INCENTIVES = "/api/v1/incentives/"
FLAGS = "/api/v1/review-flags/"


@pytest.fixture
def clients(api_client_for, alice_membership, bob_membership, carol_membership, dave_membership):
    return {
        "alice": api_client_for(alice_membership),
        "bob": api_client_for(bob_membership),
        "carol": api_client_for(carol_membership),
        "dave": api_client_for(dave_membership),
    }


@pytest.fixture
def reference(org_a):
    reference = ReferenceFactory(organization=org_a, title="Flagged story")
    grant(reference, "call")
    return reference


def payload(**extra):
    return {
        "kind": "gift_card",
        "value": "150.00",
        "currency": "EUR",
        "given_on": str(timezone.localdate()),
        "given_by": "Account executive",
        **extra,
    }


def record(org, actor, **extra) -> Incentive:
    with tenant_context(org):
        return incentives.incentive_record(
            organization=org,
            actor=actor,
            kind=extra.pop("kind", "gift_card"),
            value=extra.pop("value", Decimal("50")),
            currency="EUR",
            given_on=extra.pop("given_on", timezone.localdate()),
            given_by="Account executive",
            **extra,
        )


@pytest.fixture
def flag(org_a, carol, reference):
    """An open flag on an incentive carol (reference manager) recorded."""
    incentive = record(org_a, carol, contact=reference.advocate)
    with tenant_context(org_a):
        incentives.incentive_flag_references(organization=org_a, incentive_ids=[incentive.pk])
        return ReviewFlag.objects.get(incentive=incentive)


def results(response):
    assert response.status_code == 200, response.content
    return response.json()["results"]


# --- Roles ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "incentives_code", "flags_code"),
    [("alice", 200, 200), ("bob", 403, 403), ("carol", 200, 403), ("dave", 200, 200)],
)
def test_it_enforces_read_roles(clients, flag, who, incentives_code, flags_code):
    assert clients[who].get(INCENTIVES).status_code == incentives_code
    assert clients[who].get(f"{INCENTIVES}{flag.incentive_id}/").status_code == incentives_code
    assert clients[who].get(FLAGS).status_code == flags_code
    assert clients[who].get(f"{FLAGS}{flag.pk}/").status_code == flags_code


@pytest.mark.parametrize(("who", "expected"), [("alice", 201), ("carol", 201), ("bob", 403), ("dave", 403)])
def test_it_lets_only_managers_record_incentives(clients, reference, who, expected):
    response = clients[who].post(INCENTIVES, payload(contact=reference.advocate_id), format="json")
    assert response.status_code == expected, response.content


def test_it_refuses_sales_the_decisions(clients, flag):
    for verb in ("clear", "reject"):
        response = clients["bob"].post(f"{FLAGS}{flag.pk}/{verb}/", {"justification": "x"}, format="json")
        assert response.status_code == 403
    response = clients["carol"].post(f"{FLAGS}{flag.pk}/clear/", {"justification": "x"}, format="json")
    assert response.status_code == 403


# --- Recording --------------------------------------------------------------------------


def test_it_records_and_updates_through_the_services(clients, org_a, reference, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = clients["carol"].post(
            INCENTIVES, payload(contact=reference.advocate_id, currency="usd", condition="participation"), format="json"
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["account"]["id"] == reference.account_id  # derived from the contact
    assert body["contact"]["id"] == reference.advocate_id
    assert body["currency"] == "USD"
    assert body["recorded_by"] == "carol"
    assert len(callbacks) == 1  # flagging enqueued after commit
    changed = clients["alice"].patch(f"{INCENTIVES}{body['id']}/", {"value": "99.50"}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["value"] == "99.50"
    with tenant_context(org_a):
        from refmgr.audit.models import AuditEvent

        actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"incentive.recorded", "incentive.updated"} <= actions


def test_it_records_an_account_wide_incentive(clients, reference):
    response = clients["carol"].post(INCENTIVES, payload(account=reference.account_id), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["contact"] is None


def test_it_refuses_an_incentive_conditioned_on_positive_sentiment(clients, org_a, reference):
    response = clients["carol"].post(
        INCENTIVES, payload(contact=reference.advocate_id, condition="positive_sentiment"), format="json"
    )
    assert response.status_code == 400
    assert response.json()["condition"] == [incentives.SENTIMENT_REFUSAL]
    with tenant_context(org_a):
        assert not Incentive.objects.exists()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"value": "-5"}, "value"),
        ({"value": "1000000000"}, "value"),
        ({"value": "abc"}, "value"),
        ({"currency": "XYZ"}, "currency"),
        ({"given_on": "yesterday"}, "given_on"),
        ({"kind": "bribe"}, "kind"),
        ({"condition": "whatever"}, "condition"),
        ({"contact": None}, "contact"),  # neither contact nor account
    ],
)
def test_it_answers_bad_input_with_a_field_error(clients, reference, extra, field):
    data = payload(**{"contact": reference.advocate_id, **extra})
    response = clients["carol"].post(INCENTIVES, data, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()


def test_it_refuses_a_contact_of_another_account(clients, org_a, reference):
    other = AccountFactory(organization=org_a)
    response = clients["carol"].post(
        INCENTIVES, payload(contact=reference.advocate_id, account=other.pk), format="json"
    )
    assert response.status_code == 400
    assert "account" in response.json()


# --- Isolation --------------------------------------------------------------------------


def test_it_never_links_another_organizations_contact_or_account(api_client_for, mallory_membership, org_b, reference):
    client = api_client_for(mallory_membership)
    for field, value in (("contact", reference.advocate_id), ("account", reference.account_id)):
        response = client.post(INCENTIVES, payload(**{field: value}), format="json")
        # As for a URL: another organization's contact is a 404, indistinguishable from none.
        assert response.status_code == 404
    with tenant_context(org_b):
        assert not Incentive.objects.exists()


def test_it_hides_other_organizations_incentives_and_flags(api_client_for, mallory_membership, flag):
    client = api_client_for(mallory_membership)
    assert client.get(f"{INCENTIVES}{flag.incentive_id}/").status_code == 404
    assert client.patch(f"{INCENTIVES}{flag.incentive_id}/", {"value": "1"}, format="json").status_code == 404
    assert client.get(f"{FLAGS}{flag.pk}/").status_code == 404
    assert client.post(f"{FLAGS}{flag.pk}/clear/", {"justification": "x"}, format="json").status_code == 404
    assert client.post(f"{FLAGS}{flag.pk}/reject/", {"justification": "x"}, format="json").status_code == 404
    assert results(client.get(INCENTIVES)) == []
    assert results(client.get(FLAGS)) == []


# --- Filters ----------------------------------------------------------------------------


def test_it_filters_searches_and_orders_incentives(clients, org_a, carol, reference):
    other = ContactFactory(organization=org_a)
    early = record(org_a, carol, contact=reference.advocate, given_on=date(2025, 1, 10), note="Conference ticket")
    late = record(
        org_a, carol, account=other.account, kind="discount", given_on=date(2026, 3, 1), condition="participation"
    )
    client = clients["dave"]

    def ids(**params):
        return [row["id"] for row in results(client.get(INCENTIVES, params))]

    assert ids(kind="discount") == [late.pk]
    assert ids(contact=reference.advocate_id) == [early.pk]
    assert ids(account=other.account_id) == [late.pk]
    assert ids(condition="participation") == [late.pk]
    assert ids(given_on_after="2026-01-01") == [late.pk]
    assert ids(given_on_before="2025-12-31") == [early.pk]
    assert ids(search="conference") == [early.pk]
    assert ids(ordering="given_on") == [early.pk, late.pk]
    assert ids(ordering="-given_on") == [late.pk, early.pk]
    response = client.get(INCENTIVES, {"kind": "bribe"})
    assert response.status_code == 400
    assert "kind" in response.json()
    page = client.get(INCENTIVES, {"page_size": 1})
    assert page.json()["count"] == 2
    assert len(page.json()["results"]) == 1


# --- Review flags -----------------------------------------------------------------------


def test_it_lists_flags_with_the_reference_and_incentive(clients, flag, reference):
    rows = results(clients["dave"].get(FLAGS, {"status": "open"}))
    assert [row["id"] for row in rows] == [flag.pk]
    row = rows[0]
    assert row["reference"] == {"id": reference.pk, "title": "Flagged story"}
    assert row["incentive"]["id"] == flag.incentive_id
    assert row["incentive"]["kind"] == "gift_card"
    assert row["reason"].startswith("Incentive recorded")
    assert row["resolved_by"] is None
    assert results(clients["dave"].get(FLAGS, {"status": "cleared"})) == []
    assert clients["dave"].get(FLAGS, {"status": "nonsense"}).status_code == 400


def test_it_clears_a_flag_with_a_disclosure(clients, org_a, flag, reference):
    response = clients["dave"].post(
        f"{FLAGS}{flag.pk}/clear/",
        {"justification": "Small thank-you, unrelated to content.", "disclosure": "This customer received a gift."},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == FlagStatus.CLEARED
    assert body["resolved_by"] == "dave"
    assert body["disclosure"] == "This customer received a gift."
    with tenant_context(org_a):
        assert Reference.objects.get(pk=reference.pk).disclosure == "This customer received a gift."
    again = clients["alice"].post(f"{FLAGS}{flag.pk}/reject/", {"justification": "x"}, format="json")
    assert again.status_code == 400
    assert "non_field_errors" in again.json()


def test_it_rejects_a_flag_and_retires_the_reference(clients, org_a, flag, reference):
    response = clients["alice"].post(f"{FLAGS}{flag.pk}/reject/", {"justification": "Paid for praise."}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == FlagStatus.REJECTED
    with tenant_context(org_a):
        assert Reference.objects.get(pk=reference.pk).status == ReferenceStatus.RETIRED


@pytest.mark.parametrize(
    ("verb", "data", "field"),
    [
        ("clear", {"justification": "", "disclosure": "Gift."}, "justification"),
        ("clear", {"justification": "   ", "disclosure": "Gift."}, "justification"),
        ("clear", {"justification": "Fine."}, "disclosure"),
        ("reject", {}, "justification"),
    ],
)
def test_it_answers_missing_decision_fields_with_a_field_error(clients, flag, verb, data, field):
    response = clients["dave"].post(f"{FLAGS}{flag.pk}/{verb}/", data, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()


def test_it_refuses_a_reviewer_who_recorded_the_incentive(clients, org_a, alice, reference):
    incentive = record(org_a, alice, contact=reference.advocate)
    with tenant_context(org_a):
        incentives.incentive_flag_references(organization=org_a, incentive_ids=[incentive.pk])
        flag = ReviewFlag.objects.get(incentive=incentive)
    response = clients["alice"].post(
        f"{FLAGS}{flag.pk}/clear/", {"justification": "Fine.", "disclosure": "Gift."}, format="json"
    )
    assert response.status_code == 400
    assert "another reviewer" in response.json()["non_field_errors"][0]
    with tenant_context(org_a):
        assert ReviewFlag.objects.get(pk=flag.pk).status == FlagStatus.OPEN


# --- Queries ----------------------------------------------------------------------------


def _populate(org, actor, rows: int) -> None:
    references = bulk_references(org, rows)
    with tenant_context(org):
        created = Incentive.objects.bulk_create(
            Incentive(
                organization=org,
                contact_id=reference.advocate_id if n % 2 else None,
                account_id=reference.account_id,
                kind="gift_card",
                value=Decimal(n + 1),
                currency="EUR",
                given_on=timezone.localdate() - timedelta(days=n),
                given_by="AE",
                recorded_by=actor,
            )
            for n, reference in enumerate(references)
        )
        ReviewFlag.objects.bulk_create(
            ReviewFlag(
                organization=org,
                reference=reference,
                incentive=incentive if n % 3 else None,
                source_key=f"incentive:{incentive.pk}" if n % 3 else f"text:reference:{reference.pk}:reward",
                reason="Incentive recorded",
                matched_text="" if n % 3 else "…a reward…",
                status=FlagStatus.OPEN if n % 2 else FlagStatus.CLEARED,
                resolved_by=None if n % 2 else actor,
                resolved_at=None if n % 2 else timezone.now(),
            )
            for n, (reference, incentive) in enumerate(zip(references, created, strict=True))
        )


# Measured: authentication 2 (the token's last-used touch is throttled), then count and page (joins only).
QUERIES = {INCENTIVES: 2 + 2, FLAGS: 2 + 2}


@pytest.mark.parametrize("rows", [5, 100])
@pytest.mark.parametrize("endpoint", list(QUERIES))
def test_it_lists_in_a_constant_number_of_queries(
    api_client_for, dave_membership, org_a, carol, django_assert_num_queries, rows, endpoint
):
    _populate(org_a, carol, rows)
    client = api_client_for(dave_membership)
    client.get(endpoint)  # warm caches
    with django_assert_num_queries(QUERIES[endpoint]):
        response = client.get(endpoint, {"page_size": 100})
    assert response.status_code == 200
    assert len(response.json()["results"]) == rows


# --- Schema -----------------------------------------------------------------------------


def test_it_documents_the_resources_in_the_schema(tmp_path):
    from django.core.management import call_command

    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    for path in (
        "/api/v1/incentives/",
        "/api/v1/incentives/{id}/",
        "/api/v1/review-flags/",
        "/api/v1/review-flags/{id}/clear/",
        "/api/v1/review-flags/{id}/reject/",
    ):
        assert f"{path}:" in text
    assert "Refused: conditioned on positive sentiment" in text
    assert "Refused: separation of duties" in text
    assert "- review-flags" in text
    assert "- incentives" in text
