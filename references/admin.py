"""Django admin for the references app, through refmgr.tenancy.admin.TenantAdmin."""

from __future__ import annotations
