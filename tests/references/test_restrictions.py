"""Restricted references: django-guardian object permissions layered on organization scoping."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from references.models import Reference, ReferenceGroupObjectPermission, ReferenceUserObjectPermission
from references.restrictions import reference_visible, restriction_filter
from references.services import reference_restrict, reference_unrestrict
from refmgr.audit.models import AuditEvent
from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.context import tenant_context
from tests.factories.references import ReferenceFactory
from tests.factories.tenancy import MembershipFactory, UserFactory


@pytest.fixture
def erin(org_a):
    """A second salesperson in A, on the strategic account's team."""
    return MembershipFactory(organization=org_a, user=UserFactory(username="erin"), role="sales").user


@pytest.fixture
def team(erin):
    group = Group.objects.create(name="Strategic: Globex")
    erin.groups.add(group)
    return group


def visible_ids(organization, user):
    with tenant_context(organization):
        return set(Reference.objects.filter(restriction_filter(user=user)).values_list("pk", flat=True))


def test_it_shows_unrestricted_references_to_everyone(org_a, bob):
    reference = ReferenceFactory(organization=org_a)
    assert reference.pk in visible_ids(org_a, bob)


def test_it_limits_a_restricted_reference_to_named_users(org_a, alice, bob, erin):
    reference = ReferenceFactory(organization=org_a)
    with tenant_context(org_a):
        reference_restrict(organization=org_a, reference=reference, users=[erin], groups=[], actor=alice)
        reference.refresh_from_db()
        assert reference.restricted
        assert reference_visible(reference, erin)
        assert not reference_visible(reference, bob)
    assert reference.pk in visible_ids(org_a, erin)
    assert reference.pk not in visible_ids(org_a, bob)


def test_it_lets_group_members_see_a_reference_restricted_to_their_group(org_a, alice, bob, erin, team):
    reference = ReferenceFactory(organization=org_a)
    with tenant_context(org_a):
        reference = reference_restrict(organization=org_a, reference=reference, users=[], groups=[team], actor=alice)
        assert reference_visible(reference, erin)
        assert not reference_visible(reference, bob)
    assert reference.pk in visible_ids(org_a, erin)
    assert reference.pk not in visible_ids(org_a, bob)


@pytest.mark.parametrize("who", ["alice", "carol"])
def test_it_always_shows_restricted_references_to_managers(request, org_a, alice, erin, who):
    user = request.getfixturevalue(who)
    reference = ReferenceFactory(organization=org_a)
    with tenant_context(org_a):
        reference = reference_restrict(organization=org_a, reference=reference, users=[erin], groups=[], actor=alice)
        assert reference_visible(reference, user)
    assert reference.pk in visible_ids(org_a, user)


def test_it_hides_restricted_references_from_compliance_unless_named(org_a, alice, dave, erin):
    reference = ReferenceFactory(organization=org_a)
    with tenant_context(org_a):
        reference_restrict(organization=org_a, reference=reference, users=[erin], groups=[], actor=alice)
    assert reference.pk not in visible_ids(org_a, dave)


def test_it_replaces_the_list_and_lifts_the_restriction(org_a, alice, bob, erin):
    reference = ReferenceFactory(organization=org_a)
    with tenant_context(org_a):
        reference_restrict(organization=org_a, reference=reference, users=[erin], groups=[], actor=alice)
        reference_restrict(organization=org_a, reference=reference, users=[bob], groups=[], actor=alice)
        assert list(ReferenceUserObjectPermission.objects.values_list("user__username", flat=True)) == ["bob"]
        reference_unrestrict(organization=org_a, reference=reference, actor=alice)
        assert not ReferenceUserObjectPermission.objects.exists()
        actions = list(AuditEvent.objects.filter(action__startswith="reference.").values_list("action", flat=True))
    assert {"reference.restricted", "reference.unrestricted"} <= set(actions)
    assert reference.pk in visible_ids(org_a, erin)


