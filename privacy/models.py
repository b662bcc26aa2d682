"""Models of the privacy app (see DESIGN.md)."""

from __future__ import annotations
