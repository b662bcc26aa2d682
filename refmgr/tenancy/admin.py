"""Django admin, tenant-aware: the base every refmgr ModelAdmin registers through.

Staff see and change only the rows of the organization they are working in
(the middleware sets it from their session, admins only); superusers see
every organization's rows. New rows are stamped with the working organization.
"""

from __future__ import annotations

import csv
import json
from typing import Any

from django.contrib import admin
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from refmgr.audit.services import record

from .admin_site import is_org_admin
from .context import tenant_context
from .models import ApiToken, Invitation, Membership, Organization

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> str:
    """A cell a spreadsheet will not run: text starting like a formula gets a leading quote."""
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, default=str)
    text = "" if value is None else str(value)
    # Spreadsheets skip leading blanks before deciding that a cell is a formula.
    return "'" + text if text.lstrip(" ").startswith(FORMULA_PREFIXES) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


class TenantAdmin(admin.ModelAdmin):
    """Scope to the working organization; superusers see all organizations."""

    list_per_page = 50
    show_full_result_count = False
    csv_fields: tuple[str, ...] = ()

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        model = self.model
        # For superusers the middleware allowed cross-organization reads in the database too.
        queryset = model.all_tenants.all() if request.user.is_superuser else model.objects.all()
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    def _allowed(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and (request.user.is_superuser or is_org_admin(request)))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request) and getattr(request, "organization", None) is not None

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed(request)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed(request)

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        if not change:
            obj.organization = request.organization  # type: ignore[attr-defined]
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            # Admin edits bypass the services, so they are audited here.
            with tenant_context(obj.organization):  # type: ignore[attr-defined]
                record(
                    organization=obj.organization,  # type: ignore[attr-defined]
                    actor=request.user,
                    action="admin.changed" if change else "admin.created",
                    target=obj,
                    details={"fields": sorted(form.changed_data)} if form is not None else {},
                )

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        with transaction.atomic(), tenant_context(obj.organization):  # type: ignore[attr-defined]
            record(organization=obj.organization, actor=request.user, action="admin.deleted", target=obj)  # type: ignore[attr-defined]
            super().delete_model(request, obj)

    def get_list_display(self, request: HttpRequest) -> Any:
        fields = super().get_list_display(request)
        if request.user.is_superuser and "organization" not in fields:
            return (*fields, "organization")
        return fields

    @admin.action(description="Export selected rows as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse:
        fields = self.csv_fields or tuple(f.name for f in self.model._meta.concrete_fields)
        # Evaluated now, inside the request's organization scope, not while streaming.
        rows = [[csv_safe(getattr(obj, name)) for name in fields] for obj in queryset.iterator(chunk_size=2000)]
        writer = csv.writer(_Echo())
        body = (writer.writerow(row) for row in [list(fields), *rows])
        response = StreamingHttpResponse(body, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{self.model._meta.model_name}.csv"'
        return response


class ReadOnlyTenantAdmin(TenantAdmin):
    """For ledgers: nothing can be added, changed or deleted, here or anywhere."""

    actions = ["export_csv"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "is_active", "created_at")
    search_fields = ("name", "slug")
    list_filter = ("is_active",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organization]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        organization = getattr(request, "organization", None)
        return queryset.filter(pk=organization.pk) if organization else queryset.none()

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser or is_org_admin(request))

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Membership)
class MembershipAdmin(ReadOnlyTenantAdmin):
    list_display = ("user", "role", "is_active", "created_at")
    list_filter = ("role", "is_active")
    search_fields = ("user__username", "user__email")
    list_select_related = ("user", "organization")
    raw_id_fields = ("user",)


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyTenantAdmin):
    list_display = ("email", "role", "invited_by", "created_at", "sent_at", "accepted_at", "revoked_at")
    list_filter = ("role",)
    search_fields = ("email",)
    list_select_related = ("invited_by", "organization")
    readonly_fields = ("invited_by", "expires_at", "sent_at", "accepted_at", "accepted_by", "revoked_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # invitations are sent from the members page, which emails the link


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyTenantAdmin):
    list_display = ("prefix", "name", "membership", "created_at", "last_used_at", "revoked_at")
    list_select_related = ("membership__user", "organization")
    readonly_fields = ("membership", "prefix", "last_used_at")
    search_fields = ("name", "prefix", "membership__user__username")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created by `manage.py api_token` or the tokens page, which show the key once
