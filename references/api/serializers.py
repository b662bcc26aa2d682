"""Input and output serializers of the references API (HackSoft style: shape only, no writes).

Related-object fields look their rows up through the scoped managers at
request time, so an id of another organization is simply "does not exist"
(a 400 naming the field), never a link between organizations.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from refmgr.tenancy.models import Membership

from ..models import (
    Account,
    Contact,
    LabelKind,
    Outcome,
    Publication,
    Reference,
    Scope,
    SizeBand,
    UsageRequest,
)
from ..restrictions import restriction_filter


@extend_schema_field(OpenApiTypes.INT)
class ScopedPrimaryKeyField(serializers.PrimaryKeyRelatedField):
    """A primary key looked up through the model's organization-scoped manager when the request runs."""

    def __init__(self, model: type[Any], **kwargs: Any) -> None:
        self.scoped_model = model
        super().__init__(**kwargs)

    def get_queryset(self) -> QuerySet[Any]:
        return self.scoped_model.objects.all()


class VisibleReferenceField(ScopedPrimaryKeyField):
    """A reference the requesting user may see (organization scope and restrictions)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(Reference, **kwargs)

    def get_queryset(self) -> QuerySet[Any]:
        request = self.context["request"]
        return Reference.objects.filter(restriction_filter(user=request.user))


@extend_schema_field(OpenApiTypes.INT)
class MemberUserField(serializers.PrimaryKeyRelatedField):
    """A user who is an active member of the current organization."""

    def get_queryset(self) -> QuerySet[Any]:
        member_ids = Membership.objects.filter(is_active=True).values("user_id")
        return get_user_model().objects.filter(pk__in=member_ids)


# --- Accounts -----------------------------------------------------------------------------


class AccountOutputSerializer(serializers.ModelSerializer):
    class Meta:
        ref_name = "Account"
        model = Account
        fields = ["id", "name", "industry", "region", "size_band", "website", "crm_id", "created_at", "updated_at"]


class AccountInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    industry = serializers.CharField(max_length=100, required=False, allow_blank=True)
    region = serializers.CharField(max_length=100, required=False, allow_blank=True)
    size_band = serializers.ChoiceField(choices=SizeBand.choices, required=False, allow_blank=True)
    website = serializers.URLField(required=False, allow_blank=True)
    crm_id = serializers.CharField(max_length=100, required=False, allow_blank=True)

    class Meta:
        ref_name = "AccountInput"


class AccountBriefSerializer(serializers.ModelSerializer):
    class Meta:
        ref_name = "AccountBrief"
        model = Account
        fields = ["id", "name", "industry", "region", "size_band"]


# --- Contacts (personal data: never for sales) ---------------------------------------------


class ContactOutputSerializer(serializers.ModelSerializer):
    account = AccountBriefSerializer(read_only=True)

    class Meta:
        ref_name = "Contact"
        model = Contact
        fields = [
            "id",
            "account",
            "name",
            "title",
            "email",
            "phone",
            "is_authorised_signatory",
            "usage_cap",
            "cooldown_days",
            "requests_paused",
            "created_at",
            "updated_at",
        ]


class ContactInputSerializer(serializers.Serializer):
    account = ScopedPrimaryKeyField(Account)
    name = serializers.CharField(max_length=200)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    email = serializers.EmailField()
    phone = serializers.CharField(max_length=50, required=False, allow_blank=True)
    is_authorised_signatory = serializers.BooleanField(required=False)
    usage_cap = serializers.IntegerField(min_value=0, max_value=100, required=False, allow_null=True)
    cooldown_days = serializers.IntegerField(min_value=0, max_value=365, required=False, allow_null=True)

    class Meta:
        ref_name = "ContactInput"


# --- References ---------------------------------------------------------------------------


class AdvocateSerializer(serializers.Serializer):
    """The person who speaks for the customer; shown to sales only after their use was approved."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    title = serializers.CharField()
    email = serializers.EmailField()
    phone = serializers.CharField()

    class Meta:
        ref_name = "Advocate"


