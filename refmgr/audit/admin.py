"""The audit log in Django admin: read-only, filterable, exportable."""

from __future__ import annotations

from django.contrib import admin

from refmgr.tenancy.admin import ReadOnlyTenantAdmin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyTenantAdmin):
    list_display = ("created_at", "actor_label", "action", "object_type", "object_repr")
    list_filter = ("action", ("created_at", admin.DateFieldListFilter), "actor_label")
    search_fields = ("action", "object_repr", "actor_label", "object_id")
    date_hierarchy = "created_at"
    list_select_related = ("organization",)
    csv_fields = ("created_at", "actor_label", "action", "object_type", "object_id", "object_repr", "details")
