"""A real browser: the customer opens their consent link, grants quote and logo, then revokes the logo;
the salesperson's view of the reference follows at once."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from consent.models import ConsentEvent
from refmgr.tenancy.context import tenant_context
from tests.factories.consent import QUOTE, ask, consent_case
from tests.factories.tenancy import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_customer_grants_then_revokes_and_the_catalogue_follows(browser, live_server, org_a, bob):
    # The advocate signs for their company, so one person can give both the quote and the logo.
    case = consent_case(org_a, title="Fleet onboarding in six weeks")
    _request, _link, token = ask(case, "quote", "logo")

    csp_errors: list[str] = []

    def new_page():
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
        return context, page

    customer, page = new_page()
    page.goto(f"{live_server.url}/consent/{token}/")
    expect(page.get_by_role("heading", name="Acme Analytics asks for your consent")).to_be_visible()
    expect(page.locator("blockquote").filter(has_text=QUOTE)).to_have_text(QUOTE)
    quote, logo = page.get_by_label("Quote", exact=True), page.get_by_label("Logo", exact=True)
    expect(quote).not_to_be_checked()
    expect(logo).not_to_be_checked()
    expect(page.get_by_role("link", name="Read the privacy policy of Acme Analytics")).to_have_attribute(
        "href", "/o/acme/privacy/"
    )
    quote.check()
    logo.check()
    page.get_by_role("button", name="Grant", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="your answer is recorded")).to_be_visible()
    expect(page.get_by_role("heading", name="Manage my consent")).to_be_visible()

    page.get_by_role("button", name=re.compile(r"^Revoke Logo")).click()
    expect(page.get_by_role("status").filter(has_text="Withdrawn: Logo.")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"^Revoke Quote"))).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"^Revoke Logo"))).to_have_count(0)
    customer.close()

    sales, page = new_page()
    page.goto(f"{live_server.url}/accounts/login/?next=/o/acme/references/{case.reference.pk}/")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Fleet onboarding in six weeks")).to_be_visible()
    uses = page.locator("section").filter(has=page.get_by_role("heading", name="Allowed uses"))
    expect(uses.locator(".badge").filter(has_text=re.compile(r"^Quote$"))).to_be_visible()
    expect(uses.locator(".badge").filter(has_text=re.compile(r"^Logo$"))).to_have_count(0)
    sales.close()

    with tenant_context(org_a):
        kinds = list(ConsentEvent.objects.order_by("sequence").values_list("kind", flat=True))
    assert kinds.count("granted") == 2
    assert kinds.count("revoked") == 1
    assert "notice_served" in kinds
    assert csp_errors == []
