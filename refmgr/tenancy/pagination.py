"""API pagination (its own module: DRF imports it from settings while its generic views load)."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, pagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param


class StrictPageNumberPagination(pagination.PageNumberPagination):
    """Page-number pagination whose bad ``page`` answers 400 naming the field (not 404)."""

    page_size_query_param = "page_size"
    max_page_size = 100

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        try:
            return super().paginate_queryset(queryset, request, view)
        except exceptions.NotFound as error:
            raise exceptions.ValidationError({self.page_query_param: [str(error.detail)]}) from None


class KeysetPagination(pagination.BasePagination):
    """Cursor pagination for lists that grow large (``refmgr.common.pagination``).

    Every page costs what the first does, however deep; ``count`` stops at
    10,000 and ``count_capped`` says when it did. The order is the one the
    view (or ``?ordering=``) gave the queryset, made total with ``id``.
    """

    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100
    cursor_query_param = "cursor"
    default_ordering: tuple[str, ...] = ("-updated_at", "-id")

    def _page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if size < 1 or not raw.isascii():
            raise exceptions.ValidationError({self.page_size_query_param: ["A positive whole number, at most 100."]})
        return min(size, self.max_page_size)

    @staticmethod
    def _total_order(ordering: list[str]) -> list[str]:
        fields = [field for field in ordering if isinstance(field, str)] or []
        if not fields:
            return []
        if fields[-1].lstrip("-") not in ("id", "pk"):
            fields.append("-id" if fields[0].startswith("-") else "id")
        return fields

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any]:
        from refmgr.common.pagination import keyset_page

        if "page" in request.query_params:
            # A client written for the page-numbered lists gets told how this one pages, not page 1 silently.
            raise exceptions.ValidationError({"page": ["This list is paged by cursor: follow the `next` link."]})
        ordering = self._total_order(list(queryset.query.order_by)) or list(self.default_ordering)
        self.request = request
        self.page = keyset_page(
            queryset,
            ordering=ordering,
            per_page=self._page_size(request),
            cursor=request.query_params.get(self.cursor_query_param),
            # Led by a computed value (a search's rank), the order sorts every match whatever the
            # page, so the page's own statement counts them too; a column order walks an index.
            count_in_page=ordering[0].lstrip("-") in queryset.query.annotations,
        )
        return self.page.object_list

    def _link(self, cursor: str | None) -> str | None:
        if cursor is None:
            return None
        url = self.request.build_absolute_uri()
        if cursor == "":
            return remove_query_param(url, self.cursor_query_param)
        return replace_query_param(url, self.cursor_query_param, cursor)

    def get_paginated_response(self, data: Any) -> Response:
        return Response(
            {
                "count": self.page.count,
                "count_capped": self.page.count_capped,
                "next": self._link(self.page.next_cursor),
                "previous": self._link(self.page.previous_cursor),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["count", "count_capped", "results"],
            "properties": {
                "count": {"type": "integer", "example": 123, "description": "Exact up to 10,000, then 10,000."},
                "count_capped": {
                    "type": "boolean",
                    "example": False,
                    "description": "True when there are more than 10,000.",
                },
                "next": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "example": "https://refmgr.example/api/v1/references/?cursor=eyJ2IjpbXX0",
                },
                "previous": {"type": "string", "nullable": True, "format": "uri", "example": None},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "The page to show: the cursor in the `next` or `previous` link.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": "Results per page (at most 100).",
                "schema": {"type": "integer"},
            },
        ]
