"""Sign-in, sign-out, password change and reset (Django's views, our templates)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

urlpatterns = [
    path("organizations/", views.organization_choose, name="organization_choose"),
    # Someone already signed in who opens the sign-in page goes on to where they were heading.
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("", include("django.contrib.auth.urls")),
]
