"""Django admin for the privacy app, through refmgr.tenancy.admin.TenantAdmin.

Versions are numbered and published by ``privacy.services`` (the admins'
privacy pages), so Django admin adds none and publishes none: it lets an
admin audit every version, correct a draft's text, and nothing more. A
published version is read-only here as everywhere.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from refmgr.tenancy.admin import TenantAdmin

from .models import PrivacyPolicy


@admin.register(PrivacyPolicy)
class PrivacyPolicyAdmin(TenantAdmin):
    list_display = ("version", "title", "status", "effective_date", "published_at", "published_by")
    list_display_links = ("version", "title")
    list_filter = ("status",)
    search_fields = ("title",)
    list_select_related = ("published_by", "organization")
    fields = (
        "version",
        "status",
        "title",
        "effective_date",
        "summary_of_changes",
        "body",
        "published_at",
        "published_by",
        "created_by",
    )
    readonly_fields = ("version", "status", "published_at", "published_by", "created_by")
    actions = ["export_csv"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the version number is the service's to assign: use the privacy pages

    def has_change_permission(self, request: HttpRequest, obj: PrivacyPolicy | None = None) -> bool:
        return super().has_change_permission(request, obj) and (obj is None or obj.is_draft)

    def has_delete_permission(self, request: HttpRequest, obj: PrivacyPolicy | None = None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or obj.is_draft)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # The bulk delete would not look at each row's status; drafts are deleted one at a time.
        actions.pop("delete_selected", None)
        return actions
