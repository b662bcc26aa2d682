"""Managers' consent pages, under /o/<slug>/consent/: requests, offline consent, withdrawals,
the ledger and its export, takedown tasks and the organization's consent settings.

Thin, like the references manager pages: each view parses a form, calls a
service or a selector and renders. Objects are looked up through the scoped
managers, so another organization's id is a 404. Lists evaluate inside the
view and run a constant number of queries per page. Compliance reviewers
read (the overview, a request, a reference's consents, the ledger); only
managers and admins write.
"""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from references.models import Reference, ReferenceStatus, Scope
from references.selectors import reference_material
from refmgr.audit.services import record
from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.admin import csv_safe
from refmgr.tenancy.context import tenant_context
from refmgr.tenancy.models import Role
from refmgr.tenancy.permissions import role_required

from . import ledger, selectors, services
from .forms import (
    ConsentRequestForm,
    ConsentSettingsForm,
    LedgerFilterForm,
    OfflineConsentForm,
    RevokeForm,
    SearchForm,
    TakedownAssignForm,
    TakedownCloseForm,
)
from .models import (
    ConsentEvent,
    ConsentRequest,
    ConsentRequestStatus,
    ConsentStatus,
    TakedownStatus,
    TakedownTask,
)

PER_PAGE = 25
MANAGERS = (Role.ADMIN, Role.REFERENCE_MANAGER)
READERS = (Role.ADMIN, Role.REFERENCE_MANAGER, Role.COMPLIANCE)
manager_required = role_required(*MANAGERS)
reader_required = role_required(*READERS)
admin_required = role_required(Role.ADMIN)
# The exports read the ledger in pages of this many events, each page in its own query.
CSV_CHUNK = 2000


# --- Shared plumbing -------------------------------------------------------------------------


def _organization(request: HttpRequest) -> Any:
    return request.organization  # type: ignore[attr-defined]


def _can_manage(request: HttpRequest) -> bool:
    membership = getattr(request, "membership", None)
    return membership is not None and membership.role in MANAGERS


def _paginate(request: HttpRequest, queryset: QuerySet[Any]) -> Page:
    # get_page() turns a missing, malformed or out-of-range number into a valid page.
    page = Paginator(queryset, PER_PAGE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)  # evaluated here, inside the organization's scope
    return page


def _get(queryset: QuerySet[Any], pk: Any) -> Any:
    if not (str(pk).isascii() and str(pk).isdigit()):  # "²".isdigit() is True, int("²") fails
        raise Http404("Not found")
    found = queryset.filter(pk=int(pk)).first()
    if found is None:
        raise Http404("Not found")
    return found


def _reference_from_query(request: HttpRequest) -> Reference:
    """The ``?reference=<id>`` of a form page; an unknown or another organization's id is a 404."""
    return _get(Reference.objects.select_related("account", "advocate"), request.GET.get("reference", ""))


def _form_status(form: Any) -> int:
    return 400 if form.is_bound and form.errors else 200


def _write(form: Any, write: Any, **kwargs: Any) -> Any:
    """Run a service; its refusal becomes an error on the field it names (or above the form)."""
    try:
        return write(**kwargs)
    except ApplicationError as error:
        form.add_application_error(error)
        return None


# --- The difference between the approved and the new wording -------------------------------------

_TOKENS = re.compile(r"(\s+)")


@dataclass(frozen=True)
class DiffPart:
    op: str  # "equal", "delete" or "insert"
    text: str


def word_diff(approved: str, new: str) -> list[DiffPart]:
    """A word-level diff for people: what was removed from the approved text and what was added."""
    before, after = _TOKENS.split(approved), _TOKENS.split(new)
    parts: list[DiffPart] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(DiffPart("equal", "".join(before[i1:i2])))
            continue
        if op in ("delete", "replace"):
            parts.append(DiffPart("delete", "".join(before[i1:i2])))
        if op in ("insert", "replace"):
            parts.append(DiffPart("insert", "".join(after[j1:j2])))
    return parts


@dataclass
class ScopeText:
    scope: str
    label: str
    text: str = ""
    approved: str = ""
    diff: list[DiffPart] = field(default_factory=list)


def request_texts(consent_request: ConsentRequest) -> list[ScopeText]:
    """Each scope of a request with its exact text and, for new wording, the diff from the approved one."""
    labels = dict(Scope.choices)
    rows = []
    for scope in consent_request.scopes:
        row = ScopeText(scope=scope, label=labels.get(scope, scope), text=consent_request.texts.get(scope, ""))
        if scope in consent_request.previous_texts:
            row.approved = consent_request.previous_texts[scope]
            row.diff = word_diff(row.approved, row.text)
        rows.append(row)
    return rows


