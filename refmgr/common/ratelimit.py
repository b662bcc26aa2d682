"""A small per-IP rate limit for the public pages (no account: the consent link, the privacy policy).

A fixed window counted in Django's cache: ``cache.add`` starts the window's
counter (atomic: only the first request of a window creates it) and
``cache.incr`` counts (atomic on Redis; on the local-memory cache, within one
process). A fixed window lets a burst of up to twice the limit straddle a
boundary, which is fine for slowing down token guessing and scraping; it is
not a quota.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "m": 60, "h": 60 * 60}


def parse_rate(rate: str) -> tuple[int, int] | None:
    """``"60/m"`` → (60, 60): requests per window and the window in seconds; ``""`` or ``"0"`` → no limit."""
    rate = rate.strip()
    if rate in ("", "0"):
        return None
    count, _, period = rate.partition("/")
    if not count.isdigit() or period not in PERIODS:
        raise ImproperlyConfigured(f"RATELIMIT_PUBLIC: expected e.g. 60/m (per s, m or h), got {rate!r}")
    return int(count), PERIODS[period]


def _hit(key: str, window: int) -> int:
    """Count one request in ``key``'s window and return the count so far."""
    # The key lives a little longer than its window so it cannot expire between add and incr.
    cache.add(key, 0, timeout=window + 5)
    try:
        return cache.incr(key)
    except ValueError:  # evicted between add and incr (local-memory cache under pressure)
        cache.add(key, 1, timeout=window + 5)
        return 1


def too_many_requests(request: HttpRequest, retry_after: int) -> HttpResponse:
    """The friendly 429 page: a plain template, no database, no organization named."""
    response = HttpResponse(render_to_string("429.html", {"retry_after": retry_after}), status=429)
    response["Retry-After"] = str(retry_after)
    return response


def ratelimit_public(group: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Limit a public view to ``settings.RATELIMIT_PUBLIC`` requests per client address per window.

    ``group`` keeps separate counters for separate pages (a customer reading
    the privacy policy does not use up their consent page's allowance). The
    address is ``REMOTE_ADDR`` only: the server behind a proxy sets it from
    its own configuration, whereas X-Forwarded-For is whatever the client
    chose to send (the same rule as consent.evidence).
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            limit = parse_rate(getattr(settings, "RATELIMIT_PUBLIC", ""))
            if limit is None:
                return view(request, *args, **kwargs)
            allowed, window = limit
            now = int(time.time())
            address = request.META.get("REMOTE_ADDR", "") or "unknown"
            key = f"ratelimit:{group}:{address}:{now // window}"
            try:
                count = _hit(key, window)
            except Exception:
                # A cache outage must not take the customer's consent page down with it:
                # fail open, and say so in the log.
                logger.warning("rate limit cache unavailable; %s not limited", group, exc_info=True)
                return view(request, *args, **kwargs)
            if count > allowed:
                return too_many_requests(request, retry_after=window - now % window)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
