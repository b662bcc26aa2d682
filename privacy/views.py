"""Pages of the privacy app: the public privacy policy, and the admins' pages that write it.

Thin: each view parses a form, calls a service or selector, and renders.
The middleware has resolved the organization (an unknown slug is a 404);
the public pages are marked ``organization_public`` and need no account, the
others are for the organization's admins. Querysets are evaluated here,
inside the organization's scope, never lazily in a template.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from refmgr.common.exceptions import ApplicationError
from refmgr.common.ratelimit import ratelimit_public
from refmgr.tenancy.middleware import organization_public
from refmgr.tenancy.models import Organization, Role
from refmgr.tenancy.permissions import role_required

from . import selectors, services
from .forms import PrivacyPolicyForm
from .models import PrivacyPolicy

PER_PAGE = 25
admin_required = role_required(Role.ADMIN)


def _organization(request: HttpRequest) -> Organization:
    return request.organization  # type: ignore[attr-defined]


# --- Public: no account needed ---------------------------------------------------------------


@organization_public
@ratelimit_public("privacy")
@require_GET
def policy(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """The policy in force today, and every published version (upcoming ones marked as such)."""
    organization = _organization(request)
    today = timezone.localdate()
    current = selectors.privacy_policy_current(organization=organization, today=today)
    history = list(selectors.privacy_policy_history(organization=organization))
    context = {"policy": current, "history": history, "today": today, "current": current}
    return render(request, "privacy/policy.html", context)


@organization_public
@ratelimit_public("privacy")
@require_GET
def policy_version(request: HttpRequest, organization_slug: str, version: int) -> HttpResponse:
    """One published version; drafts and unknown numbers are a 404, as for a stranger."""
    organization = _organization(request)
    found = selectors.privacy_policy_published_get(organization=organization, version=version)
    if found is None:
        raise Http404("No such version")
    today = timezone.localdate()
    current = selectors.privacy_policy_current(organization=organization, today=today)
    return render(request, "privacy/policy_version.html", {"policy": found, "current": current, "today": today})


# --- Admins: write and publish versions ------------------------------------------------------


def _get(request: HttpRequest, version: int) -> PrivacyPolicy:
    found = selectors.privacy_policy_get(organization=_organization(request), version=version)
    if found is None:
        raise Http404("No such version")
    return found


def _form_status(form: Any) -> int:
    return 400 if form.is_bound and form.errors else 200


@admin_required
@require_GET
def manage(request: HttpRequest, organization_slug: str) -> HttpResponse:
    organization = _organization(request)
    page = Paginator(selectors.privacy_policy_list(organization=organization), PER_PAGE).get_page(
        request.GET.get("page")
    )
    page.object_list = list(page.object_list)
    current = selectors.privacy_policy_current(organization=organization)
    return render(request, "privacy/manage/list.html", {"page": page, "current": current})


@admin_required
@require_http_methods(["GET", "HEAD", "POST"])
def create(request: HttpRequest, organization_slug: str) -> HttpResponse:
    organization = _organization(request)
    initial: dict[str, Any] = {"effective_date": timezone.localdate()}
    latest = selectors.privacy_policy_list(organization=organization).first()
    if latest is not None:
        # A new version usually amends the last one: start from its text, not a blank page.
        initial.update(title=latest.title, body=latest.body)
    form = PrivacyPolicyForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            created = services.privacy_policy_draft_create(
                organization=organization, actor=request.user, **form.cleaned_data
            )
        except ApplicationError as error:
            form.add_application_error(error)
        else:
            messages.success(request, _("Draft version %(version)s saved.") % {"version": created.version})
            return redirect("privacy:manage_detail", organization_slug=organization_slug, version=created.version)
    return render(
        request,
        "privacy/manage/form.html",
        {"form": form, "policy": None, "based_on": latest},
        status=_form_status(form),
    )


@admin_required
@require_GET
def detail(request: HttpRequest, organization_slug: str, version: int) -> HttpResponse:
    found = _get(request, version)
    current = selectors.privacy_policy_current(organization=_organization(request))
    context = {"policy": found, "current": current, "today": timezone.localdate()}
    return render(request, "privacy/manage/detail.html", context)


def _published_refusal(request: HttpRequest, found: PrivacyPolicy) -> HttpResponse:
    messages.error(
        request,
        _("Version %(version)s is published and can no longer be changed; start a new draft instead.")
        % {"version": found.version},
    )
    return redirect("privacy:manage_detail", organization_slug=_organization(request).slug, version=found.version)


@admin_required
@require_http_methods(["GET", "HEAD", "POST"])
def edit(request: HttpRequest, organization_slug: str, version: int) -> HttpResponse:
    found = _get(request, version)
    if not found.is_draft:
        return _published_refusal(request, found)
    form = PrivacyPolicyForm(request.POST if request.method == "POST" else None, initial=_initial(found))
    if request.method == "POST" and form.is_valid():
        try:
            services.privacy_policy_draft_update(
                organization=_organization(request), policy=found, actor=request.user, **form.cleaned_data
            )
        except ApplicationError as error:
            form.add_application_error(error)
        else:
            messages.success(request, _("Draft version %(version)s saved.") % {"version": found.version})
            return redirect("privacy:manage_detail", organization_slug=organization_slug, version=found.version)
    return render(request, "privacy/manage/form.html", {"form": form, "policy": found}, status=_form_status(form))


def _initial(found: PrivacyPolicy) -> dict[str, Any]:
    # Not ModelForm(instance=...): saving is the service's job, the form only checks shape.
    return {name: getattr(found, name) for name in services.EDITABLE_FIELDS}


@admin_required
@require_http_methods(["GET", "HEAD", "POST"])
def publish(request: HttpRequest, organization_slug: str, version: int) -> HttpResponse:
    """A confirmation page; the POST publishes. A refusal is shown on the page, with a 400."""
    organization = _organization(request)
    found = _get(request, version)
    if not found.is_draft:
        return _published_refusal(request, found)
    error: ApplicationError | None = None
    if request.method == "POST":
        try:
            services.privacy_policy_publish(organization=organization, policy=found, actor=request.user)
        except ApplicationError as refusal:
            error = refusal
        else:
            messages.success(request, _("Version %(version)s is published.") % {"version": found.version})
            return redirect("privacy:manage", organization_slug=organization_slug)
    current = selectors.privacy_policy_current(organization=organization)
    context = {"policy": found, "current": current, "error": error, "today": timezone.localdate()}
    return render(request, "privacy/manage/publish.html", context, status=400 if error else 200)


@admin_required
@require_http_methods(["GET", "HEAD", "POST"])
def delete(request: HttpRequest, organization_slug: str, version: int) -> HttpResponse:
    found = _get(request, version)
    if not found.is_draft:
        return _published_refusal(request, found)
    if request.method == "POST":
        try:
            services.privacy_policy_draft_delete(organization=_organization(request), policy=found, actor=request.user)
        except ApplicationError:
            # Published by someone else since the page was opened.
            return _published_refusal(request, found)
        messages.success(request, _("Draft version %(version)s deleted.") % {"version": found.version})
        return redirect("privacy:manage", organization_slug=organization_slug)
    return render(request, "privacy/manage/delete.html", {"policy": found})
