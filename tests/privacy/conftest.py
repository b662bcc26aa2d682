"""Privacy policy versions for the tests, written through the services as the app writes them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from django.utils import timezone

from privacy.models import PrivacyPolicy
from privacy.services import privacy_policy_draft_create, privacy_policy_publish
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Organization


def days(n: int) -> date:
    return timezone.localdate() + timedelta(days=n)


def make_policy(
    organization: Organization,
    *,
    effective: date | None = None,
    publish: bool = True,
    title: str = "Our privacy policy",
    body: str = "We keep your name and email.\n\nYou may ask us to erase them.",
    summary: str = "",
    actor: Any = None,
) -> PrivacyPolicy:
    """A version of ``organization``; published as of its effective date when ``publish``."""
    effective = effective or timezone.localdate()
    with tenant_context(organization):
        has_published = PrivacyPolicy.objects.filter(status="published").exists()
        policy = privacy_policy_draft_create(
            organization=organization,
            actor=actor,
            title=title,
            body=body,
            summary_of_changes=summary or ("Changed things." if has_published else ""),
            effective_date=effective,
        )
        if publish:
            # Published on its effective day (or today for a future one), as the app would have.
            when = min(effective, timezone.localdate())
            now = timezone.make_aware(datetime.combine(when, time(9)))
            policy = privacy_policy_publish(organization=organization, policy=policy, actor=actor, now=now)
    return policy


@pytest.fixture
def policy_factory() -> Callable[..., PrivacyPolicy]:
    return make_policy
