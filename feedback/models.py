"""Models of the feedback app (see DESIGN.md)."""

from __future__ import annotations
