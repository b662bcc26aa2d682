"""Organization pages: who may open what, the landing logic, the audit log and the error pages."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from refmgr.audit.services import record
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Membership, Role
from tests.factories.tenancy import MembershipFactory, UserFactory

# Page name -> the roles that may open it.
PAGES = {
    "dashboard": set(Role.values),
    "members": {Role.ADMIN},
    "api_tokens": set(Role.values),
    "audit_log": {Role.ADMIN, Role.COMPLIANCE},
    "audit_export": {Role.ADMIN, Role.COMPLIANCE},
}
CAST = {"alice": Role.ADMIN, "bob": Role.SALES, "carol": Role.REFERENCE_MANAGER, "dave": Role.COMPLIANCE}


def url(name: str, slug: str = "acme", **kwargs: object) -> str:
    return reverse(f"tenancy:{name}", kwargs={"organization_slug": slug, **kwargs})


@pytest.mark.parametrize("page", sorted(PAGES))
@pytest.mark.parametrize("who", sorted(CAST))
def test_it_opens_pages_only_for_allowed_roles(client, request, page, who):
    user = request.getfixturevalue(who)
    client.force_login(user)
    response = client.get(url(page))
    expected = 200 if CAST[who] in PAGES[page] else 403
    assert response.status_code == expected


@pytest.mark.parametrize("page", sorted(PAGES))
def test_it_hides_other_tenants_pages(client, alice, mallory, page):
    client.force_login(mallory)
    response = client.get(url(page))
    assert response.status_code == 404
    # The 404 page must not even confirm the organization exists.
    assert b"Acme Analytics" not in response.content


@pytest.mark.parametrize("page", sorted(PAGES))
def test_it_answers_404_for_an_unknown_organization(client, alice, page):
    client.force_login(alice)
    assert client.get(url(page, slug="no-such-org")).status_code == 404


def test_it_answers_404_to_a_deactivated_member(client, bob, org_a):
    with tenant_context(org_a):
        Membership.objects.filter(user=bob).update(is_active=False)
    client.force_login(bob)
    assert client.get(url("dashboard")).status_code == 404


def test_it_answers_404_for_an_inactive_organization(client, alice, org_a):
    org_a.is_active = False
    org_a.save()
    client.force_login(alice)
    assert client.get(url("dashboard")).status_code == 404


@pytest.mark.parametrize("page", sorted(PAGES))
def test_it_sends_anonymous_visitors_to_sign_in(client, org_a, page):
    response = client.get(url(page))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=/o/acme/")


def test_it_shows_a_role_aware_dashboard(client, alice, bob):
    client.force_login(alice)
    body = client.get(url("dashboard")).content.decode()
    assert "Acme Analytics" in body
    assert "Organization admin" in body
    assert url("members") in body
    assert url("audit_log") in body
    assert reverse("admin:index") in body

    client.force_login(bob)
    body = client.get(url("dashboard")).content.decode()
    assert "Salesperson" in body
    assert url("members") not in body
    assert url("audit_log") not in body
    assert reverse("admin:index") not in body
    assert url("api_tokens") in body


def test_it_offers_to_invite_the_team_when_the_admin_is_alone(client, alice):
    client.force_login(alice)
    assert "Invite your team" in client.get(url("dashboard")).content.decode()


def test_it_shows_recent_activity_to_compliance(client, dave, org_a):
    with tenant_context(org_a):
        record(organization=org_a, actor=dave, action="reference.cleared", details={"reason": "ok"})
    client.force_login(dave)
    body = client.get(url("dashboard")).content.decode()
    assert "reference.cleared" in body


def test_it_renders_no_inline_script_or_style(client, alice):
    # The Content-Security-Policy allows neither, so one would silently break the page.
    client.force_login(alice)
    for page in ("dashboard", "members", "api_tokens", "audit_log"):
        body = client.get(url(page)).content.decode()
        assert "style=" not in body
        assert "<style" not in body
        for tag in re.findall(r"<script[^>]*>", body):
            assert "src=" in tag, tag


# --- Landing and the organization chooser ------------------------------------------------


def test_it_sends_anonymous_home_visitors_to_sign_in(client, db):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")


def test_it_lands_a_single_organization_user_on_its_dashboard(client, bob):
    client.force_login(bob)
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"] == url("dashboard")


def test_it_offers_a_chooser_to_users_of_several_organizations(client, alice, org_b):
    MembershipFactory(organization=org_b, user=alice, role=Role.SALES)
    client.force_login(alice)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    body = response.content.decode()
    assert url("dashboard") in body
    assert url("dashboard", slug="borealis") in body


def test_it_returns_to_the_last_organization_used(client, alice, org_b):
    MembershipFactory(organization=org_b, user=alice, role=Role.SALES)
    client.force_login(alice)
    client.get(url("dashboard", slug="borealis"))
    response = client.get(reverse("home"))
    assert response["Location"] == url("dashboard", slug="borealis")


def test_it_lists_every_organization_in_the_switcher(client, alice, org_b):
    MembershipFactory(organization=org_b, user=alice, role=Role.SALES)
    client.force_login(alice)
    body = client.get(url("dashboard")).content.decode()
    assert "Borealis Robotics" in body
    assert 'href="/o/borealis/"' in body


def test_it_tells_users_without_an_organization_what_to_do(client, db):
    client.force_login(UserFactory(username="newcomer"))
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert "a member of any organization" in response.content.decode()


# --- Audit log ---------------------------------------------------------------------------------


def _events(organization, actor, count: int, action: str = "thing.done") -> None:
    with tenant_context(organization):
        for i in range(count):
            record(organization=organization, actor=actor, action=action, details={"n": i})


def test_it_lists_only_this_organizations_events(client, alice, mallory, org_a, org_b):
    _events(org_a, alice, 2, action="acme.only")
    _events(org_b, mallory, 2, action="borealis.only")
    client.force_login(alice)
    body = client.get(url("audit_log")).content.decode()
    assert "acme.only" in body
    assert "borealis.only" not in body


def test_it_filters_the_audit_log(client, alice, bob, org_a):
    _events(org_a, alice, 2, action="member.poked")
    _events(org_a, bob, 1, action="deal.closed")
    client.force_login(alice)
    page = client.get(url("audit_log"), {"action": "deal.closed"}).context["page"]
    assert [e.action for e in page.object_list] == ["deal.closed"]
    page = client.get(url("audit_log"), {"actor": "ALICE"}).context["page"]
    assert {e.actor_label for e in page.object_list} == {"alice"}
    today = timezone.localdate()
    page = client.get(url("audit_log"), {"date_from": today + timedelta(days=1)}).context["page"]
    assert list(page.object_list) == []
    page = client.get(url("audit_log"), {"date_from": today, "date_to": today}).context["page"]
    assert page.paginator.count == 3


def test_it_reports_a_bad_date_and_keeps_the_other_filters(client, alice, bob, org_a):
    _events(org_a, bob, 1, action="deal.closed")
    _events(org_a, alice, 1, action="member.poked")
    client.force_login(alice)
    response = client.get(url("audit_log"), {"date_from": "not-a-date", "action": "deal.closed"})
    assert response.status_code == 200
    assert response.context["form"].errors["date_from"]
    assert [e.action for e in response.context["page"].object_list] == ["deal.closed"]


def test_it_paginates_the_audit_log_by_fifty(client, alice, org_a):
    _events(org_a, alice, 60)
    client.force_login(alice)
    first = client.get(url("audit_log")).context["page"]
    assert len(first.object_list) == 50
    second = client.get(url("audit_log"), {"page": 2}).context["page"]
    assert len(second.object_list) == 60 - 50
    assert client.get(url("audit_log"), {"page": "999"}).status_code == 200


def test_it_reads_the_audit_log_in_a_constant_number_of_queries(client, alice, org_a, org_b):
    client.force_login(alice)
    _events(org_a, alice, 5)
    client.get(url("audit_log"))  # warm the session and content types
    with CaptureQueriesContext(connection) as few:
        assert client.get(url("audit_log")).status_code == 200
    _events(org_a, alice, 55, action="other.action")
    with CaptureQueriesContext(connection) as many:
        assert client.get(url("audit_log")).status_code == 200
    assert len(many) == len(few)
    assert len(few) <= 12


def test_it_exports_the_filtered_audit_log_as_safe_csv(client, alice, bob, org_a):
    with tenant_context(org_a):
        record(organization=org_a, actor=alice, action="note.added", details={"text": "=HYPERLINK(1)"})
    _events(org_a, bob, 2, action="deal.closed")
    client.force_login(alice)
    response = client.get(url("audit_export"), {"action": "note.added"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["time", "actor", "action", "object_type", "object_id", "object", "details"]
    assert len(rows) == 2
    assert rows[1][2] == "note.added"


def test_it_neutralises_formulas_in_the_csv(client, alice, org_a):
    with tenant_context(org_a):
        record(organization=org_a, actor=alice, action="=cmd|' /C calc'!A0")
        record(organization=org_a, actor=alice, action="@SUM(1)")
    client.force_login(alice)
    rows = list(csv.reader(io.StringIO(client.get(url("audit_export")).content.decode())))
    actions = {row[2] for row in rows[1:]}
    assert actions == {"'=cmd|' /C calc'!A0", "'@SUM(1)"}


def test_it_exports_in_a_constant_number_of_queries(client, alice, org_a):
    client.force_login(alice)
    _events(org_a, alice, 5)
    client.get(url("audit_export"))
    with CaptureQueriesContext(connection) as few:
        client.get(url("audit_export"))
    _events(org_a, alice, 55)
    with CaptureQueriesContext(connection) as many:
        client.get(url("audit_export"))
    assert len(many) == len(few)


# --- Error pages ---------------------------------------------------------------------------


def test_it_renders_the_500_page_without_a_request(rf):
    from refmgr.tenancy.views import server_error

    response = server_error(rf.get("/"))
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


def test_it_renders_a_friendly_404_page(client, alice):
    client.force_login(alice)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert "find that page" in response.content.decode()


def test_it_renders_a_friendly_403_page(client, bob):
    client.force_login(bob)
    response = client.get(url("members"))
    assert response.status_code == 403
    assert "Salesperson" in response.content.decode()


def test_it_serves_the_stylesheet_and_script(client, db):
    from django.contrib.staticfiles import finders

    assert finders.find("css/refmgr.css")
    assert finders.find("js/refmgr.js")
    assert finders.find("django_htmx/htmx-2.min.js")


def test_it_offers_sign_out_as_a_post_form(client, bob):
    client.force_login(bob)
    body = client.get(url("dashboard")).content.decode()
    assert re.search(r'<form method="post" action="/accounts/logout/"', body)


def test_it_shows_the_page_for_a_second_organization_with_its_own_role(client, alice, org_b):
    MembershipFactory(organization=org_b, user=alice, role=Role.SALES)
    client.force_login(alice)
    assert client.get(url("members", slug="borealis")).status_code == 403
    assert client.get(url("members")).status_code == 200
