"""Pages for reference managers (and admins): accounts, contacts, references, assets, limits, CSV.

Thin: each view parses a form, calls a service or a read and renders. The
middleware has already resolved the organization and the membership; the
decorators check the role. Objects are looked up through the scoped
managers, so another organization's id is a 404. Lists evaluate inside the
view (never lazily in the template) and run a constant number of queries
per page, whatever the page size.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.db import transaction
from django.db.models import Count, Model, Q, QuerySet
from django.forms import model_to_dict
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.models import Role
from refmgr.tenancy.permissions import role_required

from . import imports, selectors, services
from .manage_forms import (
    AccountForm,
    AssetForm,
    ContactForm,
    ImportConfirmForm,
    ImportUploadForm,
    ManageSearchForm,
    ReferenceForm,
    ReferenceSettingsForm,
    RetireForm,
)
from .models import (
    Account,
    AssetKind,
    Contact,
    LabelKind,
    Reference,
    ReferenceAsset,
    ReferenceHold,
    ReferenceScopeGrant,
    ReferenceStatus,
    Scope,
)

PER_PAGE = 25
MANAGERS = (Role.ADMIN, Role.REFERENCE_MANAGER)
manager_required = role_required(*MANAGERS)
admin_required = role_required(Role.ADMIN)


# --- Shared plumbing -------------------------------------------------------------------------


def _search(request: HttpRequest) -> tuple[ManageSearchForm, str]:
    form = ManageSearchForm(request.GET)
    return form, (form.cleaned_data["q"].strip() if form.is_valid() else "")


def _sorted(request: HttpRequest, queryset: QuerySet[Any], sorts: dict[str, tuple[str, ...]]) -> tuple[QuerySet, str]:
    # Only the listed keys: an unknown ?sort= is ignored rather than passed to order_by().
    key = request.GET.get("sort", "")
    if key not in sorts:
        key = next(iter(sorts))
    return queryset.order_by(*sorts[key], "pk"), key


def _paginate(request: HttpRequest, queryset: QuerySet[Any]) -> Page:
    # get_page() turns a missing, malformed or out-of-range number into a valid page.
    page = Paginator(queryset, PER_PAGE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)  # evaluated here, inside the organization's scope
    return page


def _get(queryset: QuerySet[Any], pk: int) -> Any:
    found = queryset.filter(pk=pk).first()
    if found is None:
        raise Http404("Not found")
    return found


def _organization(request: HttpRequest) -> Any:
    return request.organization  # type: ignore[attr-defined]


def _form_status(form: Any) -> int:
    return 400 if form.is_bound and form.errors else 200


# --- Overview: every reference and why it is (not) usable ----------------------------------------


@dataclass
class ReferenceRow:
    reference: Reference
    usable: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


REFERENCE_SORTS = {
    "updated": ("-updated_at",),
    "title": ("title",),
    "account": ("account__name", "title"),
    "status": ("status", "-updated_at"),
    "created": ("-created_at",),
}
STATUS_FILTERS = {"": _("All"), "active": _("Active"), "retired": _("Retired")}


def reference_rows(*, organization: Any, references: list[Reference]) -> list[ReferenceRow]:
    """Each reference with its usable scopes and the reasons it cannot be used (three queries).

    The verdict comes from ``selectors.reference_usable_scopes``, the one place
    that decides; the reasons only explain it: retired, a hold, no grant yet,
    or every grant expired.
    """
    ids = [reference.pk for reference in references]
    usable = selectors.reference_usable_scopes(organization=organization, reference_ids=ids)
    now = timezone.now()
    grants: dict[int, list[tuple[str, Any]]] = defaultdict(list)
    for reference_id, scope, until in ReferenceScopeGrant.objects.filter(reference_id__in=ids).values_list(
        "reference_id", "scope", "granted_until"
    ):
        grants[reference_id].append((scope, until))
    holds: dict[int, list[ReferenceHold]] = defaultdict(list)
    for hold in ReferenceHold.objects.filter(reference_id__in=ids, released_at=None):
        holds[hold.reference_id].append(hold)
    labels = dict(Scope.choices)
    rows = []
    for reference in references:
        row = ReferenceRow(reference=reference, usable=[labels[s] for s in sorted(usable.get(reference.pk, ()))])
        if reference.status == ReferenceStatus.RETIRED:
            row.reasons.append(_("Retired"))
        for hold in holds.get(reference.pk, ()):
            row.reasons.append(f"{hold.get_kind_display()}: {hold.reason}")
        own = grants.get(reference.pk, [])
        if not own:
            row.reasons.append(_("No consent granted yet"))
        elif all(until <= now for _scope, until in own):
            row.reasons.append(_("Consent expired"))
        rows.append(row)
    return rows


@manager_required
@require_GET
def manage(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """Every reference of the organization, retired and unusable ones included, with why."""
    organization = _organization(request)
    search, query = _search(request)
    references = Reference.objects.select_related("account", "advocate")
    if query:
        references = references.filter(
            Q(title__icontains=query)
            | Q(account__name__icontains=query)
            | Q(advocate__name__icontains=query)
            | Q(labels__value__icontains=query)
        ).distinct()
    status = request.GET.get("status", "")
    if status in (ReferenceStatus.ACTIVE, ReferenceStatus.RETIRED):
        references = references.filter(status=status)
    else:
        status = ""
    references, sort = _sorted(request, references, REFERENCE_SORTS)
    page = _paginate(request, references)
    page.object_list = reference_rows(organization=organization, references=page.object_list)
    context = {
        "page": page,
        "search_form": search,
        "query": query,
        "sort": sort,
        "status": status,
        "status_filters": STATUS_FILTERS,
        "filtered": bool(query or status),
    }
    return render(request, "references/manage/overview.html", context)


# --- Accounts ------------------------------------------------------------------------------------------

ACCOUNT_SORTS = {
    "name": ("name",),
    "-name": ("-name",),
    "industry": ("industry", "name"),
    "region": ("region", "name"),
    "updated": ("-updated_at",),
}


@manager_required
@require_GET
def account_list(request: HttpRequest, organization_slug: str) -> HttpResponse:
    search, query = _search(request)
    accounts = Account.objects.annotate(
        contact_count=Count("contacts", distinct=True), reference_count=Count("references", distinct=True)
    )
    if query:
        accounts = accounts.filter(
            Q(name__icontains=query) | Q(industry__icontains=query) | Q(region__icontains=query) | Q(crm_id=query)
        )
    accounts, sort = _sorted(request, accounts, ACCOUNT_SORTS)
    page = _paginate(request, accounts)
    return render(
        request,
        "references/manage/account_list.html",
        {"page": page, "search_form": search, "query": query, "sort": sort},
    )


def _save(request: HttpRequest, form: Any, write: Any, **kwargs: Any) -> tuple[Model | None, Any]:
    """Run a service with the form's data; its refusal becomes a form error."""
    try:
        return write(organization=_organization(request), actor=request.user, **kwargs, **form.cleaned_data), None
    except ApplicationError as error:
        form.add_application_error(error)
        return None, error


