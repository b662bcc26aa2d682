"""Django admin for the privacy app, through refmgr.tenancy.admin.TenantAdmin."""

from __future__ import annotations
