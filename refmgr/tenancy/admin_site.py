"""The admin site class, in a module of its own.

Django instantiates ``default_site`` while it imports it; if that module
also registered models, they would land on a half-built site and vanish.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from .models import Role


def is_org_admin(request: HttpRequest) -> bool:
    membership = getattr(request, "membership", None)
    return membership is not None and membership.role == Role.ADMIN and request.user.is_staff


class RefmgrAdminSite(admin.AdminSite):
    site_header = "refmgr administration"
    site_title = "refmgr admin"
    index_title = "Audit and administration"

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and (user.is_superuser or is_org_admin(request)))
