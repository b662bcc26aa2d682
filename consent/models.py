"""Models of the consent app (see DESIGN.md)."""

from __future__ import annotations
