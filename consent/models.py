"""Consent requests and links, the consent ledger, its materialised state, the outbox and takedown tasks.

The ledger (``ConsentEvent``) is the truth: append-only, hash-chained per
organization. ``ConsentState`` is what the ledger adds up to for each
reference, scope and party, kept in step by ``consent.services`` and
rebuildable from the ledger (``manage.py consent_state_check``). The
verdict that matters to salespeople, whether a scope may be used now, is
told to the references app (``ReferenceScopeGrant``) by the same services.
"""

from __future__ import annotations

from uuid import uuid4

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from references.models import COMPANY_SCOPES, Contact, Publication, Reference, Scope
from refmgr.tenancy.models import TenantOwnedModel


class Party(models.TextChoices):
    """Whose consent a scope needs: the company's (an authorised signatory gives it) or the person's."""

    COMPANY = "company", _("The company")
    INDIVIDUAL = "individual", _("The person")


def required_parties(scope: str) -> frozenset[str]:
    """Every grant a scope needs before it may be used (DESIGN.md "Consent before use")."""
    return frozenset({Party.COMPANY}) if scope in COMPANY_SCOPES else frozenset({Party.INDIVIDUAL})


# Scopes whose completed uses put the customer in front of others (a web page, a deck):
# revoking one of them opens a takedown task for each place it was used.
PUBLISHED_SCOPES = frozenset({Scope.QUOTE, Scope.LOGO, Scope.CASE_STUDY, Scope.VIDEO, Scope.NAME_IN_LIST})

reminder_days_validator = RegexValidator(
    r"^\s*\d{1,3}(\s*,\s*\d{1,3}){0,4}\s*$", _("Up to five numbers of days, separated by commas, e.g. 30, 7.")
)


class ConsentSettings(TenantOwnedModel):
    """An organization's consent rules (one row, created when an admin first changes them)."""

    link_valid_days = models.PositiveSmallIntegerField(
        _("links valid for (days)"),
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(90)],
        help_text=_("How long a link in a consent email can be used."),
    )
    grant_valid_months = models.PositiveSmallIntegerField(
        _("consent valid for (months)"),
        default=12,
        validators=[MinValueValidator(1), MaxValueValidator(36)],
        help_text=_("The longest a consent lasts; the customer may choose a shorter time."),
    )
    reminder_days = models.CharField(
        _("remind before expiry (days)"),
        max_length=40,
        default="30, 7",
        validators=[reminder_days_validator],
        help_text=_("When to remind the customer, in days before their consent lapses."),
    )
    reminders_max = models.PositiveSmallIntegerField(
        _("reminders per consent at most"), default=3, validators=[MinValueValidator(0), MaxValueValidator(10)]
    )
    takedown_due_days = models.PositiveSmallIntegerField(
        _("takedowns due within (days)"), default=7, validators=[MinValueValidator(1), MaxValueValidator(90)]
    )

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization"], name="consent_settings_one_per_org"),
        ]
        verbose_name_plural = "consent settings"

    def __str__(self) -> str:
        return f"links {self.link_valid_days} days, consent {self.grant_valid_months} months"

    @property
    def reminder_points(self) -> list[int]:
        """The reminder days, largest first, without duplicates or zeros."""
        days = {
            int(part)
            for part in self.reminder_days.replace(" ", "").split(",")
            if part.strip().isascii() and part.strip().isdigit()
        }
        return sorted((d for d in days if d > 0), reverse=True)


class ConsentRequestKind(models.TextChoices):
    REQUEST = "request", _("Request")
    RENEWAL = "renewal", _("Renewal")
    REWORDING = "rewording", _("New wording")


class ConsentRequestStatus(models.TextChoices):
    PROPOSED = "proposed", _("Proposed, not sent")
    SENT = "sent", _("Waiting for the customer")
    ANSWERED = "answered", _("Answered")
    SUPERSEDED = "superseded", _("Superseded")
    CANCELLED = "cancelled", _("Cancelled")


class ConsentRequest(TenantOwnedModel):
    """What we asked one person, about one reference: the scopes and, word for word, the material.

    ``texts`` and ``fingerprints`` are frozen when the request is sent; an
    answer counts only while the reference's material still matches them.
    """

    reference = models.ForeignKey(Reference, on_delete=models.PROTECT, related_name="consent_requests")
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="consent_requests")
    kind = models.CharField(max_length=16, choices=ConsentRequestKind.choices, default=ConsentRequestKind.REQUEST)
    status = models.CharField(max_length=16, choices=ConsentRequestStatus.choices, default=ConsentRequestStatus.SENT)
    scopes = models.JSONField(default=list, help_text=_("The scopes asked for."))
    texts = models.JSONField(default=dict, help_text=_("Scope → the exact text shown."))
    fingerprints = models.JSONField(default=dict, help_text=_("Scope → fingerprint of the material shown."))
    previous_texts = models.JSONField(default=dict, help_text=_("Scope → the text approved before (new wording)."))
    message = models.TextField(_("why we ask"), blank=True, max_length=2000)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwnedModel.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "status", "-created_at"], name="consent_request_status"),
            models.Index(fields=["organization", "contact", "reference"], name="consent_request_contact"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.contact_id} about {self.reference_id}"


