"""Beat's review sweep reads only organizations, and rows, changed since their checkpoint.

The sweep (``references.review_sweeps``) does every organization at once; the rules it applies
are tested in test_review_sweep_rules.py and its statement counts in test_review_sweep_statements.py.
These tests are about the nightly entry point and the checkpoints: an unchanged night costs the same
few statements with 3 or 12 organizations, a change is read in its own organization only, a change of
words reads everything again, and a re-run or a duplicated beat raises nothing twice.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from references import tasks
from references.models import (
    Incentive,
    Reference,
    ReferenceAsset,
    ReferenceHold,
    ReferenceSettings,
    ReviewFlag,
    ReviewScan,
    UsageRequest,
)
from references.review_sweeps import review_flags_sweep_all
from refmgr.audit.models import AuditEvent
from refmgr.tenancy.context import cross_organization, tenant_context
from refmgr.tenancy.models import Organization
from tests.factories.references import IncentiveFactory, ReferenceFactory
from tests.factories.tenancy import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def age(organization: Organization, days: int = 2) -> None:
    """Make every row of the organization as old as ``days`` (the checkpoint's margin is minutes)."""
    then = timezone.now() - timedelta(days=days)
    with tenant_context(organization):
        for model in (Reference, ReferenceAsset, UsageRequest, Incentive, ReferenceSettings):
            model.objects.update(updated_at=then)


def checkpoints() -> dict[int, tuple[object, str]]:
    with cross_organization("test: every organization's review checkpoint"):
        return {s.organization_id: (s.scanned_until, s.fingerprint) for s in ReviewScan.all_tenants.all()}


def nightly() -> list[int]:
    """Beat's entry, as a worker runs it; returns the organizations it read (their checkpoints moved)."""
    before = checkpoints()
    outcome = tasks.review_flags_nightly.apply()
    assert outcome.successful(), outcome.traceback
    after = checkpoints()
    read = sorted(pk for pk, checkpoint in after.items() if before.get(pk) != checkpoint)
    assert outcome.get()["organizations"] == len(read)
    return read


def sweep(now: object = None) -> dict[str, int]:
    """The service itself, as the entry calls it (a transaction, across organizations)."""
    from django.db import transaction

    with cross_organization("test: the nightly review sweep"), transaction.atomic():
        return review_flags_sweep_all(now=now or timezone.now())


def flags(organization: Organization) -> list[tuple[int, str]]:
    with tenant_context(organization):
        return sorted(ReviewFlag.objects.values_list("reference_id", "source_key"))


def mention(organization: Organization, text: str = "They took a voucher for the quote.") -> Reference:
    with tenant_context(organization):
        return ReferenceFactory(organization=organization, summary=text)


def incentive(organization: Organization, reference: Reference) -> Incentive:
    return IncentiveFactory(organization=organization, contact=reference.advocate, account=reference.account)


# --- Nights with nothing new -------------------------------------------------------------------------


def test_an_unchanged_night_costs_the_same_few_statements_with_3_or_12_organizations() -> None:
    organizations = OrganizationFactory.create_batch(3)
    for organization in organizations:
        mention(organization)
        age(organization)
    assert nightly() == sorted(o.pk for o in organizations)  # the first sweep reads all
    with CaptureQueriesContext(connection) as few:
        assert tasks.review_flags_nightly.apply().get()["organizations"] == 0
    more = OrganizationFactory.create_batch(9)
    for organization in more:
        mention(organization)
        age(organization)
    assert nightly() == sorted(o.pk for o in more)

    with CaptureQueriesContext(connection) as many:
        assert tasks.review_flags_nightly.apply().get()["organizations"] == 0

    assert len(many) == len(few)
    # The checkpoints created (none) and read with their changes; no flag, hold or text is touched.
    statements = [q["sql"] for q in few if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]
    assert len(statements) == 2
    assert not any("references_reviewflag" in sql or "references_referencehold" in sql for sql in statements)


def test_a_rerun_or_a_duplicated_sweep_raises_nothing_twice(org_a) -> None:
    reference, plain = mention(org_a), mention(org_a, "A plain quote.")
    given = incentive(org_a, plain)
    age(org_a)
    assert nightly() == [org_a.pk]
    first = flags(org_a)
    assert first == [(reference.pk, f"text:reference:{reference.pk}:voucher"), (plain.pk, f"incentive:{given.pk}")]

    # A duplicated beat after the first one committed: its checkpoint says there is nothing new.
    assert tasks.review_flags_nightly.apply().get() == {"organizations": 0, "incentives": 0, "text": 0, "left": 0}
    # Even made to read everything again (its words changed back and forth), it raises nothing twice.
    with cross_organization("test: forget the fingerprint"):
        ReviewScan.all_tenants.update(fingerprint="")
    assert sweep() == {"organizations": 1, "incentives": 0, "text": 0, "left": 0}
    assert flags(org_a) == first
    with tenant_context(org_a):
        assert ReferenceHold.objects.count() == 2
        raised = AuditEvent.objects.filter(action="review_flag.raised")
        assert sorted((e.details["source"], e.details["count"]) for e in raised) == [("incentives", 1), ("text", 1)]


# --- What changed, and only where ----------------------------------------------------------------------


def test_a_change_is_read_in_its_organization_only(org_a, org_b) -> None:
    for organization in (org_a, org_b):
        mention(organization)
        age(organization)
    nightly()
    before_b = flags(org_b)

    new = mention(org_a, "We paid for their trip.")

    assert nightly() == [org_a.pk]
    assert (new.pk, f"text:reference:{new.pk}:paid for") in flags(org_a)
    assert flags(org_b) == before_b


def test_a_day_of_edits_flags_only_the_changed_rows(org_a) -> None:
    """Rows that would flag but did not change since the checkpoint are not read (nor flagged)."""
    mention(org_a, "A plain quote.")
    age(org_a)
    nightly()
    with tenant_context(org_a):
        old = ReferenceFactory(organization=org_a, summary="A voucher, before the checkpoint.")
        Reference.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=1))
    edited = mention(org_a, "A plain quote, for now.")
    nightly()
    with tenant_context(org_a):
        Reference.objects.filter(pk=edited.pk).update(summary="Now with a gift card.", updated_at=timezone.now())

    assert nightly() == [org_a.pk]
    assert flags(org_a) == [(edited.pk, f"text:reference:{edited.pk}:gift card")]


