"""The catalogue page and the references API list, in process, with their floors (issue 6, point 1).

    python -m bench.pages setup   --plan PLAN.json                      # choose orgs, filters, deep pages
    python -m bench.pages measure --plan PLAN.json --out RESULTS.json   # pages + floors (RLS on)
    python -m bench.pages rls     --plan PLAN.json --out RESULTS.json   # the same pages without the policies

*Rls* times each page again in alternating rounds with the policies binding (the application role) and
not binding (``SET ROLE NONE``: the owner, a superuser), on one connection, so that the machine's load
drifts hit both sides alike; the p50 difference is the policies' cost.

All three run with ``DJANGO_SETTINGS_MODULE=bench.settings`` (production-like, as the application role,
see that module) and ``DATABASE_URL`` naming the bench database; ``bench/run.py`` starts them.

*Setup* picks the median organization (by reference count) and the largest, creates an API token and a
signed-in session for each one's ``<slug>-sales1``, chooses a text query and two filters from the
organization's own data (the most frequent product label and usable scope, then the rarest long-tail
search term that still gives more than two pages with them, see ``CANDIDATE_WORDS``), and reaches a deep
page by following the pages' own ``next``
links (HTML ``<a rel="next">``, the API's ``next``) up to ``--depth``; the depth reached is recorded.
It writes everything to the plan file, which the load stage (gunicorn) reads too.

*Measure* times each page with Django's test ``Client`` (the full middleware stack, templates, DRF,
row-level security) at concurrency 1 after a warm-up, counts its queries, captures its statements and
times the floors on the same statements: bare SQL (the captured statements, each with the prefix the
app sent, replayed on the driver's cursor), the plain view (the same replay behind the middleware,
``JsonResponse`` of the rows) and the minimal view.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from bench.generate import search_term
from bench.results import Result, percentile

PAGE_P50_MS = 8.0
PAGE_P95_MS = 25.0
PLAIN_RATIO = 2.5
ABOVE_SQL_MS = 10.0
PAGE_TARGET = f"p50 ≤ {PAGE_P50_MS:g} ms, p95 ≤ {PAGE_P95_MS:g} ms"
KINDS = ("catalogue", "api")
# Search candidates: the summaries' long-tail terms (bench/generate.py TERMS, Zipf-distributed, from the
# most common down) and, last, the common words every summary draws from. Setup keeps the rarest one
# that still fills more than two pages with the filters, as a real search would be selective; where
# none does (a median organization has a few hundred references), the one with the most matches.
CANDIDATE_WORDS = (*(search_term(rank) for rank in range(40, 0, -1)), "integration", "migration", "platform")
MIN_DEEP_MATCHES = 41
_NEXT_LINK = re.compile(r"<a\b[^>]*>", re.I)
_HREF = re.compile(r'\bhref="([^"]*)"', re.I)


@dataclass
class Page:
    """One measured URL: an organization's catalogue or API list, first or deep page."""

    key: str
    kind: str
    organization: str
    references: int
    which: str  # "first" or "deep"
    path: str
    depth: int = 1
    matches: int | None = None

    @property
    def label(self) -> str:
        page = "first page" if self.which == "first" else f"page {self.depth}"
        return f"{self.organization} ({self.references:,} refs) {page}"


@dataclass
class Plan:
    pages: list[Page] = field(default_factory=list)
    sessions: dict[str, str] = field(default_factory=dict)  # slug -> sessionid cookie value
    tokens: dict[str, str] = field(default_factory=dict)  # slug -> API key
    filters: dict[str, dict[str, str]] = field(default_factory=dict)
    capture_file: str = ""

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(asdict(self), handle, indent=1)

    @classmethod
    def load(cls, path: str) -> Plan:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        data["pages"] = [Page(**page) for page in data["pages"]]
        return cls(**data)


# --- Timing -----------------------------------------------------------------------------------------


def time_calls(call: Callable[[], Any], *, requests: int, warmup: int) -> list[float]:
    """``call`` ``warmup`` times untimed, then ``requests`` times; each duration in milliseconds."""
    for _ in range(warmup):
        call()
    samples: list[float] = []
    for _ in range(requests):
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / 1e6)
    return samples


def p50_p95(samples: list[float]) -> tuple[float, float]:
    return percentile(samples, 0.5), percentile(samples, 0.95)


# --- Setup ------------------------------------------------------------------------------------------


