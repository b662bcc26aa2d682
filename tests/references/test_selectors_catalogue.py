"""The catalogue selectors: usability hiding, search, filters, sort, facets and page-wide fatigue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from references import selectors, services
from references.models import Contact, HoldKind, Publication, ReferenceLabel, UsageRequest
from references.selectors import CatalogueFilters
from refmgr.tenancy.context import tenant_context
from tests.factories.references import AccountFactory, ReferenceFactory, ReferenceLabelFactory, grant
from tests.fixtures.services import is_postgres


def catalogue(org, user, **kwargs):
    with tenant_context(org):
        return list(selectors.reference_catalogue(organization=org, user=user, **kwargs))


def titles(org, user, **kwargs):
    return [r.title for r in catalogue(org, user, **kwargs)]


@pytest.fixture
def library(org_a):
    """Three usable references with distinct accounts, labels and scopes."""
    logistics = AccountFactory(organization=org_a, name="Harbor Freight Lines", industry="Logistics", region="EMEA")
    bank = AccountFactory(
        organization=org_a, name="Copperleaf Bank", industry="Financial services", region="NA", size_band="5000+"
    )
    shipping = ReferenceFactory(
        organization=org_a,
        account=logistics,
        title="Fleet onboarding in six weeks",
        summary="Rolled out route planning to 400 drivers.",
    )
    ledger = ReferenceFactory(
        organization=org_a,
        account=bank,
        title="Month-end close automated",
        summary="Reconciliation of payments across twelve ledgers.",
    )
    retail = ReferenceFactory(
        organization=org_a,
        account=AccountFactory(organization=org_a, name="Tiller Retail", industry="Retail", region="EMEA"),
        title="Store analytics",
        summary="Daily dashboards for every store manager, replacing spreadsheets.",
    )
    grant(shipping, "call", "quote")
    grant(ledger, "logo")
    grant(retail, "call", "case_study")
    ReferenceLabelFactory(organization=org_a, reference=shipping, kind="product", value="Routes")
    ReferenceLabelFactory(organization=org_a, reference=shipping, kind="use_case", value="Onboarding")
    ReferenceLabelFactory(organization=org_a, reference=ledger, kind="product", value="Ledger")
    ReferenceLabelFactory(organization=org_a, reference=retail, kind="product", value="Ledger")
    ReferenceLabelFactory(organization=org_a, reference=retail, kind="use_case", value="Reporting")
    return {"shipping": shipping, "ledger": ledger, "retail": retail}


def test_it_lists_only_references_with_a_usable_scope(org_a, bob, library):
    no_grant = ReferenceFactory(organization=org_a, title="No consent yet")
    expired = ReferenceFactory(organization=org_a, title="Consent expired")
    grant(expired, "call", days=-1)
    retired = ReferenceFactory(organization=org_a, title="Retired one")
    grant(retired, "call")
    held = ReferenceFactory(organization=org_a, title="Under review")
    grant(held, "quote")
    with tenant_context(org_a):
        services.reference_retire(organization=org_a, reference=retired, actor=None)
        services.reference_hold_place(
            organization=org_a, reference=held, kind=HoldKind.REVIEW, source="review_flag:1", reason="incentive"
        )
    listed = titles(org_a, bob)
    assert sorted(listed) == sorted(r.title for r in library.values())
    for hidden in (no_grant, expired, retired, held):
        with tenant_context(org_a):
            assert selectors.reference_catalogue_get(organization=org_a, user=bob, reference_id=hidden.pk) is None


def test_it_never_lists_another_organizations_references(org_a, org_b, bob, library):
    other = ReferenceFactory(organization=org_b, title="Borealis story")
    grant(other, "call")
    assert "Borealis story" not in titles(org_a, bob)
    with tenant_context(org_a):
        assert selectors.reference_catalogue_get(organization=org_a, user=bob, reference_id=other.pk) is None


def test_it_refuses_to_read_outside_the_given_organization(org_a, org_b, bob):
    with tenant_context(org_b), pytest.raises(ValueError, match="does not match"):
        selectors.reference_catalogue(organization=org_a, user=bob)


def test_it_searches_titles_and_summaries(org_a, bob, library):
    assert titles(org_a, bob, query="onboarding") == ["Fleet onboarding in six weeks"]
    assert titles(org_a, bob, query="reconciliation payments") == ["Month-end close automated"]
    assert titles(org_a, bob, query="spreadsheets") == ["Store analytics"]
    assert titles(org_a, bob, query="nothing-like-this") == []


def test_it_ranks_a_title_match_above_a_summary_match(org_a, bob, library):
    title_hit = ReferenceFactory(organization=org_a, title="Dashboards for plant managers", summary="Plants.")
    grant(title_hit, "quote")
    found = titles(org_a, bob, query="dashboards", sort="relevance")
    assert set(found) == {"Dashboards for plant managers", "Store analytics"}
    if is_postgres():
        # Title words weigh A, summary words B: the title match ranks first.
        assert found[0] == "Dashboards for plant managers"


@pytest.mark.postgres
def test_it_searches_with_websearch_syntax_and_stemming_on_postgres(org_a, bob, library):
    assert titles(org_a, bob, query="automating") == ["Month-end close automated"]
    assert titles(org_a, bob, query='"route planning"') == ["Fleet onboarding in six weeks"]
    assert titles(org_a, bob, query="store -spreadsheets") == []


def _search_plan(org, *, as_owner: bool) -> str:
    from django.conf import settings
    from django.contrib.postgres.search import SearchQuery

    from references.models import Reference

    # The catalogue's match alone (its organization filter would win the plan on a tiny table).
    search = SearchQuery("onboarding", search_type="websearch", config="english")
    with tenant_context(org):
        sql, params = (
            Reference.all_tenants.filter(search_document=search).order_by().values("pk").query.sql_with_params()
        )
        with connection.cursor() as cursor:
            # Few rows here: without this the planner rightly prefers a sequential scan.
            cursor.execute("SET LOCAL enable_seqscan = off")
            if as_owner:
                cursor.execute("RESET ROLE")
            try:
                cursor.execute(f"EXPLAIN {sql}", params)
                return "\n".join(row[0] for row in cursor.fetchall())
            finally:
                cursor.execute(f"SET ROLE {settings.DATABASE_APP_ROLE}")


@pytest.mark.postgres
def test_it_searches_the_stored_document_through_its_gin_index(org_a):
    assert "references_reference_document" in _search_plan(org_a, as_owner=True)


@pytest.mark.postgres
def test_it_uses_the_gin_index_as_the_application_role(org_a):
    # Under row-level security only a LEAKPROOF match may be an index condition; migration
    # 0006 marks ts_match_vq so (the test database is migrated by a superuser, as CI's is).
    assert "references_reference_document" in _search_plan(org_a, as_owner=False)


@pytest.mark.postgres
def test_it_keeps_the_search_document_current(org_a, bob, library):
    from references.models import Account, ReferenceLabel

    with tenant_context(org_a):
        reference = library["ledger"]
        ReferenceLabel.objects.create(organization=org_a, reference=reference, kind="tag", value="Kangaroo")
        assert titles(org_a, bob, query="kangaroo") == [reference.title]
        ReferenceLabel.objects.filter(reference=reference, value="Kangaroo").delete()
        Account.objects.filter(pk=reference.account_id).update(name="Wombat Holdings")
    assert titles(org_a, bob, query="kangaroo") == []
    assert titles(org_a, bob, query="wombat") == [reference.title]


def test_it_finds_references_by_account_name_and_label(org_a, bob, library):
    assert titles(org_a, bob, query="copperleaf") == ["Month-end close automated"]
    assert sorted(titles(org_a, bob, query="ledger")) == ["Month-end close automated", "Store analytics"]


def test_it_does_not_find_anonymised_references_by_account_name(org_a, bob, library):
    library["ledger"].publication = Publication.ANONYMISED
    with tenant_context(org_a):
        library["ledger"].save()
    assert titles(org_a, bob, query="copperleaf") == []


def test_it_filters_by_every_facet(org_a, bob, library):
    assert titles(org_a, bob, filters=CatalogueFilters(industry="Logistics")) == ["Fleet onboarding in six weeks"]
    assert sorted(titles(org_a, bob, filters=CatalogueFilters(region="EMEA"))) == [
        "Fleet onboarding in six weeks",
        "Store analytics",
    ]
    assert titles(org_a, bob, filters=CatalogueFilters(size_band="5000+")) == ["Month-end close automated"]
    assert sorted(titles(org_a, bob, filters=CatalogueFilters(product="Ledger"))) == [
        "Month-end close automated",
        "Store analytics",
    ]
    assert titles(org_a, bob, filters=CatalogueFilters(use_case="Reporting")) == ["Store analytics"]
    assert sorted(titles(org_a, bob, filters=CatalogueFilters(scope="call"))) == [
        "Fleet onboarding in six weeks",
        "Store analytics",
    ]
    assert titles(org_a, bob, filters=CatalogueFilters(product="Ledger", region="EMEA")) == ["Store analytics"]


def test_it_filters_by_scope_only_while_that_scope_is_usable(org_a, bob, library):
    with tenant_context(org_a):
        services.reference_scope_withdraw(
            organization=org_a, reference=library["retail"], scope="call", source="consent:1"
        )
    assert titles(org_a, bob, filters=CatalogueFilters(scope="call")) == ["Fleet onboarding in six weeks"]
    # Still listed: its case study is usable.
    assert "Store analytics" in titles(org_a, bob)


def test_it_sorts_by_title_account_and_newest(org_a, bob, library):
    assert titles(org_a, bob, sort="title") == [
        "Fleet onboarding in six weeks",
        "Month-end close automated",
        "Store analytics",
    ]
    assert titles(org_a, bob, sort="account") == [
        "Month-end close automated",
        "Fleet onboarding in six weeks",
        "Store analytics",
    ]
    assert titles(org_a, bob, sort="newest")[0] == "Store analytics"
    # An unknown sort, or relevance without a query, is newest.
    assert titles(org_a, bob, sort="bogus") == titles(org_a, bob, sort="newest")
    assert titles(org_a, bob, sort="relevance") == titles(org_a, bob, sort="newest")


def test_it_counts_facets_over_the_other_filters(org_a, bob, library):
    with tenant_context(org_a):
        facets = selectors.reference_catalogue_facets(
            organization=org_a, user=bob, filters=CatalogueFilters(region="EMEA")
        )
    # Narrowed by the region filter...
    assert dict(facets["industry"]) == {"Logistics": 1, "Retail": 1}
    assert dict(facets["product"]) == {"Routes": 1, "Ledger": 1}
    assert dict(facets["use_case"]) == {"Onboarding": 1, "Reporting": 1}
    assert facets["scope"] == [("call", 2), ("quote", 1), ("case_study", 1)]
    # ...but not by itself, so the other regions stay selectable.
    assert dict(facets["region"]) == {"EMEA": 2, "NA": 1}
    assert dict(facets["size_band"]) == {"250-999": 2}


def test_it_counts_facets_over_the_search(org_a, bob, library):
    with tenant_context(org_a):
        facets = selectors.reference_catalogue_facets(organization=org_a, user=bob, query="onboarding")
    assert dict(facets["industry"]) == {"Logistics": 1}
    assert facets["scope"] == [("call", 1), ("quote", 1)]


def test_it_counts_every_facet_in_one_query(org_a, bob, library, django_assert_num_queries):
    with tenant_context(org_a), django_assert_num_queries(1):
        selectors.reference_catalogue_facets(organization=org_a, user=bob, filters=CatalogueFilters(scope="call"))


def _approve_call(org, reference, bob, carol, days_ago):
    usage_request = services.usage_request_create(
        organization=org, reference=reference, scope="call", requested_by=bob, opportunity_name=f"deal {days_ago}"
    )
    services.usage_request_approve(organization=org, usage_request=usage_request, actor=carol)
    UsageRequest.objects.filter(pk=usage_request.pk).update(decided_at=timezone.now() - timedelta(days=days_ago))


@pytest.mark.parametrize(
    ("days_ago", "cap", "cooldown"),
    [
        ((), None, None),
        ((5,), None, None),
        ((80, 50, 20), None, None),
        ((30,), None, 40),
        ((10,), 0, None),
        ((91, 3), 1, 0),
    ],
)
def test_it_computes_page_fatigue_like_contact_fatigue(org_a, bob, carol, days_ago, cap, cooldown):
    reference = ReferenceFactory(organization=org_a)
    grant(reference, "call")
    with tenant_context(org_a):
        for days in days_ago:
            _approve_call(org_a, reference, bob, carol, days)
        Contact.objects.filter(pk=reference.advocate_id).update(usage_cap=cap, cooldown_days=cooldown)
        contact = Contact.objects.get(pk=reference.advocate_id)
        now = timezone.now()
        single = selectors.contact_fatigue(organization=org_a, contact=contact, scope="call", now=now)
        many = selectors.contacts_fatigue(organization=org_a, contacts=[contact], now=now)
    assert many[contact.pk] == single


def test_it_computes_page_fatigue_in_two_queries(org_a, bob, carol, django_assert_num_queries):
    references = [ReferenceFactory(organization=org_a) for _ in range(5)]
    for reference in references:
        grant(reference, "call")
    with tenant_context(org_a):
        _approve_call(org_a, references[0], bob, carol, 3)
        contacts = list(Contact.objects.all())
        with django_assert_num_queries(2):
            verdicts = selectors.contacts_fatigue(organization=org_a, contacts=contacts)
    assert not verdicts[references[0].advocate_id].allowed
    assert verdicts[references[1].advocate_id].allowed


def test_it_keeps_labels_out_of_other_organizations_facets(org_a, org_b, bob, library):
    other = ReferenceFactory(organization=org_b)
    grant(other, "call")
    ReferenceLabelFactory(organization=org_b, reference=other, kind="product", value="Secret product")
    with tenant_context(org_a):
        facets = selectors.reference_catalogue_facets(organization=org_a, user=bob)
        assert ReferenceLabel.objects.filter(value="Secret product").count() == 0
    assert "Secret product" not in dict(facets["product"])


@pytest.mark.postgres
def test_the_organization_lexeme_only_narrows_the_search(org_a, org_b, bob, library):
    from tests.factories.references import ReferenceFactory, grant

    # Another organization's summary naming org A's lexeme is still not org A's reference.
    intruder = ReferenceFactory(organization=org_b, title="Intruder", summary=f"org{org_a.pk} onboarding")
    grant(intruder, "quote")
    assert "Intruder" not in titles(org_a, bob, query="onboarding")
    assert titles(org_a, bob, query="onboarding") == ["Fleet onboarding in six weeks"]
