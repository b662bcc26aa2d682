"""Writing the audit log. Every service that changes state calls :func:`record`."""

from __future__ import annotations

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
