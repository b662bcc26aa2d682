"""Issue 6, point 3: every list page and API list costs the same queries at 10 rows and at 200.

One organization is filled to 10 rows of everything and every list is requested
once with its queries counted; the organization is then filled to 200 rows and
every list is counted again. A list whose count moved loads something per row
(an N+1) and fails its own test below, named after the list.

The data is built once for the module, inside a transaction rolled back at the
end: built per list, 200 rows of everything would cost minutes. The rows are
varied (accounts, advocates, salespeople, labels, scopes, statuses, actors) so
that a relation loaded row by row shows up as extra queries.

Three meta-tests keep the registries honest: every API list route of
``refmgr.api_router``, every named page of the URLconf and every model in the
Django admin is measured here or exempted with its reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from consent.models import ConsentState
from consent.services import consent_revoke
from privacy.models import PrivacyPolicy
from references.models import (
    Incentive,
    Reference,
    ReferenceAsset,
    ReferenceGroupObjectPermission,
    ReferenceHold,
    ReferenceUserObjectPermission,
    ReviewFlag,
    UsageEvent,
    UsageNotification,
    UsageRequest,
)
from references.models.incentives import FlagStatus
from references.restrictions import PERMISSION_CODENAME
from refmgr.api_router import router
from refmgr.audit.models import AuditEvent
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import ApiToken, Invitation, Membership, Organization, Role
from refmgr.tenancy.services import api_token_create
from tests.factories.consent import ConsentCase, ask, ask_and_grant, published_policy
from tests.factories.references import bulk_references
from tests.factories.tenancy import MembershipFactory, OrganizationFactory, UserFactory
from tests.fixtures.services import analyze

# The marker makes pytest-django create the test database; the rows themselves are the module fixture's.
pytestmark = pytest.mark.django_db

SMALL, LARGE = 10, 200
SLUG = "perf"

# --- What is measured -------------------------------------------------------------------------------

# HTML list pages: URL name (with the query string, where one view lists several things) -> (who asks,
# query string). Each list's first page is counted: the catalogue and the references API page by keyset
# cursors, so a later page is only reachable through the link a response gives, and it runs the same
# statements as the first.
HTML_LISTS: dict[str, tuple[str, dict[str, str]]] = {
    "references:catalogue": ("bob", {}),
    "references:my_requests": ("bob", {}),
    "references:queue": ("carol", {}),
    "references:usage_csv": ("carol", {}),
    "references:manage": ("carol", {}),
    "references:account_list": ("carol", {}),
    "references:contact_list": ("carol", {}),
    "references:export?kind=references": ("carol", {"kind": "references"}),
    "references:export?kind=accounts": ("carol", {"kind": "accounts"}),
    "references:export?kind=contacts": ("carol", {"kind": "contacts"}),
    "references:incentive_list": ("carol", {}),
    "references:review_queue": ("dave", {}),
    "consent:overview": ("carol", {}),
    "consent:ledger": ("dave", {}),
    "consent:ledger_csv": ("dave", {}),
    "consent:takedowns": ("carol", {}),
    "privacy:manage": ("alice", {}),
    "privacy:policy": ("anonymous", {}),
    "tenancy:dashboard": ("alice", {}),
    "tenancy:members": ("alice", {}),
    "tenancy:api_tokens": ("alice", {}),
    "tenancy:audit_log": ("alice", {}),
    "tenancy:audit_export": ("alice", {}),
}

# Named pages that are not lists of the organization's rows, or whose rows are bounded elsewhere.
ONE_OBJECT = "one object's page or a form; it lists no growing set of rows"
ACTION = "a POST action that redirects; nothing is listed"
HTML_EXEMPT: dict[str, str] = {
    "home": "redirects to the organization page",
    "healthz": "a liveness probe",
    "invitation_accept": ONE_OBJECT,
    "organization_choose": "one row per organization the user belongs to, not per organization row",
    "login": "Django's sign-in form",
    "logout": "Django's sign-out",
    "password_change": "Django's form",
    "password_change_done": "Django's page",
    "password_reset": "Django's form",
    "password_reset_done": "Django's page",
    "password_reset_confirm": "Django's form",
    "password_reset_complete": "Django's page",
    "api-schema": "the OpenAPI document, built from code",
    "api-docs": "static documentation page",
    "api-redoc": "static documentation page",
    "consent_public:page": (
        "one contact's own grants, by token; tests/consent/test_public_pages.py "
        "test_the_page_costs_the_same_queries_whatever_it_lists checks 2 against 20"
    ),
    "consent_public:answer": ACTION,
    "consent_public:revoke": ACTION,
    "consent_public:revoke_all": ACTION,
    "consent_public:pause": ACTION,
    "consent:request_new": ONE_OBJECT,
    "consent:request_detail": ONE_OBJECT,
    "consent:request_send": ACTION,
    "consent:request_cancel": ACTION,
    "consent:offline": ONE_OBJECT,
    "consent:reference_states": "one reference's states: at most its scopes times its parties",
    "consent:reference_revoke": ACTION,
    "consent:ledger_verify": "walks the whole ledger by design (chunked); a check, not a list page",
    "consent:takedown_detail": ONE_OBJECT,
    "consent:settings": ONE_OBJECT,
    "privacy:policy_version": ONE_OBJECT,
    "privacy:manage_create": ONE_OBJECT,
    "privacy:manage_detail": ONE_OBJECT,
    "privacy:manage_edit": ONE_OBJECT,
    "privacy:manage_publish": ACTION,
    "privacy:manage_delete": ACTION,
    "references:detail": ONE_OBJECT,
    "references:request_create": ONE_OBJECT,
    "references:request_decide": ACTION,
    "references:request_complete": ACTION,
    "references:request_cancel": ACTION,
    "references:access": ONE_OBJECT,
    "references:account_create": ONE_OBJECT,
    "references:account_edit": ONE_OBJECT,
    "references:contact_create": ONE_OBJECT,
    "references:contact_edit": ONE_OBJECT,
    "references:reference_create": ONE_OBJECT,
    "references:reference_edit": ONE_OBJECT,
    "references:reference_retire": ACTION,
    "references:asset_create": ONE_OBJECT,
    "references:asset_edit": ONE_OBJECT,
    "references:asset_delete": ACTION,
    "references:asset_file": ONE_OBJECT,
    "references:settings": ONE_OBJECT,
    "references:import": ONE_OBJECT,
    "references:incentive_create": ONE_OBJECT,
    "references:incentive_edit": ONE_OBJECT,
    "references:incentive_import": ONE_OBJECT,
    "references:review_decide": ONE_OBJECT,
    "tenancy:member_role_change": ACTION,
    "tenancy:member_deactivate": ACTION,
    "tenancy:invitation_revoke": ACTION,
    "tenancy:api_token_revoke": ACTION,
}

# API list routes: router basename -> who asks. Bob (a salesperson) for references, whose list
# adds the salesperson's approved uses; the admin elsewhere.
API_LISTS: dict[str, str] = {
    "audit-event": "alice",
    "member": "alice",
    "account": "alice",
    "contact": "alice",
    "reference": "bob",
    "usage-request": "alice",
    "incentive": "alice",
    "review-flag": "alice",
    "privacy-policy": "alice",
    "consent-request": "alice",
    "consent-event": "alice",
    "consent-state": "alice",
}

# Django admin changelists: "app_label.model" -> who asks. Only a superuser sees more than one
# organization; an organization's admin sees the rest, scoped to it.
ADMIN_LISTS: dict[str, str] = {
    "tenancy.organization": "root",
    "tenancy.membership": "alice",
    "tenancy.invitation": "alice",
    "tenancy.apitoken": "alice",
    "audit.auditevent": "alice",
    "privacy.privacypolicy": "alice",
    "references.account": "alice",
    "references.contact": "alice",
    "references.reference": "alice",
    "references.referenceasset": "alice",
    "references.usagerequest": "alice",
    "references.referencescopegrant": "alice",
    "references.referencehold": "alice",
    "references.usagenotification": "alice",
    "references.usageevent": "alice",
    "references.referenceuserobjectpermission": "alice",
    "references.referencegroupobjectpermission": "alice",
    "references.incentive": "alice",
    "references.reviewflag": "alice",
    "consent.consentrequest": "alice",
    "consent.consentevent": "alice",
    "consent.consentstate": "alice",
    "consent.consentmessage": "alice",
    "consent.takedowntask": "alice",
}
SINGLETON = "one row per organization: the list cannot grow"
ADMIN_EXEMPT: dict[str, str] = {
    "references.referencesettings": SINGLETON,
    "consent.consentsettings": SINGLETON,
}

# --- The organization and its rows ------------------------------------------------------------------


@dataclass
class World:
    organization: Organization
    people: dict[str, Any]  # username -> user
    memberships: dict[str, Membership]
    salespeople: list[Any]
    size: int = 0


def _cast() -> World:
    organization = OrganizationFactory(slug=SLUG, name="Perf Ltd")
    roles = {"alice": Role.ADMIN, "bob": Role.SALES, "carol": Role.REFERENCE_MANAGER, "dave": Role.COMPLIANCE}
    memberships = {
        name: MembershipFactory(
            organization=organization, user=UserFactory(username=f"perf-{name}", is_staff=role == Role.ADMIN), role=role
        )
        for name, role in roles.items()
    }
    people = {name: membership.user for name, membership in memberships.items()}
    # The only one whose admin lists every organization.
    people["root"] = UserFactory(username="perf-root", is_staff=True, is_superuser=True)
    MembershipFactory(organization=organization, user=people["root"], role=Role.ADMIN)
    # More salespeople than bob, so requests, events and audit rows name different people.
    others = [
        MembershipFactory(organization=organization, user=UserFactory(username=f"perf-sales-{n}"), role=Role.SALES).user
        for n in range(3)
    ]
    return World(organization, people, memberships, [people["bob"], *others])


def _grow(world: World, size: int) -> None:
    """Add rows until every list has ``size`` of them (or more)."""
    org, people, count = world.organization, world.people, size - world.size
    carol, alice = people["carol"], people["alice"]
    now = timezone.now()
    # Every reference may be called (so every catalogue page computes fatigue), half also with company
    # scopes; consent is asked for the first half below.
    asked = bulk_references(org, count - count // 2, scopes=("call",))
    other = bulk_references(org, count // 2, scopes=("call", "case_study", "logo"))
    references = asked + other
    with tenant_context(org):
        for n, reference in enumerate(references):
            reference.publication = ("attributed", "anonymised", "internal_only")[n % 3]
            reference.owner = carol if n % 2 else None
        Reference.objects.bulk_update(references, ["publication", "owner"])
        ReferenceAsset.objects.bulk_create(
            ReferenceAsset(organization=org, reference=reference, kind="quote", text=f"Quote {reference.pk}")
            for reference in references
        )
        ReferenceHold.objects.bulk_create(
            ReferenceHold(organization=org, reference=reference, kind="review", source=f"perf:{n}", reason="Held")
            for n, reference in enumerate(references)
            if n % 7 == 0
        )
        # Requests in every state, by different salespeople; the queue lists the pending ones.
        statuses = ("pending", "approved", "completed", "declined", "cancelled")
        requests = UsageRequest.objects.bulk_create(
            UsageRequest(
                organization=org,
                reference=reference,
                scope="call" if n < len(asked) else "case_study",
                requested_by=world.salespeople[n % len(world.salespeople)],
                opportunity_name=f"Deal {world.size + n}",
                status=statuses[n % 5],
                decided_by=carol if n % 5 else None,
                decided_at=now if n % 5 else None,
            )
            for n, reference in enumerate(references)
        )
        used = [r for r in requests if r.status in ("approved", "completed")]
        events = UsageEvent.objects.bulk_create(
            UsageEvent(
                organization=org,
                reference_id=r.reference_id,
                contact_id=r.reference.advocate_id,
                usage_request=r,
                kind=r.status,
                scope=r.scope,
                actor=carol,
                salesperson_label=r.requested_by.username,
                opportunity_name=r.opportunity_name,
            )
            for r in used
        )
        UsageNotification.objects.bulk_create(
            UsageNotification(organization=org, usage_request=e.usage_request, event=e.kind, status="sent")
            for e in events
        )
        incentives = Incentive.objects.bulk_create(
            Incentive(
                organization=org,
                contact_id=reference.advocate_id if n % 2 else None,
                account_id=reference.account_id,
                kind=("gift_card", "discount", "donation")[n % 3],
                value=Decimal(n + 1),
                currency="EUR",
                given_on=timezone.localdate() - timedelta(days=n),
                given_by="AE",
                recorded_by=world.salespeople[n % len(world.salespeople)],
            )
            for n, reference in enumerate(references)
        )
        ReviewFlag.objects.bulk_create(
            ReviewFlag(
                organization=org,
                reference=reference,
                incentive=incentive if n % 3 else None,
                source_key=f"incentive:{incentive.pk}" if n % 3 else f"text:reference:{reference.pk}:reward",
                reason="Incentive recorded",
                matched_text="" if n % 3 else "…a reward…",
                # Open ones fill the review queue; the cleared ones name who cleared them.
                status=FlagStatus.OPEN if n % 4 else FlagStatus.CLEARED,
                resolved_by=None if n % 4 else people["dave"],
                resolved_at=None if n % 4 else now,
            )
            for n, (reference, incentive) in enumerate(zip(references, incentives, strict=True))
        )
        actors = [alice, carol, people["dave"], *world.salespeople]
        AuditEvent.objects.bulk_create(
            AuditEvent(
                organization=org,
                actor=actors[n % len(actors)],
                actor_label=actors[n % len(actors)].username,
                action=("reference.created", "usage.approved", "member.invited")[n % 3],
                object_type="reference",
                object_id=str(reference.pk),
                object_repr=reference.title,
            )
            for n, reference in enumerate(references)
        )
        users = [UserFactory.build(username=f"perf-member-{world.size + n}") for n in range(count)]
        for user in users:
            user.password = "!"  # unusable: hashing 200 passwords would dominate the build
        type(users[0]).objects.bulk_create(users)
        roles = (Role.SALES, Role.REFERENCE_MANAGER, Role.COMPLIANCE, Role.ADMIN)
        Membership.objects.bulk_create(
            Membership(organization=org, user=user, role=roles[n % 4], is_active=bool(n % 6))
            for n, user in enumerate(users)
        )
        Invitation.objects.bulk_create(
            Invitation(
                organization=org,
                email=f"invitee{world.size + n}@example.com",
                role=roles[n % 4],
                invited_by=(alice, carol)[n % 2],
                expires_at=now + timedelta(days=7),
            )
            for n in range(count)
        )
        ApiToken.objects.bulk_create(
            ApiToken(
                organization=org,
                membership=world.memberships["alice"],
                name=f"script {world.size + n}",
                key_hash=hashlib.sha256(f"perf-{world.size + n}".encode()).hexdigest(),
                prefix=f"pf{world.size + n}",
                last_used_at=now if n % 2 else None,
            )
            for n in range(count)
        )
        first_version = PrivacyPolicy.objects.count() + 1
        PrivacyPolicy.objects.bulk_create(
            PrivacyPolicy(
                organization=org,
                version=first_version + n,
                status="published",
                title=f"Policy {first_version + n}",
                body="We keep your name and your consent records.",
                effective_date=timezone.localdate() - timedelta(days=2 * count - n),
                published_at=now,
                published_by=(alice, carol)[n % 2],
                created_by=(carol, alice)[n % 2],
            )
            for n in range(count)
        )
    # Other organizations (only the superuser's admin lists them) and per-reference access grants.
    Organization.objects.bulk_create(
        Organization(name=f"Neighbour {world.size + n}", slug=f"perf-neighbour-{world.size + n}") for n in range(count)
    )
    permission = Permission.objects.get(content_type__app_label="references", codename=PERMISSION_CODENAME)
    groups = Group.objects.bulk_create(Group(name=f"perf-team-{world.size + n}") for n in range(count))
    with tenant_context(org):
        ReferenceUserObjectPermission.objects.bulk_create(
            ReferenceUserObjectPermission(
                organization=org,
                permission=permission,
                user=world.salespeople[n % len(world.salespeople)],
                content_object=reference,
            )
            for n, reference in enumerate(references)
        )
        ReferenceGroupObjectPermission.objects.bulk_create(
            ReferenceGroupObjectPermission(
                organization=org, permission=permission, group=group, content_object=reference
            )
            for group, reference in zip(groups, references, strict=True)
        )
    # Consent through the services, so the ledger is a real hash chain and the states follow from it:
    # granted (some later revoked, which opens a takedown where a use was completed), or only asked.
    for n, reference in enumerate(asked):
        case = ConsentCase(organization=org, reference=reference, advocate=reference.advocate)
        if n % 4 == 3:
            ask(case, "quote", actor=carol)
            continue
        ask_and_grant(case, "quote", "call")
        if n % 2:
            with tenant_context(org):
                quote = ConsentState.objects.get(reference=reference, scope="quote")
                UsageRequest.objects.create(
                    reference=reference,
                    scope="quote",
                    requested_by=people["bob"],
                    opportunity_name="Q",
                    status="completed",
                )
                consent_revoke(organization=org, contact=None, state_ids=[quote.pk], actor=carol, note="asked to")
    analyze(
        "references_usagerequest",
        "references_usageevent",
        "references_incentive",
        "references_reviewflag",
        "references_referenceasset",
        "references_referencehold",
        "audit_auditevent",
        "tenancy_membership",
        "tenancy_invitation",
        "tenancy_apitoken",
        "tenancy_organization",
        "references_referenceuserobjectpermission",
        "references_referencegroupobjectpermission",
        "privacy_privacypolicy",
        "consent_consentrequest",
        "consent_consentevent",
        "consent_consentstate",
        "consent_takedowntask",
        "consent_consentmessage",
    )
    world.size = size


# --- Counting ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    queries: int
    rows: int  # rows shown: the API page's results, else the body's length (which grows with the rows)


def _measure_one(client: Any, url: str, params: dict[str, str]) -> Measure:
    """Queries of one request, after a first one that warms sessions, content types and token touches."""
    _body(client.get(url, params), url)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params)
        # Inside the capture: a streamed body (the ledger CSV) runs its queries while it is read.
        body = _body(response, url)
    if response.get("Content-Type", "").startswith("application/json"):
        rows = len(response.json()["results"])
    else:
        rows = len(body)
    return Measure(len(captured.captured_queries), rows)


def _body(response: Any, url: str) -> bytes:
    assert response.status_code == 200, url
    return b"".join(response.streaming_content) if response.streaming else response.content


def _url_name(name: str) -> str:
    return name.partition("?")[0]


def _measure(clients: dict[str, Any], api_clients: dict[str, APIClient]) -> dict[str, Measure]:
    counts: dict[str, Measure] = {}
    for name, (who, params) in HTML_LISTS.items():
        url = reverse(_url_name(name), kwargs={"organization_slug": SLUG})
        counts[f"html {name}"] = _measure_one(clients[who], url, params)
    for basename, who in API_LISTS.items():
        # page_size 100: the small page holds every row, the large one 100 of them.
        counts[f"api {basename}"] = _measure_one(api_clients[who], reverse(f"{basename}-list"), {"page_size": "100"})
    for label, who in ADMIN_LISTS.items():
        app_label, model = label.split(".")
        counts[f"admin {label}"] = _measure_one(clients[who], reverse(f"admin:{app_label}_{model}_changelist"), {})
    return counts


@pytest.fixture(scope="module")
def measured(django_db_setup: None, django_db_blocker: Any) -> Iterator[dict[str, tuple[Measure, Measure]]]:
    """Every list measured at SMALL and at LARGE rows: {name: (small, large)}."""
    with django_db_blocker.unblock():
        # Rolled back at the end, as a test's transaction would be: nothing leaks to other modules.
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            world = _cast()
            published_policy(world.organization)
            clients: dict[str, Any] = {"anonymous": Client()}
            for name, user in world.people.items():  # alice, bob, carol, dave and root
                clients[name] = Client()
                clients[name].force_login(user)
            api_clients: dict[str, APIClient] = {}
            for name, membership in world.memberships.items():
                with tenant_context(world.organization):
                    _token, key = api_token_create(organization=world.organization, membership=membership, actor=None)
                api_clients[name] = APIClient()
                api_clients[name].credentials(HTTP_AUTHORIZATION=f"Token {key}")
            _grow(world, SMALL)
            small = _measure(clients, api_clients)
            _grow(world, LARGE)
            large = _measure(clients, api_clients)
            yield {name: (small[name], large[name]) for name in small}
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


def _assert_constant(measured: dict[str, tuple[Measure, Measure]], name: str) -> None:
    small, large = measured[name]
    # A list that shows no more at 200 rows than at 10 is not reached by the data: its count proves nothing.
    assert large.rows > small.rows, f"{name}: shows no more at {LARGE} rows than at {SMALL}"
    assert large.queries == small.queries, (
        f"{name}: {small.queries} queries at {SMALL} rows, {large.queries} at {LARGE} (a query per row?)"
    )


@pytest.mark.parametrize("name", list(HTML_LISTS))
def test_the_page_lists_in_constant_queries(measured: dict[str, tuple[Measure, Measure]], name: str) -> None:
    _assert_constant(measured, f"html {name}")


@pytest.mark.parametrize("basename", list(API_LISTS))
def test_the_api_lists_in_constant_queries(measured: dict[str, tuple[Measure, Measure]], basename: str) -> None:
    _assert_constant(measured, f"api {basename}")


@pytest.mark.parametrize("label", list(ADMIN_LISTS))
def test_the_admin_lists_in_constant_queries(measured: dict[str, tuple[Measure, Measure]], label: str) -> None:
    _assert_constant(measured, f"admin {label}")


# --- Meta-tests: nothing listed goes unmeasured -----------------------------------------------------


def test_every_api_list_route_is_measured() -> None:
    routes = {basename for _prefix, viewset, basename in router.registry if hasattr(viewset, "list")}
    assert routes - set(API_LISTS) == set(), "API lists with no constant-query test: add them to API_LISTS"
    assert set(API_LISTS) - routes == set(), "API_LISTS names routes the router no longer has"


def _named_urls(patterns: list[Any], namespace: str = "", prefix: str = "") -> set[str]:
    found: set[str] = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            route = prefix + str(pattern.pattern)
            if route.startswith(("admin/", "api/v1/")):
                continue  # the admin and the API are walked by their own meta-tests
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            found |= _named_urls(pattern.url_patterns, inner, route)
        elif isinstance(pattern, URLPattern) and pattern.name:
            found.add(namespace + pattern.name)
    return found


def test_every_named_page_is_measured_or_exempted_with_a_reason() -> None:
    pages = _named_urls(get_resolver().url_patterns)
    measured = {_url_name(name) for name in HTML_LISTS}
    unclassified = pages - measured - set(HTML_EXEMPT)
    assert unclassified == set(), (
        "pages with no constant-query test: add lists to HTML_LISTS, other pages to HTML_EXEMPT with the reason"
    )
    assert (measured | set(HTML_EXEMPT)) - pages == set(), "registries name pages the URLconf no longer has"
    assert measured.isdisjoint(HTML_EXEMPT)
    assert all(HTML_EXEMPT.values())


def test_every_admin_changelist_is_measured() -> None:
    ours = {"tenancy", "audit", "privacy", "references", "consent", "feedback"}
    registered = {model._meta.label_lower for model in admin.site._registry if model._meta.app_label in ours}
    assert registered - set(ADMIN_LISTS) - set(ADMIN_EXEMPT) == set(), "admin models with no constant-query test"
    assert (set(ADMIN_LISTS) | set(ADMIN_EXEMPT)) - registered == set(), "registries name models the admin lacks"
    assert set(ADMIN_LISTS).isdisjoint(ADMIN_EXEMPT)
