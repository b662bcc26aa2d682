"""Usage-request emails: enqueued after commit, sent at most once, a failed send retried."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import DatabaseError, connection, transaction

from references import services
from references.models import UsageEvent, UsageNotification
from references.notifications import usage_request_notify
from refmgr.common.exceptions import TransientError
from refmgr.tenancy.context import tenant_context
from tests.factories.references import ReferenceFactory, grant


class RefusingSMTP(BaseEmailBackend):
    """The outside world saying no."""

    def send_messages(self, email_messages):  # type: ignore[no-untyped-def]
        raise ConnectionRefusedError("SMTP server unavailable")


@pytest.fixture
def usage_request(org_a, bob, carol, django_capture_on_commit_callbacks):
    reference = ReferenceFactory(organization=org_a)
    grant(reference, "call")
    with tenant_context(org_a), django_capture_on_commit_callbacks() as callbacks:
        created = services.usage_request_create(
            organization=org_a, reference=reference, scope="call", requested_by=bob, opportunity_name="Initech"
        )
    assert len(callbacks) == 1  # the email is enqueued only once the request is committed
    return created


def test_it_tells_the_reference_managers_about_a_new_request(usage_request, org_a, carol):
    with tenant_context(org_a):
        assert usage_request_notify(organization=org_a, usage_request_id=usage_request.pk, event="created") == "sent"
    [message] = mail.outbox
    assert message.to == [carol.email]
    assert "Initech" in message.body
    assert "/o/acme/references/requests/queue/" in message.body


def test_it_sends_each_notification_once(usage_request, org_a):
    with tenant_context(org_a):
        first = usage_request_notify(organization=org_a, usage_request_id=usage_request.pk, event="created")
        second = usage_request_notify(organization=org_a, usage_request_id=usage_request.pk, event="created")
        claim = UsageNotification.objects.get()
    assert (first, second) == ("sent", "duplicate")
    assert len(mail.outbox) == 1
    assert claim.status == "sent"


def test_it_tells_the_salesperson_the_decision(usage_request, org_a, bob, carol):
    with tenant_context(org_a):
        services.usage_request_decline(organization=org_a, usage_request=usage_request, actor=carol, reason="Too soon")
        usage_request_notify(organization=org_a, usage_request_id=usage_request.pk, event="declined")
    [message] = mail.outbox
    assert message.to == [bob.email]
    assert "Too soon" in message.body


def test_it_releases_the_claim_when_the_mail_server_refuses(usage_request, org_a, settings):
    settings.EMAIL_BACKEND = f"{__name__}.RefusingSMTP"
    with tenant_context(org_a):
        with pytest.raises(TransientError):
            usage_request_notify(organization=org_a, usage_request_id=usage_request.pk, event="created")
        assert not UsageNotification.objects.exists()
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        assert usage_request_notify(organization=org_a, usage_request_id=usage_request.pk, event="created") == "sent"


def test_it_does_nothing_for_a_request_that_is_gone(org_a):
    with tenant_context(org_a):
        assert usage_request_notify(organization=org_a, usage_request_id=999999, event="created") == "gone"


@pytest.mark.postgres
def test_it_keeps_the_usage_ledger_append_only(usage_request, org_a, carol):
    with tenant_context(org_a):
        services.usage_request_approve(organization=org_a, usage_request=usage_request, actor=carol)
        with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
            UsageEvent.objects.update(outcome="won")
        with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
            UsageEvent.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute("SELECT has_table_privilege(current_user, 'references_usageevent', 'INSERT')")
        assert cursor.fetchone() == (True,)


def test_it_tells_the_managers_when_a_salesperson_withdraws_a_request(
    usage_request, org_a, bob, carol, django_capture_on_commit_callbacks
):
    with tenant_context(org_a), django_capture_on_commit_callbacks() as callbacks:
        services.usage_request_cancel(organization=org_a, usage_request=usage_request, actor=bob, reason="Deal lost")
    assert len(callbacks) == 1
    with tenant_context(org_a):
        assert usage_request_notify(organization=org_a, usage_request_id=usage_request.pk, event="withdrawn") == "sent"
    [message] = mail.outbox
    assert message.to == [carol.email]
    assert "withdrew" in message.body


def test_it_falls_back_to_the_admins_when_there_is_no_reference_manager(org_a, alice, bob):
    reference = ReferenceFactory(organization=org_a)
    grant(reference, "quote")
    with tenant_context(org_a):
        created = services.usage_request_create(
            organization=org_a, reference=reference, scope="quote", requested_by=bob, opportunity_name="x"
        )
        usage_request_notify(organization=org_a, usage_request_id=created.pk, event="created")
    assert mail.outbox[0].to == [alice.email]


def test_it_emails_nobody_who_has_left_the_organization(usage_request, org_a, alice, bob_membership, carol):
    with tenant_context(org_a):
        usage_request.reference.owner = carol
        usage_request.reference.save()
        carol_membership = carol.memberships.get()
        carol_membership.is_active = False
        carol_membership.save()
        usage_request_notify(organization=org_a, usage_request_id=usage_request.pk, event="created")
        bob_membership.is_active = False
        bob_membership.save()
        assert usage_request_notify(organization=org_a, usage_request_id=usage_request.pk, event="cancelled") == (
            "nobody"
        )
    assert [m.to for m in mail.outbox] == [[alice.email]]  # the owner left: the admins hear of it
