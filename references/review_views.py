"""Pages for incentives (reference managers, admins) and the compliance review queue (compliance, admins).

Thin, like ``manage_views``: forms check shape, the services in
``references.incentives`` write and refuse; a refusal becomes a form error
(or, when it names no field, such as separation of duties, a message).
Objects are looked up through the scoped managers, so another
organization's id is a 404. Lists run a constant number of queries.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib import messages
from django.db.models import Count, Max, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.models import Role
from refmgr.tenancy.permissions import role_required

from . import imports, incentive_imports, incentives
from .manage_forms import ImportConfirmForm, ManageSearchForm
from .manage_views import _form_status, _get, _organization, _paginate, _search
from .models import FlagStatus, Incentive, IncentiveKind, ReviewFlag, UsageEvent
from .review_forms import IncentiveForm, IncentiveImportForm, ReviewDecisionForm

manager_required = role_required(Role.ADMIN, Role.REFERENCE_MANAGER)
reviewer_required = role_required(Role.ADMIN, Role.COMPLIANCE)

INCENTIVE_FIELDS = ("contact", "account", "kind", "value", "currency", "given_on", "given_by", "condition", "note")


# --- Incentives ----------------------------------------------------------------------------------


@manager_required
@require_GET
def incentive_list(request: HttpRequest, organization_slug: str) -> HttpResponse:
    search, query = _search(request)
    found = Incentive.objects.select_related("contact", "account", "recorded_by").annotate(
        flag_count=Count("review_flags"),
        open_flag_count=Count("review_flags", filter=Q(review_flags__status=FlagStatus.OPEN)),
    )
    if query:
        found = found.filter(
            Q(contact__name__icontains=query)
            | Q(contact__email__icontains=query)
            | Q(account__name__icontains=query)
            | Q(given_by__icontains=query)
            | Q(note__icontains=query)
        )
    page = _paginate(request, found.order_by("-given_on", "-pk"))
    context = {"page": page, "search_form": search, "query": query}
    return render(request, "references/review/incentive_list.html", context)


def _record(request: HttpRequest, form: IncentiveForm, incentive: Incentive | None) -> Incentive | None:
    data = dict(form.cleaned_data)
    try:
        if incentive is None:
            return incentives.incentive_record(organization=_organization(request), actor=request.user, **data)
        if data["contact"] is not None:
            data["account"] = None  # the contact decides the account
        return incentives.incentive_update(
            organization=_organization(request), incentive=incentive, actor=request.user, **data
        )
    except ApplicationError as error:
        form.add_application_error(error)
        return None


@manager_required
@require_http_methods(["GET", "HEAD", "POST"])
def incentive_create(request: HttpRequest, organization_slug: str) -> HttpResponse:
    form = IncentiveForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        incentive = _record(request, form, None)
        if incentive is not None:
            messages.success(
                request, _("Incentive recorded. The references it touches are being flagged for compliance review.")
            )
            return redirect("references:incentive_list", organization_slug=organization_slug)
    context = {"form": form, "incentive": None}
    return render(request, "references/review/incentive_form.html", context, status=_form_status(form))


@manager_required
@require_http_methods(["GET", "HEAD", "POST"])
def incentive_edit(request: HttpRequest, organization_slug: str, incentive_id: int) -> HttpResponse:
    incentive = _get(Incentive.objects.select_related("contact", "account"), incentive_id)
    initial = {name: getattr(incentive, name) for name in INCENTIVE_FIELDS}
    form = IncentiveForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid() and _record(request, form, incentive) is not None:
        messages.success(request, _("Incentive saved. Its references are checked again."))
        return redirect("references:incentive_list", organization_slug=organization_slug)
    flags = list(ReviewFlag.objects.filter(incentive=incentive).select_related("reference", "resolved_by"))
    context = {"form": form, "incentive": incentive, "flags": flags}
    return render(request, "references/review/incentive_form.html", context, status=_form_status(form))


def _import_page(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    context.setdefault("upload_form", IncentiveImportForm())
    context["columns"] = incentive_imports.COLUMNS
    context["required"] = incentive_imports.REQUIRED
    context["kinds"] = IncentiveKind.values
    return render(request, "references/review/incentive_import.html", context, status=status)


@manager_required
@require_http_methods(["GET", "HEAD", "POST"])
def incentive_import(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """Upload (POST with a file) → preview with a row-by-row report → confirm (POST with the token)."""
    organization = _organization(request)
    if request.method == "POST" and "token" in request.POST:
        return _import_confirm(request, organization_slug)
    form = IncentiveImportForm(request.POST or None, request.FILES or None)
    if request.method != "POST" or not form.is_valid():
        return _import_page(request, {"upload_form": form}, status=_form_status(form))
    upload = form.cleaned_data["file"]
    try:
        imports.import_check_size(size=upload.size)
        text = imports.import_decode(data=upload.read())
        parsed = incentive_imports.incentive_import_parse(text=text)
    except imports.ImportFileError as error:
        form.add_application_error(error)
        return _import_page(request, {"upload_form": form}, status=400)
    report = incentive_imports.incentive_import_run(
        organization=organization, actor=request.user, parsed=parsed, commit=False
    )
    token = imports.import_stash(
        session=request.session,
        organization=organization,
        kind=incentive_imports.KIND,
        text=text,
        filename=upload.name or "",
    )
    confirm = ImportConfirmForm(initial={"token": token})
    return _import_page(request, {"report": report, "confirm_form": confirm, "filename": upload.name})


def _import_confirm(request: HttpRequest, organization_slug: str) -> HttpResponse:
    organization = _organization(request)
    form = ImportConfirmForm(request.POST)
    stashed = (
        imports.import_unstash(session=request.session, organization=organization, token=form.data.get("token", ""))
        if form.is_valid()
        else None
    )
    if stashed is None or stashed[0] != incentive_imports.KIND:
        messages.error(request, _("That import has expired or was already done. Upload the file again."))
        return redirect("references:incentive_import", organization_slug=organization_slug)
    _kind, text, filename = stashed
    # Validated again: the organization's data may have changed since the preview.
    parsed = incentive_imports.incentive_import_parse(text=text)
    report = incentive_imports.incentive_import_run(
        organization=organization,
        actor=request.user,
        parsed=parsed,
        commit=True,
        valid_only=form.cleaned_data["valid_only"],
    )
    if not report.committed:
        messages.error(
            request,
            _("Nothing was imported: no row is valid.")
            if report.valid_count == 0
            else _("Nothing was imported: some rows are not valid. Fix them, or tick “import only the valid rows”."),
        )
        return _import_page(request, {"report": report, "confirm_form": form, "filename": filename}, status=400)
    imports.import_discard(session=request.session, token=form.cleaned_data["token"])
    messages.success(
        request,
        _("Imported %(file)s: %(created)d incentives recorded, %(skipped)d rows skipped.")
        % {"file": filename, "created": report.created, "skipped": len(report.invalid)},
    )
    return redirect("references:incentive_list", organization_slug=organization_slug)


# --- Review queue --------------------------------------------------------------------------------


def _uses(reference_ids: list[int]) -> dict[int, dict[str, Any]]:
    """How often each reference was used, and when last (one query)."""
    rows = (
        UsageEvent.objects.filter(reference_id__in=reference_ids)
        .values("reference_id")
        .annotate(count=Count("pk"), last=Max("created_at"))
    )
    return {row["reference_id"]: row for row in rows}


def _recent_uses(reference_ids: list[int], per_reference: int = 3) -> dict[int, list[UsageEvent]]:
    """The latest few uses of each reference (one query, bounded by the page)."""
    recent: dict[int, list[UsageEvent]] = defaultdict(list)
    events = UsageEvent.objects.filter(reference_id__in=reference_ids).order_by("-created_at", "-pk")
    for event in events[: per_reference * max(len(reference_ids), 1) * 4]:
        if len(recent[event.reference_id]) < per_reference:
            recent[event.reference_id].append(event)
    return recent


def _disclosure_for(flag: ReviewFlag) -> str:
    if flag.incentive is None:
        return ""
    kind = flag.incentive.get_kind_display().lower()
    article = "an" if kind[:1] in "aeiou" else "a"
    return _("This customer received %(article)s %(kind)s.") % {"article": article, "kind": kind}


@reviewer_required
@require_GET
def review_queue(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """Open flags first (oldest first, so nothing waits forever); resolved ones in a second tab."""
    search = ManageSearchForm(request.GET)
    tab = "resolved" if request.GET.get("tab") == "resolved" else "open"
    flags = ReviewFlag.objects.select_related(
        "reference", "reference__account", "incentive", "incentive__contact", "incentive__recorded_by", "resolved_by"
    )
    if tab == "open":
        flags = flags.filter(status=FlagStatus.OPEN).order_by("created_at", "pk")
    else:
        flags = flags.exclude(status=FlagStatus.OPEN).order_by("-resolved_at", "-pk")
    page = _paginate(request, flags)
    ids = [flag.reference_id for flag in page.object_list]
    uses, recent = _uses(ids), _recent_uses(ids)
    rows = [
        {"flag": flag, "uses": uses.get(flag.reference_id), "recent": recent.get(flag.reference_id, [])}
        for flag in page.object_list
    ]
    counts = {
        row["status"]: row["n"]
        for row in ReviewFlag.objects.values("status").annotate(n=Count("pk")).order_by("status")
    }
    context = {
        "page": page,
        "rows": rows,
        "tab": tab,
        "search_form": search,
        "open_count": counts.get(FlagStatus.OPEN, 0),
        "resolved_count": counts.get(FlagStatus.CLEARED, 0) + counts.get(FlagStatus.REJECTED, 0),
    }
    return render(request, "references/review/queue.html", context)


@reviewer_required
@require_http_methods(["GET", "HEAD", "POST"])
def review_decide(request: HttpRequest, organization_slug: str, flag_id: int) -> HttpResponse:
    """One flag with its incentive, passage and uses; POST clears (with a disclosure) or rejects it."""
    flag = _get(
        ReviewFlag.objects.select_related(
            "reference",
            "reference__account",
            "incentive",
            "incentive__contact",
            "incentive__recorded_by",
            "resolved_by",
        ),
        flag_id,
    )
    form = ReviewDecisionForm(request.POST or None, initial={"decision": "clear", "disclosure": _disclosure_for(flag)})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        organization = _organization(request)
        try:
            if data["decision"] == "clear":
                incentives.review_flag_clear(
                    organization=organization,
                    flag=flag,
                    actor=request.user,
                    justification=data["justification"],
                    disclosure=data["disclosure"],
                )
                messages.success(request, _("Flag cleared. “%(title)s” may be used again.") % {"title": flag.reference})
            else:
                incentives.review_flag_reject(
                    organization=organization, flag=flag, actor=request.user, justification=data["justification"]
                )
                messages.success(request, _("Reference “%(title)s” rejected and retired.") % {"title": flag.reference})
            return redirect("references:review_queue", organization_slug=organization_slug)
        except ApplicationError as error:
            if error.field in form.fields:
                form.add_application_error(error)
            else:
                # Not about a field (separation of duties, already resolved): said as a message.
                messages.error(request, error.message)
    uses = _uses([flag.reference_id]).get(flag.reference_id)
    recent = _recent_uses([flag.reference_id], per_reference=10).get(flag.reference_id, [])
    other_flags = list(
        ReviewFlag.objects.filter(reference_id=flag.reference_id).exclude(pk=flag.pk).select_related("resolved_by")
    )
    context = {"flag": flag, "form": form, "uses": uses, "recent": recent, "other_flags": other_flags}
    status = 400 if request.method == "POST" else 200
    return render(request, "references/review/decide.html", context, status=status)
