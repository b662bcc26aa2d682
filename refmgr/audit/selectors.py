"""Reading the audit log."""

from __future__ import annotations

from django.db.models import QuerySet

from refmgr.tenancy.context import assert_current_organization
from refmgr.tenancy.models import Organization

from .models import AuditEvent


def audit_event_list(*, organization: Organization) -> QuerySet[AuditEvent]:
    """The organization's audit events, newest first."""
    assert_current_organization(organization)
    return AuditEvent.objects.select_related("actor").order_by("-created_at", "-id")
