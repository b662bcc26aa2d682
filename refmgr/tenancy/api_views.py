"""API resources of the tenancy app."""

from __future__ import annotations

from rest_framework import mixins, serializers

from .api import TenantScopedViewSet
from .models import Membership, Role


class MembershipViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The organization's members and their roles (admins only)."""

    class OutputSerializer(serializers.ModelSerializer):
        username = serializers.CharField(source="user.username", read_only=True)
        email = serializers.EmailField(source="user.email", read_only=True)

        class Meta:
            ref_name = "Member"
            model = Membership
            fields = ["id", "username", "email", "role", "is_active", "created_at"]

    model = Membership
    serializer_class = OutputSerializer
    read_roles = (Role.ADMIN,)
    search_fields = ["user__username", "user__email"]
    ordering_fields = ["created_at", "role"]
    filterset_fields = ["role", "is_active"]

    def scope_queryset(self, queryset):  # type: ignore[no-untyped-def]
        return queryset.select_related("user").order_by("user__username")