def test_a_new_reference_of_a_contact_with_an_incentive_is_flagged(org_a) -> None:
    old = mention(org_a, "A plain quote.")
    given = incentive(org_a, old)
    age(org_a)
    nightly()
    with tenant_context(org_a):
        new = ReferenceFactory(organization=org_a, account=old.account, advocate=old.advocate)

    assert nightly() == [org_a.pk]
    assert (new.pk, f"incentive:{given.pk}") in flags(org_a)


def test_a_new_reference_of_an_account_with_an_account_wide_incentive_is_flagged(org_a) -> None:
    old = mention(org_a, "A plain quote.")
    given = IncentiveFactory(organization=org_a, account=old.account, kind="donation", value=Decimal("500"))
    age(org_a)
    nightly()
    with tenant_context(org_a):
        new = ReferenceFactory(organization=org_a, account=old.account, advocate=None, summary="Plain.")

    assert nightly() == [org_a.pk]
    assert flags(org_a) == sorted([(old.pk, f"incentive:{given.pk}"), (new.pk, f"incentive:{given.pk}")])


def test_a_changed_usage_request_is_read(org_a) -> None:
    reference = mention(org_a, "A plain quote.")
    age(org_a)
    nightly()
    with tenant_context(org_a):
        request = UsageRequest.objects.create(
            organization=org_a,
            reference=reference,
            scope="quote",
            requested_by=UserFactory(),
            opportunity_name="x",
            purpose="They get a free month if they speak.",
        )

    assert nightly() == [org_a.pk]
    assert (reference.pk, f"text:usage_request:{request.pk}:free month") in flags(org_a)


