"""The project's URLs: public pages, signed-in pages under /o/<slug>/, the API and admin."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from refmgr.tenancy import views as tenancy_views

organization_patterns = [
    path("", include("refmgr.tenancy.urls")),
    path("references/", include("references.urls")),
    path("consent/", include("consent.urls")),
    path("feedback/", include("feedback.urls")),
    path("privacy/", include("privacy.urls")),
]

urlpatterns = [
    path("", tenancy_views.home, name="home"),
    path("healthz", tenancy_views.healthz, name="healthz"),
    # Browsers ask for /favicon.ico on pages that name no icon (Django admin, the API docs).
    path("favicon.ico", tenancy_views.favicon),
    path("accounts/", include("refmgr.tenancy.account_urls")),
    path("invite/<str:token>/", tenancy_views.invitation_accept, name="invitation_accept"),
    path("consent/", include("consent.public_urls")),
    path("o/<slug:organization_slug>/", include(organization_patterns)),
    path("api/v1/", include("refmgr.api_router")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("admin/", admin.site.urls),
]

handler404 = "refmgr.tenancy.views.not_found"
handler403 = "refmgr.tenancy.views.forbidden"
handler500 = "refmgr.tenancy.views.server_error"
