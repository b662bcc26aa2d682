"""Pages for signing in, choosing an organization, members, API tokens and the audit log.

Thin: each view parses a form, calls a selector or service and renders. The
middleware has already resolved the organization and the membership for
everything under /o/<slug>/; the decorators only check the role.
"""

from __future__ import annotations

import csv
import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    HttpResponseServerError,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.template import loader
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from refmgr.common.exceptions import ApplicationError

from . import selectors, services
from .admin import csv_safe
from .context import tenant_context
from .forms import (
    ApiTokenForm,
    AuditFilterForm,
    InvitationForm,
    InvitationSignUpForm,
    MemberSearchForm,
    RoleChangeForm,
)
from .models import Role
from .permissions import member_required, role_required

MEMBERS_PER_PAGE = 25
AUDIT_EVENTS_PER_PAGE = 50


def _paginate(request: HttpRequest, queryset: QuerySet[Any], per_page: int) -> Page:
    # get_page() turns a missing, malformed or out-of-range number into a valid page.
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


# --- Landing ------------------------------------------------------------------------


@never_cache
def home(request: HttpRequest) -> HttpResponse:
    """Signed-in users land on their organization's home page; several organizations get a chooser."""
    if not request.user.is_authenticated:
        return redirect("login")
    memberships = selectors.memberships_of_user(user=request.user)
    if not memberships:
        return render(request, "tenancy/no_organization.html")
    active_id = request.session.get(selectors.ACTIVE_ORGANIZATION_SESSION_KEY)
    for membership in memberships:
        if membership.organization_id == active_id:
            return redirect("tenancy:dashboard", organization_slug=membership.organization.slug)
    if len(memberships) == 1:
        return redirect("tenancy:dashboard", organization_slug=memberships[0].organization.slug)
    return render(request, "tenancy/choose_organization.html", {"memberships": memberships})


@login_required
@never_cache
def organization_choose(request: HttpRequest) -> HttpResponse:
    """Every organization the user belongs to, whichever one is active."""
    memberships = selectors.memberships_of_user(user=request.user)
    if not memberships:
        return render(request, "tenancy/no_organization.html")
    return render(request, "tenancy/choose_organization.html", {"memberships": memberships})


