"""Forms of the privacy pages. They check shape only; ``privacy.services`` applies the rules."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from refmgr.tenancy.forms import ServiceErrorFormMixin

from .models import PrivacyPolicy


class PrivacyPolicyForm(ServiceErrorFormMixin, forms.ModelForm):
    """A draft's text and dates; the version number and status are the services' to set."""

    class Meta:
        model = PrivacyPolicy
        fields = ("title", "effective_date", "summary_of_changes", "body")
        widgets = {
            "effective_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "summary_of_changes": forms.Textarea(attrs={"rows": 4}),
            "body": forms.Textarea(attrs={"rows": 24}),
        }
        help_texts = {
            "effective_date": _("Today or later. Until then the previous version stays in force."),
            "summary_of_changes": _(
                "What changed since the previous version, in plain words. Required to publish any version after "
                "the first."
            ),
        }
