"""/api/v1/audit-events/: the audit log, read-only."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import mixins, serializers

from refmgr.tenancy.api import TenantScopedViewSet
from refmgr.tenancy.models import Role

from .models import AuditEvent


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Every recorded state change of the organization, newest first (admins and compliance)."""

    class OutputSerializer(serializers.ModelSerializer):
        actor = serializers.CharField(source="actor_label", read_only=True)

        class Meta:
            ref_name = "AuditEvent"
            model = AuditEvent
            fields = ["id", "created_at", "actor", "action", "object_type", "object_id", "object_repr", "details"]

    model = AuditEvent
    serializer_class = OutputSerializer
    read_roles = (Role.ADMIN, Role.COMPLIANCE)
    write_roles = ()
    filterset_fields = {"action": ["exact", "startswith"], "created_at": ["gte", "lte"], "actor_label": ["exact"]}
    search_fields = ["action", "object_repr", "actor_label"]
    ordering_fields = ["created_at", "action"]

    def scope_queryset(self, queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        return queryset.order_by("-created_at", "-id")