@manager_required
@require_http_methods(["GET", "HEAD", "POST"])
def account_create(request: HttpRequest, organization_slug: str) -> HttpResponse:
    form = AccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        account, _error = _save(request, form, services.account_create)
        if account is not None:
            messages.success(request, _("Account “%(name)s” added.") % {"name": account})
            return redirect("references:account_list", organization_slug=organization_slug)
    return render(
        request, "references/manage/account_form.html", {"form": form, "account": None}, status=_form_status(form)
    )


@manager_required
@require_http_methods(["GET", "HEAD", "POST"])
def account_edit(request: HttpRequest, organization_slug: str, account_id: int) -> HttpResponse:
    account = _get(Account.objects.all(), account_id)
    form = AccountForm(request.POST or None, initial=model_to_dict(account))
    if request.method == "POST" and form.is_valid():
        saved, _error = _save(request, form, services.account_update, account=account)
        if saved is not None:
            messages.success(request, _("Account “%(name)s” saved.") % {"name": saved})
            return redirect("references:account_list", organization_slug=organization_slug)
    contacts = list(Contact.objects.filter(account=account).order_by("name")[:50])
    references = list(Reference.objects.filter(account=account).order_by("title")[:50])
    context = {"form": form, "account": account, "contacts": contacts, "references": references}
    return render(request, "references/manage/account_form.html", context, status=_form_status(form))


# --- Contacts ------------------------------------------------------------------------------------------

CONTACT_SORTS = {
    "name": ("name",),
    "account": ("account__name", "name"),
    "email": ("email",),
    "updated": ("-updated_at",),
}


@manager_required
@require_GET
def contact_list(request: HttpRequest, organization_slug: str) -> HttpResponse:
    search, query = _search(request)
    contacts = Contact.objects.select_related("account")
    if query:
        contacts = contacts.filter(
            Q(name__icontains=query)
            | Q(email__icontains=query)
            | Q(title__icontains=query)
            | Q(account__name__icontains=query)
        )
    contacts, sort = _sorted(request, contacts, CONTACT_SORTS)
    page = _paginate(request, contacts)
    return render(
        request,
        "references/manage/contact_list.html",
        {"page": page, "search_form": search, "query": query, "sort": sort},
    )


