"""django-filter filtersets of the consent API: unknown choices answer 400 naming the field."""

from __future__ import annotations

import django_filters

from references.models import Scope

from ..models import (
    ConsentEvent,
    ConsentEventKind,
    ConsentRequest,
    ConsentRequestKind,
    ConsentRequestStatus,
    ConsentState,
    ConsentStatus,
    Mechanism,
    Party,
)


class ConsentRequestFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ConsentRequestStatus.choices)
    kind = django_filters.ChoiceFilter(choices=ConsentRequestKind.choices)
    reference = django_filters.NumberFilter(field_name="reference_id")
    contact = django_filters.NumberFilter(field_name="contact_id")

    class Meta:
        model = ConsentRequest
        fields = ["status", "kind", "reference", "contact"]


class ConsentEventFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=ConsentEventKind.choices)
    scope = django_filters.ChoiceFilter(choices=Scope.choices)
    party = django_filters.ChoiceFilter(choices=Party.choices)
    mechanism = django_filters.ChoiceFilter(choices=Mechanism.choices)
    reference = django_filters.NumberFilter(field_name="reference_id")
    contact = django_filters.NumberFilter(field_name="contact_id")
    consent_request = django_filters.NumberFilter(field_name="consent_request_id")
    sequence_min = django_filters.NumberFilter(field_name="sequence", lookup_expr="gte", label="From this sequence on")
    sequence_max = django_filters.NumberFilter(field_name="sequence", lookup_expr="lte", label="Up to this sequence")
    occurred_after = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = ConsentEvent
        fields = [
            "kind",
            "scope",
            "party",
            "mechanism",
            "reference",
            "contact",
            "consent_request",
            "sequence_min",
            "sequence_max",
            "occurred_after",
            "occurred_before",
        ]


class ConsentStateFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ConsentStatus.choices)
    scope = django_filters.ChoiceFilter(choices=Scope.choices)
    party = django_filters.ChoiceFilter(choices=Party.choices)
    reference = django_filters.NumberFilter(field_name="reference_id")
    contact = django_filters.NumberFilter(field_name="contact_id")
    valid_until_before = django_filters.IsoDateTimeFilter(
        field_name="valid_until", lookup_expr="lte", label="Ends on or before (with status=granted: what lapses)"
    )

    class Meta:
        model = ConsentState
        fields = ["status", "scope", "party", "reference", "contact", "valid_until_before"]
