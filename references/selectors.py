"""Reads of the references app that pages and the API share."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Exists, F, FloatField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Cast
from django.db.models.lookups import IsNull
from django.utils import timezone

from refmgr.common.pagination import KeysetPage, keyset_page
from refmgr.tenancy.context import assert_current_organization as _assert_current
from refmgr.tenancy.context import get_current_organization
from refmgr.tenancy.models import Organization

from .models import (
    FATIGUE_SCOPES,
    Contact,
    Reference,
    ReferenceHold,
    ReferenceScopeGrant,
    ReferenceSettings,
    ReferenceStatus,
    Scope,
    UsageRequest,
    UsageStatus,
)


def reference_settings_get(*, organization: Organization) -> ReferenceSettings:
    """The organization's usage limits; the defaults until an admin changes them."""
    _assert_current(organization)
    found = ReferenceSettings.objects.first()
    return found if found is not None else ReferenceSettings(organization=organization)


# --- Usability: the one place that decides ---------------------------------------


def _open_holds() -> QuerySet[ReferenceHold]:
    return ReferenceHold.objects.filter(reference=OuterRef("pk"), released_at=None)


def usable_scope_grants(*, now: datetime | None = None) -> QuerySet[ReferenceScopeGrant]:
    """Grants that make a scope usable now: current, on an active reference with no open hold."""
    now = now or timezone.now()
    return ReferenceScopeGrant.objects.filter(
        granted_until__gt=now,
        reference__status=ReferenceStatus.ACTIVE,
    ).filter(~Exists(ReferenceHold.objects.filter(reference=OuterRef("reference_id"), released_at=None)))


def reference_usable_scopes(
    *, organization: Organization, reference_ids: Iterable[int] | None = None, now: datetime | None = None
) -> dict[int, set[str]]:
    """For each reference, the scopes that may be used now (one query).

    A scope is usable when the customer's grant for it is current (consent),
    the reference is active (not retired), and no hold is open on it
    (incentive review, complaint). References without a usable scope are absent.
    """
    _assert_current(organization)
    grants = usable_scope_grants(now=now)
    if reference_ids is not None:
        grants = grants.filter(reference_id__in=list(reference_ids))
    usable: dict[int, set[str]] = defaultdict(set)
    for reference_id, scope in grants.values_list("reference_id", "scope"):
        usable[reference_id].add(scope)
    return dict(usable)


def exists_per_row(rows: QuerySet[Any]) -> Q:
    """Whether ``rows`` (correlated with ``OuterRef``) holds at least one row, checked row by row.

    The same answer as ``Exists(rows)``, written as a scalar subquery (LIMIT 1, IS NOT NULL):
    PostgreSQL turns EXISTS into a semi-join, and under row-level security its row estimates
    are ~10x low, so it hashed all 60,000 current grants of the largest benchmark organization
    before reading a page (1 s), and started the API's search from all its 220,000 labels. A
    scalar subquery stays a per-row check, so a page walks its sort index and stops after 20
    matches, and a search checks only the references it found.
    """
    return Q(IsNull(Subquery(rows.order_by().values("pk")[:1]), False))


def reference_usable_filter(*, now: datetime | None = None, scope: str | None = None) -> Q:
    """A filter for ``Reference`` querysets: at least one usable scope (or ``scope`` usable)."""
    now = now or timezone.now()
    grants = ReferenceScopeGrant.objects.filter(reference=OuterRef("pk"), granted_until__gt=now)
    if scope:
        grants = grants.filter(scope=scope)
    return Q(status=ReferenceStatus.ACTIVE) & exists_per_row(grants) & ~Q(Exists(_open_holds()))


# --- Fatigue ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FatigueVerdict:
    """Whether the person behind a reference may be asked for a use now, and if not, from when."""

    allowed: bool
    available_from: datetime | None = None
    reason: str = ""


