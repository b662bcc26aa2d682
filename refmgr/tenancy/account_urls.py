"""Sign-in, sign-out, password change and reset (Django's views, our templates)."""

from __future__ import annotations

from django.urls import include, path

from . import views

urlpatterns = [
    path("organizations/", views.organization_choose, name="organization_choose"),
    path("", include("django.contrib.auth.urls")),
]
