"""Resolve the organization of a request and run the whole request inside it."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from . import selectors
from .context import activate_cross_organization_for_request, request_scope, tenant_context

ORGANIZATION_PATH = re.compile(r"^/o/(?P<slug>[^/]+)/")
ADMIN_PATH = "/admin/"


def organization_public(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Mark a view under ``/o/<slug>/`` as open to anyone (the privacy page, the feedback form)."""
    view.organization_public = True  # type: ignore[attr-defined]
    return view


class TenantMiddleware:
    """Every request runs in a fresh organization scope that is reset at the end.

    - ``/o/<slug>/…``: the organization by slug; unknown or inactive slugs,
      non-members and deactivated members get a 404 (not a 403: whether an
      organization exists is none of a stranger's business). Anonymous users
      are sent to sign in, except on views marked :func:`organization_public`.
    - ``/admin/``: staff work in their active organization; a superuser also
      reads across organizations.
    - ``/api/``: the token's authentication sets the organization.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.organization = None  # type: ignore[attr-defined]
        request.membership = None  # type: ignore[attr-defined]
        with request_scope():
            match = ORGANIZATION_PATH.match(request.path_info)
            if match:
                return self._organization_request(request, match["slug"])
            if request.path_info.startswith(ADMIN_PATH) and request.user.is_authenticated:
                return self._admin_request(request)
            return self.get_response(request)

    def _organization_request(self, request: HttpRequest, slug: str) -> HttpResponse:
        organization = selectors.organization_get_by_slug(slug=slug)
        if organization is None:
            raise Http404("No such organization")
        with tenant_context(organization):
            if not self._is_public(request):
                if not request.user.is_authenticated:
                    from django.contrib.auth.views import redirect_to_login

                    return redirect_to_login(request.get_full_path())
                membership = selectors.membership_for_user(organization=organization, user=request.user)
                if membership is None:
                    raise Http404("No such organization")
                request.membership = membership  # type: ignore[attr-defined]
                if request.session.get(selectors.ACTIVE_ORGANIZATION_SESSION_KEY) != organization.pk:
                    # Only on a change: writing every time would save the session on every page.
                    request.session[selectors.ACTIVE_ORGANIZATION_SESSION_KEY] = organization.pk
            # Set only now, so a 404 page for a stranger cannot name the organization.
            request.organization = organization  # type: ignore[attr-defined]
            return self.get_response(request)

    def _admin_request(self, request: HttpRequest) -> HttpResponse:
        membership = selectors.admin_membership_for_session(request=request)
        if membership is None:
            if request.user.is_superuser:
                activate_cross_organization_for_request("superuser in Django admin")
            return self.get_response(request)
        with tenant_context(membership.organization):
            request.organization = membership.organization  # type: ignore[attr-defined]
            request.membership = membership  # type: ignore[attr-defined]
            if request.user.is_superuser:
                activate_cross_organization_for_request("superuser in Django admin")
            return self.get_response(request)

    @staticmethod
    def _is_public(request: HttpRequest) -> bool:
        try:
            view = resolve(request.path_info).func
        except Resolver404:
            return False
        return bool(getattr(view, "organization_public", False))