def contact_fatigue(
    *,
    organization: Organization,
    contact: Contact | None,
    scope: str,
    now: datetime | None = None,
    exclude_request_id: int | None = None,
) -> FatigueVerdict:
    """Apply the caps and the rest period to ``contact`` for one more use of ``scope``.

    Counts approved and completed uses of scopes that take the person's time
    (calls, site visits, videos) inside the window, across all references the
    person speaks for. ``exclude_request_id`` leaves out the request being
    approved, so approval re-checks exactly what the request will add.
    """
    _assert_current(organization)
    if contact is None or scope not in FATIGUE_SCOPES:
        return FatigueVerdict(allowed=True)
    now = now or timezone.now()
    limits = reference_settings_get(organization=organization)
    cap = contact.usage_cap if contact.usage_cap is not None else limits.usage_cap
    rest = timedelta(days=contact.cooldown_days if contact.cooldown_days is not None else limits.cooldown_days)
    window = timedelta(days=limits.usage_window_days)
    uses = UsageRequest.objects.filter(
        reference__advocate=contact,
        scope__in=FATIGUE_SCOPES,
        status__in=(UsageStatus.APPROVED, UsageStatus.COMPLETED),
        decided_at__gt=now - window,
    )
    if exclude_request_id is not None:
        uses = uses.exclude(pk=exclude_request_id)
    return _fatigue_from_times(
        contact=contact,
        times=list(uses.values_list("decided_at", flat=True)),
        cap=cap,
        window_days=window.days,
        rest_days=rest.days,
        now=now,
    )


def scope_is_usable(*, organization: Organization, reference: Reference, scope: str) -> bool:
    return scope in reference_usable_scopes(organization=organization, reference_ids=[reference.pk]).get(
        reference.pk, set()
    )


__all__ = [
    "FatigueVerdict",
    "Scope",
    "contact_fatigue",
    "reference_settings_get",
    "reference_usable_filter",
    "reference_usable_scopes",
    "scope_is_usable",
    "usable_scope_grants",
]


# --- Catalogue: what salespeople browse (appended for the catalogue pages) ---------------

CATALOGUE_SORTS = ("relevance", "newest", "title", "account")
CATALOGUE_FILTERS = ("industry", "product", "region", "size_band", "use_case", "scope")


@dataclass(frozen=True)
class CatalogueFilters:
    """The catalogue's filters; an empty string means "any"."""

    industry: str = ""
    product: str = ""
    region: str = ""
    size_band: str = ""
    use_case: str = ""
    scope: str = ""

    def without(self, name: str) -> CatalogueFilters:
        """The same filters with ``name`` cleared (a facet counts over the others)."""
        return CatalogueFilters(**{field: "" if field == name else getattr(self, field) for field in CATALOGUE_FILTERS})


def _is_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


def reference_search(references: QuerySet[Reference], query: str) -> QuerySet[Reference]:
    """``references`` narrowed to those matching the words of ``query`` (the catalogue's and the API's search).

    On PostgreSQL it is the full-text match of the stored search document (annotated
    ``rank`` for sorting); on SQLite (development) every word must appear somewhere.
    """
    from .models import Publication, ReferenceLabel

    def named_by(term: str) -> Q:
        # A label (product, use case, tag) or the account's name, but not for anonymised
        # references: the name is exactly what they hide.
        labels = ReferenceLabel.objects.filter(reference=OuterRef("pk"), value__icontains=term)
        return Q(Exists(labels)) | (Q(account__name__icontains=term) & ~Q(publication=Publication.ANONYMISED))

    terms = query.split()[:10]
    if _is_postgres():
        from django.contrib.postgres.search import SearchQuery

        # One stored document per reference (title, summary, labels, and the account's name unless
        # anonymised; migration 0006), matched through its GIN index even under row-level security.
        # The organization's own lexeme (migration 0011) lets the GIN scan skip other organizations.
        organization = SearchQuery(f"org{get_current_organization().pk}", search_type="raw", config="simple")
        return references.filter(search_document=_search_words(query) & organization).annotate(rank=_search_rank(query))
    # SQLite (development): every word must appear in the title, the summary, a label or the account's name.
    for term in terms:
        references = references.filter(Q(title__icontains=term) | Q(summary__icontains=term) | named_by(term))
    return references


