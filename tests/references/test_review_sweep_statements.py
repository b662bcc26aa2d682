"""The nightly review-flag sweep costs the same number of statements whatever the number of flags.

An N+1 or a batching loop in ``incentive_flag_references`` or
``review_flag_text_scan`` would make the sweep over a million references
grow with the rows (issue 6's sweep benchmark, ``bench/sweeps.py``); these
tests fail when that happens, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import AutoField
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from references import incentives
from references.models import Incentive, ReferenceHold, ReviewFlag
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Organization
from tests.factories.references import AccountFactory, ReferenceFactory
from tests.factories.tenancy import UserFactory

pytestmark = pytest.mark.django_db


def incentive_for(organization: Organization, count: int) -> None:
    """One account-wide incentive given today to an account with ``count`` references: ``count`` flags due."""
    with tenant_context(organization):
        account = AccountFactory(organization=organization)
        for _ in range(count):
            ReferenceFactory(organization=organization, account=account)
        Incentive.objects.create(
            organization=organization,
            account=account,
            kind="gift_card",
            value=Decimal("50"),
            currency="EUR",
            given_on=timezone.localdate(),
            given_by="Account executive",
            recorded_by=UserFactory(),
        )


def mentions_for(organization: Organization, count: int) -> None:
    """``count`` references whose summary mentions two of the default incentive words."""
    with tenant_context(organization):
        for _ in range(count):
            ReferenceFactory(organization=organization, summary="They took a voucher in return for the quote.")


def insert_batches(model: type, rows: int) -> int:
    """How many INSERTs Django splits ``rows`` into (SQLite caps parameters per statement; PostgreSQL: one)."""
    fields = [f for f in model._meta.concrete_fields if not isinstance(f, AutoField)]
    return math.ceil(rows / max(connection.ops.bulk_batch_size(fields, [model()] * rows), 1))


def run(organization: Organization, sweep: Callable[..., int]) -> tuple[int, int]:
    with tenant_context(organization), CaptureQueriesContext(connection) as queries:
        flagged = sweep(organization=organization)
    return len(queries), flagged


@pytest.mark.parametrize(
    ("setup", "sweep", "flags_per_reference"),
    [
        (incentive_for, incentives.incentive_flag_references, 1),
        (mentions_for, incentives.review_flag_text_scan, 2),
    ],
    ids=["incentives", "text"],
)
def test_the_review_sweep_statement_count_does_not_grow_with_flags(org_a, org_b, setup, sweep, flags_per_reference):
    setup(org_a, 5)
    setup(org_b, 50)

    (few, flagged_few), (many, flagged_many) = run(org_a, sweep), run(org_b, sweep)

    assert (flagged_few, flagged_many) == (5 * flags_per_reference, 50 * flags_per_reference)
    # The only growth allowed: Django splitting a bulk INSERT at SQLite's parameter cap.
    rows_few, rows_many = 5 * flags_per_reference, 50 * flags_per_reference
    extra = sum(insert_batches(m, rows_many) - insert_batches(m, rows_few) for m in (ReviewFlag, ReferenceHold))
    assert many == few + extra
    # And a second night finds nothing new, in no more statements than the first.
    again, flagged_again = run(org_b, sweep)
    assert flagged_again == 0
    assert again <= many
