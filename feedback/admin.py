"""Django admin for the feedback app, through refmgr.tenancy.admin.TenantAdmin."""

from __future__ import annotations
