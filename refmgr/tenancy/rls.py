"""PostgreSQL row-level security: the database's copy of organization scoping.

Design (STACK.md, option 2, pooler-safe): every statement the application
sends is preceded, in the same round trip and therefore the same
transaction, by ``set_config('app.org_id', <id or ''>, true)`` and
``set_config('app.cross_org', <'on' or ''>, true)``. The values come from the
context variables in :mod:`refmgr.tenancy.context`, so the database always
sees exactly the organization the Python code is running in; with none set
it sees an empty id, which the policies turn into NULL, which matches no row.
Being transaction-local, nothing survives on a pooled connection.

The policies (created by migrations through :func:`enable_rls`) read

    organization_id = NULLIF(current_setting('app.org_id', true), '')::bigint
    OR current_setting('app.cross_org', true) = 'on'

for both ``USING`` and ``WITH CHECK``; tables are ``FORCE ROW LEVEL
SECURITY`` and the application connects as a role without ``BYPASSRLS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import migrations
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from .context import _cross_organization, _current_organization

# Left as they are: statements PostgreSQL refuses inside a transaction block,
# and transaction control, which must work in an aborted transaction (where a
# prefixed SELECT would fail). None of them reads or writes tenant rows.
_UNPREFIXED = re.compile(
    r"^\s*(?:(?:CREATE|DROP)\s+DATABASE|VACUUM|ALTER\s+SYSTEM|SAVEPOINT|RELEASE|ROLLBACK|COMMIT|BEGIN|START"
    r"|SET|RESET)\b|\bCONCURRENTLY\b",
    re.I,
)

SET_CONTEXT_SQL = "SELECT set_config('app.org_id', %s, true), set_config('app.cross_org', %s, true)"


def _context_values() -> tuple[str, str]:
    organization = _current_organization.get()
    return (str(organization.pk) if organization is not None else "", "on" if _cross_organization.get() else "")


def organization_execute_wrapper(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """Prefix each statement with the organization setting (see the module docstring)."""
    if isinstance(sql, str) and _UNPREFIXED.search(sql):
        return execute(sql, params, many, context)
    org_id, cross = _context_values()
    if many:
        # executemany() cannot carry a prefix; a separate statement lasts until
        # the end of its transaction, so make sure there is one around both.
        from django.db import transaction

        with transaction.atomic(using=context["connection"].alias):
            context["cursor"].cursor.execute(SET_CONTEXT_SQL, (org_id, cross))
            return execute(sql, params, many, context)
    if params is None:
        # Without parameters psycopg2 sends the SQL as it is, so '%' must stay single.
        prefix = SET_CONTEXT_SQL.replace("%s", "{}").format(_quote(org_id), _quote(cross))
        return execute(f"{prefix}; {sql}", None, many, context)
    if isinstance(params, dict):
        # Named parameters: add ours under names the ORM never uses.
        prefixed = (
            "SELECT set_config('app.org_id', %(_rls_org)s, true), set_config('app.cross_org', %(_rls_cross)s, true)"
        )
        return execute(f"{prefixed}; {sql}", {**params, "_rls_org": org_id, "_rls_cross": cross}, many, context)
    return execute(f"{SET_CONTEXT_SQL}; {sql}", (org_id, cross, *params), many, context)


def _quote(value: str) -> str:
    # Values are digits, 'on' or empty; anything else is a programming error.
    if not (value == "" or value == "on" or value.isdigit()):
        raise ValueError(f"unexpected organization setting {value!r}")
    return f"'{value}'"


def install(connection: BaseDatabaseWrapper, **_: Any) -> None:
    """Attach the wrapper to a PostgreSQL connection (idempotent)."""
    if connection.vendor == "postgresql" and organization_execute_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(organization_execute_wrapper)


def connect_signal() -> None:
    connection_created.connect(install, dispatch_uid="refmgr.tenancy.rls.install")


# --- Migrations ---------------------------------------------------------------

POLICY_PREDICATE = (
    "organization_id = NULLIF(current_setting('app.org_id', true), '')::bigint "
    "OR current_setting('app.cross_org', true) = 'on'"
)


def _run_on_postgresql(statements: Callable[[], Sequence[str]]) -> Callable[..., None]:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements():
            schema_editor.execute(statement, params=None)

    return run


def app_role() -> str:
    role = settings.DATABASE_APP_ROLE
    if not role.replace("_", "").isalnum():
        raise ValueError(f"DATABASE_APP_ROLE: {role!r} is not a plain role name")
    return role


def create_app_role() -> migrations.RunPython:
    """Create the application role if missing and grant it plain DML on the schema.

    Runs as the migrating (owner) role. Default privileges make every table
    this owner creates later readable and writable by the app role too; the
    ledgers take back UPDATE and DELETE in their own migrations.
    """

    def statements() -> list[str]:
        role = app_role()
        return [
            f"""DO $$ BEGIN
                  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                    CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
                  END IF;
                END $$""",
            f"GRANT USAGE ON SCHEMA public TO {role}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}",
        ]

    return migrations.RunPython(_run_on_postgresql(statements), migrations.RunPython.noop, elidable=False)


def enable_rls(table: str) -> migrations.RunPython:
    """Turn on forced row-level security for one tenant-owned table."""

    def forward() -> list[str]:
        return [
            f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
            f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY',
            f'DROP POLICY IF EXISTS organization_isolation ON "{table}"',
            f'CREATE POLICY organization_isolation ON "{table}" '
            f"USING ({POLICY_PREDICATE}) WITH CHECK ({POLICY_PREDICATE})",
        ]

    def backward() -> list[str]:
        return [
            f'DROP POLICY IF EXISTS organization_isolation ON "{table}"',
            f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY',
            f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY',
        ]

    return migrations.RunPython(_run_on_postgresql(forward), _run_on_postgresql(backward), elidable=False)


def make_append_only(table: str) -> migrations.RunPython:
    """Reject UPDATE and DELETE with a trigger, and take those rights from the app role.

    The trigger binds every role, the owner included; the revoke means even
    code that could switch the trigger off still cannot rewrite history.
    """

    def forward() -> list[str]:
        role = app_role()
        return [
            """CREATE OR REPLACE FUNCTION refmgr_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                 RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
                   USING ERRCODE = 'insufficient_privilege';
               END $$""",
            f'DROP TRIGGER IF EXISTS append_only ON "{table}"',
            f'CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON "{table}" '
            "FOR EACH ROW EXECUTE FUNCTION refmgr_reject_change()",
            f'REVOKE UPDATE, DELETE, TRUNCATE ON "{table}" FROM {role}',
            f'GRANT SELECT, INSERT ON "{table}" TO {role}',
        ]

    def backward() -> list[str]:
        return [f'DROP TRIGGER IF EXISTS append_only ON "{table}"']

    return migrations.RunPython(_run_on_postgresql(forward), _run_on_postgresql(backward), elidable=False)
