"""Forms of the incentive and compliance-review pages. They check shape only; the services apply the rules.

Contacts and accounts are drawn from the scoped managers inside the request,
so another organization's id is a "select a valid choice" error.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from refmgr.tenancy.forms import ServiceErrorFormMixin

from .imports import MAX_BYTES
from .models import CURRENCIES, MAX_INCENTIVE_VALUE, Account, Contact, IncentiveCondition, IncentiveKind


class ContactChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Contact) -> str:
        return f"{obj.name} — {obj.account.name}"


class IncentiveForm(ServiceErrorFormMixin, forms.Form):
    contact = ContactChoiceField(
        label=_("Contact"),
        queryset=Contact.objects.none(),
        required=False,
        help_text=_("Who received it. Leave empty for an incentive given to the whole account."),
    )
    account = forms.ModelChoiceField(
        label=_("Account"),
        queryset=Account.objects.none(),
        required=False,
        help_text=_("Needed only when no contact is chosen."),
    )
    kind = forms.ChoiceField(label=_("Kind"), choices=IncentiveKind.choices)
    value = forms.DecimalField(
        label=_("Value"), min_value=0, max_value=MAX_INCENTIVE_VALUE, max_digits=12, decimal_places=2
    )
    currency = forms.ChoiceField(label=_("Currency"), choices=[(c, c) for c in CURRENCIES], initial="EUR")
    given_on = forms.DateField(label=_("Given on"), widget=forms.DateInput(attrs={"type": "date"}))
    given_by = forms.CharField(
        label=_("Given by"), max_length=200, help_text=_("Who gave it, e.g. the account executive.")
    )
    condition = forms.ChoiceField(
        label=_("Conditioned on"), choices=IncentiveCondition.choices, initial=IncentiveCondition.NONE
    )
    note = forms.CharField(label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Scoped managers, evaluated inside the request: only this organization's rows.
        self.fields["contact"].queryset = Contact.objects.select_related("account").order_by("account__name", "name")
        self.fields["account"].queryset = Account.objects.order_by("name")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("contact") and not cleaned.get("account") and not self.has_error("contact"):
            self.add_error("contact", _("Choose the contact or the account that received it."))
        return cleaned


class IncentiveImportForm(ServiceErrorFormMixin, forms.Form):
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_("UTF-8 CSV with a header row, up to %(mb)d MB and 10,000 rows.") % {"mb": MAX_BYTES // 1048576},
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )


class ReviewDecisionForm(ServiceErrorFormMixin, forms.Form):
    decision = forms.ChoiceField(
        label=_("Decision"),
        choices=[
            ("clear", _("Clear: the reference may be used again, with the disclosure")),
            ("reject", _("Reject: retire the reference")),
        ],
        widget=forms.RadioSelect,
    )
    justification = forms.CharField(
        label=_("Justification"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Why you decided so. It is kept with the reference and in the audit log."),
    )
    disclosure = forms.CharField(
        label=_("Disclosure"),
        required=False,
        max_length=300,
        help_text=_("Shown wherever the reference appears, e.g. “This customer received a discount.”"),
    )