def _search_words(query: str) -> Any:
    """``query`` as the catalogue reads it (PostgreSQL): web-search syntax, English stemming."""
    from django.contrib.postgres.search import SearchQuery

    return SearchQuery(query, search_type="websearch", config="english")


def _search_rank(query: str) -> Cast:
    """How well each reference matches ``query`` (PostgreSQL), for the relevance order."""
    from django.contrib.postgres.search import SearchRank

    # ts_rank returns real (float4); as double precision the value read back into a keyset
    # cursor compares equal to itself, so rows tied on rank are neither lost nor repeated.
    return Cast(SearchRank(F("search_document"), _search_words(query)), output_field=FloatField())


def _catalogue_filter(references: QuerySet[Reference], filters: CatalogueFilters) -> QuerySet[Reference]:
    from .models import LabelKind, ReferenceLabel

    if filters.industry:
        references = references.filter(account__industry=filters.industry)
    if filters.region:
        references = references.filter(account__region=filters.region)
    if filters.size_band:
        references = references.filter(account__size_band=filters.size_band)
    for kind, value in ((LabelKind.PRODUCT, filters.product), (LabelKind.USE_CASE, filters.use_case)):
        if value:
            labels = ReferenceLabel.objects.filter(reference=OuterRef("pk"), kind=kind, value=value)
            references = references.filter(exists_per_row(labels))
    if filters.scope:
        # The catalogue is already usable (active, no open hold): the chosen scope's grant must be current.
        grants = ReferenceScopeGrant.objects.filter(reference=OuterRef("pk"), scope=filters.scope)
        references = references.filter(Exists(grants.filter(granted_until__gt=timezone.now())))
    return references


def _catalogue_base(*, user: Any, query: str, filters: CatalogueFilters) -> QuerySet[Reference]:
    from .restrictions import restriction_filter

    references = Reference.objects.filter(reference_usable_filter()).filter(restriction_filter(user=user))
    if query:
        references = reference_search(references, query)
    return _catalogue_filter(references, filters)


def reference_catalogue(
    *,
    organization: Organization,
    user: Any,
    query: str = "",
    filters: CatalogueFilters | None = None,
    sort: str = "",
) -> QuerySet[Reference]:
    """The references ``user`` may browse: usable now, not restricted away, matching search and filters.

    Every role sees only references with at least one usable scope here (the
    manage pages list the rest). ``sort`` is one of :data:`CATALOGUE_SORTS`;
    relevance (the default while searching) needs a query, else newest.
    """
    _assert_current(organization)
    query = query.strip()
    references = _catalogue_base(user=user, query=query, filters=filters or CatalogueFilters())
    references = references.select_related("account", "advocate")
    return references.order_by(*catalogue_ordering(sort=sort, query=query))


def catalogue_sort(*, sort: str, query: str) -> str:
    """The sort that applies: ``sort`` when valid, else relevance while searching, else newest."""
    if sort not in CATALOGUE_SORTS or (sort == "relevance" and not query.strip()):
        return "relevance" if query.strip() else "newest"
    return sort


def catalogue_ordering(*, sort: str, query: str) -> list[str]:
    """The catalogue's total order for ``sort`` (it ends with ``id``, so keyset pages can follow it)."""
    sort = catalogue_sort(sort=sort, query=query)
    if sort == "relevance":
        # On SQLite there is no rank: the newest first among the matches.
        return ["-rank", "-updated_at", "-id"] if _is_postgres() else ["-updated_at", "-id"]
    return {
        "newest": ["-created_at", "-id"],
        "title": ["title", "id"],
        "account": ["account__name", "title", "id"],
    }[sort]


