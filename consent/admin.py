"""Django admin for the consent app, through refmgr.tenancy.admin.TenantAdmin."""

from __future__ import annotations
