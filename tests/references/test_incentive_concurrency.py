"""Two sweeps at once raise each flag once: the unique key, not luck, decides."""

from __future__ import annotations

import pytest

from references import incentives
from references.models import ReferenceHold, ReviewFlag
from refmgr.tenancy.context import tenant_context
from tests.factories.references import ReferenceFactory, grant
from tests.fixtures.concurrency import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_it_raises_each_flag_once_when_two_sweeps_run_at_once(org_a, carol):
    references = [ReferenceFactory(organization=org_a) for _ in range(3)]
    for reference in references:
        grant(reference, "call")
    with tenant_context(org_a):
        for reference in references:
            incentives.incentive_record(
                organization=org_a,
                actor=carol,
                contact=reference.advocate,
                kind="gift_card",
                value=20,
                currency="EUR",
                given_on=reference.created_at.date(),
                given_by="AE",
            )

    results = run_together(org_a, lambda: incentives.incentive_flag_references(organization=org_a))
    with tenant_context(org_a):
        assert ReviewFlag.objects.count() == 3
        assert ReferenceHold.objects.filter(released_at=None).count() == 3
    assert len(results) == 2  # both sweeps finished; neither failed on the other's rows


def test_a_duplicated_nightly_sweep_raises_each_flag_once(org_a, org_b, carol):
    """Two beats at once: the second waits on the checkpoint locks, then finds nothing new."""
    from references.tasks import review_flags_nightly

    for organization in (org_a, org_b):
        with tenant_context(organization):
            ReferenceFactory(organization=organization, summary="A voucher for the quote.")
            ReferenceFactory(organization=organization, summary="A gift card, and a reward.")
    # get() raises what the task raised
    results = run_together(None, lambda: review_flags_nightly.apply().get())
    assert sorted(result["text"] for result in results) == [0, 6]  # one sweep raised them all
    for organization in (org_a, org_b):
        with tenant_context(organization):
            assert ReviewFlag.objects.count() == 3
            assert ReferenceHold.objects.filter(released_at=None).count() == 3
