"""``make bench``: generate the data set, measure everything, print one table and write docs/benchmarks.md.

    python -m bench.run --scale small|full [--database-url …] [--skip-generate] [--requests N]
                        [--import-rows N] [--output docs/benchmarks.md]

The benchmark database is ``refmgr_bench_<scale>``: ``--database-url`` names it outright; otherwise it
is on the server of ``$DATABASE_URL`` (or 127.0.0.1:5432 as postgres), under that name. The app's own
database is never touched: every name must start with ``refmgr_bench``.

Steps, each in its own process so that settings and connections never leak from one to the next:

1. ``bench.generate --recreate`` (its time is reported), unless ``--skip-generate``;
2. ``bench.pages setup``: organizations, filters, tokens, sessions and deep pages (the plan);
3. ``bench.pages measure``: catalogue and API pages at concurrency 1 with their floors;
4. ``bench.pages rls``: the same pages with and without the policies binding, in alternating rounds;
5. ``bench.load``: gunicorn, concurrency 4 and throughput;
6. the consent page, the sweeps and the import (``bench.optional``) on a throwaway copy made with
   ``CREATE DATABASE … TEMPLATE`` once nothing is connected to the bench database, dropped afterwards.

A step that crashes is reported in the table and the run goes on; the exit status is then 1. A missed
target is a result, not a failure: the exit status stays 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench import optional, report
from bench.pages import Plan, load_results
from bench.results import Result

ROOT = Path(__file__).resolve().parent.parent
COUNTED_TABLES = (
    ("organizations", "tenancy_organization"),
    ("users", "auth_user"),
    ("references", "references_reference"),
    ("labels", "references_referencelabel"),
    ("consent events", "consent_consentevent"),
    ("consent states", "consent_consentstate"),
    ("scope grants", "references_referencescopegrant"),
    ("usage requests", "references_usagerequest"),
    ("incentives", "references_incentive"),
)


class Runner:
    def __init__(self, url: str, workdir: Path) -> None:
        self.url = url
        self.workdir = workdir
        self.started = time.perf_counter()
        self.crashed: list[str] = []
        self.results: list[Result] = []

    def say(self, message: str) -> None:
        elapsed = int(time.perf_counter() - self.started)
        print(f"==> [{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", flush=True)

    def python(
        self, *args: str, url: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m …`` with the bench settings, its output passed through (and kept for parsing)."""
        environment = {**os.environ, "DATABASE_URL": url or self.url, "DJANGO_SETTINGS_MODULE": "bench.settings"}
        environment["PYTHONWARNINGS"] = "ignore::UserWarning:django.core.handlers.base"
        environment.update(env or {})
        process = subprocess.Popen(  # noqa: S603 - this interpreter and our own arguments
            [sys.executable, *args],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            print(line, end="", flush=True)
        returncode = process.wait()
        return subprocess.CompletedProcess(process.args, returncode, "".join(lines), "")

    def step(self, section: str, title: str, *args: str, out: Path | None = None, **kwargs: object) -> list[Result]:
        """One subprocess step; its results, or a "crashed" row (and a non-zero exit status at the end)."""
        self.say(title)
        completed = self.python(*args, **kwargs)  # type: ignore[arg-type]
        if completed.returncode != 0:
            self.crashed.append(title)
            return [Result(section, title, note=f"crashed (exit {completed.returncode}); see the log above")]
        return load_results(str(out)) if out is not None else []


def bench_url(scale: str, given: str | None) -> str:
    if given:
        url = given
    else:
        server = os.environ.get("DATABASE_URL", "") or "postgres://postgres@127.0.0.1:5432/postgres"
        if not server.startswith(("postgres://", "postgresql://")):
            server = "postgres://postgres@127.0.0.1:5432/postgres"
        url = urlunsplit(urlsplit(server)._replace(path=f"/refmgr_bench_{scale}"))
    name = urlsplit(url).path.lstrip("/")
    if not name.startswith("refmgr_bench"):
        raise SystemExit(f"the benchmark database must be named refmgr_bench*, not {name!r}")
    return url


def _maintenance(url: str):  # type: ignore[no-untyped-def]
    import psycopg2

    connection = psycopg2.connect(urlunsplit(urlsplit(url)._replace(path="/postgres")))
    connection.autocommit = True
    return connection


def make_copy(url: str, copy: str) -> str:
    """``CREATE DATABASE copy TEMPLATE <bench db>`` (waits up to a minute for connections to close)."""
    from psycopg2 import errors, sql

    template = urlsplit(url).path.lstrip("/")
    connection = _maintenance(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(copy)))
            for attempt in range(60):
                try:
                    cursor.execute(
                        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(copy), sql.Identifier(template))
                    )
                    break
                except errors.ObjectInUse:
                    # Someone is still connected to the template (a gunicorn worker winding down).
                    if attempt == 59:
                        raise
                    time.sleep(1)
    finally:
        connection.close()
    return urlunsplit(urlsplit(url)._replace(path=f"/{copy}"))


