"""Pages for signing in, choosing an organization and managing members (thin: services do the work)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import selectors
from .permissions import member_required


@never_cache
def home(request: HttpRequest) -> HttpResponse:
    """Signed-in users land on their organization's home page; several organizations get a chooser."""
    if not request.user.is_authenticated:
        return redirect("login")
    memberships = selectors.memberships_of_user(user=request.user)
    active_id = request.session.get(selectors.ACTIVE_ORGANIZATION_SESSION_KEY)
    for membership in memberships:
        if membership.organization_id == active_id:
            return redirect("tenancy:dashboard", organization_slug=membership.organization.slug)
    if len(memberships) == 1:
        return redirect("tenancy:dashboard", organization_slug=memberships[0].organization.slug)
    return render(request, "tenancy/choose_organization.html", {"memberships": memberships})


@login_required
def organization_choose(request: HttpRequest) -> HttpResponse:
    memberships = selectors.memberships_of_user(user=request.user)
    return render(request, "tenancy/choose_organization.html", {"memberships": memberships})


@member_required
def dashboard(request: HttpRequest, organization_slug: str) -> HttpResponse:
    return render(request, "tenancy/dashboard.html", {})


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    return render(request, "tenancy/invitation_invalid.html", status=404)


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness and database reachability, for the load balancer and docker-compose."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", status=404)


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "403.html", status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    return render(request, "500.html", status=500)
