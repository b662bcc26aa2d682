"""The customer's consent page by token, GET and POST: p50, p95 and queries per request (issue 6).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/refmgr_bench_small_x DJANGO_SETTINGS_MODULE=bench.settings \\
        .venv/bin/python -m bench.consent_page --requests 200

:func:`measure` runs inside a Django the harness has set up (settings, database, connected as the
application role so row-level security is measured). It **writes**: setup creates consent requests
and links through ``consent.services`` in the median organization, and the POSTs answer and revoke
them (ledger events, states, grants, outbox rows). Run it on a benchmark copy, never on a database
others read.

What is timed, each through Django's test ``Client`` (the whole middleware stack, templates, RLS):

- **GET, repeat view** of a link with an open question: the page as a customer reloads it; the
  ledger already holds its ``notice_served``, so nothing is written. Target: p95 ≤ 20 ms, ≤ 4 queries.
- **GET, first view** from a new client (another browser): records the notice under the ledger
  lock. Reported beside it, with its own query count.
- **POST answer** (grant of one scope) and **POST revoke** (of that grant), alternately on
  different references, so every POST changes something. Each appends to the hash-chained ledger;
  the ≤ 4 target cannot hold for them (docs/consent.md, "What the page costs").

Timings run without a query log; queries per request are counted in a separate pass with
``CaptureQueriesContext`` (its bookkeeping would otherwise be in the timings). The public pages'
rate limit (``RATELIMIT_PUBLIC``, 60/m per address in production) would refuse all but the first
60 requests from the client's one address. ``bench.settings`` raises it to a million a minute, which
keeps its cache round trip in the measurement; under any setting that could refuse this run's
requests, :func:`measure` turns it off with ``override_settings(RATELIMIT_PUBLIC="")``, as the test
settings do. CSRF is not checked by the
test client (its default), which costs one cookie comparison in production.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.database import median_organization
from bench.results import Result, percentile

SECTION = "consent page"
TARGET = "p95 ≤ 20 ms, ≤ 4 queries"
P95_LIMIT_MS = 20.0
QUERY_LIMIT = 4
SCOPE = "call"  # an individual scope with no material to fingerprint: asked of the advocate only
ADDRESS = "192.0.2.10"


@dataclass
class Setup:
    organization: Any
    question_token: str  # a link whose request is still open (the repeat-view page)
    answers: list[tuple[str, str]]  # (token, manage token) per reference: answered, then revoked


def _setup(count: int) -> Setup:
    """Requests and links with known tokens, made through the services as the app makes them."""
    from consent.services import consent_link_issue, consent_request_create
    from references.models import Reference
    from refmgr.tenancy.context import tenant_context

    organization = median_organization()
    with tenant_context(organization):
        references = list(
            Reference.objects.filter(status="active", advocate__isnull=False, advocate__requests_paused=False)
            .select_related("advocate", "account")
            .order_by("id")[: count + 1]
        )
        if len(references) < count + 1:
            raise RuntimeError(f"{organization.slug} has {len(references)} usable references; {count + 1} needed")
        tokens: list[tuple[str, str]] = []
        for reference in references:
            consent_request = consent_request_create(
                organization=organization, actor=None, reference=reference, contact=reference.advocate, scopes=[SCOPE]
            )
            _link, token = consent_link_issue(
                organization=organization, contact=reference.advocate, consent_request=consent_request
            )
            _manage, manage_token = consent_link_issue(organization=organization, contact=reference.advocate)
            tokens.append((token, manage_token))
    return Setup(organization=organization, question_token=tokens[0][0], answers=tokens[1:])


def _timed(call: Callable[[], Any], expect: int) -> float:
    started = time.perf_counter_ns()
    response = call()
    elapsed = (time.perf_counter_ns() - started) / 1e6
    if response.status_code != expect:
        raise RuntimeError(f"expected {expect}, got {response.status_code}: {response.content[:300]!r}")
    return elapsed


def _queries(call: Callable[[], Any]) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        call()
    return len(captured.captured_queries)


def _state_id(setup: Setup, token: str) -> int:
    from consent.models import ConsentState
    from consent.selectors import consent_link_lookup
    from refmgr.tenancy.context import tenant_context

    link = consent_link_lookup(token=token).link
    if link is None or link.consent_request is None:
        raise RuntimeError("the answered link no longer opens")
    with tenant_context(setup.organization):
        return ConsentState.objects.get(
            reference_id=link.consent_request.reference_id, scope=SCOPE, party="individual"
        ).pk


def _result(name: str, samples: list[float], queries: list[int], *, judged: bool, note: str) -> Result:
    p95 = percentile(samples, 0.95)
    most = max(queries)
    return Result(
        section=SECTION,
        name=name,
        p50_ms=percentile(samples, 0.5),
        p95_ms=p95,
        value=float(most),
        unit="queries",
        samples=len(samples),
        target=TARGET if judged else "",
        met=(p95 <= P95_LIMIT_MS and most <= QUERY_LIMIT) if judged else None,
        note=note,
        extra={"queries_max": float(most), "queries_median": float(statistics.median(queries))},
    )


def measure(*, requests: int = 200) -> list[Result]:
    """Time the consent page's GET (repeat and first view) and POST (grant, revoke) ``requests`` times each."""
    from django.conf import settings
    from django.test import Client, override_settings

    from refmgr.common.ratelimit import parse_rate

    posts = max(2, requests // 2)  # grants and revokes: ``requests`` POSTs in all
    limit = parse_rate(getattr(settings, "RATELIMIT_PUBLIC", ""))
    enough = limit is None or limit[0] >= 10 * (requests + posts + 100)  # every request of a window, amply
    with override_settings(RATELIMIT_PUBLIC=settings.RATELIMIT_PUBLIC if enough else ""):
        setup = _setup(posts + 2)  # two spare references for the query-count pass
        page = f"/consent/{setup.question_token}/"
        client = Client(REMOTE_ADDR=ADDRESS, HTTP_USER_AGENT="bench/consent-page")
        # Warm-up: the first view records the notice; templates, URL resolver and connection get ready.
        for _ in range(10):
            client.get(page)

        repeat = [_timed(lambda: client.get(page), 200) for _ in range(requests)]
        repeat_queries = [_queries(lambda: client.get(page)) for _ in range(5)]

        # Each new browser is a first serving: the page writes its notice under the ledger lock.
        first: list[float] = []
        first_queries: list[int] = []
        for n in range(min(requests, 50)):
            browser = Client(REMOTE_ADDR=ADDRESS, HTTP_USER_AGENT=f"bench/first-view-{n}")
            first.append(_timed(lambda browser=browser: browser.get(page), 200))
        for n in range(3):
            browser = Client(REMOTE_ADDR=ADDRESS, HTTP_USER_AGENT=f"bench/first-view-count-{n}")
            first_queries.append(_queries(lambda browser=browser: browser.get(page)))

        grants: list[float] = []
        revokes: list[float] = []
        answer = {"action": "grant", "scopes": [SCOPE], "valid_months": "12", "publication": "internal_only"}
        spare = setup.answers[-2:]
        for token, manage in setup.answers[:-2]:
            grants.append(_timed(lambda token=token: client.post(f"/consent/{token}/answer/", answer), 302))
            state_id = _state_id(setup, token)
            revokes.append(
                _timed(
                    lambda manage=manage, state_id=state_id: client.post(
                        f"/consent/{manage}/revoke/", {"state_id": state_id}
                    ),
                    302,
                )
            )
        grant_queries: list[int] = []
        revoke_queries: list[int] = []
        for token, manage in spare:
            grant_queries.append(_queries(lambda token=token: client.post(f"/consent/{token}/answer/", answer)))
            state_id = _state_id(setup, token)
            revoke_queries.append(
                _queries(
                    lambda manage=manage, state_id=state_id: client.post(
                        f"/consent/{manage}/revoke/", {"state_id": state_id}
                    )
                )
            )

    org = setup.organization.slug
    why_posts = (
        "appends to the hash-chained ledger: lock the request, lock the ledger head, insert the events, "
        "move the head, lock and write the states, grant or withdraw the scope in references (with its "
        "audit row), outbox and audit rows; see docs/consent.md 'What the page costs'"
    )
    return [
        _result(
            f"GET by token, repeat view ({org})",
            repeat,
            repeat_queries,
            judged=True,
            note="the notice is already in the ledger: link, lists, nothing written",
        ),
        _result(
            f"GET by token, first view from a new client ({org})",
            first,
            first_queries,
            judged=False,
            note="records notice_served once per link, client and content, under the ledger lock",
        ),
        _result(f"POST grant, one scope ({org})", grants, grant_queries, judged=True, note=why_posts),
        _result(f"POST revoke, one consent ({org})", revokes, revoke_queries, judged=True, note=why_posts),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    for result in measure(requests=args.requests):
        verdict = "" if result.met is None else ("met" if result.met else "MISSED")
        print(
            f"{result.name:<55} p50 {result.p50_ms:6.2f} ms  p95 {result.p95_ms:6.2f} ms  "
            f"{int(result.value or 0):>3} queries  {verdict}"
        )


if __name__ == "__main__":
    main()
