"""Demo data: each organization's privacy policy, two published versions and a draft; idempotent."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command
from django.utils import timezone

from privacy.models import PolicyStatus, PrivacyPolicy
from privacy.selectors import privacy_policy_current, privacy_policy_history
from refmgr.tenancy.context import cross_organization, tenant_context
from refmgr.tenancy.models import Organization


def test_it_seeds_two_published_versions_and_a_draft_per_organization(db):
    call_command("seed_demo", "--no-logins", stdout=StringIO())
    today = timezone.localdate()
    organizations = list(Organization.objects.all())
    assert len(organizations) == 3
    for organization in organizations:
        with tenant_context(organization):
            policies = list(PrivacyPolicy.objects.order_by("version"))
            assert [(p.version, p.status) for p in policies] == [
                (1, PolicyStatus.PUBLISHED),
                (2, PolicyStatus.PUBLISHED),
                (3, PolicyStatus.DRAFT),
            ]
            v1, v2, v3 = policies
            assert v1.effective_date < v2.effective_date <= today < v3.effective_date
            assert (today - v1.effective_date).days > 90  # some months ago
            assert v2.summary_of_changes
            assert v3.summary_of_changes
            assert privacy_policy_current(organization=organization) == v2
            assert list(privacy_policy_history(organization=organization)) == [v2, v1]
            for phrase in ("consent", "title", "email", "usage history", "Your rights", "privacy@"):
                assert phrase.lower() in v2.body.lower(), phrase
            assert organization.name in v2.body


def _count_everywhere() -> int:
    # Every organization's rows, on purpose (row-level security would show none outside one).
    with cross_organization("test: count demo rows across organizations"):
        return PrivacyPolicy.all_tenants.count()


def test_it_creates_nothing_the_second_time(db):
    call_command("seed_demo", "--no-logins", stdout=StringIO())
    before = _count_everywhere()
    out = StringIO()
    call_command("seed_demo", "--no-logins", stdout=out)
    assert _count_everywhere() == before == 9
    assert "privacy policy" not in out.getvalue()