def _organizations(largest: str, median: str | None) -> list[tuple[Any, int]]:
    """(organization, reference count) for the median and the largest organization, median first."""
    from bench.database import organizations_by_size

    by_size = organizations_by_size()
    chosen = next(row for row in by_size if row[0].slug == largest)
    middle = by_size[len(by_size) // 2] if median is None else next(row for row in by_size if row[0].slug == median)
    return [middle, chosen]


def _choose_filters(organization: Any, user: Any) -> tuple[dict[str, str], int]:
    """A product, a usable scope and a search word from the organization's own data, and the matches."""
    from django.db.models import Count
    from django.utils import timezone

    from references.models import LabelKind, ReferenceLabel, ReferenceScopeGrant
    from references.selectors import CatalogueFilters, reference_catalogue

    product = (
        ReferenceLabel.objects.filter(kind=LabelKind.PRODUCT)
        .values_list("value")
        .annotate(n=Count("id"))
        .order_by("-n", "value")
        .first()
    )
    scope = (
        ReferenceScopeGrant.objects.filter(granted_until__gt=timezone.now())
        .values_list("scope")
        .annotate(n=Count("id"))
        .order_by("-n", "scope")
        .first()
    )
    filters = CatalogueFilters(product=product[0] if product else "", scope=scope[0] if scope else "")
    # Counted only up to the threshold (LIMIT), rarest term first, stopping at the first deep enough:
    # a full count of a common word in the largest organization takes seconds, forty times over.
    counts: dict[str, int] = {}
    word = ""
    for candidate in CANDIDATE_WORDS:
        matching = reference_catalogue(organization=organization, user=user, query=candidate, filters=filters)
        counts[candidate] = matching[:MIN_DEEP_MATCHES].count()
        if counts[candidate] >= MIN_DEEP_MATCHES:
            word = candidate
            counts[candidate] = matching.count()
            break
    if not word:
        word = max(CANDIDATE_WORDS, key=lambda w: (counts[w], -CANDIDATE_WORDS.index(w)))
    return {"q": word, "product": filters.product, "scope": filters.scope}, counts[word]


def _next_html(content: bytes, current: str) -> str | None:
    for tag in _NEXT_LINK.findall(content.decode()):
        if re.search(r'\brel="next"', tag):
            href = _HREF.search(tag)
            if href:
                return _path(urljoin(current, html.unescape(href.group(1))))
    return None


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _follow(get: Callable[[str], Any], first: str, kind: str, depth: int) -> tuple[str, int]:
    """Follow ``next`` from ``first`` until page ``depth`` or the last page; (its path, its number)."""
    path, number, seen = first, 1, {first}
    previous = first
    while number < depth:
        response = get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code} while following next links")
        following = _next_html(response.content, path) if kind == "catalogue" else response.json().get("next")
        if not following:
            break
        if _path(following) in seen:
            # A next link to a page already seen: the list went round (a pagination bug); stop and say so.
            number -= 1
            print(
                f"    WARNING: {kind}: page {number + 1} links back to itself (a pagination bug); deep page = {number}"
            )
            return previous, number
        previous, path, number = path, _path(following), number + 1
        seen.add(path)
    return path, number


def setup(*, largest: str, median: str | None, depth: int, capture_file: str) -> Plan:
    from urllib.parse import urlencode

    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    from refmgr.tenancy.context import tenant_context
    from refmgr.tenancy.models import ApiToken, Membership
    from refmgr.tenancy.services import api_token_create

    plan = Plan(capture_file=capture_file)
    for organization, references in _organizations(largest, median):
        slug = organization.slug
        user = get_user_model().objects.get(username=f"{slug}-sales1")
        with tenant_context(organization):
            membership = Membership.objects.get(user=user, is_active=True)
            # A fresh key each run (only its hash is stored); the previous runs' tokens go.
            ApiToken.objects.filter(membership=membership, name="bench").delete()
            _, key = api_token_create(organization=organization, membership=membership, name="bench", actor=None)
            filters, matches = _choose_filters(organization, user)
        client = Client()
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        plan.sessions[slug] = client.cookies["sessionid"].value
        plan.tokens[slug] = key
        plan.filters[slug] = filters
        api_client = Client(HTTP_AUTHORIZATION=f"Token {key}")
        urls = {
            "catalogue": reverse("references:catalogue", kwargs={"organization_slug": slug}) + "?" + urlencode(filters),
            "api": "/api/v1/references/?"
            + urlencode({"search": filters["q"], "product": filters["product"], "scope": filters["scope"]}),
        }
        for kind in KINDS:
            get = client.get if kind == "catalogue" else api_client.get
            first = urls[kind]
            deep, reached = _follow(get, first, kind, depth)
            # A list of one page has no deep page: its first page is measured once.
            deep_pages = [("deep", deep, reached)] if reached > 1 else []
            for which, path, number in [("first", first, 1), *deep_pages]:
                plan.pages.append(
                    Page(
                        key=f"{kind}-{slug}-{which}",
                        kind=kind,
                        organization=slug,
                        references=references,
                        which=which,
                        path=path,
                        depth=number,
                        matches=matches,
                    )
                )
        print(f"    {slug}: {references:,} references, filters {filters} match {matches:,}", flush=True)
    return plan


