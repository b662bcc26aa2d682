"""What the measuring modules share about the bench database: its throwaway copies and its median organization."""

from __future__ import annotations

from typing import Any

# Never written to by a measuring module: the generated data sets the others copy from.
SHARED_DATABASES = frozenset({"refmgr_bench_full", "refmgr_bench_small"})


def copy_database(url: str, template: str, copy: str) -> str:
    """Drop ``copy`` if it exists and create it from ``template``; returns the copy's URL.

    For the command lines of the modules that write (sweeps, import): the copy must be a new
    ``refmgr_bench*`` name, never one of :data:`SHARED_DATABASES`. Creating it fails while anyone is
    connected to the template; that is left to the caller rather than forced.
    """
    from urllib.parse import urlsplit, urlunsplit

    import psycopg2
    from psycopg2 import sql

    if copy in SHARED_DATABASES or not copy.startswith("refmgr_bench") or copy == template:
        raise SystemExit(f"--copy must be a new refmgr_bench* name, not {copy!r}")
    parts = urlsplit(url)
    maintenance = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
    maintenance.autocommit = True
    try:
        with maintenance.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(copy)))
            cursor.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(copy), sql.Identifier(template))
            )
    finally:
        maintenance.close()
    return urlunsplit(parts._replace(path=f"/{copy}"))


def organizations_by_size() -> list[tuple[Any, int]]:
    """Every organization with references and its reference count, the largest first (ties by slug)."""
    from django.db.models import Count

    from references.models import Reference
    from refmgr.tenancy.context import cross_organization
    from refmgr.tenancy.models import Organization

    with cross_organization("bench: organization sizes, to pick the median one"):
        sizes = {
            row["organization_id"]: row["n"]
            for row in Reference.all_tenants.values("organization_id").annotate(n=Count("id")).order_by()
        }
        ranked = sorted(Organization.objects.filter(pk__in=sizes), key=lambda org: (-sizes[org.pk], org.slug))
    return [(organization, sizes[organization.pk]) for organization in ranked]


def median_organization() -> Any:
    """The organization in the middle of :func:`organizations_by_size` (``bench-0501`` at full scale)."""
    ranked = organizations_by_size()
    if not ranked:
        raise RuntimeError("the bench database holds no references: generate the data set first (bench.generate)")
    return ranked[len(ranked) // 2][0]
