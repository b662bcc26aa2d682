"""Writes of the references app: every state change goes through a function here."""

from __future__ import annotations
