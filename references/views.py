"""Pages for salespeople and reference managers: the catalogue, a reference, usage requests, the ledger.

Thin, as in tenancy: each view parses a form, calls a selector or a service
and renders. Usability comes only from ``references.selectors``; every
catalogue, detail and search read also applies the restriction filter (inside
``selectors.reference_catalogue``). Querysets are evaluated here, inside the
request's organization context, never lazily after it.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from typing import Any

from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from refmgr.audit.services import record
from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.admin import csv_safe
from refmgr.tenancy.models import Role
from refmgr.tenancy.permissions import member_required, role_required

from . import selectors, services
from .forms import CatalogueForm, DecisionForm, OutcomeForm, UsageRequestForm
from .models import (
    FATIGUE_SCOPES,
    AssetKind,
    LabelKind,
    Publication,
    Reference,
    Scope,
    SizeBand,
    UsageRequest,
    UsageStatus,
)
from .restrictions import restriction_filter

CATALOGUE_PER_PAGE = 20
QUEUE_PER_PAGE = 25
MY_REQUESTS_PER_PAGE = 20
HISTORY_ON_DETAIL = 50
# "Soon" on the queue: needed within this many days.
DUE_SOON_DAYS = 3

MANAGER_ROLES = (Role.ADMIN, Role.REFERENCE_MANAGER)
# Which asset a usable scope shows on the detail page ("approved assets").
ASSET_SCOPES = {
    AssetKind.QUOTE: Scope.QUOTE,
    AssetKind.CASE_STUDY: Scope.CASE_STUDY,
    AssetKind.LOGO: Scope.LOGO,
    AssetKind.VIDEO: Scope.VIDEO,
}


def _paginate(request: HttpRequest, queryset: QuerySet[Any], per_page: int) -> Page:
    # get_page() turns a missing, malformed or out-of-range number into a valid page.
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


def _is_manager(request: HttpRequest) -> bool:
    return request.membership.role in MANAGER_ROLES  # type: ignore[attr-defined]


def _scope_badges(scopes: set[str]) -> list[tuple[str, str]]:
    labels = dict(Scope.choices)
    return [(scope, labels[scope]) for scope in Scope.values if scope in scopes]


def _shown_as(reference: Reference, *, reveal_account: bool) -> str:
    """How a reference's customer is named: the account, or industry and job title when anonymised."""
    if reference.publication != Publication.ANONYMISED or reveal_account:
        return reference.account.name
    industry = reference.account.industry or _("a customer")
    title = reference.advocate.title if reference.advocate is not None else ""
    if title:
        return _("%(title)s, %(industry)s") % {"title": title, "industry": industry}
    return industry


# --- Catalogue -------------------------------------------------------------------------


def _facet_choices(facets: list[tuple[str, int]], selected: str, labels: dict[str, str] | None = None) -> list[Any]:
    labels = labels or {}
    choices: list[Any] = [(value, labels.get(value, value), count) for value, count in facets]
    if selected and selected not in {value for value, _count in facets}:
        # A chosen value with no matches left stays visible, so it can be cleared.
        choices.insert(0, (selected, labels.get(selected, selected), 0))
    return choices


