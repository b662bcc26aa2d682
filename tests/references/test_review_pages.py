"""Incentive and review-queue pages: roles, isolation, refusals as field errors, import atomicity, decisions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from references import incentives
from references.models import FlagStatus, Incentive, Reference, ReferenceSettings, ReferenceStatus, ReviewFlag
from refmgr.audit.models import AuditEvent
from refmgr.tenancy.context import tenant_context
from tests.factories.references import AccountFactory, ContactFactory, ReferenceFactory, grant


def url(name: str, slug: str = "acme", **kwargs: object) -> str:
    return reverse(f"references:{name}", kwargs={"organization_slug": slug, **kwargs})


def in_org(organization, fn):
    with tenant_context(organization):
        return fn()


def actions(organization) -> list[str]:
    return in_org(organization, lambda: list(AuditEvent.objects.order_by("id").values_list("action", flat=True)))


def record(org, actor, **extra) -> Incentive:
    with tenant_context(org):
        return incentives.incentive_record(
            organization=org,
            actor=actor,
            kind=extra.pop("kind", "gift_card"),
            value=extra.pop("value", Decimal("50")),
            currency=extra.pop("currency", "EUR"),
            given_on=extra.pop("given_on", timezone.localdate()),
            given_by="Account executive",
            **extra,
        )


def flag_all(org) -> None:
    with tenant_context(org):
        incentives.incentive_flag_references(organization=org)


@pytest.fixture
def reference(org_a):
    reference = ReferenceFactory(organization=org_a, title="Fleet onboarding")
    grant(reference, "call", "quote")
    return reference


@pytest.fixture
def flagged(org_a, carol, reference):
    incentive = record(org_a, carol, contact=reference.advocate)
    flag_all(org_a)
    return in_org(org_a, lambda: ReviewFlag.objects.get(incentive=incentive))


def form_data(contact, **extra) -> dict[str, object]:
    return {
        "contact": contact.pk,
        "kind": "gift_card",
        "value": "50",
        "currency": "EUR",
        "given_on": "2026-01-15",
        "given_by": "Pat, account executive",
        "condition": "none",
        "note": "",
        **extra,
    }


# --- Roles and isolation ---------------------------------------------------------------------------


def test_it_opens_incentive_pages_to_managers_and_queue_to_reviewers(client, alice, bob, carol, dave, flagged):
    incentive_id = flagged.incentive_id
    manager_pages = [url("incentive_list"), url("incentive_create"), url("incentive_import")]
    manager_pages.append(url("incentive_edit", incentive_id=incentive_id))
    review_pages = [
        url("review_queue"),
        url("review_queue") + "?tab=resolved",
        url("review_decide", flag_id=flagged.pk),
    ]
    for user, allowed, refused in (
        (alice, manager_pages + review_pages, []),
        (carol, manager_pages, review_pages),
        (dave, review_pages, manager_pages),
        (bob, [], manager_pages + review_pages),
    ):
        client.force_login(user)
        for page in allowed:
            assert client.get(page).status_code == 200, (user, page)
        for page in refused:
            assert client.get(page).status_code == 403, (user, page)


def test_it_sends_anonymous_visitors_to_sign_in(client, flagged):
    for page in (url("incentive_list"), url("review_queue"), url("review_decide", flag_id=flagged.pk)):
        response = client.get(page)
        assert response.status_code == 302
        assert "/accounts/login/" in response["Location"]


def test_it_hides_other_tenants_incentives_and_flags(client, mallory, flagged):
    client.force_login(mallory)
    assert client.get(url("incentive_edit", incentive_id=flagged.incentive_id)).status_code == 404
    assert client.get(url("review_decide", flag_id=flagged.pk)).status_code == 404
    assert client.get(url("incentive_edit", slug="globex", incentive_id=flagged.incentive_id)).status_code == 404
    assert client.get(url("review_decide", slug="globex", flag_id=flagged.pk)).status_code == 404
    assert client.post(url("review_decide", slug="globex", flag_id=flagged.pk), {}).status_code == 404


def test_it_refuses_sales_writes(client, bob, reference, flagged):
    client.force_login(bob)
    assert client.post(url("incentive_create"), form_data(reference.advocate)).status_code == 403
    data = {"decision": "clear", "justification": "ok", "disclosure": "x"}
    assert client.post(url("review_decide", flag_id=flagged.pk), data).status_code == 403


# --- Incentives ------------------------------------------------------------------------------------


def test_it_records_an_incentive(client, org_a, carol, reference, django_capture_on_commit_callbacks):
    client.force_login(carol)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(url("incentive_create"), form_data(reference.advocate))
    assert response.status_code == 302
    assert len(callbacks) == 1  # the flagging task, enqueued on commit
    incentive = in_org(org_a, lambda: Incentive.objects.get())
    assert incentive.account_id == reference.account_id
    assert incentive.recorded_by == carol
    assert "incentive.recorded" in actions(org_a)


def test_it_refuses_sentiment_conditions_on_the_field(client, org_a, carol, reference):
    client.force_login(carol)
    response = client.post(url("incentive_create"), form_data(reference.advocate, condition="positive_sentiment"))
    assert response.status_code == 400
    assert response.context["form"].errors["condition"] == [incentives.SENTIMENT_REFUSAL]
    assert in_org(org_a, lambda: Incentive.objects.count()) == 0


@pytest.mark.parametrize(
    ("extra", "field"),
    [({"value": "-5"}, "value"), ({"value": "99999999"}, "value"), ({"currency": "XYZ"}, "currency")],
)
def test_it_refuses_bad_values_as_field_errors(client, carol, reference, extra, field):
    client.force_login(carol)
    response = client.post(url("incentive_create"), form_data(reference.advocate, **extra))
    assert response.status_code == 400
    assert field in response.context["form"].errors


def test_it_refuses_another_tenants_contact(client, org_b, carol, reference):
    stranger = ContactFactory(organization=org_b)
    client.force_login(carol)
    response = client.post(url("incentive_create"), form_data(stranger))
    assert response.status_code == 400
    assert "contact" in response.context["form"].errors


def test_it_refuses_a_contact_of_another_account(client, org_a, carol, reference):
    other = AccountFactory(organization=org_a)
    client.force_login(carol)
    response = client.post(url("incentive_create"), form_data(reference.advocate, account=other.pk))
    assert response.status_code == 400
    assert "account" in response.context["form"].errors


def test_it_edits_an_incentive(client, org_a, carol, reference):
    incentive = record(org_a, carol, contact=reference.advocate)
    client.force_login(carol)
    response = client.post(url("incentive_edit", incentive_id=incentive.pk), form_data(reference.advocate, value="75"))
    assert response.status_code == 302
    assert in_org(org_a, lambda: Incentive.objects.get().value) == Decimal("75")
    response = client.post(
        url("incentive_edit", incentive_id=incentive.pk), form_data(reference.advocate, condition="positive_sentiment")
    )
    assert response.status_code == 400
    assert "condition" in response.context["form"].errors
    assert actions(org_a).count("incentive.updated") == 1


def test_it_lists_incentives_in_constant_queries(client, org_a, carol, reference):
    client.force_login(carol)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url("incentive_list")).status_code == 200
        return len(queries)

    record(org_a, carol, contact=reference.advocate)
    count()  # warm up the session and per-process caches
    baseline = count()
    for _n in range(5):
        other = ReferenceFactory(organization=org_a)
        record(org_a, carol, contact=other.advocate)
        record(org_a, carol, account=other.account)
    assert count() == baseline
    response = client.get(url("incentive_list"), {"q": reference.advocate.name})
    assert len(response.context["page"].object_list) == 1


CSV_HEADER = "contact_email,account,kind,value,currency,given_on,given_by,condition,note\n"


def upload(client, text: str):
    return client.post(url("incentive_import"), {"file": SimpleUploadedFile("incentives.csv", text.encode())})


def test_it_imports_incentives_all_or_nothing(client, org_a, carol, reference):
    email, account = reference.advocate.email, reference.account.name
    text = (
        CSV_HEADER
        + f"{email},,gift_card,50,EUR,2026-01-10,Pat,none,Thanks\n"
        + f",{account},Discount,10,usd,2026-02-01,Sam,,\n"
        + "nobody@nowhere.example,,gift_card,50,EUR,2026-01-10,Pat,,\n"
        + f"{email},,gift_card,50,EUR,10/01/2026,Pat,positive_sentiment,\n"
    )
    client.force_login(carol)
    response = upload(client, text)
    assert response.status_code == 200
    report = response.context["report"]
    assert report.valid_count == 2
    errors = {row.number: row.errors for row in report.invalid}
    assert "contact_email" in errors[4]
    assert "given_on" in errors[5]
    assert in_org(org_a, lambda: Incentive.objects.count()) == 0  # the preview wrote nothing
    token = response.context["confirm_form"].initial["token"]

    # All or nothing: some rows are invalid, so nothing is written.
    response = client.post(url("incentive_import"), {"token": token})
    assert response.status_code == 400
    assert in_org(org_a, lambda: Incentive.objects.count()) == 0

    response = client.post(url("incentive_import"), {"token": token, "valid_only": "on"})
    assert response.status_code == 302
    assert in_org(org_a, lambda: Incentive.objects.count()) == 2
    assert "incentives.imported" in actions(org_a)
    # The token is spent.
    assert client.post(url("incentive_import"), {"token": token}).status_code == 302
    assert in_org(org_a, lambda: Incentive.objects.count()) == 2


def test_it_refuses_a_conditioned_row_and_a_bad_header(client, org_a, carol, reference):
    client.force_login(carol)
    text = CSV_HEADER + f"{reference.advocate.email},,gift_card,50,EUR,2026-01-10,Pat,positive_sentiment,\n"
    report = upload(client, text).context["report"]
    assert report.invalid[0].errors["condition"] == [incentives.SENTIMENT_REFUSAL]
    response = upload(client, "who,what\nx,y\n")
    assert response.status_code == 400
    assert "file" in response.context["upload_form"].errors


# --- Review queue ----------------------------------------------------------------------------------


def test_it_shows_open_flags_with_incentive_and_uses(client, dave, flagged):
    client.force_login(dave)
    response = client.get(url("review_queue"))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Fleet onboarding" in content
    assert "Gift card" in content
    assert response.context["open_count"] == 1
    response = client.get(url("review_decide", flag_id=flagged.pk))
    assert response.context["form"].initial["disclosure"] == "This customer received a gift card."


def test_it_clears_a_flag_with_a_disclosure(client, org_a, dave, flagged):
    client.force_login(dave)
    data = {"decision": "clear", "justification": "Small thank-you after the fact.", "disclosure": "A gift card."}
    response = client.post(url("review_decide", flag_id=flagged.pk), data)
    assert response.status_code == 302
    flag = in_org(org_a, lambda: ReviewFlag.objects.select_related("reference").get(pk=flagged.pk))
    assert flag.status == FlagStatus.CLEARED
    assert flag.resolved_by == dave
    assert flag.reference.disclosure == "A gift card."
    assert "review_flag.cleared" in actions(org_a)
    resolved = client.get(url("review_queue"), {"tab": "resolved"})
    assert "Small thank-you after the fact." in resolved.content.decode()
    # The decision shows on the reference, to managers and reviewers.
    detail = client.get(
        reverse("references:detail", kwargs={"organization_slug": "acme", "reference_id": flag.reference_id})
    )
    assert detail.status_code == 200
    assert "Small thank-you after the fact." in detail.content.decode()
    assert "A gift card." in detail.content.decode()


def test_it_requires_a_justification(client, org_a, dave, flagged):
    client.force_login(dave)
    response = client.post(url("review_decide", flag_id=flagged.pk), {"decision": "clear", "justification": " "})
    assert response.status_code == 400
    assert "justification" in response.context["form"].errors
    response = client.post(url("review_decide", flag_id=flagged.pk), {"decision": "clear", "justification": "Fine."})
    assert response.status_code == 400
    assert "disclosure" in response.context["form"].errors
    assert in_org(org_a, lambda: ReviewFlag.objects.get(pk=flagged.pk).status) == FlagStatus.OPEN


def test_it_rejects_and_retires_the_reference(client, org_a, dave, flagged):
    client.force_login(dave)
    response = client.post(url("review_decide", flag_id=flagged.pk), {"decision": "reject", "justification": "Bought."})
    assert response.status_code == 302
    assert in_org(org_a, lambda: Reference.objects.get(pk=flagged.reference_id).status) == ReferenceStatus.RETIRED
    assert in_org(org_a, lambda: ReviewFlag.objects.get(pk=flagged.pk).status) == FlagStatus.REJECTED
    assert "review_flag.rejected" in actions(org_a)


def test_it_keeps_separation_of_duties_as_a_message(client, org_a, alice, reference):
    incentive = record(org_a, alice, contact=reference.advocate)
    flag_all(org_a)
    flag = in_org(org_a, lambda: ReviewFlag.objects.get(incentive=incentive))
    client.force_login(alice)
    data = {"decision": "clear", "justification": "Mine.", "disclosure": "A gift card."}
    response = client.post(url("review_decide", flag_id=flag.pk), data)
    assert response.status_code == 400
    texts = [str(m) for m in response.context["messages"]]
    assert any("another reviewer" in t for t in texts)
    assert in_org(org_a, lambda: ReviewFlag.objects.get(pk=flag.pk).status) == FlagStatus.OPEN


def test_it_lists_the_queue_in_constant_queries(client, org_a, carol, dave, reference):
    client.force_login(dave)
    record(org_a, carol, contact=reference.advocate)
    flag_all(org_a)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url("review_queue")).status_code == 200
        return len(queries)

    count()  # warm up the session and per-process caches
    baseline = count()
    for _n in range(5):
        other = ReferenceFactory(organization=org_a)
        record(org_a, carol, contact=other.advocate)
    flag_all(org_a)
    assert count() == baseline


# --- Settings --------------------------------------------------------------------------------------


def test_it_saves_the_review_settings(client, org_a, alice):
    client.force_login(alice)
    data = {
        "usage_cap": 3,
        "usage_window_days": 90,
        "cooldown_days": 14,
        "incentive_window_days": 180,
        "incentive_words": "gift card\n  goodie bag \n",
    }
    assert client.post(url("settings"), data).status_code == 302
    current = in_org(org_a, lambda: ReferenceSettings.objects.get())
    assert (current.incentive_window_days, current.incentive_words) == (180, "gift card\ngoodie bag")
    data["incentive_window_days"] = 0
    assert client.post(url("settings"), data).status_code == 400


def test_a_word_too_long_for_a_flag_is_refused_and_nothing_changes(client, org_a, alice):
    # A text flag's key names the word, and its hold's 100-character source copies that key:
    # a longer word would make the nightly sweep fail for every organization.
    client.force_login(alice)
    data = {"usage_cap": 3, "usage_window_days": 90, "cooldown_days": 14, "incentive_window_days": 180}
    assert client.post(url("settings"), {**data, "incentive_words": "gift card"}).status_code == 302
    response = client.post(url("settings"), {**data, "incentive_words": "gift card\n" + "x" * 61})
    assert response.status_code == 400
    assert "at most 60 characters" in response.content.decode()
    assert in_org(org_a, lambda: ReferenceSettings.objects.get()).incentive_words == "gift card"
    assert client.post(url("settings"), {**data, "incentive_words": "y" * 60}).status_code == 302
