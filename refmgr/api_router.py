"""/api/v1/: one router for every app's resources."""

from __future__ import annotations

from rest_framework.routers import DefaultRouter

from consent.api.views import ConsentEventViewSet, ConsentRequestViewSet, ConsentStateViewSet
from privacy.api.views import PrivacyPolicyViewSet
from references.api.incentives import IncentiveViewSet, ReviewFlagViewSet
from references.api.views import AccountViewSet, ContactViewSet, ReferenceViewSet, UsageRequestViewSet
from refmgr.audit.api import AuditEventViewSet
from refmgr.tenancy.api_views import MembershipViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("audit-events", AuditEventViewSet, basename="audit-event")
router.register("members", MembershipViewSet, basename="member")
router.register("accounts", AccountViewSet, basename="account")
router.register("contacts", ContactViewSet, basename="contact")
router.register("references", ReferenceViewSet, basename="reference")
router.register("usage-requests", UsageRequestViewSet, basename="usage-request")
router.register("incentives", IncentiveViewSet, basename="incentive")
router.register("review-flags", ReviewFlagViewSet, basename="review-flag")
router.register("privacy-policies", PrivacyPolicyViewSet, basename="privacy-policy")
router.register("consent-requests", ConsentRequestViewSet, basename="consent-request")
router.register("consent-events", ConsentEventViewSet, basename="consent-event")
router.register("consent-states", ConsentStateViewSet, basename="consent-state")

urlpatterns = router.urls
