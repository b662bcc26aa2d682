"""Restricted references: limited to named users or groups (django-guardian), on top of organization scoping.

Placeholder until restrictions land: nothing is restricted. Every page,
search and API list of references filters through :func:`restriction_filter`,
so turning restrictions on changes this module only.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q


def restriction_filter(*, user: Any) -> Q:
    """A filter for ``Reference`` querysets that keeps only references ``user`` may see."""
    return Q()
