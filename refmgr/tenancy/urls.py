"""Organization pages under /o/<slug>/."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "tenancy"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
]
