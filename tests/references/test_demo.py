"""Demo data: a few hundred references per organization, usable scopes, history; idempotent.

Usable scopes and usage history arrive through the consent demo (``consent/demo.py``),
which runs after this app's; ``tests/consent/test_demo.py`` checks that each grant is
backed by the ledger. Each ``seed_demo`` takes seconds, so the tests share runs.
"""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from references.models import Incentive, Reference, ReviewFlag, UsageEvent, UsageRequest, UsageStatus
from references.selectors import reference_usable_filter
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Organization


def _counts() -> dict[str, int]:
    # Inside each organization: on PostgreSQL row-level security shows nothing outside one.
    counts: dict[str, int] = {}
    for organization in Organization.objects.all():
        with tenant_context(organization):
            for model in (Reference, UsageRequest, UsageEvent, Incentive, ReviewFlag):
                counts[f"{organization.slug}:{model.__name__}"] = model.objects.count()
    return counts


def test_it_seeds_references_with_usable_scopes_history_incentives_and_flags(db):
    from references.models import FlagStatus, IncentiveCondition, ReferenceHold
    from refmgr.tenancy.models import Membership, Role

    call_command("seed_demo", "--no-logins", stdout=StringIO())
    organizations = list(Organization.objects.all())
    assert len(organizations) == 3
    for organization in organizations:
        with tenant_context(organization):
            assert Reference.objects.count() >= 200
            usable = Reference.objects.filter(reference_usable_filter()).count()
            assert 0 < usable < Reference.objects.count()
            statuses = set(UsageRequest.objects.values_list("status", flat=True))
            assert statuses == set(UsageStatus.values)
            assert UsageEvent.objects.exists()
            assert Reference.objects.filter(holds__released_at=None, holds__isnull=False).exists()

    # Incentives and flags in every state.
    for organization in Organization.objects.all():
        with tenant_context(organization):
            incentives = list(Incentive.objects.all())
            assert len(incentives) >= 4
            assert any(i.contact_id is None for i in incentives)  # account-wide
            assert any(i.contact_id is not None for i in incentives)  # per contact
            assert any(i.condition == IncentiveCondition.PARTICIPATION for i in incentives)
            assert IncentiveCondition.POSITIVE_SENTIMENT not in {i.condition for i in incentives}
            manager = Membership.objects.get(user=incentives[0].recorded_by).role
            assert manager == Role.REFERENCE_MANAGER
            statuses = list(ReviewFlag.objects.values_list("status", flat=True))
            assert statuses.count(FlagStatus.CLEARED) == 1
            assert statuses.count(FlagStatus.REJECTED) == 1
            assert statuses.count(FlagStatus.OPEN) >= 1
            for flag in ReviewFlag.objects.exclude(status=FlagStatus.OPEN).select_related("incentive", "reference"):
                assert flag.resolved_by_id not in (None, flag.incentive.recorded_by_id)
                assert flag.justification
            cleared = ReviewFlag.objects.select_related("reference").get(status=FlagStatus.CLEARED)
            assert cleared.reference.disclosure == cleared.disclosure != ""
            rejected = ReviewFlag.objects.select_related("reference").get(status=FlagStatus.REJECTED)
            assert rejected.reference.status == "retired"
            # Every open flag holds its reference.
            open_sources = set(
                ReviewFlag.objects.filter(status=FlagStatus.OPEN).values_list("reference_id", "source_key")
            )
            held = set(ReferenceHold.objects.filter(released_at=None).values_list("reference_id", "source"))
            assert open_sources <= held


def test_it_creates_nothing_the_second_time(db):
    from references.incentives import incentive_flag_references

    call_command("seed_demo", "--no-logins", stdout=StringIO())
    before = _counts()
    assert all(before.values())
    call_command("seed_demo", "--no-logins", stdout=StringIO())
    assert _counts() == before
    for organization in Organization.objects.all():
        with tenant_context(organization):
            before_flags = ReviewFlag.objects.count()
            assert incentive_flag_references(organization=organization) == 0
            assert ReviewFlag.objects.count() == before_flags
