"""The customer's consent page at /consent/<token>/: GET changes nothing, every action is a checked POST."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from consent import ledger
from consent.models import ConsentEvent, ConsentLink, ConsentRequest, ConsentRequestStatus, ConsentState
from consent.public_views import text_diff
from references.models import Contact, ReferenceScopeGrant, UsageEvent, UsageRequest
from refmgr.tenancy.context import tenant_context
from tests.factories.consent import QUOTE, ConsentCase, ask, ask_and_grant, consent_case
from tests.factories.references import ReferenceFactory

# Each test comes from its own address, so the per-address rate limit never carries over between tests
# (and no test needs to clear a cache that, on Redis, other parts of the suite share).
_addresses = itertools.count(1)


@pytest.fixture
def client() -> Client:
    n = next(_addresses)
    return Client(REMOTE_ADDR=f"198.51.{n // 250}.{n % 250 + 1}")


def page(token: str) -> str:
    return f"/consent/{token}/"


def snapshot(case: ConsentCase) -> dict[str, Any]:
    """Everything a visit must not change: states, grants, requests, usage, the contact, and the ledger."""
    with tenant_context(case.organization):
        return {
            "states": list(ConsentState.objects.order_by("pk").values()),
            "grants": list(ReferenceScopeGrant.objects.order_by("pk").values()),
            "requests": list(ConsentRequest.objects.order_by("pk").values()),
            "usage": list(UsageRequest.objects.order_by("pk").values()),
            "contact": Contact.objects.filter(pk=case.advocate.pk).values().get(),
            "events": list(ConsentEvent.objects.exclude(kind="notice_served").order_by("sequence").values("pk")),
        }


def events(case: ConsentCase, kind: str) -> int:
    with tenant_context(case.organization):
        return ConsentEvent.objects.filter(kind=kind).count()


def usable(case: ConsentCase) -> set[str]:
    from references.selectors import reference_usable_scopes

    with tenant_context(case.organization):
        found = reference_usable_scopes(organization=case.organization, reference_ids=[case.reference.pk])
    return found.get(case.reference.pk, set())


def grant_post(client: Client, token: str, *scopes: str, **extra: str) -> Any:
    data = {"action": "grant", "scopes": list(scopes), "valid_months": "12", "publication": "attributed", **extra}
    return client.post(f"/consent/{token}/answer/", data)


# --- GET --------------------------------------------------------------------------------


def test_it_changes_nothing_on_get_but_records_the_notice(client, org_a) -> None:
    case = consent_case(org_a)
    _request, _link, token = ask(case, "quote", "logo")
    before = snapshot(case)
    response = client.get(page(token))
    assert response.status_code == 200
    assert snapshot(case) == before
    assert events(case, "notice_served") == 1
    with tenant_context(org_a):
        notice = ConsentEvent.objects.get(kind="notice_served")
    assert notice.policy_version == 1
    assert notice.ip_prefix.startswith("198.51.")
    assert notice.text_hash  # the fingerprint of the quote and logo shown


def test_it_records_each_notice_once_per_client_and_content(client, org_a) -> None:
    from privacy.services import privacy_policy_draft_create, privacy_policy_publish

    case = consent_case(org_a)
    _request, _link, token = ask(case, "quote")
    for _ in range(3):  # reloads, and a mail scanner's re-fetches, from the same client
        assert client.get(page(token)).status_code == 200
    assert events(case, "notice_served") == 1
    grant_post(client, token, "quote")
    client.get(page(token))  # the reload after the answer shows the same material
    assert events(case, "notice_served") == 1
    # Another browser is another first serving: it is evidence of its own.
    other_browser = Client(REMOTE_ADDR=client.defaults["REMOTE_ADDR"], HTTP_USER_AGENT="Phone browser")
    other_browser.get(page(token))
    other_browser.get(page(token))
    assert events(case, "notice_served") == 2
    # A new policy version in force is new content: served once more to each client that sees it.
    with tenant_context(org_a):
        draft = privacy_policy_draft_create(
            organization=org_a,
            actor=None,
            title="Privacy policy",
            body="v2",
            summary_of_changes="Longer retention.",
            effective_date=timezone.localdate(),
        )
        privacy_policy_publish(organization=org_a, policy=draft, actor=None)
    assert "version 2" in client.get(page(token)).content.decode()
    client.get(page(token))
    assert events(case, "notice_served") == 3
    with tenant_context(org_a):
        versions = list(
            ConsentEvent.objects.filter(kind="notice_served")
            .order_by("sequence")
            .values_list("policy_version", flat=True)
        )
        assert ledger.ledger_verify(organization=org_a).ok
    assert versions == [1, 1, 2]


def test_it_shows_who_asks_each_scope_the_exact_text_and_the_policy(client, org_a, carol) -> None:
    carol.first_name, carol.last_name = "Carol", "Lin"
    carol.save()
    case = consent_case(org_a)
    with tenant_context(org_a):
        from consent.services import consent_link_issue, consent_request_create

        request = consent_request_create(
            organization=org_a,
            actor=carol,
            reference=case.reference,
            contact=case.advocate,
            scopes=["quote", "logo"],
            message="We are launching a new <site> page.",
        )
        _link, token = consent_link_issue(organization=org_a, contact=case.advocate, consent_request=request)
    html = client.get(page(token)).content.decode()
    assert "Carol Lin at Acme Analytics" in html
    assert "We are launching a new &lt;site&gt; page." in html
    assert QUOTE in html
    assert "may appear on our website and in presentations" in html  # the logo, in plain words
    assert 'href="/o/acme/privacy/"' in html
    assert "version 1" in html
    assert 'name="scopes"' in html
    assert " checked" not in html.split('name="publication"')[0]
    assert 'value="internal_only" id="publication-internal_only" checked' in html
    assert '<option value="12" selected>' in html
    assert 'value="grant">Grant</button>' in html
    assert 'value="decline">Decline</button>' in html
    grant_btn = html.split('value="grant"')[0].rsplit("<button", 1)[1]
    decline_btn = html.split('value="decline"')[0].rsplit("<button", 1)[1]
    assert grant_btn.replace("grant", "") == decline_btn.replace("decline", "")  # the same weight


def test_it_sends_private_headers(client, org_a) -> None:
    case = consent_case(org_a)
    _request, _link, token = ask(case, "quote")
    for response in (client.get(page(token)), client.get(page("1." + "x" * 43)), grant_post(client, token, "quote")):
        assert response["Cache-Control"] == "no-store"
        assert response["Referrer-Policy"] == "same-origin"  # never to another site; see public_views
        assert "noindex" in response["X-Robots-Tag"]


# --- Answering --------------------------------------------------------------------------


def test_it_grants_what_was_ticked_and_declines_the_rest(client, org_a) -> None:
    case = consent_case(org_a)
    _request, _link, token = ask(case, "quote", "logo")
    response = grant_post(client, token, "quote")
    assert response.status_code == 302
    assert response["Location"] == page(token)
    assert usable(case) == {"quote"}
    assert events(case, "granted") == 1
    assert events(case, "declined") == 1
    html = client.get(page(token)).content.decode()
    assert "your answer is recorded" in html
    assert "Manage my consent" in html
    assert 'value="grant"' not in html


def test_it_declines_everything(client, org_a) -> None:
    case = consent_case(org_a)
    _request, _link, token = ask(case, "quote", "logo")
    response = client.post(f"/consent/{token}/answer/", {"action": "decline", "scopes": ["quote"]})
    assert response.status_code == 302
    assert events(case, "declined") == 2
    assert events(case, "granted") == 0
    assert usable(case) == set()


def test_it_refuses_a_scope_that_was_not_asked(client, org_a) -> None:
    case = consent_case(org_a)
    _request, _link, token = ask(case, "quote")
    before = snapshot(case)
    response = grant_post(client, token, "quote", "logo")
    assert response.status_code == 400
    assert "You were not asked about that use." in response.content.decode()
    assert snapshot(case) == before
    assert events(case, "granted") == 0


def test_it_refuses_an_empty_grant_and_a_longer_period(client, org_a) -> None:
    case = consent_case(org_a)
    _request, _link, token = ask(case, "quote")
    response = grant_post(client, token)
    assert response.status_code == 400
    assert 'id="scopes-errors"' in response.content.decode()
    response = grant_post(client, token, "quote", valid_months="48")
    assert response.status_code == 400
    assert 'aria-describedby="valid-months-help valid-months-errors"' in (response.content.decode())
    assert events(case, "granted") == 0


def test_a_double_submission_records_one_answer(client, org_a) -> None:
    case = consent_case(org_a)
    _request, _link, token = ask(case, "quote")
    first, second = grant_post(client, token, "quote"), grant_post(client, token, "quote")
    assert first.status_code == second.status_code == 302
    assert events(case, "granted") == 1
    assert "You have already answered this request." in client.get(page(token)).content.decode()


def test_it_enforces_csrf(org_a) -> None:
    case = consent_case(org_a)
    _request, _link, token = ask(case, "quote")
    strict = Client(enforce_csrf_checks=True, REMOTE_ADDR="192.0.2.77")
    assert grant_post(strict, token, "quote").status_code == 403
    assert strict.post(f"/consent/{token}/revoke-all/").status_code == 403
    assert events(case, "granted") == 0
    # With the token from the page, the same post goes through.
    strict.get(page(token))
    csrf = strict.cookies["csrftoken"].value
    response = grant_post(strict, token, "quote", csrfmiddlewaretoken=csrf)
    assert response.status_code == 302
    assert events(case, "granted") == 1


def test_actions_are_post_only(client, org_a) -> None:
    case = consent_case(org_a)
    _request, _link, token = ask(case, "quote")
    for action in ("answer", "revoke", "revoke-all", "pause"):
        assert client.get(f"/consent/{token}/{action}/").status_code == 405
    assert client.post(page(token)).status_code == 405


# --- Bad links --------------------------------------------------------------------------


def test_bad_links_get_one_friendly_page_and_change_nothing(client, org_a) -> None:
    case = consent_case(org_a)
    _old, _old_link, superseded = ask(case, "quote")
    _request, _link, token = ask(case, "quote")  # replaces the first request
    _r, expired_link, expired = ask(case, "quote", "logo")
    with tenant_context(org_a):
        ConsentLink.objects.filter(pk=expired_link.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
        assert ConsentRequest.objects.filter(status=ConsentRequestStatus.SUPERSEDED).count() == 2
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    before = snapshot(case)
    bodies = set()
    for bad in (tampered, "1.unknown", f"{org_a.pk}." + "x" * 43, superseded, expired, "999." + token.split(".")[1]):
        for response in (
            client.get(page(bad)),
            grant_post(client, bad, "quote"),
            client.post(f"/consent/{bad}/pause/", {"paused": "1"}),
        ):
            assert response.status_code == 404
            body = response.content.decode()
            assert "This link cannot be used" in body
            assert org_a.name not in body
            assert org_a.slug not in body
            bodies.add(body.split("<main")[1].split("</main>")[0])
    assert len(bodies) == 1  # the same words, whatever went wrong
    assert snapshot(case) == before
    assert events(case, "notice_served") == 0


# --- Managing -----------------------------------------------------------------------------


def test_it_revokes_one_consent_then_all(client, org_a) -> None:
    case = consent_case(org_a)
    link = ask_and_grant(case, "quote", "logo", "call")
    _manage_link, token = _manage_link_for(case)
    with tenant_context(org_a):
        logo = ConsentState.objects.get(scope="logo")
    html = client.get(page(token)).content.decode()
    assert "Revoke all" in html
    assert "Pause all requests" in html
    response = client.post(f"/consent/{token}/revoke/", {"state_id": logo.pk})
    assert response.status_code == 302
    assert usable(case) == {"quote", "call"}
    assert "Withdrawn: Logo." in client.get(page(token)).content.decode()
    client.post(f"/consent/{token}/revoke-all/")
    assert usable(case) == set()
    assert events(case, "revoked") == 3
    assert link.pk != _manage_link.pk


def _manage_link_for(case: ConsentCase) -> tuple[ConsentLink, str]:
    """A link with no question, as a confirmation email carries."""
    from consent.services import consent_link_issue

    with tenant_context(case.organization):
        return consent_link_issue(organization=case.organization, contact=case.advocate)


def test_it_pauses_and_resumes_requests(client, org_a) -> None:
    case = consent_case(org_a)
    _link, token = _manage_link_for(case)
    client.post(f"/consent/{token}/pause/", {"paused": "1"})
    with tenant_context(org_a):  # row-level security: reads happen inside the organization
        case.advocate.refresh_from_db()
    assert case.advocate.requests_paused
    assert "Resume requests" in client.get(page(token)).content.decode()
    client.post(f"/consent/{token}/pause/", {"paused": "1"})  # twice is still one event
    client.post(f"/consent/{token}/pause/", {"paused": "0"})
    with tenant_context(org_a):
        case.advocate.refresh_from_db()
    assert not case.advocate.requests_paused
    assert events(case, "paused") == 1
    assert events(case, "resumed") == 1


def test_it_hides_other_tenants_consents(client, org_a, org_b) -> None:
    mine = consent_case(org_a)
    theirs = consent_case(org_b)
    ask_and_grant(theirs, "quote")
    ask_and_grant(mine, "quote")
    _link, token = _manage_link_for(mine)
    with tenant_context(org_b):
        their_state = ConsentState.objects.get()
    response = client.post(f"/consent/{token}/revoke/", {"state_id": their_state.pk})
    assert response.status_code == 302
    assert usable(theirs) == {"quote"}
    assert usable(mine) == {"quote"}
    assert events(theirs, "revoked") == 0
    assert events(mine, "revoked") == 0
    html = client.get(page(token)).content.decode()
    assert theirs.reference.title not in html
    assert org_b.name not in html


def test_it_lists_every_use_without_the_deal(client, org_a, bob) -> None:
    case = consent_case(org_a)
    ask_and_grant(case, "quote")
    with tenant_context(org_a):
        usage = UsageRequest.objects.create(
            reference=case.reference, scope="quote", requested_by=bob, opportunity_name="Globex secret deal"
        )
        UsageEvent.objects.create(
            reference=case.reference,
            contact=case.advocate,
            usage_request=usage,
            kind="completed",
            scope="quote",
            actor=bob,
            salesperson_label="Bob Salesman",
            opportunity_name="Globex secret deal",
        )
    _link, token = _manage_link_for(case)
    html = client.get(page(token)).content.decode()
    assert "Used with a prospective customer" in html
    assert case.reference.title in html
    assert "Globex" not in html
    assert "Bob Salesman" not in html


def test_rewording_shows_the_change(client, org_a, carol) -> None:
    from consent.services import consent_link_issue, consent_request_send_proposal
    from references.services import reference_asset_update

    case = consent_case(org_a)
    ask_and_grant(case, "quote")
    with tenant_context(org_a):
        asset = case.reference.assets.get(kind="quote")
        reference_asset_update(
            organization=org_a, asset=asset, actor=carol, text="Refmgr cut our <b>prep</b> from days to minutes."
        )
        proposal = ConsentRequest.objects.get(status=ConsentRequestStatus.PROPOSED)
        consent_request_send_proposal(organization=org_a, actor=carol, consent_request=proposal)
        _link, token = consent_link_issue(organization=org_a, contact=case.advocate, consent_request=proposal)
    html = client.get(page(token)).content.decode()
    assert "<del>" in html
    assert "&lt;b&gt;prep&lt;/b&gt;" in html
    assert "<b>" not in html


def test_text_diff_escapes_everything() -> None:
    diff = str(text_diff("a <i>b</i> c", "a <script>x</script> c"))
    assert "<script>" not in diff
    assert "&lt;script&gt;x&lt;/script&gt;" in diff
    assert diff.count("<del>") == 1
    assert diff.count("<ins>") == 1


# --- Limits and cost ----------------------------------------------------------------------


@override_settings(RATELIMIT_PUBLIC="3/m")
def test_it_limits_requests_per_address(org_a) -> None:
    case = consent_case(org_a)
    _request, _link, token = ask(case, "quote")
    one, other = Client(REMOTE_ADDR="192.0.2.10"), Client(REMOTE_ADDR="192.0.2.11")
    assert [one.get(page(token)).status_code for _ in range(3)] == [200, 200, 200]
    limited = one.get(page(token))
    assert limited.status_code == 429
    assert "Too many requests" in limited.content.decode()
    assert int(limited["Retry-After"]) >= 1
    assert limited["Cache-Control"] == "no-store"
    assert one.get(page("1." + "y" * 43)).status_code == 429  # guessing tokens counts too
    assert grant_post(one, token, "quote").status_code == 429
    assert events(case, "granted") == 0
    assert events(case, "notice_served") == 1  # three views from one client, one notice; the refused none
    assert other.get(page(token)).status_code == 200


def _grants(case: ConsentCase, count: int, salesperson: Any) -> str:
    """``count`` current consents of the case's advocate (one reference each), and a use of each."""
    with tenant_context(case.organization):
        references = [case.reference] + [
            ReferenceFactory(organization=case.organization, account=case.reference.account, advocate=case.advocate)
            for _ in range(count - 1)
        ]
    for reference in references:
        ask_and_grant(ConsentCase(case.organization, reference, case.advocate), "call")
    with tenant_context(case.organization):
        for reference in references:
            usage = UsageRequest.objects.create(
                reference=reference, scope="call", requested_by=salesperson, opportunity_name="x"
            )
            UsageEvent.objects.create(
                reference=reference,
                contact=case.advocate,
                usage_request=usage,
                kind="approved",
                scope="call",
                salesperson_label="s",
                opportunity_name="x",
            )
    return _manage_link_for(case)[1]


