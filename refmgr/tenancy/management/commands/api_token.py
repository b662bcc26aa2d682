"""``manage.py api_token USERNAME SLUG [--name N]``: print a new API key for a membership.

Only the key is printed (nothing else on stdout), so scripts can capture it:
``KEY=$(python manage.py api_token alice acme)``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Membership, Organization
from refmgr.tenancy.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token bound to USERNAME's membership in the organization SLUG and print its key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("slug", help="The organization's slug")
        parser.add_argument("--name", default="", help="A label to recognise the token by, e.g. 'CRM sync'")

    def handle(self, *args: Any, username: str, slug: str, name: str, **options: Any) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        organization = Organization.objects.filter(slug=slug, is_active=True).first()
        if organization is None:
            raise CommandError(f"No active organization with the slug {slug!r}.")
        with tenant_context(organization):
            membership = Membership.objects.filter(user=user, is_active=True).first()
            if membership is None:
                raise CommandError(f"{username} is not an active member of {slug}.")
            try:
                _, key = api_token_create(
                    organization=organization, membership=membership, name=name or "management command", actor=None
                )
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
        self.stdout.write(key)
