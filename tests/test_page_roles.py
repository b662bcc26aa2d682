"""Every organization page declares who may open it: a role check or an explicit public mark."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, get_resolver


def _organization_views(patterns: list, prefix: str = "") -> list[tuple[str, object]]:
    found = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found += _organization_views(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and route.startswith("o/"):
            found.append((route, pattern.callback))
    return found


def test_it_guards_every_organization_page_with_a_role_or_a_public_mark():
    views = _organization_views(get_resolver().url_patterns)
    assert len(views) >= 5
    unguarded = [
        route
        for route, view in views
        if not getattr(view, "allowed_roles", None) and not getattr(view, "organization_public", False)
    ]
    assert unguarded == []
