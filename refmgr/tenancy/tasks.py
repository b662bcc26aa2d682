"""The Celery base for organization work, and the tenancy tasks."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from refmgr.common.exceptions import TransientError

from .context import OrganizationNotSet, tenant_context
from .models import Organization


class TenantTask(Task):
    """Runs the task body inside the organization named by its ``organization_id`` kwarg.

    A task without one refuses to run: nothing ever falls back to "all
    organizations". An organization that no longer exists or is inactive
    makes the task a quiet no-op (there is nothing left to do for it).
    """

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        organization_id = kwargs.get("organization_id")
        if not isinstance(organization_id, int):
            raise OrganizationNotSet(f"Task {self.name} needs an integer organization_id keyword argument")
        organization = Organization.objects.filter(pk=organization_id, is_active=True).first()
        if organization is None:
            return None
        with tenant_context(organization):
            return super().__call__(*args, **kwargs)


def tenant_task(**options: Any) -> Any:
    """``@shared_task`` with the project's defaults for organization work."""
    defaults: dict[str, Any] = {
        "base": TenantTask,
        "bind": False,
        "acks_late": True,
        "autoretry_for": (TransientError,),
        "retry_backoff": True,
        "max_retries": 5,
    }
    return shared_task(**{**defaults, **options})


@tenant_task(name="refmgr.tenancy.tasks.invitation_send")
def invitation_send(*, organization_id: int, invitation_id: int) -> bool:
    from .context import get_current_organization
    from .services import invitation_send as invitation_send_service

    try:
        return invitation_send_service(organization=get_current_organization(), invitation_id=invitation_id)
    except OSError as exc:  # SMTP down: worth another try
        raise TransientError(str(exc)) from exc


@tenant_task(name="refmgr.tenancy.tasks.invitations_send_pending")
def invitations_send_pending(*, organization_id: int) -> int:
    from datetime import timedelta

    from .context import get_current_organization
    from .services import invitations_send_pending as invitations_send_pending_service

    return invitations_send_pending_service(organization=get_current_organization(), older_than=timedelta(minutes=2))


@shared_task(name="refmgr.tenancy.tasks.fan_out", acks_late=True)
def fan_out(*, task_name: str) -> int:
    """Beat's entry point for per-organization work: one task per active organization.

    Beat itself never runs organization work, so nothing runs outside an
    organization: each child task enters its own (``TenantTask``). Reading
    the organization list is safe without a context, as organizations are
    the tenancy directory, not tenant-owned rows.
    """
    from refmgr.celery import app

    organization_ids = list(Organization.objects.filter(is_active=True).values_list("pk", flat=True))
    for organization_id in organization_ids:
        app.send_task(task_name, kwargs={"organization_id": organization_id})
    return len(organization_ids)
