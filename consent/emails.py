"""The emails of the consent app, built from an outbox row at sending time.

Customer emails carry a fresh link (its token exists only in the email);
every one of them opens the person's "manage my consent" page.
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from references.models import Scope
from refmgr.tenancy.models import Organization
from refmgr.tenancy.selectors import manager_emails

from .models import ConsentMessage, ConsentStatus, MessageKind
from .selectors import consent_settings_get


def _absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def consent_url(token: str) -> str:
    return _absolute(reverse("consent_public:page", kwargs={"token": token}))


def _render(name: str, context: dict, to: list[str]) -> EmailMultiAlternatives:
    """Text and HTML parts from the same context; the HTML is self-contained (no images, no CDN)."""
    # One line, no header injection, and short enough for every mail client's list view.
    subject = " ".join(render_to_string(f"consent/email/{name}_subject.txt", context).split())[:150]
    body = render_to_string(f"consent/email/{name}.txt", context)
    email = EmailMultiAlternatives(
        subject=subject,
        body=body,
        to=to,
        # Stops out-of-office replies coming back to the no-reply sender (RFC 3834).
        headers={"Auto-Submitted": "auto-generated"},
    )
    html = render_to_string(f"consent/email/{name}.html", {**context, "subject": subject})
    email.attach_alternative(html, "text/html")
    return email


def message_email_build(*, organization: Organization, message: ConsentMessage) -> EmailMultiAlternatives | None:
    """The email for one outbox row, or None when it is no longer needed (nothing is sent then)."""
    from .services import consent_link_issue, consent_renewal_request

    context: dict = {"organization": organization, "message": message, "scopes": dict(Scope.choices)}
    with translation.override(settings.LANGUAGE_CODE):
        if message.kind in (MessageKind.LAPSING_DIGEST, MessageKind.TAKEDOWN):
            recipients = manager_emails(organization=organization)
            if not recipients:
                return None
            slug = organization.slug
            context["link"] = _absolute(
                reverse(
                    "consent:takedowns" if message.kind == MessageKind.TAKEDOWN else "consent:overview",
                    kwargs={"organization_slug": slug},
                )
            )
            return _render(message.kind, context, recipients)
        contact = message.contact
        if contact is None or not contact.email:
            return None
        context["contact"] = contact
        consent_request = message.consent_request
        if message.kind == MessageKind.REMINDER:
            state = message.state
            if state is None or state.status != ConsentStatus.GRANTED or state.valid_until != message.cycle_until:
                return None  # renewed, revoked or expired since it was queued
            if contact.requests_paused:
                return None  # paused all requests since it was queued: a reminder asks, so it waits too
            consent_request = consent_renewal_request(organization=organization, state=state)
            context["state"] = state
        elif message.kind == MessageKind.CONSENT_REQUEST:
            if consent_request is None or consent_request.status != "sent":
                return None  # superseded or cancelled before it went out
        elif message.kind == MessageKind.CONFIRMATION:
            consent_request = None  # the confirmation's link manages; the question is answered
            context["answered_request"] = message.consent_request
        _link, token = consent_link_issue(
            organization=organization,
            contact=contact,
            consent_request=consent_request
            if message.kind in (MessageKind.CONSENT_REQUEST, MessageKind.REMINDER)
            else None,
        )
        scopes = consent_request.scopes if consent_request is not None else message.payload.get("scopes", [])
        if message.kind == MessageKind.REMINDER and message.state is not None:
            scopes = [message.state.scope]
        if message.kind == MessageKind.CONFIRMATION and message.consent_request is not None:
            scopes = message.consent_request.scopes
        context.update(
            scope_labels=[Scope(scope).label for scope in scopes if scope in Scope.values],
            link=consent_url(token),
            consent_request=consent_request,
            link_valid_days=consent_settings_get(organization=organization).link_valid_days,
            privacy_url=_absolute(reverse("privacy:policy", kwargs={"organization_slug": organization.slug})),
        )
        return _render(message.kind, context, [contact.email])