# Issue 6's budget for the page: at most four queries (on PostgreSQL each carries its row-level
# security prefix in the same round trip). A repeat view of a manage link: the link with its
# organization, policy, periods and last notice (1), the consents (2), the uses (3). A first view
# also records the notice under the ledger lock: SAVEPOINT, lock the head, check again, insert,
# move the head, RELEASE (the savepoint pair is the test's transaction; a real request commits instead).
REPEAT_VIEW_QUERIES = 3
FIRST_VIEW_QUERIES = REPEAT_VIEW_QUERIES + 6


def test_the_page_costs_the_same_queries_whatever_it_lists(client, org_a, bob) -> None:
    counts: dict[int, tuple[int, int]] = {}
    for count in (2, 20):
        case = consent_case(org_a, quote="")  # a new account and person each time
        token = _grants(case, count, bob)
        with CaptureQueriesContext(connection) as first:
            client.get(page(token))
        with CaptureQueriesContext(connection) as repeat:
            html = client.get(page(token)).content.decode()
        assert html.count(">Revoke<") == count
        assert html.count("Approved for a prospective customer") == count
        counts[count] = (len(first.captured_queries), len(repeat.captured_queries))
    assert counts[2] == counts[20] == (FIRST_VIEW_QUERIES, REPEAT_VIEW_QUERIES), counts


