"""Django admin for incentives and review flags: scoped to the organization, decisions read-only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from references import incentives
from references.models import FlagStatus, Incentive, ReviewFlag
from refmgr.tenancy.context import tenant_context
from tests.factories.references import ReferenceFactory

INCENTIVES = "/admin/references/incentive/"
FLAGS = "/admin/references/reviewflag/"


def _flagged(org, actor, title: str, note: str) -> tuple[Incentive, ReviewFlag]:
    reference = ReferenceFactory(organization=org, title=title)
    with tenant_context(org):
        incentive = incentives.incentive_record(
            organization=org,
            actor=actor,
            contact=reference.advocate,
            kind="gift_card",
            value=Decimal("75"),
            currency="EUR",
            given_on=timezone.localdate(),
            given_by="Account executive",
            note=note,
        )
        incentives.incentive_flag_references(organization=org, incentive_ids=[incentive.pk])
        return incentive, ReviewFlag.objects.get(incentive=incentive)


@pytest.fixture
def flags(org_a, org_b, carol, dave, mallory):
    _, cleared = _flagged(org_a, carol, "Acme cleared story", "Acme conference ticket")
    _, rejected = _flagged(org_a, carol, "Acme rejected story", "Acme cash")
    _, open_flag = _flagged(org_a, carol, "Acme open story", "Acme voucher")
    _flagged(org_b, mallory, "Borealis secret story", "Borealis hamper")
    with tenant_context(org_a):
        incentives.review_flag_clear(
            organization=org_a, flag=cleared, actor=dave, justification="Unrelated.", disclosure="Got a ticket."
        )
        incentives.review_flag_reject(organization=org_a, flag=rejected, actor=dave, justification="Paid for it.")
    return {"cleared": cleared, "rejected": rejected, "open": open_flag}


@pytest.mark.parametrize("url", [INCENTIVES, FLAGS])
def test_it_registers_the_models(client, alice, flags, url):
    client.force_login(alice)
    assert client.get(url).status_code == 200


def test_it_shows_an_org_admin_only_their_incentives_and_flags(client, alice, flags):
    client.force_login(alice)
    incentives_page = client.get(INCENTIVES).content.decode()
    assert "Account executive" in incentives_page
    assert client.get(INCENTIVES, {"q": "Borealis"}).content.decode().count("Borealis hamper") == 0
    assert client.get(INCENTIVES, {"q": "Acme voucher"}).status_code == 200
    flags_page = client.get(FLAGS).content.decode()
    assert "Acme open story" in flags_page
    assert "Borealis secret story" not in flags_page


def test_it_filters_flags_by_status_and_incentives_by_kind(client, alice, flags):
    client.force_login(alice)
    open_page = client.get(FLAGS, {"status__exact": FlagStatus.OPEN}).content.decode()
    assert "Acme open story" in open_page
    assert "Acme cleared story" not in open_page
    assert client.get(INCENTIVES, {"kind__exact": "gift_card", "condition__exact": "none"}).status_code == 200
    assert client.get(INCENTIVES, {"currency__exact": "EUR"}).status_code == 200


@pytest.mark.parametrize("state", ["open", "cleared", "rejected"])
def test_it_keeps_every_flag_read_only(client, alice, flags, org_a, state):
    flag = flags[state]
    client.force_login(alice)
    assert client.get(f"{FLAGS}{flag.pk}/change/").status_code == 200  # viewable
    forged = client.post(f"{FLAGS}{flag.pk}/change/", {"status": FlagStatus.CLEARED, "justification": "forged"})
    assert forged.status_code == 403
    assert client.post(f"{FLAGS}{flag.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get(f"{FLAGS}add/").status_code == 403
    with tenant_context(org_a):
        stored = ReviewFlag.objects.get(pk=flag.pk)
    assert stored.status == state
    assert stored.justification != "forged"


def test_it_keeps_incentives_out_of_reach_of_admin_forms(client, alice, flags, org_a):
    client.force_login(alice)
    incentive_id = flags["open"].incentive_id
    assert client.get(f"{INCENTIVES}{incentive_id}/change/").status_code == 200
    assert client.get(f"{INCENTIVES}add/").status_code == 403
    assert client.post(f"{INCENTIVES}{incentive_id}/delete/", {"post": "yes"}).status_code == 403
    forged = client.post(f"{INCENTIVES}{incentive_id}/change/", {"condition": "positive_sentiment"})
    assert forged.status_code == 403
    with tenant_context(org_a):
        assert Incentive.objects.get(pk=incentive_id).condition == "none"


def test_it_answers_404_for_another_organizations_flag(client, alice, flags, org_b):
    with tenant_context(org_b):
        foreign = ReviewFlag.objects.get()
    client.force_login(alice)
    response = client.get(f"{FLAGS}{foreign.pk}/change/")
    assert response.status_code in (302, 404)
    assert b"Borealis" not in response.content


def test_it_keeps_salespeople_and_compliance_out(client, bob, dave):
    for user in (bob, dave):
        client.force_login(user)
        assert client.get(FLAGS).status_code == 302
