from __future__ import annotations

from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "refmgr.common"
    label = "common"
    verbose_name = "Common"
