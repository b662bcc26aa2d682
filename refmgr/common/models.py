"""The base model every refmgr model starts from."""

from __future__ import annotations

from django.db import models


class BaseModel(models.Model):
    """Creation and last-change times, set by the database layer, never by hand."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
