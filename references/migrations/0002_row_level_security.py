"""Row-level security for every references table, an append-only usage ledger,
and the full-text search index (PostgreSQL only; no-ops on SQLite).

The GIN index matches the expression ``references.selectors`` searches with,
so ranking a text query reads the index instead of every reference.
"""

from django.db import migrations

from refmgr.tenancy.rls import enable_rls, make_append_only

TABLES = [
    "references_referencesettings",
    "references_account",
    "references_contact",
    "references_reference",
    "references_referencelabel",
    "references_referenceasset",
    "references_referencescopegrant",
    "references_referencehold",
    "references_usagerequest",
    "references_usageevent",
    "references_usagenotification",
]

SEARCH_INDEX = (
    'CREATE INDEX IF NOT EXISTS references_reference_search ON "references_reference" USING gin ('
    "(setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(summary, '')), 'B')))"
)


def create_search_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SEARCH_INDEX, params=None)


def drop_search_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS references_reference_search", params=None)


class Migration(migrations.Migration):
    dependencies = [("references", "0001_initial"), ("tenancy", "0002_row_level_security")]

    operations = [
        *[enable_rls(table) for table in TABLES],
        make_append_only("references_usageevent"),
        migrations.RunPython(create_search_index, drop_search_index, elidable=False),
    ]
