"""Celery: the organization task base, the claim-once email task, and a round trip through a real worker."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.core import mail

from refmgr.common.tasks import health_check
from refmgr.tenancy import services
from refmgr.tenancy.context import OrganizationNotSet, current_organization_or_none, tenant_context
from refmgr.tenancy.models import Invitation, Role
from refmgr.tenancy.tasks import invitation_send, tenant_task


@tenant_task(name="tests.test_celery.current_organization_id")
def current_organization_id(*, organization_id: int) -> int | None:
    """What the task body sees as its organization (only ever run locally, with .apply())."""
    organization = current_organization_or_none()
    return organization.pk if organization is not None else None


def invite(organization, actor, email: str = "newcomer@example.com") -> Invitation:
    with tenant_context(organization):
        return services.invitation_create(organization=organization, email=email, role=Role.SALES, actor=actor)


# --- Configuration ------------------------------------------------------------------


def test_it_serializes_tasks_as_json_only():
    # Pickle would let anyone who can write to the broker run code on the workers.
    assert settings.CELERY_TASK_SERIALIZER == "json"
    assert settings.CELERY_RESULT_SERIALIZER == "json"
    assert settings.CELERY_ACCEPT_CONTENT == ["json"]


def test_it_bounds_every_task_in_time_and_acknowledges_late():
    assert 0 < settings.CELERY_TASK_SOFT_TIME_LIMIT < settings.CELERY_TASK_TIME_LIMIT
    assert settings.CELERY_TASK_ACKS_LATE is True
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1


def test_it_schedules_the_health_check_with_beat():
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "refmgr.common.tasks.health_check" in tasks


def test_it_uses_redis_when_configured_and_the_filesystem_otherwise():
    if settings.REDIS_URL:
        assert settings.CELERY_BROKER_URL == settings.REDIS_URL
    else:
        assert settings.CELERY_BROKER_URL == "filesystem://"


# --- TenantTask, run in this process ------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"organization_id": None}, {"organization_id": "1"}],
    ids=["missing", "none", "string"],
)
def test_it_refuses_to_run_an_organization_task_without_an_organization(kwargs):
    with pytest.raises(OrganizationNotSet, match="needs an integer organization_id"):
        current_organization_id.apply(kwargs=kwargs, throw=True)


def test_it_runs_the_task_inside_its_organization(org_a, org_b):
    assert current_organization_id.apply(kwargs={"organization_id": org_b.pk}).get() == org_b.pk
    # ...and leaves no organization behind.
    assert current_organization_or_none() is None


def test_it_replaces_the_callers_organization_with_the_tasks(org_a, org_b):
    with tenant_context(org_a):
        assert current_organization_id.apply(kwargs={"organization_id": org_b.pk}).get() == org_b.pk
        assert current_organization_or_none() == org_a


def test_it_does_nothing_for_an_inactive_organization(org_a):
    org_a.is_active = False
    org_a.save()
    assert current_organization_id.apply(kwargs={"organization_id": org_a.pk}).get() is None


@pytest.mark.django_db
def test_it_does_nothing_for_an_organization_that_is_gone():
    assert current_organization_id.apply(kwargs={"organization_id": 987654}).get() is None


def test_it_sends_an_invitation_once_however_often_the_task_runs(org_a, alice):
    invitation = invite(org_a, alice)
    kwargs = {"organization_id": org_a.pk, "invitation_id": invitation.pk}

    first = invitation_send.apply(kwargs=kwargs).get()
    second = invitation_send.apply(kwargs=kwargs).get()

    assert (first, second) == (True, False)
    assert [message.to for message in mail.outbox] == [["newcomer@example.com"]]
    with tenant_context(org_a):
        assert Invitation.objects.get(pk=invitation.pk).sent_at is not None


def test_it_does_not_send_an_invitation_of_another_organization(org_a, org_b, alice):
    invitation = invite(org_a, alice)

    # The right id in the wrong organization finds nothing to send.
    assert invitation_send.apply(kwargs={"organization_id": org_b.pk, "invitation_id": invitation.pk}).get() is False
    assert mail.outbox == []


# --- A real worker process on Redis -------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_it_runs_the_health_check_on_a_real_worker(celery_worker_process):
    result = health_check.delay().get(timeout=30)

    expected_vendor = "postgresql" if settings.DATABASES["default"]["ENGINE"].endswith("postgresql") else "sqlite"
    assert result == {"status": "ok", "database": expected_vendor}


@pytest.mark.worker
@pytest.mark.postgres  # the worker is another process: it shares the test database only on PostgreSQL
@pytest.mark.django_db(transaction=True)
def test_it_sends_an_invitation_through_a_real_worker(celery_worker_process, org_a, alice):
    # invitation_create enqueues invitation_send after commit; the worker (its
    # own process, as the application role on PostgreSQL) claims and sends it.
    invitation = invite(org_a, alice)

    deadline = time.monotonic() + 30
    while True:
        with tenant_context(org_a):
            sent_at = Invitation.objects.get(pk=invitation.pk).sent_at
        if sent_at is not None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sent_at is not None, "the worker did not send the invitation within 30 s"

    # A duplicate delivery of the same task is harmless: the claim is taken.
    again = invitation_send.delay(organization_id=org_a.pk, invitation_id=invitation.pk)
    assert again.get(timeout=30) is False
