"""A real browser: a manager records a gift card, Celery's flagging holds the reference, compliance clears it
with a disclosure, and the salesperson sees the reference again with the disclosure line."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from references import incentives, tasks
from references.models import FlagStatus, ReviewFlag
from refmgr.tenancy.context import tenant_context
from tests.factories.references import AccountFactory, ContactFactory, ReferenceFactory, grant
from tests.factories.tenancy import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, live_server, username: str, next_path: str = "/o/acme/references/") -> None:
    page.goto(f"{live_server.url}/accounts/login/?next={next_path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(re.escape(next_path) + "$"))


def test_it_records_an_incentive_and_a_reviewer_clears_it(browser, live_server, org_a, bob, carol, dave, monkeypatch):
    harbor = AccountFactory(organization=org_a, name="Harbor Freight Lines")
    dana = ContactFactory(organization=org_a, account=harbor, name="Dana Whitfield", email="dana@harbor.example")
    fleet = ReferenceFactory(
        organization=org_a, account=harbor, advocate=dana, title="Fleet onboarding in six weeks", summary="Routes."
    )
    grant(fleet, "call", "quote")
    # Flagging runs in Celery after commit; here the test runs it the way the task would.
    queued: list[dict[str, object]] = []
    monkeypatch.setattr(tasks.incentive_flag, "delay", lambda **kwargs: queued.append(kwargs))

    csp_errors: list[str] = []

    def new_page():
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
        return context, page

    # Carol, a reference manager, records a gift card for Dana.
    manager, page = new_page()
    sign_in(page, live_server, "carol", "/o/acme/references/manage/incentives/")
    page.get_by_role("link", name="Record an incentive").first.click()
    page.get_by_label("Contact", exact=True).select_option(label="Dana Whitfield — Harbor Freight Lines")
    page.get_by_label("Kind").select_option("gift_card")
    page.get_by_label("Value").fill("50")
    page.get_by_label("Currency").select_option("EUR")
    page.get_by_label("Given on").fill("2026-01-15")
    page.get_by_label("Given by").fill("Pat, account executive")
    # A reward for a positive review is refused on the field, with the reason.
    page.get_by_label("Conditioned on").select_option("positive_sentiment")
    page.get_by_role("button", name="Record incentive").click()
    expect(page.get_by_text("cannot be recorded: a reference bought that way is not authentic")).to_be_visible()
    page.get_by_label("Conditioned on").select_option("none")
    page.get_by_role("button", name="Record incentive").click()
    expect(page.get_by_role("heading", name="Incentives")).to_be_visible()
    expect(page.get_by_role("cell", name=re.compile("Dana Whitfield"))).to_be_visible()
    assert len(queued) == 1

    with tenant_context(org_a):
        assert incentives.incentive_flag_references(organization=org_a, incentive_ids=[queued[0]["incentive_id"]]) == 1

    # Bob, a salesperson, no longer finds the held reference.
    sales, sales_page = new_page()
    sign_in(sales_page, live_server, "bob")
    expect(sales_page.get_by_role("link", name="Fleet onboarding in six weeks")).to_have_count(0)

    # Dave, compliance, clears it with a justification and a disclosure.
    reviewer, review_page = new_page()
    sign_in(review_page, live_server, "dave")
    review_page.get_by_role("navigation", name="Main").get_by_role("link", name="Review queue").click()
    expect(review_page.get_by_role("heading", name="Review queue")).to_be_visible()
    row = review_page.get_by_role("row").filter(has_text="Fleet onboarding in six weeks")
    expect(row.get_by_text("Gift card, 50.00 EUR")).to_be_visible()
    row.get_by_role("link", name=re.compile("^Review")).click()
    expect(review_page.get_by_label("Disclosure", exact=True)).to_have_value("This customer received a gift card.")
    review_page.get_by_label("Justification").fill("A thank-you after the call; the quote predates it.")
    review_page.get_by_label("Disclosure", exact=True).fill("This customer received a €50 gift card.")
    review_page.get_by_role("button", name="Record decision").click()
    expect(review_page.get_by_role("status").filter(has_text="Flag cleared")).to_be_visible()
    expect(review_page.get_by_text("Nothing to review.")).to_be_visible()
    with tenant_context(org_a):
        assert ReviewFlag.objects.get().status == FlagStatus.CLEARED

    # Bob sees the reference again, with the disclosure line.
    sales_page.goto(f"{live_server.url}/o/acme/references/")
    sales_page.get_by_role("link", name="Fleet onboarding in six weeks").click()
    expect(sales_page.get_by_text("This customer received a €50 gift card.")).to_be_visible()

    for context in (manager, sales, reviewer):
        context.close()
    assert csp_errors == []
