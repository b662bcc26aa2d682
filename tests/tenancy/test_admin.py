"""Django admin is tenant-aware: staff see their organization, superusers see all."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model

from refmgr.audit.models import AuditEvent
from refmgr.audit.services import record
from refmgr.tenancy.context import tenant_context

EVENTS = "/admin/audit/auditevent/"


@pytest.fixture
def events(org_a, org_b):
    with tenant_context(org_a):
        a = record(organization=org_a, actor=None, action="a.event", details={"note": "=HYPERLINK(1)"})
    with tenant_context(org_b):
        b = record(organization=org_b, actor=None, action="b.event")
    return a, b


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", "x")


def test_it_shows_an_org_admin_only_their_organization(client, alice, events):
    client.force_login(alice)
    body = client.get(EVENTS).content.decode()
    assert "a.event" in body
    assert "b.event" not in body


def test_it_answers_404_for_another_organizations_row(client, alice, events):
    client.force_login(alice)
    _, b = events
    response = client.get(f"{EVENTS}{b.pk}/change/")
    # Django admin redirects to the index with a "doesn't exist" message rather than a bare 404.
    assert response.status_code in (302, 404)
    if response.status_code == 302:
        assert response["Location"] == "/admin/"


def test_it_shows_a_superuser_every_organization(client, superuser, events):
    client.force_login(superuser)
    body = client.get(EVENTS).content.decode()
    assert "a.event" in body
    assert "b.event" in body


def test_it_keeps_people_without_an_admin_role_out(client, bob, events):
    client.force_login(bob)
    assert client.get(EVENTS).status_code == 302


def test_it_keeps_a_staff_flag_without_an_admin_membership_out(client, bob, events):
    bob.is_staff = True
    bob.save()
    client.force_login(bob)
    assert client.get(EVENTS).status_code == 302


def test_it_keeps_the_audit_log_read_only(client, alice, events):
    client.force_login(alice)
    a, _ = events
    assert client.get(f"{EVENTS}add/").status_code == 403
    assert client.post(f"{EVENTS}{a.pk}/change/", {"action": "forged"}).status_code == 403
    assert client.post(f"{EVENTS}{a.pk}/delete/", {"post": "yes"}).status_code == 403
    with tenant_context(a.organization):
        assert AuditEvent.objects.get(pk=a.pk).action == "a.event"


def test_it_filters_the_audit_log_by_action(client, alice, org_a, events):
    with tenant_context(org_a):
        record(organization=org_a, actor=alice, action="other.event")
    client.force_login(alice)
    response = client.get(EVENTS, {"action": "other.event"})
    assert [e.action for e in response.context["cl"].result_list] == ["other.event"]


def test_it_exports_the_audit_log_as_csv_with_formulas_defused(client, alice, org_a, events):
    with tenant_context(org_a):
        formula = record(organization=org_a, actor=None, action="=SUM(A1:A9)")
    client.force_login(alice)
    a, b = events
    response = client.post(EVENTS, {"action": "export_csv", "_selected_action": [a.pk, formula.pk, b.pk]})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["created_at", "actor_label", "action"]
    assert sorted(row[2] for row in rows[1:]) == ["'=SUM(A1:A9)", "a.event"]  # b's row is not A's to export
    assert '{"note": "=HYPERLINK(1)"}' in {row[6] for row in rows[1:]}


def test_it_stamps_the_working_organization_on_rows_created_in_admin_and_audits_them(client, alice, org_a):
    from references.models import Account

    client.force_login(alice)
    response = client.post(
        "/admin/references/account/add/", {"name": "Admin-made Ltd", "industry": "Retail", "region": "EMEA"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    with tenant_context(org_a):
        account = Account.objects.get(name="Admin-made Ltd")
        event = AuditEvent.objects.get(action="admin.created")
    assert account.organization_id == org_a.pk
    assert (event.object_id, event.actor) == (str(account.pk), alice)


def test_it_keeps_memberships_invitations_and_tokens_to_their_pages(client, alice, bob_membership):
    # Their services keep the rules (one admin at least, revoked tokens stay revoked) and the audit trail.
    client.force_login(alice)
    assert client.get("/admin/tenancy/membership/add/").status_code == 403
    response = client.post(
        f"/admin/tenancy/membership/{bob_membership.pk}/change/", {"role": "admin", "is_active": "on"}
    )
    assert response.status_code == 403
    with tenant_context(bob_membership.organization):
        bob_membership.refresh_from_db()
    assert bob_membership.role == "sales"


def test_it_registers_the_tenancy_models_on_the_admin_site(client, alice):
    client.force_login(alice)
    body = client.get("/admin/").content.decode()
    for path in ("/admin/tenancy/membership/", "/admin/tenancy/invitation/", "/admin/audit/auditevent/"):
        assert path in body


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "  =1+1", "\t=1"])
def test_it_defuses_every_formula_start(cell):
    from refmgr.tenancy.admin import csv_safe

    assert csv_safe(cell).startswith("'")
