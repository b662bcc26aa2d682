"""Keyset pages of the catalogue and the references API: every row once, both ways, capped counts, bad cursors."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from refmgr.common import pagination
from refmgr.common.pagination import cursor_decode, cursor_encode
from refmgr.tenancy.context import tenant_context
from tests.factories.references import bulk_references
from tests.fixtures.services import analyze

REFERENCES = "/api/v1/references/"
CATALOGUE = reverse("references:catalogue", kwargs={"organization_slug": "acme"})
NEXT = re.compile(r'href="\?([^"]*)" rel="next"')
PREVIOUS = re.compile(r'href="\?([^"]*)" rel="prev"')
TITLE = re.compile(r'class="ref-card__title"[^>]*>\s*<a[^>]*>([^<]+)</a>')


@pytest.fixture
def clients(api_client_for, bob_membership):
    return {"bob": api_client_for(bob_membership)}


@pytest.fixture
def many(org_a):
    references = bulk_references(org_a, 45)
    analyze("references_reference", "references_referencescopegrant", "references_referencelabel")
    return references


def _titles(body: str) -> list[str]:
    return [title.strip() for title in TITLE.findall(body)]


def _unescape(query: str) -> str:
    return query.replace("&amp;", "&")


@pytest.mark.parametrize("page_ids", [1000, 10], ids=["page by the facet query's ids", "page by the full query"])
@pytest.mark.parametrize("search", ["", "q=month-end&"])
def test_the_catalogue_walks_every_reference_once_forward_and_back(client, bob, many, search, page_ids, monkeypatch):
    # With a search the order is by relevance, and every reference here ties on its rank:
    # the cursor's rank must compare equal to the database's, or pages repeat (PostgreSQL).
    # Up to PAGE_IDS matches the page is read by the ids the facet query found; above, by the full query.
    monkeypatch.setattr("references.selectors.PAGE_IDS", page_ids)
    client.force_login(bob)
    pages, query = [], search
    for _ in range(10):  # bounded: a cursor that leads back to page 1 must fail, not loop
        body = client.get(f"{CATALOGUE}?{query}").content.decode()
        pages.append(_titles(body))
        following = NEXT.search(body)
        if following is None:
            break
        query = _unescape(following.group(1))
    seen = [title for page in pages for title in page]
    assert [len(page) for page in pages] == [20, 20, 5]
    assert sorted(seen) == sorted(reference.title for reference in many)
    assert "41\u201345 of 45" in body
    # Back from the last page gives the second page again, then the plain first page.
    back = _unescape(PREVIOUS.search(body).group(1))
    second = client.get(f"{CATALOGUE}?{back}").content.decode()
    assert _titles(second) == pages[1]
    first = _unescape(PREVIOUS.search(second).group(1))
    assert "cursor" not in first
    assert _titles(client.get(f"{CATALOGUE}?{first}").content.decode()) == pages[0]


@pytest.mark.parametrize("cursor", ["garbage", "e30", "eyJ2IjpbMV0sImYiOnRydWUsIm4iOjJ9", "%00", "x" * 3000])
def test_a_malformed_or_foreign_cursor_shows_the_first_page(client, bob, many, cursor):
    client.force_login(bob)
    first = _titles(client.get(CATALOGUE).content.decode())
    response = client.get(CATALOGUE, {"cursor": cursor})
    assert response.status_code == 200
    assert _titles(response.content.decode()) == first


def test_the_count_stops_at_the_cap_and_says_so(client, bob, many, monkeypatch):
    monkeypatch.setattr(pagination, "COUNT_CAP", 30)
    monkeypatch.setattr("references.selectors.FACET_SAMPLE", 10)
    client.force_login(bob)
    body = client.get(CATALOGUE).content.decode()
    assert "More than 30 references" in body
    assert "1\u201320 of more than 30" in body
    # Past its sample the facets list their values but no numbers.
    assert "show no counts" in body
    assert re.search(r"<option value=\"Logistics\">Logistics</option>", body)


def test_the_api_pages_by_cursor_with_a_capped_count(clients, many, monkeypatch):
    client = clients["bob"]
    first = client.get(REFERENCES, {"page_size": 20}).json()
    assert (first["count"], first["count_capped"], first["previous"]) == (45, False, None)
    ids = [row["id"] for row in first["results"]]
    following = first["next"]
    while following:
        page = client.get(following).json()
        ids += [row["id"] for row in page["results"]]
        following = page["next"]
    assert sorted(ids) == sorted(reference.pk for reference in many)
    assert len(ids) == len(set(ids))
    monkeypatch.setattr(pagination, "COUNT_CAP", 30)
    capped = client.get(REFERENCES).json()
    assert (capped["count"], capped["count_capped"]) == (30, True)


@pytest.mark.parametrize("search", [{}, {"search": "month-end"}], ids=["newest first", "best match first"])
def test_the_api_counts_every_page_the_same_forward_and_back(clients, many, search, monkeypatch):
    # Ordered by a search's rank, the page's own statement counts (a window over every match);
    # a forward cursor adds the pages before it, a backward one counts apart.
    client = clients["bob"]
    pages = [client.get(REFERENCES, {"page_size": 20, **search}).json()]
    while pages[-1]["next"]:
        pages.append(client.get(pages[-1]["next"]).json())
    back = client.get(pages[-1]["previous"]).json()
    assert [(page["count"], page["count_capped"]) for page in [*pages, back]] == [(45, False)] * 4
    assert back["results"] == pages[1]["results"]
    monkeypatch.setattr(pagination, "COUNT_CAP", 30)
    capped = [client.get(REFERENCES, {"page_size": 20, **search}).json()]
    capped.append(client.get(capped[0]["next"]).json())
    assert [(page["count"], page["count_capped"]) for page in capped] == [(30, True)] * 2


def test_a_page_counted_in_its_own_statement_matches_the_capped_count(org_a, many):
    from references.models import Reference

    with tenant_context(org_a):
        ordering = ["-created_at", "-id"]
        counted = pagination.keyset_page(Reference.objects.all(), ordering=ordering, per_page=20, cursor=None)
        windowed = pagination.keyset_page(
            Reference.objects.all(), ordering=ordering, per_page=20, cursor=None, count_in_page=True
        )
        deeper = pagination.keyset_page(
            Reference.objects.all(),
            ordering=ordering,
            per_page=20,
            cursor=windowed.next_cursor,
            count_in_page=True,
        )
        empty = pagination.keyset_page(
            Reference.objects.none(), ordering=ordering, per_page=20, cursor=None, count_in_page=True
        )
    assert (counted.count, windowed.count, deeper.count, empty.count) == (45, 45, 45, 0)
    assert [r.pk for r in counted.object_list] == [r.pk for r in windowed.object_list]


@pytest.mark.parametrize(
    ("params", "field"), [({"page": "2"}, "page"), ({"page_size": "0"}, "page_size"), ({"page_size": "x"}, "page_size")]
)
def test_the_api_answers_page_numbers_and_bad_sizes_with_a_400(clients, many, params, field):
    response = clients["bob"].get(REFERENCES, params)
    assert response.status_code == 400
    assert field in response.json()


def test_the_api_keeps_a_requested_order_across_pages(clients, many):
    client = clients["bob"]
    titles, following = [], f"{REFERENCES}?ordering=title&page_size=10"
    while following:
        page = client.get(following).json()
        titles += [row["title"] for row in page["results"]]
        following = page["next"]
    assert titles == sorted(titles)
    assert len(titles) == 45


def test_a_cursor_round_trips_its_values():
    from datetime import UTC, datetime

    moment = datetime(2026, 11, 24, 8, 0, 0, 123456, tzinfo=UTC)
    decoded = cursor_decode(cursor_encode([0.25, moment, "Zoë", 7], forward=False, number=3), fields=4)
    assert decoded is not None
    assert (decoded.values, decoded.forward, decoded.number) == ([0.25, moment, "Zoë", 7], False, 3)
    # A cursor made for another sort (another number of fields) is refused.
    assert cursor_decode(cursor_encode([1, 2], forward=True, number=2), fields=3) is None


def test_cursors_never_cross_organizations(clients, org_a, org_b, many):
    from tests.factories.references import bulk_references as more

    more(org_b, 5)
    with tenant_context(org_a):
        page = clients["bob"].get(REFERENCES, {"page_size": 20}).json()
    assert {row["id"] for row in page["results"]} <= {reference.pk for reference in many}
