"""API pagination (its own module: DRF imports it from settings while its generic views load)."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, pagination
from rest_framework.request import Request


class StrictPageNumberPagination(pagination.PageNumberPagination):
    """Page-number pagination whose bad ``page`` answers 400 naming the field (not 404)."""

    page_size_query_param = "page_size"
    max_page_size = 100

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        try:
            return super().paginate_queryset(queryset, request, view)
        except exceptions.NotFound as error:
            raise exceptions.ValidationError({self.page_query_param: [str(error.detail)]}) from None
