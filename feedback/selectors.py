"""Reads of the feedback app that pages and the API share."""

from __future__ import annotations