class ReferenceOutputSerializer(serializers.ModelSerializer):
    """A reference with what may be done with it now.

    ``usable_scopes`` and contact visibility come from the view's context
    (one query per page each, not per row).
    """

    account = serializers.SerializerMethodField()
    products = serializers.SerializerMethodField()
    use_cases = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    usable_scopes = serializers.SerializerMethodField()
    advocate_title = serializers.SerializerMethodField()
    advocate = serializers.SerializerMethodField()
    contact_details_visible = serializers.SerializerMethodField()

    class Meta:
        ref_name = "Reference"
        model = Reference
        fields = [
            "id",
            "title",
            "summary",
            "account",
            "publication",
            "status",
            "restricted",
            "disclosure",
            "products",
            "use_cases",
            "tags",
            "usable_scopes",
            "advocate_title",
            "contact_details_visible",
            "advocate",
            "owner",
            "created_at",
            "updated_at",
        ]

    # The nested shapes are read straight off the row: a nested serializer built per row (its fields
    # deep-copied each time) was a third of a 20-row page's serialisation (issue 6). Their fields are
    # those of AccountBriefSerializer and AdvocateSerializer, which the schema names (a test compares).
    @extend_schema_field(AccountBriefSerializer)
    def get_account(self, obj: Reference) -> dict[str, Any]:
        account = obj.account
        # Industry, region and size only: the company's identity is what an anonymised reference hides.
        hidden = obj.publication == Publication.ANONYMISED and not self.context.get("reveal_account")
        return {
            "id": None if hidden else account.pk,
            "name": None if hidden else account.name,
            "industry": account.industry,
            "region": account.region,
            "size_band": account.size_band,
        }

    def _labels(self, obj: Reference, kind: str) -> list[str]:
        return [label.value for label in obj.labels.all() if label.kind == kind]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_products(self, obj: Reference) -> list[str]:
        return self._labels(obj, LabelKind.PRODUCT)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_use_cases(self, obj: Reference) -> list[str]:
        return self._labels(obj, LabelKind.USE_CASE)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_tags(self, obj: Reference) -> list[str]:
        return self._labels(obj, LabelKind.TAG)

    @extend_schema_field(
        serializers.ListField(child=serializers.CharField(), help_text="Scopes usable now: " + ", ".join(Scope.values))
    )
    def get_usable_scopes(self, obj: Reference) -> list[str]:
        return sorted(self.context.get("usable_scopes", {}).get(obj.pk, ()))

    @extend_schema_field(OpenApiTypes.STR)
    def get_advocate_title(self, obj: Reference) -> str:
        return obj.advocate.title if obj.advocate is not None else ""

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_contact_details_visible(self, obj: Reference) -> bool:
        return self._details_visible(obj)

    def _details_visible(self, obj: Reference) -> bool:
        if self.context.get("all_contact_details"):
            return True
        return obj.pk in self.context.get("contact_details_for", set())

    @extend_schema_field(AdvocateSerializer(allow_null=True))
    def get_advocate(self, obj: Reference) -> dict[str, Any] | None:
        advocate = obj.advocate
        if advocate is None or not self._details_visible(obj):
            return None
        return {
            "id": advocate.pk,
            "name": advocate.name,
            "title": advocate.title,
            "email": advocate.email,
            "phone": advocate.phone,
        }


class ReferenceInputSerializer(serializers.Serializer):
    account = ScopedPrimaryKeyField(Account)
    advocate = ScopedPrimaryKeyField(Contact, required=False, allow_null=True)
    title = serializers.CharField(max_length=200)
    summary = serializers.CharField(required=False, allow_blank=True)
    publication = serializers.ChoiceField(choices=Publication.choices, required=False)
    owner = MemberUserField(required=False, allow_null=True)
    products = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    use_cases = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False)

    class Meta:
        ref_name = "ReferenceInput"


# --- Usage requests -----------------------------------------------------------------------


class ReferenceBriefSerializer(serializers.ModelSerializer):
    class Meta:
        ref_name = "ReferenceBrief"
        model = Reference
        fields = ["id", "title"]


class UsageRequestOutputSerializer(serializers.ModelSerializer):
    reference = ReferenceBriefSerializer(read_only=True)
    requested_by = serializers.CharField(source="requested_by.get_username", read_only=True)
    decided_by = serializers.CharField(source="decided_by.get_username", read_only=True, allow_null=True)

    class Meta:
        ref_name = "UsageRequest"
        model = UsageRequest
        fields = [
            "id",
            "reference",
            "scope",
            "status",
            "requested_by",
            "opportunity_name",
            "opportunity_value",
            "currency",
            "opportunity_stage",
            "crm_opportunity_id",
            "needed_by",
            "purpose",
            "decided_by",
            "decided_at",
            "decision_reason",
            "outcome",
            "outcome_notes",
            "completed_at",
            "created_at",
        ]


class UsageRequestInputSerializer(serializers.Serializer):
    reference = VisibleReferenceField()
    scope = serializers.ChoiceField(choices=Scope.choices)
    opportunity_name = serializers.CharField(max_length=200)
    opportunity_value = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0, required=False)
    currency = serializers.CharField(max_length=3, required=False, allow_blank=True)
    opportunity_stage = serializers.CharField(max_length=100, required=False, allow_blank=True)
    crm_opportunity_id = serializers.CharField(max_length=100, required=False, allow_blank=True)
    needed_by = serializers.DateField(required=False, allow_null=True)
    purpose = serializers.CharField(required=False, allow_blank=True)

    class Meta:
        ref_name = "UsageRequestInput"


class DecisionInputSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")

    class Meta:
        ref_name = "UsageDecisionInput"


class CompletionInputSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=Outcome.choices)
    notes = serializers.CharField(required=False, allow_blank=True, default="")

    class Meta:
        ref_name = "UsageCompletionInput"


class ErrorSerializer(serializers.Serializer):
    """A refused request: field names map to messages; a fatigue refusal adds ``available_from``."""

    non_field_errors = serializers.ListField(child=serializers.CharField(), required=False)
    available_from = serializers.DateTimeField(required=False)

    class Meta:
        ref_name = "ReferencesError"
