from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "privacy"
    verbose_name = "Privacy"

    def seed_demo(self, *, organization: Any, members: dict[str, Any], stdout: Any) -> None:
        """``manage.py seed_demo`` hook: two published privacy policy versions and a draft (idempotent)."""
        from .demo import seed_privacy_policy

        created = seed_privacy_policy(organization=organization, members=members)
        if created:
            stdout.write(f"  + privacy policy: {created} versions (2 published, 1 draft)")
