"""The customer's consent page at /consent/<token>/: answer a request, manage every consent, see every use.

No account and no login: the token in the link is the credential. So:

- Opening the page (GET) changes no consent: mail scanners fetch links
  before people do. Its one write is the ledger's "notice served" event,
  evidence of what was shown, which changes no state and no usability; it
  is written once per link, client and content (``consent_notice_served``),
  so a repeat view reads and writes nothing more than its four queries.
- Every action is a POST with Django's CSRF check, answered by a redirect
  back to the page (a reload never re-sends it), and the services make a
  second submission of the same answer a no-op.
- An unknown, tampered, expired or superseded token gets one page, the same
  text and status for all, naming no organization, and changes nothing.
- Every response says not to cache or index the page, nor to send its
  address (the token is in it) to another site; every endpoint is
  rate-limited per client address.

The link's organization is known only after the lookup, so the middleware
runs these views outside any organization; each view enters the link's
organization itself, around everything it reads, writes and renders.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from references.models import Scope
from references.selectors import usage_event_list
from refmgr.common.exceptions import ApplicationError
from refmgr.common.ratelimit import ratelimit_public
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Organization

from .evidence import evidence_from_request
from .models import (
    ConsentLink,
    ConsentRequest,
    ConsentRequestKind,
    ConsentRequestStatus,
    Party,
)
from .public_forms import AnswerForm, PauseForm, RevokeForm
from .scope_text import scope_explanation
from .selectors import (
    ConsentPage,
    consent_answer_events,
    consent_link_lookup,
    consent_page_lookup,
    consent_states_revocable_by,
)
from .services import consent_answer, consent_notice_served, consent_pause, consent_revoke, grant_valid_choices_for

PAGE_TEMPLATE = "consent/public/page.html"
INVALID_TEMPLATE = "consent/public/invalid.html"

View = Callable[..., HttpResponse]


def private_page(view: View) -> View:
    """Headers for a page whose address is a secret: never cached, indexed or sent on as a referrer."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        # The token must never reach another site in a Referer header. Not "no-referrer": under it
        # Chromium sends "Origin: null" with the page's own form posts, which Django's CSRF check
        # rightly refuses; "same-origin" keeps the Origin and sends the Referer only to this site.
        response["Referrer-Policy"] = "same-origin"
        response["X-Robots-Tag"] = "noindex, nofollow"
        return response

    return wrapped


def public_endpoint(view: View) -> View:
    # Headers outermost, so the rate limit's 429 carries them too.
    return private_page(ratelimit_public("consent")(view))


def _invalid(request: HttpRequest) -> HttpResponse:
    # One page and one status for every reason: telling "expired" from "unknown"
    # would confirm to a guesser that a token once existed.
    return render(request, INVALID_TEMPLATE, status=404)


def _page_url(token: str) -> str:
    from django.urls import reverse

    return reverse("consent_public:page", kwargs={"token": token})


# --- What the page shows --------------------------------------------------------------


@dataclass(frozen=True)
class ScopeItem:
    """One use asked about: its name, its plain explanation and, for a quote or case study, the exact text."""

    value: str
    label: str
    explanation: str
    text: str
    previous_text: str
    diff: SafeString | None


def text_diff(old: str, new: str) -> SafeString:
    """Word-level changes from ``old`` to ``new``, as <del>/<ins> markup with every piece of text escaped."""
    before, after = re.findall(r"\s+|\S+", old), re.findall(r"\s+|\S+", new)
    removed, added = _("removed:"), _("added:")
    parts: list[SafeString] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            parts.append(format_html("{}", "".join(before[i1:i2])))
            continue
        if op in ("delete", "replace"):
            parts.append(
                format_html('<del><span class="visually-hidden">{} </span>{}</del>', removed, "".join(before[i1:i2]))
            )
        if op in ("insert", "replace"):
            parts.append(
                format_html('<ins><span class="visually-hidden">{} </span>{}</ins>', added, "".join(after[j1:j2]))
            )
    # Each part is already escaped markup; format_html_join keeps it as it is.
    return format_html_join("", "{}", ((part,) for part in parts))


