"""The current organization: one context variable, always restored.

Every tenant-owned query runs inside exactly one organization. The request
middleware, the API authentication, Celery's ``TenantTask`` and management
commands set it; nothing falls back to "all organizations" when it is unset.
``tenant_context`` restores the previous value in ``finally`` (as
django-tenants' ``tenant_context`` does) so an exception can never leave an
organization behind for the next request or task on the same thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Organization


class OrganizationNotSet(RuntimeError):
    """A tenant-owned query or write ran outside any organization context."""


_current_organization: ContextVar[Organization | None] = ContextVar("refmgr_organization", default=None)
_cross_organization: ContextVar[str | None] = ContextVar("refmgr_cross_organization", default=None)
_request_scope: ContextVar[bool] = ContextVar("refmgr_request_scope", default=False)


def get_current_organization() -> Organization:
    """The organization of the running request, task or command; raises when there is none."""
    organization = _current_organization.get()
    if organization is None:
        raise OrganizationNotSet(
            "No organization context: wrap the code in `with tenant_context(organization):` "
            "or use `Model.all_tenants` deliberately."
        )
    return organization


def current_organization_or_none() -> Organization | None:
    return _current_organization.get()


def cross_organization_reason() -> str | None:
    """Why the running code may read across organizations, or None (the normal case)."""
    return _cross_organization.get()


@contextmanager
def tenant_context(organization: Organization) -> Iterator[Organization]:
    """Run the block inside ``organization``; the previous context comes back afterwards."""
    if organization is None or organization.pk is None:
        raise OrganizationNotSet("tenant_context() needs a saved organization")
    token = _current_organization.set(organization)
    try:
        yield organization
    finally:
        _current_organization.reset(token)


@contextmanager
def cross_organization(reason: str) -> Iterator[None]:
    """Allow reads and writes across organizations for the block, on PostgreSQL too.

    This is the database-side twin of ``Model.all_tenants``: row-level
    security lets a transaction past the organization policy only when this
    is active. Use it for the few places that are cross-organization by
    nature (a superuser in Django admin, the organization switcher, set-based
    sweeps) and say why; ``grep cross_organization`` lists them all.
    """
    if not reason:
        raise ValueError("cross_organization() needs a reason")
    token = _cross_organization.set(reason)
    try:
        yield
    finally:
        _cross_organization.reset(token)


@contextmanager
def request_scope() -> Iterator[None]:
    """A fresh, empty context for one request; anything set inside is undone at the end.

    DRF authenticates lazily inside the view, so it cannot use a ``with``
    block; it calls :func:`activate_for_request` instead, and this scope's
    reset removes that organization when the request ends.
    """
    tokens = (_current_organization.set(None), _cross_organization.set(None), _request_scope.set(True))
    try:
        yield
    finally:
        _request_scope.reset(tokens[2])
        _cross_organization.reset(tokens[1])
        _current_organization.reset(tokens[0])


def activate_for_request(organization: Organization) -> None:
    """Set the organization for the rest of the current request (API authentication)."""
    if not _request_scope.get():
        raise OrganizationNotSet("activate_for_request() is only valid inside the request middleware's scope")
    _current_organization.set(organization)


def activate_cross_organization_for_request(reason: str) -> None:
    """Let the rest of this request read across organizations (a superuser in Django admin)."""
    if not _request_scope.get():
        raise OrganizationNotSet("activate_cross_organization_for_request() is only valid inside a request scope")
    _cross_organization.set(reason)


def assert_current_organization(organization: Organization) -> None:
    """Services and selectors take the organization explicitly *and* check it against the
    context, so a caller can never act on one organization while running in another."""
    if get_current_organization().pk != organization.pk:
        raise ValueError("The organization passed does not match the current organization context")
