"""Django admin for privacy policies: scoped to the organization, published versions read-only."""

from __future__ import annotations

import pytest

from privacy.models import PrivacyPolicy
from refmgr.tenancy.context import tenant_context
from tests.privacy.conftest import days, make_policy

ADMIN = "/admin/privacy/privacypolicy/"


@pytest.fixture
def policies(org_a, org_b):
    return {
        "published": make_policy(org_a, effective=days(-5), title="Acme published"),
        "draft": make_policy(org_a, publish=False, title="Acme draft"),
        "theirs": make_policy(org_b, title="Borealis secret"),
    }


def test_it_lists_only_the_organizations_versions(client, alice, policies):
    client.force_login(alice)
    response = client.get(ADMIN)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Acme published" in body
    assert "Acme draft" in body
    assert "Borealis secret" not in body
    assert client.get(f"{ADMIN}{policies['theirs'].pk}/change/").status_code == 302  # "doesn't exist" redirect


def test_it_shows_a_published_version_read_only(client, alice, org_a, policies):
    client.force_login(alice)
    published = policies["published"]
    page = client.get(f"{ADMIN}{published.pk}/change/")
    assert page.status_code == 200
    assert 'name="title"' not in page.content.decode()
    data = {"title": "Rewritten", "body": "x", "summary_of_changes": "", "effective_date": days(1).isoformat()}
    assert client.post(f"{ADMIN}{published.pk}/change/", data).status_code == 403
    assert client.post(f"{ADMIN}{published.pk}/delete/", {"post": "yes"}).status_code == 403
    with tenant_context(org_a):
        assert PrivacyPolicy.objects.get(pk=published.pk).title == "Acme published"


def test_it_lets_an_admin_correct_a_draft_but_not_add_or_bulk_delete(client, alice, org_a, policies):
    client.force_login(alice)
    draft = policies["draft"]
    data = {"title": "Acme draft, fixed", "body": "New text", "summary_of_changes": "Typos.", "effective_date": days(1)}
    assert client.post(f"{ADMIN}{draft.pk}/change/", data).status_code == 302
    with tenant_context(org_a):
        assert PrivacyPolicy.objects.get(pk=draft.pk).title == "Acme draft, fixed"
    assert client.get(f"{ADMIN}add/").status_code == 403
    assert "delete_selected" not in client.get(ADMIN).content.decode()


def test_it_keeps_the_privacy_admin_from_other_roles(client, bob, policies):
    bob.is_staff = True
    bob.save()
    client.force_login(bob)
    response = client.get(ADMIN)
    # The admin site lets only organization admins in; everyone else is asked to sign in as one.
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
