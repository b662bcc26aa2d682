"""The REST API's tenancy layer: token authentication, role permissions and the base viewset.

Every API view inherits :class:`TenantScopedViewSet` (or :class:`TenantScopedAPIView`);
a meta-test walks the URLconf and fails if one does not.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model, QuerySet
from drf_spectacular.views import SpectacularAPIView
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .authentication import HasRole, OrganizationTokenAuthentication
from .context import tenant_context
from .models import Organization, Role


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

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Narrow further (select_related, guardian object permissions); organization scoping is done."""
        return queryset


class TenantScopedViewSet(TenantScopedMixin, viewsets.GenericViewSet):
    pass


class TenantScopedAPIView(TenantScopedMixin, APIView):
    pass


class OrganizationFreeSchemaView(SpectacularAPIView):
    """The OpenAPI schema, generated inside a placeholder organization that owns no rows.

    Schema generation builds (but never runs) querysets, e.g. django-filter
    resolving lookups through the default manager, which refuses to work
    without an organization. The placeholder (id 0, never saved) satisfies
    it while guaranteeing that any query that did run would match nothing.
    """

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with tenant_context(Organization(pk=0, slug="schema", name="schema")):
            return super().get(request, *args, **kwargs)
