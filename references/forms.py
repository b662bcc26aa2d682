"""Forms of the catalogue and usage-request pages. They validate shape only; services apply the rules."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from refmgr.tenancy.forms import ServiceErrorFormMixin

from .models import Outcome, Scope, SizeBand
from .selectors import CATALOGUE_FILTERS, CatalogueFilters

SORT_CHOICES = [
    ("relevance", _("Best match")),
    ("newest", _("Newest")),
    ("title", _("Title (A to Z)")),
    ("account", _("Customer (A to Z)")),
]


class CatalogueForm(forms.Form):
    """Search, filters and sort of the catalogue, from the query string.

    Values outside the offered choices are dropped rather than refused: a
    stale or hand-edited link still shows the catalogue, just less filtered.
    """

    q = forms.CharField(
        label=_("Search references"),
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("e.g. onboarding, logistics, SAP")}),
    )
    industry = forms.CharField(label=_("Industry"), required=False, max_length=100)
    product = forms.CharField(label=_("Product"), required=False, max_length=100)
    region = forms.CharField(label=_("Region"), required=False, max_length=100)
    size_band = forms.ChoiceField(
        label=_("Company size"), required=False, choices=[("", _("Any size")), *SizeBand.choices]
    )
    use_case = forms.CharField(label=_("Use case"), required=False, max_length=100)
    scope = forms.ChoiceField(label=_("Allowed use"), required=False, choices=[("", _("Any use")), *Scope.choices])
    sort = forms.ChoiceField(label=_("Sort by"), required=False, choices=SORT_CHOICES)

    def values(self) -> tuple[str, CatalogueFilters, str]:
        """The search text, the filters and the sort that are valid; the rest is ignored."""
        self.is_valid()
        data = {name: self.cleaned_data.get(name) or "" for name in ("q", "sort", *CATALOGUE_FILTERS)}
        return data["q"], CatalogueFilters(**{name: data[name] for name in CATALOGUE_FILTERS}), data["sort"]


class UsageRequestForm(ServiceErrorFormMixin, forms.Form):
    """A salesperson's request to use one scope of a reference for a deal."""

    scope = forms.ChoiceField(label=_("Use"), help_text=_("Only the uses the customer agreed to are offered."))
    opportunity_name = forms.CharField(label=_("Opportunity"), max_length=200)
    opportunity_value = forms.DecimalField(
        label=_("Value"), required=False, min_value=0, max_digits=14, decimal_places=2
    )
    currency = forms.CharField(
        label=_("Currency"),
        required=False,
        min_length=3,
        max_length=3,
        help_text=_("Three letters, e.g. EUR."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "size": 3}),
    )
    opportunity_stage = forms.CharField(label=_("Stage"), required=False, max_length=100)
    crm_opportunity_id = forms.CharField(label=_("CRM opportunity id"), required=False, max_length=100)
    needed_by = forms.DateField(label=_("Needed by"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    purpose = forms.CharField(
        label=_("Purpose"),
        required=False,
        max_length=2000,
        help_text=_("What the customer should talk about, and why this reference fits the deal."),
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args: Any, scopes: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        labels = dict(Scope.choices)
        self.fields["scope"].choices = [(scope, labels[scope]) for scope in Scope.values if scope in scopes]

    def clean_currency(self) -> str:
        currency = self.cleaned_data.get("currency") or ""
        if currency and not currency.isalpha():
            raise forms.ValidationError(_("Use the three-letter currency code, e.g. EUR."))
        return currency.upper()


class DecisionForm(forms.Form):
    """Approve (an optional note) or decline (a reason the salesperson reads) one request."""

    decision = forms.ChoiceField(choices=[("approve", _("Approve")), ("decline", _("Decline"))])
    reason = forms.CharField(label=_("Note or reason"), required=False, max_length=2000)


class OutcomeForm(ServiceErrorFormMixin, forms.Form):
    """What happened after the use."""

    outcome = forms.ChoiceField(label=_("Deal outcome"), choices=Outcome.choices)
    notes = forms.CharField(label=_("Notes"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
