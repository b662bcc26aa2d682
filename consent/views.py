"""Managers' consent pages. (Being built.)"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from refmgr.tenancy.permissions import role_required


@role_required("admin", "reference_manager", "compliance")
def overview(request: HttpRequest, organization_slug: str) -> HttpResponse:
    return HttpResponse("")


@role_required("admin", "reference_manager")
def takedowns(request: HttpRequest, organization_slug: str) -> HttpResponse:
    return HttpResponse("")
