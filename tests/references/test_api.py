"""/api/v1/ accounts, contacts, references and usage-requests: roles, isolation, personal data, queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from references.models import Reference, UsageRequest, UsageStatus
from references.services import reference_hold_place, reference_restrict, usage_request_approve
from refmgr.tenancy.context import tenant_context
from tests.factories.references import (
    AccountFactory,
    ReferenceFactory,
    ReferenceLabelFactory,
    bulk_references,
    grant,
)

ACCOUNTS = "/api/v1/accounts/"
CONTACTS = "/api/v1/contacts/"
REFERENCES = "/api/v1/references/"
USAGE = "/api/v1/usage-requests/"


@pytest.fixture
def clients(api_client_for, alice_membership, bob_membership, carol_membership, dave_membership):
    return {
        "alice": api_client_for(alice_membership),
        "bob": api_client_for(bob_membership),
        "carol": api_client_for(carol_membership),
        "dave": api_client_for(dave_membership),
    }


@pytest.fixture
def usable(org_a):
    reference = ReferenceFactory(organization=org_a, title="Usable story")
    grant(reference, "call", "quote")
    return reference


def ids(response):
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def request_call(client, reference, **extra):
    return client.post(
        USAGE,
        {"reference": reference.pk, "scope": "call", "opportunity_name": "Globex rollout", **extra},
        format="json",
    )


# --- Roles ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "accounts", "contacts", "references", "usage"),
    [
        ("alice", 200, 200, 200, 200),
        ("bob", 200, 403, 200, 200),
        ("carol", 200, 200, 200, 200),
        ("dave", 200, 200, 200, 200),
    ],
)
def test_it_enforces_read_roles(clients, who, accounts, contacts, references, usage):
    client = clients[who]
    assert client.get(ACCOUNTS).status_code == accounts
    assert client.get(CONTACTS).status_code == contacts
    assert client.get(REFERENCES).status_code == references
    assert client.get(USAGE).status_code == usage


@pytest.mark.parametrize(("who", "expected"), [("alice", 201), ("carol", 201), ("bob", 403), ("dave", 403)])
def test_it_lets_only_managers_create_accounts(clients, who, expected):
    response = clients[who].post(ACCOUNTS, {"name": f"New account by {who}", "industry": "Retail"}, format="json")
    assert response.status_code == expected


def test_it_creates_and_updates_contacts_and_references_through_services(clients, org_a):
    client = clients["carol"]
    account = client.post(ACCOUNTS, {"name": "Globex", "region": "EMEA"}, format="json").json()
    contact = client.post(
        CONTACTS, {"account": account["id"], "name": "Hank Scorpio", "email": "hank@globex.example"}, format="json"
    )
    assert contact.status_code == 201, contact.content
    reference = client.post(
        REFERENCES,
        {
            "account": account["id"],
            "advocate": contact.json()["id"],
            "title": "Globex automates everything",
            "products": ["Ledger"],
            "use_cases": ["Month-end close"],
        },
        format="json",
    )
    assert reference.status_code == 201, reference.content
    body = reference.json()
    assert body["products"] == ["Ledger"]
    assert body["advocate"]["email"] == "hank@globex.example"
    changed = client.patch(f"{REFERENCES}{body['id']}/", {"title": "Globex, renamed"}, format="json")
    assert changed.status_code == 200
    assert changed.json()["title"] == "Globex, renamed"
    assert client.patch(f"{ACCOUNTS}{account['id']}/", {"industry": "Energy"}, format="json").json()["industry"] == (
        "Energy"
    )


def test_it_answers_a_business_rule_refusal_with_a_field_error(clients, org_a):
    AccountFactory(organization=org_a, name="Globex")
    response = clients["carol"].post(ACCOUNTS, {"name": "Globex"}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()


def test_it_validates_shape_with_a_400_naming_the_field(clients):
    response = clients["carol"].post(CONTACTS, {"name": "No email"}, format="json")
    assert response.status_code == 400
    assert {"account", "email"} <= set(response.json())


# --- Isolation --------------------------------------------------------------------------


def test_it_hides_other_tenants_rows(api_client_for, mallory_membership, org_a, bob, usable):
    client = api_client_for(mallory_membership)
    with tenant_context(org_a):
        usage = UsageRequest.objects.create(
            organization=org_a,
            reference=usable,
            scope="call",
            requested_by=bob,
            opportunity_name="x",
        )
    assert client.get(f"{REFERENCES}{usable.pk}/").status_code == 404
    assert client.get(f"{ACCOUNTS}{usable.account_id}/").status_code == 404
    assert client.get(f"{CONTACTS}{usable.advocate_id}/").status_code == 404
    assert client.get(f"{USAGE}{usage.pk}/").status_code == 404
    assert client.post(f"{USAGE}{usage.pk}/approve/", {}, format="json").status_code == 404
    assert ids(client.get(REFERENCES)) == set()


def test_it_rejects_another_organizations_ids_in_payloads(api_client_for, mallory_membership, org_a, org_b, usable):
    client = api_client_for(mallory_membership)
    contact = client.post(CONTACTS, {"account": usable.account_id, "name": "X", "email": "x@x.example"}, format="json")
    assert contact.status_code == 400
    assert "account" in contact.json()
    b_account = AccountFactory(organization=org_b)
    reference = client.post(
        REFERENCES, {"account": b_account.pk, "advocate": usable.advocate_id, "title": "Stolen"}, format="json"
    )
    assert reference.status_code == 400
    assert "advocate" in reference.json()


def test_it_rejects_another_organizations_reference_in_a_usage_request(api_client_for, org_b, usable):
    from tests.factories.tenancy import MembershipFactory, UserFactory

    seller = MembershipFactory(organization=org_b, user=UserFactory(username="bseller"), role="sales")
    response = request_call(api_client_for(seller), usable)
    assert response.status_code == 400
    assert "reference" in response.json()


# --- What a salesperson sees -------------------------------------------------------------


def test_it_shows_sales_only_usable_references(clients, org_a, usable):
    no_grant = ReferenceFactory(organization=org_a)
    expired = ReferenceFactory(organization=org_a)
    grant(expired, "call", days=-1)
    held = ReferenceFactory(organization=org_a)
    grant(held, "call")
    with tenant_context(org_a):
        reference_hold_place(organization=org_a, reference=held, kind="review", source="t:1", reason="incentive")
    assert ids(clients["bob"].get(REFERENCES)) == {usable.pk}
    for hidden in (no_grant, expired, held):
        assert clients["bob"].get(f"{REFERENCES}{hidden.pk}/").status_code == 404
    assert ids(clients["carol"].get(REFERENCES)) == {usable.pk, no_grant.pk, expired.pk, held.pk}


def test_it_shows_usable_scopes_and_the_disclosure_line(clients, org_a, usable):
    with tenant_context(org_a):  # inside the organization: row-level security on PostgreSQL
        Reference.objects.filter(pk=usable.pk).update(disclosure="Received a training discount.")
    body = clients["bob"].get(f"{REFERENCES}{usable.pk}/").json()
    assert body["usable_scopes"] == ["call", "quote"]
    assert body["disclosure"] == "Received a training discount."


def test_it_hides_restricted_references_from_sales_until_named(clients, org_a, alice, bob, usable):
    with tenant_context(org_a):
        reference_restrict(organization=org_a, reference=usable, users=[alice], groups=[], actor=alice)
    assert ids(clients["bob"].get(REFERENCES)) == set()
    assert clients["bob"].get(f"{REFERENCES}{usable.pk}/").status_code == 404
    assert request_call(clients["bob"], usable).status_code == 400
    assert ids(clients["carol"].get(REFERENCES)) == {usable.pk}
    with tenant_context(org_a):
        reference_restrict(organization=org_a, reference=usable, users=[bob], groups=[], actor=alice)
    assert ids(clients["bob"].get(REFERENCES)) == {usable.pk}


def test_it_hides_contact_details_from_sales_until_their_use_is_approved(clients, org_a, carol, usable):
    body = clients["bob"].get(f"{REFERENCES}{usable.pk}/").json()
    assert body["advocate"] is None
    assert body["contact_details_visible"] is False
    assert usable.advocate.email not in str(clients["bob"].get(REFERENCES).content)
    created = request_call(clients["bob"], usable)
    assert created.status_code == 201, created.content
    assert clients["bob"].get(f"{REFERENCES}{usable.pk}/").json()["advocate"] is None
    approved = clients["carol"].post(f"{USAGE}{created.json()['id']}/approve/", {"reason": "ok"}, format="json")
    assert approved.status_code == 200
    assert approved.json()["status"] == "approved"
    body = clients["bob"].get(f"{REFERENCES}{usable.pk}/").json()
    assert body["contact_details_visible"] is True
    assert body["advocate"]["email"] == usable.advocate.email


def test_it_shows_managers_the_contact_details(clients, usable):
    assert clients["carol"].get(f"{REFERENCES}{usable.pk}/").json()["advocate"]["name"] == usable.advocate.name


# --- Usage requests ----------------------------------------------------------------------


def test_it_lets_sales_request_and_lists_only_their_own(clients, api_client_for, org_a, usable):
    from tests.factories.tenancy import MembershipFactory, UserFactory

    other = api_client_for(MembershipFactory(organization=org_a, user=UserFactory(username="erin"), role="sales"))
    mine = request_call(clients["bob"], usable).json()["id"]
    assert ids(clients["bob"].get(USAGE)) == {mine}
    assert ids(other.get(USAGE)) == set()
    assert other.get(f"{USAGE}{mine}/").status_code == 404
    assert ids(clients["carol"].get(USAGE)) == {mine}


@pytest.mark.parametrize("who", ["carol", "alice", "dave"])
def test_it_lets_only_sales_create_usage_requests(clients, usable, who):
    assert request_call(clients[who], usable).status_code == 403


def test_it_refuses_an_unusable_scope_with_a_field_error(clients, usable):
    response = clients["bob"].post(
        USAGE, {"reference": usable.pk, "scope": "logo", "opportunity_name": "x"}, format="json"
    )
    assert response.status_code == 400
    assert "scope" in response.json()


def test_it_refuses_past_the_fatigue_limit_with_the_date(clients, org_a, carol, usable):
    for n in range(3):
        created = request_call(clients["bob"], usable, opportunity_name=f"deal {n}").json()
        with tenant_context(org_a):
            usage_request = UsageRequest.objects.get(pk=created["id"])
            # Spread the uses out so only the cap (not the rest period) applies.
            usage_request_approve(organization=org_a, usage_request=usage_request, actor=carol)
            UsageRequest.objects.filter(pk=usage_request.pk).update(
                decided_at=timezone.now() - timedelta(days=60 - n * 20)
            )
    response = request_call(clients["bob"], usable, opportunity_name="deal 4")
    assert response.status_code == 400
    body = response.json()
    assert "scope" in body
    assert "available_from" in body


def test_it_declines_with_a_reason_and_completes_with_an_outcome(clients, usable):
    first = request_call(clients["bob"], usable).json()["id"]
    assert clients["bob"].post(f"{USAGE}{first}/decline/", {"reason": "no"}, format="json").status_code == 403
    no_reason = clients["carol"].post(f"{USAGE}{first}/decline/", {}, format="json")
    assert no_reason.status_code == 400
    assert "reason" in no_reason.json()
    declined = clients["carol"].post(f"{USAGE}{first}/decline/", {"reason": "Wrong region"}, format="json")
    assert declined.json()["status"] == "declined"
    second = request_call(clients["bob"], usable).json()["id"]
    assert clients["bob"].post(f"{USAGE}{second}/approve/", {}, format="json").status_code == 403
    assert clients["bob"].post(f"{USAGE}{second}/complete/", {"outcome": "won"}, format="json").status_code == 400
    clients["carol"].post(f"{USAGE}{second}/approve/", {}, format="json")
    assert clients["carol"].post(f"{USAGE}{second}/complete/", {"outcome": "won"}, format="json").status_code == 403
    bad = clients["bob"].post(f"{USAGE}{second}/complete/", {"outcome": "maybe"}, format="json")
    assert bad.status_code == 400
    assert "outcome" in bad.json()
    done = clients["bob"].post(f"{USAGE}{second}/complete/", {"outcome": "won", "notes": "Signed"}, format="json")
    assert done.status_code == 200
    assert done.json()["status"] == UsageStatus.COMPLETED
    assert done.json()["outcome"] == "won"


# --- Filters, search, ordering, pagination --------------------------------------------------


def test_it_filters_and_searches_references(clients, org_a, usable):
    other = ReferenceFactory(organization=org_a, title="Fleet story", account=AccountFactory(organization=org_a))
    grant(other, "case_study")
    ReferenceLabelFactory(organization=org_a, reference=other, kind="product", value="Planner")
    client = clients["bob"]
    assert ids(client.get(REFERENCES, {"scope": "case_study"})) == {other.pk}
    assert ids(client.get(REFERENCES, {"product": "planner"})) == {other.pk}
    assert ids(client.get(REFERENCES, {"search": "fleet"})) == {other.pk}
    assert ids(client.get(REFERENCES, {"industry": "manufacturing"})) == {usable.pk, other.pk}
    titles = [r["title"] for r in client.get(REFERENCES, {"ordering": "title"}).json()["results"]]
    assert titles == sorted(titles)


@pytest.mark.parametrize(
    ("params", "field"),
    [({"scope": "telepathy"}, "scope"), ({"size_band": "huge"}, "size_band"), ({"page": "abc"}, "page")],
)
def test_it_answers_bad_filters_and_pages_with_a_400_naming_the_field(clients, usable, params, field):
    response = clients["bob"].get(REFERENCES, params)
    assert response.status_code == 400
    assert field in response.json()


def test_it_ignores_unknown_ordering_and_paginates(clients, usable):
    assert clients["bob"].get(REFERENCES, {"ordering": "advocate__email"}).status_code == 200
    assert clients["bob"].get(REFERENCES, {"page": 99}).status_code == 400
    assert clients["bob"].get(ACCOUNTS, {"account": "x", "page_size": 1000}).status_code == 200


# --- Query counts ----------------------------------------------------------------------------


def _populate(org_a, bob, rows):
    references = bulk_references(org_a, rows, scopes=("call",))
    with tenant_context(org_a):
        UsageRequest.objects.bulk_create(
            UsageRequest(
                organization=org_a, reference=reference, scope="call", requested_by=bob, opportunity_name=f"deal {n}"
            )
            for n, reference in enumerate(references)
        )


# Measured. Authentication costs 2 once the token's last-used time is fresh (the touch is throttled),
# then per endpoint:
QUERIES = {
    ACCOUNTS: 2 + 2,  # count, page
    CONTACTS: 2 + 2,  # count, page (account joined)
    REFERENCES: 2 + 5,  # count, page, labels prefetch, usable scopes, the salesperson's approved uses
    USAGE: 2 + 2,  # count, page (reference and people joined)
}


@pytest.mark.parametrize("rows", [10, 500])
@pytest.mark.parametrize("endpoint", list(QUERIES))
def test_it_lists_in_a_constant_number_of_queries(
    api_client_for, alice_membership, bob_membership, org_a, django_assert_num_queries, rows, endpoint
):
    _populate(org_a, bob_membership.user, rows)
    # Sales for references (the extra query for approved uses), the admin for contacts.
    membership = alice_membership if endpoint == CONTACTS else bob_membership
    client = api_client_for(membership)
    client.get(endpoint)  # warm caches (content types, guardian's lookups)
    expected = QUERIES[endpoint] - (1 if endpoint == REFERENCES and membership is alice_membership else 0)
    with django_assert_num_queries(expected):
        response = client.get(endpoint, {"page_size": 100})
    assert response.status_code == 200
    assert len(response.json()["results"]) > 0


# --- Schema ----------------------------------------------------------------------------------


def test_it_documents_the_resources_in_the_schema(tmp_path):
    from django.core.management import call_command

    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    for path in ("/api/v1/accounts/", "/api/v1/contacts/", "/api/v1/references/", "/api/v1/usage-requests/"):
        assert path in text
    assert "/api/v1/usage-requests/{id}/approve/" in text
    assert "Refused by the fatigue limits" in text


def test_it_never_names_the_customer_behind_an_anonymised_reference(
    api_client_for, bob_membership, carol_membership, org_a
):
    reference = ReferenceFactory(organization=org_a, publication="anonymised", title="Anonymous rollout")
    reference.account.name = "Secretive Shipping Ltd"
    with tenant_context(org_a):
        reference.account.save()
    grant(reference, "quote")
    sales = api_client_for(bob_membership)
    [shown] = sales.get(REFERENCES).json()["results"]
    assert shown["account"]["name"] is None
    assert shown["account"]["id"] is None
    assert shown["account"]["industry"] == reference.account.industry
    assert sales.get(REFERENCES, {"search": "Secretive"}).json()["results"] == []
    manager = api_client_for(carol_membership)
    assert manager.get(f"{REFERENCES}{reference.pk}/").json()["account"]["name"] == "Secretive Shipping Ltd"
