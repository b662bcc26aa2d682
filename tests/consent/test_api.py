"""/api/v1/ consent-requests, consent-events and consent-states: roles, refusals, isolation, queries, schema."""

from __future__ import annotations

import pytest

from consent.models import ConsentEvent, ConsentRequest, ConsentRequestStatus
from references.models import Contact
from refmgr.tenancy.context import tenant_context
from tests.factories.consent import ask, ask_and_grant, consent_case, published_policy
from tests.factories.references import ContactFactory, ReferenceFactory

REQUESTS = "/api/v1/consent-requests/"
EVENTS = "/api/v1/consent-events/"
STATES = "/api/v1/consent-states/"


@pytest.fixture
def clients(api_client_for, alice_membership, bob_membership, carol_membership, dave_membership):
    return {
        "alice": api_client_for(alice_membership),
        "bob": api_client_for(bob_membership),
        "carol": api_client_for(carol_membership),
        "dave": api_client_for(dave_membership),
    }


@pytest.fixture
def case(org_a):
    return consent_case(org_a)


def ids(response):
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def create(client, case, *scopes, contact=None, **extra):
    body = {"reference": case.reference.pk, "contact": (contact or case.advocate).pk, "scopes": list(scopes), **extra}
    return client.post(REQUESTS, body, format="json")


# --- Roles ------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "expected"), [("alice", 200), ("carol", 200), ("dave", 200), ("bob", 403)])
def test_it_lets_only_the_roles_that_need_it_read_consent(clients, case, who, expected):
    ask_and_grant(case, "quote")
    for endpoint in (REQUESTS, EVENTS, STATES):
        assert clients[who].get(endpoint).status_code == expected, endpoint


@pytest.mark.parametrize(("who", "expected"), [("alice", 201), ("carol", 201), ("bob", 403), ("dave", 403)])
def test_it_lets_only_managers_ask_for_consent(clients, case, who, expected):
    assert create(clients[who], case, "quote").status_code == expected


def test_it_lets_compliance_read_the_whole_ledger_with_its_hashes(clients, case):
    ask_and_grant(case, "quote", "logo")
    rows = clients["dave"].get(EVENTS).json()["results"]
    assert [row["sequence"] for row in rows] == sorted((row["sequence"] for row in rows), reverse=True)
    assert {row["kind"] for row in rows} == {"requested", "granted"}
    newest, previous = rows[0], rows[1]
    assert newest["previous_hash"] == previous["hash"]
    assert len(newest["hash"]) == 64
    assert newest["ip_prefix"] == "203.0.113.0"
    assert {"text_hash", "policy_version", "mechanism", "valid_until", "link", "proof"} <= set(newest)


def test_nobody_writes_to_the_ledger_through_the_api(clients, case):
    ask_and_grant(case, "quote")
    with tenant_context(case.organization):
        event = ConsentEvent.objects.first()
    assert clients["alice"].post(EVENTS, {"kind": "granted"}, format="json").status_code == 403
    assert clients["alice"].delete(f"{EVENTS}{event.pk}/").status_code == 403


# --- Creating and cancelling ------------------------------------------------------------


def test_it_creates_a_request_through_the_service(clients, case, carol):
    response = create(clients["carol"], case, "logo", "quote", "call", message="For our customer day.")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == ConsentRequestStatus.SENT
    assert body["scopes"] == ["call", "quote", "logo"]  # the service's canonical order
    assert body["texts"]["quote"].startswith("Refmgr cut")
    assert body["requested_by"] == "carol"
    assert body["sent_at"]
    assert body["expires_at"]
    assert body["answered_at"] is None
    assert {row["scope"]: row["outcome"] for row in body["outcomes"]} == {
        "call": "open",
        "quote": "open",
        "logo": "open",
    }
    assert {row["scope"]: row["party"] for row in body["outcomes"]}["logo"] == "company"
    events = clients["carol"].get(EVENTS, {"consent_request": body["id"], "kind": "requested"}).json()
    assert events["count"] == 3


