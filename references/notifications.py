"""Emails about usage requests: to the reference managers when one arrives, to the salesperson after."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse

from refmgr.common.exceptions import TransientError
from refmgr.tenancy.context import assert_current_organization, get_current_organization
from refmgr.tenancy.models import Membership, Organization
from refmgr.tenancy.selectors import manager_emails

from .models import NotificationStatus, UsageNotification, UsageRequest

EVENTS = ("created", "approved", "declined", "cancelled", "withdrawn")


def _active_member(user: Any) -> bool:
    # Deals are confidential: nobody who has left the organization is emailed about them.
    return (
        user is not None
        and user.is_active
        and bool(user.email)
        and Membership.objects.filter(user=user, is_active=True).exists()
    )


def _recipients(usage_request: UsageRequest, event: str) -> list[str]:
    if event in ("created", "withdrawn"):
        owner = usage_request.reference.owner
        if _active_member(owner):
            return [owner.email]
        return manager_emails(organization=get_current_organization())
    requester = usage_request.requested_by
    return [requester.email] if _active_member(requester) else []


def usage_request_notify(*, organization: Organization, usage_request_id: int, event: str) -> str:
    """Send one notification at most once; returns what happened (sent, duplicate, nobody, gone)."""
    assert_current_organization(organization)
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    usage_request = (
        UsageRequest.objects.select_related("reference__owner", "requested_by", "decided_by")
        .filter(pk=usage_request_id)
        .first()
    )
    if usage_request is None:
        return "gone"
    recipients = _recipients(usage_request, event)
    if not recipients:
        return "nobody"
    # Everything that can fail for our own reasons happens before the claim,
    # so a claim is only ever left behind by the mail server itself.
    slug = organization.slug
    link = settings.SITE_URL.rstrip("/") + (
        reverse("references:queue", kwargs={"organization_slug": slug})
        if event in ("created", "withdrawn")
        else reverse("references:my_requests", kwargs={"organization_slug": slug})
    )
    context = {"usage_request": usage_request, "organization": organization, "event": event, "link": link}
    subject = render_to_string("references/email/usage_request_subject.txt", context).strip()
    body = render_to_string("references/email/usage_request.txt", context)
    try:
        # Claimed and committed before sending: a second task finds the row and stops.
        with transaction.atomic():
            claim = UsageNotification.objects.create(
                organization=organization, usage_request=usage_request, event=event, recipients=recipients
            )
    except IntegrityError:
        return "duplicate"
    try:
        send_mail(subject=subject, message=body, from_email=None, recipient_list=recipients)
    except OSError as exc:
        # The server refused before accepting the message: release the claim and retry.
        UsageNotification.objects.filter(pk=claim.pk).delete()
        raise TransientError(str(exc)) from exc
    UsageNotification.objects.filter(pk=claim.pk).update(status=NotificationStatus.SENT)
    return "sent"
