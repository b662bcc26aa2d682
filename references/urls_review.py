"""References pages: incentives (managers, under manage/) and the compliance review queue (under review/)."""

from __future__ import annotations

from django.urls import path

from . import review_views as views

urlpatterns = [
    path("manage/incentives/", views.incentive_list, name="incentive_list"),
    path("manage/incentives/new/", views.incentive_create, name="incentive_create"),
    path("manage/incentives/<int:incentive_id>/edit/", views.incentive_edit, name="incentive_edit"),
    path("manage/incentives/import/", views.incentive_import, name="incentive_import"),
    path("review/", views.review_queue, name="review_queue"),
    path("review/<int:flag_id>/", views.review_decide, name="review_decide"),
]
