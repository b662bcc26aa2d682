"""Organizations, their members and roles, and the base of every tenant-owned model."""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from refmgr.common.models import BaseModel

from .context import current_organization_or_none
from .managers import TenantManager

slug_validator = RegexValidator(r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$", _("Lower-case letters, digits and hyphens."))


class Organization(BaseModel):
    """A tenant: one company that keeps its customer references in refmgr."""

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=50, unique=True, validators=[slug_validator])
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TenantOwnedModel(BaseModel):
    """Base of every table that belongs to one organization.

    ``objects`` raises outside an organization context; ``all_tenants`` is the
    deliberate, greppable escape hatch. ``save()`` stamps the organization from
    the context and refuses to write a row into another organization.
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, editable=False, related_name="+")

    objects = TenantManager()
    all_tenants = models.Manager()

    class Meta:
        abstract = True
        # Citus needs the distribution column in every unique key; having
        # (organization, id) unique from day one keeps that move a config change.
        constraints = [
            models.UniqueConstraint(fields=["organization", "id"], name="%(app_label)s_%(class)s_org_id_uniq"),
        ]

    def save(self, *args: Any, **kwargs: Any) -> None:
        current = current_organization_or_none()
        if self.organization_id is None:
            if current is None:
                from .context import OrganizationNotSet

                raise OrganizationNotSet(f"Cannot save {type(self).__name__} without an organization context")
            self.organization = current
        elif current is not None and self.organization_id != current.pk:
            raise ValueError(
                f"Refusing to save {type(self).__name__} of organization {self.organization_id} "
                f"inside organization {current.pk}"
            )
        super().save(*args, **kwargs)


class Role(models.TextChoices):
    ADMIN = "admin", _("Organization admin")
    REFERENCE_MANAGER = "reference_manager", _("Reference manager")
    SALES = "sales", _("Salesperson")
    COMPLIANCE = "compliance", _("Compliance reviewer")


class Membership(TenantOwnedModel):
    """A user's place in one organization, with exactly one role there."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=32, choices=Role.choices)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "user"], name="tenancy_membership_one_per_org"),
        ]
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()})"


class Invitation(TenantOwnedModel):
    """An emailed, signed, expiring offer to join an organization with a role."""

    email = models.EmailField(_("email"))
    role = models.CharField(_("role"), max_length=32, choices=Role.choices)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    expires_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwnedModel.Meta):
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} as {self.get_role_display()}"

    @property
    def is_open(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None


class ApiToken(TenantOwnedModel):
    """A REST API key bound to one membership; only a hash of the key is stored."""

    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=100, blank=True)
    key_hash = models.CharField(max_length=64, editable=False)
    prefix = models.CharField(max_length=16, editable=False, help_text=_("The start of the key, to recognise it."))
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(fields=["organization", "key_hash"], name="tenancy_apitoken_key_uniq"),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.membership.user})"

    @staticmethod
    def hash_key(key: str) -> str:
        # The key has 256 bits of entropy, so a fast unsalted hash is enough
        # (as for GitHub tokens); a slow KDF would cost every API request.
        return hashlib.sha256(key.encode()).hexdigest()
