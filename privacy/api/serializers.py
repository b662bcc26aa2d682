"""Serializers of /api/v1/privacy-policies/: shape only, the services decide."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import PrivacyPolicy


class PrivacyPolicyOutputSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.get_username", read_only=True, allow_null=True)
    published_by = serializers.CharField(source="published_by.get_username", read_only=True, allow_null=True)
    is_current = serializers.SerializerMethodField(
        help_text="Whether this is the version in force today (the one new consents point at)."
    )

    class Meta:
        ref_name = "PrivacyPolicy"
        model = PrivacyPolicy
        fields = [
            "id",
            "version",
            "status",
            "is_current",
            "title",
            "body",
            "summary_of_changes",
            "effective_date",
            "published_at",
            "published_by",
            "created_by",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(serializers.BooleanField())
    def get_is_current(self, policy: PrivacyPolicy) -> bool:
        # The view looks the current version up once per request, not once per row.
        return policy.pk is not None and policy.pk == self.context.get("current_id")


class PrivacyPolicyInputSerializer(serializers.Serializer):
    """A draft's fields. Every field is optional on PATCH; blanks and dates are checked by the service."""

    title = serializers.CharField(max_length=200)
    body = serializers.CharField(help_text="Plain text; a blank line starts a new paragraph.")
    summary_of_changes = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="What changed since the previous version; required to publish any version after the first.",
    )
    effective_date = serializers.DateField(help_text="The day the version starts to apply; today or later to publish.")

    class Meta:
        ref_name = "PrivacyPolicyInput"


class PrivacyErrorSerializer(serializers.Serializer):
    """A refused request: field names map to lists of messages."""

    non_field_errors = serializers.ListField(child=serializers.CharField(), required=False)
    effective_date = serializers.ListField(child=serializers.CharField(), required=False)
    summary_of_changes = serializers.ListField(child=serializers.CharField(), required=False)

    class Meta:
        ref_name = "PrivacyError"
