"""Forms of the managers' consent pages. They check shape only; the services apply the rules.

Choices of other objects (contacts, references, assignees) come from the
scoped managers inside the request, so another organization's id is a
"select a valid choice" error, never a link between organizations.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.forms import model_to_dict
from django.utils.translation import gettext_lazy as _

from references.models import Contact, Publication, Reference, Scope
from refmgr.tenancy.forms import ServiceErrorFormMixin
from refmgr.tenancy.models import Membership, Role

from .models import (
    ConsentEventKind,
    ConsentSettings,
    ConsentState,
    Party,
    reminder_days_validator,
    required_parties,
)


def scope_choices() -> list[tuple[str, str]]:
    """Each scope with whose consent it needs, so the manager asks the right person."""
    party_labels = {
        Party.COMPANY: _("the company's, from an authorised signatory"),
        Party.INDIVIDUAL: _("the person's own"),
    }
    return [
        (value, f"{label} — {', '.join(str(party_labels[p]) for p in sorted(required_parties(value)))}")
        for value, label in Scope.choices
    ]


class ContactChoiceField(forms.ModelChoiceField):
    """A contact labelled with why they may be asked: advocate, signatory, or paused."""

    def __init__(self, *args: Any, reference: Reference | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reference = reference

    def label_from_instance(self, obj: Contact) -> str:
        roles = []
        if self.reference is not None and obj.pk == self.reference.advocate_id:
            roles.append(str(_("advocate")))
        if obj.is_authorised_signatory:
            roles.append(str(_("authorised signatory")))
        if obj.requests_paused:
            roles.append(str(_("has paused requests")))
        title = f", {obj.title}" if obj.title else ""
        return f"{obj.name}{title} ({'; '.join(roles)})" if roles else f"{obj.name}{title}"


def askable_contacts(reference: Reference) -> Any:
    """Who can consent for this reference: its advocate and the account's authorised signatories."""
    return Contact.objects.filter(
        Q(pk=reference.advocate_id) | Q(account_id=reference.account_id, is_authorised_signatory=True)
    ).order_by("name", "pk")


class _ScopedContactForm(ServiceErrorFormMixin, forms.Form):
    contact = ContactChoiceField(
        label=_("Ask"),
        queryset=Contact.objects.none(),
        help_text=_("A logo or the company's name needs an authorised signatory; the other uses, the advocate."),
    )
    scopes = forms.MultipleChoiceField(
        label=_("Uses"),
        choices=scope_choices,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Each use says whose consent it needs."),
    )

    def __init__(self, *args: Any, reference: Reference, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        contact_field = self.fields["contact"]
        contact_field.queryset = askable_contacts(reference)
        contact_field.reference = reference
        if reference.advocate_id and not self.is_bound:
            contact_field.initial = reference.advocate_id


class ConsentRequestForm(_ScopedContactForm):
    message = forms.CharField(
        label=_("Why we ask"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("Shown to the customer in the email and on their consent page. Optional."),
    )


class OfflineConsentForm(_ScopedContactForm):
    valid_until = forms.DateField(
        label=_("Consent valid until"),
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("The end date the customer agreed to, no later than the organization's longest consent."),
    )
    publication = forms.ChoiceField(
        label=_("How the customer may be named"), choices=Publication.choices, widget=forms.RadioSelect
    )
    proof = forms.FileField(
        label=_("Proof of consent"),
        help_text=_("The customer's signed form or email: PDF, PNG, JPEG, .eml or .txt, up to 10 MB."),
        widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.png,.jpg,.jpeg,.eml,.txt"}),
    )
    note = forms.CharField(
        label=_("Note"),
        required=False,
        max_length=300,
        help_text=_("How and when the customer gave it, e.g. “signed form, 3 March”."),
    )


class StateChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: ConsentState) -> str:
        return f"{obj.get_scope_display()} ({obj.get_party_display()}, {obj.contact.name})"


class RevokeForm(ServiceErrorFormMixin, forms.Form):
    """A manager recording, for the customer, a withdrawal they gave by phone or letter."""

    states = StateChoiceField(
        label=_("Withdraw"), queryset=ConsentState.objects.none(), widget=forms.CheckboxSelectMultiple
    )
    note = forms.CharField(
        label=_("How the customer told us"),
        max_length=300,
        help_text=_("Recorded in the ledger, e.g. “phone call with Jane Doe, 4 May”."),
    )

    def __init__(self, *args: Any, revocable: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["states"].queryset = revocable


class SearchForm(forms.Form):
    q = forms.CharField(
        label=_("Search"), required=False, max_length=150, widget=forms.TextInput(attrs={"type": "search"})
    )


class ReferenceChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Reference) -> str:
        return f"{obj.title} — {obj.account.name}"


class ContactFilterField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Contact) -> str:
        return f"{obj.name} — {obj.account.name}"


