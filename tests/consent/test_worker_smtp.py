"""End to end: a consent request committed here is sent by a real Celery worker on Redis through a real
SMTP server (aiosmtpd, in this test), and the link in the delivered email opens the customer's page."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.test import Client

from consent.models import ConsentMessage
from consent.selectors import consent_link_lookup
from consent.services import consent_request_create
from refmgr.tenancy.context import tenant_context
from tests.factories.consent import QUOTE, consent_case

pytestmark = [pytest.mark.worker, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LINK = re.compile(r"https?://[^/\s]+(/consent/([^/\s]+)/)")


class Inbox:
    """aiosmtpd's handler: keeps every message the server accepted."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802  (aiosmtpd's hook name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 30) -> list[email.message.EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.2)
        raise AssertionError(
            f"expected {count} email(s) at the SMTP server within {timeout} s, got {len(self.messages)}"
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def celery_worker_env(smtp_server: tuple[Inbox, int]) -> dict[str, str]:
    # The worker reads email settings from EMAIL_URL as production does; the test settings would
    # force the in-memory backend, so it runs on the base settings (local.py adds nothing).
    _inbox, port = smtp_server
    return {"DJANGO_SETTINGS_MODULE": "refmgr.settings.local", "EMAIL_URL": f"smtp://127.0.0.1:{port}"}


def test_a_consent_email_goes_through_a_real_worker_and_smtp_server(smtp_server, celery_worker_process, org_a) -> None:
    inbox, _port = smtp_server
    case = consent_case(org_a)
    with tenant_context(org_a):
        # Commits, and enqueues the send task on Redis after the commit.
        request = consent_request_create(
            organization=org_a, actor=None, reference=case.reference, contact=case.advocate, scopes=["quote"]
        )

    [message] = inbox.wait_for(1)

    assert inbox.envelopes[0][1] == [case.advocate.email]
    assert org_a.name in message["Subject"]
    assert message["Auto-Submitted"] == "auto-generated"
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    match = LINK.search(text)
    assert match is not None, text
    assert match.group(0) in html
    path, token = match.group(1), match.group(2)
    found = consent_link_lookup(token=token)
    assert found.link is not None
    assert found.link.consent_request_id == request.pk

    page = Client().get(path)
    assert page.status_code == 200
    html_page = page.content.decode()
    assert "This link cannot be used" not in html_page
    assert QUOTE in html_page  # the question, with the exact words to approve

    deadline = time.monotonic() + 10
    while True:
        with tenant_context(org_a):
            sent = ConsentMessage.objects.get(kind="consent_request", consent_request=request)
        if sent.status == "sent" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (sent.status, sent.attempts) == ("sent", 1)
    time.sleep(1)
    assert len(inbox.messages) == 1  # sent once
