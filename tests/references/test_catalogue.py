"""Catalogue and reference pages: roles, hiding, search and filters through the page, htmx, query counts."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from references import services
from references.models import HoldKind, Publication
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Role
from tests.factories.references import (
    AccountFactory,
    ReferenceAssetFactory,
    ReferenceFactory,
    ReferenceLabelFactory,
    bulk_references,
    grant,
)

CAST = {"alice": Role.ADMIN, "bob": Role.SALES, "carol": Role.REFERENCE_MANAGER, "dave": Role.COMPLIANCE}


def url(name: str, slug: str = "acme", **kwargs: object) -> str:
    return reverse(f"references:{name}", kwargs={"organization_slug": slug, **kwargs})


@pytest.fixture
def reference(org_a):
    reference = ReferenceFactory(
        organization=org_a,
        title="Fleet onboarding in six weeks",
        account=AccountFactory(organization=org_a, name="Harbor Freight Lines", industry="Logistics"),
    )
    grant(reference, "call", "quote")
    return reference


@pytest.mark.parametrize("who", sorted(CAST))
def test_it_opens_the_catalogue_and_detail_for_every_role(client, request, reference, who):
    client.force_login(request.getfixturevalue(who))
    assert client.get(url("catalogue")).status_code == 200
    assert client.get(url("detail", reference_id=reference.pk)).status_code == 200


@pytest.mark.parametrize("name", ["catalogue", "detail"])
def test_it_sends_anonymous_visitors_to_sign_in(client, reference, name):
    kwargs = {"reference_id": reference.pk} if name == "detail" else {}
    response = client.get(url(name, **kwargs))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=/o/acme/references/")


def test_it_hides_other_tenants_references(client, reference, mallory, org_b):
    client.force_login(mallory)
    # Through org A's address: not a member, 404.
    assert client.get(url("detail", reference_id=reference.pk)).status_code == 404
    # Through mallory's own organization: the id is unknown there, 404 as well.
    assert client.get(url("detail", slug="borealis", reference_id=reference.pk)).status_code == 404
    assert b"Fleet onboarding" not in client.get(url("catalogue", slug="borealis")).content


def test_it_shows_cards_with_allowed_uses_and_disclosure(client, bob, reference, org_a):
    reference.disclosure = "This customer received a discount for taking part."
    with tenant_context(org_a):
        reference.save()
    client.force_login(bob)
    body = client.get(url("catalogue")).content.decode()
    assert "Fleet onboarding in six weeks" in body
    assert "Harbor Freight Lines" in body
    assert "Reference call" in body
    assert "Quote" in body
    assert "Logo" not in body.split('id="catalogue-region"')[1].split("</fieldset>")[1]
    assert "received a discount" in body


def test_it_shows_industry_and_title_only_for_anonymised_references(client, bob, reference, org_a):
    reference.publication = Publication.ANONYMISED
    with tenant_context(org_a):
        reference.save()
    client.force_login(bob)
    for page in (url("catalogue"), url("detail", reference_id=reference.pk)):
        body = client.get(page).content.decode()
        assert "Harbor Freight Lines" not in body
        assert "Head of Operations, Logistics" in body


def _hide(kind: str, reference, org):
    with tenant_context(org):
        if kind == "retired":
            services.reference_retire(organization=org, reference=reference, actor=None)
        elif kind == "hold":
            services.reference_hold_place(
                organization=org, reference=reference, kind=HoldKind.COMPLAINT, source="feedback:9", reason="complaint"
            )
        elif kind == "withdrawn":
            for scope in ("call", "quote"):
                services.reference_scope_withdraw(organization=org, reference=reference, scope=scope, source="t")


@pytest.mark.parametrize("kind", ["retired", "hold", "withdrawn"])
@pytest.mark.parametrize("who", ["bob", "carol"])
def test_it_hides_references_without_a_usable_scope(client, request, reference, org_a, kind, who):
    _hide(kind, reference, org_a)
    client.force_login(request.getfixturevalue(who))
    assert "Fleet onboarding" not in client.get(url("catalogue")).content.decode()
    assert client.get(url("detail", reference_id=reference.pk)).status_code == 404


def test_it_hides_references_with_an_expired_grant(client, bob, org_a):
    expired = ReferenceFactory(organization=org_a, title="Expired consent story")
    grant(expired, "call", days=-1)
    client.force_login(bob)
    assert "Expired consent story" not in client.get(url("catalogue")).content.decode()
    assert client.get(url("detail", reference_id=expired.pk)).status_code == 404


def test_it_searches_filters_and_sorts_through_the_page(client, bob, reference, org_a):
    other = ReferenceFactory(
        organization=org_a,
        title="Month-end close automated",
        account=AccountFactory(organization=org_a, name="Copperleaf Bank", industry="Banking", region="NA"),
    )
    grant(other, "logo")
    ReferenceLabelFactory(organization=org_a, reference=other, kind="product", value="Ledger")
    client.force_login(bob)
    body = client.get(url("catalogue"), {"q": "onboarding"}).content.decode()
    assert "Fleet onboarding" in body
    assert "Month-end close" not in body
    body = client.get(url("catalogue"), {"industry": "Banking"}).content.decode()
    assert "Month-end close" in body
    assert "Fleet onboarding" not in body
    body = client.get(url("catalogue"), {"product": "Ledger", "scope": "logo"}).content.decode()
    assert "1 reference" in body
    assert "Month-end close" in body
    body = client.get(url("catalogue"), {"sort": "title"}).content.decode()
    assert body.index("Fleet onboarding") < body.index("Month-end close")
    # Facet counts label the filter options.
    assert re.search(r"Banking \(1\)", client.get(url("catalogue")).content.decode())


@pytest.mark.parametrize(
    "params",
    [
        {"page": "abc"},
        {"page": "-4"},
        {"page": "99999"},
        {"size_band": "enormous"},
        {"scope": "telepathy"},
        {"sort": "drop table"},
        {"industry": "x" * 500},
        {"q": "'\"&|!():*<>"},
    ],
)
def test_it_ignores_invalid_filters_and_pages(client, bob, reference, params):
    client.force_login(bob)
    response = client.get(url("catalogue"), params)
    assert response.status_code == 200


def test_it_shows_a_helpful_empty_state(client, bob, org_a, reference):
    client.force_login(bob)
    body = client.get(url("catalogue"), {"q": "zebra"}).content.decode()
    assert "No reference matches your search" in body
    assert "Show all references" in body


def test_it_answers_htmx_with_the_results_fragment(client, bob, reference):
    client.force_login(bob)
    response = client.get(url("catalogue"), {"q": "onboarding"}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="catalogue-region"')
    assert "<html" not in body
    assert "Fleet onboarding" in body
    assert "HX-Request" in response["Vary"]


def test_it_shows_the_approved_assets_word_for_word(client, bob, reference, org_a):
    ReferenceAssetFactory(
        organization=org_a, reference=reference, kind="quote", text="It paid  for itself\nin a quarter."
    )
    ReferenceAssetFactory(organization=org_a, reference=reference, kind="video", url="https://video.example/v1")
    client.force_login(bob)
    body = client.get(url("detail", reference_id=reference.pk)).content.decode()
    assert "It paid  for itself\nin a quarter." in body
    # No video consent: the video is not shown.
    assert "video.example" not in body


def test_it_hides_contact_details_from_sales_until_approval(client, bob, carol, reference, org_a):
    email = reference.advocate.email
    client.force_login(bob)
    body = client.get(url("detail", reference_id=reference.pk)).content.decode()
    assert email not in body
    assert reference.advocate.name not in body
    assert "shown once one of your requests" in body
    client.force_login(carol)
    assert email in client.get(url("detail", reference_id=reference.pk)).content.decode()


def test_it_records_each_view_of_contact_details(client, carol, reference, org_a):
    from refmgr.audit.models import AuditEvent

    client.force_login(carol)
    client.get(url("detail", reference_id=reference.pk))
    with tenant_context(org_a):
        event = AuditEvent.objects.get(action="contact.viewed")
    assert event.object_id == str(reference.advocate_id)


def test_it_offers_the_request_form_only_to_sales_and_only_usable_scopes(client, bob, carol, reference):
    client.force_login(bob)
    body = client.get(url("detail", reference_id=reference.pk)).content.decode()
    assert "Request a use" in body
    options = re.findall(r'<option value="([a-z_]+)"', body.split('name="scope"')[1].split("</select>")[0])
    assert options == ["call", "quote"]
    client.force_login(carol)
    assert "Request a use" not in client.get(url("detail", reference_id=reference.pk)).content.decode()


def test_it_shows_when_a_rested_advocate_is_available_again(client, bob, carol, reference, org_a):
    with tenant_context(org_a):
        usage_request = services.usage_request_create(
            organization=org_a, reference=reference, scope="call", requested_by=bob, opportunity_name="Deal"
        )
        services.usage_request_approve(organization=org_a, usage_request=usage_request, actor=carol)
    client.force_login(bob)
    body = client.get(url("catalogue")).content.decode()
    assert "Resting" in body
    assert "Available again for calls, visits and videos from" in body


def test_it_renders_no_inline_script_or_style(client, bob, carol, reference):
    for user, pages in ((bob, ["catalogue", "my_requests"]), (carol, ["catalogue", "queue"])):
        client.force_login(user)
        for page in [*pages, ("detail", reference.pk)]:
            address = url(page[0], reference_id=page[1]) if isinstance(page, tuple) else url(page)
            body = client.get(address).content.decode()
            assert "style=" not in body
            assert "<style" not in body
            for tag in re.findall(r"<script[^>]*>", body):
                assert "src=" in tag


def test_it_links_the_references_pages_from_the_navigation(client, bob, carol):
    client.force_login(bob)
    body = client.get(reverse("tenancy:dashboard", kwargs={"organization_slug": "acme"})).content.decode()
    assert url("catalogue") in body
    assert url("my_requests") in body
    assert url("queue") not in body
    client.force_login(carol)
    body = client.get(reverse("tenancy:dashboard", kwargs={"organization_slug": "acme"})).content.decode()
    assert url("queue") in body
    assert url("catalogue") + "manage/" in body


def _make_references(org, count: int) -> None:
    industries = ["Logistics", "Retail", "Banking", "Health"]
    for n in range(count):
        reference = ReferenceFactory(
            organization=org,
            account=AccountFactory(organization=org, industry=industries[n % 4], region=["EMEA", "NA"][n % 2]),
        )
        grant(reference, "call", "quote")
        ReferenceLabelFactory(organization=org, reference=reference, kind="product", value=f"Product {n % 3}")
        if n % 5 == 0:
            reference.disclosure = "Incentive disclosed."
            with tenant_context(org):
                reference.save()


def _count_queries(client, address: str, params: dict[str, str] | None = None) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(address, params or {}).status_code == 200
    return len(queries)


@pytest.mark.parametrize("params", [{}, {"q": "month", "scope": "call", "region": "EMEA", "sort": "title"}])
def test_it_runs_a_constant_number_of_queries_on_the_catalogue(client, bob, carol, org_a, params):
    _make_references(org_a, 10)
    client.force_login(bob)
    # Some history, so the page's fatigue lookups have rows to read.
    with tenant_context(org_a):
        from references.models import Reference

        first = Reference.objects.first()
        usage_request = services.usage_request_create(
            organization=org_a, reference=first, scope="call", requested_by=bob, opportunity_name="Deal"
        )
        services.usage_request_approve(organization=org_a, usage_request=usage_request, actor=carol)
    _count_queries(client, url("catalogue"), params)  # warm the session and caches
    small = _count_queries(client, url("catalogue"), params)
    bulk_references(org_a, 490)  # 500 in all
    large = _count_queries(client, url("catalogue"), params)
    assert small == large
    # Measured (SQLite and PostgreSQL): session, user, membership, switcher, organization,
    # facets with the count (one query), page, usable scopes, settings and fatigue uses.
    assert large == 10


def test_it_respects_restrictions_in_the_catalogue_search_and_detail(client, org_a, alice, bob):
    from tests.factories.tenancy import MembershipFactory, UserFactory

    other_sales = MembershipFactory(organization=org_a, user=UserFactory(username="erin"), role="sales").user
    reference = ReferenceFactory(organization=org_a, title="Strategic account rollout")
    grant(reference, "call")
    with tenant_context(org_a):
        services.reference_restrict(organization=org_a, reference=reference, users=[bob], groups=[], actor=alice)
    detail = url("detail", reference_id=reference.pk)
    client.force_login(other_sales)
    assert "Strategic account rollout" not in client.get(url("catalogue")).content.decode()
    assert "Strategic account rollout" not in client.get(url("catalogue"), {"q": "strategic"}).content.decode()
    assert client.get(detail).status_code == 404
    client.force_login(bob)
    assert "Strategic account rollout" in client.get(url("catalogue"), {"q": "strategic"}).content.decode()
    assert client.get(detail).status_code == 200
