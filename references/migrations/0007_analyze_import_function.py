"""``refmgr_analyze_import()``: ANALYZE the tables a large CSV import fills, callable by the app role.

Why (issue 6, docs/known-limitations.md "Performance"): right after a bulk insert, before
autovacuum's ANALYZE (which waits for 10 % of a table to change), the catalogue's queries are
planned for the old row counts; a page took 27 s, measured. An import of up to 100,000
references should therefore refresh the statistics when it commits. Only a table's owner (or a
superuser) may ANALYZE it on PostgreSQL 15, and the application role owns nothing, so the owner
creates this SECURITY DEFINER function and grants the application role EXECUTE on it alone.

It takes no argument and names its tables itself, with a fixed search_path, so a caller
chooses nothing: the worst it can do is run an ANALYZE of three tables, which reads a sample
(30,000 rows a table at the default statistics target) and takes no lock that blocks reads
or writes. Nothing on SQLite.
"""

from django.db import migrations

from refmgr.tenancy.rls import app_role

FUNCTION = """
CREATE OR REPLACE FUNCTION refmgr_analyze_import() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    ANALYZE public.references_reference;
    ANALYZE public.references_referencelabel;
    ANALYZE public.audit_auditevent;
END $$
"""


def forward(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    role = app_role()
    for statement in (
        FUNCTION,
        "REVOKE ALL ON FUNCTION refmgr_analyze_import() FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION refmgr_analyze_import() TO {role}",
    ):
        schema_editor.execute(statement, params=None)


def backward(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP FUNCTION IF EXISTS refmgr_analyze_import()", params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("references", "0006_search_document"),
        ("audit", "0002_row_level_security_append_only"),
    ]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