@manager_required
@require_http_methods(["GET", "HEAD", "POST"])
def contact_create(request: HttpRequest, organization_slug: str) -> HttpResponse:
    initial = {}
    account_id = request.GET.get("account", "")
    if account_id.isdigit():
        initial["account"] = Account.objects.filter(pk=int(account_id)).values_list("pk", flat=True).first()
    form = ContactForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        contact, _error = _save(request, form, services.contact_create)
        if contact is not None:
            messages.success(request, _("Contact “%(name)s” added.") % {"name": contact})
            return redirect("references:contact_list", organization_slug=organization_slug)
    return render(
        request, "references/manage/contact_form.html", {"form": form, "contact": None}, status=_form_status(form)
    )


@manager_required
@require_http_methods(["GET", "HEAD", "POST"])
def contact_edit(request: HttpRequest, organization_slug: str, contact_id: int) -> HttpResponse:
    contact = _get(Contact.objects.select_related("account"), contact_id)
    form = ContactForm(request.POST or None, initial=model_to_dict(contact))
    if request.method == "POST" and form.is_valid():
        saved, _error = _save(request, form, services.contact_update, contact=contact)
        if saved is not None:
            messages.success(request, _("Contact “%(name)s” saved.") % {"name": saved})
            return redirect("references:contact_list", organization_slug=organization_slug)
    return render(
        request, "references/manage/contact_form.html", {"form": form, "contact": contact}, status=_form_status(form)
    )


# --- References ----------------------------------------------------------------------------------------

_LABEL_INPUTS = {"products": LabelKind.PRODUCT, "use_cases": LabelKind.USE_CASE, "tags": LabelKind.TAG}


def _reference_initial(reference: Reference) -> dict[str, Any]:
    initial = model_to_dict(reference, fields=("account", "advocate", "title", "summary", "publication", "owner"))
    values: dict[str, list[str]] = defaultdict(list)
    for label in reference.labels.all():
        values[label.kind].append(label.value)
    for name, kind in _LABEL_INPUTS.items():
        initial[name] = ", ".join(values[kind])
    return initial


@manager_required
@require_http_methods(["GET", "HEAD", "POST"])
def reference_create(request: HttpRequest, organization_slug: str) -> HttpResponse:
    initial: dict[str, Any] = {"owner": request.user.pk}
    account_id = request.GET.get("account", "")
    if account_id.isdigit():
        initial["account"] = Account.objects.filter(pk=int(account_id)).values_list("pk", flat=True).first()
    form = ReferenceForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        reference, _error = _save(request, form, services.reference_create)
        if reference is not None:
            messages.success(
                request,
                _("Reference “%(title)s” added. Add its quote, logo or case study, then ask the customer for consent.")
                % {"title": reference},
            )
            return redirect("references:reference_edit", organization_slug=organization_slug, reference_id=reference.pk)
    return render(
        request, "references/manage/reference_form.html", {"form": form, "reference": None}, status=_form_status(form)
    )


@manager_required
@require_http_methods(["GET", "HEAD", "POST"])
def reference_edit(request: HttpRequest, organization_slug: str, reference_id: int) -> HttpResponse:
    reference = _get(Reference.objects.select_related("account", "advocate").prefetch_related("labels"), reference_id)
    form = ReferenceForm(request.POST or None, initial=_reference_initial(reference))
    if request.method == "POST" and form.is_valid():
        saved, _error = _save(request, form, services.reference_update, reference=reference)
        if saved is not None:
            messages.success(request, _("Reference “%(title)s” saved.") % {"title": saved})
            return redirect("references:reference_edit", organization_slug=organization_slug, reference_id=saved.pk)
    row = reference_rows(organization=_organization(request), references=[reference])[0]
    context = {
        "form": form,
        "reference": reference,
        "row": row,
        "assets": list(ReferenceAsset.objects.filter(reference=reference)),
    }
    return render(request, "references/manage/reference_form.html", context, status=_form_status(form))


