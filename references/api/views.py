"""/api/v1/ accounts, contacts, references and usage-requests.

Thin views on :class:`refmgr.tenancy.api.TenantScopedViewSet`: they parse
with an input serializer, call a service or selector, and serialise.
Business-rule refusals (``ApplicationError``) become a 400 with the field at
fault. What a salesperson sees is narrowed in ``scope_queryset``: only
usable references they may see (``reference_usable_filter`` and
``restriction_filter``), and contact details only for references on which
their own use was approved.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status
from rest_framework.decorators import action
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request
from rest_framework.response import Response

from refmgr.tenancy.api import TenantScopedViewSet
from refmgr.tenancy.models import Role
from refmgr.tenancy.pagination import KeysetPagination

from .. import services
from ..models import Account, Contact, Reference, ReferenceLabel, UsageRequest, UsageStatus
from ..restrictions import restriction_filter
from ..selectors import reference_usable_filter, reference_usable_scopes
from . import filters
from .serializers import (
    AccountInputSerializer,
    AccountOutputSerializer,
    CompletionInputSerializer,
    ContactInputSerializer,
    ContactOutputSerializer,
    DecisionInputSerializer,
    ErrorSerializer,
    ReferenceInputSerializer,
    ReferenceOutputSerializer,
    UsageRequestInputSerializer,
    UsageRequestOutputSerializer,
)

MANAGERS = (Role.ADMIN, Role.REFERENCE_MANAGER)
# Roles that see contacts' personal data: they manage references or handle data-subject requests.
CONTACT_ROLES = (Role.ADMIN, Role.REFERENCE_MANAGER, Role.COMPLIANCE)
# Uses that put the salesperson in touch with the person, so their details are shown.
DETAIL_STATUSES = (UsageStatus.APPROVED, UsageStatus.COMPLETED)


class ReferencesApiMixin:
    """Shared pieces: the role and organization of the token (pagination and errors come from the base)."""

    @property
    def role(self) -> str:
        return self.request._request.membership.role  # type: ignore[attr-defined]

    @property
    def organization(self) -> Any:
        return self.request._request.organization  # type: ignore[attr-defined]

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise exceptions.PermissionDenied("Your role cannot do this.")


ERROR_RESPONSES = {400: OpenApiResponse(ErrorSerializer, description="Invalid input or refused by a business rule")}


@extend_schema_view(
    list=extend_schema(summary="List customer accounts", tags=["accounts"]),
    retrieve=extend_schema(summary="One customer account", tags=["accounts"]),
)
class AccountViewSet(ReferencesApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Customer companies. Readable by every role; reference managers and admins write."""

    model = Account
    serializer_class = AccountOutputSerializer
    read_roles = tuple(Role.values)
    write_roles = MANAGERS
    filterset_class = filters.AccountFilter
    search_fields = ["name", "industry", "region", "crm_id"]
    ordering_fields = ["name", "industry", "region", "created_at", "updated_at"]

    def scope_queryset(self, queryset: QuerySet[Account]) -> QuerySet[Account]:
        return queryset.order_by("name", "id")

    @extend_schema(
        summary="Add an account",
        tags=["accounts"],
        request=AccountInputSerializer,
        responses={201: AccountOutputSerializer, **ERROR_RESPONSES},
        examples=[
            OpenApiExample(
                "New account",
                value={"name": "Fjord Freight AS", "industry": "Logistics", "region": "EMEA", "size_band": "250-999"},
                request_only=True,
            )
        ],
    )
    def create(self, request: Request) -> Response:
        data = AccountInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account = services.account_create(organization=self.organization, actor=request.user, **data.validated_data)
        return Response(AccountOutputSerializer(account).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change an account",
        tags=["accounts"],
        request=AccountInputSerializer,
        responses={200: AccountOutputSerializer, **ERROR_RESPONSES},
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        account = self.get_object()
        data = AccountInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        account = services.account_update(
            organization=self.organization, account=account, actor=request.user, **data.validated_data
        )
        return Response(AccountOutputSerializer(account).data)


@extend_schema_view(
    list=extend_schema(summary="List contacts (personal data; not for sales)", tags=["contacts"]),
    retrieve=extend_schema(summary="One contact", tags=["contacts"]),
)
class ContactViewSet(ReferencesApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """People at customer accounts. Personal data: salespeople cannot list them at all."""

    model = Contact
    serializer_class = ContactOutputSerializer
    read_roles = CONTACT_ROLES
    write_roles = MANAGERS
    filterset_class = filters.ContactFilter
    search_fields = ["name", "email", "title", "account__name"]
    ordering_fields = ["name", "created_at", "updated_at"]

    def scope_queryset(self, queryset: QuerySet[Contact]) -> QuerySet[Contact]:
        return queryset.select_related("account").order_by("name", "id")

    @extend_schema(
        summary="Add a contact",
        tags=["contacts"],
        request=ContactInputSerializer,
        responses={201: ContactOutputSerializer, **ERROR_RESPONSES},
        examples=[
            OpenApiExample(
                "New contact",
                value={
                    "account": 12,
                    "name": "Ingrid Solberg",
                    "title": "Head of Operations",
                    "email": "ingrid.solberg@fjordfreight.example",
                    "is_authorised_signatory": True,
                },
                request_only=True,
            )
        ],
    )
    def create(self, request: Request) -> Response:
        data = ContactInputSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        contact = services.contact_create(organization=self.organization, actor=request.user, **data.validated_data)
        contact = self.get_queryset().get(pk=contact.pk)
        return Response(ContactOutputSerializer(contact).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a contact",
        tags=["contacts"],
        request=ContactInputSerializer,
        responses={200: ContactOutputSerializer, **ERROR_RESPONSES},
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        contact = self.get_object()
        data = ContactInputSerializer(data=request.data, partial=True, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        contact = services.contact_update(
            organization=self.organization, contact=contact, actor=request.user, **data.validated_data
        )
        return Response(ContactOutputSerializer(self.get_queryset().get(pk=contact.pk)).data)


REFERENCE_EXAMPLE = {
    "id": 41,
    "title": "Fjord Freight cut customs delays by 60%",
    "summary": "Automated customs filings across 14 ports.",
    "account": {
        "id": 12,
        "name": "Fjord Freight AS",
        "industry": "Logistics",
        "region": "EMEA",
        "size_band": "250-999",
    },
    "publication": "attributed",
    "status": "active",
    "restricted": False,
    "disclosure": "",
    "products": ["Customs Cloud"],
    "use_cases": ["Customs automation"],
    "tags": ["nordics"],
    "usable_scopes": ["call", "quote"],
    "advocate_title": "Head of Operations",
    "contact_details_visible": False,
    "advocate": None,
    "owner": 3,
    "created_at": "2026-03-02T09:15:00Z",
    "updated_at": "2026-05-18T14:02:11Z",
}


@extend_schema_view(
    list=extend_schema(
        summary="List references",
        description=(
            "Salespeople see only references with at least one usable scope that they may see "
            "(restricted references need their name or group), and the advocate's contact details only "
            "once their own use of that reference was approved. Managers see every reference."
        ),
        tags=["references"],
        examples=[OpenApiExample("A page of references", value=[REFERENCE_EXAMPLE], response_only=True)],
    ),
    retrieve=extend_schema(
        summary="One reference",
        tags=["references"],
        examples=[OpenApiExample("A reference", value=REFERENCE_EXAMPLE, response_only=True)],
    ),
)
class ReferenceViewSet(ReferencesApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """References with their usable scopes and disclosure line."""

    model = Reference
    serializer_class = ReferenceOutputSerializer
    read_roles = tuple(Role.values)
    write_roles = MANAGERS
    filterset_class = filters.ReferenceFilter
    ordering_fields = ["title", "created_at", "updated_at"]
    # The one list that reaches 100,000 rows in an organization: keyset pages, capped count (issue 6).
    pagination_class = KeysetPagination

    # Full-text search on the stored document (never the account's name of an anonymised reference).
    filter_backends = [DjangoFilterBackend, filters.ReferenceSearchFilter, OrderingFilter]

    def scope_queryset(self, queryset: QuerySet[Reference]) -> QuerySet[Reference]:
        queryset = queryset.filter(restriction_filter(user=self.request.user))
        if self.role == Role.SALES:
            # Salespeople never see a reference they could not use (issue 3, point 2).
            queryset = queryset.filter(reference_usable_filter())
        labels = Prefetch("labels", queryset=ReferenceLabel.objects.order_by("kind", "value"))
        return queryset.select_related("account", "advocate").prefetch_related(labels).order_by("-updated_at", "-id")

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        context.update(getattr(self, "_page_context", {}))
        return context

    def _prepare(self, references: list[Reference]) -> None:
        """One query each for the usable scopes and the salesperson's approved uses on this page."""
        ids = [reference.pk for reference in references]
        context: dict[str, Any] = {
            "usable_scopes": reference_usable_scopes(organization=self.organization, reference_ids=ids),
            "all_contact_details": self.role in CONTACT_ROLES,
            "reveal_account": self.role in MANAGERS,
        }
        if self.role not in CONTACT_ROLES:
            context["contact_details_for"] = set(
                UsageRequest.objects.filter(
                    requested_by=self.request.user, status__in=DETAIL_STATUSES, reference_id__in=ids
                ).values_list("reference_id", flat=True)
            )
        self._page_context = context

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        references = list(page if page is not None else queryset)
        self._prepare(references)
        data = self.get_serializer(references, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        reference = self.get_object()
        self._prepare([reference])
        return Response(self.get_serializer(reference).data)

    def _output(self, reference: Reference, code: int = status.HTTP_200_OK) -> Response:
        reference = self.get_queryset().get(pk=reference.pk)
        self._prepare([reference])
        return Response(self.get_serializer(reference).data, status=code)

    @extend_schema(
        summary="Add a reference",
        tags=["references"],
        request=ReferenceInputSerializer,
        responses={201: ReferenceOutputSerializer, **ERROR_RESPONSES},
        examples=[
            OpenApiExample(
                "New reference",
                value={
                    "account": 12,
                    "advocate": 30,
                    "title": "Fjord Freight cut customs delays by 60%",
                    "publication": "attributed",
                    "products": ["Customs Cloud"],
                    "use_cases": ["Customs automation"],
                },
                request_only=True,
            )
        ],
    )
    def create(self, request: Request) -> Response:
        data = ReferenceInputSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        reference = services.reference_create(organization=self.organization, actor=request.user, **data.validated_data)
        return self._output(reference, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a reference",
        tags=["references"],
        request=ReferenceInputSerializer,
        responses={200: ReferenceOutputSerializer, **ERROR_RESPONSES},
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        reference = self.get_object()
        data = ReferenceInputSerializer(data=request.data, partial=True, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        reference = services.reference_update(
            organization=self.organization, reference=reference, actor=request.user, **data.validated_data
        )
        return self._output(reference)


FATIGUE_EXAMPLE = OpenApiExample(
    "Refused by the fatigue limits",
    value={
        "available_from": "2026-07-14T10:00:00+00:00",
        "scope": [
            "Ingrid Solberg has been asked 3 times in the last 90 days (limit 3). It becomes possible on 14 July 2026."
        ],
    },
    response_only=True,
    status_codes=["400"],
)


@extend_schema_view(
    list=extend_schema(
        summary="List usage requests",
        description="Salespeople see their own requests; managers and compliance see all.",
        tags=["usage-requests"],
    ),
    retrieve=extend_schema(summary="One usage request", tags=["usage-requests"]),
)
class UsageRequestViewSet(ReferencesApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Requests to use one scope of a reference for a deal, and their decisions."""

    model = UsageRequest
    serializer_class = UsageRequestOutputSerializer
    read_roles = tuple(Role.values)
    # Per action below: sales create and complete, managers approve and decline.
    write_roles = (Role.SALES, Role.REFERENCE_MANAGER, Role.ADMIN)
    filterset_class = filters.UsageRequestFilter
    search_fields = ["opportunity_name", "crm_opportunity_id", "reference__title"]
    ordering_fields = ["created_at", "needed_by", "status"]

    def scope_queryset(self, queryset: QuerySet[UsageRequest]) -> QuerySet[UsageRequest]:
        if self.role == Role.SALES:
            queryset = queryset.filter(requested_by=self.request.user)
        return queryset.select_related("reference", "requested_by", "decided_by").order_by("-created_at", "-id")

    def _output(self, usage_request: UsageRequest, code: int = status.HTTP_200_OK) -> Response:
        usage_request = self.get_queryset().get(pk=usage_request.pk)
        return Response(UsageRequestOutputSerializer(usage_request).data, status=code)

    @extend_schema(
        summary="Request a use (salespeople)",
        description="Refused with 400 when the scope is not usable, requests are paused, or the person's fatigue "
        "limits say no; a fatigue refusal names the date the use becomes possible in `available_from`.",
        tags=["usage-requests"],
        request=UsageRequestInputSerializer,
        responses={201: UsageRequestOutputSerializer, **ERROR_RESPONSES},
        examples=[
            OpenApiExample(
                "Request a call",
                value={
                    "reference": 41,
                    "scope": "call",
                    "opportunity_name": "Hanseatic Shipping - customs rollout",
                    "opportunity_value": "120000.00",
                    "currency": "EUR",
                    "crm_opportunity_id": "OPP-2231",
                    "needed_by": "2026-06-30",
                },
                request_only=True,
            ),
            FATIGUE_EXAMPLE,
        ],
    )
    def create(self, request: Request) -> Response:
        self.require_role(Role.SALES)
        data = UsageRequestInputSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        reference = Reference.objects.select_related("advocate").get(pk=values.pop("reference").pk)
        usage_request = services.usage_request_create(
            organization=self.organization, reference=reference, requested_by=request.user, **values
        )
        return self._output(usage_request, status.HTTP_201_CREATED)

    def _decide(self, request: Request, decide: Any) -> Response:
        """A reference manager's approval or decline, with its optional or required reason."""
        self.require_role(*MANAGERS)
        usage_request = self.get_object()
        data = DecisionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        decide(
            organization=self.organization,
            usage_request=usage_request,
            actor=request.user,
            reason=data.validated_data["reason"],
        )
        return self._output(usage_request)

    @extend_schema(
        summary="Approve a pending request (reference managers)",
        tags=["usage-requests"],
        request=DecisionInputSerializer,
        responses={200: UsageRequestOutputSerializer, **ERROR_RESPONSES},
        examples=[FATIGUE_EXAMPLE],
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(request, services.usage_request_approve)

    @extend_schema(
        summary="Decline a pending request with a reason (reference managers)",
        tags=["usage-requests"],
        request=DecisionInputSerializer,
        responses={200: UsageRequestOutputSerializer, **ERROR_RESPONSES},
    )
    @action(detail=True, methods=["post"])
    def decline(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(request, services.usage_request_decline)

    @extend_schema(
        summary="Record the outcome of an approved use (the requesting salesperson)",
        tags=["usage-requests"],
        request=CompletionInputSerializer,
        responses={200: UsageRequestOutputSerializer, **ERROR_RESPONSES},
        examples=[
            OpenApiExample("Won", value={"outcome": "won", "notes": "Signed after the call."}, request_only=True)
        ],
    )
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, pk: str | None = None) -> Response:
        self.require_role(Role.SALES)
        usage_request = self.get_object()
        if usage_request.requested_by_id != request.user.pk:
            raise exceptions.PermissionDenied("Only the salesperson who asked can record the outcome.")
        data = CompletionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.usage_request_complete(
            organization=self.organization,
            usage_request=usage_request,
            actor=request.user,
            outcome=data.validated_data["outcome"],
            notes=data.validated_data["notes"],
        )
        return self._output(usage_request)


__all__ = ["AccountViewSet", "ContactViewSet", "ReferenceViewSet", "UsageRequestViewSet"]
