"""Demo data: a few hundred references per organization, usable scopes, history; idempotent."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from references.models import Reference, UsageEvent, UsageRequest, UsageStatus
from references.selectors import reference_usable_filter
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Organization


def _counts() -> dict[str, int]:
    return {
        model.__name__: model.all_tenants.count()  # the whole database, on purpose
        for model in (Reference, UsageRequest, UsageEvent)
    }


def test_it_seeds_references_with_usable_scopes_and_history(db):
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


def test_it_creates_nothing_the_second_time(db):
    call_command("seed_demo", "--no-logins", stdout=StringIO())
    before = _counts()
    call_command("seed_demo", "--no-logins", stdout=StringIO())
    assert _counts() == before