def test_the_question_and_the_answer_cost_at_most_four_queries(client, org_a, carol) -> None:
    case = consent_case(org_a)
    _request, _link, token = ask(case, "quote", "logo", actor=carol)  # the asker's name is joined in
    client.get(page(token))
    with CaptureQueriesContext(connection) as question:
        html = client.get(page(token)).content.decode()
    assert 'value="grant"' in html
    assert len(question.captured_queries) == 3, [q["sql"] for q in question.captured_queries]
    assert events(case, "notice_served") == 1
    grant_post(client, token, "quote")
    with CaptureQueriesContext(connection) as answered:
        html = client.get(page(token)).content.decode()
    assert "Your answer" in html
    # The answered request's events are the fourth.
    assert len(answered.captured_queries) == 4, [q["sql"] for q in answered.captured_queries]
    assert events(case, "notice_served") == 1


# What an answer and a withdrawal cost. They append to the hash-chained ledger, so they cannot fit
# in four: see docs/consent.md "What the page costs" for the statements and why each is needed.
# Pinned, so a change shows up here; the savepoints of the services' nested transactions are counted.
GRANT_TWO_SCOPES_QUERIES = 41
REVOKE_ONE_QUERIES = 20


def test_an_answer_and_a_withdrawal_cost_a_pinned_number_of_queries(client, org_a) -> None:
    case = consent_case(org_a)
    _request, _link, token = ask(case, "quote", "logo")
    client.get(page(token))
    with CaptureQueriesContext(connection) as grant:
        assert grant_post(client, token, "quote", "logo").status_code == 302
    assert usable(case) == {"quote", "logo"}
    _manage_link, manage = _manage_link_for(case)
    with tenant_context(org_a):
        logo = ConsentState.objects.get(scope="logo")
    with CaptureQueriesContext(connection) as revoke:
        assert client.post(f"/consent/{manage}/revoke/", {"state_id": logo.pk}).status_code == 302
    assert usable(case) == {"quote"}
    assert (len(grant.captured_queries), len(revoke.captured_queries)) == (
        GRANT_TWO_SCOPES_QUERIES,
        REVOKE_ONE_QUERIES,
    ), ([q["sql"][:120] for q in grant.captured_queries], [q["sql"][:120] for q in revoke.captured_queries])


@override_settings(RATELIMIT_PUBLIC="2/m")
def test_the_privacy_page_is_limited_apart_from_the_consent_page(org_a) -> None:
    case = consent_case(org_a)
    _request, _link, token = ask(case, "quote")
    visitor = Client(REMOTE_ADDR="192.0.2.20")
    assert [visitor.get("/o/acme/privacy/").status_code for _ in range(3)] == [200, 200, 429]
    assert visitor.get(page(token)).status_code == 200  # a separate allowance
