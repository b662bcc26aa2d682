"""Django admin for the references app, through refmgr.tenancy.admin.TenantAdmin.

Grants, holds, notifications and the usage ledger are verdicts or history
written by services (consent, reviews, usage): read-only here, so the admin
can audit them but never rewrite them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from refmgr.tenancy.admin import ReadOnlyTenantAdmin, TenantAdmin

from .models import (
    Account,
    Contact,
    Incentive,
    Reference,
    ReferenceAsset,
    ReferenceGroupObjectPermission,
    ReferenceHold,
    ReferenceLabel,
    ReferenceScopeGrant,
    ReferenceSettings,
    ReferenceUserObjectPermission,
    ReviewFlag,
    UsageEvent,
    UsageNotification,
    UsageRequest,
)


class TenantInlineMixin:
    """Inline rows start from the scoped manager and are stamped with the working organization."""

    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        model = self.model  # type: ignore[attr-defined]
        return model.all_tenants.all() if request.user.is_superuser else model.objects.all()


class ReferenceLabelInline(TenantInlineMixin, admin.TabularInline):
    model = ReferenceLabel
    fields = ("kind", "value")


class ReferenceAssetInline(TenantInlineMixin, admin.StackedInline):
    model = ReferenceAsset
    fields = ("kind", "title", "text", "file", "url")
    show_change_link = True


class ReadOnlyInline(TenantInlineMixin, admin.TabularInline):
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ScopeGrantInline(ReadOnlyInline):
    model = ReferenceScopeGrant
    fields = ("scope", "granted_until", "source")
    readonly_fields = fields


class HoldInline(ReadOnlyInline):
    model = ReferenceHold
    fields = ("kind", "reason", "source", "released_at")
    readonly_fields = fields


@admin.register(ReferenceSettings)
class ReferenceSettingsAdmin(TenantAdmin):
    list_display = ("__str__", "usage_cap", "usage_window_days", "cooldown_days", "updated_at")
    list_select_related = ("organization",)


@admin.register(Account)
class AccountAdmin(TenantAdmin):
    list_display = ("name", "industry", "region", "size_band", "crm_id", "updated_at")
    list_filter = ("size_band", "region", "industry")
    search_fields = ("name", "crm_id", "industry")
    list_select_related = ("organization",)


@admin.register(Contact)
class ContactAdmin(TenantAdmin):
    list_display = ("name", "title", "account", "email", "is_authorised_signatory", "requests_paused")
    list_filter = ("is_authorised_signatory", "requests_paused")
    search_fields = ("name", "email", "title", "account__name")
    list_select_related = ("account", "organization")
    raw_id_fields = ("account",)


@admin.register(Reference)
class ReferenceAdmin(TenantAdmin):
    list_display = ("title", "account", "advocate", "publication", "status", "restricted", "updated_at")
    list_filter = ("status", "publication", "restricted", "account__industry", "account__region")
    search_fields = ("title", "summary", "account__name")
    list_select_related = ("account", "advocate", "organization")
    raw_id_fields = ("account", "advocate", "owner")
    # Restriction is changed on the access page, which keeps the permission rows in step.
    readonly_fields = ("restricted", "retired_at")
    inlines = [ReferenceLabelInline, ReferenceAssetInline, ScopeGrantInline, HoldInline]

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        # New inline rows belong to the reference's organization (a superuser works across organizations).
        instances = formset.save(commit=False)
        for instance in instances:
            if instance.organization_id is None:
                instance.organization = form.instance.organization
            instance.save()
        for obj in formset.deleted_objects:
            obj.delete()
        formset.save_m2m()


@admin.register(ReferenceAsset)
class ReferenceAssetAdmin(TenantAdmin):
    list_display = ("__str__", "kind", "reference", "updated_at")
    list_filter = ("kind",)
    search_fields = ("title", "text", "reference__title")
    list_select_related = ("reference", "organization")
    raw_id_fields = ("reference",)


@admin.register(UsageRequest)
class UsageRequestAdmin(TenantAdmin):
    list_display = ("reference", "scope", "requested_by", "opportunity_name", "status", "needed_by", "created_at")
    list_filter = ("status", "scope", "outcome")
    search_fields = ("opportunity_name", "crm_opportunity_id", "reference__title", "requested_by__username")
    list_select_related = ("reference", "requested_by", "organization")
    date_hierarchy = "created_at"
    # Decisions go through the services (fatigue checks, ledger, emails), never a form.
    readonly_fields = (
        "reference",
        "scope",
        "requested_by",
        "status",
        "decided_by",
        "decided_at",
        "decision_reason",
        "outcome",
        "completed_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ReferenceScopeGrant)
class ReferenceScopeGrantAdmin(ReadOnlyTenantAdmin):
    list_display = ("reference", "scope", "granted_until", "source")
    list_filter = ("scope",)
    search_fields = ("reference__title", "source")
    list_select_related = ("reference", "organization")


@admin.register(ReferenceHold)
class ReferenceHoldAdmin(ReadOnlyTenantAdmin):
    list_display = ("reference", "kind", "reason", "source", "created_at", "released_at")
    list_filter = ("kind", ("released_at", admin.EmptyFieldListFilter))
    search_fields = ("reference__title", "reason", "source")
    list_select_related = ("reference", "organization")


@admin.register(UsageNotification)
class UsageNotificationAdmin(ReadOnlyTenantAdmin):
    list_display = ("usage_request", "event", "status", "created_at")
    list_filter = ("event", "status")
    list_select_related = ("usage_request__reference", "organization")


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyTenantAdmin):
    """The usage ledger: who used which reference for which deal, exportable as CSV."""

    list_display = (
        "created_at",
        "salesperson_label",
        "reference",
        "contact",
        "scope",
        "opportunity_name",
        "crm_opportunity_id",
        "kind",
        "outcome",
    )
    list_filter = ("kind", "scope", "outcome", ("created_at", admin.DateFieldListFilter))
    search_fields = ("salesperson_label", "opportunity_name", "crm_opportunity_id", "reference__title")
    list_select_related = ("reference", "contact", "organization")
    date_hierarchy = "created_at"
    csv_fields = (
        "created_at",
        "salesperson_label",
        "reference",
        "contact",
        "scope",
        "opportunity_name",
        "crm_opportunity_id",
        "outcome",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[UsageEvent]:
        # The CSV export reads reference and contact per row: join them once.
        return super().get_queryset(request).select_related("reference", "contact")


@admin.register(ReferenceUserObjectPermission)
class ReferenceUserPermissionAdmin(ReadOnlyTenantAdmin):
    """Who may see restricted references (change them on the reference's access page)."""

    list_display = ("content_object", "user", "permission", "created_at")
    search_fields = ("content_object__title", "user__username")
    # A permission's str() names its content type: join it, or it is a query per row.
    list_select_related = ("content_object", "user", "permission__content_type", "organization")


@admin.register(ReferenceGroupObjectPermission)
class ReferenceGroupPermissionAdmin(ReadOnlyTenantAdmin):
    list_display = ("content_object", "group", "permission", "created_at")
    search_fields = ("content_object__title", "group__name")
    # A permission's str() names its content type: join it, or it is a query per row.
    list_select_related = ("content_object", "group", "permission__content_type", "organization")


@admin.register(Incentive)
class IncentiveAdmin(ReadOnlyTenantAdmin):
    """Read-only: incentives are recorded on the pages and the API, through the service
    (which refuses sentiment-conditioned incentives, queues the flagging and audits)."""

    list_display = ("given_on", "kind", "value", "currency", "account", "contact", "condition", "given_by")
    list_filter = ("kind", "condition", "currency", ("given_on", admin.DateFieldListFilter))
    search_fields = ("note", "given_by", "account__name", "contact__name")
    list_select_related = ("account", "contact", "organization")
    date_hierarchy = "given_on"
    csv_fields = ("given_on", "kind", "value", "currency", "account", "contact", "condition", "given_by", "note")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Incentive]:
        return super().get_queryset(request).select_related("account", "contact")


@admin.register(ReviewFlag)
class ReviewFlagAdmin(ReadOnlyTenantAdmin):
    """Compliance decisions are made in the review queue (separation of duties, audit); here they are read-only."""

    list_display = ("reference", "reason", "status", "incentive", "resolved_by", "resolved_at", "created_at")
    list_filter = ("status", ("created_at", admin.DateFieldListFilter))
    search_fields = ("reference__title", "reason", "matched_text", "justification", "disclosure")
    list_select_related = ("reference", "incentive", "resolved_by", "organization")
    csv_fields = (
        "created_at",
        "reference",
        "reason",
        "matched_text",
        "status",
        "resolved_by",
        "resolved_at",
        "justification",
        "disclosure",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReviewFlag]:
        # The CSV export reads the reference and the reviewer per row: join them once. The incentive
        # too: a queryset that already joins something makes the changelist skip list_select_related.
        return super().get_queryset(request).select_related("reference", "resolved_by", "incentive")