def test_it_refuses_to_name_people_of_another_organization(org_a, alice, mallory):
    reference = ReferenceFactory(organization=org_a)
    with tenant_context(org_a), pytest.raises(ApplicationError) as error:
        reference_restrict(organization=org_a, reference=reference, users=[mallory], groups=[], actor=alice)
    assert error.value.field == "users"


def test_it_refuses_a_group_without_members_here(org_a, alice, mallory):
    outsiders = Group.objects.create(name="Borealis sales")
    mallory.groups.add(outsiders)
    reference = ReferenceFactory(organization=org_a)
    with tenant_context(org_a), pytest.raises(ApplicationError) as error:
        reference_restrict(organization=org_a, reference=reference, users=[], groups=[outsiders], actor=alice)
    assert error.value.field == "groups"


def test_it_keeps_permission_rows_in_their_organization(org_a, org_b, alice, erin, mallory):
    a_ref = ReferenceFactory(organization=org_a)
    b_ref = ReferenceFactory(organization=org_b)
    with tenant_context(org_a):
        reference_restrict(organization=org_a, reference=a_ref, users=[erin], groups=[], actor=alice)
    with tenant_context(org_b):
        reference_restrict(organization=org_b, reference=b_ref, users=[mallory], groups=[], actor=mallory)
        assert list(ReferenceUserObjectPermission.objects.values_list("content_object", flat=True)) == [b_ref.pk]
    with tenant_context(org_a):
        row = ReferenceUserObjectPermission.objects.get()
    assert (row.organization_id, row.content_object_id) == (org_a.pk, a_ref.pk)


@pytest.mark.postgres
def test_it_shows_a_raw_select_only_the_current_organizations_permission_rows(org_a, org_b, alice, erin, mallory):
    a_ref = ReferenceFactory(organization=org_a)
    b_ref = ReferenceFactory(organization=org_b)
    group = Group.objects.create(name="Globex team")
    erin.groups.add(group)
    with tenant_context(org_a):
        reference_restrict(organization=org_a, reference=a_ref, users=[erin], groups=[group], actor=alice)
    with tenant_context(org_b):
        reference_restrict(organization=org_b, reference=b_ref, users=[mallory], groups=[], actor=mallory)
    with tenant_context(org_a), connection.cursor() as cursor:
        cursor.execute("SELECT organization_id FROM references_referenceuserobjectpermission")
        user_rows = cursor.fetchall()
        cursor.execute("SELECT organization_id FROM references_referencegroupobjectpermission")
        group_rows = cursor.fetchall()
    assert user_rows == [(org_a.pk,)]
    assert group_rows == [(org_a.pk,)]


def test_it_finds_the_direct_permission_models_through_guardian(org_a):
    from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

    assert get_user_obj_perms_model(Reference) is ReferenceUserObjectPermission
    assert get_group_obj_perms_model(Reference) is ReferenceGroupObjectPermission


def test_it_lets_a_manager_restrict_on_the_access_page(client, org_a, carol, bob, erin):
    reference = ReferenceFactory(organization=org_a)
    client.force_login(carol)
    url = f"/o/{org_a.slug}/references/manage/{reference.pk}/access/"
    assert client.get(url).status_code == 200
    response = client.post(url, {"action": "restrict", "users": [erin.pk]})
    assert response.status_code == 302
    assert reference.pk in visible_ids(org_a, erin)
    assert reference.pk not in visible_ids(org_a, bob)
    client.post(url, {"action": "unrestrict"})
    assert reference.pk in visible_ids(org_a, bob)


def test_it_keeps_salespeople_off_the_access_page(client, org_a, bob):
    reference = ReferenceFactory(organization=org_a)
    client.force_login(bob)
    assert client.get(f"/o/{org_a.slug}/references/manage/{reference.pk}/access/").status_code == 403


def test_it_hides_other_tenants_references_on_the_access_page(client, org_a, org_b, carol):
    b_ref = ReferenceFactory(organization=org_b)
    client.force_login(carol)
    assert client.get(f"/o/{org_a.slug}/references/manage/{b_ref.pk}/access/").status_code == 404
