"""Input and output serializers of the consent API (shape only; the services decide and write).

Related ids are looked up through the organization-scoped managers when the
request runs, so another organization's reference or contact is simply
"does not exist" (a 400 naming the field), exactly as in the references API.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from references.api.serializers import ReferenceBriefSerializer, ScopedPrimaryKeyField, VisibleReferenceField
from references.models import Contact, Scope

from ..models import (
    ConsentEvent,
    ConsentEventKind,
    ConsentRequest,
    ConsentRequestKind,
    ConsentRequestStatus,
    ConsentState,
    required_parties,
)

# The ledger kinds that answer a request, and what each says about one scope.
ANSWER_KINDS = {
    ConsentEventKind.GRANTED: "granted",
    ConsentEventKind.RECONFIRMED: "granted",
    ConsentEventKind.DECLINED: "declined",
}
OPEN_STATUSES = (ConsentRequestStatus.PROPOSED, ConsentRequestStatus.SENT)


def _kind_field(choices: list[tuple[str, str]]) -> serializers.CharField:
    # A plain string in the schema, its values listed: another enum named "kind" would make
    # drf-spectacular rename the enums other apps already publish (IncentiveKind and the like).
    values = ", ".join(f"`{value}`" for value, _label in choices)
    return serializers.CharField(read_only=True, help_text=f"One of {values}.")


class ConsentContactSerializer(serializers.ModelSerializer):
    class Meta:
        ref_name = "ConsentContact"
        model = Contact
        fields = ["id", "name", "email", "is_authorised_signatory"]


class ScopeOutcomeSerializer(serializers.Serializer):
    """What the customer said about one asked scope, read from the ledger's answer events."""

    scope = serializers.ChoiceField(choices=Scope.choices)
    party = serializers.CharField(help_text="Whose consent the scope needs: company or individual.")
    outcome = serializers.CharField(
        help_text="`granted`, `declined`, `open` (the request still waits) or `unanswered` (superseded or cancelled)."
    )
    valid_until = serializers.DateTimeField(allow_null=True)
    event_sequence = serializers.IntegerField(allow_null=True, help_text="The ledger event that recorded it.")

    class Meta:
        ref_name = "ConsentScopeOutcome"


class ConsentRequestOutputSerializer(serializers.ModelSerializer):
    """A consent request with the exact texts shown and, per scope, the answer.

    ``outcomes`` reads the request's answer events, prefetched by the view in
    one query per page (``answer_events``).
    """

    reference = ReferenceBriefSerializer(read_only=True)
    contact = ConsentContactSerializer(read_only=True)
    requested_by = serializers.CharField(source="requested_by.get_username", read_only=True, allow_null=True)
    kind = _kind_field(ConsentRequestKind.choices)
    outcomes = serializers.SerializerMethodField()

    class Meta:
        ref_name = "ConsentRequest"
        model = ConsentRequest
        fields = [
            "id",
            "reference",
            "contact",
            "kind",
            "status",
            "scopes",
            "texts",
            "previous_texts",
            "message",
            "requested_by",
            "sent_at",
            "expires_at",
            "answered_at",
            "outcomes",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(ScopeOutcomeSerializer(many=True))
    def get_outcomes(self, obj: ConsentRequest) -> list[dict[str, Any]]:
        answers = {event.scope: event for event in getattr(obj, "answer_events", [])}
        rows = []
        for scope in obj.scopes:
            event = answers.get(scope)
            if event is not None:
                outcome = ANSWER_KINDS[event.kind]
            else:
                outcome = "open" if obj.status in OPEN_STATUSES else "unanswered"
            rows.append(
                {
                    "scope": scope,
                    "party": next(iter(required_parties(scope))),
                    "outcome": outcome,
                    "valid_until": event.valid_until if event is not None else None,
                    "event_sequence": event.sequence if event is not None else None,
                }
            )
        return ScopeOutcomeSerializer(rows, many=True).data


class ConsentRequestInputSerializer(serializers.Serializer):
    reference = VisibleReferenceField()
    contact = ScopedPrimaryKeyField(Contact)
    # Plain strings: the service names an unknown use in its own words ("Unknown use: …").
    scopes = serializers.ListField(
        child=serializers.CharField(max_length=32), help_text="Scopes to ask for: " + ", ".join(Scope.values)
    )
    message = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    class Meta:
        ref_name = "ConsentRequestInput"


class ConsentEventOutputSerializer(serializers.ModelSerializer):
    """One ledger event, every field that its hash covers, plus the hash itself."""

    contact = serializers.PrimaryKeyRelatedField(read_only=True)
    reference = serializers.PrimaryKeyRelatedField(read_only=True)
    consent_request = serializers.PrimaryKeyRelatedField(read_only=True)
    link = serializers.PrimaryKeyRelatedField(read_only=True)
    actor = serializers.CharField(source="actor.get_username", read_only=True, allow_null=True)
    kind = _kind_field(ConsentEventKind.choices)
    proof = serializers.SerializerMethodField()

    class Meta:
        ref_name = "ConsentEvent"
        model = ConsentEvent
        fields = [
            "id",
            "sequence",
            "kind",
            "occurred_at",
            "contact",
            "reference",
            "consent_request",
            "link",
            "scope",
            "party",
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
        ]

    @extend_schema_field(OpenApiTypes.STR)
    def get_proof(self, obj: ConsentEvent) -> str:
        # The stored name, as the hash covers it; the file itself is served only by the pages.
        return obj.proof.name or ""


class ConsentStateOutputSerializer(serializers.ModelSerializer):
    reference = ReferenceBriefSerializer(read_only=True)
    contact = ConsentContactSerializer(read_only=True)
    consent_request = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        ref_name = "ConsentState"
        model = ConsentState
        fields = [
            "id",
            "reference",
            "scope",
            "party",
            "contact",
            "status",
            "valid_until",
            "publication",
            "policy_version",
            "text_hash",
            "consent_request",
            "last_sequence",
            "reminders_sent",
            "updated_at",
        ]


class ConsentErrorSerializer(serializers.Serializer):
    """A refused request: each field at fault maps to its messages."""

    non_field_errors = serializers.ListField(child=serializers.CharField(), required=False)
    reference = serializers.ListField(child=serializers.CharField(), required=False)
    contact = serializers.ListField(child=serializers.CharField(), required=False)
    scopes = serializers.ListField(child=serializers.CharField(), required=False)
    policy = serializers.ListField(child=serializers.CharField(), required=False)

    class Meta:
        ref_name = "ConsentError"