def test_new_words_read_every_row_again(org_a) -> None:
    old = mention(org_a, "They got a bonus for saying so.")  # not a built-in word
    age(org_a)
    nightly()
    assert flags(org_a) == []

    with tenant_context(org_a):
        settings = ReferenceSettings.objects.first() or ReferenceSettings(organization=org_a)
        settings.incentive_words = "bonus\nvoucher"
        settings.save()

    assert nightly() == [org_a.pk]
    assert flags(org_a) == [(old.pk, f"text:reference:{old.pk}:bonus")]
    with tenant_context(org_a):
        scan = ReviewScan.objects.get()
    assert timezone.now() - timedelta(minutes=20) < scan.scanned_until < timezone.now()


def test_the_checkpoint_rereads_the_margin_before_the_last_sweep(org_a) -> None:
    """A write committed after the sweep's snapshot, stamped before it, is read the next night."""
    sweep()
    late = mention(org_a, "A voucher, committed late.")
    with tenant_context(org_a):
        Reference.objects.filter(pk=late.pk).update(updated_at=timezone.now() - timedelta(minutes=5))

    assert sweep() == {"organizations": 1, "incentives": 0, "text": 1, "left": 0}


def test_a_row_stamped_in_the_future_is_not_read_every_night(org_a) -> None:
    reference = mention(org_a, "A plain quote.")
    age(org_a)
    with tenant_context(org_a):
        Reference.objects.filter(pk=reference.pk).update(updated_at=timezone.now() + timedelta(days=30))

    assert nightly() == [org_a.pk]  # the first sweep reads everything
    assert nightly() == []


def test_an_inactive_organization_is_not_swept(org_a, org_b) -> None:
    mention(org_a)
    mention(org_b)
    Organization.objects.filter(pk=org_b.pk).update(is_active=False)

    assert nightly() == [org_a.pk]
    assert flags(org_b) == []
    assert org_b.pk not in checkpoints()


def test_a_new_built_in_word_list_reads_the_organizations_using_it_again(org_a, org_b, monkeypatch) -> None:
    """No data migration when DEFAULT_INCENTIVE_WORDS changes: the fingerprints are checked every night."""
    with tenant_context(org_b):
        ReferenceSettings.objects.create(organization=org_b, incentive_words="voucher")
    a = mention(org_a, "They got a bonus.")
    mention(org_b, "They got a bonus.")
    age(org_a)
    age(org_b)
    nightly()
    assert flags(org_a) == flags(org_b) == []

    monkeypatch.setattr("references.review_sweeps.DEFAULT_INCENTIVE_WORDS", ("bonus",))

    assert nightly() == [org_a.pk]  # org_b has its own words
    assert flags(org_a) == [(a.pk, f"text:reference:{a.pk}:bonus")]
    assert flags(org_b) == []


# --- A first sweep larger than one run's budget ----------------------------------------------------


def test_a_first_sweep_past_the_budget_runs_again_until_every_organization_is_read(
    monkeypatch, django_capture_on_commit_callbacks
) -> None:
    organizations = OrganizationFactory.create_batch(3)
    for organization in organizations:
        for _ in range(2):
            mention(organization)
    # Room for one organization's two references a run (the first organization always runs).
    monkeypatch.setattr("references.review_sweeps.FULL_READ_BUDGET", 3)
    published: list[str] = []
    monkeypatch.setattr(tasks.review_flags_nightly, "delay", lambda: published.append("again"))

    with django_capture_on_commit_callbacks(execute=True):
        first = tasks.review_flags_nightly.apply().get()
    assert (first, published) == ({"organizations": 1, "incentives": 0, "text": 2, "left": 2}, ["again"])
    assert [len(flags(o)) for o in organizations] == [2, 0, 0]
    with django_capture_on_commit_callbacks(execute=True):
        second = tasks.review_flags_nightly.apply().get()
    with django_capture_on_commit_callbacks(execute=True):
        third = tasks.review_flags_nightly.apply().get()

    assert (second["left"], third["left"]) == (1, 0)
    assert published == ["again", "again"]  # the last run, with nothing left, enqueues nothing
    assert [len(flags(o)) for o in organizations] == [2, 2, 2]
