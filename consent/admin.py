"""Django admin for the consent app, through refmgr.tenancy.admin.TenantAdmin.

The ledger, the states it adds up to, the links and the outbox are written
only by the consent services (which chain, audit and email): here they are
read-only, so an admin can audit them but never rewrite them. Requests and
takedowns change through the pages, where the rules are applied; their
snapshots and decisions are read-only here too.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from refmgr.tenancy.admin import ReadOnlyTenantAdmin, TenantAdmin

from .models import ConsentEvent, ConsentMessage, ConsentRequest, ConsentSettings, ConsentState, TakedownTask


@admin.register(ConsentSettings)
class ConsentSettingsAdmin(TenantAdmin):
    list_display = ("__str__", "link_valid_days", "grant_valid_months", "reminder_days", "takedown_due_days")
    list_select_related = ("organization",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the defaults come back by editing, not by deleting the row

    def has_add_permission(self, request: HttpRequest) -> bool:
        # One row per organization: a second would break the unique constraint (a 500), not help.
        return super().has_add_permission(request) and not self.get_queryset(request).exists()


@admin.register(ConsentRequest)
class ConsentRequestAdmin(TenantAdmin):
    list_display = ("reference", "contact", "kind", "status", "sent_at", "expires_at", "answered_at", "created_at")
    list_filter = ("status", "kind", ("created_at", admin.DateFieldListFilter))
    search_fields = ("reference__title", "contact__name", "contact__email")
    list_select_related = ("reference", "contact", "organization")
    date_hierarchy = "created_at"
    # What the customer was shown is evidence: never edited after the fact.
    readonly_fields = (
        "reference",
        "contact",
        "kind",
        "status",
        "scopes",
        "texts",
        "fingerprints",
        "previous_texts",
        "message",
        "requested_by",
        "sent_at",
        "expires_at",
        "answered_at",
    )
    actions = ["export_csv"]
    csv_fields = ("created_at", "reference", "contact", "kind", "status", "scopes", "sent_at", "answered_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # requests are sent from the pages, which check the parties and email the link

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the ledger refers to them

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConsentRequest]:
        return super().get_queryset(request).select_related("reference", "contact")


@admin.register(ConsentEvent)
class ConsentEventAdmin(ReadOnlyTenantAdmin):
    """The consent ledger: filterable, exportable, never editable."""

    list_display = (
        "sequence",
        "occurred_at",
        "kind",
        "scope",
        "party",
        "reference",
        "contact",
        "mechanism",
        "valid_until",
        "actor",
    )
    list_filter = ("kind", "scope", "mechanism", "party", ("occurred_at", admin.DateFieldListFilter))
    search_fields = ("reference__title", "contact__name", "note", "hash", "text_hash")
    list_select_related = ("reference", "contact", "actor", "organization")
    date_hierarchy = "occurred_at"
    csv_fields = (
        "sequence",
        "occurred_at",
        "kind",
        "scope",
        "party",
        "reference",
        "contact",
        "valid_until",
        "publication",
        "policy_version",
        "text_hash",
        "mechanism",
        "proof",
        "ip_prefix",
        "user_agent_hash",
        "actor",
        "note",
        "previous_hash",
        "hash",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConsentEvent]:
        # The CSV export reads reference, contact and actor per row: join them once.
        return super().get_queryset(request).select_related("reference", "contact", "actor")


@admin.register(ConsentState)
class ConsentStateAdmin(ReadOnlyTenantAdmin):
    """What the ledger adds up to, per reference, use and party (rebuilt by ``consent_state_check``)."""

    list_display = ("reference", "scope", "party", "contact", "status", "valid_until", "publication")
    list_filter = ("status", "scope", "party")
    search_fields = ("reference__title", "contact__name")
    list_select_related = ("reference", "contact", "organization")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConsentState]:
        return super().get_queryset(request).select_related("reference", "contact")


@admin.register(ConsentMessage)
class ConsentMessageAdmin(ReadOnlyTenantAdmin):
    """The email outbox. A row left in "sending" was interrupted: maybe sent, so never sent again."""

    list_display = ("kind", "status", "contact", "consent_request", "attempts", "last_error", "created_at", "sent_at")
    list_filter = ("status", "kind")
    search_fields = ("contact__name", "contact__email", "last_error", "dedupe_key")
    list_select_related = ("contact", "consent_request__reference", "organization")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConsentMessage]:
        return super().get_queryset(request).select_related("contact", "consent_request")


@admin.register(TakedownTask)
class TakedownTaskAdmin(TenantAdmin):
    list_display = ("reference", "scope", "usage_request", "assigned_to", "due_on", "status", "closed_at")
    list_filter = ("status", "scope", ("due_on", admin.DateFieldListFilter))
    search_fields = ("reference__title", "usage_request__opportunity_name", "evidence")
    list_select_related = ("reference", "usage_request", "assigned_to", "organization")
    # Closing needs evidence and assigning needs a manager of this organization: both happen on
    # the takedowns page, through the services, not in a form here.
    readonly_fields = (
        "assigned_to",
        "reference",
        "scope",
        "usage_request",
        "revocation",
        "due_on",
        "status",
        "evidence",
        "evidence_file",
        "closed_by",
        "closed_at",
    )
    actions = ["export_csv"]
    csv_fields = ("reference", "scope", "usage_request", "assigned_to", "due_on", "status", "closed_at", "evidence")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # opened by a revocation, one per published use

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[TakedownTask]:
        # The use's reference too: its str() names it, once per row otherwise.
        return super().get_queryset(request).select_related("reference", "usage_request__reference", "assigned_to")
