"""The nightly review-flag sweep costs the same number of statements whatever it reads.

The sweep (``references.review_sweeps``) runs over every organization at once; an N+1 (a statement
per organization, per incentive, per row) or a batching loop would make the sweep over a thousand
organizations and a million references grow with them (issue 6's sweep benchmark,
``bench/sweeps.py``). These tests fail when that happens, on SQLite and on PostgreSQL: the same
count with 1 and with 3 organizations given work, and with 5 and with 50 rows each.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from references.models import Incentive, Reference, ReferenceHold, ReviewFlag, ReviewScan
from references.review_sweeps import review_flags_sweep_all
from refmgr.tenancy.context import cross_organization, tenant_context
from refmgr.tenancy.models import Organization
from tests.factories.references import AccountFactory, IncentiveFactory, ReferenceFactory
from tests.factories.tenancy import OrganizationFactory

pytestmark = pytest.mark.django_db


def incentive_for(organization: Organization, count: int) -> None:
    """One account-wide incentive given today to an account with ``count`` references: ``count`` flags due."""
    with tenant_context(organization):
        account = AccountFactory(organization=organization)
        for _ in range(count):
            ReferenceFactory(organization=organization, account=account)
        IncentiveFactory(organization=organization, account=account)


def mentions_for(organization: Organization, count: int) -> None:
    """``count`` references whose summary mentions two of the default incentive words."""
    with tenant_context(organization):
        for _ in range(count):
            ReferenceFactory(organization=organization, summary="They took a voucher in return for the quote.")


def age(organization: Organization) -> None:
    """Put the organization's rows before its checkpoint (less its margin): swept, and not read again."""
    with tenant_context(organization):
        for model in (Reference, Incentive):
            model.objects.update(updated_at=timezone.now() - timedelta(days=1))


def run() -> tuple[int, dict[str, int]]:
    with (
        CaptureQueriesContext(connection) as queries,
        cross_organization("test: the nightly review sweep"),
        transaction.atomic(),
    ):
        flagged = review_flags_sweep_all(now=timezone.now())
    return len(queries), flagged


def counts() -> tuple[int, int]:
    with cross_organization("test: flags and holds of every organization"):
        return ReviewFlag.all_tenants.count(), ReferenceHold.all_tenants.count()


@pytest.mark.parametrize(
    ("setup", "source", "flags_per_reference"),
    [(incentive_for, "incentives", 1), (mentions_for, "text", 2)],
    ids=["incentives", "text"],
)
def test_the_review_sweep_costs_the_same_statements_for_1_or_3_organizations_and_5_or_50_rows(
    setup: Callable[[Organization, int], None], source: str, flags_per_reference: int
) -> None:
    organizations = OrganizationFactory.create_batch(4)
    assert run()[1]["organizations"] == 4  # every organization's first sweep: nothing to flag yet

    setup(organizations[0], 5)
    few, flagged_few = run()
    age(organizations[0])
    for organization in organizations[1:]:
        setup(organization, 50)
    many, flagged_many = run()

    assert (flagged_few["organizations"], flagged_many["organizations"]) == (1, 3)
    assert (flagged_few[source], flagged_many[source]) == (5 * flags_per_reference, 150 * flags_per_reference)
    assert counts() == (155 * flags_per_reference, 155 * flags_per_reference)
    assert many == few
    # And the same rows read again in full (new words everywhere) raise nothing, in no more statements.
    with cross_organization("test: forget every fingerprint"):
        ReviewScan.all_tenants.update(fingerprint="")
    again, flagged_again = run()
    assert (flagged_again["organizations"], flagged_again[source]) == (4, 0)
    assert again <= many


def test_a_first_sweep_of_many_organizations_costs_what_one_organizations_does() -> None:
    first = OrganizationFactory()
    mentions_for(first, 5)
    incentive_for(first, 1)
    one, flagged_one = run()
    for organization in OrganizationFactory.create_batch(3):
        mentions_for(organization, 50)
        incentive_for(organization, 5)
    incentive_for(first, 5)

    several, flagged_several = run()

    assert (flagged_one["organizations"], flagged_several["organizations"]) == (1, 4)
    assert (flagged_one["incentives"], flagged_several["incentives"]) == (1, 20)
    assert several == one