def _scope_items(consent_request: ConsentRequest) -> list[ScopeItem]:
    items = []
    rewording = consent_request.kind == ConsentRequestKind.REWORDING
    for scope in consent_request.scopes:
        if scope not in Scope.values:
            continue
        text = consent_request.texts.get(scope, "")
        previous = consent_request.previous_texts.get(scope, "") if rewording else ""
        items.append(
            ScopeItem(
                value=scope,
                label=str(Scope(scope).label),
                explanation=scope_explanation(scope),
                text=text,
                previous_text=previous,
                diff=text_diff(previous, text) if previous and text and previous != text else None,
            )
        )
    return items


def _open_request(link: ConsentLink) -> ConsentRequest | None:
    """The request this link still asks, or None (answered, closed, expired, or a link that only manages)."""
    consent_request = link.consent_request
    if consent_request is None or consent_request.status != ConsentRequestStatus.SENT:
        return None
    if consent_request.expires_at is not None and consent_request.expires_at <= timezone.now():
        return None
    return consent_request


def _page_context(
    request: HttpRequest, organization: Organization, page: ConsentPage, *, form: AnswerForm | None = None
) -> dict[str, Any]:
    # Everything is evaluated here, inside the organization, never lazily in the template. The link,
    # its request, reference, asker, contact, organization, policy version and periods came in the
    # lookup's one query; the lists below are one query each (the answer only on an answered link).
    link = page.link
    contact = link.contact
    consent_request = link.consent_request
    open_request = _open_request(link)
    context: dict[str, Any] = {
        "organization": organization,
        "contact": contact,
        "link": link,
        "token": request.resolver_match.kwargs["token"] if request.resolver_match else "",
        "policy_version": page.policy_version,
        "open_request": open_request,
        "answered_request": None,
        "answer_events": [],
    }
    if open_request is not None:
        valid_choices = grant_valid_choices_for(page.grant_valid_months)
        asker = open_request.requested_by
        context.update(
            form=form if form is not None else AnswerForm(valid_choices=valid_choices),
            scope_items=_scope_items(open_request),
            asked_by=(asker.get_full_name() if asker is not None else "") or organization.name,
            longest_months=valid_choices[0] if valid_choices else None,
            rewording=open_request.kind == ConsentRequestKind.REWORDING,
        )
    elif consent_request is not None and consent_request.status == ConsentRequestStatus.ANSWERED:
        context["answered_request"] = consent_request
        context["answer_events"] = consent_answer_events(organization=organization, consent_request=consent_request)
    context["states"] = list(consent_states_revocable_by(organization=organization, contact=contact))
    # What the customer sees of each use: when, which use, of which reference, and whether it
    # was approved or has happened. Not the deal's name or the salesperson: the prospect a
    # salesperson is talking to is the organization's confidential business (and often another
    # company's), and the salesperson's name is an employee's personal data.
    context["uses"] = list(usage_event_list(organization=organization, contact=contact))
    context["company_party"] = Party.COMPANY
    return context


# --- Views ------------------------------------------------------------------------------


@public_endpoint
@require_GET
def consent_page(request: HttpRequest, token: str) -> HttpResponse:
    """Show the question (if still open), every current consent with its revoke buttons, and every use."""
    evidence = evidence_from_request(request)
    page = consent_page_lookup(token=token, evidence=evidence)
    if page is None:
        return _invalid(request)
    organization = page.link.organization
    with tenant_context(organization):
        if not page.notice_recorded:
            consent_notice_served(
                organization=organization, link=page.link, evidence=evidence, policy_version=page.policy_version
            )
        return render(request, PAGE_TEMPLATE, _page_context(request, organization, page))


