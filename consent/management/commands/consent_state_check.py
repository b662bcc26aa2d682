"""``manage.py consent_state_check [--organization SLUG] [--repair]``: the materialised states against the ledger.

Rebuilds every consent state from the ledger and compares it with
``ConsentState``, then checks that references' ``ReferenceScopeGrant``
(what salespeople may use) agrees with the current grants. ``--repair``
rewrites both from the ledger, in one transaction per organization.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from consent.ledger import states_compare
from consent.selectors import consent_usability_compare
from consent.services import consent_states_repair
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Organization

from ._organizations import organizations_chosen, progress_printer

SHOWN = 20  # keys listed per kind of mismatch; the count says how many there are in all


def _keys(keys: Iterable[tuple[Any, ...]]) -> str:
    keys = list(keys)
    shown = ", ".join("/".join(str(part) for part in key) for key in keys[:SHOWN])
    return shown + (f" … and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")


class Command(BaseCommand):
    help = (
        "Rebuild consent states from the ledger and compare them with the stored ones and with references' "
        "usable scopes. Exits with status 1 on any mismatch; --repair rewrites them from the ledger."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organization", metavar="SLUG", help="Check only this organization.")
        parser.add_argument("--repair", action="store_true", help="Rewrite the states and grants from the ledger.")
        parser.add_argument(
            "--progress-every", type=int, default=5000, help="Print progress after this many events (default 5000)."
        )

    def handle(
        self,
        *args: Any,
        organization: str | None = None,
        repair: bool = False,
        progress_every: int = 5000,
        **options: Any,
    ) -> None:
        mismatched: list[str] = []
        for org in organizations_chosen(organization):
            if not self._check(org, max(progress_every, 1)):
                if repair:
                    with tenant_context(org):
                        done = consent_states_repair(organization=org)
                    self.stdout.write(
                        f"{org.slug}: repaired: {done.created} states created, {done.deleted} removed, "
                        f"{done.updated} rewritten, {done.usability_synced} usable scopes re-synced"
                    )
                    if self._check(org, max(progress_every, 1)):
                        continue
                mismatched.append(org.slug)
        if mismatched:
            raise CommandError(f"Consent states disagree with the ledger in: {', '.join(mismatched)}", returncode=1)

    def _check(self, org: Organization, chunk_size: int) -> bool:
        with tenant_context(org):
            comparison, rebuilt = states_compare(
                organization=org, chunk_size=chunk_size, progress=progress_printer(self, org, "events read")
            )
            usability = consent_usability_compare(organization=org)
        if comparison.ok and usability.ok:
            self.stdout.write(self.style.SUCCESS(f"{org.slug}: {len(rebuilt)} states agree with the ledger, OK"))
            return True
        self.stdout.write(self.style.ERROR(f"{org.slug}: MISMATCH"))
        for label, keys in (
            ("states missing (reference/scope/party)", comparison.missing),
            ("states the ledger does not explain", comparison.unexpected),
            ("states that differ from the ledger", comparison.different),
            ("usable scopes missing in references (reference/scope)", usability.missing),
            ("usable scopes references should not have", usability.unexpected),
            ("usable scopes with another end date", usability.different),
        ):
            if keys:
                self.stdout.write(f"  {len(keys)} {label}: {_keys(keys)}")
        return False
