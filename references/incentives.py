"""Services for incentives and compliance review (the writes; reads are in selectors.py).

Flagging is set-based: ``incentive_flag_references`` (on commit of an incentive)
reads the incentives and the references they touch in a fixed number of
statements, matches them in memory and inserts every flag and hold with
``ignore_conflicts`` against their unique keys, so re-running it, or two runs at
once, can never raise a flag twice. The nightly sweep applies the same rule, and
the text rule, to every organization at once in SQL: ``review_sweeps``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from refmgr.audit.services import record
from refmgr.common.exceptions import ApplicationError
from refmgr.tenancy.context import assert_current_organization
from refmgr.tenancy.models import Organization

from . import selectors, services
from .models import (
    Account,
    Contact,
    FlagStatus,
    HoldKind,
    Incentive,
    IncentiveCondition,
    Reference,
    ReferenceStatus,
    ReviewFlag,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

SENTIMENT_REFUSAL = (
    "An incentive conditioned on a positive review, rating or testimonial cannot be recorded: "
    "a reference bought that way is not authentic, and in many countries it is unlawful."
)


def _incentive_fields(
    *, organization: Organization, contact: Contact | None, account: Account | None, condition: str
) -> Account:
    if condition == IncentiveCondition.POSITIVE_SENTIMENT:
        raise ApplicationError(SENTIMENT_REFUSAL, field="condition")
    if contact is None and account is None:
        raise ApplicationError("Choose the contact or the account that received it.", field="contact")
    for obj, field in ((contact, "contact"), (account, "account")):
        if obj is not None and obj.organization_id != organization.pk:
            raise ApplicationError("Not found.", field=field)
    if contact is not None:
        if account is not None and account.pk != contact.account_id:
            raise ApplicationError("This contact works at another account.", field="account")
        return contact.account
    assert account is not None
    return account


def _clean(incentive: Incentive) -> None:
    try:
        incentive.full_clean()
    except ValidationError as error:
        field, messages = next(iter(error.message_dict.items()))
        raise ApplicationError(" ".join(messages), field=None if field == "__all__" else field) from None


def incentive_record(
    *,
    organization: Organization,
    actor: AbstractBaseUser,
    kind: str,
    value: Decimal,
    currency: str,
    given_on: date,
    given_by: str,
    contact: Contact | None = None,
    account: Account | None = None,
    condition: str = IncentiveCondition.NONE,
    note: str = "",
) -> Incentive:
    """Record an incentive; its references are flagged by a Celery task after commit.

    Refused outright when it was conditioned on positive sentiment.
    """
    assert_current_organization(organization)
    with transaction.atomic():
        incentive = Incentive(
            organization=organization,
            contact=contact,
            account=_incentive_fields(organization=organization, contact=contact, account=account, condition=condition),
            kind=kind,
            value=value,
            currency=(currency or "").upper(),
            given_on=given_on,
            given_by=given_by,
            recorded_by=actor,
            condition=condition,
            note=note,
        )
        _clean(incentive)
        incentive.save()
        record(
            organization=organization,
            actor=actor,
            action="incentive.recorded",
            target=incentive,
            details={"kind": kind, "value": str(value), "currency": incentive.currency, "condition": condition},
        )
        _enqueue_flagging(organization, incentive.pk)
    return incentive


def incentive_update(
    *, organization: Organization, incentive: Incentive, actor: AbstractBaseUser, **fields: Any
) -> Incentive:
    """Change an incentive; its references are flagged again after commit (flags already raised stay)."""
    assert_current_organization(organization)
    with transaction.atomic():
        incentive = Incentive.objects.select_for_update().get(pk=incentive.pk)
        for name, value in fields.items():
            if name not in {
                "contact",
                "account",
                "kind",
                "value",
                "currency",
                "given_on",
                "given_by",
                "condition",
                "note",
            }:
                raise ValueError(f"unknown incentive field {name!r}")
            setattr(incentive, name, value)
        incentive.currency = (incentive.currency or "").upper()
        incentive.account = _incentive_fields(
            organization=organization,
            contact=incentive.contact,
            account=fields.get("account", None if "contact" in fields else incentive.account),
            condition=incentive.condition,
        )
        _clean(incentive)
        incentive.save()
        record(
            organization=organization,
            actor=actor,
            action="incentive.updated",
            target=incentive,
            details={"fields": sorted(fields)},
        )
        _enqueue_flagging(organization, incentive.pk)
    return incentive


def _enqueue_flagging(organization: Organization, incentive_id: int) -> None:
    from .tasks import incentive_flag as incentive_flag_task

    transaction.on_commit(
        lambda: incentive_flag_task.delay(organization_id=organization.pk, incentive_id=incentive_id), robust=True
    )


# --- Flagging ---------------------------------------------------------------------------


def _active_between(reference: dict[str, Any], start: datetime, end: datetime) -> bool:
    """Whether the reference existed and was not yet retired at some point in [start, end]."""
    retired_at = reference["retired_at"] if reference["status"] == ReferenceStatus.RETIRED else None
    return reference["created_at"] <= end and (retired_at is None or retired_at >= start)


def _insert_flags(organization: Organization, flags: list[ReviewFlag]) -> int:
    """Insert flags and their holds; existing ones are left alone. Returns how many flags are new."""
    if not flags:
        return 0
    # Counted by source only: a flag's source names the incentive (or the text row), so this list
    # stays short where the flags are many (an incentive flags every reference of its account),
    # and rows of the same sources outside this batch count the same before and after.
    sources = {flag.source_key for flag in flags}
    before = ReviewFlag.objects.filter(source_key__in=sources).count()
    # One INSERT each on PostgreSQL however many flags (no batch_size: batches would make the
    # statement count grow with the rows; SQLite alone splits them, at its parameter cap).
    ReviewFlag.objects.bulk_create(flags, ignore_conflicts=True)
    # The holds copied from the flags in the database: building a second object per flag was a third
    # of the largest organization's first sweep (28,000 flags: 3 of 11 s, pyinstrument). Every flag of
    # these sources holds its reference; ones already held, or released, stay as they are.
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    placeholders = ", ".join(["%s"] * len(sources))  # placeholders only: every value is a parameter
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO references_referencehold"  # noqa: S608
            " (organization_id, reference_id, kind, source, reason, released_at, created_at, updated_at)"
            " SELECT f.organization_id, f.reference_id, %s, f.source_key, f.reason, NULL, %s, %s"
            " FROM references_reviewflag f"
            f" WHERE f.organization_id = %s AND f.source_key IN ({placeholders})"
            " ON CONFLICT DO NOTHING",
            [HoldKind.REVIEW, now, now, organization.pk, *sorted(sources)],
        )
    after = ReviewFlag.objects.filter(source_key__in=sources).count()
    return after - before


@transaction.atomic
def incentive_flag_references(
    *,
    organization: Organization,
    incentive_ids: Iterable[int] | None = None,
) -> int:
    """Flag every reference of the contact (or, for an account-wide incentive, the account)
    that was active within the look-back window around the incentive. Idempotent.

    The on-commit ``incentive_flag`` task's service, for one organization; the nightly sweep
    applies the same rule to every organization at once in SQL (``review_sweeps``). A fixed number
    of statements whatever the number of incentives and references. Returns how many new flags
    were raised.
    """
    assert_current_organization(organization)
    window = timedelta(days=selectors.reference_settings_get(organization=organization).incentive_window_days)
    incentives = Incentive.objects.all()
    if incentive_ids is not None:
        incentives = incentives.filter(pk__in=list(incentive_ids))
    rows = list(incentives.values("pk", "contact_id", "account_id", "given_on", "kind"))
    if not rows:
        return 0
    contact_ids = {row["contact_id"] for row in rows if row["contact_id"]}
    account_ids = {row["account_id"] for row in rows if not row["contact_id"]}
    by_contact: dict[int, list[dict[str, Any]]] = defaultdict(list)
    by_account: dict[int, list[dict[str, Any]]] = defaultdict(list)
    references = Reference.objects.filter(Q(advocate_id__in=contact_ids) | Q(account_id__in=account_ids)).values(
        "pk", "advocate_id", "account_id", "created_at", "retired_at", "status"
    )
    for reference in references:
        by_contact[reference["advocate_id"]].append(reference)
        by_account[reference["account_id"]].append(reference)
    flags = []
    # Translated once: formatting a lazy label per flag cost 0.6 s over 28,000 flags.
    labels = {kind: str(label) for kind, label in Incentive._meta.get_field("kind").choices}
    for row in rows:
        given = timezone.make_aware(datetime.combine(row["given_on"], datetime.min.time()))
        touched = by_contact[row["contact_id"]] if row["contact_id"] else by_account[row["account_id"]]
        for reference in touched:
            if _active_between(reference, given - window, given + window):
                flags.append(
                    ReviewFlag(
                        organization=organization,
                        reference_id=reference["pk"],
                        incentive_id=row["pk"],
                        source_key=f"incentive:{row['pk']}",
                        reason=f"Incentive recorded: {labels.get(row['kind'], row['kind'])} on {row['given_on']}",
                    )
                )
    created = _insert_flags(organization, flags)
    if created:
        record(
            organization=organization,
            actor=None,
            action="review_flag.raised",
            details={"source": "incentives", "count": created},
        )
    return created


# --- Review decisions ------------------------------------------------------------------


def _decidable(organization: Organization, flag: ReviewFlag, actor: AbstractBaseUser, justification: str) -> ReviewFlag:
    # Lock only the flag row: the incentive is an outer join, which FOR UPDATE cannot lock.
    flag = ReviewFlag.objects.select_for_update(of=("self",)).select_related("incentive", "reference").get(pk=flag.pk)
    if flag.status != FlagStatus.OPEN:
        raise ApplicationError("This flag has already been resolved.")
    if flag.incentive is not None and flag.incentive.recorded_by_id == actor.pk:
        # Separation of duties: whoever recorded the incentive cannot judge its effect.
        raise ApplicationError("You recorded this incentive, so another reviewer must decide on it.")
    if not justification.strip():
        raise ApplicationError("Write down why; the decision is kept with the reference.", field="justification")
    return flag


@transaction.atomic
def review_flag_clear(
    *, organization: Organization, flag: ReviewFlag, actor: AbstractBaseUser, justification: str, disclosure: str
) -> ReviewFlag:
    """Clear a flag: the reference is usable again (if nothing else holds it) and carries the disclosure."""
    assert_current_organization(organization)
    flag = _decidable(organization, flag, actor, justification)
    disclosure = disclosure.strip()
    if flag.incentive is not None and not disclosure:
        raise ApplicationError(
            "A cleared incentive needs a disclosure line, e.g. “This customer received a discount.”",
            field="disclosure",
        )
    flag.status, flag.resolved_by, flag.resolved_at = FlagStatus.CLEARED, actor, timezone.now()
    flag.justification, flag.disclosure = justification.strip(), disclosure[:300]
    flag.save(update_fields=["status", "resolved_by", "resolved_at", "justification", "disclosure", "updated_at"])
    if disclosure:
        Reference.objects.filter(pk=flag.reference_id).update(disclosure=disclosure[:300], updated_at=timezone.now())
    services.reference_hold_release(
        organization=organization, reference=flag.reference, kind=HoldKind.REVIEW, source=flag.source_key
    )
    record(
        organization=organization,
        actor=actor,
        action="review_flag.cleared",
        target=flag.reference,
        details={"flag": flag.pk, "justification": flag.justification, "disclosure": flag.disclosure},
    )
    return flag


@transaction.atomic
def review_flag_reject(
    *, organization: Organization, flag: ReviewFlag, actor: AbstractBaseUser, justification: str
) -> ReviewFlag:
    """Reject a flagged reference: it is retired for good (its pending requests are cancelled)."""
    assert_current_organization(organization)
    flag = _decidable(organization, flag, actor, justification)
    flag.status, flag.resolved_by, flag.resolved_at = FlagStatus.REJECTED, actor, timezone.now()
    flag.justification = justification.strip()
    flag.save(update_fields=["status", "resolved_by", "resolved_at", "justification", "updated_at"])
    services.reference_retire(
        organization=organization,
        reference=flag.reference,
        actor=actor,
        reason=f"Rejected in compliance review: {flag.justification}",
    )
    record(
        organization=organization,
        actor=actor,
        action="review_flag.rejected",
        target=flag.reference,
        details={"flag": flag.pk, "justification": flag.justification},
    )
    return flag
