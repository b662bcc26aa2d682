"""Demo data for ``manage.py seed_demo``: each organization's privacy policy, with some history."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django.utils import timezone

from refmgr.tenancy.models import Organization, Role

from .models import PrivacyPolicy
from .services import privacy_policy_draft_create, privacy_policy_publish

TITLE = "Privacy policy for our customer reference programme"

BODY = "\n\n".join(
    (
        "Who we are",
        (
            '{org} ("we") runs a customer reference programme: customers who are happy to vouch for us can take '
            "reference calls, give quotes, lend their logo or appear in case studies. This policy explains what "
            "personal data the programme uses and why. Questions go to {email}."
        ),
        "What we process",
        (
            "Your name, job title, company and business email address and phone number; the consents you gave, "
            "declined or revoked, with when and how, and the version of this policy and the exact wording you "
            "saw; the history of each use of your reference (who asked, for which opportunity, the outcome); "
            "feedback you send us."
        ),
        "Why, and on what basis",
        (
            "We use your data only for the reference uses you agreed to, and only while your consent lasts. The "
            "lawful basis is your consent (GDPR Article 6(1)(a)), given separately for each kind of use. You can "
            "withdraw it at any time with the link in every email; withdrawing is as easy as agreeing, and it "
            "stops new use at once."
        ),
        "Who sees it",
        (
            "Only the people in {org} whose role needs it: reference managers see your contact details; "
            "salespeople see them only for a use you approved. Every view of your contact details is logged. We "
            "do not sell your data or share it outside {org}, except with the prospective customer you agreed to "
            "speak to or be shown to."
        ),
        "How long we keep it",
        "{retention}",
        "Your rights",
        (
            "You may ask for a copy of everything we hold on you, for corrections, or for erasure, and you may "
            "object to or restrict our use of it. From your consent page you can see every use made of your "
            "reference and pause all requests. You may also complain to your data protection authority."
        ),
        "Contact",
        "Write to {email}. We answer within one month.",
    )
)

RETENTION_V1 = (
    "We keep your consent records and usage history for five years after your last consent ends, then delete them."
)
RETENTION_V2 = (
    "We keep your contact details while a consent is active and for 12 months after it ends. Consent records "
    "are kept for three years after they end, as proof of what you agreed to; usage history for three years "
    "after the use. Then everything is deleted."
)
SUMMARY_V2 = (
    "Usage history and consent records are now kept for three years instead of five, and contact details for 12 "
    "months after your last consent ends. We added how to see every use of your reference from your consent page."
)
SUMMARY_V3 = "Adds the feedback form: anonymous feedback stores nothing that identifies you."


def seed_privacy_policy(*, organization: Organization, members: dict[str, Any]) -> int:
    """Version 1 in force since eight months ago, version 2 since recently (announced ahead), a draft 3.

    Idempotent: an organization that has any version already is left alone,
    so the demo never adds to policies someone wrote by hand.
    """
    if PrivacyPolicy.objects.exists():
        return 0
    admin = members.get(Role.ADMIN)
    today = timezone.localdate()
    email = f"privacy@{organization.slug}.example"

    def text(retention: str) -> str:
        return BODY.format(org=organization.name, email=email, retention=retention)

    def at(day: Any) -> datetime:
        return timezone.make_aware(datetime.combine(day, time(9, 30)))

    v1_effective = today - timedelta(days=240)
    v1 = privacy_policy_draft_create(
        organization=organization, actor=admin, title=TITLE, body=text(RETENTION_V1), effective_date=v1_effective
    )
    privacy_policy_publish(organization=organization, policy=v1, actor=admin, now=at(v1_effective))
    # Published two weeks before it took effect, as people should be told of a change ahead.
    v2_effective = today - timedelta(days=20)
    v2 = privacy_policy_draft_create(
        organization=organization,
        actor=admin,
        title=TITLE,
        body=text(RETENTION_V2),
        summary_of_changes=SUMMARY_V2,
        effective_date=v2_effective,
    )
    privacy_policy_publish(organization=organization, policy=v2, actor=admin, now=at(v2_effective - timedelta(days=14)))
    privacy_policy_draft_create(
        organization=organization,
        actor=admin,
        title=TITLE,
        body=text(RETENTION_V2).replace(
            "feedback you send us.", "feedback you send us (nothing that identifies you if you send it anonymously)."
        ),
        summary_of_changes=SUMMARY_V3,
        effective_date=today + timedelta(days=30),
    )
    return 3
