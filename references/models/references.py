"""Accounts, contacts, references, their assets, usage requests and the usage ledger.

Whether a reference scope may be used is never typed in: it is derived from
``ReferenceScopeGrant`` (what the customer agreed to, and until when — told
to us by the consent app) and ``ReferenceHold`` (a compliance review or an
open complaint — told to us by those apps), plus the reference's own status.
``references.selectors.reference_usable_scopes`` is the one place that
combines them.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePath
from uuid import uuid4

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from guardian.managers import GroupObjectPermissionManager, UserObjectPermissionManager
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from refmgr.tenancy.managers import TenantManager
from refmgr.tenancy.models import TenantOwnedModel


class Scope(models.TextChoices):
    """The ways a customer can agree to be used as a reference."""

    CALL = "call", _("Reference call")
    QUOTE = "quote", _("Quote")
    LOGO = "logo", _("Logo")
    CASE_STUDY = "case_study", _("Case study")
    SITE_VISIT = "site_visit", _("Site visit")
    VIDEO = "video", _("Video")
    NAME_IN_LIST = "name_in_list", _("Name in a customer list")


# A logo or the company's name is the company's to give (an authorised
# signatory); the rest is the individual's (DESIGN.md "Consent before use").
COMPANY_SCOPES = frozenset({Scope.LOGO, Scope.NAME_IN_LIST})
INDIVIDUAL_SCOPES = frozenset(set(Scope) - COMPANY_SCOPES)
# Uses that take the person's time; these count against fatigue caps.
FATIGUE_SCOPES = frozenset({Scope.CALL, Scope.SITE_VISIT, Scope.VIDEO})


class Publication(models.TextChoices):
    ATTRIBUTED = "attributed", _("Attributed (name and company)")
    ANONYMISED = "anonymised", _("Anonymised (industry and title only)")
    INTERNAL_ONLY = "internal_only", _("Internal only")


class SizeBand(models.TextChoices):
    SMALL = "1-49", _("1-49 employees")
    MEDIUM = "50-249", _("50-249 employees")
    LARGE = "250-999", _("250-999 employees")
    ENTERPRISE = "1000-4999", _("1,000-4,999 employees")
    GLOBAL = "5000+", _("5,000+ employees")


class ReferenceSettings(TenantOwnedModel):
    """An organization's usage limits (one row per organization, created on first use)."""

    usage_cap = models.PositiveSmallIntegerField(
        _("uses per person per window"),
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=_("How many calls, site visits or videos one person may be asked for within the window."),
    )
    usage_window_days = models.PositiveSmallIntegerField(
        _("window (days)"), default=90, validators=[MinValueValidator(1), MaxValueValidator(730)]
    )
    cooldown_days = models.PositiveSmallIntegerField(
        _("rest after each use (days)"), default=14, validators=[MaxValueValidator(365)]
    )
    incentive_window_days = models.PositiveSmallIntegerField(
        _("incentive look-back (days)"),
        default=365,
        validators=[MinValueValidator(1), MaxValueValidator(1825)],
        help_text=_("References active this long before or after an incentive are flagged for review."),
    )
    incentive_words = models.TextField(
        _("words that suggest an incentive"),
        blank=True,
        help_text=_("One per line; text mentioning one is flagged for review. Empty: the built-in list."),
    )

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization"], name="references_settings_one_per_org"),
        ]
        verbose_name_plural = "reference settings"

    def __str__(self) -> str:
        return f"{self.usage_cap} per {self.usage_window_days} days, rest {self.cooldown_days} days"


