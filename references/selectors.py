"""Reads of the references app that pages and the API share."""

from __future__ import annotations