# --- Measurement --------------------------------------------------------------------------------------


def _clients(plan: Plan) -> dict[tuple[str, str], Any]:
    from django.conf import settings
    from django.test import Client

    clients: dict[tuple[str, str], Any] = {}
    for slug, session in plan.sessions.items():
        html_client = Client()
        html_client.cookies[settings.SESSION_COOKIE_NAME] = session
        clients[("catalogue", slug)] = html_client
        clients[("api", slug)] = Client(HTTP_AUTHORIZATION=f"Token {plan.tokens[slug]}")
    return clients


_TRANSACTION_CONTROL = re.compile(r"^\s*(SAVEPOINT|RELEASE|ROLLBACK|BEGIN|COMMIT)\b", re.I)


def capture(client: Any, path: str) -> list[str]:
    """The statements one request sends, as sent (each with its organization prefix, parameters inlined)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"{path} answered {response.status_code}")
    # Transaction control is not the page's work and cannot be replayed outside its transaction.
    return [query["sql"] for query in queries.captured_queries if not _TRANSACTION_CONTROL.match(query["sql"])]


def _getter(client: Any, path: str) -> Callable[[], Any]:
    def get() -> Any:
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}")
        return response

    return get


def measure_pages(plan: Plan, *, requests: int, warmup: int, floors: bool) -> list[Result]:
    """Each page at concurrency 1 (and, with ``floors``, its floors and ratios)."""
    from django.db import connection
    from django.test import Client

    from bench import views

    clients = _clients(plan)
    results: list[Result] = []
    captured: dict[str, dict[str, Any]] = {}
    for page in plan.pages:
        client = clients[(page.kind, page.organization)]
        get = _getter(client, page.path)
        for _ in range(warmup):
            get()
        statements = capture(client, page.path)
        samples = time_calls(get, requests=requests, warmup=0)
        p50, p95 = p50_p95(samples)
        section = "catalogue" if page.kind == "catalogue" else "api"
        met = p50 <= PAGE_P50_MS and p95 <= PAGE_P95_MS
        results.append(
            Result(
                section,
                f"{page.label}, c=1",
                p50,
                p95,
                samples=len(samples),
                target=PAGE_TARGET,
                met=met,
                note=f"{page.matches:,} matches" if page.matches is not None else "",
                extra={"queries": float(len(statements)), "depth": float(page.depth)},
            )
        )
        print(f"    {section:<9} {page.label:<42} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms", flush=True)
        if not floors:
            continue
        captured[page.key] = {"statements": statements, "path": page.path}
        _write_capture(plan.capture_file, captured)
        views.reload_captured()
        # Floor (a): the same statements on the driver's cursor, the whole sequence per request.
        connection.ensure_connection()
        bare = time_calls(lambda s=statements: views.replay(s), requests=requests, warmup=warmup)
        # Floor (b): the same replay behind the whole middleware stack, JsonResponse of the rows.
        plain_get = _getter(Client(), f"/bench/plain/{page.key}/")
        plain = time_calls(plain_get, requests=requests, warmup=warmup)
        bare_p50, bare_p95 = p50_p95(bare)
        plain_p50, plain_p95 = p50_p95(plain)
        queries = {"queries": float(len(statements))}
        results.append(
            Result("floors", f"bare SQL: {section} {page.label}", bare_p50, bare_p95, samples=len(bare), extra=queries)
        )
        results.append(
            Result(
                "floors", f"plain view: {section} {page.label}", plain_p50, plain_p95, samples=len(plain), extra=queries
            )
        )
        ratio = p50 / plain_p50
        above = p95 - bare_p95
        results.append(
            Result(
                section,
                f"{page.label}: p50 / plain-view p50",
                value=ratio,
                unit="x",
                target=f"≤ {PLAIN_RATIO:g}x",
                met=ratio <= PLAIN_RATIO,
            )
        )
        results.append(
            Result(
                section,
                f"{page.label}: p95 - bare-SQL p95",
                value=above,
                unit="ms",
                target=f"≤ {ABOVE_SQL_MS:g} ms",
                met=above <= ABOVE_SQL_MS,
            )
        )
        print(
            f"    {'floors':<9} bare SQL p50 {bare_p50:6.2f} p95 {bare_p95:6.2f} | plain view p50 {plain_p50:6.2f} "
            f"p95 {plain_p95:6.2f} | x{ratio:.2f}, +{above:.2f} ms",
            flush=True,
        )
    if floors:
        minimal = time_calls(_getter(Client(), "/bench/ok/"), requests=requests, warmup=warmup)
        p50, p95 = p50_p95(minimal)
        results.append(
            Result("floors", "minimal view (HttpResponse('ok'), full middleware)", p50, p95, samples=len(minimal))
        )
        print(f"    {'floors':<9} minimal view p50 {p50:6.2f} p95 {p95:6.2f}", flush=True)
    return results


RLS_TARGET_MS = 1.5
RLS_ROUNDS = 10


def _policies(active: bool) -> None:
    """Make the policies bind (the application role) or not (the owner, a superuser) on this connection.

    ``SET ROLE NONE`` returns to the login role, whatever the connection started with, so both sides
    run on the same persistent connection, the same plans cache and the same moment's machine load.
    """
    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {settings.DATABASE_APP_ROLE}" if active else "SET ROLE NONE")


def rls_row(section: str, label: str, with_policy: list[float], without_policy: list[float]) -> Result:
    """The p50 difference of one page with and without the policies binding."""
    on, off = percentile(with_policy, 0.5), percentile(without_policy, 0.5)
    return Result(
        "rls",
        f"{section} {label}: p50 with - without policy",
        value=on - off,
        unit="ms",
        samples=len(with_policy),
        target=f"≤ +{RLS_TARGET_MS:g} ms",
        met=on - off <= RLS_TARGET_MS,
        note=f"p50 {on:.2f} vs {off:.2f} ms",
        extra={"with_p50_ms": on, "without_p50_ms": off},
    )


def measure_rls(plan: Plan, *, requests: int, warmup: int) -> list[Result]:
    """Each page with and without the policies, alternating in rounds so that load drifts hit both sides."""
    from django.db import connection

    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = session_user")
        (bypasses,) = cursor.fetchone()
    if not bypasses:
        return [Result("rls", "RLS cost", note="not measured: the login role does not bypass row-level security")]
    clients = _clients(plan)
    results: list[Result] = []
    chunk = max(1, requests // RLS_ROUNDS)
    try:
        for page in plan.pages:
            get = _getter(clients[(page.kind, page.organization)], page.path)
            samples: dict[bool, list[float]] = {True: [], False: []}
            for active in (True, False):
                _policies(active)
                time_calls(get, requests=0, warmup=warmup)
            for round_number in range(RLS_ROUNDS):
                for active in (True, False) if round_number % 2 == 0 else (False, True):
                    _policies(active)
                    samples[active] += time_calls(get, requests=chunk, warmup=1)
            section = "catalogue" if page.kind == "catalogue" else "api"
            results.append(rls_row(section, page.label, samples[True], samples[False]))
            print(
                f"    {'rls':<9} {section:<9} {page.label:<42} {results[-1].value:+.2f} ms ({results[-1].note})",
                flush=True,
            )
    finally:
        _policies(True)
    return results


def _write_capture(path: str, captured: dict[str, dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(captured, handle, indent=1)


def save_results(path: str, results: list[Result]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump([asdict(result) for result in results], handle, indent=1)


def load_results(path: str) -> list[Result]:
    with open(path, encoding="utf-8") as handle:
        return [Result(**row) for row in json.load(handle)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pages", description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=("setup", "measure", "rls"))
    parser.add_argument("--plan", required=True)
    parser.add_argument("--out", help="results JSON (measure, rls)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--largest", default="bench-0001")
    parser.add_argument("--median", help="the median organization's slug (default: by reference count)")
    parser.add_argument("--capture-file", help="where the captured statements go (setup)")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

    import django

    django.setup()
    if args.stage == "setup":
        capture_file = args.capture_file or os.path.join(os.path.dirname(os.path.abspath(args.plan)), "capture.json")
        setup(largest=args.largest, median=args.median, depth=args.depth, capture_file=capture_file).save(args.plan)
        return
    plan = Plan.load(args.plan)
    os.environ["BENCH_CAPTURE_FILE"] = plan.capture_file
    if args.stage == "rls":
        results = measure_rls(plan, requests=args.requests, warmup=args.warmup)
    else:
        results = measure_pages(plan, requests=args.requests, warmup=args.warmup, floors=True)
    if args.out:
        save_results(args.out, results)


if __name__ == "__main__":
    main()
