"""``manage.py seed_demo``: realistic demo organizations and people, safe to run again.

Idempotent: every row is looked up before it is created, so a second run
creates nothing (and records no audit events). Existing users keep their
passwords; the demo password is set only on users this command creates.

Later apps add their own demo data without this core command importing them
(dependencies point one way, DESIGN.md): an ``AppConfig`` may define

    def seed_demo(self, *, organization, members, stdout) -> None: ...

which is called for each demo organization, inside its ``tenant_context``,
with ``members`` mapping each role to that organization's demo user. It must
be idempotent too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Membership, Organization, Role
from refmgr.tenancy.services import membership_add, organization_create

# Shown in the README and printed at the end; demo data only, never production.
DEMO_PASSWORD = "refmgr-demo-2026"  # noqa: S105


@dataclass(frozen=True)
class DemoPerson:
    username: str
    first_name: str
    last_name: str
    role: str


@dataclass(frozen=True)
class DemoOrganization:
    slug: str
    name: str
    domain: str
    people: tuple[DemoPerson, ...]


DEMO_ORGANIZATIONS: tuple[DemoOrganization, ...] = (
    DemoOrganization(
        slug="northwind",
        name="Northwind Software",
        domain="northwind.example",
        people=(
            DemoPerson("nina", "Nina", "Okafor", Role.ADMIN),
            DemoPerson("marco", "Marco", "Bianchi", Role.REFERENCE_MANAGER),
            DemoPerson("sam", "Sam", "Whitfield", Role.SALES),
            DemoPerson("chloe", "Chloe", "Martin", Role.COMPLIANCE),
        ),
    ),
    DemoOrganization(
        slug="bluefin",
        name="Bluefin Logistics",
        domain="bluefin.example",
        people=(
            DemoPerson("ben", "Ben", "Adeyemi", Role.ADMIN),
            DemoPerson("rita", "Rita", "Kowalski", Role.REFERENCE_MANAGER),
            DemoPerson("sofia", "Sofia", "Lindqvist", Role.SALES),
            DemoPerson("carl", "Carl", "Jensen", Role.COMPLIANCE),
            # Sam sells for two companies: the organization switcher has something to switch.
            DemoPerson("sam", "Sam", "Whitfield", Role.SALES),
        ),
    ),
    DemoOrganization(
        slug="cedar-health",
        name="Cedar Health Systems",
        domain="cedarhealth.example",
        people=(
            DemoPerson("clara", "Clara", "Nguyen", Role.ADMIN),
            DemoPerson("henry", "Henry", "Dubois", Role.REFERENCE_MANAGER),
            DemoPerson("tom", "Tom", "Reyes", Role.SALES),
            DemoPerson("priya", "Priya", "Raman", Role.COMPLIANCE),
        ),
    ),
)


class Command(BaseCommand):
    help = "Create three demo organizations with a member of every role (idempotent) and print the demo logins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-logins", action="store_true", help="Do not print the table of demo logins")

    def handle(self, *args: Any, no_logins: bool = False, **options: Any) -> None:
        created = 0
        for index, demo in enumerate(DEMO_ORGANIZATIONS, start=1):
            self.stdout.write(f"[{index}/{len(DEMO_ORGANIZATIONS)}] {demo.name} ({demo.slug})")
            created += self._seed_organization(demo)
        summary = f"{created} object(s) created" if created else "nothing new: the demo data was already there"
        self.stdout.write(self.style.SUCCESS(f"Demo data ready ({summary})."))
        if not no_logins:
            self._print_logins()

    @transaction.atomic
    def _seed_organization(self, demo: DemoOrganization) -> int:
        created = 0
        organization = Organization.objects.filter(slug=demo.slug).first()
        if organization is None:
            organization = organization_create(slug=demo.slug, name=demo.name)
            created += 1
            self.stdout.write(f"  + organization {demo.slug}")
        members: dict[str, Any] = {}
        with tenant_context(organization):
            for person in demo.people:
                user, user_created = _demo_user(person, demo.domain)
                created += user_created
                if user_created:
                    self.stdout.write(f"  + user {person.username}")
                membership = Membership.objects.filter(user=user).first()
                if membership is None or membership.role != person.role or not membership.is_active:
                    # Through the service, so the audit log shows how the demo members arrived.
                    membership_add(organization=organization, user=user, role=person.role, actor=None)
                    created += 1
                    self.stdout.write(f"  + {person.username} as {person.role}")
                members.setdefault(person.role, user)
            for config in apps.get_app_configs():
                hook = getattr(config, "seed_demo", None)
                if callable(hook):
                    hook(organization=organization, members=members, stdout=self.stdout)
        return created

    def _print_logins(self) -> None:
        rows = [("username", "password", "organization", "role")]
        rows += [
            (person.username, DEMO_PASSWORD, demo.slug, person.role)
            for demo in DEMO_ORGANIZATIONS
            for person in demo.people
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        self.stdout.write("")
        self.stdout.write("Demo logins (sign in at /accounts/login/):")
        for number, row in enumerate(rows):
            self.stdout.write("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
            if number == 0:
                self.stdout.write("  " + "  ".join("-" * width for width in widths))


def _demo_user(person: DemoPerson, domain: str) -> tuple[Any, bool]:
    user_model = get_user_model()
    user = user_model.objects.filter(username=person.username).first()
    if user is not None:
        return user, False
    user = user_model(
        username=person.username,
        first_name=person.first_name,
        last_name=person.last_name,
        email=f"{person.username}@{domain}",
    )
    user.set_password(DEMO_PASSWORD)
    user.save()
    return user, True