def reference_catalogue_get(*, organization: Organization, user: Any, reference_id: int) -> Reference | None:
    """One reference of ``user``'s catalogue, or None (unusable, restricted or another organization's)."""
    return reference_catalogue(organization=organization, user=user).filter(pk=reference_id).first()


@dataclass(frozen=True)
class CatalogueFacets:
    """The catalogue's facet counts and the size of the filtered list, from one query.

    ``values[name]`` lists ``(value, count)`` for each filter. When more than
    :data:`FACET_SAMPLE` references match the search alone, the counts are taken
    over the first of them only: ``capped`` is then True, the page shows the values
    without numbers and ``total`` is None (the list counts itself, up to 10,000).
    """

    values: dict[str, list[tuple[str, int]]]
    total: int | None
    capped: bool
    # The references passing every filter, when they are all known and at most PAGE_IDS of them
    # (the page is then read by primary key, not by searching again); None otherwise.
    ids: list[int] | None = None

    def __getitem__(self, name: str) -> list[tuple[str, int]]:
        return self.values[name]


# Exact facet counts up to this many matches of the search; above it, values without counts.
# Counting costs about 30 µs a matching reference on PostgreSQL (labels and grants joined),
# so this bounds the facet query near 60 ms in the largest benchmark organization (issue 6).
FACET_SAMPLE = 2_000
# Up to this many references passing every filter, the facet query also names them, and the page is
# read by primary key: the search, the usability and the restriction checks then run once a request,
# not twice (they were half the SQL of the largest benchmark organization's page, issue 6). Above it,
# the page query walks its sort index and stops after a page, which is cheaper than sorting the ids.
PAGE_IDS = 1_000

_ACCOUNT_FACETS = {"industry": "account__industry", "region": "account__region", "size_band": "account__size_band"}


def _facet_flags(filters: CatalogueFilters, now: datetime) -> dict[str, Any]:
    """For each filter that is set, an expression saying whether a reference passes it."""
    from django.db.models import BooleanField, ExpressionWrapper

    from .models import LabelKind, ReferenceLabel

    flags: dict[str, Any] = {}
    for name, column in _ACCOUNT_FACETS.items():
        if getattr(filters, name):
            flags[name] = ExpressionWrapper(Q(**{column: getattr(filters, name)}), output_field=BooleanField())
    for name, kind in (("product", LabelKind.PRODUCT), ("use_case", LabelKind.USE_CASE)):
        if getattr(filters, name):
            labels = ReferenceLabel.objects.filter(reference=OuterRef("pk"), kind=kind, value=getattr(filters, name))
            flags[name] = Exists(labels)
    if filters.scope:
        # The list is already usable (active, no open hold): the chosen scope's grant must be current.
        grants = ReferenceScopeGrant.objects.filter(
            reference=OuterRef("pk"), scope=filters.scope, granted_until__gt=now
        )
        flags["scope"] = Exists(grants)
    return flags


