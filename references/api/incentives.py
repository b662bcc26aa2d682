"""/api/v1/incentives/ and /api/v1/review-flags/: record incentives, resolve the flags they raise.

Thin views on :class:`refmgr.tenancy.api.TenantScopedViewSet`: input
serializers check shape only (contacts and accounts are looked up through
the organization-scoped managers, so another organization's id is a field
error, never a link); the services in ``references.incentives`` decide, and
their refusals (``ApplicationError``) become a 400 under the field at fault.

Reference managers and admins record incentives; compliance reads them.
Compliance and admins work the review queue; a reviewer cannot resolve a
flag on an incentive they recorded (separation of duties, a 400).
Salespeople see neither resource.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from refmgr.tenancy.api import TenantScopedViewSet
from refmgr.tenancy.models import Role

from .. import incentives
from ..models import (
    CURRENCIES,
    MAX_INCENTIVE_VALUE,
    Account,
    Contact,
    FlagStatus,
    Incentive,
    IncentiveCondition,
    IncentiveKind,
    ReviewFlag,
)
from .serializers import AccountBriefSerializer, ErrorSerializer, ReferenceBriefSerializer, ScopedPrimaryKeyField
from .views import ReferencesApiMixin

INCENTIVE_WRITERS = (Role.ADMIN, Role.REFERENCE_MANAGER)
INCENTIVE_READERS = (Role.ADMIN, Role.REFERENCE_MANAGER, Role.COMPLIANCE)
REVIEWERS = (Role.ADMIN, Role.COMPLIANCE)

ERROR_RESPONSES = {400: OpenApiResponse(ErrorSerializer, description="Invalid input or refused by a business rule")}


# --- Serializers ---------------------------------------------------------------------------


class ContactBriefSerializer(serializers.ModelSerializer):
    class Meta:
        ref_name = "ContactBrief"
        model = Contact
        fields = ["id", "name", "title"]


class IncentiveOutputSerializer(serializers.ModelSerializer):
    contact = ContactBriefSerializer(read_only=True, allow_null=True)
    account = AccountBriefSerializer(read_only=True)
    recorded_by = serializers.CharField(source="recorded_by.get_username", read_only=True)

    class Meta:
        ref_name = "Incentive"
        model = Incentive
        fields = [
            "id",
            "contact",
            "account",
            "kind",
            "value",
            "currency",
            "given_on",
            "given_by",
            "condition",
            "note",
            "recorded_by",
            "created_at",
            "updated_at",
        ]


class OrganizationObjectField(ScopedPrimaryKeyField):
    """An id that must name an object of this organization: any other id is a 404, as a URL would be.

    Another organization's contact is indistinguishable from one that does not exist.
    """

    def to_internal_value(self, data: Any) -> Any:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as error:
            codes = error.get_codes()
            if codes == ["does_not_exist"]:
                raise exceptions.NotFound(f"No such {self.scoped_model._meta.verbose_name}.") from None
            raise


class IncentiveInputSerializer(serializers.Serializer):
    """Shape only; the service refuses sentiment-conditioned incentives and mismatched contact/account."""

    contact = OrganizationObjectField(Contact, required=False, allow_null=True)
    account = OrganizationObjectField(Account, required=False, allow_null=True)
    kind = serializers.ChoiceField(choices=IncentiveKind.choices)
    value = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0, max_value=MAX_INCENTIVE_VALUE)
    currency = serializers.CharField(max_length=3, help_text="ISO 4217 code: " + ", ".join(CURRENCIES))
    given_on = serializers.DateField()
    given_by = serializers.CharField(max_length=200)
    condition = serializers.ChoiceField(choices=IncentiveCondition.choices, required=False)
    note = serializers.CharField(required=False, allow_blank=True)

    class Meta:
        ref_name = "IncentiveInput"

    def validate_currency(self, value: str) -> str:
        code = value.strip().upper()
        if code not in CURRENCIES:
            raise serializers.ValidationError(f"Unknown currency “{value}”; use an ISO code such as EUR or USD.")
        return code


class IncentiveSummarySerializer(serializers.ModelSerializer):
    class Meta:
        ref_name = "IncentiveSummary"
        model = Incentive
        fields = ["id", "kind", "value", "currency", "given_on", "given_by", "condition", "contact", "account"]


class ReviewFlagOutputSerializer(serializers.ModelSerializer):
    reference = ReferenceBriefSerializer(read_only=True)
    incentive = IncentiveSummarySerializer(read_only=True, allow_null=True)
    resolved_by = serializers.CharField(source="resolved_by.get_username", read_only=True, allow_null=True)

    class Meta:
        ref_name = "ReviewFlag"
        model = ReviewFlag
        fields = [
            "id",
            "reference",
            "reason",
            "matched_text",
            "incentive",
            "status",
            "resolved_by",
            "resolved_at",
            "justification",
            "disclosure",
            "created_at",
        ]


class FlagClearInputSerializer(serializers.Serializer):
    justification = serializers.CharField(help_text="Why the reference may be used despite the incentive.")
    disclosure = serializers.CharField(
        max_length=300,
        required=False,
        allow_blank=True,
        default="",
        help_text="Shown wherever the reference appears; required when an incentive raised the flag.",
    )

    class Meta:
        ref_name = "ReviewFlagClearInput"


class FlagRejectInputSerializer(serializers.Serializer):
    justification = serializers.CharField(help_text="Why the reference is retired.")

    class Meta:
        ref_name = "ReviewFlagRejectInput"


# --- Filters -------------------------------------------------------------------------------


class IncentiveFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=IncentiveKind.choices)
    condition = django_filters.ChoiceFilter(choices=IncentiveCondition.choices)
    contact = django_filters.NumberFilter(field_name="contact_id")
    account = django_filters.NumberFilter(field_name="account_id")
    given_on_after = django_filters.DateFilter(field_name="given_on", lookup_expr="gte", label="Given on or after")
    given_on_before = django_filters.DateFilter(field_name="given_on", lookup_expr="lte", label="Given on or before")

    class Meta:
        model = Incentive
        fields = ["kind", "condition", "contact", "account", "given_on_after", "given_on_before"]


class ReviewFlagFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=FlagStatus.choices)
    reference = django_filters.NumberFilter(field_name="reference_id")
    incentive = django_filters.NumberFilter(field_name="incentive_id")

    class Meta:
        model = ReviewFlag
        fields = ["status", "reference", "incentive"]


# --- Views ---------------------------------------------------------------------------------

INCENTIVE_EXAMPLE = {
    "id": 7,
    "contact": {"id": 30, "name": "Ingrid Solberg", "title": "Head of Operations"},
    "account": {
        "id": 12,
        "name": "Fjord Freight AS",
        "industry": "Logistics",
        "region": "EMEA",
        "size_band": "250-999",
    },
    "kind": "gift_card",
    "value": "150.00",
    "currency": "EUR",
    "given_on": "2026-04-02",
    "given_by": "Account executive",
    "condition": "participation",
    "note": "Thank-you for the case-study interview.",
    "recorded_by": "carol",
    "created_at": "2026-04-03T08:00:00Z",
    "updated_at": "2026-04-03T08:00:00Z",
}

SENTIMENT_EXAMPLE = OpenApiExample(
    "Refused: conditioned on positive sentiment",
    value={"condition": [incentives.SENTIMENT_REFUSAL]},
    response_only=True,
    status_codes=["400"],
)


@extend_schema_view(
    list=extend_schema(
        summary="List incentives given to customers",
        description="Reference managers, admins and compliance. Filter by kind, condition, contact, account and "
        "date range; search the note and who gave it.",
        tags=["incentives"],
        examples=[OpenApiExample("A page of incentives", value=[INCENTIVE_EXAMPLE], response_only=True)],
    ),
    retrieve=extend_schema(
        summary="One incentive",
        tags=["incentives"],
        examples=[OpenApiExample("An incentive", value=INCENTIVE_EXAMPLE, response_only=True)],
    ),
)
class IncentiveViewSet(ReferencesApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Something of value given to a customer contact or account; its references are flagged for review."""

    model = Incentive
    serializer_class = IncentiveOutputSerializer
    read_roles = INCENTIVE_READERS
    write_roles = INCENTIVE_WRITERS
    filterset_class = IncentiveFilter
    search_fields = ["note", "given_by"]
    ordering_fields = ["given_on", "value", "created_at", "updated_at"]

    def scope_queryset(self, queryset: QuerySet[Incentive]) -> QuerySet[Incentive]:
        return queryset.select_related("contact", "account", "recorded_by").order_by("-given_on", "-id")

    def _output(self, incentive: Incentive, code: int = status.HTTP_200_OK) -> Response:
        return Response(IncentiveOutputSerializer(self.get_queryset().get(pk=incentive.pk)).data, status=code)

    @extend_schema(
        summary="Record an incentive",
        description="Give the contact, or the account for an account-wide incentive. An incentive conditioned on a "
        "positive review, rating or testimonial is refused with a 400 on `condition`.",
        tags=["incentives"],
        request=IncentiveInputSerializer,
        responses={201: IncentiveOutputSerializer, **ERROR_RESPONSES},
        examples=[
            OpenApiExample(
                "A thank-you gift card",
                value={
                    "contact": 30,
                    "kind": "gift_card",
                    "value": "150.00",
                    "currency": "EUR",
                    "given_on": "2026-04-02",
                    "given_by": "Account executive",
                    "condition": "participation",
                    "note": "Thank-you for the case-study interview.",
                },
                request_only=True,
            ),
            SENTIMENT_EXAMPLE,
        ],
    )
    def create(self, request: Request) -> Response:
        data = IncentiveInputSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        incentive = incentives.incentive_record(
            organization=self.organization, actor=request.user, **data.validated_data
        )
        return self._output(incentive, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change an incentive",
        description="Its references are flagged again; flags already raised stay.",
        tags=["incentives"],
        request=IncentiveInputSerializer,
        responses={200: IncentiveOutputSerializer, **ERROR_RESPONSES},
        examples=[OpenApiExample("Correct the value", value={"value": "120.00"}, request_only=True)],
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        incentive = self.get_object()
        data = IncentiveInputSerializer(data=request.data, partial=True, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        incentive = incentives.incentive_update(
            organization=self.organization, incentive=incentive, actor=request.user, **data.validated_data
        )
        return self._output(incentive)


FLAG_EXAMPLE = {
    "id": 91,
    "reference": {"id": 41, "title": "Customs automation with Customs Cloud"},
    "reason": "Incentive recorded: Gift card on 2026-04-02",
    "matched_text": "",
    "incentive": {
        "id": 7,
        "kind": "gift_card",
        "value": "150.00",
        "currency": "EUR",
        "given_on": "2026-04-02",
        "given_by": "Account executive",
        "condition": "participation",
        "contact": 30,
        "account": 12,
    },
    "status": "cleared",
    "resolved_by": "dave",
    "resolved_at": "2026-04-05T10:12:00Z",
    "justification": "Small thank-you after the interview; not tied to what was said.",
    "disclosure": "This customer received a gift card.",
    "created_at": "2026-04-03T08:00:05Z",
}


@extend_schema_view(
    list=extend_schema(
        summary="List review flags (the compliance queue)",
        description="Compliance and admins. `status=open` is the queue; each flag names the reference, the reason, "
        "the quoted passage for text signals, the incentive, and the decision once resolved.",
        tags=["review-flags"],
        examples=[OpenApiExample("A page of flags", value=[FLAG_EXAMPLE], response_only=True)],
    ),
    retrieve=extend_schema(
        summary="One review flag",
        tags=["review-flags"],
        examples=[OpenApiExample("A cleared flag", value=FLAG_EXAMPLE, response_only=True)],
    ),
)
class ReviewFlagViewSet(ReferencesApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """References held for compliance review; clear (with a disclosure) or reject (retire the reference)."""

    model = ReviewFlag
    serializer_class = ReviewFlagOutputSerializer
    read_roles = REVIEWERS
    write_roles = REVIEWERS
    filterset_class = ReviewFlagFilter
    search_fields = ["reason", "matched_text", "reference__title"]
    ordering_fields = ["created_at", "resolved_at", "status"]

    def scope_queryset(self, queryset: QuerySet[ReviewFlag]) -> QuerySet[ReviewFlag]:
        return queryset.select_related("reference", "incentive", "resolved_by").order_by("-created_at", "-id")

    def _output(self, flag: ReviewFlag) -> Response:
        return Response(ReviewFlagOutputSerializer(self.get_queryset().get(pk=flag.pk)).data)

    @extend_schema(
        summary="Clear a flag with a justification and a disclosure line",
        description="The reference becomes usable again (unless something else holds it) and shows the disclosure. "
        "Refused with a 400 when you recorded the incentive, the flag is already resolved, or the justification "
        "(or, for an incentive, the disclosure) is empty.",
        tags=["review-flags"],
        request=FlagClearInputSerializer,
        responses={200: ReviewFlagOutputSerializer, **ERROR_RESPONSES},
        examples=[
            OpenApiExample(
                "Clear with a disclosure",
                value={
                    "justification": "Small thank-you after the interview; not tied to what was said.",
                    "disclosure": "This customer received a gift card.",
                },
                request_only=True,
            ),
            OpenApiExample(
                "Refused: separation of duties",
                value={"non_field_errors": ["You recorded this incentive, so another reviewer must decide on it."]},
                response_only=True,
                status_codes=["400"],
            ),
        ],
    )
    @action(detail=True, methods=["post"])
    def clear(self, request: Request, pk: str | None = None) -> Response:
        flag = self.get_object()
        data = FlagClearInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        incentives.review_flag_clear(
            organization=self.organization, flag=flag, actor=request.user, **data.validated_data
        )
        return self._output(flag)

    @extend_schema(
        summary="Reject a flagged reference (it is retired)",
        tags=["review-flags"],
        request=FlagRejectInputSerializer,
        responses={200: ReviewFlagOutputSerializer, **ERROR_RESPONSES},
        examples=[
            OpenApiExample(
                "Reject",
                value={"justification": "The payment was made in exchange for the testimonial."},
                request_only=True,
            )
        ],
    )
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        flag = self.get_object()
        data = FlagRejectInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        incentives.review_flag_reject(
            organization=self.organization, flag=flag, actor=request.user, **data.validated_data
        )
        return self._output(flag)


__all__ = ["IncentiveViewSet", "ReviewFlagViewSet"]
