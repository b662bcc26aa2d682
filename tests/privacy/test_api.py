"""/api/v1/privacy-policies/: roles, drafts and publishing, published versions read-only, isolation, queries."""

from __future__ import annotations

import pytest

from privacy.models import PolicyStatus, PrivacyPolicy
from refmgr.tenancy.context import tenant_context
from tests.privacy.conftest import days, make_policy

POLICIES = "/api/v1/privacy-policies/"


def detail(policy: PrivacyPolicy, suffix: str = "") -> str:
    return f"{POLICIES}{policy.pk}/{suffix}"


@pytest.fixture
def clients(api_client_for, alice_membership, bob_membership, carol_membership, dave_membership, mallory_membership):
    return {
        "alice": api_client_for(alice_membership),
        "bob": api_client_for(bob_membership),
        "carol": api_client_for(carol_membership),
        "dave": api_client_for(dave_membership),
        "mallory": api_client_for(mallory_membership),
    }


@pytest.fixture
def history(org_a):
    return {
        "old": make_policy(org_a, effective=days(-100)),
        "current": make_policy(org_a, effective=days(-10)),
        "draft": make_policy(org_a, publish=False, effective=days(20), summary="Shorter retention."),
    }


def versions(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["version"] for row in response.json()["results"]]


def test_it_lists_every_version_to_admins_and_published_ones_to_other_members(clients, history):
    assert versions(clients["alice"].get(POLICIES)) == [3, 2, 1]
    for who in ("bob", "carol", "dave"):
        assert versions(clients[who].get(POLICIES)) == [2, 1], who
        assert clients[who].get(detail(history["draft"])).status_code == 404, who
    assert versions(clients["alice"].get(POLICIES, {"status": "draft"})) == [3]


def test_it_marks_the_version_in_force(clients, history):
    rows = {row["version"]: row for row in clients["bob"].get(POLICIES).json()["results"]}
    assert (rows[2]["is_current"], rows[1]["is_current"]) == (True, False)
    row = clients["bob"].get(detail(history["current"])).json()
    assert row["status"] == "published"
    assert row["is_current"] is True
    assert row["effective_date"] == days(-10).isoformat()


def test_it_lets_an_admin_write_and_publish_a_draft(clients, org_a):
    client = clients["alice"]
    response = client.post(
        POLICIES,
        {"title": "Privacy policy", "body": "We keep your name.", "effective_date": days(3).isoformat()},
        format="json",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["version"], created["status"], created["created_by"]) == (1, "draft", "alice")
    policy_url = f"{POLICIES}{created['id']}/"
    response = client.patch(policy_url, {"body": "We keep your name and email."}, format="json")
    assert response.status_code == 200
    assert response.json()["body"] == "We keep your name and email."
    response = client.post(f"{policy_url}publish/")
    assert response.status_code == 200, response.content
    published = response.json()
    assert (published["status"], published["published_by"], published["is_current"]) == ("published", "alice", False)
    assert published["published_at"]


@pytest.mark.parametrize("who", ["bob", "carol", "dave"])
def test_it_lets_only_admins_write(clients, history, who):
    client = clients[who]
    assert client.post(POLICIES, {"title": "x", "body": "y", "effective_date": days(1).isoformat()}).status_code == 403
    assert client.patch(detail(history["current"]), {"title": "x"}, format="json").status_code == 403
    assert client.post(detail(history["current"], "publish/")).status_code == 403
    assert client.delete(detail(history["current"])).status_code == 403


def test_it_keeps_published_versions_read_only(clients, history, org_a):
    client = clients["alice"]
    current = history["current"]
    response = client.patch(detail(current), {"title": "Rewritten"}, format="json")
    assert response.status_code == 400
    assert "published" in response.json()["non_field_errors"][0]
    assert client.post(detail(current, "publish/")).status_code == 400
    assert client.delete(detail(current)).status_code == 400
    assert client.put(detail(current), {"title": "Rewritten"}, format="json").status_code == 405
    with tenant_context(org_a):
        stored = PrivacyPolicy.objects.get(pk=current.pk)
    assert (stored.title, stored.status) == (current.title, PolicyStatus.PUBLISHED)


def test_it_reports_a_refused_publication_under_its_field(clients, org_a):
    past = make_policy(org_a, publish=False, effective=days(-2))
    response = clients["alice"].post(detail(past, "publish/"))
    assert response.status_code == 400
    assert "in the past" in response.json()["effective_date"][0]


def test_it_validates_the_shape_of_a_draft(clients, org_a):
    response = clients["alice"].post(POLICIES, {"title": "", "effective_date": "soon"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) >= {"title", "body", "effective_date"}
    with tenant_context(org_a):
        assert not PrivacyPolicy.objects.exists()


def test_it_deletes_a_draft(clients, history, org_a):
    assert clients["alice"].delete(detail(history["draft"])).status_code == 204
    with tenant_context(org_a):
        assert list(PrivacyPolicy.objects.values_list("version", flat=True)) == [2, 1]


def test_it_hides_other_tenants_policies(clients, history, org_b):
    mallory = clients["mallory"]
    assert versions(mallory.get(POLICIES)) == []
    for policy in history.values():
        assert mallory.get(detail(policy)).status_code == 404
        assert mallory.patch(detail(policy), {"title": "Hijacked"}, format="json").status_code == 404
        assert mallory.post(detail(policy, "publish/")).status_code == 404
        assert mallory.delete(detail(policy)).status_code == 404
    with tenant_context(org_b):
        assert not PrivacyPolicy.objects.exists()


@pytest.mark.parametrize("rows", [3, 30])
def test_it_lists_in_a_constant_number_of_queries(
    api_client_for, alice_membership, org_a, django_assert_num_queries, rows
):
    for offset in range(-rows, 0):
        make_policy(org_a, effective=days(offset), actor=alice_membership.user)
    make_policy(org_a, publish=False, actor=alice_membership.user)
    client = api_client_for(alice_membership)
    client.get(POLICIES)  # warm caches
    # token and membership, count, page (people joined), the current version
    with django_assert_num_queries(5):
        response = client.get(POLICIES, {"page_size": 100})
    assert len(response.json()["results"]) == rows + 1


def test_it_documents_the_resource_in_the_schema(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = out.read_text()
    assert "/api/v1/privacy-policies/{id}/publish/" in schema