def reference_catalogue_facets(
    *, organization: Organization, user: Any, query: str = "", filters: CatalogueFilters | None = None
) -> CatalogueFacets:
    """For each filter, its values and how many catalogue references have each, in one query.

    A facet counts over the set narrowed by the search and by every *other*
    filter, so the chosen value's alternatives stay visible and selectable. The
    references matching the search are read once (a materialised CTE, at most
    ``FACET_SAMPLE + 1`` of them) with a flag per filter that is set; each facet
    is a GROUP BY over them, and one more row counts those passing every filter.
    """
    from django.db import connection

    from .models import LabelKind

    _assert_current(organization)
    filters = filters or CatalogueFilters()
    now = timezone.now()
    flags = _facet_flags(filters, now)
    base = (
        _catalogue_base(user=user, query=query.strip(), filters=CatalogueFilters())
        .order_by()
        .annotate(f_id=F("pk"), **{f"f_{name}_value": F(column) for name, column in _ACCOUNT_FACETS.items()})
        .annotate(**{f"f_{name}": flag for name, flag in flags.items()})
        .values("f_id", *(f"f_{name}_value" for name in _ACCOUNT_FACETS), *(f"f_{name}" for name in flags))
    )
    base_sql, base_params = base[: FACET_SAMPLE + 1].query.sql_with_params()

    def passing(*, except_: str = "") -> str:
        conditions = [f"m.f_{name}" for name in flags if name != except_]
        return " AND ".join(conditions) if conditions else "TRUE"

    # Only fixed names are interpolated (filters and facets from this module); values are parameters.
    parts = [f"SELECT '' AS facet, NULL AS value, COUNT(*) AS n FROM m WHERE {passing()}"]  # noqa: S608
    params: list[Any] = []
    for name in _ACCOUNT_FACETS:
        parts.append(f"SELECT '{name}', m.f_{name}_value, COUNT(*) FROM m WHERE {passing(except_=name)} GROUP BY 2")  # noqa: S608
    for name, kind in (("product", LabelKind.PRODUCT), ("use_case", LabelKind.USE_CASE)):
        parts.append(
            f"SELECT '{name}', l.value, COUNT(DISTINCT m.f_id) FROM m JOIN references_referencelabel l "  # noqa: S608
            f"ON l.reference_id = m.f_id AND l.organization_id = %s AND l.kind = %s "
            f"WHERE {passing(except_=name)} GROUP BY 2"
        )
        params += [organization.pk, kind]
    parts.append(
        "SELECT 'scope', g.scope, COUNT(DISTINCT m.f_id) FROM m JOIN references_referencescopegrant g "  # noqa: S608
        "ON g.reference_id = m.f_id AND g.organization_id = %s AND g.granted_until > %s "
        f"WHERE {passing(except_='scope')} GROUP BY 2"
    )
    params += [organization.pk, connection.ops.adapt_datetimefield_value(now)]
    # The list itself, one row an id (in the count column), when it is short enough to page by id.
    parts.append(f"SELECT * FROM (SELECT 'id', NULL, m.f_id FROM m WHERE {passing()} LIMIT {PAGE_IDS + 1}) AS ids")  # noqa: S608
    materialized = "MATERIALIZED " if connection.vendor == "postgresql" else ""
    sql = (
        f"WITH m AS {materialized}({base_sql}), sample AS (SELECT COUNT(*) AS n FROM m) "  # noqa: S608
        f"SELECT facet, value, n, (SELECT n FROM sample) FROM ({' UNION ALL '.join(parts)}) AS f"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*base_params, *params])
        rows = cursor.fetchall()

    sampled = rows[0][3] if rows else 0
    capped = sampled > FACET_SAMPLE
    counts: dict[str, list[tuple[str, int]]] = {name: [] for name in CATALOGUE_FILTERS}
    total = 0
    ids: list[int] = []
    for facet, value, n, _sampled in rows:
        if facet == "id":
            ids.append(n)
        elif facet == "":
            total = n
        elif value:
            counts[facet].append((value, n))
    for name in CATALOGUE_FILTERS:
        counts[name].sort(key=lambda row: (-row[1], row[0]))
    # Scopes in their natural order (call, quote, ...), not by count.
    order = {value: index for index, value in enumerate(Scope.values)}
    counts["scope"].sort(key=lambda row: order.get(row[0], len(order)))
    known = not capped and len(ids) <= PAGE_IDS
    return CatalogueFacets(
        values=counts, total=None if capped else total, capped=capped, ids=sorted(ids) if known else None
    )


