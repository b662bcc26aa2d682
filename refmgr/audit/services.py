"""Writing the audit log. Every service that changes state calls :func:`record`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.db import models

from refmgr.tenancy.context import get_current_organization

from .models import AuditEvent

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    from refmgr.tenancy.models import Organization


def record(
    *,
    organization: Organization,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    target: models.Model | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. ``action`` is ``<entity>.<verb>``, e.g. ``membership.role_changed``.

    Call it inside the service's transaction so the event and the change
    commit or roll back together.
    """
    if get_current_organization().pk != organization.pk:
        raise ValueError("record() must run inside the organization it records for")
    user = actor if actor is not None and actor.is_authenticated else None
    return AuditEvent.objects.create(
        organization=organization,
        actor=user,
        actor_label=user.get_username() if user is not None else "system",
        action=action,
        object_type=target._meta.label_lower if target is not None else "",
        object_id=str(target.pk) if target is not None else "",
        object_repr=str(target)[:200] if target is not None else "",
        details=details or {},
    )


def record_many(
    *,
    organization: Organization,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    events: Iterable[tuple[models.Model, dict[str, Any]]],
    batch_size: int = 2000,
) -> None:
    """Append one ``action`` event per (target, details), as :func:`record` would, in bulk INSERTs.

    For set-based services (the CSV import of 100,000 references) that keep one event per
    object: the rows are exactly those ``record`` writes, without a round trip each.
    """
    if get_current_organization().pk != organization.pk:
        raise ValueError("record_many() must run inside the organization it records for")
    user = actor if actor is not None and actor.is_authenticated else None
    label = user.get_username() if user is not None else "system"
    AuditEvent.objects.bulk_create(
        (
            AuditEvent(
                organization=organization,
                actor=user,
                actor_label=label,
                action=action,
                object_type=target._meta.label_lower,
                object_id=str(target.pk),
                object_repr=str(target)[:200],
                details=details or {},
            )
            for target, details in events
        ),
        batch_size=batch_size,
    )
