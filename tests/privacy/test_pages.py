"""Privacy pages: the public policy (no account needed) and the admins' pages that write it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from privacy.models import PolicyStatus, PrivacyPolicy
from refmgr.audit.models import AuditEvent
from refmgr.tenancy.context import tenant_context
from tests.privacy.conftest import days, make_policy


def url(name: str, slug: str = "acme", **kwargs: object) -> str:
    return reverse(f"privacy:{name}", kwargs={"organization_slug": slug, **kwargs})


def in_org(organization, fn):
    # Row-level security on PostgreSQL hides rows from reads outside their organization.
    with tenant_context(organization):
        return fn()


def versions(organization) -> list[tuple[int, str]]:
    return in_org(
        organization, lambda: list(PrivacyPolicy.objects.order_by("version").values_list("version", "status"))
    )


@pytest.fixture
def history(org_a):
    """Version 1 (replaced), 2 (in force), 3 (published, takes effect later), 4 (a draft)."""
    return [
        make_policy(org_a, effective=days(-200), title="First policy", body="Old text."),
        make_policy(org_a, effective=days(-20), title="Second policy", body="Text <b>in force</b>.\n\nSecond para."),
        make_policy(org_a, effective=days(30), title="Third policy", summary="Coming soon: shorter retention."),
        make_policy(org_a, publish=False, title="Secret draft", body="Not public yet."),
    ]


# --- Public ------------------------------------------------------------------------------------------


def test_it_shows_the_current_version_and_the_history_without_an_account(client, history):
    response = client.get(url("policy"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Second policy" in body
    # Plain text, escaped and split into paragraphs: never rendered as HTML.
    assert "Text &lt;b&gt;in force&lt;/b&gt;." in body
    assert "<p>Second para.</p>" in body
    assert "Changed things." in body  # its summary of changes
    for version in (1, 2, 3):
        assert url("policy_version", version=version) in body
    assert "Coming soon: shorter retention." in body
    assert "Upcoming" in body
    assert "Secret draft" not in body
    assert url("policy_version", version=4) not in body


def test_it_shows_each_published_version_on_its_own_page(client, history):
    response = client.get(url("policy_version", version=1))
    assert response.status_code == 200
    assert "First policy" in response.content.decode()
    assert "replaced by a later one" in response.content.decode()
    assert "will replace the current one" in client.get(url("policy_version", version=3)).content.decode()


def test_it_hides_drafts_and_unknown_versions(client, history):
    assert client.get(url("policy_version", version=4)).status_code == 404
    assert client.get(url("policy_version", version=99)).status_code == 404


def test_it_says_so_when_nothing_is_published_yet(client, org_a):
    make_policy(org_a, publish=False, title="Secret draft")
    response = client.get(url("policy"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "has not published a privacy policy here yet" in body
    assert "Secret draft" not in body


def test_it_shows_a_first_version_that_is_not_in_force_yet(client, org_a):
    make_policy(org_a, effective=days(10), title="Coming policy")
    body = client.get(url("policy")).content.decode()
    assert "not in force yet" in body
    assert url("policy_version", version=1) in body


def test_it_hides_other_tenants_versions(client, history, org_b):
    make_policy(org_b, effective=days(-1), title="Borealis policy")
    # Acme's version numbers under Borealis's address are Borealis's versions, and it has only one.
    assert client.get(url("policy_version", slug="borealis", version=2)).status_code == 404
    body = client.get(url("policy", slug="borealis")).content.decode()
    assert "Borealis policy" in body
    assert "Second policy" not in body


def test_it_answers_404_for_an_unknown_organization(client, db):
    assert client.get(url("policy", slug="nobody")).status_code == 404
    assert client.get(url("policy_version", slug="nobody", version=1)).status_code == 404


def test_it_serves_the_public_page_in_a_constant_number_of_queries(client, org_a):
    make_policy(org_a, effective=days(-50))

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url("policy")).status_code == 200
        return len(captured)

    few = count()
    for offset in range(-40, 0, 4):
        make_policy(org_a, effective=days(offset))
    assert count() == few <= 3  # the organization, the current version, the history


# --- Admin pages: roles ------------------------------------------------------------------------------


def admin_pages() -> list[tuple[str, dict]]:
    return [
        ("manage", {}),
        ("manage_create", {}),
        ("manage_detail", {"version": 4}),
        ("manage_edit", {"version": 4}),
        ("manage_publish", {"version": 4}),
        ("manage_delete", {"version": 4}),
    ]


def test_it_opens_the_admin_pages_to_admins(client, alice, history):
    client.force_login(alice)
    for name, kwargs in admin_pages():
        assert client.get(url(name, **kwargs)).status_code == 200, name
    assert client.get(url("manage_detail", version=2)).status_code == 200


@pytest.mark.parametrize("who", ["bob", "carol", "dave"])
def test_it_refuses_the_admin_pages_to_other_roles(client, request, history, who):
    client.force_login(request.getfixturevalue(who))
    for name, kwargs in admin_pages():
        assert client.get(url(name, **kwargs)).status_code == 403, name
        assert client.post(url(name, **kwargs), {"title": "x"}).status_code == 403, name
    assert versions(history[0].organization)[-1] == (4, PolicyStatus.DRAFT)


def test_it_sends_anonymous_visitors_to_sign_in(client, history):
    for name, kwargs in admin_pages():
        response = client.get(url(name, **kwargs))
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("login"))


def test_it_hides_other_tenants_versions_from_admins(client, mallory, history):
    client.force_login(mallory)
    for name, kwargs in admin_pages():
        assert client.get(url(name, **kwargs)).status_code == 404, name
        if kwargs:
            # Acme's version 4 in mallory's own organization: there is no such version there.
            assert client.get(url(name, slug="borealis", **kwargs)).status_code == 404, name
            if name != "manage_detail":  # a read-only page: a POST is a 405 wherever it goes
                assert client.post(url(name, slug="borealis", **kwargs)).status_code == 404, name
    assert versions(history[0].organization)[-1] == (4, PolicyStatus.DRAFT)


def test_it_links_admins_to_the_page_from_the_navigation(client, alice, bob, org_a):
    client.force_login(alice)
    assert url("manage") in client.get(reverse("tenancy:dashboard", args=["acme"])).content.decode()
    client.force_login(bob)
    assert url("manage") not in client.get(reverse("tenancy:dashboard", args=["acme"])).content.decode()


# --- Admin pages: writing and publishing -------------------------------------------------------------


def form_data(**overrides: str) -> dict[str, str]:
    return {
        "title": "Privacy policy",
        "effective_date": days(0).isoformat(),
        "summary_of_changes": "",
        "body": "We keep your name and email.",
        **overrides,
    }


def test_it_writes_edits_and_publishes_a_first_version(client, alice, org_a):
    client.force_login(alice)
    response = client.post(url("manage_create"), form_data())
    assert response.status_code == 302
    assert response["Location"] == url("manage_detail", version=1)
    response = client.post(url("manage_edit", version=1), form_data(body="We keep your name, title and email."))
    assert response.status_code == 302
    assert client.get(url("manage_publish", version=1)).status_code == 200
    response = client.post(url("manage_publish", version=1))
    assert response.status_code == 302
    assert versions(org_a) == [(1, PolicyStatus.PUBLISHED)]
    assert "We keep your name, title and email." in client.get(url("policy")).content.decode()
    events = in_org(org_a, lambda: list(AuditEvent.objects.order_by("id").values_list("action", flat=True)))
    assert events[-3:] == ["privacy_policy.draft_created", "privacy_policy.draft_updated", "privacy_policy.published"]


def test_it_starts_a_new_draft_from_the_latest_text(client, alice, history):
    client.force_login(alice)
    body = client.get(url("manage_create")).content.decode()
    assert "Secret draft" in body  # version 4's title, prefilled


@pytest.mark.parametrize(
    "data",
    [
        form_data(title=""),
        form_data(body=""),
        form_data(effective_date="not a date"),
        form_data(title="x" * 201),
        {},
    ],
)
def test_it_shows_form_errors_instead_of_failing(client, alice, org_a, data):
    client.force_login(alice)
    response = client.post(url("manage_create"), data)
    assert response.status_code == 400
    assert 'aria-invalid="true"' in response.content.decode()
    assert versions(org_a) == []


def test_it_shows_a_refused_publication_on_the_page(client, alice, history):
    client.force_login(alice)
    # Version 4 has no summary of changes after published versions, and takes effect before version 3.
    response = client.post(url("manage_publish", version=4))
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
    assert versions(history[0].organization)[-1] == (4, PolicyStatus.DRAFT)


def test_it_refuses_a_past_effective_date_at_publication(client, alice, org_a):
    client.force_login(alice)
    client.post(url("manage_create"), form_data(effective_date=days(-1).isoformat()))
    response = client.post(url("manage_publish", version=1))
    assert response.status_code == 400
    assert "in the past" in response.content.decode()


@pytest.mark.parametrize("name", ["manage_edit", "manage_publish", "manage_delete"])
def test_it_never_changes_a_published_version_from_the_pages(client, alice, history, name):
    client.force_login(alice)
    for method in (client.get, client.post):
        response = method(url(name, version=2), form_data(title="Rewritten"))
        assert response.status_code == 302
        assert response["Location"] == url("manage_detail", version=2)
    stored = in_org(history[1].organization, lambda: PrivacyPolicy.objects.get(version=2))
    assert (stored.title, stored.status) == ("Second policy", PolicyStatus.PUBLISHED)


def test_it_deletes_a_draft_after_confirmation(client, alice, history):
    client.force_login(alice)
    assert client.get(url("manage_delete", version=4)).status_code == 200
    response = client.post(url("manage_delete", version=4))
    assert response.status_code == 302
    assert [v for v, _ in versions(history[0].organization)] == [1, 2, 3]


def test_it_lists_versions_in_a_constant_number_of_queries(client, alice, org_a):
    client.force_login(alice)
    make_policy(org_a, effective=days(-50), actor=alice)
    client.get(url("manage"))  # the first page of a session writes the session once

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url("manage")).status_code == 200
        return len(captured)

    few = count()
    for offset in range(-40, 0, 4):
        make_policy(org_a, effective=days(offset), actor=alice)
    make_policy(org_a, publish=False, actor=alice)
    assert count() == few