def drop_copy(url: str, copy: str) -> None:
    from psycopg2 import sql

    if not copy.endswith("_scratch"):
        raise ValueError(f"not a scratch copy: {copy!r}")
    connection = _maintenance(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(copy)))
    finally:
        connection.close()


def database_facts(url: str) -> tuple[str, dict[str, int]]:
    """PostgreSQL's version and the row counts (read as the owner, who sees every organization)."""
    import psycopg2

    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
            counts = {}
            for label, table in COUNTED_TABLES:
                cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed table names
                counts[label] = cursor.fetchone()[0]
    finally:
        connection.close()
    return version, counts


def git_commit() -> str:
    git = shutil.which("git")
    if git is None:
        return "unknown"
    commit = subprocess.run([git, "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)  # noqa: S603
    status = [git, "status", "--porcelain", "--untracked-files=no"]
    dirty = subprocess.run(status, cwd=ROOT, capture_output=True, text=True)  # noqa: S603
    if commit.returncode != 0:
        return "unknown"
    return commit.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=("small", "full"), default="full")
    parser.add_argument(
        "--database-url", help="the benchmark database (default: refmgr_bench_<scale> on $DATABASE_URL's server)"
    )
    parser.add_argument("--skip-generate", action="store_true", help="measure the existing data set")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page at concurrency 1")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--depth", type=int, default=50, help="the deep page: follow next links up to this page")
    parser.add_argument("--load-requests", type=int, help="requests per page at concurrency 4 (default 2 x --requests)")
    parser.add_argument("--load-seconds", type=float, default=10.0, help="time limit per page at concurrency 4")
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--median", help="the median organization's slug (default: by reference count)")
    args = parser.parse_args(argv)

    url = bench_url(args.scale, args.database_url)
    name = urlsplit(url).path.lstrip("/")
    workdir = Path(tempfile.mkdtemp(prefix="refmgr-bench-"))
    runner = Runner(url, workdir)
    runner.say(f"refmgr benchmark, scale {args.scale}, database {name}, work files in {workdir}")

    generation = "not run (--skip-generate)"
    if not args.skip_generate:
        runner.say("generating the data set (bench.generate --recreate)")
        started = time.perf_counter()
        completed = runner.python(
            "-m",
            "bench.generate",
            "--scale",
            args.scale,
            "--recreate",
            "--database-url",
            url,
            env={"DJANGO_SETTINGS_MODULE": "refmgr.settings.local"},
        )
        wall = time.perf_counter() - started
        if completed.returncode != 0:
            runner.say("generation failed: nothing to measure")
            return 1
        found = re.search(r"Generated in ([\d.]+) s", completed.stdout)
        generation = (
            f"{float(found.group(1)):.1f} s of loading, {wall:.1f} s with migrate" if found else f"{wall:.1f} s"
        )

    plan_file, capture_file = workdir / "plan.json", workdir / "capture.json"
    setup = runner.step(
        "setup",
        "setup: organizations, filters, API tokens, sessions, deep pages",
        "-m",
        "bench.pages",
        "setup",
        "--plan",
        str(plan_file),
        "--capture-file",
        str(capture_file),
        "--depth",
        str(args.depth),
        *(["--median", args.median] if args.median else []),
    )
    plan = Plan.load(str(plan_file)) if plan_file.exists() and not setup else None
    runner.results += setup
    pages: list[Result] = []
    if plan is not None:
        common = ["--plan", str(plan_file), "--requests", str(args.requests), "--warmup", str(args.warmup)]
        out = workdir / "pages.json"
        pages = runner.step(
            "pages",
            f"pages at concurrency 1 and their floors ({args.requests} requests each)",
            "-m",
            "bench.pages",
            "measure",
            *common,
            "--out",
            str(out),
            out=out,
        )
        runner.results += pages
        out = workdir / "rls.json"
        runner.results += runner.step(
            "rls",
            "the same pages with and without the policies, alternating",
            "-m",
            "bench.pages",
            "rls",
            *common,
            "--out",
            str(out),
            out=out,
        )
        out = workdir / "load.json"
        load_requests = args.load_requests or 2 * args.requests
        runner.results += runner.step(
            "concurrency 4",
            f"gunicorn: concurrency 4 and throughput ({load_requests} requests, ≤ {args.load_seconds:g} s each)",
            "-m",
            "bench.load",
            "--plan",
            str(plan_file),
            "--out",
            str(out),
            "--requests",
            str(load_requests),
            "--seconds",
            str(args.load_seconds),
            out=out,
        )

    runner.say("row counts and server version")
    version, counts = database_facts(url)

    copy = f"{name}_scratch"
    wanted = [module for module in ("consent_page", "sweeps", "importcsv") if optional.available(module)]
    runner.results += [optional.not_available(module) for module in optional.MODULES if module not in wanted]
    if wanted:
        runner.say(f"throwaway copy {copy} (CREATE DATABASE … TEMPLATE {name})")
        copy_url = make_copy(url, copy)
        try:
            # Sweeps first, on the data as generated; the consent page and the import write after them.
            for module in ("sweeps", "consent_page", "importcsv"):
                if module not in wanted:
                    continue
                out = workdir / f"{module}.json"
                runner.results += runner.step(
                    optional.MODULES[module][1],
                    f"{optional.MODULES[module][0]}",
                    "-m",
                    "bench.optional",
                    module,
                    "--out",
                    str(out),
                    "--requests",
                    str(args.requests),
                    "--rows",
                    str(args.import_rows),
                    out=out,
                    url=copy_url,
                )
        finally:
            drop_copy(url, copy)
            runner.say(f"dropped {copy}")

    total = time.perf_counter() - runner.started
    facts = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git commit": git_commit(),
        "machine": f"{os.cpu_count()} cores, {report.memory_total()} memory",
        "PostgreSQL": version,
        "scale": f"{args.scale} (database {name})",
        "rows": ", ".join(f"{label} {count:,}" for label, count in counts.items()),
        "generation": generation,
        "requests": f"{args.requests} timed per page at concurrency 1 after {args.warmup} warm-up; "
        f"{args.load_requests or 2 * args.requests} per page at concurrency 4 (≤ {args.load_seconds:g} s)",
        "benchmark wall time": f"{total / 60:.1f} min",
    }
    if plan is not None:
        facts["searches"] = "; ".join(
            f"{slug}: q={f['q']!r} product={f['product']!r} scope={f['scope']!r}" for slug, f in plan.filters.items()
        )
        facts["deep pages"] = (
            "; ".join(f"{p.kind} {p.organization}: page {p.depth}" for p in plan.pages if p.which == "deep")
            or "none (every list fits on one page)"
        )
    table = report.text_table(runner.results)
    print()
    print(table)
    print()
    body = "\n\n".join(["## Last run", report.facts_markdown(facts), report.markdown_table(runner.results)])
    report.write(args.output, body)
    runner.say(f"written to {args.output}; {total / 60:.1f} min in all")
    if runner.crashed:
        runner.say(f"steps that crashed: {', '.join(runner.crashed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
