"""A real browser: an admin signs in, manages members, switches organization and signs out."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from refmgr.tenancy import tasks
from refmgr.tenancy.models import Role
from tests.factories.tenancy import PASSWORD, MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_signs_in_manages_members_switches_organization_and_signs_out(
    page, live_server, alice, bob, org_b, monkeypatch
):
    MembershipFactory(organization=org_b, user=alice, role=Role.SALES)
    # The invitation email goes through Celery; here we only check that it was queued.
    queued: list[dict[str, int]] = []
    monkeypatch.setattr(tasks.invitation_send, "delay", lambda **kwargs: queued.append(kwargs))
    # The strict Content-Security-Policy must not block anything the pages use.
    csp_errors: list[str] = []
    page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.set_default_timeout(10_000)

    page.goto(f"{live_server.url}/o/acme/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/o/acme/$"))
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Welcome, alice")).to_be_visible()
    expect(page.get_by_text("You are Organization admin in Acme Analytics.")).to_be_visible()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", name="Members", exact=True)).to_be_visible()

    page.get_by_label("Email address").fill("newbie@example.com")
    page.get_by_label("Role", exact=True).select_option(Role.REFERENCE_MANAGER)
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("status").filter(has_text="Invitation sent to newbie@example.com")).to_be_visible()
    expect(page.get_by_role("button", name="Revoke invitation to newbie@example.com")).to_be_visible()
    assert len(queued) == 1

    page.get_by_label("Role of bob").select_option(Role.COMPLIANCE)
    page.get_by_role("button", name="Save role of bob").click()
    expect(page.get_by_role("status").filter(has_text="bob is now Compliance reviewer")).to_be_visible()
    expect(page.get_by_label("Role of bob")).to_have_value(Role.COMPLIANCE)

    # The search narrows the table in place (htmx) and keeps the address shareable.
    page.get_by_label("Search members").fill("bo")
    expect(page.get_by_text("1 member matching")).to_be_visible()
    expect(page).to_have_url(f"{live_server.url}/o/acme/members/?q=bo")

    page.locator("details.switcher > summary").click()
    page.get_by_role("link", name=re.compile("Borealis Robotics")).click()
    expect(page).to_have_url(f"{live_server.url}/o/borealis/")
    expect(page.get_by_text("You are Salesperson in Borealis Robotics.")).to_be_visible()
    # A salesperson there: no Members link.
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Members")).to_have_count(0)

    page.locator("details.user-menu > summary").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{live_server.url}/accounts/login/")
    expect(page.get_by_role("heading", name="Sign in to refmgr")).to_be_visible()

    assert csp_errors == []
