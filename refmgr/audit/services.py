"""Writing the audit log. Every service that changes state calls :func:`record`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import connection, models
from django.utils import timezone

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
    object_type: str,
    events: Sequence[tuple[str, str, dict[str, Any]]],
) -> None:
    """Append one ``action`` event per (object id, object repr, details), as :func:`record` would.

    For set-based services (the CSV import of 100,000 references) that keep one event per object
    without a round trip each: ``object_type`` is the targets' ``_meta.label_lower``, and the rows
    are exactly those ``record`` writes for targets of that type. On PostgreSQL the events go in
    one ``INSERT … SELECT … FROM unnest(…)`` statement, whatever their number (the caller batches),
    rather than ``bulk_create``'s statement of ten parameters an event, which Django spends more
    time building than the database spends inserting.
    """
    if get_current_organization().pk != organization.pk:
        raise ValueError("record_many() must run inside the organization it records for")
    if not events:
        return
    user = actor if actor is not None and actor.is_authenticated else None
    label = user.get_username() if user is not None else "system"
    if connection.vendor != "postgresql":
        AuditEvent.objects.bulk_create(
            AuditEvent(
                organization=organization,
                actor=user,
                actor_label=label,
                action=action,
                object_type=object_type,
                object_id=object_id,
                object_repr=object_repr[:200],
                details=details or {},
            )
            for object_id, object_repr, details in events
        )
        return
    encoder = AuditEvent._meta.get_field("details").encoder  # type: ignore[union-attr]
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO audit_auditevent
                    (created_at, updated_at, actor_label, action, object_type, object_id, object_repr, details,
                     actor_id, organization_id)
                SELECT %s, %s, %s, %s, %s, e.object_id, e.object_repr, e.details::jsonb, %s, %s
                  FROM unnest(%s::text[], %s::text[], %s::text[]) AS e (object_id, object_repr, details)""",
            [
                now,
                now,
                label,
                action,
                object_type,
                user.pk if user is not None else None,
                organization.pk,
                [object_id for object_id, _repr, _details in events],
                [object_repr[:200] for _id, object_repr, _details in events],
                [json.dumps(details or {}, cls=encoder) for _id, _repr, details in events],
            ],
        )