class ConsentLink(TenantOwnedModel):
    """One emailed link: a secret (only its hash is kept) that stands for one person of one organization.

    With a request it answers that request; every link also opens the
    person's "manage my consent" page until it expires.
    """

    token_hash = models.CharField(max_length=64)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="consent_links")
    consent_request = models.ForeignKey(
        ConsentRequest, on_delete=models.CASCADE, null=True, blank=True, related_name="links"
    )
    expires_at = models.DateTimeField()

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "token_hash"], name="consent_link_token_uniq"),
        ]

    def __str__(self) -> str:
        return f"link for {self.contact_id} until {self.expires_at:%Y-%m-%d}"


class ConsentEventKind(models.TextChoices):
    NOTICE_SERVED = "notice_served", _("Page shown")
    REQUESTED = "requested", _("Requested")
    GRANTED = "granted", _("Granted")
    RECONFIRMED = "reconfirmed", _("Re-confirmed")
    DECLINED = "declined", _("Declined")
    REVOKED = "revoked", _("Revoked")
    EXPIRED = "expired", _("Expired")
    VOIDED = "voided", _("Voided (new wording, advocate or account)")
    REMINDED = "reminded", _("Reminder sent")
    PAUSED = "paused", _("Requests paused")
    RESUMED = "resumed", _("Requests resumed")


class Mechanism(models.TextChoices):
    LINK = "link", _("Emailed link")
    OFFLINE = "offline", _("Recorded by a manager, with proof")
    MANAGER = "manager", _("A manager's action")
    SYSTEM = "system", _("refmgr")


def proof_upload_to(instance: ConsentEvent, filename: str) -> str:
    from pathlib import PurePath

    return f"consent-proof/{instance.organization_id}/{uuid4().hex}{PurePath(filename).suffix.lower()[:10]}"


class ConsentEvent(TenantOwnedModel):
    """The consent ledger: one row per thing that happened, never changed or removed.

    ``sequence`` numbers the organization's events from 1; ``hash`` covers
    this event's content and ``previous_hash``, so any edit or removal breaks
    the chain (``manage.py verify_ledger``). On PostgreSQL a trigger rejects
    UPDATE and DELETE and the application role has no right to either.
    """

    sequence = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=16, choices=ConsentEventKind.choices)
    occurred_at = models.DateTimeField()
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    reference = models.ForeignKey(Reference, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    consent_request = models.ForeignKey(
        ConsentRequest, on_delete=models.PROTECT, null=True, blank=True, related_name="events"
    )
    link = models.ForeignKey(ConsentLink, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    scope = models.CharField(max_length=16, choices=Scope.choices, blank=True)
    party = models.CharField(max_length=16, choices=Party.choices, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    publication = models.CharField(max_length=16, choices=Publication.choices, blank=True)
    policy_version = models.PositiveIntegerField(null=True, blank=True)
    text_hash = models.CharField(max_length=64, blank=True, help_text=_("Fingerprint of the exact material shown."))
    mechanism = models.CharField(max_length=16, choices=Mechanism.choices)
    proof = models.FileField(upload_to=proof_upload_to, blank=True, max_length=200)
    ip_prefix = models.CharField(max_length=45, blank=True, help_text=_("The address with its host part zeroed."))
    user_agent_hash = models.CharField(max_length=16, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    note = models.CharField(max_length=300, blank=True)
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "sequence"], name="consent_event_sequence_uniq"),
        ]
        indexes = [
            models.Index(fields=["organization", "reference", "scope", "sequence"], name="consent_event_ref"),
            models.Index(fields=["organization", "contact", "sequence"], name="consent_event_contact"),
        ]
        ordering = ["-sequence"]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.kind} {self.scope}".strip()


class ConsentLedgerHead(TenantOwnedModel):
    """The end of an organization's chain; its row lock serialises appends so the chain never forks."""

    sequence = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="")

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization"], name="consent_ledger_head_one_per_org"),
        ]

    def __str__(self) -> str:
        return f"ledger at #{self.sequence}"


class ConsentStatus(models.TextChoices):
    GRANTED = "granted", _("Granted")
    DECLINED = "declined", _("Declined")
    REVOKED = "revoked", _("Revoked")
    EXPIRED = "expired", _("Expired")
    VOIDED = "voided", _("Void (the wording or the people changed)")


