"""/api/v1/privacy-policies/: the organization's privacy policy versions.

Thin views on :class:`refmgr.tenancy.api.TenantScopedViewSet`. Every member
reads the published versions; admins also see drafts, write them and
publish them. A published version never changes: the services refuse with
an ``ApplicationError``, which the base turns into a 400.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from refmgr.tenancy.api import TenantScopedViewSet
from refmgr.tenancy.models import Role

from .. import selectors, services
from ..models import PolicyStatus, PrivacyPolicy
from .serializers import PrivacyErrorSerializer, PrivacyPolicyInputSerializer, PrivacyPolicyOutputSerializer

TAGS = ["privacy-policies"]
ERROR_RESPONSES = {
    400: OpenApiResponse(PrivacyErrorSerializer, description="Invalid input or refused by a business rule")
}

POLICY_EXAMPLE = {
    "id": 12,
    "version": 2,
    "status": "published",
    "is_current": True,
    "title": "Privacy policy for our customer reference programme",
    "body": "Who we are\n\nNorthwind Software runs a customer reference programme…",
    "summary_of_changes": "Usage history is now kept for three years instead of five.",
    "effective_date": "2026-05-01",
    "published_at": "2026-04-17T09:30:00Z",
    "published_by": "nina",
    "created_by": "nina",
    "created_at": "2026-04-15T14:02:00Z",
    "updated_at": "2026-04-17T09:30:00Z",
}
PUBLISHED_REFUSAL = OpenApiExample(
    "Refused: already published",
    value={"non_field_errors": ["Version 2 is published and can no longer be changed; start a new draft instead."]},
    response_only=True,
    status_codes=["400"],
)


class PrivacyPolicyFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=PolicyStatus.choices)

    class Meta:
        model = PrivacyPolicy
        fields = ["status"]


@extend_schema_view(
    list=extend_schema(
        summary="List privacy policy versions",
        description="Newest first. Admins see drafts too; other members see published versions only. "
        "`is_current` marks the version in force today.",
        tags=TAGS,
        examples=[OpenApiExample("A page of versions", value=[POLICY_EXAMPLE], response_only=True)],
    ),
    retrieve=extend_schema(
        summary="One privacy policy version",
        tags=TAGS,
        examples=[OpenApiExample("A published version", value=POLICY_EXAMPLE, response_only=True)],
    ),
)
class PrivacyPolicyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Versions of the organization's privacy policy: drafts, then published for good."""

    model = PrivacyPolicy
    serializer_class = PrivacyPolicyOutputSerializer
    read_roles = tuple(Role.values)
    write_roles = (Role.ADMIN,)
    filterset_class = PrivacyPolicyFilter
    search_fields = ["title"]
    ordering_fields = ["version", "effective_date", "published_at"]

    @property
    def organization(self) -> Any:
        return self.request._request.organization  # type: ignore[attr-defined]

    def scope_queryset(self, queryset: QuerySet[PrivacyPolicy]) -> QuerySet[PrivacyPolicy]:
        queryset = queryset.select_related("created_by", "published_by").order_by("-version")
        if self.request._request.membership.role != Role.ADMIN:  # type: ignore[attr-defined]
            # Drafts are work in progress; everyone else sees what is (or will be) public.
            queryset = queryset.filter(status=PolicyStatus.PUBLISHED)
        return queryset

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False):
            current = selectors.privacy_policy_current(organization=self.organization)
            context["current_id"] = current.pk if current is not None else None
        return context

    def _output(self, policy: PrivacyPolicy, code: int = status.HTTP_200_OK) -> Response:
        policy = self.get_queryset().get(pk=policy.pk)
        return Response(PrivacyPolicyOutputSerializer(policy, context=self.get_serializer_context()).data, status=code)

    @extend_schema(
        summary="Start a draft version",
        description="Admins. The version number is assigned: one above the organization's highest.",
        tags=TAGS,
        request=PrivacyPolicyInputSerializer,
        responses={201: PrivacyPolicyOutputSerializer, **ERROR_RESPONSES},
        examples=[
            OpenApiExample(
                "A new draft",
                value={
                    "title": "Privacy policy for our customer reference programme",
                    "body": "Who we are\n\nNorthwind Software runs a customer reference programme…",
                    "summary_of_changes": "Usage history is now kept for three years instead of five.",
                    "effective_date": "2026-05-01",
                },
                request_only=True,
            )
        ],
    )
    def create(self, request: Request) -> Response:
        data = PrivacyPolicyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        policy = services.privacy_policy_draft_create(
            organization=self.organization, actor=request.user, **data.validated_data
        )
        return self._output(policy, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a draft",
        description="Admins. A published version is refused with a 400: write a new draft instead.",
        tags=TAGS,
        request=PrivacyPolicyInputSerializer,
        responses={200: PrivacyPolicyOutputSerializer, **ERROR_RESPONSES},
        examples=[
            OpenApiExample("Move the effective date", value={"effective_date": "2026-06-01"}, request_only=True),
            PUBLISHED_REFUSAL,
        ],
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        policy = self.get_object()
        data = PrivacyPolicyInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        policy = services.privacy_policy_draft_update(
            organization=self.organization, policy=policy, actor=request.user, **data.validated_data
        )
        return self._output(policy)

    @extend_schema(
        summary="Delete a draft",
        description="Admins. A published version is refused with a 400: it stays forever.",
        tags=TAGS,
        request=None,
        responses={204: OpenApiResponse(description="Deleted"), **ERROR_RESPONSES},
        examples=[PUBLISHED_REFUSAL],
    )
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        policy = self.get_object()
        services.privacy_policy_draft_delete(organization=self.organization, policy=policy, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Publish a draft",
        description="Admins. The version becomes public at once and applies from its effective date, which must "
        "be today or later and not before that of a version already published. Any version after the first "
        "needs a summary of changes. Refusals are a 400.",
        tags=TAGS,
        request=None,
        responses={200: PrivacyPolicyOutputSerializer, **ERROR_RESPONSES},
        examples=[
            OpenApiExample(
                "Refused: effective date in the past",
                value={"effective_date": ["The effective date is in the past; choose today or a later date."]},
                response_only=True,
                status_codes=["400"],
            ),
            PUBLISHED_REFUSAL,
        ],
    )
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str | None = None) -> Response:
        policy = self.get_object()
        policy = services.privacy_policy_publish(organization=self.organization, policy=policy, actor=request.user)
        return self._output(policy)


__all__ = ["PrivacyPolicyViewSet"]