class Account(TenantOwnedModel):
    """A customer company."""

    name = models.CharField(_("name"), max_length=200)
    industry = models.CharField(_("industry"), max_length=100, blank=True)
    region = models.CharField(_("region"), max_length=100, blank=True)
    size_band = models.CharField(_("size"), max_length=16, choices=SizeBand.choices, blank=True)
    website = models.URLField(_("website"), blank=True)
    crm_id = models.CharField(_("CRM id"), max_length=100, blank=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "name"], name="references_account_name_uniq"),
            models.UniqueConstraint(
                fields=["organization", "crm_id"], condition=~Q(crm_id=""), name="references_account_crm_uniq"
            ),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Contact(TenantOwnedModel):
    """A person at a customer account. Personal data: shown only to roles that need it."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="contacts")
    name = models.CharField(_("name"), max_length=200)
    title = models.CharField(_("job title"), max_length=200, blank=True)
    email = models.EmailField(_("email"))
    phone = models.CharField(_("phone"), max_length=50, blank=True)
    is_authorised_signatory = models.BooleanField(
        _("authorised signatory"),
        default=False,
        help_text=_("May grant the company's consent (logo, name in a customer list)."),
    )
    usage_cap = models.PositiveSmallIntegerField(
        _("uses per window (override)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text=_("Leave empty to use the organization's setting; 0 means never ask."),
    )
    cooldown_days = models.PositiveSmallIntegerField(
        _("rest after each use in days (override)"), null=True, blank=True, validators=[MaxValueValidator(365)]
    )
    requests_paused = models.BooleanField(
        _("requests paused"), default=False, help_text=_("The person asked not to be contacted for now.")
    )

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "email"], name="references_contact_email_uniq"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ReferenceStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    RETIRED = "retired", _("Retired")


class Reference(TenantOwnedModel):
    """A customer's story that salespeople may use, as far as the customer agreed."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="references")
    advocate = models.ForeignKey(
        Contact,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="references",
        help_text=_("The person who speaks for the customer."),
    )
    title = models.CharField(_("title"), max_length=200)
    summary = models.TextField(_("summary"), blank=True)
    publication = models.CharField(
        _("publication"), max_length=16, choices=Publication.choices, default=Publication.INTERNAL_ONLY
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(
        _("status"), max_length=16, choices=ReferenceStatus.choices, default=ReferenceStatus.ACTIVE
    )
    retired_at = models.DateTimeField(null=True, blank=True)
    # Shown wherever the reference appears once an incentive review clears it.
    disclosure = models.CharField(_("disclosure"), max_length=300, blank=True)
    # Set only by references.services.reference_restrict / reference_unrestrict; who may
    # see a restricted reference is kept in django-guardian's object permissions below.
    restricted = models.BooleanField(
        _("restricted"), default=False, help_text=_("Visible only to the named people and groups.")
    )
    # What the catalogue's full-text search matches: title, summary, labels and (unless the
    # reference is anonymised) the account's name. PostgreSQL triggers keep it current
    # (migration 0006); it is a stored column, not an expression, so that under row-level
    # security the only function in the match is `@@` and the GIN index can answer it.
    search_document = SearchVectorField(null=True, editable=False)

    class Meta(TenantOwnedModel.Meta):
        ordering = ["-updated_at", "-id"]
        permissions = [("view_restricted_reference", "Can see a restricted reference")]
        indexes = [
            models.Index(fields=["organization", "status", "-updated_at"], name="references_ref_org_status"),
            # The keyset sorts of the catalogue and the API (issue 6; reasons in migration 0007).
            models.Index(fields=["organization", "-created_at", "-id"], name="references_ref_newest"),
            models.Index(fields=["organization", "-updated_at", "-id"], name="references_ref_updated"),
            models.Index(fields=["organization", "title", "id"], name="references_ref_title"),
        ]

    def __str__(self) -> str:
        return self.title


class LabelKind(models.TextChoices):
    PRODUCT = "product", _("Product")
    USE_CASE = "use_case", _("Use case")
    TAG = "tag", _("Tag")


class ReferenceLabel(TenantOwnedModel):
    """A product, use case or tag of a reference: one table, so filters and facet counts are one query."""

    reference = models.ForeignKey(Reference, on_delete=models.CASCADE, related_name="labels")
    kind = models.CharField(max_length=16, choices=LabelKind.choices)
    value = models.CharField(max_length=100)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(
                fields=["organization", "reference", "kind", "value"], name="references_label_uniq"
            ),
        ]
        indexes = [models.Index(fields=["organization", "kind", "value"], name="references_label_facet")]
        ordering = ["kind", "value"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.value}"


class AssetKind(models.TextChoices):
    QUOTE = "quote", _("Quote")
    CASE_STUDY = "case_study", _("Case study")
    LOGO = "logo", _("Logo")
    VIDEO = "video", _("Video")