def test_it_shows_each_scopes_answer_from_the_ledger(clients, case):
    request, link, _token = ask(case, "quote", "logo")
    from consent.evidence import Evidence
    from consent.services import consent_answer

    with tenant_context(case.organization):
        consent_answer(
            organization=case.organization,
            link=link,
            grant=["quote"],
            valid_months=12,
            publication="attributed",
            evidence=Evidence(),
        )
    body = clients["dave"].get(f"{REQUESTS}{request.pk}/").json()
    assert body["status"] == "answered"
    assert body["answered_at"]
    outcomes = {row["scope"]: row for row in body["outcomes"]}
    assert outcomes["quote"]["outcome"] == "granted"
    assert outcomes["quote"]["valid_until"]
    assert outcomes["logo"]["outcome"] == "declined"
    assert outcomes["logo"]["event_sequence"] > outcomes["quote"]["event_sequence"]
    states = clients["dave"].get(STATES, {"reference": case.reference.pk}).json()["results"]
    assert {(row["scope"], row["status"]) for row in states} == {("quote", "granted"), ("logo", "declined")}
    assert clients["dave"].get(STATES, {"status": "granted"}).json()["count"] == 1


def test_it_refuses_a_company_scope_from_someone_who_does_not_sign(clients, org_a):
    case = consent_case(org_a, signatory=False)
    response = create(clients["carol"], case, "logo")
    assert response.status_code == 400
    assert "signatory" in response.json()["scopes"][0]


def test_it_refuses_without_a_published_privacy_policy(clients, org_a):
    with tenant_context(org_a):
        from tests.factories.references import AccountFactory, ReferenceAssetFactory

        account = AccountFactory(organization=org_a)
        advocate = ContactFactory(organization=org_a, account=account)
        reference = ReferenceFactory(organization=org_a, account=account, advocate=advocate)
        ReferenceAssetFactory(organization=org_a, reference=reference, kind="quote", text="Words.")
    response = clients["carol"].post(
        REQUESTS, {"reference": reference.pk, "contact": advocate.pk, "scopes": ["quote"]}, format="json"
    )
    assert response.status_code == 400
    assert "policy" in response.json()


def test_it_refuses_a_contact_who_paused_requests(clients, case):
    with tenant_context(case.organization):
        Contact.objects.filter(pk=case.advocate.pk).update(requests_paused=True)
    response = create(clients["carol"], case, "quote")
    assert response.status_code == 400
    assert "paused" in response.json()["contact"][0]


@pytest.mark.parametrize(("scopes", "fragment"), [(["telepathy"], "Unknown use"), ([], "at least one")])
def test_it_refuses_unknown_or_missing_scopes(clients, case, scopes, fragment):
    response = create(clients["carol"], case, *scopes)
    assert response.status_code == 400
    assert fragment in response.json()["scopes"][0]


def test_it_validates_shape_with_a_400_naming_the_fields(clients):
    response = clients["carol"].post(REQUESTS, {"scopes": "call"}, format="json")
    assert response.status_code == 400
    assert {"reference", "contact", "scopes"} <= set(response.json())


def test_it_cancels_an_open_request_once(clients, case):
    request, _link, _token = ask(case, "quote")
    assert clients["bob"].post(f"{REQUESTS}{request.pk}/cancel/").status_code == 403
    assert clients["dave"].post(f"{REQUESTS}{request.pk}/cancel/").status_code == 403
    cancelled = clients["carol"].post(f"{REQUESTS}{request.pk}/cancel/")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["outcomes"][0]["outcome"] == "unanswered"
    again = clients["carol"].post(f"{REQUESTS}{request.pk}/cancel/")
    assert again.status_code == 400
    assert "non_field_errors" in again.json()


# --- Filters and ordering ---------------------------------------------------------------


