"""Shared by the consent commands: which organizations to check, and progress output."""

from __future__ import annotations

from collections.abc import Callable

from django.core.management.base import BaseCommand, CommandError

from refmgr.tenancy.models import Organization


def organizations_chosen(slug: str | None) -> list[Organization]:
    """One organization by slug, or all of them (inactive ones too: their ledgers still prove things)."""
    if slug:
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            raise CommandError(f"No organization with the slug {slug!r}.")
        return [organization]
    return list(Organization.objects.order_by("slug"))


def progress_printer(command: BaseCommand, organization: Organization, what: str) -> Callable[[int], None]:
    def report(count: int) -> None:
        command.stdout.write(f"  {organization.slug}: {count} {what} so far…")
        command.stdout.flush()

    return report
