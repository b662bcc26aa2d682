"""The REST API's tenancy layer: token authentication, role permissions and the base viewset.

Every API view inherits :class:`TenantScopedViewSet` (or :class:`TenantScopedAPIView`);
a meta-test walks the URLconf and fails if one does not.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model, QuerySet
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.generators import SchemaGenerator
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from refmgr.common.exceptions import ApplicationError

from .authentication import HasRole, OrganizationTokenAuthentication
from .context import tenant_context
from .models import Organization, Role


def application_error_response(error: ApplicationError) -> Response:
    """400 with the message under its field; ``extra`` adds field errors and ``available_from``."""
    body: dict[str, Any] = {}
    for key, value in error.extra.items():
        if isinstance(value, list):
            body[key] = [str(v) for v in value]
        elif key == "available_from":
            body[key] = value
    body[error.field or "non_field_errors"] = [error.message]
    return Response(body, status=status.HTTP_400_BAD_REQUEST)


class TenantScopedMixin:
    """Start every queryset from the model's scoped manager (never ``all_tenants``)."""

    model: type[Model] | None = None
    authentication_classes = [OrganizationTokenAuthentication]
    permission_classes = [HasRole]
    read_roles: tuple[str, ...] = tuple(Role.values)
    write_roles: tuple[str, ...] = (Role.ADMIN,)

    def get_queryset(self) -> QuerySet[Any]:
        if self.model is None:
            raise ImproperlyConfigured(f"{type(self).__name__} must set `model`")
        if getattr(self, "swagger_fake_view", False):
            # Schema generation runs without a request organization.
            return self.model.all_tenants.none()  # type: ignore[attr-defined]
        return self.scope_queryset(self.model.objects.all())  # type: ignore[attr-defined]

    def handle_exception(self, exc: Exception) -> Response:
        # A business rule's refusal is the client's to fix: 400 under the field at fault.
        if isinstance(exc, ApplicationError):
            return application_error_response(exc)
        return super().handle_exception(exc)  # type: ignore[misc]

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Narrow further (select_related, guardian object permissions); organization scoping is done."""
        return queryset


class TenantScopedViewSet(TenantScopedMixin, viewsets.GenericViewSet):
    pass


class TenantScopedAPIView(TenantScopedMixin, APIView):
    pass


class OrganizationFreeSchemaGenerator(SchemaGenerator):
    """Generates the OpenAPI schema inside a placeholder organization that owns no rows.

    Schema generation builds (but never runs) querysets, e.g. django-filter
    resolving lookups through the default manager, which refuses to work
    without an organization. The placeholder (id 0, never saved) satisfies
    it while guaranteeing that any query that did run would match nothing.
    Used by /api/schema/ and `manage.py spectacular` alike.
    """

    def get_schema(self, request: Request | None = None, public: bool = False) -> dict[str, Any]:
        with tenant_context(Organization(pk=0, slug="schema", name="schema")):
            return super().get_schema(request=request, public=public)


class OrganizationTokenScheme(OpenApiAuthenticationExtension):
    """Documents ``Authorization: Token <key>`` in the schema and the interactive docs."""

    target_class = "refmgr.tenancy.authentication.OrganizationTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>`; create a key on your tokens page or with `manage.py api_token`.",
        }