@member_required
@require_GET
def catalogue(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """Search and filter the references that may be used now; htmx swaps the results in place."""
    organization, user = request.organization, request.user  # type: ignore[attr-defined]
    form = CatalogueForm(request.GET)
    query, filters, sort = form.values()
    facets, page = selectors.reference_catalogue_page(
        organization=organization,
        user=user,
        query=query,
        filters=filters,
        sort=sort,
        cursor=request.GET.get("cursor"),
        per_page=CATALOGUE_PER_PAGE,
    )
    page_references = page.object_list
    usable = selectors.reference_usable_scopes(organization=organization, reference_ids=[r.pk for r in page_references])
    resting = selectors.contacts_fatigue(
        organization=organization,
        contacts=[r.advocate for r in page_references if usable.get(r.pk, set()) & FATIGUE_SCOPES],
    )
    cards = []
    for reference in page_references:
        verdict = resting.get(reference.advocate_id) if reference.advocate_id else None
        cards.append(
            {
                "reference": reference,
                "shown_as": _shown_as(reference, reveal_account=False),
                "anonymised": reference.publication == Publication.ANONYMISED,
                "scopes": _scope_badges(usable.get(reference.pk, set())),
                "available_from": verdict.available_from if verdict is not None and not verdict.allowed else None,
                "paused_for_time": verdict is not None and not verdict.allowed and verdict.available_from is None,
            }
        )
    filter_fields = [
        ("industry", _("Industry"), _facet_choices(facets["industry"], filters.industry)),
        ("product", _("Product"), _facet_choices(facets["product"], filters.product)),
        ("use_case", _("Use case"), _facet_choices(facets["use_case"], filters.use_case)),
        ("region", _("Region"), _facet_choices(facets["region"], filters.region)),
        (
            "size_band",
            _("Company size"),
            _facet_choices(facets["size_band"], filters.size_band, dict(SizeBand.choices)),
        ),
        ("scope", _("Allowed use"), _facet_choices(facets["scope"], filters.scope, dict(Scope.choices))),
    ]
    context = {
        "form": form,
        "query": query,
        "filters": filters,
        "sort": selectors.catalogue_sort(sort=sort, query=query),
        "filter_fields": [
            {"name": name, "label": label, "choices": choices, "selected": getattr(filters, name)}
            for name, label, choices in filter_fields
        ],
        "sort_choices": [
            (value, label) for value, label in form.fields["sort"].choices if value != "relevance" or query
        ],
        "filtered": bool(query) or any(getattr(filters, name) for name in selectors.CATALOGUE_FILTERS),
        "page": page,
        "cards": cards,
        "facets_capped": facets.capped,
        "facet_sample": selectors.FACET_SAMPLE,
    }
    template = "references/catalogue.html"
    if getattr(request, "htmx", False) and not request.htmx.boosted:  # type: ignore[attr-defined]
        template = "references/partials/catalogue_results.html"
    response = render(request, template, context)
    # The same address answers a fragment to htmx and a page otherwise: caches must tell them apart.
    patch_vary_headers(response, ("HX-Request",))
    return response


# --- One reference ----------------------------------------------------------------------


def _catalogue_reference_or_404(request: HttpRequest, reference_id: int) -> Reference:
    reference = selectors.reference_catalogue_get(
        organization=request.organization,  # type: ignore[attr-defined]
        user=request.user,
        reference_id=reference_id,
    )
    if reference is None:
        raise Http404("No such reference")
    return reference


def _detail_context(request: HttpRequest, reference: Reference) -> dict[str, Any]:
    organization, user = request.organization, request.user  # type: ignore[attr-defined]
    manager = _is_manager(request)
    scopes = selectors.reference_usable_scopes(organization=organization, reference_ids=[reference.pk]).get(
        reference.pk, set()
    )
    verdict = None
    if reference.advocate is not None and scopes & FATIGUE_SCOPES:
        verdict = selectors.contact_fatigue(organization=organization, contact=reference.advocate, scope=Scope.CALL)
    contact_visible = reference.advocate is not None and selectors.reference_contact_visible(
        organization=organization, user=user, reference=reference, manager=manager
    )
    if contact_visible:
        # Every view of a person's contact details is on record (DESIGN: respect privacy).
        with transaction.atomic():
            record(
                organization=organization,
                actor=user,
                action="contact.viewed",
                target=reference.advocate,
                details={"reference": reference.pk},
            )
    assets = [asset for asset in reference.assets.all() if ASSET_SCOPES.get(asset.kind) in scopes]
    labels = list(reference.labels.all())
    mine = []
    if not manager:
        mine = list(
            selectors.usage_request_list_mine(organization=organization, user=user).filter(reference=reference)[:10]
        )
    return {
        "reference": reference,
        "shown_as": _shown_as(reference, reveal_account=manager),
        "anonymised": reference.publication == Publication.ANONYMISED,
        "scopes": _scope_badges(scopes),
        "verdict": verdict,
        "contact_visible": contact_visible,
        "assets": assets,
        "products": [label.value for label in labels if label.kind == LabelKind.PRODUCT],
        "use_cases": [label.value for label in labels if label.kind == LabelKind.USE_CASE],
        "tags": [label.value for label in labels if label.kind == LabelKind.TAG],
        "events": list(selectors.usage_event_list(organization=organization, reference=reference)[:HISTORY_ON_DETAIL]),
        "my_requests": mine,
        "is_manager": manager,
        "can_request": request.membership.role == Role.SALES and bool(scopes),  # type: ignore[attr-defined]
        "usable_scopes": scopes,
    }


@member_required
@require_GET
def detail(request: HttpRequest, organization_slug: str, reference_id: int) -> HttpResponse:
    """A reference: its story, allowed uses, approved assets, history and (for sales) the request form."""
    reference = _catalogue_reference_or_404(request, reference_id)
    context = _detail_context(request, reference)
    if context["can_request"]:
        context["request_form"] = UsageRequestForm(scopes=sorted(context["usable_scopes"]))
    return render(request, "references/reference_detail.html", context)


@role_required(Role.SALES)
@require_http_methods(["GET", "HEAD", "POST"])
def request_create(request: HttpRequest, organization_slug: str, reference_id: int) -> HttpResponse:
    """Ask for one use of a reference for a deal (the detail page carries the same form)."""
    organization = request.organization  # type: ignore[attr-defined]
    reference = _catalogue_reference_or_404(request, reference_id)
    scopes = selectors.reference_usable_scopes(organization=organization, reference_ids=[reference.pk]).get(
        reference.pk, set()
    )
    initial = {"scope": request.GET.get("scope")} if request.GET.get("scope") in scopes else None
    form = UsageRequestForm(request.POST or None, scopes=sorted(scopes), initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.usage_request_create(
                organization=organization,
                reference=reference,
                scope=data["scope"],
                requested_by=request.user,
                opportunity_name=data["opportunity_name"],
                opportunity_value=data["opportunity_value"],
                currency=data["currency"],
                opportunity_stage=data["opportunity_stage"],
                crm_opportunity_id=data["crm_opportunity_id"],
                needed_by=data["needed_by"],
                purpose=data["purpose"],
            )
        except ApplicationError as error:
            form.add_application_error(error)
        else:
            messages.success(
                request,
                _("Your request to use “%(title)s” was sent to the reference managers.") % {"title": reference.title},
            )
            return redirect("references:my_requests", organization_slug=organization.slug)
    context = {"reference": reference, "request_form": form, "shown_as": _shown_as(reference, reveal_account=False)}
    return render(request, "references/request_form.html", context, status=400 if form.errors else 200)


# --- My requests (the salesperson's own) --------------------------------------------------


@member_required
@require_GET
def my_requests(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """The member's own usage requests: status, decision, outcome to record, pending ones to cancel."""
    requests = selectors.usage_request_list_mine(
        organization=request.organization,  # type: ignore[attr-defined]
        user=request.user,
    )
    page = _paginate(request, requests, MY_REQUESTS_PER_PAGE)
    return render(
        request,
        "references/my_requests.html",
        {"page": page, "outcomes": OutcomeForm.base_fields["outcome"].choices},
    )


def _my_request_or_404(request: HttpRequest, usage_request_id: int) -> UsageRequest:
    usage_request = selectors.usage_request_get_mine(
        organization=request.organization,  # type: ignore[attr-defined]
        user=request.user,
        usage_request_id=usage_request_id,
    )
    if usage_request is None:
        raise Http404("No such request")
    return usage_request


@member_required
@require_POST
def request_complete(request: HttpRequest, organization_slug: str, usage_request_id: int) -> HttpResponse:
    """Record how an approved use went; it goes on the usage ledger."""
    usage_request = _my_request_or_404(request, usage_request_id)
    form = OutcomeForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose won, lost or still open."))
    else:
        try:
            services.usage_request_complete(
                organization=request.organization,  # type: ignore[attr-defined]
                usage_request=usage_request,
                actor=request.user,
                outcome=form.cleaned_data["outcome"],
                notes=form.cleaned_data["notes"],
            )
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request,
                _("Outcome recorded for %(opportunity)s. Thank you.") % {"opportunity": usage_request.opportunity_name},
            )
    return redirect("references:my_requests", organization_slug=organization_slug)


@member_required
@require_POST
def request_cancel(request: HttpRequest, organization_slug: str, usage_request_id: int) -> HttpResponse:
    """Withdraw one's own pending request."""
    usage_request = _my_request_or_404(request, usage_request_id)
    if usage_request.status != UsageStatus.PENDING:
        messages.error(request, _("Only a pending request can be cancelled here."))
    else:
        try:
            services.usage_request_cancel(
                organization=request.organization,  # type: ignore[attr-defined]
                usage_request=usage_request,
                actor=request.user,
                reason=_("Cancelled by the salesperson."),
            )
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request, _("Request for %(opportunity)s cancelled.") % {"opportunity": usage_request.opportunity_name}
            )
    return redirect("references:my_requests", organization_slug=organization_slug)


# --- The managers' queue ---------------------------------------------------------------------


def _due(needed_by: date | None, today: date) -> str:
    if needed_by is None:
        return ""
    if needed_by < today:
        return "overdue"
    if needed_by == today:
        return "today"
    if needed_by <= today + timedelta(days=DUE_SOON_DAYS):
        return "soon"
    return ""


def _render_queue(request: HttpRequest, errors: dict[int, str] | None = None, status: int = 200) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    page = _paginate(
        request, selectors.usage_request_queue(organization=organization, user=request.user), QUEUE_PER_PAGE
    )
    items = list(page.object_list)
    usable = selectors.reference_usable_scopes(
        organization=organization, reference_ids={item.reference_id for item in items}
    )
    fatigue = selectors.contacts_fatigue(
        organization=organization,
        contacts=[item.reference.advocate for item in items if item.scope in FATIGUE_SCOPES],
    )
    today = timezone.localdate()
    rows = [
        {
            "request": item,
            "due": _due(item.needed_by, today),
            "usable": item.scope in usable.get(item.reference_id, set()),
            "fatigue": fatigue.get(item.reference.advocate_id) if item.scope in FATIGUE_SCOPES else None,
            "error": (errors or {}).get(item.pk, ""),
        }
        for item in items
    ]
    return render(request, "references/queue.html", {"page": page, "rows": rows}, status=status)


@role_required(Role.ADMIN, Role.REFERENCE_MANAGER)
@require_GET
def queue(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """Pending usage requests, most urgent first, with due dates and the advocate's fatigue."""
    return _render_queue(request)


@role_required(Role.ADMIN, Role.REFERENCE_MANAGER)
@require_POST
def request_decide(request: HttpRequest, organization_slug: str, usage_request_id: int) -> HttpResponse:
    """Approve (optional note) or decline (reason required) one pending request."""
    organization = request.organization  # type: ignore[attr-defined]
    usage_request = selectors.usage_request_get_pending(
        organization=organization, user=request.user, usage_request_id=usage_request_id
    )
    if usage_request is None:
        messages.error(request, _("That request is no longer pending."))
        return redirect("references:queue", organization_slug=organization_slug)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _render_queue(request, {usage_request.pk: _("Choose approve or decline.")}, status=400)
    reason = form.cleaned_data["reason"]
    try:
        if form.cleaned_data["decision"] == "approve":
            services.usage_request_approve(
                organization=organization, usage_request=usage_request, actor=request.user, reason=reason
            )
            done = _("Approved: %(what)s. %(who)s will be told by email.")
        else:
            services.usage_request_decline(
                organization=organization, usage_request=usage_request, actor=request.user, reason=reason
            )
            done = _("Declined: %(what)s. %(who)s will be told by email.")
    except ApplicationError as error:
        return _render_queue(request, {usage_request.pk: error.message}, status=400)
    messages.success(request, done % {"what": str(usage_request), "who": usage_request.requested_by.get_username()})
    return redirect("references:queue", organization_slug=organization_slug)


# --- The usage ledger as CSV --------------------------------------------------------------------

USAGE_CSV_COLUMNS = (
    "time",
    "event",
    "reference_id",
    "reference",
    "scope",
    "contact",
    "salesperson",
    "opportunity",
    "crm_opportunity_id",
    "outcome",
)


@role_required(Role.ADMIN, Role.REFERENCE_MANAGER)
@require_GET
def usage_csv(request: HttpRequest, organization_slug: str, reference_id: int | None = None) -> HttpResponse:
    """The usage ledger (one reference's, or all) as CSV, safe to open in a spreadsheet."""
    organization = request.organization  # type: ignore[attr-defined]
    reference = None
    if reference_id is not None:
        # Any reference of the organization, retired ones too: the ledger outlives use.
        reference = Reference.objects.filter(restriction_filter(user=request.user), pk=reference_id).first()
        if reference is None:
            raise Http404("No such reference")
    events = selectors.usage_event_list(organization=organization, reference=reference)
    if reference is None:
        events = events.filter(reference__in=Reference.objects.filter(restriction_filter(user=request.user)))
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    name = f"usage-{organization_slug}-{reference.pk}-{stamp}" if reference else f"usage-{organization_slug}-{stamp}"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    writer = csv.writer(response)
    writer.writerow(USAGE_CSV_COLUMNS)
    # Written now, inside the organization's scope; a streaming body would be read after it ends.
    for event in events.iterator(chunk_size=2000):
        writer.writerow(
            [
                csv_safe(event.created_at.isoformat()),
                csv_safe(event.kind),
                csv_safe(event.reference_id),
                csv_safe(event.reference.title),
                csv_safe(event.scope),
                csv_safe(event.contact.name if event.contact is not None else ""),
                csv_safe(event.salesperson_label),
                csv_safe(event.opportunity_name),
                csv_safe(event.crm_opportunity_id),
                csv_safe(event.outcome),
            ]
        )
    return response