def test_it_filters_requests_and_events(clients, org_a, case):
    other = consent_case(org_a)
    first, _link, _token = ask(case, "quote")
    ask_and_grant(other, "call")
    client = clients["carol"]
    assert ids(client.get(REQUESTS, {"reference": case.reference.pk})) == {first.pk}
    assert ids(client.get(REQUESTS, {"contact": other.advocate.pk, "status": "answered"})) != set()
    assert ids(client.get(REQUESTS, {"status": "sent"})) == {first.pk}
    granted = client.get(EVENTS, {"kind": "granted", "scope": "call"}).json()
    assert granted["count"] == 1
    assert granted["results"][0]["reference"] == other.reference.pk
    window = client.get(EVENTS, {"sequence_min": 2, "sequence_max": 3}).json()["results"]
    assert sorted(row["sequence"] for row in window) == [2, 3]
    ordered = client.get(EVENTS, {"ordering": "sequence"}).json()["results"]
    assert ordered[0]["sequence"] == 1
    for params, field in (({"status": "maybe"}, "status"), ({"kind": "nope"}, "kind"), ({"page": "x"}, "page")):
        response = client.get(REQUESTS if "status" in params else EVENTS, params)
        assert response.status_code == 400
        assert field in response.json()


# --- Isolation --------------------------------------------------------------------------


def test_it_hides_other_tenants_consent(api_client_for, mallory_membership, org_b, case):
    request, _link, _token = ask(case, "quote", "logo")
    ask_and_grant(consent_case(case.organization), "call")
    published_policy(org_b)
    client = api_client_for(mallory_membership)
    with tenant_context(case.organization):
        event = ConsentEvent.objects.first()
    assert ids(client.get(REQUESTS)) == set()
    assert ids(client.get(EVENTS)) == set()
    assert ids(client.get(STATES)) == set()
    assert client.get(f"{REQUESTS}{request.pk}/").status_code == 404
    assert client.get(f"{EVENTS}{event.pk}/").status_code == 404
    assert client.post(f"{REQUESTS}{request.pk}/cancel/").status_code == 404
    with tenant_context(case.organization):
        assert ConsentRequest.objects.get(pk=request.pk).status == "sent"


def test_it_rejects_another_organizations_reference_and_contact(api_client_for, mallory_membership, case):
    response = create(api_client_for(mallory_membership), case, "quote")
    assert response.status_code == 400
    body = response.json()
    # The same words an id that never existed gets: nothing says that it exists elsewhere.
    assert {"reference", "contact"} <= set(body)
    assert "does not exist" in body["reference"][0]


# --- Query counts -----------------------------------------------------------------------


def _populate(org, rows: int) -> None:
    for _ in range(rows):
        ask_and_grant(consent_case(org), "quote")


# Measured. Authentication costs 2 (the token's last-used touch is throttled), then per endpoint:
QUERIES = {
    REQUESTS: 2 + 3,  # count, page (reference, contact, requested_by joined), answers prefetch
    EVENTS: 2 + 2,  # count, page (actor joined)
    STATES: 2 + 2,  # count, page (reference and contact joined)
}


@pytest.mark.parametrize("rows", [5, 40])
@pytest.mark.parametrize("endpoint", list(QUERIES))
def test_it_lists_in_a_constant_number_of_queries(
    api_client_for, dave_membership, org_a, django_assert_num_queries, rows, endpoint
):
    _populate(org_a, rows)
    client = api_client_for(dave_membership)
    client.get(endpoint)  # warm caches (content types, the token's touch)
    with django_assert_num_queries(QUERIES[endpoint]):
        response = client.get(endpoint, {"page_size": 100})
    assert response.status_code == 200
    assert len(response.json()["results"]) >= rows


# --- Schema -----------------------------------------------------------------------------


def test_it_documents_the_consent_endpoints(tmp_path):
    from django.core.management import call_command

    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    for path in (REQUESTS, f"{REQUESTS}{{id}}/cancel/", EVENTS, f"{EVENTS}{{id}}/", STATES):
        assert f"{path}:" in text, path
    assert "ConsentScopeOutcome" in text
    assert "Refused: not a signatory" in text
