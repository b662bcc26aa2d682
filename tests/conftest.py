"""Fixtures live in tests/fixtures/<area>.py, one module an area (no god file)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from refmgr.tenancy.context import _cross_organization, _current_organization

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.tenancy",
    "tests.fixtures.browser",
]


@pytest.fixture(autouse=True)
def _no_organization_leaks() -> Iterator[None]:
    """No test may leave an organization (or a cross-organization grant) behind."""
    assert _current_organization.get() is None, "a previous test leaked an organization context"
    yield
    assert _current_organization.get() is None, "this test leaked an organization context"
    assert _cross_organization.get() is None, "this test leaked a cross-organization context"