class LedgerFilterForm(forms.Form):
    kind = forms.ChoiceField(label=_("Event"), required=False)
    scope = forms.ChoiceField(label=_("Use"), required=False)
    reference = ReferenceChoiceField(label=_("Reference"), queryset=Reference.objects.none(), required=False)
    contact = ContactFilterField(label=_("Contact"), queryset=Contact.objects.none(), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [("", _("All events")), *ConsentEventKind.choices]
        self.fields["scope"].choices = [("", _("All uses")), *Scope.choices]
        self.fields["reference"].queryset = Reference.objects.select_related("account").order_by("title", "pk")
        self.fields["contact"].queryset = Contact.objects.select_related("account").order_by("name", "pk")

    def filters(self) -> dict[str, Any]:
        """The selector's keyword arguments; an invalid filter is dropped rather than failing the page."""
        data = self.cleaned_data if self.is_valid() else {}
        reference, contact = data.get("reference"), data.get("contact")
        return {
            "kind": data.get("kind", ""),
            "scope": data.get("scope", ""),
            "reference_id": reference.pk if reference is not None else None,
            "contact_id": contact.pk if contact is not None else None,
        }


class TakedownCloseForm(ServiceErrorFormMixin, forms.Form):
    evidence = forms.CharField(
        label=_("What was taken down, and where"),
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("E.g. “Removed the quote from the pricing page and the Q3 deck; checked the live site.”"),
    )
    evidence_file = forms.FileField(
        label=_("Evidence file"),
        required=False,
        help_text=_("Optional: a screenshot or the confirmation, PDF, PNG, JPEG, .eml or .txt."),
    )


class AssigneeChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return obj.get_full_name() or obj.get_username()


class TakedownAssignForm(ServiceErrorFormMixin, forms.Form):
    assigned_to = AssigneeChoiceField(
        label=_("Assign to"), queryset=get_user_model().objects.none(), required=False, empty_label=_("Nobody")
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Memberships are scoped: only this organization's managers and admins.
        managers = Membership.objects.filter(is_active=True, role__in=(Role.ADMIN, Role.REFERENCE_MANAGER))
        self.fields["assigned_to"].queryset = (
            get_user_model().objects.filter(pk__in=managers.values("user_id")).order_by("username")
        )


class ConsentSettingsForm(ServiceErrorFormMixin, forms.ModelForm):
    class Meta:
        model = ConsentSettings
        fields = ("link_valid_days", "grant_valid_months", "reminder_days", "reminders_max", "takedown_due_days")

    def clean_reminder_days(self) -> str:
        value = self.cleaned_data["reminder_days"]
        # The model's own rule first: the form field alone does not carry it.
        reminder_days_validator(value)
        days = [int(part) for part in value.replace(" ", "").split(",") if part.isascii() and part.isdigit()]
        if any(day == 0 for day in days):
            raise forms.ValidationError(_("A reminder 0 days before expiry would come too late; use 1 or more."))
        return ", ".join(str(day) for day in sorted(set(days), reverse=True))

    @classmethod
    def for_settings(cls, current: ConsentSettings, data: Any = None) -> ConsentSettingsForm:
        return cls(data, initial=model_to_dict(current, fields=cls.Meta.fields))