# --- Overview ------------------------------------------------------------------------------------

REQUEST_SORTS = {
    "created": ("-created_at",),
    "reference": ("reference__title", "-created_at"),
    "contact": ("contact__name", "-created_at"),
    "status": ("status", "-created_at"),
}
PROPOSALS_SHOWN = 20
LAPSING_SHOWN = 20


@reader_required
@require_GET
def overview(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """Where consent stands: proposals to send, requests, what lapses soon, open takedowns."""
    organization = _organization(request)
    settings = selectors.consent_settings_get(organization=organization)
    counts = {
        row["status"]: row["n"] for row in ConsentRequest.objects.values("status").annotate(n=Count("pk")).order_by()
    }
    proposals = list(
        selectors.consent_request_list(organization=organization, status=ConsentRequestStatus.PROPOSED)[
            :PROPOSALS_SHOWN
        ]
    )
    search = SearchForm(request.GET)
    query = search.cleaned_data["q"].strip() if search.is_valid() else ""
    status = request.GET.get("status", "")
    if status not in ConsentRequestStatus.values:
        status = ""
    requests = selectors.consent_request_list(organization=organization, status=status)
    if query:
        requests = requests.filter(Q(reference__title__icontains=query) | Q(contact__name__icontains=query))
    sort = request.GET.get("sort", "")
    if sort not in REQUEST_SORTS:
        sort = "created"
    page = _paginate(request, requests.order_by(*REQUEST_SORTS[sort], "-pk"))
    labels = dict(Scope.choices)
    for consent_request in page.object_list:
        consent_request.scope_labels = [labels.get(s, s) for s in consent_request.scopes]
    # The manager is reminded from the largest reminder point, so the page looks as far ahead.
    horizon = settings.reminder_points[0] if settings.reminder_points else 30
    lapsing = selectors.consent_states_lapsing(organization=organization, within_days=horizon)
    context = {
        "counts": {value: counts.get(value, 0) for value in ConsentRequestStatus.values},
        "status_filters": [("", _("All")), *ConsentRequestStatus.choices],
        "proposals": [(p, request_texts(p)) for p in proposals],
        "proposal_count": counts.get(ConsentRequestStatus.PROPOSED, 0),
        "page": page,
        "search_form": search,
        "query": query,
        "status": status,
        "sort": sort,
        "filtered": bool(query or status),
        "lapsing": list(lapsing[:LAPSING_SHOWN]),
        "lapsing_count": lapsing.count(),
        "horizon": horizon,
        "open_takedowns": TakedownTask.objects.filter(status=TakedownStatus.OPEN).count(),
        "can_manage": _can_manage(request),
    }
    return render(request, "consent/manage/overview.html", context)


# --- Requests ------------------------------------------------------------------------------------


def _material_rows(organization: Any, reference: Reference) -> list[ScopeText]:
    """The exact texts a request would show now (a quote's and a case study's words)."""
    rows = []
    for scope in (Scope.QUOTE, Scope.CASE_STUDY):
        material = reference_material(organization=organization, reference=reference, scope=scope)
        rows.append(ScopeText(scope=scope, label=Scope(scope).label, text=material.text))
    return rows


@manager_required
@require_http_methods(["GET", "HEAD", "POST"])
def request_new(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """Ask the advocate or a signatory to consent to uses of a reference; the email goes after commit."""
    organization = _organization(request)
    if not request.GET.get("reference"):
        messages.info(request, _("Open a reference and choose “Ask for consent”."))
        return redirect("references:manage", organization_slug=organization_slug)
    reference = _reference_from_query(request)
    form = ConsentRequestForm(request.POST or None, reference=reference)
    if request.method == "POST" and form.is_valid():
        consent_request = _write(
            form,
            services.consent_request_create,
            organization=organization,
            actor=request.user,
            reference=reference,
            contact=form.cleaned_data["contact"],
            scopes=form.cleaned_data["scopes"],
            message=form.cleaned_data["message"],
        )
        if consent_request is not None:
            messages.success(
                request,
                _("Consent request sent to %(name)s. The email goes out in a moment.")
                % {"name": consent_request.contact.name},
            )
            return redirect(
                "consent:request_detail", organization_slug=organization_slug, request_id=consent_request.pk
            )
    context = {
        "form": form,
        "reference": reference,
        "materials": _material_rows(organization, reference),
        "retired": reference.status == ReferenceStatus.RETIRED,
    }
    return render(request, "consent/manage/request_form.html", context, status=_form_status(form))


@reader_required
@require_GET
def request_detail(request: HttpRequest, organization_slug: str, request_id: int) -> HttpResponse:
    organization = _organization(request)
    consent_request = _get(
        ConsentRequest.objects.select_related("reference__account", "contact", "requested_by"), request_id
    )
    events = list(selectors.consent_event_list(organization=organization).filter(consent_request=consent_request)[:200])
    context = {
        "consent_request": consent_request,
        "texts": request_texts(consent_request),
        "events": events,
        "is_open": consent_request.status in (ConsentRequestStatus.SENT, ConsentRequestStatus.PROPOSED),
        "can_manage": _can_manage(request),
    }
    return render(request, "consent/manage/request_detail.html", context)


def _back(request: HttpRequest, organization_slug: str, consent_request: ConsentRequest) -> HttpResponse:
    # Back to where the button was pressed: the overview's proposals or the request's page.
    if request.POST.get("next") == "overview":
        return redirect("consent:overview", organization_slug=organization_slug)
    return redirect("consent:request_detail", organization_slug=organization_slug, request_id=consent_request.pk)


@manager_required
@require_POST
def request_send(request: HttpRequest, organization_slug: str, request_id: int) -> HttpResponse:
    """Send a proposed request (new wording) as the reference's material stands now."""
    consent_request = _get(ConsentRequest.objects.select_related("contact"), request_id)
    try:
        services.consent_request_send_proposal(
            organization=_organization(request), actor=request.user, consent_request=consent_request
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Request sent to %(name)s.") % {"name": consent_request.contact.name})
    return _back(request, organization_slug, consent_request)


@manager_required
@require_POST
def request_cancel(request: HttpRequest, organization_slug: str, request_id: int) -> HttpResponse:
    consent_request = _get(ConsentRequest.objects.all(), request_id)
    try:
        services.consent_request_cancel(
            organization=_organization(request), actor=request.user, consent_request=consent_request
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Request cancelled; its link no longer works."))
    return _back(request, organization_slug, consent_request)


# --- Consent given outside refmgr, and withdrawals recorded by a manager --------------------------


@manager_required
@require_http_methods(["GET", "HEAD", "POST"])
def offline_record(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """Record consent the customer gave in writing elsewhere, with the written proof uploaded."""
    organization = _organization(request)
    reference = _reference_from_query(request)
    form = OfflineConsentForm(request.POST or None, request.FILES or None, reference=reference)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        events = _write(
            form,
            services.consent_record_offline,
            organization=organization,
            actor=request.user,
            reference=reference,
            contact=data["contact"],
            scopes=data["scopes"],
            valid_until=data["valid_until"],
            publication=data["publication"],
            proof=data["proof"],
            note=data["note"],
        )
        if events is not None:
            messages.success(request, _("Consent recorded, with its proof, in the ledger."))
            return redirect("consent:reference_states", organization_slug=organization_slug, reference_id=reference.pk)
    context = {"form": form, "reference": reference, "materials": _material_rows(organization, reference)}
    return render(request, "consent/manage/offline_form.html", context, status=_form_status(form))


def _revocable(reference: Reference) -> QuerySet[Any]:
    from .models import ConsentState

    return ConsentState.objects.select_related("contact").filter(
        reference=reference, status=ConsentStatus.GRANTED, valid_until__gt=timezone.now()
    )


def _states_page(
    request: HttpRequest, reference: Reference, form: RevokeForm | None, status: int = 200
) -> HttpResponse:
    organization = _organization(request)
    states = list(selectors.consent_state_list(organization=organization, reference_id=reference.pk))
    # Who recorded each state's last change: the ledger event it was added up from.
    by_sequence = {
        event.sequence: event
        for event in ConsentEvent.objects.select_related("actor").filter(
            sequence__in=[state.last_sequence for state in states]
        )
    }
    context = {
        "reference": reference,
        "rows": [(state, by_sequence.get(state.last_sequence)) for state in states],
        "requests": list(selectors.consent_request_list(organization=organization, reference_id=reference.pk)[:20]),
        "form": form,
        "can_manage": _can_manage(request),
        "now": timezone.now(),
    }
    return render(request, "consent/manage/reference_states.html", context, status=status)


@reader_required
@require_GET
def reference_states(request: HttpRequest, organization_slug: str, reference_id: int) -> HttpResponse:
    """A reference's consents: each use, whose consent, until when, and who recorded it."""
    reference = _get(Reference.objects.select_related("account", "advocate"), reference_id)
    form = RevokeForm(revocable=_revocable(reference)) if _can_manage(request) else None
    return _states_page(request, reference, form)


@manager_required
@require_POST
def reference_revoke(request: HttpRequest, organization_slug: str, reference_id: int) -> HttpResponse:
    """Record a withdrawal the customer made by phone or letter; it takes effect at once."""
    reference = _get(Reference.objects.select_related("account", "advocate"), reference_id)
    form = RevokeForm(request.POST, revocable=_revocable(reference))
    if form.is_valid():
        result = _write(
            form,
            services.consent_revoke,
            organization=_organization(request),
            contact=None,
            state_ids=[state.pk for state in form.cleaned_data["states"]],
            actor=request.user,
            note=form.cleaned_data["note"],
        )
        if result is not None:
            messages.success(
                request,
                _("Consent withdrawn: %(scopes)d use(s) stopped, %(tasks)d takedown task(s) opened.")
                % {"scopes": len(result.revoked), "tasks": len(result.takedown_tasks)},
            )
            return redirect("consent:reference_states", organization_slug=organization_slug, reference_id=reference.pk)
    return _states_page(request, reference, form, status=400)


# --- The ledger ----------------------------------------------------------------------------------


def _ledger_filters(request: HttpRequest) -> tuple[LedgerFilterForm, dict[str, Any]]:
    form = LedgerFilterForm(request.GET)
    return form, form.filters()


@reader_required
@require_GET
def ledger_list(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """The consent ledger, newest first, filterable; verify its chain or export it."""
    organization = _organization(request)
    form, filters = _ledger_filters(request)
    events = selectors.consent_event_list(organization=organization, **filters)
    page = _paginate(request, events)
    context = {
        "form": form,
        "page": page,
        "filtered": any(filters.values()),
        "export_query": request.GET.urlencode(),
    }
    return render(request, "consent/manage/ledger.html", context)


@reader_required
@require_POST
def ledger_verify(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """Recompute the whole chain (POST: it reads every event, so no crawler or prefetch starts it)."""
    organization = _organization(request)
    verdict = ledger.ledger_verify(organization=organization)
    record(
        organization=organization,
        actor=request.user,
        action="consent.ledger_verified",
        details={"ok": verdict.ok, "checked": verdict.checked, "broken_at": verdict.broken_at},
    )
    return render(request, "consent/manage/ledger_verify.html", {"verdict": verdict})


LEDGER_COLUMNS = (
    "sequence",
    "time",
    "kind",
    "scope",
    "party",
    "reference_id",
    "reference",
    "contact_id",
    "contact",
    "valid_until",
    "publication",
    "policy_version",
    "text_hash",
    "mechanism",
    "proof",
    "ip_prefix",
    "user_agent_hash",
    "actor",
    "note",
    "consent_request_id",
    "previous_hash",
    "hash",
)


def _iso(value: Any) -> str:
    return value.isoformat() if value is not None else ""


def ledger_csv_row(event: ConsentEvent) -> list[str]:
    """One event as CSV cells: codes rather than labels (stable for machines), times in ISO 8601."""
    values = (
        event.sequence,
        _iso(event.occurred_at),
        event.kind,
        event.scope,
        event.party,
        event.reference_id or "",
        event.reference.title if event.reference is not None else "",
        event.contact_id or "",
        event.contact.name if event.contact is not None else "",
        _iso(event.valid_until),
        event.publication,
        event.policy_version if event.policy_version is not None else "",
        event.text_hash,
        event.mechanism,
        event.proof.name or "",
        event.ip_prefix,
        event.user_agent_hash,
        event.actor.get_username() if event.actor is not None else "",
        event.note,
        event.consent_request_id or "",
        event.previous_hash,
        event.hash,
    )
    return [csv_safe(value) for value in values]


class _Echo:
    def write(self, value: str) -> str:
        return value


def ledger_csv_chunks(organization: Any, filters: dict[str, Any], chunk_size: int = CSV_CHUNK) -> Iterator[str]:
    """The CSV, produced while it is sent: keyset pages by sequence, so memory stays flat.

    The body runs after the view (and the middleware's organization scope)
    has returned, so each page is read inside its own ``tenant_context``;
    setting and resetting it within one step of the generator keeps it
    correct however the server drives the iteration.
    """
    writer = csv.writer(_Echo())
    yield "\ufeff"  # a byte-order mark, so spreadsheet programs read the file as UTF-8
    yield writer.writerow(LEDGER_COLUMNS)
    before: int | None = None
    while True:
        with tenant_context(organization):
            events = selectors.consent_event_list(organization=organization, **filters)
            if before is not None:
                events = events.filter(sequence__lt=before)
            batch = list(events[:chunk_size])
        if not batch:
            return
        yield "".join(writer.writerow(ledger_csv_row(event)) for event in batch)
        before = batch[-1].sequence


@reader_required
@require_GET
def ledger_csv(request: HttpRequest, organization_slug: str) -> StreamingHttpResponse:
    """The ledger (with the page's filters) as CSV, streamed; safe to open in a spreadsheet."""
    organization = _organization(request)
    _form, filters = _ledger_filters(request)
    record(
        organization=organization,
        actor=request.user,
        action="consent.ledger_exported",
        details={name: value for name, value in filters.items() if value},
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(ledger_csv_chunks(organization, filters), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="consent-ledger-{organization_slug}-{stamp}.csv"'
    return response


# --- Takedowns -----------------------------------------------------------------------------------

TAKEDOWN_FILTERS = {"open": TakedownStatus.OPEN, "done": TakedownStatus.DONE, "all": ""}


@manager_required
@require_GET
def takedowns(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """Places a withdrawn reference was published: each to take down by its due date, with evidence."""
    organization = _organization(request)
    shown = request.GET.get("status", "open")
    if shown not in TAKEDOWN_FILTERS:
        shown = "open"
    tasks = selectors.takedown_task_list(organization=organization, status=TAKEDOWN_FILTERS[shown])
    if shown != "open":
        tasks = tasks.select_related("closed_by").order_by("status", "-closed_at", "due_on", "id")
    page = _paginate(request, tasks)
    context = {
        "page": page,
        "shown": shown,
        "filters": [("open", _("Open")), ("done", _("Done")), ("all", _("All"))],
        "today": timezone.localdate(),
    }
    return render(request, "consent/manage/takedowns.html", context)


@manager_required
@require_http_methods(["GET", "HEAD", "POST"])
def takedown_detail(request: HttpRequest, organization_slug: str, task_id: int) -> HttpResponse:
    """One takedown: where the reference was used, who takes it down, and closing it with evidence."""
    organization = _organization(request)
    task = _get(
        TakedownTask.objects.select_related("reference__account", "usage_request__requested_by", "assigned_to"),
        task_id,
    )
    action = request.POST.get("action", "") if request.method == "POST" else ""
    # Only the submitted form is bound, so the other one shows no errors.
    close_form = TakedownCloseForm(*((request.POST, request.FILES) if action == "close" else ()))
    assign_form = TakedownAssignForm(
        request.POST if action == "assign" else None, initial={"assigned_to": task.assigned_to_id}
    )
    if action == "close" and close_form.is_valid():
        closed = _write(
            close_form,
            services.takedown_task_close,
            organization=organization,
            task=task,
            actor=request.user,
            evidence=close_form.cleaned_data["evidence"],
            evidence_file=close_form.cleaned_data["evidence_file"],
        )
        if closed is not None:
            messages.success(request, _("Takedown closed, with its evidence."))
            return redirect("consent:takedowns", organization_slug=organization_slug)
    elif action == "assign" and assign_form.is_valid():
        assigned = _write(
            assign_form,
            services.takedown_task_assign,
            organization=organization,
            task=task,
            actor=request.user,
            assignee=assign_form.cleaned_data["assigned_to"],
        )
        if assigned is not None:
            messages.success(request, _("Takedown assigned."))
            return redirect("consent:takedown_detail", organization_slug=organization_slug, task_id=task.pk)
    status = (
        400 if (close_form.is_bound and close_form.errors) or (assign_form.is_bound and assign_form.errors) else 200
    )
    context = {
        "task": task,
        "close_form": close_form,
        "assign_form": assign_form,
        "today": timezone.localdate(),
        "is_open": task.status == TakedownStatus.OPEN,
    }
    return render(request, "consent/manage/takedown_detail.html", context, status=status)


# --- Settings (admins) ---------------------------------------------------------------------------


@admin_required
@require_http_methods(["GET", "HEAD", "POST"])
def consent_settings(request: HttpRequest, organization_slug: str) -> HttpResponse:
    organization = _organization(request)
    current = selectors.consent_settings_get(organization=organization)
    form = ConsentSettingsForm.for_settings(current, request.POST or None)
    if request.method == "POST" and form.is_valid():
        saved = _write(
            form, services.consent_settings_update, organization=organization, actor=request.user, **form.cleaned_data
        )
        if saved is not None:
            messages.success(request, _("Consent settings saved. They apply to new requests and the next sweeps."))
            return redirect("consent:settings", organization_slug=organization_slug)
    return render(
        request, "consent/manage/settings.html", {"form": form, "current": current}, status=_form_status(form)
    )
