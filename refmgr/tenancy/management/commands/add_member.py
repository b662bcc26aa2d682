"""``manage.py add_member SLUG USERNAME ROLE [--email E] [--password P]``.

Gives a user a role in an organization, creating the user when missing. An
existing membership takes the new role (and is reactivated if it was off).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Organization, Role
from refmgr.tenancy.services import membership_add


class Command(BaseCommand):
    help = "Add a user to an organization with a role; the user is created if missing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The organization's slug")
        parser.add_argument("username")
        parser.add_argument("role", help=f"One of: {', '.join(Role.values)}")
        parser.add_argument("--email", default="", help="Email address (set on a new user, updated on an existing one)")
        parser.add_argument("--password", default="", help="Password (set on a new or existing user)")

    def handle(
        self, *args: Any, slug: str, username: str, role: str, email: str, password: str, **options: Any
    ) -> None:
        if role not in Role.values:
            raise CommandError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.")
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            raise CommandError(f"No organization with the slug {slug!r} (create it with create_org).")
        if not organization.is_active:
            raise CommandError(f"The organization {slug!r} is deactivated.")
        with transaction.atomic():
            user, created = _user_get_or_create(username=username, email=email, password=password)
            with tenant_context(organization):
                try:
                    membership_add(organization=organization, user=user, role=role, actor=None)
                except ApplicationError as exc:
                    raise CommandError(exc.message) from exc
        verb = "Created user" if created else "User"
        self.stdout.write(self.style.SUCCESS(f"{verb} {user.get_username()} is now {role} in {organization.slug}"))
        if created and not password:
            self.stdout.write("No password set: the user signs in after a password reset by email.")


def _user_get_or_create(*, username: str, email: str, password: str) -> tuple[Any, bool]:
    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    created = user is None
    if user is None:
        user = user_model(username=username, email=email)
    elif email:
        user.email = email
    if password:
        try:
            password_validation.validate_password(password, user)
        except ValidationError as exc:
            raise CommandError("Password refused: " + " ".join(exc.messages)) from exc
        user.set_password(password)
    elif created:
        user.set_unusable_password()
    try:
        user.full_clean(exclude=["password"])
    except ValidationError as exc:
        raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
    user.save()
    return user, created