@manager_required
@require_http_methods(["GET", "HEAD", "POST"])
def reference_retire(request: HttpRequest, organization_slug: str, reference_id: int) -> HttpResponse:
    """Confirm (GET), then retire (POST): the reference leaves the catalogue and pending requests are cancelled."""
    reference = _get(Reference.objects.select_related("account"), reference_id)
    form = RetireForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.reference_retire(
            organization=_organization(request),
            reference=reference,
            actor=request.user,
            reason=form.cleaned_data["reason"],
        )
        messages.success(request, _("Reference “%(title)s” retired.") % {"title": reference})
        return redirect("references:manage", organization_slug=organization_slug)
    pending = reference.usage_requests.filter(status="pending").count()
    context = {"form": form, "reference": reference, "pending": pending}
    return render(request, "references/manage/reference_retire.html", context, status=_form_status(form))


# --- Assets ---------------------------------------------------------------------------------------------


@manager_required
@require_http_methods(["GET", "HEAD", "POST"])
def asset_create(request: HttpRequest, organization_slug: str, reference_id: int) -> HttpResponse:
    reference = _get(Reference.objects.select_related("account"), reference_id)
    initial = {"kind": request.GET.get("kind")} if request.GET.get("kind") in AssetKind.values else {}
    form = AssetForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        asset, _error = _save(request, form, services.reference_asset_create, reference=reference)
        if asset is not None:
            messages.success(request, _("%(kind)s added.") % {"kind": asset.get_kind_display()})
            return redirect("references:reference_edit", organization_slug=organization_slug, reference_id=reference.pk)
    context = {"form": form, "reference": reference, "asset": None}
    return render(request, "references/manage/asset_form.html", context, status=_form_status(form))


@manager_required
@require_http_methods(["GET", "HEAD", "POST"])
def asset_edit(request: HttpRequest, organization_slug: str, asset_id: int) -> HttpResponse:
    asset = _get(ReferenceAsset.objects.select_related("reference"), asset_id)
    initial = {"kind": asset.kind, "title": asset.title, "text": asset.text, "url": asset.url}
    form = AssetForm(request.POST or None, request.FILES or None, initial=initial, editing=True)
    if request.method == "POST" and form.is_valid():
        data = {name: value for name, value in form.cleaned_data.items() if name != "kind"}
        try:
            services.reference_asset_update(
                organization=_organization(request), asset=asset, actor=request.user, **data
            )
        except ApplicationError as error:
            form.add_application_error(error)
        else:
            messages.success(request, _("%(kind)s saved.") % {"kind": asset.get_kind_display()})
            return redirect(
                "references:reference_edit", organization_slug=organization_slug, reference_id=asset.reference_id
            )
    context = {"form": form, "reference": asset.reference, "asset": asset}
    return render(request, "references/manage/asset_form.html", context, status=_form_status(form))


@manager_required
@require_http_methods(["GET", "HEAD", "POST"])
def asset_delete(request: HttpRequest, organization_slug: str, asset_id: int) -> HttpResponse:
    asset = _get(ReferenceAsset.objects.select_related("reference"), asset_id)
    if request.method == "POST":
        services.reference_asset_delete(organization=_organization(request), asset=asset, actor=request.user)
        messages.success(request, _("%(kind)s deleted.") % {"kind": asset.get_kind_display()})
        return redirect(
            "references:reference_edit", organization_slug=organization_slug, reference_id=asset.reference_id
        )
    return render(request, "references/manage/asset_delete.html", {"asset": asset, "reference": asset.reference})


@manager_required
@require_GET
def asset_file(request: HttpRequest, organization_slug: str, asset_id: int) -> HttpResponse:
    """An uploaded file, to managers only, as a download (never rendered inline as the site's own content)."""
    asset = _get(ReferenceAsset.objects.exclude(file=""), asset_id)
    try:
        handle = asset.file.open("rb")
    except FileNotFoundError:
        raise Http404("File missing") from None
    response = FileResponse(handle, as_attachment=True, filename=asset.file.name.rsplit("/", 1)[-1])
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --- Settings (admins) -------------------------------------------------------------------------------------


