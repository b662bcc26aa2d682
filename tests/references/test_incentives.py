"""Incentives flag their references; compliance clears or rejects with separation of duties."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from references import incentives, selectors
from references.models import FlagStatus, Incentive, Reference, ReferenceStatus, ReviewFlag, UsageRequest
from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.context import tenant_context
from tests.factories.references import ReferenceAssetFactory, ReferenceFactory, grant


@pytest.fixture
def reference(org_a):
    reference = ReferenceFactory(organization=org_a)
    grant(reference, "call", "quote")
    return reference


def record(org, actor, *, contact=None, account=None, given_on=None, **extra) -> Incentive:
    with tenant_context(org):
        return incentives.incentive_record(
            organization=org,
            actor=actor,
            contact=contact,
            account=account,
            kind=extra.pop("kind", "gift_card"),
            value=extra.pop("value", Decimal("50")),
            currency=extra.pop("currency", "EUR"),
            given_on=given_on or timezone.localdate(),
            given_by="Account executive",
            **extra,
        )


def flag_all(org) -> int:
    with tenant_context(org):
        return incentives.incentive_flag_references(organization=org)


def nightly_text_flags() -> int:
    """Beat's review sweep over every organization; the new text flags it raised."""
    from references.tasks import review_flags_nightly

    return review_flags_nightly.apply().get()["text"]


def usable(reference) -> set[str]:
    with tenant_context(reference.organization):
        return selectors.reference_usable_scopes(organization=reference.organization, reference_ids=[reference.pk]).get(
            reference.pk, set()
        )


def test_it_enqueues_flagging_after_commit(org_a, carol, reference, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        record(org_a, carol, contact=reference.advocate)
    assert len(callbacks) == 1


def test_it_flags_the_contacts_references_and_hides_them(org_a, carol, reference):
    incentive = record(org_a, carol, contact=reference.advocate)
    with tenant_context(org_a):
        assert incentives.incentive_flag_references(organization=org_a, incentive_ids=[incentive.pk]) == 1
        flag = ReviewFlag.objects.get()
    assert flag.reference_id == reference.pk
    assert flag.incentive_id == incentive.pk
    assert usable(reference) == set()


def test_it_never_raises_the_same_flag_twice(org_a, carol, reference):
    record(org_a, carol, contact=reference.advocate)
    assert flag_all(org_a) == 1
    assert flag_all(org_a) == 0
    with tenant_context(org_a):
        assert ReviewFlag.objects.count() == 1


def test_it_flags_every_reference_of_an_account_wide_incentive(org_a, carol, reference):
    other = ReferenceFactory(organization=org_a, account=reference.account)
    unrelated = ReferenceFactory(organization=org_a)
    record(org_a, carol, account=reference.account)
    assert flag_all(org_a) == 2
    with tenant_context(org_a):
        flagged = set(ReviewFlag.objects.values_list("reference_id", flat=True))
    assert flagged == {reference.pk, other.pk}
    assert unrelated.pk not in flagged


@pytest.mark.parametrize(("days", "flagged"), [(364, 1), (366, 0)])
def test_it_respects_the_look_back_window_after_the_incentive(org_a, carol, reference, days, flagged):
    # The reference was created `days` after the incentive (window: 365 days).
    record(org_a, carol, contact=reference.advocate, given_on=timezone.localdate() - timedelta(days=days))
    assert flag_all(org_a) == flagged


@pytest.mark.parametrize(("days", "flagged"), [(364, 1), (366, 0)])
def test_it_respects_the_look_back_window_before_the_incentive(org_a, carol, reference, days, flagged):
    # The reference was retired `days` before the incentive.
    with tenant_context(org_a):
        Reference.objects.filter(pk=reference.pk).update(
            status=ReferenceStatus.RETIRED, retired_at=timezone.now() - timedelta(days=days)
        )
    record(org_a, carol, contact=reference.advocate, given_on=timezone.localdate())
    assert flag_all(org_a) == flagged


def test_it_refuses_incentives_conditioned_on_positive_sentiment(org_a, carol, reference):
    with pytest.raises(ApplicationError, match="not authentic") as error:
        record(org_a, carol, contact=reference.advocate, condition="positive_sentiment")
    assert error.value.field == "condition"
    with tenant_context(org_a):
        assert not Incentive.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"), [("value", Decimal("-1")), ("value", Decimal("5000000")), ("currency", "XYZ")]
)
def test_it_refuses_absurd_values_and_unknown_currencies(org_a, carol, reference, field, value):
    with pytest.raises(ApplicationError) as error:
        record(org_a, carol, contact=reference.advocate, **{field: value})
    assert error.value.field == field


