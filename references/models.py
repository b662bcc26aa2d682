"""Models of the references app (see DESIGN.md)."""

from __future__ import annotations
