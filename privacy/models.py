"""Models of the privacy app (see DESIGN.md): the organization's published privacy policy.

Retention rules, data-subject requests and the PII access log come later.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from refmgr.tenancy.models import TenantOwnedModel


class PolicyStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PUBLISHED = "published", _("Published")


class PrivacyPolicy(TenantOwnedModel):
    """One version of an organization's privacy policy.

    A draft is edited freely; once published a version never changes (on
    PostgreSQL a trigger refuses any UPDATE or DELETE of a published row), so
    a consent that points at it keeps pointing at the exact text the person
    saw. Version numbers are assigned by ``privacy.services``, one per
    organization, in order of creation.
    """

    version = models.PositiveIntegerField(_("version"), editable=False)
    status = models.CharField(
        _("status"), max_length=16, choices=PolicyStatus.choices, default=PolicyStatus.DRAFT, editable=False
    )
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("text"), help_text=_("Plain text; a blank line starts a new paragraph."))
    summary_of_changes = models.TextField(
        _("summary of changes"), blank=True, help_text=_("What changed since the previous version, in plain words.")
    )
    effective_date = models.DateField(_("effective date"), help_text=_("The day this version starts to apply."))
    published_at = models.DateTimeField(_("published at"), null=True, blank=True, editable=False)
    # PROTECT, not SET_NULL: nulling the column would be an UPDATE of a published row.
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, editable=False, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, editable=False, related_name="+"
    )

    class Meta(TenantOwnedModel.Meta):
        verbose_name = _("privacy policy version")
        verbose_name_plural = _("privacy policy versions")
        ordering = ["-version"]
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "version"], name="privacy_privacypolicy_version_uniq"),
            models.CheckConstraint(
                condition=models.Q(status=PolicyStatus.DRAFT) | models.Q(published_at__isnull=False),
                name="privacy_privacypolicy_published_has_date",
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.version} {self.title}"

    @property
    def is_published(self) -> bool:
        return self.status == PolicyStatus.PUBLISHED

    @property
    def is_draft(self) -> bool:
        return self.status == PolicyStatus.DRAFT
