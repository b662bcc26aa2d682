"""API authentication and role permissions.

Kept apart from the viewsets (refmgr/tenancy/api.py) because DRF imports
these classes from its settings while ``rest_framework.views`` loads.
"""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from . import selectors, services
from .context import activate_for_request
from .models import Role


class OrganizationTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Token <key>``; the organization is the one the key is bound to."""

    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: expected 'Token <key>'.")
        try:
            key = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token header.") from None
        token = selectors.api_token_authenticate(key=key)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        activate_for_request(token.organization)
        request._request.organization = token.organization
        request._request.membership = token.membership
        services.api_token_touch(token=token)
        return token.membership.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class IsMember(permissions.BasePermission):
    """Authenticated through a token bound to an active membership."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return getattr(request._request, "membership", None) is not None


class HasRole(IsMember):
    """Reads for ``read_roles``, writes for ``write_roles`` as the view declares them."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        role = request._request.membership.role
        if request.method in permissions.SAFE_METHODS:
            allowed = getattr(view, "read_roles", Role.values)
        else:
            allowed = getattr(view, "write_roles", (Role.ADMIN,))
        return role in allowed
