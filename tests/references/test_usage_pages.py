"""Usage request pages: asking, the managers' queue, my requests, outcomes, notifications and the ledger CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from references import services
from references.models import UsageEvent, UsageRequest, UsageStatus
from references.notifications import usage_request_notify
from refmgr.audit.models import AuditEvent
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Role
from tests.factories.references import AccountFactory, ReferenceFactory, grant

CAST = {"alice": Role.ADMIN, "bob": Role.SALES, "carol": Role.REFERENCE_MANAGER, "dave": Role.COMPLIANCE}
MANAGERS = {Role.ADMIN, Role.REFERENCE_MANAGER}


def url(name: str, slug: str = "acme", **kwargs: object) -> str:
    return reverse(f"references:{name}", kwargs={"organization_slug": slug, **kwargs})


@pytest.fixture
def reference(org_a):
    reference = ReferenceFactory(organization=org_a, title="Fleet onboarding in six weeks")
    grant(reference, "call", "quote")
    return reference


def ask(org, reference, user, scope: str = "call", **kwargs) -> UsageRequest:
    with tenant_context(org):
        return services.usage_request_create(
            organization=org,
            reference=reference,
            scope=scope,
            requested_by=user,
            opportunity_name=kwargs.pop("opportunity_name", "Globex renewal"),
            **kwargs,
        )


def approve(org, usage_request, manager) -> UsageRequest:
    with tenant_context(org):
        return services.usage_request_approve(organization=org, usage_request=usage_request, actor=manager)


FORM = {
    "scope": "call",
    "opportunity_name": "Globex renewal",
    "opportunity_value": "120000",
    "currency": "eur",
    "opportunity_stage": "Negotiation",
    "crm_opportunity_id": "OPP-77",
    "needed_by": "2030-01-15",
    "purpose": "Talk about onboarding speed.",
}


# --- Roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", sorted(CAST))
def test_it_opens_the_queue_and_ledger_export_only_for_managers(client, request, reference, who):
    client.force_login(request.getfixturevalue(who))
    expected = 200 if CAST[who] in MANAGERS else 403
    assert client.get(url("queue")).status_code == expected
    assert client.get(url("usage_csv")).status_code == expected
    assert client.get(url("usage_csv", reference_id=reference.pk)).status_code == expected


@pytest.mark.parametrize("who", sorted(CAST))
def test_it_lets_only_sales_request_a_use(client, request, reference, who):
    client.force_login(request.getfixturevalue(who))
    expected = 200 if CAST[who] == Role.SALES else 403
    assert client.get(url("request_create", reference_id=reference.pk)).status_code == expected


@pytest.mark.parametrize("who", sorted(CAST))
def test_it_opens_my_requests_for_every_member(client, request, who):
    client.force_login(request.getfixturevalue(who))
    assert client.get(url("my_requests")).status_code == 200


@pytest.mark.parametrize(
    "name",
    ["queue", "my_requests", "usage_csv", "request_create", "request_decide", "request_complete", "request_cancel"],
)
def test_it_sends_anonymous_visitors_to_sign_in(client, reference, bob, org_a, name):
    usage_request = ask(org_a, reference, bob)
    kwargs = {
        "request_create": {"reference_id": reference.pk},
        "request_decide": {"usage_request_id": usage_request.pk},
        "request_complete": {"usage_request_id": usage_request.pk},
        "request_cancel": {"usage_request_id": usage_request.pk},
    }.get(name, {})
    response = client.post(url(name, **kwargs)) if name.startswith("request_") else client.get(url(name, **kwargs))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_hides_other_tenants_requests_and_references(client, reference, bob, org_a, mallory):
    usage_request = ask(org_a, reference, bob)
    client.force_login(mallory)
    for slug in ("acme", "borealis"):
        assert client.get(url("request_create", slug=slug, reference_id=reference.pk)).status_code in (403, 404)
        assert client.get(url("usage_csv", slug=slug, reference_id=reference.pk)).status_code == 404
        for name in ("request_decide", "request_complete", "request_cancel"):
            response = client.post(url(name, slug=slug, usage_request_id=usage_request.pk), {"decision": "approve"})
            assert response.status_code in (302, 404)
    with tenant_context(org_a):
        assert UsageRequest.objects.get(pk=usage_request.pk).status == UsageStatus.PENDING


def test_it_answers_404_to_mallory_through_her_own_organization(client, reference, mallory):
    client.force_login(mallory)
    # Mallory is admin in borealis, so the role check passes: the id itself must be unknown.
    assert client.get(url("usage_csv", slug="borealis", reference_id=reference.pk)).status_code == 404


def test_it_refuses_state_changes_by_get(client, reference, bob, carol, org_a):
    usage_request = ask(org_a, reference, bob)
    client.force_login(carol)
    assert client.get(url("request_decide", usage_request_id=usage_request.pk)).status_code == 405
    client.force_login(bob)
    assert client.get(url("request_cancel", usage_request_id=usage_request.pk)).status_code == 405


def test_it_requires_csrf_for_state_changes(reference, bob, org_a):
    from django.test import Client

    usage_request = ask(org_a, reference, bob)
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    assert client.post(url("request_cancel", usage_request_id=usage_request.pk)).status_code == 403


# --- Requesting --------------------------------------------------------------------------------


def test_it_creates_a_request_from_the_form(client, bob, reference, org_a):
    client.force_login(bob)
    response = client.post(url("request_create", reference_id=reference.pk), FORM)
    assert response.status_code == 302
    assert response["Location"] == url("my_requests")
    with tenant_context(org_a):
        usage_request = UsageRequest.objects.get()
    assert usage_request.requested_by == bob
    assert usage_request.currency == "EUR"
    assert str(usage_request.needed_by) == "2030-01-15"
    body = client.get(url("my_requests")).content.decode()
    assert "Globex renewal" in body
    assert "Pending" in body


def test_it_refuses_a_scope_the_customer_did_not_agree_to(client, bob, reference, org_a):
    client.force_login(bob)
    response = client.post(url("request_create", reference_id=reference.pk), {**FORM, "scope": "logo"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    with tenant_context(org_a):
        assert not UsageRequest.objects.exists()


def test_it_requires_an_opportunity(client, bob, reference):
    client.force_login(bob)
    response = client.post(url("request_create", reference_id=reference.pk), {**FORM, "opportunity_name": ""})
    assert response.status_code == 400
    assert 'aria-invalid="true"' in response.content.decode()


def test_it_shows_the_fatigue_refusal_with_the_date_it_becomes_possible(client, bob, carol, reference, org_a):
    # Three approved calls spaced beyond the 14-day rest, all within the 90-day window.
    for days_ago in (80, 50, 20):
        usage_request = approve(org_a, ask(org_a, reference, bob, opportunity_name=f"deal {days_ago}"), carol)
        with tenant_context(org_a):
            UsageRequest.objects.filter(pk=usage_request.pk).update(
                decided_at=timezone.now() - timedelta(days=days_ago)
            )
    client.force_login(bob)
    response = client.post(url("request_create", reference_id=reference.pk), FORM)
    assert response.status_code == 400
    body = response.content.decode()
    possible = timezone.localtime(timezone.now() + timedelta(days=10))
    assert "has been asked 3 times in the last 90 days" in body
    assert f"It becomes possible on {possible.day} {possible:%B %Y}." in body
    with tenant_context(org_a):
        assert UsageRequest.objects.filter(opportunity_name="Globex renewal").count() == 0
        assert AuditEvent.objects.filter(action="usage_request.refused").count() == 1


def test_it_enqueues_one_notification_on_commit(client, bob, reference, django_capture_on_commit_callbacks):
    client.force_login(bob)
    with django_capture_on_commit_callbacks() as callbacks:
        client.post(url("request_create", reference_id=reference.pk), FORM)
    assert len(callbacks) == 1


# --- Queue -------------------------------------------------------------------------------------


def test_it_lists_pending_requests_by_needed_by_date_with_due_badges(client, bob, carol, reference, org_a):
    today = timezone.localdate()
    ask(org_a, reference, bob, opportunity_name="Later deal", needed_by=today + timedelta(days=30))
    ask(org_a, reference, bob, opportunity_name="Undated deal", scope="quote")
    ask(org_a, reference, bob, opportunity_name="Late deal", needed_by=today - timedelta(days=1))
    ask(org_a, reference, bob, opportunity_name="Today deal", needed_by=today)
    ask(org_a, reference, bob, opportunity_name="Soon deal", needed_by=today + timedelta(days=2))
    client.force_login(carol)
    body = client.get(url("queue")).content.decode()
    order = [body.index(name) for name in ("Late deal", "Today deal", "Soon deal", "Later deal", "Undated deal")]
    assert order == sorted(order)
    assert "Overdue" in body
    assert "Due today" in body
    assert "Due soon" in body
    assert "Advocate available" in body


def test_it_approves_and_the_salesperson_then_sees_the_contact(client, bob, carol, reference, org_a):
    usage_request = ask(org_a, reference, bob)
    client.force_login(bob)
    assert reference.advocate.email not in client.get(url("detail", reference_id=reference.pk)).content.decode()

    client.force_login(carol)
    response = client.post(
        url("request_decide", usage_request_id=usage_request.pk), {"decision": "approve", "reason": "Go ahead."}
    )
    assert response.status_code == 302
    with tenant_context(org_a):
        usage_request.refresh_from_db()
        assert usage_request.status == UsageStatus.APPROVED
        assert usage_request.decision_reason == "Go ahead."
        assert UsageEvent.objects.filter(usage_request=usage_request, kind="approved").count() == 1

    client.force_login(bob)
    body = client.get(url("detail", reference_id=reference.pk)).content.decode()
    assert reference.advocate.email in body
    assert reference.advocate.name in body
    # The history shows the approved use.
    assert "Use approved" in body


def test_it_shows_contacts_only_to_the_salesperson_whose_request_was_approved(client, bob, carol, reference, org_a):
    from tests.factories.tenancy import MembershipFactory, UserFactory

    erin = MembershipFactory(organization=org_a, user=UserFactory(username="erin"), role=Role.SALES).user
    approve(org_a, ask(org_a, reference, bob), carol)
    client.force_login(erin)
    assert reference.advocate.email not in client.get(url("detail", reference_id=reference.pk)).content.decode()


def test_it_needs_a_reason_to_decline(client, bob, carol, reference, org_a):
    usage_request = ask(org_a, reference, bob)
    client.force_login(carol)
    response = client.post(url("request_decide", usage_request_id=usage_request.pk), {"decision": "decline"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Say why the request is declined" in body
    assert f'aria-describedby="reason-{usage_request.pk}-error"' in body
    with tenant_context(org_a):
        assert UsageRequest.objects.get(pk=usage_request.pk).status == UsageStatus.PENDING

    client.post(
        url("request_decide", usage_request_id=usage_request.pk), {"decision": "decline", "reason": "Customer busy."}
    )
    with tenant_context(org_a):
        assert UsageRequest.objects.get(pk=usage_request.pk).status == UsageStatus.DECLINED
    client.force_login(bob)
    body = client.get(url("my_requests")).content.decode()
    assert "Declined" in body
    assert "Customer busy." in body


def test_it_shows_an_approval_refused_by_fatigue_as_an_error(client, bob, carol, reference, org_a):
    first, second = ask(org_a, reference, bob), ask(org_a, reference, bob, opportunity_name="Second")
    approve(org_a, first, carol)
    client.force_login(carol)
    response = client.post(url("request_decide", usage_request_id=second.pk), {"decision": "approve"})
    assert response.status_code == 400
    assert "resting" in response.content.decode()
    assert "Advocate resting" in response.content.decode()


def test_it_says_so_when_the_request_is_no_longer_pending(client, bob, carol, reference, org_a):
    usage_request = approve(org_a, ask(org_a, reference, bob), carol)
    client.force_login(carol)
    response = client.post(
        url("request_decide", usage_request_id=usage_request.pk), {"decision": "approve"}, follow=True
    )
    assert "no longer pending" in response.content.decode()


# --- My requests: outcome and cancel -----------------------------------------------------------


def test_it_records_the_outcome_on_the_ledger(client, bob, carol, reference, org_a):
    usage_request = approve(org_a, ask(org_a, reference, bob), carol)
    client.force_login(bob)
    assert "Record the outcome" in client.get(url("my_requests")).content.decode()
    response = client.post(
        url("request_complete", usage_request_id=usage_request.pk), {"outcome": "won", "notes": "Signed."}
    )
    assert response.status_code == 302
    with tenant_context(org_a):
        usage_request.refresh_from_db()
        event = UsageEvent.objects.get(usage_request=usage_request, kind="completed")
    assert usage_request.status == UsageStatus.COMPLETED
    assert usage_request.outcome_notes == "Signed."
    assert event.outcome == "won"
    body = client.get(url("my_requests")).content.decode()
    assert "Outcome: Won" in body


def test_it_refuses_a_bad_outcome(client, bob, carol, reference, org_a):
    usage_request = approve(org_a, ask(org_a, reference, bob), carol)
    client.force_login(bob)
    response = client.post(
        url("request_complete", usage_request_id=usage_request.pk), {"outcome": "maybe"}, follow=True
    )
    assert "Choose won, lost or still open." in response.content.decode()
    with tenant_context(org_a):
        assert UsageRequest.objects.get(pk=usage_request.pk).status == UsageStatus.APPROVED


def test_it_cancels_only_ones_own_pending_request(client, bob, carol, reference, org_a):
    from tests.factories.tenancy import MembershipFactory, UserFactory

    usage_request = ask(org_a, reference, bob)
    erin = MembershipFactory(organization=org_a, user=UserFactory(username="erin"), role=Role.SALES).user
    client.force_login(erin)
    assert client.post(url("request_cancel", usage_request_id=usage_request.pk)).status_code == 404
    client.force_login(bob)
    assert client.post(url("request_cancel", usage_request_id=usage_request.pk)).status_code == 302
    with tenant_context(org_a):
        assert UsageRequest.objects.get(pk=usage_request.pk).status == UsageStatus.CANCELLED
    # Not twice, and not an approved one.
    response = client.post(url("request_cancel", usage_request_id=usage_request.pk), follow=True)
    assert "Only a pending request can be cancelled here." in response.content.decode()


# --- Notifications ---------------------------------------------------------------------------


def test_it_notifies_the_managers_and_then_the_salesperson(
    bob, carol, reference, org_a, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        usage_request = ask(org_a, reference, bob)
    assert len(callbacks) == 1
    with tenant_context(org_a):
        assert usage_request_notify(organization=org_a, usage_request_id=usage_request.pk, event="created") == "sent"
    assert mail.outbox[-1].to == [carol.email]
    assert url("queue") in mail.outbox[-1].body

    with django_capture_on_commit_callbacks() as callbacks:
        approve(org_a, usage_request, carol)
    assert len(callbacks) == 1
    with tenant_context(org_a):
        assert usage_request_notify(organization=org_a, usage_request_id=usage_request.pk, event="approved") == "sent"
        # Claimed once: a retried task sends nothing more.
        assert (
            usage_request_notify(organization=org_a, usage_request_id=usage_request.pk, event="approved") == "duplicate"
        )
    assert mail.outbox[-1].to == [bob.email]
    assert "approved" in mail.outbox[-1].subject.lower()
    assert url("my_requests") in mail.outbox[-1].body
    assert len(mail.outbox) == 2


# --- Ledger CSV ----------------------------------------------------------------------------------


def _rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_it_exports_the_usage_ledger_with_formulas_escaped(client, bob, carol, org_a):
    reference = ReferenceFactory(organization=org_a, title='=HYPERLINK("http://evil")')
    grant(reference, "call")
    usage_request = approve(org_a, ask(org_a, reference, bob, opportunity_name="+cmd|' /C calc'!A0"), carol)
    with tenant_context(org_a):
        services.usage_request_complete(
            organization=org_a, usage_request=usage_request, actor=bob, outcome="lost", notes=""
        )
    client.force_login(carol)
    response = client.get(url("usage_csv", reference_id=reference.pk))
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = _rows(response)
    assert rows[0][:4] == ["time", "event", "reference_id", "reference"]
    assert len(rows) == 3
    assert {row[1] for row in rows[1:]} == {"approved", "completed"}
    for row in rows[1:]:
        assert row[3] == '\'=HYPERLINK("http://evil")'
        assert row[7] == "'+cmd|' /C calc'!A0"
        assert row[6] == "bob"


def test_it_exports_every_reference_of_the_organization_only(client, bob, carol, alice, reference, org_a, org_b):
    approve(org_a, ask(org_a, reference, bob), carol)
    other = ReferenceFactory(organization=org_a, account=AccountFactory(organization=org_a))
    grant(other, "quote")
    approve(org_a, ask(org_a, other, bob, scope="quote"), carol)
    client.force_login(alice)
    rows = _rows(client.get(url("usage_csv")))
    assert len(rows) == 3
    assert {row[2] for row in rows[1:]} == {str(reference.pk), str(other.pk)}


def test_it_exports_a_retired_references_ledger(client, bob, carol, reference, org_a):
    approve(org_a, ask(org_a, reference, bob), carol)
    with tenant_context(org_a):
        services.reference_retire(organization=org_a, reference=reference, actor=carol)
    client.force_login(carol)
    assert len(_rows(client.get(url("usage_csv", reference_id=reference.pk)))) == 2


# --- Query counts ----------------------------------------------------------------------------------


def _queries(client, address: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(address).status_code == 200
    return len(queries)


def _pending(org, bob, count: int) -> None:
    for _ in range(count):
        reference = ReferenceFactory(organization=org)
        grant(reference, "call", "quote")
        ask(org, reference, bob)
        ask(org, reference, bob, scope="quote", needed_by=timezone.localdate())


def test_it_runs_a_constant_number_of_queries_on_the_queue(client, bob, carol, org_a):
    _pending(org_a, bob, 3)
    client.force_login(carol)
    _queries(client, url("queue"))
    small = _queries(client, url("queue"))
    _pending(org_a, bob, 12)
    large = _queries(client, url("queue"))
    assert small == large
    # Measured: session, user, membership, switcher, organization, count, page, usable scopes, settings, fatigue.
    assert large == QUEUE_QUERIES


def test_it_runs_a_constant_number_of_queries_on_my_requests(client, bob, carol, org_a):
    _pending(org_a, bob, 3)
    client.force_login(bob)
    _queries(client, url("my_requests"))
    small = _queries(client, url("my_requests"))
    _pending(org_a, bob, 12)
    with tenant_context(org_a):
        for usage_request in list(UsageRequest.objects.filter(scope="quote"))[:5]:
            services.usage_request_approve(organization=org_a, usage_request=usage_request, actor=carol)
    large = _queries(client, url("my_requests"))
    assert small == large
    assert large == MY_REQUESTS_QUERIES


QUEUE_QUERIES = 10
MY_REQUESTS_QUERIES = 7
