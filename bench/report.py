"""The benchmark's one table, printed and written into ``docs/benchmarks.md`` between markers.

Only the text between ``<!-- bench:begin -->`` and ``<!-- bench:end -->`` belongs to the benchmark;
whatever people write around it (explanations of misses, profiles, before/after) is kept. A file
without the markers gets them appended; a missing file is created with a short introduction.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from bench.results import Result

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
COLUMNS = ("section", "measurement", "p50 ms", "p95 ms", "value", "queries", "target", "met")
INTRO = """# Benchmarks

`make bench` (issue 6) generates the benchmark data set on PostgreSQL, measures the pages, the API, the
floors, the sweeps and the import, and rewrites the section between the markers below with its table
and the machine it ran on. Text outside the markers is kept: explain each missed target there, with
its profile and the before/after figures.
"""


def _number(value: float | None, digits: int = 2) -> str:
    if value is None:
        return ""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def row_cells(result: Result, *, note: str | None = None) -> list[str]:
    """The table's cells for one result; ``note`` replaces the result's note in the name (a footnote mark)."""
    value = f"{_number(result.value)} {result.unit}".strip() if result.value is not None else ""
    queries = result.extra.get("queries")
    met = {None: "", True: "yes", False: "MISSED"}[result.met]
    note = result.note if note is None else note
    name = f"{result.name} ({note})" if note else result.name
    return [
        result.section,
        name,
        _number(result.p50_ms),
        _number(result.p95_ms),
        value,
        "" if queries is None else f"{queries:.0f}",
        result.target,
        met,
    ]


SHORT_NOTE = 40


def text_table(results: Sequence[Result]) -> str:
    """A fixed-width table for the terminal; notes longer than a few words become numbered footnotes."""
    footnotes: list[str] = []
    rows = [list(COLUMNS)]
    for result in results:
        note = result.note
        if len(note) > SHORT_NOTE:
            footnotes.append(note)
            note = f"[{len(footnotes)}]"
        rows.append(row_cells(result, note=note))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    numeric = {2, 3, 4, 5}
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    lines += [""] * bool(footnotes) + [f"[{number}] {text}" for number, text in enumerate(footnotes, 1)]
    return "\n".join(lines)


def markdown_table(results: Sequence[Result]) -> str:
    def escape(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join(["---", "---", "---:", "---:", "---:", "---:", "---", "---"]) + "|",
    ]
    lines += ["| " + " | ".join(escape(cell) for cell in row_cells(result)) + " |" for result in results]
    return "\n".join(lines)


def replace_between_markers(existing: str, body: str) -> str:
    """``existing`` with the text between the markers replaced by ``body`` (markers appended if absent)."""
    block = f"{BEGIN}\n{body.strip()}\n{END}"
    start, end = existing.find(BEGIN), existing.find(END)
    if start == -1 or end == -1 or end < start:
        separator = "" if not existing or existing.endswith("\n\n") else ("\n" if existing.endswith("\n") else "\n\n")
        return f"{existing}{separator}{block}\n"
    return existing[:start] + block + existing[end + len(END) :]


def write(path: str | os.PathLike[str], body: str) -> None:
    """Write ``body`` between the markers of ``path``, creating the file with an introduction if missing."""
    target = Path(path)
    existing = target.read_text(encoding="utf-8") if target.exists() else INTRO
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(replace_between_markers(existing, body), encoding="utf-8")


def facts_markdown(facts: dict[str, str]) -> str:
    return "\n".join(f"- **{name}**: {value}" for name, value in facts.items())


def memory_total() -> str:
    """Total memory from /proc/meminfo, e.g. "23.4 GiB" (empty where there is no /proc)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"