def asset_upload_to(instance: ReferenceAsset, filename: str) -> str:
    # Random names: an uploaded file's name is user input and may carry personal data.
    suffix = PurePath(filename).suffix.lower()[:10]
    return f"assets/{instance.organization_id}/{uuid4().hex}{suffix}"


class ReferenceAsset(TenantOwnedModel):
    """Material of a reference: a quote's exact words, a case study, a logo, a video link."""

    reference = models.ForeignKey(Reference, on_delete=models.CASCADE, related_name="assets")
    kind = models.CharField(_("kind"), max_length=16, choices=AssetKind.choices)
    title = models.CharField(_("title"), max_length=200, blank=True)
    text = models.TextField(_("text"), blank=True, help_text=_("For a quote: exactly the words the customer approves."))
    file = models.FileField(_("file"), upload_to=asset_upload_to, blank=True, max_length=200)
    url = models.URLField(_("link"), blank=True)

    class Meta(TenantOwnedModel.Meta):
        ordering = ["kind", "id"]
        # The nightly review sweep reads only material changed since its checkpoint (ReviewScan).
        indexes = [models.Index(fields=["organization", "updated_at"], name="references_asset_changed")]

    def __str__(self) -> str:
        return self.title or f"{self.get_kind_display()} of {self.reference_id}"

    @property
    def text_hash(self) -> str:
        """Identifies the exact wording, so a consent can name what was shown."""
        return hashlib.sha256(self.text.encode()).hexdigest()


class ReferenceScopeGrant(TenantOwnedModel):
    """The customer's current agreement to one scope of a reference, until a time.

    Written only by ``references.services.reference_scope_grant`` /
    ``reference_scope_withdraw``, which the consent app calls; references
    never decides consent itself.
    """

    reference = models.ForeignKey(Reference, on_delete=models.CASCADE, related_name="scope_grants")
    scope = models.CharField(max_length=16, choices=Scope.choices)
    granted_until = models.DateTimeField()
    source = models.CharField(max_length=100, help_text=_("What granted it, e.g. consent:42."))

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "reference", "scope"], name="references_grant_uniq"),
        ]
        indexes = [models.Index(fields=["organization", "granted_until"], name="references_grant_until")]

    def __str__(self) -> str:
        return f"{self.scope} until {self.granted_until:%Y-%m-%d}"


class HoldKind(models.TextChoices):
    REVIEW = "review", _("Under compliance review")
    COMPLAINT = "complaint", _("Open complaint")


class ReferenceHold(TenantOwnedModel):
    """A reason a reference must not be used for now, placed and released by the app that decided it."""

    reference = models.ForeignKey(Reference, on_delete=models.CASCADE, related_name="holds")
    kind = models.CharField(max_length=16, choices=HoldKind.choices)
    source = models.CharField(max_length=100, help_text=_("What placed it, e.g. review_flag:7."))
    reason = models.CharField(max_length=300)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(
                fields=["organization", "reference", "kind", "source"], name="references_hold_uniq"
            ),
        ]
        indexes = [
            models.Index(
                fields=["organization", "reference"], condition=Q(released_at=None), name="references_hold_open"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.reason}"


class UsageStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    APPROVED = "approved", _("Approved")
    DECLINED = "declined", _("Declined")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")


class Outcome(models.TextChoices):
    WON = "won", _("Won")
    LOST = "lost", _("Lost")
    OPEN = "open", _("Still open")


class UsageRequest(TenantOwnedModel):
    """A salesperson's request to use one scope of a reference for one deal."""

    reference = models.ForeignKey(Reference, on_delete=models.PROTECT, related_name="usage_requests")
    scope = models.CharField(_("use"), max_length=16, choices=Scope.choices)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    opportunity_name = models.CharField(_("opportunity"), max_length=200)
    opportunity_value = models.DecimalField(
        _("opportunity value"),
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
    )
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    opportunity_stage = models.CharField(_("stage"), max_length=100, blank=True)
    crm_opportunity_id = models.CharField(_("CRM opportunity id"), max_length=100, blank=True)
    needed_by = models.DateField(_("needed by"), null=True, blank=True)
    purpose = models.TextField(_("purpose"), blank=True)
    status = models.CharField(max_length=16, choices=UsageStatus.choices, default=UsageStatus.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(_("reason"), blank=True)
    outcome = models.CharField(_("outcome"), max_length=8, choices=Outcome.choices, blank=True)
    outcome_notes = models.TextField(_("notes"), blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwnedModel.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "status", "needed_by"], name="references_usage_queue"),
            models.Index(fields=["organization", "requested_by", "-created_at"], name="references_usage_mine"),
            # The nightly review sweep reads only requests changed since its checkpoint (ReviewScan).
            models.Index(fields=["organization", "updated_at"], name="references_usage_changed"),
        ]

    def __str__(self) -> str:
        return f"{self.get_scope_display()} of {self.reference} for {self.opportunity_name}"


