"""Pages of the consent app, under /o/<slug>/consent/ (reference managers, admins, compliance)."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "consent"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("takedowns/", views.takedowns, name="takedowns"),
]
