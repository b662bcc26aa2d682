"""Reading the audit log."""

from __future__ import annotations

from django.db.models import QuerySet

from refmgr.tenancy.context import get_current_organization
from refmgr.tenancy.models import Organization

from .models import AuditEvent


def audit_event_list(*, organization: Organization) -> QuerySet[AuditEvent]:
    """The organization's audit events, newest first."""
    if get_current_organization().pk != organization.pk:
        raise ValueError("The organization passed does not match the current organization context")
    return AuditEvent.objects.select_related("actor").order_by("-created_at", "-id")