@admin_required
@require_http_methods(["GET", "HEAD", "POST"])
def reference_settings(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """The organization's fatigue limits: uses per person per window, the window, the rest after each use."""
    organization = _organization(request)
    current = selectors.reference_settings_get(organization=organization)
    form = ReferenceSettingsForm(request.POST or None, initial=model_to_dict(current))
    if request.method == "POST" and form.is_valid():
        review = {
            name: getattr(current, name) if name not in request.POST or value is None else value
            for name in ("incentive_window_days", "incentive_words")
            for value in [form.cleaned_data.pop(name)]
        }
        # Both groups of settings are saved together or not at all.
        with transaction.atomic():
            saved, _error = _save(request, form, services.reference_settings_update)
            if saved is not None:
                form.cleaned_data = review
                saved, _error = _save(request, form, services.reference_review_settings_update)
            if saved is None:
                transaction.set_rollback(True)
        if saved is not None:
            messages.success(request, _("Usage limits saved. They apply to every new request and approval."))
            return redirect("references:settings", organization_slug=organization_slug)
    return render(
        request, "references/manage/settings.html", {"form": form, "current": current}, status=_form_status(form)
    )


# --- CSV import and export ----------------------------------------------------------------------------------


def _import_page(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    context.setdefault("upload_form", ImportUploadForm())
    context.setdefault("columns", imports.COLUMNS)
    context.setdefault("required", imports.REQUIRED)
    return render(request, "references/manage/import.html", context, status=status)


@manager_required
@require_http_methods(["GET", "HEAD", "POST"])
def import_csv(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """Upload (POST with a file) → preview with a row-by-row report → confirm (POST with the token)."""
    if request.method == "POST" and "token" in request.POST:
        return _import_confirm(request, organization_slug)
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method != "POST" or not form.is_valid():
        return _import_page(request, {"upload_form": form}, status=_form_status(form))
    organization = _organization(request)
    upload = form.cleaned_data["file"]
    kind = form.cleaned_data["kind"]
    try:
        imports.import_check_size(size=upload.size)  # before reading it into memory
        text = imports.import_decode(data=upload.read())
        parsed = imports.import_parse(kind=kind, text=text)
    except imports.ImportFileError as error:
        form.add_application_error(error)
        return _import_page(request, {"upload_form": form}, status=400)
    report = imports.import_run(organization=organization, actor=request.user, parsed=parsed, commit=False)
    token = imports.import_stash(
        session=request.session, organization=organization, kind=kind, text=text, filename=upload.name or ""
    )
    confirm = ImportConfirmForm(initial={"token": token})
    return _import_page(
        request, {"report": report, "confirm_form": confirm, "filename": upload.name, "kind_label": kind}
    )


def _import_confirm(request: HttpRequest, organization_slug: str) -> HttpResponse:
    organization = _organization(request)
    form = ImportConfirmForm(request.POST)
    stashed = (
        imports.import_unstash(session=request.session, organization=organization, token=form.data.get("token", ""))
        if form.is_valid()
        else None
    )
    if stashed is None:
        messages.error(request, _("That import has expired or was already done. Upload the file again."))
        return redirect("references:import", organization_slug=organization_slug)
    kind, text, filename = stashed
    # Validated again: the organization's data may have changed since the preview.
    parsed = imports.import_parse(kind=kind, text=text)
    report = imports.import_run(
        organization=organization,
        actor=request.user,
        parsed=parsed,
        commit=True,
        valid_only=form.cleaned_data["valid_only"],
    )
    if not report.committed:
        if report.failure:
            message = report.failure
        elif report.valid_count == 0:
            message = _("Nothing was imported: no row is valid.")
        else:
            message = _(
                "Nothing was imported: some rows are not valid. Fix them, or tick “import only the valid rows”."
            )
        messages.error(request, message)
        return _import_page(
            request,
            {"report": report, "confirm_form": form, "filename": filename, "kind_label": kind},
            status=400,
        )
    imports.import_discard(session=request.session, token=form.cleaned_data["token"])
    messages.success(
        request,
        _("Imported %(file)s: %(created)d created, %(updated)d updated, %(skipped)d rows skipped.")
        % {"file": filename, "created": report.created, "updated": report.updated, "skipped": len(report.invalid)},
    )
    target = {"accounts": "references:account_list", "contacts": "references:contact_list"}.get(
        kind, "references:manage"
    )
    return redirect(target, organization_slug=organization_slug)


@manager_required
@require_GET
def export_csv(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """?kind=accounts|contacts|references as CSV in the import's columns, safe to open in a spreadsheet."""
    kind = request.GET.get("kind", "")
    if kind not in imports.COLUMNS:
        return HttpResponse(_("Choose kind=accounts, contacts or references."), status=400, content_type="text/plain")
    organization = _organization(request)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{kind}-{organization_slug}-{stamp}.csv"'
    # A byte-order mark, so spreadsheet programs read the file as UTF-8.
    response.write("\ufeff")
    writer = csv.writer(response)
    count = -1
    # Written here, inside the organization's scope; a streaming body would run after it ends.
    for row in imports.export_rows(organization=organization, kind=kind):
        writer.writerow(row)
        count += 1
    imports.export_record(organization=organization, actor=request.user, kind=kind, rows=count)
    return response
