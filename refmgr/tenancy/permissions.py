"""Roles: who may open which page. One place, so no view re-implements the check."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from .models import Membership, Role

ALL_ROLES = frozenset(Role.values)


def has_role(membership: Membership | None, roles: Iterable[str]) -> bool:
    return membership is not None and membership.is_active and membership.role in set(roles)


def role_required(*roles: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Allow an organization page to members with one of ``roles`` (403 to other members).

    Non-members never get this far: the middleware answers them 404.
    """
    unknown = set(roles) - ALL_ROLES
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not has_role(getattr(request, "membership", None), roles):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapped.allowed_roles = frozenset(roles)  # type: ignore[attr-defined]
        return wrapped

    return decorator


member_required = role_required(*ALL_ROLES)
