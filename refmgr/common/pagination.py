"""Keyset ("cursor") pagination with a capped count, for lists that can hold 100,000 rows.

``OFFSET`` makes page 500 read and throw away 10,000 rows first (16.6 ms of SQL in the
largest benchmark organization, STACK.md); a keyset page asks for the rows *after* the
last one shown, so every page costs what the first does. An exact ``COUNT(*)`` of
100,000 matches costs as much as the page itself, so the count stops at
:data:`COUNT_CAP` and the page says "more than 10,000" beyond it.

The cursor is the sort key of the boundary row, the direction and the page's
position, as URL-safe base64 of JSON. It is not signed: it only narrows a queryset
that is already scoped to the organization and the user, so a forged cursor can at
most skip rows the user could see anyway. A malformed one falls back to the first
page, like Django's ``Paginator.get_page`` with a bad number.

Every ordering field must be non-null and the last one unique (``id``), so the order
is total and no row is skipped or repeated between pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Model, Q, QuerySet
from django.utils.dateparse import parse_datetime

COUNT_CAP = 10_000


@dataclass(frozen=True)
class KeysetPage:
    """One page: its rows, where it sits, and the cursors of its neighbours."""

    object_list: list[Any]
    number: int
    per_page: int
    next_cursor: str | None
    previous_cursor: str | None
    count: int
    count_capped: bool

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    @property
    def has_previous(self) -> bool:
        return self.previous_cursor is not None

    @property
    def has_other_pages(self) -> bool:
        return self.has_next or self.has_previous

    @property
    def start_index(self) -> int:
        """The 1-based position of the first row shown (0 on an empty page)."""
        return (self.number - 1) * self.per_page + 1 if self.object_list else 0

    @property
    def end_index(self) -> int:
        return self.start_index + len(self.object_list) - 1 if self.object_list else 0


@dataclass(frozen=True)
class _Cursor:
    values: list[Any]
    forward: bool
    number: int


def _field_value(row: Model, field: str) -> Any:
    value: Any = row
    for part in field.split("__"):
        value = getattr(value, part)
    return value


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"dt": value.isoformat()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot put {type(value).__name__} in a cursor")


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        parsed = parse_datetime(str(value.get("dt", "")))
        if parsed is None:
            raise ValueError("bad datetime in cursor")
        return parsed
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValueError("bad value in cursor")


def cursor_encode(values: Sequence[Any], *, forward: bool, number: int) -> str:
    payload = {"v": [_encode_value(value) for value in values], "f": forward, "n": number}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(cursor: str, *, fields: int) -> _Cursor | None:
    """The cursor's contents, or None when it is malformed or made for another sort."""
    if not cursor or len(cursor) > 2000:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        values = [_decode_value(value) for value in payload["v"]]
        forward, number = payload["f"], payload["n"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        return None
    if len(values) != fields or not isinstance(forward, bool) or not isinstance(number, int) or number < 2:
        return None
    return _Cursor(values=values, forward=forward, number=number)


def _beyond(ordering: Sequence[str], values: Sequence[Any], *, forward: bool) -> Q:
    """Rows strictly after ``values`` in ``ordering`` (strictly before when not ``forward``).

    Lexicographic: a > b on the first field, or equal there and greater on the
    second, and so on. The first field also gets a plain range bound, which is
    redundant but lets PostgreSQL start an index scan there instead of filtering.
    """
    condition = Q(pk__in=[])
    equal = Q()
    for field, value in zip(ordering, values, strict=True):
        name = field.lstrip("-")
        ascending = not field.startswith("-")
        after = "gt" if ascending == forward else "lt"
        condition |= equal & Q(**{f"{name}__{after}": value})
        equal &= Q(**{name: value})
    first = ordering[0].lstrip("-")
    bound = "gte" if (not ordering[0].startswith("-")) == forward else "lte"
    return Q(**{f"{first}__{bound}": values[0]}) & condition


def _reversed(ordering: Sequence[str]) -> list[str]:
    return [field[1:] if field.startswith("-") else f"-{field}" for field in ordering]


def capped_count(queryset: QuerySet[Any], cap: int | None = None) -> tuple[int, bool]:
    """How many rows ``queryset`` has, counting at most ``cap + 1``; and whether it went past ``cap``."""
    cap = COUNT_CAP if cap is None else cap
    counted = queryset.order_by().values("pk")[: cap + 1].count()
    return min(counted, cap), counted > cap


def keyset_page(
    queryset: QuerySet[Any],
    *,
    ordering: Sequence[str],
    per_page: int,
    cursor: str | None,
    count: bool = True,
    known_count: int | None = None,
    count_in_page: bool = False,
) -> KeysetPage:
    """The page of ``queryset`` that ``cursor`` points at (the first page without one).

    Two queries: the page (one row more than shown, to know whether another
    follows) and the capped count, skipped with ``count=False`` (then
    ``known_count`` is the count, when the caller has it from elsewhere).

    ``count_in_page`` counts in the page's own statement instead (``COUNT(*) OVER ()``,
    plus the pages before a forward cursor). It is right for an order that sorts every
    match anyway, such as search relevance: the rows are read once, not twice (the count
    was half the API's SQL for a search in the largest benchmark organization). It is wrong
    for an order an index walks, which stops after one page: the count would read every row.
    """
    if not ordering or ordering[-1].lstrip("-") not in ("id", "pk"):
        raise ValueError("keyset ordering must end with the primary key")
    position = cursor_decode(cursor or "", fields=len(ordering))
    # Walking back, the window would count the rows before the cursor: count those pages apart.
    windowed = count and count_in_page and (position is None or position.forward)
    if windowed:
        from django.db.models import Count, Window

        queryset = queryset.annotate(keyset_total=Window(Count("pk")))
    rows: list[Any] = []
    if position is not None:
        direction = ordering if position.forward else _reversed(ordering)
        beyond = _beyond(ordering, position.values, forward=position.forward)
        rows = list(queryset.filter(beyond).order_by(*direction)[: per_page + 1])
        more = len(rows) > per_page
        rows = rows[:per_page]
        if position.forward:
            number, has_before, has_after = position.number, True, more
        else:
            # Walking back past the first page (rows removed meanwhile) lands on page 1.
            rows.reverse()
            number, has_before, has_after = position.number, more and position.number > 1, True
            if not has_before:
                number = 1
    if not rows:
        # No cursor, a malformed one, or one past the end (rows gone since the link was made).
        rows = list(queryset.order_by(*ordering)[: per_page + 1])
        number, has_before, has_after = 1, False, len(rows) > per_page
        rows = rows[:per_page]
    keys = [field.lstrip("-") for field in ordering]
    next_cursor = previous_cursor = None
    if rows and has_after:
        next_cursor = cursor_encode([_field_value(rows[-1], key) for key in keys], forward=True, number=number + 1)
    if rows and has_before:
        # Page 1 is the list without a cursor, so its link stays the plain address.
        previous_cursor = (
            cursor_encode([_field_value(rows[0], key) for key in keys], forward=False, number=number - 1)
            if number > 2
            else ""
        )
    if windowed and rows:
        # Every row carries the count of the rows at and after this page; the pages before it are full.
        counted = rows[0].keyset_total + (number - 1) * per_page
        total, capped = min(counted, COUNT_CAP), counted > COUNT_CAP
    elif windowed and number == 1:
        total, capped = 0, False
    else:
        total, capped = capped_count(queryset) if count else (known_count or 0, False)
    return KeysetPage(
        object_list=rows,
        number=number,
        per_page=per_page,
        next_cursor=next_cursor,
        previous_cursor=previous_cursor,
        count=total,
        count_capped=capped,
    )


__all__ = ["COUNT_CAP", "KeysetPage", "capped_count", "cursor_decode", "cursor_encode", "keyset_page"]
