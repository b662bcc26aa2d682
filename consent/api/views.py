"""/api/v1/ consent-requests, consent-events (the ledger) and consent-states.

Thin views on :class:`refmgr.tenancy.api.TenantScopedViewSet`. Consent
records name the customer, so salespeople see none of them; reference
managers and admins ask and cancel; compliance reads, as the audit trail is
theirs to check. Refusals of the services (``ApplicationError``) become a
400 under the field at fault.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from refmgr.tenancy.api import TenantScopedViewSet
from refmgr.tenancy.models import Role

from .. import services
from ..models import ConsentEvent, ConsentEventKind, ConsentRequest, ConsentState
from . import filters
from .serializers import (
    ConsentErrorSerializer,
    ConsentEventOutputSerializer,
    ConsentRequestInputSerializer,
    ConsentRequestOutputSerializer,
    ConsentStateOutputSerializer,
)

MANAGERS = (Role.ADMIN, Role.REFERENCE_MANAGER)
# Who reads consent records: those who ask for consent, and compliance, who audits it.
READERS = (Role.ADMIN, Role.REFERENCE_MANAGER, Role.COMPLIANCE)
ERROR_RESPONSES = {400: OpenApiResponse(ConsentErrorSerializer, description="Invalid input or refused by a rule")}

REQUEST_EXAMPLE = {
    "id": 88,
    "reference": {"id": 41, "title": "Customs automation with Customs Cloud"},
    "contact": {"id": 30, "name": "Ingrid Solberg", "email": "ingrid@fjord.example", "is_authorised_signatory": True},
    "kind": "request",
    "status": "answered",
    "scopes": ["call", "quote", "logo"],
    "texts": {"quote": "“Customs delays fell by 60% in two quarters.” — Head of Operations"},
    "previous_texts": {},
    "message": "We would love to mention you at our customer day.",
    "requested_by": "marco",
    "sent_at": "2026-03-02T09:15:00Z",
    "expires_at": "2026-04-01T09:15:00Z",
    "answered_at": "2026-03-03T16:40:12Z",
    "outcomes": [
        {"scope": "call", "party": "individual", "outcome": "granted", "valid_until": "2027-03-03T16:40:12Z",
         "event_sequence": 412},
        {"scope": "quote", "party": "individual", "outcome": "granted", "valid_until": "2027-03-03T16:40:12Z",
         "event_sequence": 413},
        {"scope": "logo", "party": "company", "outcome": "declined", "valid_until": None, "event_sequence": 414},
    ],
    "created_at": "2026-03-02T09:15:00Z",
    "updated_at": "2026-03-03T16:40:12Z",
}  # fmt: skip


class ConsentApiMixin:
    @property
    def role(self) -> str:
        return self.request._request.membership.role  # type: ignore[attr-defined]

    @property
    def organization(self) -> Any:
        return self.request._request.organization  # type: ignore[attr-defined]


@extend_schema_view(
    list=extend_schema(
        summary="List consent requests",
        description="Filter by `status`, `kind`, `reference`, `contact`; order by `created_at`, `sent_at`, "
        "`expires_at`, `answered_at`. Each carries, per scope asked, the customer's answer from the ledger.",
        tags=["consent-requests"],
        examples=[OpenApiExample("A page of requests", value=[REQUEST_EXAMPLE], response_only=True)],
    ),
    retrieve=extend_schema(
        summary="One consent request: its status, the exact texts shown and the answer per scope",
        tags=["consent-requests"],
        examples=[OpenApiExample("An answered request", value=REQUEST_EXAMPLE, response_only=True)],
    ),
)
class ConsentRequestViewSet(ConsentApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """What was asked of whom, word for word, and what they answered."""

    model = ConsentRequest
    serializer_class = ConsentRequestOutputSerializer
    read_roles = READERS
    write_roles = MANAGERS
    filterset_class = filters.ConsentRequestFilter
    ordering_fields = ["created_at", "sent_at", "expires_at", "answered_at", "status"]

    def scope_queryset(self, queryset: QuerySet[ConsentRequest]) -> QuerySet[ConsentRequest]:
        # One query per page for every request's answers, whatever the page size.
        answers = Prefetch(
            "events",
            queryset=ConsentEvent.objects.filter(
                kind__in=(ConsentEventKind.GRANTED, ConsentEventKind.RECONFIRMED, ConsentEventKind.DECLINED)
            ).order_by("sequence"),
            to_attr="answer_events",
        )
        return (
            queryset.select_related("reference", "contact", "requested_by")
            .prefetch_related(answers)
            .order_by("-created_at", "-id")
        )

    def _output(self, consent_request: ConsentRequest, code: int = status.HTTP_200_OK) -> Response:
        consent_request = self.get_queryset().get(pk=consent_request.pk)
        return Response(ConsentRequestOutputSerializer(consent_request).data, status=code)

    @extend_schema(
        summary="Ask a customer for consent (reference managers, admins)",
        description="Sends the consent email after commit. Refused with 400 when the person cannot give a scope "
        "(a company scope needs an authorised signatory of the account, the others the advocate), when they "
        "paused requests, when no privacy policy is published, or when a quote or case study has no text yet. "
        "Another organization's reference or contact does not exist here.",
        tags=["consent-requests"],
        request=ConsentRequestInputSerializer,
        responses={201: ConsentRequestOutputSerializer, **ERROR_RESPONSES},
        examples=[
            OpenApiExample(
                "Ask for a call and a quote",
                value={"reference": 41, "contact": 30, "scopes": ["call", "quote"], "message": "For our customer day."},
                request_only=True,
            ),
            OpenApiExample(
                "Refused: not a signatory",
                value={"scopes": ["Only an authorised signatory of Fjord Freight AS can give the company's consent "
                                  "to logo."]},
                response_only=True,
                status_codes=["400"],
            ),
        ],
    )  # fmt: skip
    def create(self, request: Request) -> Response:
        data = ConsentRequestInputSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        values = data.validated_data
        consent_request = services.consent_request_create(
            organization=self.organization,
            actor=request.user,
            reference=values["reference"],
            contact=values["contact"],
            scopes=values["scopes"],
            message=values["message"],
        )
        return self._output(consent_request, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Cancel an open request (reference managers, admins); its links stop working at once",
        tags=["consent-requests"],
        request=None,
        responses={200: ConsentRequestOutputSerializer, **ERROR_RESPONSES},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        consent_request = self.get_object()
        services.consent_request_cancel(
            organization=self.organization, actor=request.user, consent_request=consent_request
        )
        return self._output(consent_request)


@extend_schema_view(
    list=extend_schema(
        summary="The consent ledger (admins, reference managers, compliance)",
        description="Append-only and hash-chained: each event's `hash` covers its content and `previous_hash`. "
        "Newest first by default; filter by `kind`, `scope`, `party`, `mechanism`, `reference`, `contact`, "
        "`consent_request`, `sequence_min`/`sequence_max` and `occurred_after`/`occurred_before`.",
        tags=["consent-events"],
    ),
    retrieve=extend_schema(summary="One ledger event", tags=["consent-events"]),
)
class ConsentEventViewSet(ConsentApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Read-only: the ledger changes only through the consent services."""

    model = ConsentEvent
    serializer_class = ConsentEventOutputSerializer
    read_roles = READERS
    write_roles = ()
    filterset_class = filters.ConsentEventFilter
    ordering_fields = ["sequence", "occurred_at"]

    def scope_queryset(self, queryset: QuerySet[ConsentEvent]) -> QuerySet[ConsentEvent]:
        return queryset.select_related("actor").order_by("-sequence")


@extend_schema_view(
    list=extend_schema(
        summary="Where each consent stands (admins, reference managers, compliance)",
        description="One row per reference, scope and party: the ledger added up. Filter by `status`, `scope`, "
        "`party`, `reference`, `contact` and `valid_until_before` (with `status=granted`: what lapses soon).",
        tags=["consent-states"],
    ),
    retrieve=extend_schema(summary="One consent state", tags=["consent-states"]),
)
class ConsentStateViewSet(ConsentApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Read-only: states move only with the ledger (and can be rebuilt from it)."""

    model = ConsentState
    serializer_class = ConsentStateOutputSerializer
    read_roles = READERS
    write_roles = ()
    filterset_class = filters.ConsentStateFilter
    ordering_fields = ["valid_until", "updated_at", "last_sequence"]

    def scope_queryset(self, queryset: QuerySet[ConsentState]) -> QuerySet[ConsentState]:
        return queryset.select_related("reference", "contact").order_by("reference_id", "scope", "party")


__all__ = ["ConsentEventViewSet", "ConsentRequestViewSet", "ConsentStateViewSet"]
