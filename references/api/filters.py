"""django-filter filtersets of the references API.

Choice filters reject unknown values with a 400 naming the field; label
filters use EXISTS subqueries, so they never duplicate rows or need DISTINCT.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import OuterRef, QuerySet
from rest_framework.filters import SearchFilter
from rest_framework.request import Request

from ..models import (
    Account,
    Contact,
    LabelKind,
    Publication,
    Reference,
    ReferenceLabel,
    ReferenceStatus,
    Scope,
    SizeBand,
    UsageRequest,
    UsageStatus,
)
from ..selectors import exists_per_row, reference_search, reference_usable_filter


class AccountFilter(django_filters.FilterSet):
    industry = django_filters.CharFilter(lookup_expr="iexact")
    region = django_filters.CharFilter(lookup_expr="iexact")
    size_band = django_filters.ChoiceFilter(choices=SizeBand.choices)
    crm_id = django_filters.CharFilter()

    class Meta:
        model = Account
        fields = ["industry", "region", "size_band", "crm_id"]


class ContactFilter(django_filters.FilterSet):
    account = django_filters.NumberFilter(field_name="account_id")
    is_authorised_signatory = django_filters.BooleanFilter()
    requests_paused = django_filters.BooleanFilter()

    class Meta:
        model = Contact
        fields = ["account", "is_authorised_signatory", "requests_paused"]


def _label_filter(kind: str) -> Any:
    def method(queryset: QuerySet[Reference], name: str, value: str) -> QuerySet[Reference]:
        labels = ReferenceLabel.objects.filter(reference=OuterRef("pk"), kind=kind, value__iexact=value)
        return queryset.filter(exists_per_row(labels))

    return method


class ReferenceFilter(django_filters.FilterSet):
    industry = django_filters.CharFilter(field_name="account__industry", lookup_expr="iexact")
    region = django_filters.CharFilter(field_name="account__region", lookup_expr="iexact")
    size_band = django_filters.ChoiceFilter(field_name="account__size_band", choices=SizeBand.choices)
    account = django_filters.NumberFilter(field_name="account_id")
    product = django_filters.CharFilter(method="filter_product", label="Product (exact, case-insensitive)")
    use_case = django_filters.CharFilter(method="filter_use_case", label="Use case (exact, case-insensitive)")
    tag = django_filters.CharFilter(method="filter_tag", label="Tag (exact, case-insensitive)")
    scope = django_filters.ChoiceFilter(
        choices=Scope.choices, method="filter_scope", label="Only references on which this scope is usable now"
    )
    usable = django_filters.BooleanFilter(method="filter_usable", label="Has at least one usable scope now")
    status = django_filters.ChoiceFilter(choices=ReferenceStatus.choices)
    publication = django_filters.ChoiceFilter(choices=Publication.choices)
    restricted = django_filters.BooleanFilter()

    class Meta:
        model = Reference
        fields = [
            "industry",
            "region",
            "size_band",
            "account",
            "product",
            "use_case",
            "tag",
            "scope",
            "usable",
            "status",
            "publication",
            "restricted",
        ]

    def filter_product(self, queryset: QuerySet[Reference], name: str, value: str) -> QuerySet[Reference]:
        return _label_filter(LabelKind.PRODUCT)(queryset, name, value)

    def filter_use_case(self, queryset: QuerySet[Reference], name: str, value: str) -> QuerySet[Reference]:
        return _label_filter(LabelKind.USE_CASE)(queryset, name, value)

    def filter_tag(self, queryset: QuerySet[Reference], name: str, value: str) -> QuerySet[Reference]:
        return _label_filter(LabelKind.TAG)(queryset, name, value)

    def filter_scope(self, queryset: QuerySet[Reference], name: str, value: str) -> QuerySet[Reference]:
        return queryset.filter(reference_usable_filter(scope=value))

    def filter_usable(self, queryset: QuerySet[Reference], name: str, value: bool | None) -> QuerySet[Reference]:
        if value is None:
            return queryset
        usable = reference_usable_filter()
        return queryset.filter(usable) if value else queryset.exclude(usable)


class UsageRequestFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=UsageStatus.choices)
    scope = django_filters.ChoiceFilter(choices=Scope.choices)
    reference = django_filters.NumberFilter(field_name="reference_id")
    needed_by_before = django_filters.DateFilter(field_name="needed_by", lookup_expr="lte")
    mine = django_filters.BooleanFilter(method="filter_mine", label="Only my own requests")

    class Meta:
        model = UsageRequest
        fields = ["status", "scope", "reference", "needed_by_before", "mine"]

    def filter_mine(self, queryset: QuerySet[UsageRequest], name: str, value: bool | None) -> QuerySet[UsageRequest]:
        if value:
            return queryset.filter(requested_by=self.request.user)
        return queryset


class ReferenceSearchFilter(SearchFilter):
    """``?search=`` on references: the catalogue's full-text search, not ``icontains`` per column.

    The words are matched against each reference's stored search document (title,
    summary, labels, and the account's name unless the reference is anonymised) through
    its GIN index, so a search costs the same in an organization of 100,000 references
    as in one of 100 (``ILIKE`` over every summary did not; issue 6).
    """

    search_description = "Words to find in the title, summary, labels or (unless anonymised) the account's name."

    def filter_queryset(self, request: Request, queryset: QuerySet[Any], view: Any) -> QuerySet[Any]:
        query = request.query_params.get(self.search_param, "").replace("\x00", "").strip()
        if not query:
            return queryset
        found = reference_search(queryset, query[:200])
        if "rank" in found.query.annotations and not request.query_params.get("ordering"):
            # Best match first, as in the catalogue. It is also the fast order: newest-first made
            # PostgreSQL walk the largest organization's 100,000 references by date looking for
            # the few dozen that match (190 ms), where the search index finds them directly.
            found = found.order_by("-rank", "-updated_at", "-id")
        return found

    def get_search_fields(self, view: Any, request: Request) -> list[str]:
        return ["search_document"]
