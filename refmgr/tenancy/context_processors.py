"""Template context: the current organization, the member's role and the switcher's list."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from . import selectors
from .models import Role


def organization(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    user = getattr(request, "user", None)
    switcher: list[Any] = []
    if user is not None and user.is_authenticated:
        # A list, evaluated here inside the request's scope, never a lazy queryset.
        switcher = selectors.memberships_of_user(user=user)
    role = membership.role if membership is not None else None
    return {
        "organization": getattr(request, "organization", None),
        "membership": membership,
        "switcher_memberships": switcher,
        "is_org_admin": role == Role.ADMIN,
        "is_reference_manager": role in (Role.ADMIN, Role.REFERENCE_MANAGER),
        "is_sales": role == Role.SALES,
        "is_compliance": role in (Role.ADMIN, Role.COMPLIANCE),
    }
