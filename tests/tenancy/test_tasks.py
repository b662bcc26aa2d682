"""Per-organization sweeps: beat's fan-out and the invitations' pending-send sweep."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

from refmgr.tenancy import services
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Invitation, Role
from refmgr.tenancy.tasks import fan_out, invitations_send_pending


class RefusingSMTP(BaseEmailBackend):
    """The outside world saying no: an SMTP server that is down."""

    def send_messages(self, email_messages):  # type: ignore[no-untyped-def]
        raise ConnectionRefusedError("SMTP server unavailable")


def invite(organization, actor, email: str, *, age: timedelta = timedelta(minutes=10)) -> Invitation:
    with tenant_context(organization):
        invitation = services.invitation_create(organization=organization, email=email, role=Role.SALES, actor=actor)
        Invitation.objects.filter(pk=invitation.pk).update(created_at=timezone.now() - age)
    return invitation


def test_it_sends_only_the_invitations_that_are_owed(org_a, alice):
    owed = invite(org_a, alice, "owed@example.com")
    invite(org_a, alice, "fresh@example.com", age=timedelta(seconds=5))  # its task may still be on its way
    revoked = invite(org_a, alice, "revoked@example.com")
    with tenant_context(org_a):
        services.invitation_revoke(organization=org_a, invitation=revoked, actor=alice)
    result = invitations_send_pending.apply(kwargs={"organization_id": org_a.pk}).get()
    assert result == 1
    assert [m.to for m in mail.outbox] == [["owed@example.com"]]
    with tenant_context(org_a):
        assert Invitation.objects.get(pk=owed.pk).sent_at is not None
    assert invitations_send_pending.apply(kwargs={"organization_id": org_a.pk}).get() == 0


def test_it_releases_the_claim_when_the_mail_server_refuses(org_a, alice, settings):
    invitation = invite(org_a, alice, "later@example.com")
    settings.EMAIL_BACKEND = f"{__name__}.RefusingSMTP"
    with tenant_context(org_a), pytest.raises(ConnectionRefusedError):
        services.invitation_send(organization=org_a, invitation_id=invitation.pk)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with tenant_context(org_a):
        assert Invitation.objects.get(pk=invitation.pk).sent_at is None
        assert services.invitation_send(organization=org_a, invitation_id=invitation.pk) is True
    assert len(mail.outbox) == 1


def test_it_fans_out_one_task_per_active_organization(org_a, org_b, monkeypatch):
    from refmgr.celery import app

    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, kwargs: sent.append((name, kwargs)))
    org_b.is_active = False
    org_b.save()
    assert fan_out.apply(kwargs={"task_name": "x.y"}).get() == 1
    assert sent == [("x.y", {"organization_id": org_a.pk})]
