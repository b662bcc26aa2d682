"""The benchmark's pure helpers: the percentile rule, the report table and the markers writer.

The benchmark itself runs with ``make bench`` (bench/run.py), not under pytest; these are the parts
that decide what docs/benchmarks.md says, so a mistake in them would publish wrong numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import report
from bench.pages import _next_html, _path, rls_row
from bench.results import Result, percentile
from bench.run import bench_url


def test_percentile_is_nearest_rank() -> None:
    samples = [float(n) for n in range(100, 0, -1)]  # 100 … 1, unsorted on purpose
    assert percentile(samples, 0.5) == 50.0
    assert percentile(samples, 0.95) == 95.0
    assert percentile([7.0], 0.95) == 7.0
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)


def test_text_table_shows_targets_misses_and_footnotes() -> None:
    long_note = "appends to the hash-chained ledger, locks the head and writes the states"
    results = [
        Result("api", "bench-0001 first page, c=1", 6.25, 21.5, target="p50 ≤ 8 ms", met=True, extra={"queries": 7.0}),
        Result("throughput", "API share", value=38.0, unit="%", target="≥ 40%", met=False),
        Result("consent page", "POST grant", 9.0, 12.0, note=long_note),
        Result("floors", "minimal view", 0.45, 0.6),
    ]
    table = report.text_table(results).splitlines()
    assert table[0].split() == ["section", "measurement", "p50", "ms", "p95", "ms", "value", "queries", "target", "met"]
    api, share, consent, floor = table[2:6]
    assert "6.25" in api
    assert "21.50" in api
    assert api.rstrip().endswith("yes")
    assert " 7 " in api
    assert "38.00 %" in share
    assert share.rstrip().endswith("MISSED")
    assert "POST grant ([1])" in consent
    assert long_note not in consent
    assert floor.rstrip().endswith("0.60")  # nothing to judge: no verdict
    assert table[-1] == f"[1] {long_note}"


def test_markdown_escapes_pipes() -> None:
    table = report.markdown_table([Result("floors", "a | b", 1.0, 2.0)])
    assert "a \\| b" in table
    assert table.splitlines()[2].count(" | ") == 7


def test_write_keeps_text_outside_the_markers(tmp_path: Path) -> None:
    target = tmp_path / "benchmarks.md"
    report.write(target, "first table")
    created = target.read_text()
    assert created.startswith("# Benchmarks")
    assert f"{report.BEGIN}\nfirst table\n{report.END}" in created

    target.write_text(created.replace(report.BEGIN, f"Hand-written before.\n\n{report.BEGIN}") + "\nAfter: profile.\n")
    report.write(target, "second table")
    updated = target.read_text()
    assert "first table" not in updated
    assert "second table" in updated
    assert "Hand-written before." in updated
    assert updated.endswith("After: profile.\n")
    assert updated.count(report.BEGIN) == 1
    assert updated.count(report.END) == 1


def test_write_appends_markers_to_a_file_without_them(tmp_path: Path) -> None:
    target = tmp_path / "benchmarks.md"
    target.write_text("# Notes\n\nKept.\n")
    report.write(target, "table")
    assert target.read_text() == f"# Notes\n\nKept.\n\n{report.BEGIN}\ntable\n{report.END}\n"


def test_next_link_is_the_rel_next_anchor() -> None:
    page = (
        b'<a href="?q=x&amp;cursor=AAA" rel="prev">Previous</a>'
        b'<a class="btn" href="?q=x&amp;product=Ion&amp;cursor=BBB" rel="next">Next</a>'
    )
    assert _next_html(page, "/o/acme/references/?q=x") == "/o/acme/references/?q=x&product=Ion&cursor=BBB"
    assert _next_html(b'<a href="?page=2">2</a>', "/o/acme/references/") is None
    assert _path("http://testserver/api/v1/references/?cursor=C&search=x") == "/api/v1/references/?cursor=C&search=x"


def test_rls_row_is_the_p50_difference() -> None:
    cheap = rls_row("api", "p", [5.0, 5.5, 9.0], [4.0, 4.5, 30.0])
    assert (cheap.value, cheap.met) == (1.0, True)
    dear = rls_row("catalogue", "p", [7.0, 7.0, 7.0], [4.5, 4.5, 4.5])
    assert (dear.value, dear.met) == (2.5, False)


def test_bench_url_never_names_the_apps_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://app:secret@db.example:5433/refmgr")
    assert bench_url("small", None) == "postgres://app:secret@db.example:5433/refmgr_bench_small"
    with pytest.raises(SystemExit):
        bench_url("full", "postgres://postgres@127.0.0.1:5432/refmgr")
