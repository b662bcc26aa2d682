from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class ReferencesConfig(AppConfig):
    name = "references"
    verbose_name = "References"

    def seed_demo(self, *, organization: Any, members: dict[str, Any], stdout: Any) -> None:
        """``manage.py seed_demo`` hook: a few hundred references with usage history (idempotent)."""
        from .demo import seed_references

        created = seed_references(organization=organization, members=members)
        if created:
            stdout.write(f"  + {created} references with their accounts and contacts")
