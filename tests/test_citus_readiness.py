"""The rules that let refmgr distribute its tenant tables by organization on Citus.

docs/scaling.md ("Citus") has the plan; this file keeps the schema ready for
it. Every model comes from the app registry (auto-created many-to-many
tables included), so a new model is checked the day it is added:

- a tenant table (``TenantOwnedModel``) is distributed by ``organization_id``:
  the column is a non-null foreign key to the organization, every unique key
  includes it (Citus enforces uniqueness only on one shard), and ``(organization,
  id)`` is unique, which the Citus migration turns into the primary key;
- foreign keys between tenant tables join co-located shards: the Citus
  migration replaces each by ``(organization_id, x_id) -> (organization_id, id)``;
- a table without an organization is classified here, as a *reference* table
  (copied to every node: tenant tables may point at it) or a *local* table
  (coordinator only: nothing distributed may point at it), and never points at
  a tenant table.

``tests/test_tenant_models.py`` checks the same uniqueness on the models
without exceptions; here the PostgreSQL tests also read the database's own
indexes (a ``RunSQL`` index is invisible to the models) and rehearse the
primary-key and foreign-key change of the Citus migration on the real schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection, models

from refmgr.tenancy.models import Organization, TenantOwnedModel

DISTRIBUTION_FIELD = "organization"
DISTRIBUTION_COLUMN = "organization_id"
REFERENCE = "reference"
LOCAL = "local"

MODELS: list[type[models.Model]] = [
    m for m in apps.get_models(include_auto_created=True) if not m._meta.proxy and m._meta.managed
]
TENANT_MODELS = [m for m in MODELS if issubclass(m, TenantOwnedModel)]
OTHER_MODELS = [m for m in MODELS if not issubclass(m, TenantOwnedModel)]

# Unique keys of tenant tables that may leave the organization out. Citus would
# refuse them on a distributed table, so each needs a reason and its remedy
# ("<label>.<constraint name or field name>": "why; what to do on Citus").
# Kept empty on purpose: the two global secrets (API keys, consent links) carry
# the organization id in the token itself, so they are unique per organization
# and their lookup is routed to one shard (tenancy.selectors.api_token_authenticate,
# consent.selectors.consent_link_lookup).
UNIQUE_WITHOUT_ORGANIZATION: dict[str, str] = {}

# Every table without an organization, and how Citus holds it.
NON_TENANT_TABLES: dict[str, tuple[str, str]] = {
    # The tenant directory: ~1,000 rows, the target of every tenant table's foreign
    # key, read without an organization (login, the switcher, beat's fan_out).
    "tenancy.Organization": (REFERENCE, "the tenants themselves; tenant tables point at them"),
    # People belong to several organizations (Membership), so users are global.
    "auth.User": (REFERENCE, "tenant tables point at users (owner, actor, requested_by, ...)"),
    "auth.Group": (REFERENCE, "the per-reference group permission table points at it"),
    "auth.Permission": (REFERENCE, "the per-reference permission tables point at it"),
    "contenttypes.ContentType": (REFERENCE, "auth.Permission points at it"),
    "auth.User_groups": (REFERENCE, "between two reference tables"),
    "auth.User_user_permissions": (REFERENCE, "between two reference tables"),
    "auth.Group_permissions": (REFERENCE, "between two reference tables"),
    # Coordinator-only: nothing distributed points at these, and nothing joins them
    # to tenant rows in one query.
    "admin.LogEntry": (LOCAL, "Django admin's history; read by object id, never joined"),
    "sessions.Session": (LOCAL, "looked up by session key only"),
    "guardian.UserObjectPermission": (LOCAL, "generic object permissions; references use their own tables"),
    "guardian.GroupObjectPermission": (LOCAL, "generic object permissions; references use their own tables"),
    "axes.AccessAttempt": (LOCAL, "login throttling, by username and address"),
    "axes.AccessAttemptExpiration": (LOCAL, "login throttling"),
    "axes.AccessFailureLog": (LOCAL, "login throttling"),
    "axes.AccessLog": (LOCAL, "login throttling"),
    "django_celery_beat.SolarSchedule": (LOCAL, "beat's schedule, read by the one beat process"),
    "django_celery_beat.IntervalSchedule": (LOCAL, "beat's schedule"),
    "django_celery_beat.ClockedSchedule": (LOCAL, "beat's schedule"),
    "django_celery_beat.CrontabSchedule": (LOCAL, "beat's schedule"),
    "django_celery_beat.PeriodicTasks": (LOCAL, "beat's schedule"),
    "django_celery_beat.PeriodicTask": (LOCAL, "beat's schedule"),
}


def _ids(model: type[models.Model]) -> str:
    return model._meta.label


def _foreign_keys(model: type[models.Model]) -> list[models.ForeignKey]:
    return [f for f in model._meta.local_fields if isinstance(f, models.ForeignKey)]


def _kind(model: type[models.Model]) -> str:
    if issubclass(model, TenantOwnedModel):
        return "distributed"
    return NON_TENANT_TABLES.get(model._meta.label, ("unclassified", ""))[0]


# --- Models (SQLite and PostgreSQL) ---------------------------------------------


def test_it_finds_the_tables():
    # Discovery must see the tenant tables and the auto-created many-to-many tables.
    labels = {m._meta.label for m in MODELS}
    assert {"references.Reference", "consent.ConsentEvent", "auth.User_groups"} <= labels
    assert len(TENANT_MODELS) >= 25


def test_every_table_without_an_organization_is_classified():
    unclassified = [m._meta.label for m in OTHER_MODELS if m._meta.label not in NON_TENANT_TABLES]
    assert not unclassified, (
        f"{unclassified}: make each a TenantOwnedModel (distributed by organization), or add it to "
        "NON_TENANT_TABLES as a reference or local table with the reason (docs/scaling.md, Citus)"
    )
    stale = sorted(set(NON_TENANT_TABLES) - {m._meta.label for m in OTHER_MODELS})
    assert not stale, f"{stale} are listed but are no longer tables without an organization"


@pytest.mark.parametrize("model", TENANT_MODELS, ids=_ids)
def test_it_distributes_by_a_non_null_organization(model):
    field = model._meta.get_field(DISTRIBUTION_FIELD)
    assert isinstance(field, models.ForeignKey)
    assert field.related_model is Organization
    assert not field.null
    assert field.column == DISTRIBUTION_COLUMN  # co-location needs the same column everywhere
    assert model._meta.pk.name == "id", "the Citus migration turns (organization_id, id) into the primary key"


@pytest.mark.parametrize("model", TENANT_MODELS, ids=_ids)
def test_every_unique_key_includes_the_organization(model):
    problems = []
    uniques = [c for c in model._meta.constraints if isinstance(c, models.UniqueConstraint)]
    # The future primary key: present now, so the Citus migration only swaps the key.
    if not any(tuple(c.fields) == (DISTRIBUTION_FIELD, "id") and c.condition is None for c in uniques):
        problems.append("no unique (organization, id)")
    for constraint in uniques:
        if DISTRIBUTION_FIELD not in constraint.fields:  # expression-only constraints land here too
            problems.append(constraint.name)
    for field in model._meta.local_fields:
        if field.unique and not field.primary_key:  # unique=True, OneToOneField
            problems.append(field.name)
    for fields in model._meta.unique_together:
        if DISTRIBUTION_FIELD not in fields:
            problems.append("unique_together " + ",".join(fields))
    problems = [p for p in problems if f"{model._meta.label}.{p}" not in UNIQUE_WITHOUT_ORGANIZATION]
    assert not problems, f"{model._meta.label}: unique keys without the organization (Citus refuses them): {problems}"


def test_the_exceptions_are_justified_and_current():
    for key, reason in UNIQUE_WITHOUT_ORGANIZATION.items():
        label, _, name = key.rpartition(".")
        model = apps.get_model(label)
        names = {c.name for c in model._meta.constraints} | {f.name for f in model._meta.local_fields}
        assert name in names, f"{key}: no such constraint or field any more"
        assert ";" in reason, f"{key}: give the reason and the Citus remedy"


@pytest.mark.parametrize("model", TENANT_MODELS, ids=_ids)
def test_foreign_keys_of_tenant_tables_are_co_located_or_reference(model):
    problems = []
    for field in _foreign_keys(model):
        target = field.related_model
        if issubclass(target, TenantOwnedModel):
            # Co-located: same distribution column; the composite key needs (organization, id) on the target.
            if field.target_field.name != "id":
                problems.append(f"{field.name} points at {target._meta.label}.{field.target_field.name}, not its id")
        elif _kind(target) != REFERENCE:
            problems.append(f"{field.name} points at {target._meta.label}, which is not a reference table")
    for field in model._meta.local_many_to_many:
        through = field.remote_field.through
        if not issubclass(through, TenantOwnedModel):
            problems.append(
                f"{field.name}: its table {through._meta.label} has no organization; use a tenant through model"
            )
    assert not problems, f"{model._meta.label}: {problems}"


@pytest.mark.parametrize("model", OTHER_MODELS, ids=_ids)
def test_tables_without_an_organization_never_point_at_tenant_rows(model):
    kind = _kind(model)
    allowed = {REFERENCE} if kind == REFERENCE else {REFERENCE, LOCAL}
    problems = []
    for field in _foreign_keys(model):
        target = field.related_model
        if issubclass(target, TenantOwnedModel) or (target is Organization and kind != REFERENCE):
            # A reference or local table cannot hold a foreign key to a distributed one.
            problems.append(f"{field.name} -> {target._meta.label}: make {model._meta.label} a tenant table")
        elif _kind(target) not in allowed:
            problems.append(f"{field.name} -> {target._meta.label} ({_kind(target)}) from a {kind} table")
    assert not problems, f"{model._meta.label}: {problems}"


# --- The database itself (PostgreSQL) --------------------------------------------


@dataclass(frozen=True)
class TenantForeignKey:
    table: str
    column: str
    target: str


def tenant_foreign_keys() -> list[TenantForeignKey]:
    """The foreign keys between tenant tables, which the Citus migration makes composite."""
    return [
        TenantForeignKey(model._meta.db_table, field.column, field.related_model._meta.db_table)
        for model in TENANT_MODELS
        for field in _foreign_keys(model)
        if issubclass(field.related_model, TenantOwnedModel)
    ]


def citus_key_migration_sql() -> list[str]:
    """The primary- and foreign-key part of the Citus migration (docs/scaling.md).

    Django keeps ``id`` as its primary key (queries by pk stay valid, and always
    carry the organization through the tenant manager); the database's key
    becomes ``(organization_id, id)``, as django-multitenant's guide does, and the
    foreign keys between tenant tables include the organization, which also
    makes a reference to another organization's row impossible.
    """
    statements = []
    for model in TENANT_MODELS:
        table = model._meta.db_table
        # CASCADE drops the single-column foreign keys that depend on the old key.
        statements.append(f'ALTER TABLE "{table}" DROP CONSTRAINT "{table}_pkey" CASCADE')
        statements.append(
            f'ALTER TABLE "{table}" ADD CONSTRAINT "{table}_pkey" PRIMARY KEY ("{DISTRIBUTION_COLUMN}", "id")'
        )
    for fk in tenant_foreign_keys():
        statements.append(
            f'ALTER TABLE "{fk.table}" ADD CONSTRAINT "{fk.table}_{fk.column}_citus_fk" '
            f'FOREIGN KEY ("{DISTRIBUTION_COLUMN}", "{fk.column}") '
            f'REFERENCES "{fk.target}" ("{DISTRIBUTION_COLUMN}", "id") DEFERRABLE INITIALLY DEFERRED'
        )
    return statements


@pytest.fixture
def as_owner(db: None) -> Iterator[None]:
    """DDL needs the tables' owner: the test steps out of the app role, and back."""
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {settings.DATABASE_APP_ROLE}")