@member_required
def dashboard(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """The organization's home page: who you are here and what you can do."""
    organization, membership = request.organization, request.membership  # type: ignore[attr-defined]
    context: dict[str, Any] = {
        "token_count": selectors.api_token_list(organization=organization, membership=membership).count(),
    }
    if membership.role == Role.ADMIN:
        context["counts"] = selectors.membership_counts(organization=organization)
    if membership.role in (Role.ADMIN, Role.COMPLIANCE):
        context["recent_events"] = list(selectors.audit_event_search(organization=organization)[:5])
    return render(request, "tenancy/dashboard.html", context)


# --- Members (organization admins) --------------------------------------------------


@role_required(Role.ADMIN)
@require_http_methods(["GET", "HEAD", "POST"])
def members(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """The member list with search and pagination, open invitations, and the invite form (POST)."""
    organization = request.organization  # type: ignore[attr-defined]
    invite_form = InvitationForm(request.POST or None)
    if request.method == "POST" and invite_form.is_valid():
        try:
            invitation = services.invitation_create(
                organization=organization,
                email=invite_form.cleaned_data["email"],
                role=invite_form.cleaned_data["role"],
                actor=request.user,
            )
        except ApplicationError as error:
            invite_form.add_application_error(error)
        else:
            messages.success(
                request,
                _("Invitation sent to %(email)s. The link expires on %(date)s.")
                % {"email": invitation.email, "date": timezone.localtime(invitation.expires_at).date().isoformat()},
            )
            return redirect("tenancy:members", organization_slug=organization.slug)

    search = MemberSearchForm(request.GET)
    query = search.cleaned_data["q"] if search.is_valid() else ""
    page = _paginate(request, selectors.membership_search(organization=organization, query=query), MEMBERS_PER_PAGE)
    context = {
        "page": page,
        "search_form": search,
        "query": query,
        "invite_form": invite_form,
        "invitations": list(selectors.invitation_list_open(organization=organization)),
        "roles": Role.choices,
        "invite_days": settings.INVITATION_MAX_AGE.days,
    }
    return render(request, "tenancy/members.html", context, status=400 if invite_form.errors else 200)


def _member_or_404(request: HttpRequest, membership_id: int) -> Any:
    member = selectors.membership_get(organization=request.organization, membership_id=membership_id)  # type: ignore[attr-defined]
    if member is None:
        raise Http404("No such member")
    return member


@role_required(Role.ADMIN)
@require_POST
def member_role_change(request: HttpRequest, organization_slug: str, membership_id: int) -> HttpResponse:
    """Give a member another role; the service keeps at least one admin."""
    member = _member_or_404(request, membership_id)
    form = RoleChangeForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose one of the listed roles."))
    else:
        try:
            services.membership_role_change(
                organization=request.organization,  # type: ignore[attr-defined]
                membership=member,
                role=form.cleaned_data["role"],
                actor=request.user,
            )
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request,
                _("%(user)s is now %(role)s.")
                % {"user": member.user.get_username(), "role": Role(form.cleaned_data["role"]).label},
            )
    return redirect("tenancy:members", organization_slug=organization_slug)


@role_required(Role.ADMIN)
@require_http_methods(["GET", "HEAD", "POST"])
def member_deactivate(request: HttpRequest, organization_slug: str, membership_id: int) -> HttpResponse:
    """Confirm (GET), then remove a member's access (POST)."""
    member = _member_or_404(request, membership_id)
    is_self = member.pk == request.membership.pk  # type: ignore[attr-defined]
    if request.method == "POST":
        try:
            services.membership_deactivate(
                organization=request.organization,  # type: ignore[attr-defined]
                membership=member,
                actor=request.user,
            )
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("tenancy:members", organization_slug=organization_slug)
        messages.success(request, _("%(user)s no longer has access.") % {"user": member.user.get_username()})
        if is_self:
            # The member page is now out of reach for the person who just left.
            request.session.pop(selectors.ACTIVE_ORGANIZATION_SESSION_KEY, None)
            return redirect("home")
        return redirect("tenancy:members", organization_slug=organization_slug)
    return render(request, "tenancy/member_deactivate.html", {"member": member, "is_self": is_self})


@role_required(Role.ADMIN)
@require_POST
def invitation_revoke(request: HttpRequest, organization_slug: str, invitation_id: int) -> HttpResponse:
    """Withdraw an open invitation: its link stops working at once."""
    organization = request.organization  # type: ignore[attr-defined]
    invitation = selectors.invitation_get_open(organization=organization, invitation_id=invitation_id)
    if invitation is None:
        raise Http404("No such invitation")
    services.invitation_revoke(organization=organization, invitation=invitation, actor=request.user)
    messages.success(request, _("The invitation to %(email)s was revoked.") % {"email": invitation.email})
    return redirect("tenancy:members", organization_slug=organization_slug)


# --- API tokens (every member, their own) -----------------------------------------------


@member_required
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def api_tokens(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """The member's live tokens; POST creates one and shows its key on this response only."""
    organization, membership = request.organization, request.membership  # type: ignore[attr-defined]
    form = ApiTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            token, key = services.api_token_create(
                organization=organization, membership=membership, name=form.cleaned_data["name"], actor=request.user
            )
        except ApplicationError as error:
            form.add_application_error(error)
        else:
            # Rendered, not redirected: the key is never stored, so it cannot be shown again
            # (and never_cache keeps it out of every cache).
            return render(request, "tenancy/api_token_created.html", {"token": token, "key": key})
    tokens = list(selectors.api_token_list(organization=organization, membership=membership))
    return render(request, "tenancy/api_tokens.html", {"tokens": tokens, "form": form})


@member_required
@require_POST
def api_token_revoke(request: HttpRequest, organization_slug: str, token_id: int) -> HttpResponse:
    """Revoke one of the member's own tokens; it stops authenticating immediately."""
    organization, membership = request.organization, request.membership  # type: ignore[attr-defined]
    token = selectors.api_token_get(organization=organization, membership=membership, token_id=token_id)
    if token is None:
        raise Http404("No such token")
    services.api_token_revoke(organization=organization, token=token, actor=request.user)
    messages.success(request, _("The token %(prefix)s… was revoked.") % {"prefix": token.prefix})
    return redirect("tenancy:api_tokens", organization_slug=organization_slug)


# --- Audit log (admins and compliance reviewers) ----------------------------------------------


def _audit_filters(request: HttpRequest) -> tuple[AuditFilterForm, QuerySet[Any]]:
    organization = request.organization  # type: ignore[attr-defined]
    form = AuditFilterForm(request.GET, actions=selectors.audit_action_list(organization=organization))
    form.is_valid()
    # An invalid field (a malformed date) is reported and left out; the valid ones still apply.
    filters = {name: form.cleaned_data.get(name) or None for name in ("action", "actor", "date_from", "date_to")}
    events = selectors.audit_event_search(
        organization=organization,
        action=filters["action"] or "",
        actor=filters["actor"] or "",
        date_from=filters["date_from"],
        date_to=filters["date_to"],
    )
    return form, events


@role_required(Role.ADMIN, Role.COMPLIANCE)
@require_GET
def audit_log(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """Every recorded change in the organization, filterable, 50 a page."""
    form, events = _audit_filters(request)
    page = _paginate(request, events, AUDIT_EVENTS_PER_PAGE)
    filtered = any(request.GET.get(name) for name in ("action", "actor", "date_from", "date_to"))
    return render(request, "tenancy/audit_log.html", {"form": form, "page": page, "filtered": filtered})


AUDIT_CSV_COLUMNS = ("time", "actor", "action", "object_type", "object_id", "object", "details")


@role_required(Role.ADMIN, Role.COMPLIANCE)
@require_GET
def audit_export(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """The filtered audit log as CSV, safe to open in a spreadsheet."""
    _, events = _audit_filters(request)
    rows = events.values_list(
        "created_at", "actor_label", "action", "object_type", "object_id", "object_repr", "details"
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{organization_slug}-{stamp}.csv"'
    writer = csv.writer(response)
    writer.writerow(AUDIT_CSV_COLUMNS)
    # Written here, inside the organization's scope; a streaming body would be read after it ends.
    for created_at, *cells, details in rows.iterator(chunk_size=2000):
        writer.writerow(
            [csv_safe(created_at.isoformat()), *(csv_safe(c) for c in cells), csv_safe(json.dumps(details))]
        )
    return response


# --- Invitation links ----------------------------------------------------------------------------


def _invitation_invalid(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(request, "tenancy/invitation_invalid.html", {"message": message}, status=status)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """/invite/<token>/: join an organization, with a new account or the signed-in one.

    GET only shows what accepting means; POST accepts. A bad, expired, used or
    revoked link gets the same kind of friendly page and reveals nothing else.
    """
    try:
        organization_id, invitation_id = services.invitation_unsign(token)
    except ApplicationError as error:
        return _invitation_invalid(request, error.message, status=404)
    organization = selectors.organization_get_active(organization_id=organization_id)
    if organization is None:
        return _invitation_invalid(request, _("This invitation link is not valid."), status=404)
    with tenant_context(organization):
        invitation = selectors.invitation_get(organization=organization, invitation_id=invitation_id)
        if invitation is None or not invitation.is_open or invitation.expires_at <= timezone.now():
            message = _("This invitation is no longer valid. Ask your administrator for a new one.")
            return _invitation_invalid(request, message, status=410)
        context: dict[str, Any] = {"invitation": invitation, "invited_organization": organization}
        if request.user.is_authenticated:
            return _invitation_accept_signed_in(request, organization, invitation, context)
        return _invitation_accept_new_user(request, organization, invitation, context)


def _enter_organization(request: HttpRequest, organization: Any) -> HttpResponse:
    request.session[selectors.ACTIVE_ORGANIZATION_SESSION_KEY] = organization.pk
    messages.success(request, _("Welcome to %(organization)s.") % {"organization": organization.name})
    return redirect("tenancy:dashboard", organization_slug=organization.slug)


def _invitation_accept_signed_in(
    request: HttpRequest, organization: Any, invitation: Any, context: dict[str, Any]
) -> HttpResponse:
    context["already_member"] = selectors.membership_for_user(organization=organization, user=request.user)
    if request.method == "POST" and not context["already_member"]:
        try:
            services.invitation_accept_existing_user(
                organization=organization, invitation_id=invitation.pk, user=request.user
            )
        except ApplicationError as error:
            return _invitation_invalid(request, error.message, status=410)
        return _enter_organization(request, organization)
    return render(request, "tenancy/invitation_accept.html", context)


def _invitation_accept_new_user(
    request: HttpRequest, organization: Any, invitation: Any, context: dict[str, Any]
) -> HttpResponse:
    form = InvitationSignUpForm(request.POST or None, email=invitation.email)
    if request.method == "POST" and form.is_valid():
        try:
            user, _membership = services.invitation_accept_new_user(
                organization=organization,
                invitation_id=invitation.pk,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
            )
        except ApplicationError as error:
            if error.field is None:
                return _invitation_invalid(request, error.message, status=410)
            form.add_application_error(error)
        else:
            # The account was just created with this password: no need to ask for it again.
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return _enter_organization(request, organization)
    context["form"] = form
    context["login_url"] = f"{reverse('login')}?next={request.path}"
    return render(request, "tenancy/invitation_accept.html", context, status=400 if form.errors else 200)


# --- Plumbing -----------------------------------------------------------------------------------------


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """The app's icon, resolved per request so a missing manifest entry can't break URL loading."""
    from django.templatetags.static import static

    return HttpResponsePermanentRedirect(static("img/favicon.svg"))


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness and database reachability, for the load balancer and docker-compose."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404 page. A stranger must not learn even the name of the organization they guessed."""
    if getattr(request, "membership", None) is None:
        # The middleware sets request.organization before it checks membership.
        request.organization = None  # type: ignore[attr-defined]
    return render(request, "404.html", status=404)


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """403 page: a member whose role does not open this page."""
    return render(request, "403.html", status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    """500 page, rendered without the request: the database or a context processor may be what failed."""
    return HttpResponseServerError(loader.get_template("500.html").render())
