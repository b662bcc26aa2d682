"""One measured line of the benchmark report, shared by every measuring module.

Each module of ``bench/`` (pages, load, consent page, sweeps, import) returns a list of
:class:`Result`; ``bench/report.py`` prints them as one table and writes ``docs/benchmarks.md``.
A result carries its target in words and whether it was met, so a miss is visible in the table
and its explanation can follow in the notes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Result:
    """One row of the report.

    ``section`` groups rows ("floors", "catalogue", "api", "throughput", "consent page", "sweeps",
    "import", "rls"); ``name`` says exactly what ran (organization, page, concurrency). Timings are
    milliseconds; ``value``/``unit`` hold anything else (requests per second, seconds, statements,
    queries). ``target`` is the issue's target in words (empty when the row is a floor or context),
    ``met`` is None when there is nothing to judge.
    """

    section: str
    name: str
    p50_ms: float | None = None
    p95_ms: float | None = None
    value: float | None = None
    unit: str = ""
    samples: int | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` 0.5 for p50, 0.95 for p95) of a non-empty list."""
    if not samples:
        raise ValueError("percentile() of no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]
