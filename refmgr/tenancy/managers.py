"""Managers that scope every query to the current organization, or refuse to run."""

from __future__ import annotations

from typing import Any

from django.db import models

from .context import get_current_organization


class TenantQuerySet(models.QuerySet):
    pass


class TenantManager(models.Manager):
    """The default manager of tenant-owned models.

    Unlike django-multitenant's scope, which does nothing when no tenant is
    set, this raises :class:`OrganizationNotSet`: a query with no
    organization is a bug, never a reason to return every organization's rows.
    """

    def get_queryset(self) -> models.QuerySet[Any]:
        organization = get_current_organization()
        return TenantQuerySet(self.model, using=self._db).filter(organization=organization)

    def none(self) -> models.QuerySet[Any]:
        # An empty queryset reveals nothing, so it needs no organization;
        # schema generation (drf-spectacular, django-filter) asks for one.
        return TenantQuerySet(self.model, using=self._db).none()