def _foreign_keys_in_database(cursor) -> set[tuple[str, tuple[str, ...], str]]:
    cursor.execute(
        """
        SELECT c.conrelid::regclass::text, array_agg(a.attname::text ORDER BY k.n), c.confrelid::regclass::text
        FROM pg_constraint c
        CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
        WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
        GROUP BY c.oid, c.conrelid, c.confrelid
        """
    )
    return {(table.strip('"'), tuple(columns), target.strip('"')) for table, columns, target in cursor.fetchall()}


def _unique_indexes(cursor, tables: list[str]) -> list[tuple[str, str, bool, list[str]]]:
    cursor.execute(
        """
        SELECT t.relname, i.relname, x.indisprimary,
               array(SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.n)
        FROM pg_index x
        JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indisunique AND t.relname = ANY(%s)
        """,
        [tables],
    )
    return cursor.fetchall()


@pytest.mark.postgres
@pytest.mark.django_db
def test_every_unique_index_in_the_database_includes_the_organization():
    # Reads the catalogue, so indexes made by RunSQL (search, partial indexes) count too.
    tables = [m._meta.db_table for m in TENANT_MODELS]
    allowed = {key.rpartition(".")[2] for key in UNIQUE_WITHOUT_ORGANIZATION}
    with connection.cursor() as cursor:
        indexes = _unique_indexes(cursor, tables)
    assert {table for table, *_ in indexes} == set(tables)
    wrong = [
        f"{table}.{index} {columns}"
        for table, index, primary, columns in indexes
        # The primary key is `id` alone until the Citus migration (the one listed change).
        if not primary and DISTRIBUTION_COLUMN not in columns and index not in allowed
    ]
    assert not wrong, f"unique indexes without {DISTRIBUTION_COLUMN}: {wrong}"
    primary_keys = {table: columns for table, _, primary, columns in indexes if primary}
    assert primary_keys == {table: ["id"] for table in tables}, "update the Citus plan: the primary keys changed"


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_distribution_column_has_one_type_everywhere():
    # Citus co-locates tables whose distribution columns have the same type.
    tables = [m._meta.db_table for m in TENANT_MODELS]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT table_name, data_type, is_nullable FROM information_schema.columns
            WHERE table_schema = 'public' AND column_name = %s AND table_name = ANY(%s)
            """,
            [DISTRIBUTION_COLUMN, tables],
        )
        columns = {table: (data_type, nullable) for table, data_type, nullable in cursor.fetchall()}
        cursor.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = %s AND column_name = 'id'",
            [Organization._meta.db_table],
        )
        (organization_id_type,) = cursor.fetchone()
    assert columns == dict.fromkeys(tables, (organization_id_type, "NO"))


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_citus_key_migration_runs_on_the_real_schema(as_owner):
    """Rehearse the key change of the Citus migration on plain PostgreSQL (rolled back).

    Citus itself is not installed here; what this proves is that the statements
    fit today's schema: every target has the unique (organization_id, id) a
    composite foreign key needs, nothing else depended on the old keys, and
    afterwards every unique index of a tenant table includes the organization.
    """
    tenant_tables = {m._meta.db_table for m in TENANT_MODELS}
    with connection.cursor() as cursor:
        before = _foreign_keys_in_database(cursor)
        for statement in citus_key_migration_sql():
            cursor.execute(statement)
        after = _foreign_keys_in_database(cursor)
        indexes = _unique_indexes(cursor, sorted(tenant_tables))

    into_tenant_tables = {fk for fk in before if fk[2] in tenant_tables}
    expected = {(t, (DISTRIBUTION_COLUMN, c), target) for t, (c,), target in into_tenant_tables}
    # Every single-column key into a tenant table came back as a composite one, and
    # every other foreign key (to organizations, users, permissions) is untouched.
    assert {fk for fk in after if fk[2] in tenant_tables} == expected
    assert {fk for fk in after if fk[2] not in tenant_tables} == before - into_tenant_tables
    assert {(fk.table, fk.column, fk.target) for fk in tenant_foreign_keys()} == {
        (t, c, target) for t, (c,), target in into_tenant_tables
    }
    assert all(DISTRIBUTION_COLUMN in columns for *_, columns in indexes)
    assert {t for t, _, primary, columns in indexes if primary and columns == [DISTRIBUTION_COLUMN, "id"]} == (
        tenant_tables
    )
