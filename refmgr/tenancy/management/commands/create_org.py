"""``manage.py create_org SLUG --name NAME``: create an organization (a tenant)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.services import organization_create


class Command(BaseCommand):
    help = "Create an organization. Its members are added with add_member."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="URL name: lower-case letters, digits and hyphens, e.g. northwind")
        parser.add_argument("--name", required=True, help='Display name, e.g. "Northwind Software"')

    def handle(self, *args: Any, slug: str, name: str, **options: Any) -> None:
        try:
            organization = organization_create(slug=slug, name=name.strip())
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        except ValidationError as exc:
            raise CommandError(_validation_message(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Created organization {organization.slug} ({organization.name})"))


def _validation_message(exc: ValidationError) -> str:
    """One line per field, as a person at a terminal wants to read it."""
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
    return " ".join(exc.messages)
