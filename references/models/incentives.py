"""Incentives given to customers, and the review flags they (or tell-tale words) raise.

A reference that a gift bought is not authentic: every reference of a contact
or account that received an incentive gets a ``ReviewFlag``, which holds the
reference (``ReferenceHold``) until a compliance reviewer clears it, with a
written justification and a disclosure line, or rejects it.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from refmgr.tenancy.models import TenantOwnedModel

from .references import Account, Contact, Reference

# The currencies people record incentives in; an unknown code is a field error.
CURRENCIES = (
    "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "INR", "JPY", "KRW", "MXN",
    "NOK", "NZD", "PLN", "SEK", "SGD", "USD", "ZAR",
)  # fmt: skip
MAX_INCENTIVE_VALUE = 1_000_000

DEFAULT_INCENTIVE_WORDS = (
    "gift card",
    "voucher",
    "discount in exchange",
    "paid for",
    "reward",
    "in return for",
    "free month",
    "amazon card",
    "compensation for",
    "thank-you gift",
)


class IncentiveKind(models.TextChoices):
    GIFT_CARD = "gift_card", _("Gift card")
    DISCOUNT = "discount", _("Discount")
    FREE_SERVICE = "free_service", _("Free service or credit")
    PAYMENT = "payment", _("Payment")
    MERCHANDISE = "merchandise", _("Merchandise")
    EVENT_TRAVEL = "event_travel", _("Event or travel")
    DONATION = "donation", _("Charitable donation")
    OTHER = "other", _("Other")


class IncentiveCondition(models.TextChoices):
    NONE = "none", _("Not conditioned on anything")
    PARTICIPATION = "participation", _("Conditioned on taking part (a call, a case study)")
    POSITIVE_SENTIMENT = "positive_sentiment", _("Conditioned on a positive review, rating or testimonial")
    OTHER = "other", _("Conditioned on something else")


class Incentive(TenantOwnedModel):
    """Something of value given to a customer contact or account."""

    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, null=True, blank=True, related_name="incentives")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="incentives")
    kind = models.CharField(_("kind"), max_length=16, choices=IncentiveKind.choices)
    value = models.DecimalField(
        _("value"),
        max_digits=12,
        decimal_places=2,
        validators=[MinValueValidator(0), MaxValueValidator(MAX_INCENTIVE_VALUE)],
    )
    currency = models.CharField(_("currency"), max_length=3, choices=[(c, c) for c in CURRENCIES])
    given_on = models.DateField(_("given on"))
    given_by = models.CharField(_("given by"), max_length=200, help_text=_("Who gave it, e.g. the account executive."))
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    condition = models.CharField(
        _("conditioned on"), max_length=24, choices=IncentiveCondition.choices, default=IncentiveCondition.NONE
    )
    note = models.TextField(_("note"), blank=True)

    class Meta(TenantOwnedModel.Meta):
        ordering = ["-given_on", "-id"]
        indexes = [
            models.Index(fields=["organization", "contact"], name="references_incentive_contact"),
            models.Index(fields=["organization", "account"], name="references_incentive_account"),
            # The nightly review sweep reads only incentives changed since its checkpoint (ReviewScan).
            models.Index(fields=["organization", "updated_at"], name="references_incentive_changed"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.value} {self.currency} on {self.given_on}"


class FlagStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CLEARED = "cleared", _("Cleared")
    REJECTED = "rejected", _("Rejected")


class ReviewFlag(TenantOwnedModel):
    """A reference held for compliance review, because of an incentive or words that suggest one.

    ``source_key`` names what raised it (``incentive:<id>`` or
    ``text:<where>:<id>:<word>``); with the reference it is unique, so a
    re-run or concurrent sweep can never raise the same flag twice.
    """

    reference = models.ForeignKey(Reference, on_delete=models.CASCADE, related_name="review_flags")
    incentive = models.ForeignKey(
        Incentive, on_delete=models.PROTECT, null=True, blank=True, related_name="review_flags"
    )
    source_key = models.CharField(max_length=200)
    reason = models.CharField(_("reason"), max_length=300)
    matched_text = models.TextField(_("matching passage"), blank=True)
    status = models.CharField(max_length=8, choices=FlagStatus.choices, default=FlagStatus.OPEN)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    justification = models.TextField(_("justification"), blank=True)
    disclosure = models.CharField(_("disclosure"), max_length=300, blank=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "reference", "source_key"], name="references_flag_once"),
        ]
        indexes = [
            models.Index(fields=["organization", "status", "-created_at"], name="references_flag_queue"),
            models.Index(fields=["organization", "reference"], condition=Q(status="open"), name="references_flag_open"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_status_display()}: {self.reason}"


class ReviewScan(TenantOwnedModel):
    """How far the nightly review sweep has read an organization: its checkpoint.

    The sweep reads only rows changed after ``scanned_until`` (references, their material, usage
    requests, incentives); ``fingerprint`` says which words and window that reading used, so a
    change of either makes the next sweep read everything of the organization again.
    """

    scanned_until = models.DateTimeField()
    fingerprint = models.CharField(max_length=64)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization"], name="references_review_scan_one_per_org"),
        ]

    def __str__(self) -> str:
        return f"review scan up to {self.scanned_until:%Y-%m-%d %H:%M}"


__all__ = [
    "CURRENCIES",
    "DEFAULT_INCENTIVE_WORDS",
    "MAX_INCENTIVE_VALUE",
    "FlagStatus",
    "Incentive",
    "IncentiveCondition",
    "IncentiveKind",
    "ReviewFlag",
    "ReviewScan",
]