def test_it_refuses_another_organizations_contact(org_a, org_b, carol):
    foreign = ReferenceFactory(organization=org_b)
    with pytest.raises(ApplicationError) as error:
        record(org_a, carol, contact=foreign.advocate)
    assert error.value.field == "contact"


def test_it_quotes_the_passage_that_mentions_an_incentive(org_a, bob, reference):
    with tenant_context(org_a):
        UsageRequest.objects.create(
            organization=org_a,
            reference=reference,
            scope="call",
            requested_by=bob,
            opportunity_name="x",
            purpose="They agreed to the call because we sent a gift card last month.",
        )
    assert nightly_text_flags() == 1
    assert nightly_text_flags() == 0
    with tenant_context(org_a):
        flag = ReviewFlag.objects.get()
    assert "gift card" in flag.matched_text
    assert flag.incentive is None


def test_it_scans_reference_material_with_the_organizations_words(org_a, alice, reference):
    from references.models import ReferenceSettings

    ReferenceAssetFactory(organization=org_a, reference=reference, text="Loved it. (Thanks for the hamper!)")
    with tenant_context(org_a):
        ReferenceSettings.objects.create(organization=org_a, incentive_words="hamper\n")
    assert nightly_text_flags() == 1


def test_it_clears_a_flag_with_a_disclosure_and_makes_the_reference_usable(org_a, carol, dave, reference):
    record(org_a, carol, contact=reference.advocate)
    flag_all(org_a)
    with tenant_context(org_a):
        flag = ReviewFlag.objects.get()
        with pytest.raises(ApplicationError) as error:
            incentives.review_flag_clear(organization=org_a, flag=flag, actor=dave, justification=" ", disclosure="x")
        assert error.value.field == "justification"
        incentives.review_flag_clear(
            organization=org_a,
            flag=flag,
            actor=dave,
            justification="A small thank-you after the call.",
            disclosure="This customer received a gift card.",
        )
        reference.refresh_from_db()
        flag.refresh_from_db()
    assert flag.status == FlagStatus.CLEARED
    assert reference.disclosure == "This customer received a gift card."
    assert usable(reference) == {"call", "quote"}


def test_it_keeps_the_recorder_from_judging_their_own_incentive(org_a, carol, reference):
    record(org_a, carol, contact=reference.advocate)
    flag_all(org_a)
    with tenant_context(org_a):
        flag = ReviewFlag.objects.get()
        with pytest.raises(ApplicationError, match="another reviewer"):
            incentives.review_flag_clear(
                organization=org_a, flag=flag, actor=carol, justification="fine", disclosure="x"
            )
        with pytest.raises(ApplicationError, match="another reviewer"):
            incentives.review_flag_reject(organization=org_a, flag=flag, actor=carol, justification="no")


def test_it_retires_a_rejected_reference(org_a, carol, dave, reference):
    record(org_a, carol, contact=reference.advocate)
    flag_all(org_a)
    with tenant_context(org_a):
        flag = ReviewFlag.objects.get()
        incentives.review_flag_reject(organization=org_a, flag=flag, actor=dave, justification="Paid testimonial.")
        reference.refresh_from_db()
    assert reference.status == ReferenceStatus.RETIRED


def test_it_hides_other_tenants_incentives_and_flags(org_a, org_b, carol, reference):
    record(org_a, carol, contact=reference.advocate)
    flag_all(org_a)
    with tenant_context(org_b):
        assert not Incentive.objects.exists()
        assert not ReviewFlag.objects.exists()
        assert incentives.incentive_flag_references(organization=org_b) == 0


def test_it_flags_through_the_celery_tasks(org_a, bob, carol, reference):
    from references.tasks import incentive_flag, review_flags_nightly

    incentive = record(org_a, carol, contact=reference.advocate)
    assert incentive_flag.apply(kwargs={"organization_id": org_a.pk, "incentive_id": incentive.pk}).get() == 1
    with tenant_context(org_a):
        UsageRequest.objects.create(
            organization=org_a,
            reference=reference,
            scope="quote",
            requested_by=bob,
            opportunity_name="x",
            purpose="We paid for their trip to the summit.",
        )
    # The incentive's flag is already there; the first nightly sweep reads everything and adds the text's.
    assert review_flags_nightly.apply().get() == {"organizations": 1, "incentives": 0, "text": 1, "left": 0}
