"""A real browser: a salesperson finds a reference and asks for a call; the manager approves; the contact appears."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from references import tasks
from tests.factories.references import AccountFactory, ContactFactory, ReferenceFactory, ReferenceLabelFactory, grant
from tests.factories.tenancy import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/?next=/o/acme/references/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="References", exact=True)).to_be_visible()


def test_it_finds_requests_approves_and_reveals_the_contact(browser, live_server, org_a, bob, carol, monkeypatch):
    harbor = AccountFactory(organization=org_a, name="Harbor Freight Lines", industry="Logistics", region="EMEA")
    advocate = ContactFactory(organization=org_a, account=harbor, name="Dana Whitfield", email="dana@harbor.example")
    fleet = ReferenceFactory(
        organization=org_a,
        account=harbor,
        advocate=advocate,
        title="Fleet onboarding in six weeks",
        summary="Rolled out route planning to 400 drivers.",
    )
    grant(fleet, "call", "quote")
    ReferenceLabelFactory(organization=org_a, reference=fleet, kind="product", value="Routes")
    for n in range(3):
        other = ReferenceFactory(
            organization=org_a,
            account=AccountFactory(organization=org_a, industry="Retail"),
            title=f"Store analytics {n}",
            summary="Onboarding dashboards for every store manager.",
        )
        grant(other, "quote")
    # Notification emails go through Celery; here only that they were queued.
    queued: list[dict[str, object]] = []
    monkeypatch.setattr(tasks.usage_request_notify, "delay", lambda **kwargs: queued.append(kwargs))

    csp_errors: list[str] = []
    sales = browser.new_context()
    page = sales.new_page()
    page.set_default_timeout(10_000)
    page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
    sign_in(page, live_server, "bob")
    expect(page.get_by_role("status").filter(has_text="4 references")).to_be_visible()

    # Search narrows the results in place (htmx) and keeps the address shareable.
    page.get_by_label("Search references").fill("onboarding")
    expect(page).to_have_url(re.compile(r"[?&]q=onboarding"))
    expect(page.get_by_role("status").filter(has_text="4 references matching")).to_be_visible()
    page.get_by_label("Industry").select_option("Logistics")
    expect(page.get_by_role("status").filter(has_text="1 reference matching")).to_be_visible()
    expect(page).to_have_url(re.compile(r"industry=Logistics"))
    # The contact stays hidden until approval.
    page.get_by_role("link", name="Fleet onboarding in six weeks").click()
    expect(page.get_by_role("heading", name="Fleet onboarding in six weeks")).to_be_visible()
    expect(page.get_by_text("dana@harbor.example")).to_have_count(0)

    page.get_by_label("Use", exact=True).select_option("call")
    page.get_by_label("Opportunity", exact=True).fill("Globex renewal")
    page.get_by_label("Needed by").fill("2030-01-15")
    page.get_by_role("button", name="Send request").click()
    expect(page.get_by_role("heading", name="My requests")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="was sent to the reference managers")).to_be_visible()
    expect(page.locator(".request").filter(has_text="Globex renewal").get_by_text("Pending")).to_be_visible()
    assert len(queued) == 1

    manager = browser.new_context()
    manager_page = manager.new_page()
    manager_page.set_default_timeout(10_000)
    manager_page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
    sign_in(manager_page, live_server, "carol")
    manager_page.get_by_role("navigation", name="Main").get_by_role("link", name="Request queue").click()
    expect(manager_page.get_by_role("heading", name="Request queue")).to_be_visible()
    manager_page.get_by_label("Note (optional to approve, required to decline)").fill("Dana is happy to help.")
    manager_page.get_by_role("button", name=re.compile(r"^Approve bob.s request for Globex renewal$")).click()
    expect(manager_page.get_by_role("status").filter(has_text="Approved")).to_be_visible()
    expect(manager_page.get_by_text("No pending requests.")).to_be_visible()
    assert len(queued) == 2

    page.goto(f"{live_server.url}/o/acme/references/{fleet.pk}/")
    expect(page.get_by_role("link", name="dana@harbor.example")).to_be_visible()
    expect(page.get_by_text("Dana Whitfield")).to_be_visible()

    sales.close()
    manager.close()
    assert csp_errors == []
