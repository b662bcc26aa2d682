"""/api/v1/: one router for every app's resources."""

from __future__ import annotations

from rest_framework.routers import DefaultRouter

from refmgr.audit.api import AuditEventViewSet
from refmgr.tenancy.api_views import MembershipViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("audit-events", AuditEventViewSet, basename="audit-event")
router.register("members", MembershipViewSet, basename="member")

urlpatterns = router.urls
