"""Run one of the measuring modules other engineers own, in its own process, on a throwaway copy.

    DATABASE_URL=…/refmgr_bench_small_scratch python -m bench.optional sweeps --out RESULTS.json

``bench/run.py`` starts this once per module with ``DATABASE_URL`` naming the scratch copy
(``createdb -T``): the consent page, the sweeps and the import write, so they never run on the
database the pages were measured on. Django is set up with ``bench.settings`` (the application role,
so row-level security binds); each module's ``measure(…)`` returns ``list[Result]``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
from collections.abc import Callable
from typing import Any

from bench.pages import save_results
from bench.results import Result

# name -> (module, section, keyword arguments measure() takes from the command line)
MODULES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "consent_page": ("bench.consent_page", "consent page", ("requests",)),
    "sweeps": ("bench.sweeps", "sweeps", ()),
    "importcsv": ("bench.importcsv", "import", ("rows",)),
}


def available(name: str) -> bool:
    return importlib.util.find_spec(MODULES[name][0]) is not None


def not_available(name: str) -> Result:
    return Result(MODULES[name][1], MODULES[name][0], note="not available")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.optional", description=__doc__.split("\n\n")[0])
    parser.add_argument("module", choices=sorted(MODULES))
    parser.add_argument("--out", required=True)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    module_name, _, keywords = MODULES[args.module]
    if not available(args.module):
        save_results(args.out, [not_available(args.module)])
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

    import django

    django.setup()
    logging.getLogger("celery").setLevel(logging.WARNING)  # a line per organization and task otherwise
    measure: Callable[..., list[Result]] = importlib.import_module(module_name).measure
    kwargs: dict[str, Any] = {keyword: getattr(args, keyword) for keyword in keywords}
    save_results(args.out, list(measure(**kwargs)))


if __name__ == "__main__":
    main()
