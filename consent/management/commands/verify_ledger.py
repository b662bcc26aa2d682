"""``manage.py verify_ledger [--organization SLUG]``: recompute every consent ledger's hash chain."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from consent.ledger import ledger_verify
from refmgr.tenancy.context import tenant_context

from ._organizations import organizations_chosen, progress_printer


class Command(BaseCommand):
    help = (
        "Recompute the consent ledger's hash chain of each organization and report the first broken link. "
        "Exits with status 1 if any chain is broken."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organization", metavar="SLUG", help="Check only this organization.")
        parser.add_argument(
            "--progress-every", type=int, default=5000, help="Print progress after this many events (default 5000)."
        )

    def handle(self, *args: Any, organization: str | None = None, progress_every: int = 5000, **options: Any) -> None:
        broken: list[str] = []
        for org in organizations_chosen(organization):
            # Each organization's chain is read inside that organization (RLS sees nothing else).
            with tenant_context(org):
                verdict = ledger_verify(
                    organization=org,
                    chunk_size=max(progress_every, 1),
                    progress=progress_printer(self, org, "events checked"),
                )
            if verdict.ok:
                self.stdout.write(self.style.SUCCESS(f"{org.slug}: {verdict.checked} events checked, OK"))
            else:
                broken.append(org.slug)
                self.stdout.write(
                    self.style.ERROR(
                        f"{org.slug}: {verdict.checked} events checked, BROKEN at event #{verdict.broken_at}: "
                        f"{verdict.problem}"
                    )
                )
        if broken:
            raise CommandError(f"The consent ledger is broken in: {', '.join(broken)}", returncode=1)