class ConsentState(TenantOwnedModel):
    """Where one party's consent to one scope of one reference stands: the ledger, added up."""

    reference = models.ForeignKey(Reference, on_delete=models.CASCADE, related_name="consent_states")
    scope = models.CharField(max_length=16, choices=Scope.choices)
    party = models.CharField(max_length=16, choices=Party.choices)
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="consent_states")
    status = models.CharField(max_length=16, choices=ConsentStatus.choices)
    valid_until = models.DateTimeField(null=True, blank=True)
    publication = models.CharField(max_length=16, choices=Publication.choices, blank=True)
    policy_version = models.PositiveIntegerField(null=True, blank=True)
    text_hash = models.CharField(max_length=64, blank=True)
    consent_request = models.ForeignKey(
        ConsentRequest, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_sequence = models.PositiveBigIntegerField()
    reminders_sent = models.PositiveSmallIntegerField(default=0)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "reference", "scope", "party"], name="consent_state_uniq"),
        ]
        indexes = [
            # The sweeps read only due rows: granted ones by their end date.
            models.Index(
                fields=["organization", "valid_until"],
                condition=Q(status="granted"),
                name="consent_state_granted_until",
            ),
            models.Index(fields=["organization", "contact", "status"], name="consent_state_contact"),
        ]
        ordering = ["reference_id", "scope", "party"]

    def __str__(self) -> str:
        return f"{self.scope} ({self.party}) of {self.reference_id}: {self.status}"


class MessageKind(models.TextChoices):
    CONSENT_REQUEST = "consent_request", _("Consent request")
    CONFIRMATION = "confirmation", _("Confirmation of an answer")
    REVOCATION = "revocation", _("Confirmation of a revocation")
    REMINDER = "reminder", _("Expiry reminder")
    LAPSING_DIGEST = "lapsing_digest", _("What is about to lapse (managers)")
    TAKEDOWN = "takedown", _("Takedown tasks opened (managers)")


class MessageStatus(models.TextChoices):
    PENDING = "pending", _("Waiting to be sent")
    SENDING = "sending", _("Being sent (or interrupted)")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Not needed any more")


class ConsentMessage(TenantOwnedModel):
    """The transactional outbox for consent emails, and the claim that each goes out once.

    Written in the same transaction as the change it reports, so a commit
    never loses its email even when the broker is down (a beat sweep
    re-enqueues what is still pending). Sending first moves the row from
    ``pending`` to ``sending`` in a committed UPDATE; only the worker that
    won that move sends. A row left in ``sending`` means a crash between
    sending and recording it: it is reported, never sent again.
    """

    kind = models.CharField(max_length=20, choices=MessageKind.choices)
    status = models.CharField(max_length=8, choices=MessageStatus.choices, default=MessageStatus.PENDING)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    consent_request = models.ForeignKey(
        ConsentRequest, on_delete=models.CASCADE, null=True, blank=True, related_name="messages"
    )
    state = models.ForeignKey(ConsentState, on_delete=models.CASCADE, null=True, blank=True, related_name="messages")
    # A reminder is unique per consent, reminder point and the end date it reminds of.
    reminder_days = models.PositiveSmallIntegerField(null=True, blank=True)
    cycle_until = models.DateTimeField(null=True, blank=True)
    # Other once-only messages (a day's digest) say what makes them unique here.
    dedupe_key = models.CharField(max_length=100, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(
                fields=["organization", "state", "reminder_days", "cycle_until"],
                condition=Q(kind="reminder"),
                name="consent_message_reminder_once",
            ),
            models.UniqueConstraint(
                fields=["organization", "dedupe_key"], condition=~Q(dedupe_key=""), name="consent_message_dedupe"
            ),
        ]
        indexes = [
            models.Index(
                fields=["organization", "created_at"],
                condition=Q(status="pending"),
                name="consent_message_pending",
            ),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.status}"


class TakedownStatus(models.TextChoices):
    OPEN = "open", _("Open")
    DONE = "done", _("Done")


class TakedownTask(TenantOwnedModel):
    """Remove a use the customer no longer agrees to from where it was published."""

    reference = models.ForeignKey(Reference, on_delete=models.PROTECT, related_name="takedown_tasks")
    scope = models.CharField(max_length=16, choices=Scope.choices)
    usage_request = models.ForeignKey(
        "references.UsageRequest", on_delete=models.PROTECT, related_name="takedown_tasks"
    )
    revocation = models.ForeignKey(ConsentEvent, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    due_on = models.DateField()
    status = models.CharField(max_length=8, choices=TakedownStatus.choices, default=TakedownStatus.OPEN)
    evidence = models.TextField(_("what was taken down, and where"), blank=True)
    evidence_file = models.FileField(_("evidence file"), upload_to=proof_upload_to, blank=True, max_length=200)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "usage_request"], name="consent_takedown_once"),
        ]
        indexes = [models.Index(fields=["organization", "status", "due_on"], name="consent_takedown_open")]
        ordering = ["status", "due_on", "id"]

    def __str__(self) -> str:
        return f"Take down {self.scope} of {self.reference_id} ({self.status})"
