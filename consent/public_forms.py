"""Forms of the customer's consent page: they check the shape of a post; the services decide."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from references.models import Publication, Scope

GRANT = "grant"
DECLINE = "decline"


class AnswerForm(forms.Form):
    """Grant some of the uses asked about (with a period and a publication choice), or decline them all.

    ``scopes`` accepts every known use, not only the ones asked: whether a
    use was asked is the service's rule (``consent_answer`` refuses it), kept
    in one place and with its own message.
    """

    action = forms.ChoiceField(choices=[(GRANT, _("Grant")), (DECLINE, _("Decline"))])
    scopes = forms.MultipleChoiceField(
        label=_("What you agree to"), choices=Scope.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    valid_months = forms.TypedChoiceField(label=_("For how long"), coerce=int, required=False)
    # Internal only is the starting choice because it is the most protective: a customer who
    # skips the question is never published by accident (DESIGN.md "Authentic references").
    publication = forms.ChoiceField(
        label=_("How you may be named"),
        choices=Publication.choices,
        initial=Publication.INTERNAL_ONLY,
        required=False,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args: Any, valid_choices: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["valid_months"]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = [(months, months_label(months)) for months in valid_choices]
        # The longest period the organization allows is the default; the customer may shorten it.
        field.initial = valid_choices[0] if valid_choices else None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("action") == GRANT:
            if not cleaned.get("valid_months"):
                self.add_error("valid_months", _("Choose for how long."))
            if not cleaned.get("publication"):
                self.add_error("publication", _("Choose how you may be named."))
        return cleaned

    @property
    def declining(self) -> bool:
        return self.cleaned_data.get("action") == DECLINE


def months_label(months: int) -> str:
    from django.utils.translation import ngettext

    if months % 12 == 0:
        years = months // 12
        return ngettext("%(count)d year", "%(count)d years", years) % {"count": years}
    return ngettext("%(count)d month", "%(count)d months", months) % {"count": months}


class RevokeForm(forms.Form):
    state_id = forms.IntegerField(min_value=1)


class PauseForm(forms.Form):
    paused = forms.TypedChoiceField(choices=[("1", _("Pause")), ("0", _("Resume"))], coerce=lambda value: value == "1")