def reference_catalogue_page(
    *,
    organization: Organization,
    user: Any,
    query: str = "",
    filters: CatalogueFilters | None = None,
    sort: str = "",
    cursor: str | None = None,
    per_page: int,
) -> tuple[CatalogueFacets, KeysetPage]:
    """The catalogue as a salesperson sees it: the facet counts and one keyset page, in two queries.

    The facet query reads the matching references once; when it could name all of those passing
    every filter (:data:`PAGE_IDS`), the page is read by their primary keys (and ranked again,
    for the relevance order, over those rows only). Otherwise the page is the full catalogue
    query, counted up to 10,000 when the facet sample did not count it.
    """
    filters = filters or CatalogueFilters()
    query = query.strip()
    facets = reference_catalogue_facets(organization=organization, user=user, query=query, filters=filters)
    ordering = catalogue_ordering(sort=sort, query=query)
    if facets.ids is not None:
        # The same request's facet query applied every rule (usable now, not restricted away,
        # search and filters): these rows are exactly the list.
        references = Reference.objects.filter(pk__in=facets.ids)
        if query and _is_postgres():
            references = references.annotate(rank=_search_rank(query))
        references = references.select_related("account", "advocate").order_by(*ordering)
    else:
        references = reference_catalogue(organization=organization, user=user, query=query, filters=filters, sort=sort)
    page = keyset_page(
        references,
        ordering=ordering,
        per_page=per_page,
        cursor=cursor,
        count=facets.total is None,
        known_count=facets.total,
    )
    return facets, page


# --- Fatigue for a whole page of contacts -----------------------------------------------------


def _fatigue_from_times(
    *, contact: Contact, times: list[datetime], cap: int, rest_days: int, window_days: int, now: datetime
) -> FatigueVerdict:
    # The fatigue arithmetic, shared by contact_fatigue() and the page-wide version.
    rest, window = timedelta(days=rest_days), timedelta(days=window_days)
    if cap == 0:
        return FatigueVerdict(allowed=False, reason="This person does not take part in calls, visits or videos.")
    times = sorted(t for t in times if t > now - window)
    available_from: datetime | None = None
    reason = ""
    if len(times) >= cap:
        # The oldest use that has to leave the window before one more fits.
        available_from = times[len(times) - cap] + window
        reason = f"{contact.name} has been asked {len(times)} times in the last {window.days} days (limit {cap})."
    if times and times[-1] + rest > now:
        rested = times[-1] + rest
        if available_from is None or rested > available_from:
            available_from = rested
            reason = reason or f"{contact.name} is resting for {rest.days} days after the last use."
    if available_from is not None:
        return FatigueVerdict(allowed=False, available_from=available_from, reason=reason)
    return FatigueVerdict(allowed=True)


def contacts_fatigue(
    *, organization: Organization, contacts: Iterable[Contact], now: datetime | None = None
) -> dict[int, FatigueVerdict]:
    """:func:`contact_fatigue` for many contacts at once (two queries), for one more call, visit or video.

    Keyed by contact id. For list pages, whose query count must not grow with the page.
    """
    _assert_current(organization)
    contacts = {contact.pk: contact for contact in contacts if contact is not None}
    if not contacts:
        return {}
    now = now or timezone.now()
    limits = reference_settings_get(organization=organization)
    times: dict[int, list[datetime]] = defaultdict(list)
    uses = UsageRequest.objects.filter(
        reference__advocate_id__in=list(contacts),
        scope__in=FATIGUE_SCOPES,
        status__in=(UsageStatus.APPROVED, UsageStatus.COMPLETED),
        decided_at__gt=now - timedelta(days=limits.usage_window_days),
    ).values_list("reference__advocate_id", "decided_at")
    for contact_id, decided_at in uses:
        times[contact_id].append(decided_at)
    return {
        contact_id: _fatigue_from_times(
            contact=contact,
            times=times[contact_id],
            cap=contact.usage_cap if contact.usage_cap is not None else limits.usage_cap,
            rest_days=contact.cooldown_days if contact.cooldown_days is not None else limits.cooldown_days,
            window_days=limits.usage_window_days,
            now=now,
        )
        for contact_id, contact in contacts.items()
    }


# --- Usage requests and the ledger, for the pages ---------------------------------------------------


