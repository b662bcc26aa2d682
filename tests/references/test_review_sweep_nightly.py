"""Beat's review sweep reads only organizations, and rows, changed since their checkpoint.

The flagging itself is tested in test_incentives.py and its statement counts in
test_review_sweep_statements.py; these tests are about the nightly entry point and the checkpoint:
an unchanged night costs the same statements with 3 or 12 organizations and sends no task, a
change is read in its own organization only, a change of words reads everything again, and a
re-run or a duplicated task raises nothing twice.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from references import incentives, tasks
from references.models import (
    Incentive,
    Reference,
    ReferenceAsset,
    ReferenceSettings,
    ReviewFlag,
    ReviewScan,
    UsageRequest,
)
from refmgr.celery import app
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Organization
from tests.factories.references import ReferenceFactory
from tests.factories.tenancy import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

SWEEP = "references.tasks.review_flags_sweep"


@pytest.fixture
def published(monkeypatch) -> list[tuple[str, dict[str, Any]]]:
    """What beat's entry hands to the broker."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def send_task(name: str, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        sent.append((name, kwargs))

    monkeypatch.setattr(app, "send_task", send_task)
    return sent


def age(organization: Organization, days: int = 2) -> None:
    """Make every row of the organization as old as ``days`` (the checkpoint's margin is minutes)."""
    then = timezone.now() - timedelta(days=days)
    with tenant_context(organization):
        for model in (Reference, ReferenceAsset, UsageRequest, Incentive, ReferenceSettings):
            model.objects.update(updated_at=then)


def nightly(published: list[tuple[str, dict[str, Any]]]) -> list[int]:
    """Beat's entry, then each task it sent, as a worker runs them; returns the organizations swept."""
    published.clear()
    outcome = tasks.review_flags_nightly.apply()
    assert outcome.successful(), outcome.traceback
    swept = []
    for name, kwargs in list(published):
        assert name == SWEEP
        assert tasks.review_flags_sweep.apply(kwargs=kwargs).successful()
        swept.append(kwargs["organization_id"])
    return swept


def flags(organization: Organization) -> list[tuple[int, str]]:
    with tenant_context(organization):
        return sorted(ReviewFlag.objects.values_list("reference_id", "source_key"))


def mention(organization: Organization, text: str = "They took a voucher for the quote.") -> Reference:
    with tenant_context(organization):
        return ReferenceFactory(organization=organization, summary=text)


def incentive(organization: Organization, reference: Reference) -> Incentive:
    with tenant_context(organization):
        return Incentive.objects.create(
            organization=organization,
            contact=reference.advocate,
            account=reference.account,
            kind="gift_card",
            value=Decimal("50"),
            currency="EUR",
            given_on=timezone.localdate(),
            given_by="Account executive",
            recorded_by=UserFactory(),
        )


# --- Nights with nothing new -------------------------------------------------------------------------


def test_an_unchanged_night_costs_the_same_few_statements_with_3_or_12_organizations(published) -> None:
    organizations = OrganizationFactory.create_batch(3)
    for organization in organizations:
        mention(organization)
        age(organization)
    assert sorted(nightly(published)) == sorted(o.pk for o in organizations)  # the first sweep reads all
    with CaptureQueriesContext(connection) as few:
        assert nightly(published) == []
    more = OrganizationFactory.create_batch(9)
    for organization in more:
        mention(organization)
        age(organization)
    assert sorted(nightly(published)) == sorted(o.pk for o in more)

    with CaptureQueriesContext(connection) as many:
        assert nightly(published) == []

    assert len(many) == len(few) == 1


def test_a_rerun_or_a_duplicated_task_raises_nothing_twice(org_a, published) -> None:
    reference, plain = mention(org_a), mention(org_a, "A plain quote.")
    given = incentive(org_a, plain)
    age(org_a)
    assert nightly(published) == [org_a.pk]
    first = flags(org_a)
    assert first == [(reference.pk, f"text:reference:{reference.pk}:voucher"), (plain.pk, f"incentive:{given.pk}")]

    # A duplicated beat task for the same organization (its checkpoint says there is nothing new).
    assert tasks.review_flags_sweep.apply(kwargs={"organization_id": org_a.pk}).get() == {"incentives": 0, "text": 0}
    assert nightly(published) == []
    assert flags(org_a) == first


# --- What changed, and only where ----------------------------------------------------------------------


def test_a_change_is_read_in_its_organization_only(org_a, org_b, published) -> None:
    for organization in (org_a, org_b):
        mention(organization)
        age(organization)
    nightly(published)
    before_b = flags(org_b)

    new = mention(org_a, "We paid for their trip.")

    assert nightly(published) == [org_a.pk]
    assert (new.pk, f"text:reference:{new.pk}:paid for") in flags(org_a)
    assert flags(org_b) == before_b


def test_a_new_reference_of_a_contact_with_an_incentive_is_flagged(org_a, published) -> None:
    old = mention(org_a, "A plain quote.")
    given = incentive(org_a, old)
    age(org_a)
    nightly(published)
    with tenant_context(org_a):
        new = ReferenceFactory(organization=org_a, account=old.account, advocate=old.advocate)

    assert nightly(published) == [org_a.pk]
    assert (new.pk, f"incentive:{given.pk}") in flags(org_a)


def test_a_changed_usage_request_is_read(org_a, published) -> None:
    reference = mention(org_a, "A plain quote.")
    age(org_a)
    nightly(published)
    with tenant_context(org_a):
        request = UsageRequest.objects.create(
            organization=org_a,
            reference=reference,
            scope="quote",
            requested_by=UserFactory(),
            opportunity_name="x",
            purpose="They get a free month if they speak.",
        )

    assert nightly(published) == [org_a.pk]
    assert (reference.pk, f"text:usage_request:{request.pk}:free month") in flags(org_a)


def test_new_words_read_every_row_again(org_a, published) -> None:
    old = mention(org_a, "They got a bonus for saying so.")  # not a built-in word
    age(org_a)
    nightly(published)
    assert flags(org_a) == []

    with tenant_context(org_a):
        settings = ReferenceSettings.objects.first() or ReferenceSettings(organization=org_a)
        settings.incentive_words = "bonus\nvoucher"
        settings.save()

    assert nightly(published) == [org_a.pk]
    assert flags(org_a) == [(old.pk, f"text:reference:{old.pk}:bonus")]
    with tenant_context(org_a):
        scan = ReviewScan.objects.get()
    assert timezone.now() - timedelta(minutes=20) < scan.scanned_until < timezone.now()


def test_the_checkpoint_rereads_the_margin_before_the_last_sweep(org_a) -> None:
    """A write committed after the sweep's snapshot, stamped before it, is read the next night."""
    with tenant_context(org_a):
        incentives.review_flags_sweep(organization=org_a)
        late = ReferenceFactory(organization=org_a, summary="A voucher, committed late.")
        Reference.objects.filter(pk=late.pk).update(updated_at=timezone.now() - timedelta(minutes=5))

        assert incentives.review_flags_sweep(organization=org_a) == {"incentives": 0, "text": 1}


def test_a_row_stamped_in_the_future_is_not_read_every_night(org_a, published) -> None:
    reference = mention(org_a, "A plain quote.")
    age(org_a)
    with tenant_context(org_a):
        Reference.objects.filter(pk=reference.pk).update(updated_at=timezone.now() + timedelta(days=30))

    assert nightly(published) == [org_a.pk]  # the first sweep reads everything
    assert nightly(published) == []
