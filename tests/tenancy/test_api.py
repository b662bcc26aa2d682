"""The API's tenancy layer: token authentication, roles, isolation, schema."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient
from rest_framework.views import APIView

from refmgr.audit.services import record
from refmgr.tenancy import services
from refmgr.tenancy.api import TenantScopedMixin
from refmgr.tenancy.context import tenant_context

MEMBERS = "/api/v1/members/"
EVENTS = "/api/v1/audit-events/"


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_it_requires_a_token(db):
    response = APIClient().get(MEMBERS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize(
    "header",
    [
        "Token",
        "Token a b",
        "Token nonsense",
        "Token 1.short",
        "Token 999999.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ],
)
def test_it_rejects_malformed_or_unknown_tokens(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get(MEMBERS).status_code == 401


def test_it_rejects_a_token_with_a_forged_organization(alice_membership, org_b):
    with tenant_context(alice_membership.organization):
        _, key = services.api_token_create(
            organization=alice_membership.organization, membership=alice_membership, actor=None
        )
    forged = f"{org_b.pk}.{key.partition('.')[2]}"
    assert token_client(forged).get(MEMBERS).status_code == 401


def test_it_rejects_a_revoked_token(alice_membership, org_a):
    with tenant_context(org_a):
        token, key = services.api_token_create(organization=org_a, membership=alice_membership, actor=None)
        services.api_token_revoke(organization=org_a, token=token, actor=None)
    assert token_client(key).get(MEMBERS).status_code == 401


def test_it_rejects_the_token_of_a_deactivated_member(alice, carol_membership, org_a):
    with tenant_context(org_a):
        _, key = services.api_token_create(organization=org_a, membership=carol_membership, actor=None)
        carol_membership.is_active = False
        carol_membership.save()
    assert token_client(key).get(EVENTS).status_code == 401


def test_it_lists_only_the_tokens_organization(api_client_for, alice_membership, bob_membership, mallory_membership):
    response = api_client_for(alice_membership).get(MEMBERS)
    assert response.status_code == 200
    assert sorted(m["username"] for m in response.json()["results"]) == ["alice", "bob"]


def test_it_hides_other_tenants_members(api_client_for, alice_membership, mallory_membership):
    client = api_client_for(mallory_membership)
    assert client.get(f"{MEMBERS}{alice_membership.pk}/").status_code == 404
    assert client.get(f"{MEMBERS}{mallory_membership.pk}/").status_code == 200


def test_it_hides_other_tenants_audit_events(api_client_for, org_a, mallory_membership):
    with tenant_context(org_a):
        event = record(organization=org_a, actor=None, action="a.secret")
    client = api_client_for(mallory_membership)
    assert client.get(f"{EVENTS}{event.pk}/").status_code == 404
    assert "a.secret" not in {e["action"] for e in client.get(EVENTS).json()["results"]}


@pytest.mark.parametrize(
    ("who", "members", "events"),
    [("alice", 200, 200), ("bob", 403, 403), ("carol", 403, 403), ("dave", 403, 200)],
)
def test_it_enforces_roles(request, api_client_for, who, members, events):
    client = api_client_for(request.getfixturevalue(f"{who}_membership"))
    assert client.get(MEMBERS).status_code == members
    assert client.get(EVENTS).status_code == events


def test_it_keeps_the_audit_log_read_only(api_client_for, alice_membership, org_a):
    with tenant_context(org_a):
        event = record(organization=org_a, actor=None, action="x")
    client = api_client_for(alice_membership)
    assert client.post(EVENTS, {"action": "forged"}, format="json").status_code in (403, 405)
    assert client.delete(f"{EVENTS}{event.pk}/").status_code in (403, 405)


def test_it_filters_and_searches_audit_events(api_client_for, alice_membership, org_a):
    with tenant_context(org_a):
        record(organization=org_a, actor=None, action="consent.granted")
        record(organization=org_a, actor=None, action="consent.revoked")
    client = api_client_for(alice_membership)
    actions = {e["action"] for e in client.get(EVENTS, {"action__startswith": "consent."}).json()["results"]}
    assert actions == {"consent.granted", "consent.revoked"}


def test_it_answers_a_bad_page_number_with_400_naming_the_field(api_client_for, alice_membership):
    response = api_client_for(alice_membership).get(EVENTS, {"page": "abc"})
    assert response.status_code == 400
    assert "page" in response.json()


@pytest.mark.parametrize("rows", [5, 60])
def test_it_lists_audit_events_in_a_constant_number_of_queries(
    api_client_for, alice_membership, org_a, django_assert_num_queries, rows
):
    client = api_client_for(alice_membership)
    with tenant_context(org_a):
        for n in range(rows):
            record(organization=org_a, actor=alice_membership.user, action=f"test.{n}")
    # organization, token (+ membership, user), last-used touch, count, page
    with django_assert_num_queries(5):
        response = client.get(EVENTS)
    assert response.status_code == 200


def _api_views(patterns: list, prefix: str = "") -> list[tuple[str, type]]:
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += _api_views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            view_class = getattr(pattern.callback, "cls", None)
            if view_class is not None and issubclass(view_class, APIView):
                found.append((prefix + str(pattern.pattern), view_class))
    return found


def test_it_builds_every_api_view_on_the_tenant_scoped_base():
    views = [(route, cls) for route, cls in _api_views(get_resolver().url_patterns) if route.startswith("api/v1/")]
    assert views, "no API views found"
    offenders = [f"{route}: {cls.__name__}" for route, cls in views if not issubclass(cls, TenantScopedMixin)]
    assert offenders == []


def test_it_serves_the_openapi_schema_and_docs_offline(db):
    client = APIClient()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/audit-events/" in paths
    assert "/api/v1/members/" in paths
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    body = docs.content.decode()
    assert "cdn" not in body.lower()
    assert "/static/drf_spectacular_sidecar/" in body


def test_it_generates_a_valid_schema_without_warnings(tmp_path):
    from django.core.management import call_command

    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    assert "tokenAuth" in text
    assert "/api/schema/" not in text