def usage_request_queue(*, organization: Organization, user: Any) -> QuerySet[UsageRequest]:
    """Pending requests, the most urgent first (needed-by date; undated ones last, oldest first)."""
    from django.db.models import F

    from .restrictions import restriction_filter

    _assert_current(organization)
    visible = Reference.objects.filter(restriction_filter(user=user)).values("pk")
    return (
        UsageRequest.objects.filter(status=UsageStatus.PENDING, reference_id__in=visible)
        .select_related("reference__account", "reference__advocate", "requested_by")
        .order_by(F("needed_by").asc(nulls_last=True), "created_at", "id")
    )


def usage_request_list_mine(*, organization: Organization, user: Any) -> QuerySet[UsageRequest]:
    """The requests ``user`` made, newest first."""
    _assert_current(organization)
    return (
        UsageRequest.objects.filter(requested_by=user)
        .select_related("reference__account", "decided_by")
        .order_by("-created_at", "-id")
    )


def usage_request_get_mine(*, organization: Organization, user: Any, usage_request_id: int) -> UsageRequest | None:
    """One of ``user``'s own requests, or None."""
    return usage_request_list_mine(organization=organization, user=user).filter(pk=usage_request_id).first()


def usage_request_get_pending(*, organization: Organization, user: Any, usage_request_id: int) -> UsageRequest | None:
    """A request in ``user``'s queue, or None."""
    return usage_request_queue(organization=organization, user=user).filter(pk=usage_request_id).first()


def reference_contact_visible(*, organization: Organization, user: Any, reference: Reference, manager: bool) -> bool:
    """Whether ``user`` may see the advocate's contact details on this reference.

    Managers and admins always may; anyone else only once a request of theirs
    for this reference was approved (or completed).
    """
    _assert_current(organization)
    if manager:
        return True
    return UsageRequest.objects.filter(
        reference=reference,
        requested_by=user,
        status__in=(UsageStatus.APPROVED, UsageStatus.COMPLETED),
    ).exists()


def usage_event_list(
    *, organization: Organization, reference: Reference | None = None, contact: Contact | None = None
) -> QuerySet[Any]:
    """The usage ledger, newest first; one reference's, one person's, or the whole organization's."""
    from .models import UsageEvent

    _assert_current(organization)
    events = UsageEvent.objects.select_related("reference", "contact", "usage_request")
    if reference is not None:
        events = events.filter(reference=reference)
    if contact is not None:
        events = events.filter(contact=contact)
    return events.order_by("-created_at", "-id")


# Scopes whose material the customer approves word for word (or file for file).
MATERIAL_KINDS = {Scope.QUOTE: "quote", Scope.CASE_STUDY: "case_study", Scope.LOGO: "logo"}


@dataclass(frozen=True)
class ScopeMaterial:
    """What a customer is shown and approves for one scope of a reference."""

    text: str
    fingerprint: str


def reference_material(*, organization: Organization, reference: Reference, scope: str) -> ScopeMaterial:
    """The exact text (and file identity) behind a quote, case study or logo; empty for other scopes.

    The fingerprint changes whenever any of it changes, so a consent can name
    precisely what the customer saw.
    """
    import hashlib

    from .models import ReferenceAsset

    _assert_current(organization)
    kind = MATERIAL_KINDS.get(Scope(scope)) if scope in Scope.values else None
    if kind is None:
        return ScopeMaterial(text="", fingerprint="")
    assets = list(
        ReferenceAsset.objects.filter(reference=reference, kind=kind).order_by("id").values_list("text", "file", "url")
    )
    text = "\n\n".join(t.strip() for t, _, _ in assets if t.strip())
    # A link is part of what a case study shows; a quote's or logo's link is not what the customer approves.
    identity = "\x1e".join(f"{t}\x1f{f}\x1f{u if kind == 'case_study' else ''}" for t, f, u in assets)
    return ScopeMaterial(text=text, fingerprint=hashlib.sha256(identity.encode()).hexdigest() if assets else "")
