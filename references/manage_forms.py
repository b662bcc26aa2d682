"""Forms of the reference managers' pages. They check shape only; the services apply the rules.

Every choice of another object (an account, an advocate, an owner) is drawn
from the scoped managers, so inside a request only the current
organization's rows are valid choices: another organization's id is a
"select a valid choice" field error, never a link between organizations.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from refmgr.tenancy.forms import ServiceErrorFormMixin
from refmgr.tenancy.models import Membership

from .imports import COLUMNS, KIND_LABELS, MAX_BYTES, MAX_REFERENCE_ROWS, MAX_ROWS
from .models import Account, AssetKind, Contact, Reference, ReferenceSettings


class ManageSearchForm(forms.Form):
    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=150,
        widget=forms.TextInput(attrs={"type": "search"}),
    )


class AccountForm(ServiceErrorFormMixin, forms.ModelForm):
    website = forms.URLField(label=_("Website"), required=False, max_length=200, assume_scheme="https")

    class Meta:
        model = Account
        fields = ("name", "industry", "region", "size_band", "website", "crm_id")
        help_texts = {"crm_id": _("The account's id in your CRM; the CSV import matches on it.")}


def _account_field() -> forms.ModelChoiceField:
    # Declared, not generated: ModelForm would build it from Account's default
    # manager at import time, and that manager refuses to run outside an organization.
    return forms.ModelChoiceField(label=_("Account"), queryset=Account.objects.none())


class ContactForm(ServiceErrorFormMixin, forms.ModelForm):
    account = _account_field()

    class Meta:
        model = Contact
        fields = (
            "account",
            "name",
            "title",
            "email",
            "phone",
            "is_authorised_signatory",
            "usage_cap",
            "cooldown_days",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Scoped manager: evaluated inside the request, so only this organization's accounts.
        self.fields["account"].queryset = Account.objects.order_by("name")


class AdvocateChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Contact) -> str:
        return f"{obj.name} — {obj.account.name}"


class OwnerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return obj.get_full_name() or obj.get_username()


class ReferenceForm(ServiceErrorFormMixin, forms.ModelForm):
    account = _account_field()
    advocate = AdvocateChoiceField(
        label=_("Advocate"),
        queryset=Contact.objects.none(),
        required=False,
        help_text=_("A contact of the same account who speaks for the customer."),
    )
    owner = OwnerChoiceField(label=_("Owner"), queryset=get_user_model().objects.none(), required=False)
    products = forms.CharField(
        label=_("Products"), required=False, max_length=2000, help_text=_("Separate them with commas.")
    )
    use_cases = forms.CharField(
        label=_("Use cases"), required=False, max_length=2000, help_text=_("Separate them with commas.")
    )
    tags = forms.CharField(label=_("Tags"), required=False, max_length=2000, help_text=_("Separate them with commas."))

    class Meta:
        model = Reference
        fields = ("account", "advocate", "title", "summary", "publication", "owner")
        widgets = {"summary": forms.Textarea(attrs={"rows": 5})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = Account.objects.order_by("name")
        self.fields["advocate"].queryset = Contact.objects.select_related("account").order_by("account__name", "name")
        members = Membership.objects.filter(is_active=True).values("user_id")
        self.fields["owner"].queryset = get_user_model().objects.filter(pk__in=members).order_by("username")


class AssetForm(ServiceErrorFormMixin, forms.Form):
    kind = forms.ChoiceField(label=_("Kind"), choices=AssetKind.choices)
    title = forms.CharField(label=_("Title"), required=False, max_length=200)
    text = forms.CharField(
        label=_("Quote"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("Exactly the words the customer approves. Changing them later asks the customer again."),
    )
    file = forms.FileField(
        label=_("File"),
        required=False,
        help_text=_("Logo: PNG, JPEG or WebP up to 2 MB. Case study: PDF or Word (.docx) up to 20 MB."),
    )
    url = forms.URLField(
        label=_("Link"),
        required=False,
        assume_scheme="https",
        help_text=_("For a video, or a case study published elsewhere."),
    )

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if editing:
            # The kind decides what the customer agreed to; a different kind is a new asset.
            self.fields["kind"].disabled = True
            self.fields["file"].help_text = _("Leave empty to keep the current file.")


class ReferenceSettingsForm(ServiceErrorFormMixin, forms.ModelForm):
    class Meta:
        model = ReferenceSettings
        fields = ("usage_cap", "usage_window_days", "cooldown_days", "incentive_window_days", "incentive_words")
        widgets = {"incentive_words": forms.Textarea(attrs={"rows": 6})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Left out of a post, the review settings keep their current values.
        self.fields["incentive_window_days"].required = False


class RetireForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Shown to salespeople whose pending requests are cancelled."),
    )


class ImportUploadForm(ServiceErrorFormMixin, forms.Form):
    kind = forms.ChoiceField(
        label=_("The file contains"),
        choices=[(kind, label) for kind, label in KIND_LABELS.items()],
        widget=forms.RadioSelect,
    )
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_(
            "UTF-8 CSV with a header row, up to %(mb)d MB: %(references)s references, or %(rows)s accounts or contacts."
        )
        % {"mb": MAX_BYTES // 1048576, "references": f"{MAX_REFERENCE_ROWS:,}", "rows": f"{MAX_ROWS:,}"},
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )


class ImportConfirmForm(forms.Form):
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)
    valid_only = forms.BooleanField(label=_("Import only the valid rows and skip the others"), required=False)


IMPORT_COLUMNS = COLUMNS
