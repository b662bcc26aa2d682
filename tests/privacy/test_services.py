"""Privacy policy services: numbering, drafts, publishing, and published versions that never change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from privacy import services
from privacy.models import PolicyStatus, PrivacyPolicy
from refmgr.audit.models import AuditEvent
from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.context import OrganizationNotSet, tenant_context
from tests.privacy.conftest import days, make_policy


def draft(organization, actor=None, **overrides):
    fields = {
        "title": "Privacy policy",
        "body": "We keep your name.",
        "summary_of_changes": "",
        "effective_date": timezone.localdate(),
        **overrides,
    }
    return services.privacy_policy_draft_create(organization=organization, actor=actor, **fields)


def test_it_numbers_versions_one_above_the_highest_in_each_organization(org_a, org_b, alice, mallory):
    with tenant_context(org_a):
        assert [draft(org_a, alice).version for _ in range(3)] == [1, 2, 3]
    with tenant_context(org_b):
        assert draft(org_b, mallory).version == 1


def test_it_reuses_no_number_while_a_higher_version_exists(in_org_a, alice):
    first, second = draft(in_org_a, alice), draft(in_org_a, alice)
    services.privacy_policy_draft_delete(organization=in_org_a, policy=first, actor=alice)
    assert draft(in_org_a, alice).version == second.version + 1


def test_it_creates_a_draft_with_its_author_and_an_audit_event(in_org_a, alice):
    policy = draft(in_org_a, alice, body="Line one\r\nLine two\r\n\r\nNext paragraph  ")
    assert policy.status == PolicyStatus.DRAFT
    assert policy.created_by == alice
    assert policy.published_at is None
    assert policy.body == "Line one\nLine two\n\nNext paragraph"
    event = AuditEvent.objects.get(action="privacy_policy.draft_created")
    assert event.object_id == str(policy.pk)
    assert event.details["version"] == 1


@pytest.mark.parametrize(("field", "value"), [("title", "  "), ("body", "")])
def test_it_refuses_a_draft_without_a_title_or_text(in_org_a, alice, field, value):
    with pytest.raises(ApplicationError) as error:
        draft(in_org_a, alice, **{field: value})
    assert error.value.field == field
    assert not PrivacyPolicy.objects.exists()


def test_it_checks_the_organization_against_the_context(org_a, org_b, alice):
    with pytest.raises(OrganizationNotSet):
        draft(org_a, alice)
    with tenant_context(org_b), pytest.raises(ValueError, match="does not match"):
        draft(org_a, alice)


def test_it_updates_only_the_fields_given_and_records_them(in_org_a, alice):
    policy = draft(in_org_a, alice)
    updated = services.privacy_policy_draft_update(
        organization=in_org_a, policy=policy, actor=alice, title="New title", effective_date=days(5)
    )
    assert (updated.title, updated.body, updated.effective_date) == ("New title", "We keep your name.", days(5))
    event = AuditEvent.objects.get(action="privacy_policy.draft_updated")
    assert event.details["fields"] == ["title", "effective_date"]


def test_it_records_nothing_when_nothing_changed(in_org_a, alice):
    policy = draft(in_org_a, alice)
    services.privacy_policy_draft_update(organization=in_org_a, policy=policy, actor=alice, title="Privacy policy")
    assert not AuditEvent.objects.filter(action="privacy_policy.draft_updated").exists()


def test_it_publishes_a_draft(in_org_a, alice):
    policy = draft(in_org_a, alice, effective_date=days(7))
    published = services.privacy_policy_publish(organization=in_org_a, policy=policy, actor=alice)
    assert published.status == PolicyStatus.PUBLISHED
    assert published.published_by == alice
    assert published.published_at is not None
    assert AuditEvent.objects.filter(action="privacy_policy.published", object_id=str(policy.pk)).exists()


def test_it_refuses_an_effective_date_in_the_past(in_org_a, alice):
    policy = draft(in_org_a, alice, effective_date=days(-1))
    with pytest.raises(ApplicationError) as error:
        services.privacy_policy_publish(organization=in_org_a, policy=policy, actor=alice)
    assert error.value.field == "effective_date"
    policy.refresh_from_db()
    assert policy.status == PolicyStatus.DRAFT


def test_it_refuses_a_version_taking_effect_before_a_published_one(org_a, alice):
    make_policy(org_a, effective=days(30))
    with tenant_context(org_a):
        policy = draft(org_a, alice, effective_date=days(10), summary_of_changes="Shorter retention.")
        with pytest.raises(ApplicationError, match="cannot take effect before") as error:
            services.privacy_policy_publish(organization=org_a, policy=policy, actor=alice)
    assert error.value.field == "effective_date"


def test_it_asks_for_a_summary_of_changes_after_the_first_version(org_a, alice):
    make_policy(org_a, effective=days(-30))
    with tenant_context(org_a):
        policy = draft(org_a, alice)
        with pytest.raises(ApplicationError) as error:
            services.privacy_policy_publish(organization=org_a, policy=policy, actor=alice)
        assert error.value.field == "summary_of_changes"
        services.privacy_policy_draft_update(
            organization=org_a, policy=policy, actor=alice, summary_of_changes="Retention is shorter."
        )
        assert services.privacy_policy_publish(organization=org_a, policy=policy, actor=alice).is_published


def test_it_publishes_as_of_a_given_moment(in_org_a, alice):
    # The demo data publishes as if months ago; the effective date is judged against that day.
    then = timezone.now() - timedelta(days=90)
    policy = draft(in_org_a, alice, effective_date=timezone.localdate(then))
    published = services.privacy_policy_publish(organization=in_org_a, policy=policy, actor=alice, now=then)
    assert published.published_at == then


WRITES = {
    "update": lambda org, policy, actor: services.privacy_policy_draft_update(
        organization=org, policy=policy, actor=actor, title="Sneaky"
    ),
    "publish": lambda org, policy, actor: services.privacy_policy_publish(organization=org, policy=policy, actor=actor),
    "delete": lambda org, policy, actor: services.privacy_policy_draft_delete(
        organization=org, policy=policy, actor=actor
    ),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_it_never_changes_a_published_version_through_the_services(org_a, alice, write):
    policy = make_policy(org_a)
    with tenant_context(org_a):
        with pytest.raises(ApplicationError, match="published"):
            WRITES[write](org_a, policy, alice)
        stored = PrivacyPolicy.objects.get(pk=policy.pk)
    assert (stored.title, stored.status, stored.published_at) == (policy.title, "published", policy.published_at)


def test_it_refuses_a_stale_copy_of_a_version_published_since(org_a, alice):
    # The service reloads the row under a lock, so an old in-memory "draft" cannot slip through.
    with tenant_context(org_a):
        policy = draft(org_a, alice)
        stale = PrivacyPolicy.objects.get(pk=policy.pk)
        services.privacy_policy_publish(organization=org_a, policy=policy, actor=alice)
        with pytest.raises(ApplicationError):
            services.privacy_policy_draft_update(organization=org_a, policy=stale, actor=alice, title="Late edit")


def test_it_deletes_a_draft_and_records_it(in_org_a, alice):
    policy = draft(in_org_a, alice)
    services.privacy_policy_draft_delete(organization=in_org_a, policy=policy, actor=alice)
    assert not PrivacyPolicy.objects.exists()
    event = AuditEvent.objects.get(action="privacy_policy.draft_deleted")
    assert event.object_id == str(policy.pk)


# --- The database keeps published versions as they are (PostgreSQL) ------------------------------


def raw(sql: str, params: tuple = ()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE privacy_privacypolicy SET body = 'rewritten' WHERE id = %s",
        "UPDATE privacy_privacypolicy SET status = 'draft', published_at = NULL WHERE id = %s",
        "DELETE FROM privacy_privacypolicy WHERE id = %s",
    ],
)
def test_it_rejects_raw_sql_changing_a_published_version(org_a, sql):
    policy = make_policy(org_a)
    with tenant_context(org_a):
        with pytest.raises(DatabaseError, match="published and never changes"), transaction.atomic():
            raw(sql, (policy.pk,))
        assert PrivacyPolicy.objects.get(pk=policy.pk).body == policy.body


@pytest.mark.postgres
def test_it_lets_raw_sql_edit_and_delete_a_draft(org_a):
    policy = make_policy(org_a, publish=False)
    with tenant_context(org_a):
        assert raw("UPDATE privacy_privacypolicy SET body = 'edited' WHERE id = %s", (policy.pk,)) == 1
        assert raw("DELETE FROM privacy_privacypolicy WHERE id = %s", (policy.pk,)) == 1


@pytest.mark.postgres
def test_it_does_not_let_the_application_truncate_the_policies(org_a):
    make_policy(org_a)
    with tenant_context(org_a), pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
        raw("TRUNCATE privacy_privacypolicy")


@pytest.mark.postgres
def test_it_hides_other_tenants_policies_from_raw_sql(org_a, org_b):
    make_policy(org_a)
    make_policy(org_b)
    with tenant_context(org_b), connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT organization_id FROM privacy_privacypolicy")
        assert cursor.fetchall() == [(org_b.pk,)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM privacy_privacypolicy")
        assert cursor.fetchall() == [(0,)]
