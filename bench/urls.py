"""The bench URLconf: the application's URLs plus the floors of ``bench/views.py`` (bench settings only)."""

from __future__ import annotations

from django.urls import path

from refmgr import urls as app_urls

from . import views

urlpatterns = [
    path("bench/ok/", views.minimal, name="bench-minimal"),
    path("bench/plain/<str:key>/", views.plain, name="bench-plain"),
    *app_urls.urlpatterns,
]

handler404 = app_urls.handler404
handler403 = app_urls.handler403
handler500 = app_urls.handler500
