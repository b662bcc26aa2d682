"""The access page: a manager limits a reference to named people and groups (django-guardian)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import Group
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.models import Membership, Role
from refmgr.tenancy.permissions import role_required

from . import services
from .models import Reference, ReferenceGroupObjectPermission, ReferenceUserObjectPermission


def _organization_groups(organization: object) -> list[Group]:
    # Groups are global in django.contrib.auth; offer only those with an active member here.
    return list(
        Group.objects.filter(user__memberships__organization=organization, user__memberships__is_active=True)
        .distinct()
        .order_by("name")
    )


def _ids(request: HttpRequest, name: str) -> list[int]:
    return [int(value) for value in request.POST.getlist(name) if value.isdigit()]


@role_required(Role.ADMIN, Role.REFERENCE_MANAGER)
def reference_access(request: HttpRequest, organization_slug: str, reference_id: int) -> HttpResponse:
    """Show who may see a reference; restrict it to the people and groups ticked, or lift the restriction."""
    organization = request.organization  # type: ignore[attr-defined]
    reference = Reference.objects.select_related("account").filter(pk=reference_id).first()
    if reference is None:
        raise Http404("No such reference")
    members = list(Membership.objects.filter(is_active=True).select_related("user").order_by("user__username"))
    groups = _organization_groups(organization)
    error = None
    if request.method == "POST":
        try:
            if request.POST.get("action") == "unrestrict":
                services.reference_unrestrict(organization=organization, reference=reference, actor=request.user)
                messages.success(request, _("Every member can see this reference again."))
            else:
                # Only this organization's members and groups can be chosen: other posted ids are dropped.
                user_ids = set(_ids(request, "users"))
                users = [m.user for m in members if m.user_id in user_ids]
                group_ids = set(_ids(request, "groups"))
                chosen_groups = [g for g in groups if g.pk in group_ids]
                services.reference_restrict(
                    organization=organization,
                    reference=reference,
                    users=users,
                    groups=chosen_groups,
                    actor=request.user,
                )
                messages.success(request, _("Only the people and groups you chose (and managers) can see it now."))
            return redirect("references:access", organization_slug=organization_slug, reference_id=reference.pk)
        except ApplicationError as exc:
            error = exc
    allowed_users = set(
        ReferenceUserObjectPermission.objects.filter(content_object=reference).values_list("user_id", flat=True)
    )
    allowed_groups = set(
        ReferenceGroupObjectPermission.objects.filter(content_object=reference).values_list("group_id", flat=True)
    )
    managers = {Role.ADMIN, Role.REFERENCE_MANAGER}
    context = {
        "reference": reference,
        "members": [
            {"user": m.user, "role": m.get_role_display(), "checked": m.user_id in allowed_users}
            for m in members
            if m.role not in managers
        ],
        "managers": [m for m in members if m.role in managers],
        "groups": [{"group": g, "checked": g.pk in allowed_groups} for g in groups],
        "error": error,
    }
    return render(request, "references/access.html", context, status=400 if error else 200)
