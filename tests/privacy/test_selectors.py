"""Privacy policy selectors: which version is in force on a day, the history, the admins' list."""

from __future__ import annotations

from datetime import timedelta

import pytest

from privacy import selectors
from refmgr.tenancy.context import tenant_context
from tests.privacy.conftest import days, make_policy


def test_it_has_no_current_version_before_one_is_published(org_a):
    make_policy(org_a, publish=False)
    with tenant_context(org_a):
        assert selectors.privacy_policy_current(organization=org_a) is None
        assert list(selectors.privacy_policy_history(organization=org_a)) == []


def test_it_picks_the_latest_effective_version_on_or_before_the_day(org_a):
    v1 = make_policy(org_a, effective=days(-100))
    v2 = make_policy(org_a, effective=days(-10))
    make_policy(org_a, publish=False, effective=days(-5))  # a draft never counts
    with tenant_context(org_a):
        assert selectors.privacy_policy_current(organization=org_a) == v2
        assert selectors.privacy_policy_current(organization=org_a, today=days(-10)) == v2
        assert selectors.privacy_policy_current(organization=org_a, today=days(-11)) == v1
        assert selectors.privacy_policy_current(organization=org_a, today=days(-101)) is None


def test_it_keeps_the_earlier_version_until_a_future_one_takes_effect(org_a):
    v1 = make_policy(org_a, effective=days(-30))
    v2 = make_policy(org_a, effective=days(14))
    with tenant_context(org_a):
        assert selectors.privacy_policy_current(organization=org_a) == v1
        assert selectors.privacy_policy_current(organization=org_a, today=days(13)) == v1
        assert selectors.privacy_policy_current(organization=org_a, today=days(14)) == v2
        # Published versions are public, the upcoming one included.
        assert list(selectors.privacy_policy_history(organization=org_a)) == [v2, v1]


def test_it_prefers_the_highest_version_on_the_same_effective_date(org_a):
    make_policy(org_a)
    v2 = make_policy(org_a)
    with tenant_context(org_a):
        assert selectors.privacy_policy_current(organization=org_a) == v2


def test_it_lists_every_version_for_admins_and_only_published_ones_by_number(org_a):
    v1 = make_policy(org_a, effective=days(-3))
    v2 = make_policy(org_a, publish=False)
    with tenant_context(org_a):
        assert list(selectors.privacy_policy_list(organization=org_a)) == [v2, v1]
        assert selectors.privacy_policy_published_get(organization=org_a, version=1) == v1
        assert selectors.privacy_policy_published_get(organization=org_a, version=2) is None
        assert selectors.privacy_policy_get(organization=org_a, version=2) == v2


def test_it_hides_other_tenants_policies(org_a, org_b):
    make_policy(org_a, effective=days(-3))
    theirs = make_policy(org_b, effective=days(-3))
    with tenant_context(org_b):
        assert selectors.privacy_policy_current(organization=org_b) == theirs
        assert list(selectors.privacy_policy_list(organization=org_b)) == [theirs]
        assert selectors.privacy_policy_published_get(organization=org_b, version=1) == theirs


def test_it_refuses_to_read_another_organization_than_the_context(org_a, org_b):
    with tenant_context(org_b), pytest.raises(ValueError, match="does not match"):
        selectors.privacy_policy_current(organization=org_a)


def test_it_answers_the_current_version_in_one_query(org_a, django_assert_num_queries):
    for offset in (-50, -40, -30):
        make_policy(org_a, effective=days(offset))
    with tenant_context(org_a), django_assert_num_queries(1):
        current = selectors.privacy_policy_current(organization=org_a, today=days(0) - timedelta(days=35))
    assert current.version == 2
