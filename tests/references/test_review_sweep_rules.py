"""The set-based review sweep raises exactly the flags the per-organization rules raise.

``references.review_sweeps`` applies, in SQL and for every organization at once, two rules that
were Python: an incentive flags every reference of its contact (or account) active within the
organization's window around it (``incentive_flag_references``, still the on-commit path), and a
word of the organization's list found in a row's text flags it once, on the first field that has
it, quoting the passage. These tests compare the sweep's flags with those rules, field by field,
on rows chosen for the edges (window boundaries, retired references, case, both fields, passages
cut at either end, whitespace, non-ASCII words), and check that one organization's words and
incentives never reach another's rows.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from references import incentives
from references.models import (
    Incentive,
    Reference,
    ReferenceAsset,
    ReferenceHold,
    ReferenceSettings,
    ReferenceStatus,
    ReviewFlag,
    UsageRequest,
)
from references.review_sweeps import incentive_words, review_flags_sweep_all
from refmgr.tenancy.context import cross_organization, tenant_context
from refmgr.tenancy.models import Organization
from tests.factories.references import (
    AccountFactory,
    ContactFactory,
    IncentiveFactory,
    ReferenceAssetFactory,
    ReferenceFactory,
)
from tests.factories.tenancy import UserFactory

pytestmark = pytest.mark.django_db

FlagRow = tuple[int, int | None, str, str, str]  # reference, incentive, source key, reason, passage


def sweep() -> dict[str, int]:
    with cross_organization("test: the nightly review sweep"), transaction.atomic():
        return review_flags_sweep_all(now=timezone.now())


def flag_rows(organization: Organization) -> set[FlagRow]:
    with tenant_context(organization):
        return set(
            ReviewFlag.objects.values_list("reference_id", "incentive_id", "source_key", "reason", "matched_text")
        )


def forget_flags(organization: Organization) -> None:
    with tenant_context(organization):
        ReferenceHold.objects.all().delete()
        ReviewFlag.objects.all().delete()


def settings_for(organization: Organization, **fields: Any) -> None:
    with tenant_context(organization):
        ReferenceSettings.objects.create(organization=organization, **fields)


# --- Incentives ------------------------------------------------------------------------------------


def incentives_at_the_edges(organization: Organization) -> None:
    """References of one contact created or retired around the window's ends, and an account-wide
    incentive over another account (with a reference that has no advocate)."""
    now = timezone.now()
    with tenant_context(organization):
        account = AccountFactory(organization=organization)
        contact = ContactFactory(organization=organization, account=account)
        for days in (-400, -366, -364, -31, -29, 0, 29, 31, 364, 366, 400):
            # Created `days` after the incentive (given today less 100 days), or retired that long before it.
            reference = ReferenceFactory(organization=organization, account=account, advocate=contact)
            Reference.objects.filter(pk=reference.pk).update(created_at=now - timedelta(days=100 - days))
            retired = ReferenceFactory(organization=organization, account=account, advocate=contact)
            Reference.objects.filter(pk=retired.pk).update(
                created_at=now - timedelta(days=2000),
                status=ReferenceStatus.RETIRED,
                retired_at=now - timedelta(days=100 + days),
            )
        user = UserFactory()
        common = {"value": Decimal("50"), "currency": "EUR", "given_by": "AE", "recorded_by": user}
        Incentive.objects.create(
            organization=organization,
            contact=contact,
            account=account,
            kind="gift_card",
            given_on=timezone.localdate() - timedelta(days=100),
            **common,
        )
        wide = AccountFactory(organization=organization)
        ReferenceFactory(organization=organization, account=wide, advocate=None)
        ReferenceFactory(organization=organization, account=wide)
        Incentive.objects.create(
            organization=organization, account=wide, kind="event_travel", given_on=timezone.localdate(), **common
        )


def test_incentive_flags_are_the_ones_incentive_flag_references_raises(org_a, org_b) -> None:
    settings_for(org_b, incentive_window_days=30)  # each organization's own window
    expected = {}
    for organization in (org_a, org_b):
        incentives_at_the_edges(organization)
        with tenant_context(organization):
            assert incentives.incentive_flag_references(organization=organization) > 0
        expected[organization.pk] = flag_rows(organization)
        forget_flags(organization)

    assert sweep()["incentives"] == sum(len(rows) for rows in expected.values())

    for organization in (org_a, org_b):
        assert flag_rows(organization) == expected[organization.pk]
    assert len(expected[org_b.pk]) < len(expected[org_a.pk])  # the shorter window flags fewer
    assert any("Event or travel" in reason for _r, _i, _k, reason, _p in expected[org_a.pk])


# --- Text ------------------------------------------------------------------------------------------

PLACES: tuple[tuple[str, type, tuple[str, str], str], ...] = (
    ("reference", Reference, ("title", "summary"), "pk"),
    ("asset", ReferenceAsset, ("title", "text"), "reference_id"),
    ("usage_request", UsageRequest, ("purpose", "outcome_notes"), "reference_id"),
)


def snippet(text: str, start: int, end: int, margin: int = 60) -> str:
    lead = "…" if start > margin else ""
    tail = "…" if end + margin < len(text) else ""
    return f"{lead}{text[max(0, start - margin) : end + margin].strip()}{tail}"


def text_rule(organization: Organization) -> set[FlagRow]:
    """The per-organization text scan the sweep replaced, in Python, as the oracle."""
    with tenant_context(organization):
        settings = ReferenceSettings.objects.first()
        words = incentive_words(settings.incentive_words if settings else "")
        flags = set()
        for place, model, fields, reference_field in PLACES:
            for row in model.objects.values("pk", reference_field, *fields):
                for word in words:
                    pattern = re.compile(re.escape(word), re.IGNORECASE)
                    for field in fields:
                        found = pattern.search(row[field] or "")
                        if found is None:
                            continue
                        flags.add(
                            (
                                row[reference_field],
                                None,
                                f"text:{place}:{row['pk']}:{word}"[:200],
                                f"Mentions “{word}” ({place.replace('_', ' ')} {field.replace('_', ' ')})"[:300],
                                snippet(row[field], found.start(), found.end()),
                            )
                        )
                        break
    return flags


def texts_at_the_edges(organization: Organization) -> None:
    filler = "Rolled out to twelve regions in a quarter, with the data team in the lead. " * 3
    with tenant_context(organization):
        plain = ReferenceFactory(organization=organization, title="Plain", summary="Nothing to see.")
        ReferenceFactory(
            organization=organization, title="A VOUCHER story", summary="The Voucher again."
        )  # first field
        ReferenceFactory(organization=organization, title="Plain", summary=f"{filler}a gift card, {filler}")  # cut
        ReferenceFactory(organization=organization, title="Plain", summary="Reward early. " + filler)  # no lead
        ReferenceFactory(organization=organization, title="Plain", summary=filler + "in return for a bonus")  # no tail
        ReferenceFactory(
            organization=organization,
            title="Plain",
            # The passage's ends fall on whitespace, some of it not ASCII: stripped as str.strip() does.
            summary="x" * 3 + "\u2003\n\t" * 25 + "Paid For" + " \u00a0" * 35 + "y" * 40,
        )
        ReferenceFactory(organization=organization, title="Plain", summary="Eine Prämie, ein подарок und a Bonus.")
        ReferenceAssetFactory(organization=organization, reference=plain, title="Quote", text="It paid for itself.")
        ReferenceAssetFactory(organization=organization, reference=plain, title="Free month", text="")
        UsageRequest.objects.create(
            organization=organization,
            reference=plain,
            scope="quote",
            requested_by=UserFactory(),
            opportunity_name="x",
            purpose="",
            outcome_notes="Won; they asked about the amazon card and a free month.",
        )


# A word with letters outside ASCII, one with none (Cyrillic "gift"), and a word listed twice.
OWN_WORDS = "prämie\nподарок\nbonus\nvoucher\nvoucher"  # noqa: RUF001


@pytest.mark.parametrize("words", ["", OWN_WORDS], ids=["built-in words", "own words, not ASCII"])
def test_text_flags_are_the_ones_the_text_scan_raised(org_a, words) -> None:
    if words:
        settings_for(org_a, incentive_words=words)
    texts_at_the_edges(org_a)
    expected = text_rule(org_a)
    assert len(expected) >= 5  # every kind of edge above is in it

    assert sweep()["text"] == len(expected)

    assert flag_rows(org_a) == expected


def test_every_new_flag_holds_its_reference_for_review(org_a) -> None:
    texts_at_the_edges(org_a)
    incentives_at_the_edges(org_a)
    sweep()
    with tenant_context(org_a):
        holds = set(ReferenceHold.objects.values_list("reference_id", "kind", "source", "reason", "released_at"))
        flagged = set(ReviewFlag.objects.values_list("reference_id", "source_key", "reason"))
    assert holds == {(reference, "review", source, reason, None) for reference, source, reason in flagged}


def test_a_released_hold_stays_released_when_the_sweep_reads_its_flag_again(org_a) -> None:
    mention = ReferenceFactory(organization=org_a, summary="A voucher.")
    sweep()
    with tenant_context(org_a):
        ReferenceHold.objects.update(released_at=timezone.now())
        Reference.objects.filter(pk=mention.pk).update(updated_at=timezone.now())

    assert sweep() == {"organizations": 1, "incentives": 0, "text": 0, "left": 0}
    with tenant_context(org_a):
        assert not ReferenceHold.objects.filter(released_at=None).exists()


# --- Organizations apart ---------------------------------------------------------------------------


def test_one_organizations_words_and_incentives_never_reach_anothers_rows(org_a, org_b) -> None:
    settings_for(org_a, incentive_words="bonus")
    both = "A bonus, and a voucher."
    with tenant_context(org_a):
        a = ReferenceFactory(organization=org_a, summary=both)
        given = IncentiveFactory(
            organization=org_a, account=a.account, kind="payment", value=Decimal("5"), given_by="AE"
        )
    with tenant_context(org_b):
        b = ReferenceFactory(organization=org_b, summary=both)

    assert sweep() == {"organizations": 2, "incentives": 1, "text": 2, "left": 0}

    with tenant_context(org_a):
        assert sorted(ReviewFlag.objects.values_list("reference_id", "source_key")) == sorted(
            [(a.pk, f"text:reference:{a.pk}:bonus"), (a.pk, f"incentive:{given.pk}")]
        )
    with tenant_context(org_b):
        assert list(ReviewFlag.objects.values_list("reference_id", "source_key")) == [
            (b.pk, f"text:reference:{b.pk}:voucher")
        ]
    with cross_organization("test: every flag and hold with its reference's organization"):
        for model in (ReviewFlag, ReferenceHold):
            rows = model.all_tenants.values_list("organization_id", "reference__organization_id")
            assert rows
            assert all(own == of_reference for own, of_reference in rows)