class UsageEventKind(models.TextChoices):
    APPROVED = "approved", _("Use approved")
    COMPLETED = "completed", _("Use completed")


class UsageEvent(TenantOwnedModel):
    """The usage ledger: every approved and completed use, append-only.

    Kept apart from ``UsageRequest`` (which changes state) so the history
    survives edits; it is what the customer sees from their consent page.
    On PostgreSQL a trigger rejects UPDATE and DELETE (migration 0002).
    """

    reference = models.ForeignKey(Reference, on_delete=models.PROTECT, related_name="usage_events")
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, null=True, blank=True, related_name="usage_events")
    usage_request = models.ForeignKey(UsageRequest, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=16, choices=UsageEventKind.choices)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    salesperson_label = models.CharField(max_length=150)
    opportunity_name = models.CharField(max_length=200)
    crm_opportunity_id = models.CharField(max_length=100, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, blank=True)

    class Meta(TenantOwnedModel.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "reference", "-created_at"], name="references_event_ref"),
            models.Index(fields=["organization", "contact", "scope", "-created_at"], name="references_event_contact"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.get_scope_display()} of {self.reference_id}"


class NotificationStatus(models.TextChoices):
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")


class UsageNotification(TenantOwnedModel):
    """The claim on one notification email about a usage request.

    The row is inserted (unique per request and event) and committed before
    the email goes out, so a retried or duplicated task never sends twice; a
    crash between sending and marking it sent leaves a visible ``sending`` row.
    """

    usage_request = models.ForeignKey(UsageRequest, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=16)
    status = models.CharField(max_length=8, choices=NotificationStatus.choices, default=NotificationStatus.SENDING)
    recipients = models.JSONField(default=list)
    error = models.CharField(max_length=300, blank=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(
                fields=["organization", "usage_request", "event"], name="references_notification_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} of request {self.usage_request_id}: {self.status}"


# --- Restricted references: django-guardian direct object permissions, per organization ---


class TenantUserObjectPermissionManager(TenantManager, UserObjectPermissionManager):
    """Guardian's manager (``assign_perm``, ``is_generic``) on top of organization scoping."""


class TenantGroupObjectPermissionManager(TenantManager, GroupObjectPermissionManager):
    """Guardian's manager (``assign_perm``, ``is_generic``) on top of organization scoping."""


class ReferenceUserObjectPermission(TenantOwnedModel, UserObjectPermissionBase):
    """A person allowed to see one restricted reference (guardian's direct foreign-key model).

    Guardian finds it through the ``content_object`` foreign key to ``Reference``;
    carrying the organization makes the rows tenant-owned, so the scoped
    manager and row-level security keep them apart like every other table.
    """

    content_object = models.ForeignKey(Reference, on_delete=models.CASCADE, related_name="user_permissions")

    objects = TenantUserObjectPermissionManager()
    all_tenants = models.Manager()

    class Meta(TenantOwnedModel.Meta):
        default_manager_name = "objects"
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(
                fields=["organization", "content_object", "user", "permission"], name="references_userperm_uniq"
            ),
        ]


class ReferenceGroupObjectPermission(TenantOwnedModel, GroupObjectPermissionBase):
    """A group (e.g. a strategic account's team) allowed to see one restricted reference."""

    content_object = models.ForeignKey(Reference, on_delete=models.CASCADE, related_name="group_permissions")

    objects = TenantGroupObjectPermissionManager()
    all_tenants = models.Manager()

    class Meta(TenantOwnedModel.Meta):
        default_manager_name = "objects"
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(
                fields=["organization", "content_object", "group", "permission"], name="references_groupperm_uniq"
            ),
        ]