@public_endpoint
@require_POST
def consent_answer_post(request: HttpRequest, token: str) -> HttpResponse:
    """Grant the ticked uses, or decline them all."""
    evidence = evidence_from_request(request)
    # The page's lookup: the form's periods come with the link, and a refused answer re-renders the page.
    page = consent_page_lookup(token=token, evidence=evidence)
    if page is None:
        return _invalid(request)
    link = page.link
    organization = link.organization
    with tenant_context(organization):
        if link.consent_request_id is None:
            messages.info(request, _("There is no question to answer on this link; your consents are below."))
            return redirect(_page_url(token))
        form = AnswerForm(request.POST, valid_choices=grant_valid_choices_for(page.grant_valid_months))
        if form.is_valid():
            data = form.cleaned_data
            try:
                result = consent_answer(
                    organization=organization,
                    link=link,
                    grant=[] if form.declining else data["scopes"],
                    valid_months=data["valid_months"] or 0,
                    publication=data["publication"] or "",
                    evidence=evidence,
                    decline_all=form.declining,
                )
            except ApplicationError as error:
                if error.extra.get("code") in ("answered", "closed"):
                    # A second click, a reload or an old tab: calm words and the page as it stands.
                    messages.info(request, error.message)
                    return redirect(_page_url(token))
                form.add_error(error.field if error.field in form.fields else None, error.message)
            else:
                if result.granted:
                    messages.success(
                        request,
                        _("Thank you: your answer is recorded. You can withdraw your consent here at any time."),
                    )
                else:
                    messages.success(
                        request,
                        _(
                            "Your answer is recorded: nothing new will be used. Any consent you gave "
                            "before is listed below, where you can withdraw it."
                        ),
                    )
                return redirect(_page_url(token))
        # Refused: nothing was recorded, and the same notice is shown again with the reasons.
        return render(request, PAGE_TEMPLATE, _page_context(request, organization, page, form=form), status=400)


@public_endpoint
@require_POST
def consent_revoke_post(request: HttpRequest, token: str) -> HttpResponse:
    """Withdraw one consent. Only the link's person's own (or their company's, if they sign for it)."""
    link = consent_link_lookup(token=token).link
    if link is None:
        return _invalid(request)
    form = RevokeForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a consent to withdraw."))
        return redirect(_page_url(token))
    return _revoke(request, token, link, [form.cleaned_data["state_id"]])


@public_endpoint
@require_POST
def consent_revoke_all_post(request: HttpRequest, token: str) -> HttpResponse:
    """Withdraw every consent this person may withdraw, at once."""
    link = consent_link_lookup(token=token).link
    if link is None:
        return _invalid(request)
    return _revoke(request, token, link, None)


def _revoke(request: HttpRequest, token: str, link: ConsentLink, state_ids: list[int] | None) -> HttpResponse:
    organization = link.organization
    with tenant_context(organization):
        # The service only sees this organization's consents and only those this person may
        # withdraw: an id from elsewhere finds nothing and changes nothing.
        result = consent_revoke(
            organization=organization,
            contact=link.contact,
            state_ids=state_ids,
            link=link,
            evidence=evidence_from_request(request),
        )
    if result.revoked:
        names = ", ".join(sorted({str(Scope(state.scope).label) for state in result.revoked}))
        messages.success(
            request,
            _("Withdrawn: %(uses)s. It will not be used from now on, and published uses will be taken down.")
            % {"uses": names},
        )
    else:
        messages.info(request, _("There was nothing to withdraw: it may have been withdrawn already."))
    return redirect(_page_url(token))


@public_endpoint
@require_POST
def consent_pause_post(request: HttpRequest, token: str) -> HttpResponse:
    """The "pause all requests" switch."""
    link = consent_link_lookup(token=token).link
    if link is None:
        return _invalid(request)
    form = PauseForm(request.POST)
    if not form.is_valid():
        return redirect(_page_url(token))
    paused = form.cleaned_data["paused"]
    organization = link.organization
    with tenant_context(organization):
        try:
            consent_pause(
                organization=organization,
                contact=link.contact,
                paused=paused,
                link=link,
                evidence=evidence_from_request(request),
            )
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect(_page_url(token))
    if paused:
        messages.success(
            request, _("Requests are paused: %(name)s will not ask you anything new.") % {"name": organization.name}
        )
    else:
        messages.success(request, _("Requests are on again."))
    return redirect(_page_url(token))
