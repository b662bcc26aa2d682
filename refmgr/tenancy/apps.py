from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class TenancyConfig(AppConfig):
    name = "refmgr.tenancy"
    label = "tenancy"
    verbose_name = "Organizations and members"

    def ready(self) -> None:
        from . import rls

        rls.connect_signal()


class RefmgrAdminConfig(admin_apps.AdminConfig):
    """Django admin with refmgr's site, so every app's ``@admin.register`` lands on it."""

    default = False
    default_site = "refmgr.tenancy.admin_site.RefmgrAdminSite"
