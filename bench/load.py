"""Concurrency 4 and throughput under gunicorn (issue 6, point 1), with a stdlib load generator.

    python -m bench.load --plan PLAN.json --out RESULTS.json [--requests 400] [--seconds 20]

Starts gunicorn (2 sync workers, ``bench.settings``, 127.0.0.1 on a free port), waits for it to answer,
then drives it with 4 client threads over keep-alive ``http.client`` connections, each run bounded by a
request count and a time limit, for every page of the plan (session cookie for the catalogue, the API
token for the list): p50/p95 at concurrency 4 and requests per second. Beside each API list it drives
the plain same-query view (``bench/views.py``, the captured statements replayed) for the throughput
ratio. gunicorn is stopped by its PID in a ``finally``, also when a measurement fails.

This module needs no Django: it reads the plan written by ``bench.pages setup`` and the statements
``bench.pages measure`` captured (``BENCH_CAPTURE_FILE``, read by the workers).
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.pages import Plan, save_results
from bench.results import Result, percentile

CONCURRENCY = 4
WORKERS = 2
C4_P95_MS = 50.0
THROUGHPUT_SHARE = 0.40
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    samples: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.samples) / self.seconds if self.seconds else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def drive(
    port: int, path: str, headers: dict[str, str], *, requests: int, seconds: float, concurrency: int = CONCURRENCY
) -> Run:
    """``concurrency`` threads send GET ``path`` until ``requests`` are done or ``seconds`` have passed."""
    run = Run()
    lock = threading.Lock()
    remaining = [requests]
    deadline = time.perf_counter() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while True:
                with lock:
                    if remaining[0] <= 0 or time.perf_counter() > deadline:
                        return
                    remaining[0] -= 1
                started = time.perf_counter_ns()
                try:
                    connection.request("GET", path, headers=headers)
                    response = connection.getresponse()
                    response.read()
                    ok = response.status == 200
                except (OSError, http.client.HTTPException):
                    ok = False
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                elapsed = (time.perf_counter_ns() - started) / 1e6
                with lock:
                    if ok:
                        run.samples.append(elapsed)
                    else:
                        run.errors += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - started
    return run


class Gunicorn:
    """gunicorn serving ``bench.settings`` on a free loopback port; a context manager that always stops it."""

    def __init__(self, *, capture_file: str, workers: int = WORKERS) -> None:
        self.port = free_port()
        self.capture_file = capture_file
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gunicorn:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "BENCH_CAPTURE_FILE": self.capture_file}
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        command = [gunicorn, "refmgr.wsgi:application", "--bind", f"127.0.0.1:{self.port}"]
        command += ["--workers", str(self.workers), "--worker-class", "sync", "--log-level", "warning"]
        # Keep-alive for the load generator's connections (gunicorn's sync default is 2 s).
        command += ["--keep-alive", "30", "--timeout", "120"]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env)  # noqa: S603 - our own argv
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with status {self.process.returncode} before answering")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/bench/ok/")
                if connection.getresponse().status == 200:
                    connection.close()
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer on 127.0.0.1:{self.port} in {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # the arbiter stops its workers gracefully
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _headers(plan: Plan, kind: str, slug: str) -> dict[str, str]:
    if kind == "catalogue":
        return {"Host": "127.0.0.1", "Cookie": f"sessionid={plan.sessions[slug]}"}
    return {"Host": "127.0.0.1", "Authorization": f"Token {plan.tokens[slug]}"}


def measure(plan: Plan, *, requests: int, seconds: float, warmup: int = 20) -> list[Result]:
    results: list[Result] = []
    with Gunicorn(capture_file=plan.capture_file) as server:
        print(
            f"    gunicorn: {WORKERS} sync workers on 127.0.0.1:{server.port}, {CONCURRENCY} client threads", flush=True
        )
        for page in plan.pages:
            headers = _headers(plan, page.kind, page.organization)
            drive(server.port, page.path, headers, requests=warmup, seconds=seconds)
            run = drive(server.port, page.path, headers, requests=requests, seconds=seconds)
            section = "catalogue" if page.kind == "catalogue" else "api"
            if not run.samples:
                results.append(
                    Result(
                        section,
                        f"{page.label}, c=4",
                        target=f"p95 ≤ {C4_P95_MS:g} ms",
                        met=False,
                        note=f"every request failed ({run.errors})",
                    )
                )
                continue
            p50, p95 = percentile(run.samples, 0.5), percentile(run.samples, 0.95)
            note = f"{run.errors} failed requests" if run.errors else ""
            results.append(
                Result(
                    section,
                    f"{page.label}, c=4",
                    p50,
                    p95,
                    value=run.rate,
                    unit="req/s",
                    samples=len(run.samples),
                    target=f"p95 ≤ {C4_P95_MS:g} ms",
                    met=p95 <= C4_P95_MS and not run.errors,
                    note=note,
                )
            )
            print(
                f"    {section:<9} {page.label:<42} c=4 p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  {run.rate:7.1f} req/s",
                flush=True,
            )
            if page.kind != "api":
                continue
            plain_path = f"/bench/plain/{page.key}/"
            drive(server.port, plain_path, {"Host": "127.0.0.1"}, requests=warmup, seconds=seconds)
            plain = drive(server.port, plain_path, {"Host": "127.0.0.1"}, requests=requests, seconds=seconds)
            share = run.rate / plain.rate if plain.rate else 0.0
            results.append(
                Result(
                    "throughput",
                    f"plain same-query view: {page.label}",
                    value=plain.rate,
                    unit="req/s",
                    samples=len(plain.samples),
                )
            )
            results.append(
                Result(
                    "throughput",
                    f"API list {page.label}: share of the plain view's req/s",
                    value=share * 100,
                    unit="%",
                    target=f"≥ {THROUGHPUT_SHARE:.0%}",
                    met=share >= THROUGHPUT_SHARE,
                    extra={"api_rps": run.rate, "plain_rps": plain.rate},
                )
            )
            print(
                f"    {'throughput':<9} API {run.rate:.1f} req/s, plain view {plain.rate:.1f} req/s: {share:.0%}",
                flush=True,
            )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--requests", type=int, default=400, help="requests per page and run (also bounded by time)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per page and run")
    args = parser.parse_args(argv)
    plan = Plan.load(args.plan)
    save_results(args.out, measure(plan, requests=args.requests, seconds=args.seconds))


if __name__ == "__main__":
    main()
