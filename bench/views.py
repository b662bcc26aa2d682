"""Bench-only views, the floors the pages are measured against (served by ``bench/urls.py`` only).

- :func:`minimal`: ``HttpResponse("ok")`` through the whole middleware stack, the fixed cost of any request.
- :func:`plain`: the statements a page sent, captured by ``bench/pages.py`` (each already carrying its
  row-level security prefix, as the app sent it), replayed on the raw driver cursor and returned as
  ``JsonResponse`` of the rows: the page's database work and Django's request path, with no template,
  no serializer, no form and no ORM.

The captured statements come from the JSON file named by ``BENCH_CAPTURE_FILE`` (written by the pages
stage, read by gunicorn's workers too), loaded once per process.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse


class _Encoder(DjangoJSONEncoder):
    def default(self, o: Any) -> Any:
        try:
            return super().default(o)
        except TypeError:
            return str(o)  # tsvectors, memoryviews: the floor only needs them on the wire


@cache
def _captured() -> dict[str, list[str]]:
    path = os.environ.get("BENCH_CAPTURE_FILE", "")
    if not path or not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return {key: page["statements"] for key, page in json.load(handle).items()}


def reload_captured() -> None:
    """Forget the loaded statements (the pages stage rewrites the file as it captures)."""
    _captured.cache_clear()


def replay(statements: list[str]) -> list[list[Any]]:
    """Run ``statements`` as sent by the app on this process's connection; the rows of each SELECT."""
    connection.ensure_connection()
    rows: list[list[Any]] = []
    # The driver's own cursor: the statements already hold their organization prefix and literal
    # parameters, so they must not pass through the app's execute wrapper a second time.
    with connection.connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
            if cursor.description is not None:
                rows.append(cursor.fetchall())
    return rows


def minimal(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def plain(request: HttpRequest, key: str) -> JsonResponse:
    statements = _captured().get(key)
    if statements is None:
        raise Http404("no captured page with this key")
    return JsonResponse({"rows": replay(statements)}, encoder=_Encoder)
