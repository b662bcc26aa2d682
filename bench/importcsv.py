"""The CSV import of 100,000 references: seconds for the preview and for the confirm (issue 6).

    python -m bench.importcsv --template refmgr_bench_small --copy refmgr_bench_small_import
    python -m bench.importcsv --database-url postgres://postgres@127.0.0.1:5432/refmgr_bench_small_import --rows 2000

The import runs exactly as a manager runs it in the browser: Django's test ``Client``, logged in as the
organization's ``<slug>-manager``, POSTs the file to the import page (the preview, with its row-by-row
report rendered) and then POSTs the token of that page (the confirm), through the full middleware
stack, row-level security included. The organization is the median one by reference count; the file
uses the generator's vocabulary (``bench/generate.py``): each row names one of the organization's
accounts, one of that account's contacts as the advocate (90 %), a title, a summary of 15-40 words,
a publication, products, use cases and tags.

The import writes: :func:`measure` must run on a throwaway copy of a benchmark database (the command
line makes one with ``--template``/``--copy``), connected as the application role.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import re
import time
from typing import Any

from bench.database import SHARED_DATABASES, copy_database, median_organization
from bench.results import Result

# Databases other people read: an import must never write to them.
TARGET_S = 30.0  # "import of 100,000 rows ≤ 30 s"


def build_csv(*, rows: int, accounts: list[tuple[str, list[str]]], seed: int = 6) -> bytes:
    """A references CSV of ``rows`` rows over ``accounts`` ((name, [contact emails])), UTF-8 encoded.

    Titles carry the row number, so every row creates a reference (the import matches on account and
    title: a repeated pair would be an update or a duplicate, not what is measured).
    """
    from bench.generate import _TERM_WEIGHTS, PRODUCTS, PUBLICATIONS, TAGS, TERMS, USE_CASES, WORDS

    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not a secret
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("account", "advocate_email", "title", "summary", "publication", "products", "use_cases", "tags"))
    for number in range(1, rows + 1):
        name, emails = accounts[rng.randrange(len(accounts))]
        advocate = rng.choice(emails) if emails and rng.random() < 0.9 else ""
        product = rng.choice(PRODUCTS)
        title = f"{product} {rng.choice(USE_CASES)}: {rng.choice(WORDS)} story, import {number}"
        summary = " ".join(
            rng.choices(WORDS, k=rng.randint(12, 32))
            + rng.choices(TERMS, cum_weights=_TERM_WEIGHTS, k=rng.randint(3, 8))
        )
        products = "; ".join(dict.fromkeys(rng.choices(PRODUCTS, k=rng.randint(1, 2))))
        use_cases = rng.choice(USE_CASES) if rng.random() < 0.7 else ""
        tags = "; ".join(dict.fromkeys(rng.choices(TAGS, k=rng.randint(1, 2)))) if rng.random() < 0.5 else ""
        writer.writerow((name, advocate, title, summary, rng.choice(PUBLICATIONS), products, use_cases, tags))
    return out.getvalue().encode()


def _accounts_of(organization: Any) -> list[tuple[str, list[str]]]:
    """The organization's accounts with their contacts' emails; creates 20 of each kind if it has none."""
    from references import services
    from references.models import Account, Contact
    from refmgr.tenancy.context import tenant_context

    with tenant_context(organization):
        if not Account.objects.exists():
            for n in range(20):
                account = services.account_create(organization=organization, actor=None, name=f"Import account {n}")
                services.contact_create(
                    organization=organization,
                    actor=None,
                    account=account,
                    name=f"Import contact {n}",
                    email=f"import-contact-{n}@example.com",
                )
        emails: dict[int, list[str]] = {}
        for account_id, email in Contact.objects.values_list("account_id", "email"):
            emails.setdefault(account_id, []).append(email)
        return [(name, emails.get(pk, [])) for pk, name in Account.objects.order_by("pk").values_list("pk", "name")]


def measure(*, rows: int = 100_000) -> list[Result]:
    """Preview then confirm an import of ``rows`` references into the median organization, as the UI
    does; Django must already be connected, as the application role, to a throwaway benchmark copy."""
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from references.models import Reference
    from refmgr.tenancy.context import tenant_context

    name = connection.settings_dict["NAME"]
    if connection.vendor != "postgresql" or name in SHARED_DATABASES or not str(name).startswith("refmgr_bench"):
        raise RuntimeError(f"bench.importcsv writes: run it on a throwaway refmgr_bench* copy, not {name!r}")
    organization = median_organization()
    data = build_csv(rows=rows, accounts=_accounts_of(organization))
    with tenant_context(organization):
        before = Reference.objects.count()
    client = Client()
    client.force_login(get_user_model().objects.get(username=f"{organization.slug}-manager"))
    url = reverse("references:import", kwargs={"organization_slug": organization.slug})

    upload = SimpleUploadedFile("references.csv", data, content_type="text/csv")
    with CaptureQueriesContext(connection) as preview_queries:
        started = time.perf_counter()
        preview = client.post(url, {"kind": "references", "file": upload})
        preview_s = time.perf_counter() - started
    # Read from the page, as a browser would (the test Client records no context outside the test runner).
    page = preview.content.decode()
    token = re.search(r'name="token" value="([^"]+)"', page)
    if preview.status_code != 200 or token is None:
        raise RuntimeError(f"bench.importcsv: the preview failed ({preview.status_code})")
    if "Every row is valid." not in page:
        raise RuntimeError("bench.importcsv: the preview reports rows with errors")
    with CaptureQueriesContext(connection) as confirm_queries:
        started = time.perf_counter()
        confirmed = client.post(url, {"token": token.group(1)})
        confirm_s = time.perf_counter() - started
    if confirmed.status_code != 302:
        raise RuntimeError(f"bench.importcsv: the confirm failed ({confirmed.status_code})")
    with tenant_context(organization):
        created = Reference.objects.count() - before
    if created != rows:
        raise RuntimeError(f"bench.importcsv: {created} references were created, not {rows}")

    where = f"{organization.slug}, {before:,} references before, {len(data) / 1048576:.1f} MB file"
    return [
        Result(
            section="import",
            name=f"CSV import preview, {rows:,} references",
            value=round(preview_s, 2),
            unit="s",
            note=where,
            extra={"seconds": preview_s, "queries": float(len(preview_queries)), "bytes": float(len(data))},
        ),
        Result(
            section="import",
            name=f"CSV import confirm, {rows:,} references",
            value=round(confirm_s, 2),
            unit="s",
            target=f"≤ {TARGET_S:.0f} s for 100,000 rows" if rows == 100_000 else "",
            met=confirm_s <= TARGET_S if rows == 100_000 else None,
            note=where,
            extra={"seconds": confirm_s, "queries": float(len(confirm_queries)), "created": float(created)},
        ),
    ]


# --- Command line: make the copy, connect as the application role, print the rows ------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.importcsv", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/refmgr_bench_small_import")
    parser.add_argument("--template", help="create the database of --database-url (or --copy) from this one first")
    parser.add_argument("--copy", help="the throwaway database's name (with --template)")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    url = args.database_url
    if args.template:
        url = copy_database(url, args.template, args.copy or url.rsplit("/", 1)[1])
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refmgr.settings.local")

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.db.backends.signals import connection_created

    def as_app_role(sender: Any, connection: Any, **kwargs: Any) -> None:
        # The owner generated the data; the import runs as production does, under RLS.
        with connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {settings.DATABASE_APP_ROLE}")

    connection_created.connect(as_app_role, dispatch_uid="bench.importcsv.app_role")
    connection.ensure_connection()
    for result in measure(rows=args.rows):
        verdict = "" if result.met is None else ("met" if result.met else "MISSED")
        print(f"{result.name:<45} {result.value:8.2f} s  {int(result.extra['queries']):>7,} queries  {verdict}")
        print(f"    {result.note}")


if __name__ == "__main__":
    main()
