"""The catalogue's search document: a stored, trigger-maintained tsvector with a GIN index.

Why (issue 6, measured on the benchmark's 1,000,000 references): searching the expression
``to_tsvector(title) || to_tsvector(summary)`` made the application role compute it for every
reference of the organization, because under row-level security PostgreSQL keeps any qual
whose functions are not LEAKPROOF out of index conditions (to_tsvector, setweight and ``||``
are not). 663 references cost 9–18 ms per query, the largest organization 1.7 s. The label
and account-name matches, OR-ed with EXISTS subqueries, ruled out any index as well.

Now the document is a column: title (A), summary and labels (B), and the account's name (C)
unless the reference is anonymised, which is exactly what it hides. Triggers keep it current:
on the reference itself (BEFORE INSERT OR UPDATE, computed from NEW), and after statements
that change labels or an account's name (set-based, with transition tables, so a bulk insert
of labels updates each reference once per statement, not once per label).

The match ``search_document @@ query`` then involves one function, ``ts_match_vq``. It is
marked LEAKPROOF here when the migrating role is a superuser (ALTER FUNCTION on a built-in
needs it), after this review: it returns a boolean computed from its two arguments, has no
side effects, and raises no error that depends on the tsvector's contents (the only errors
come from the tsquery — the searcher's own input — or from running out of memory). With it,
the application role's plans use the GIN index (``tests/references/test_selectors_catalogue.py``).
Without a superuser the search stays correct and uses the stored column (about 1 µs a row
instead of 20); docs/operations.md tells the DBA the one statement to run.
"""

from django.db import migrations

import django.contrib.postgres.search

DOCUMENT_FUNCTION = """
CREATE OR REPLACE FUNCTION refmgr_reference_document(
    p_id bigint, p_title text, p_summary text, p_publication text, p_account_id bigint
) RETURNS tsvector LANGUAGE sql STABLE AS $$
    SELECT setweight(to_tsvector('english'::regconfig, coalesce(p_title, '')), 'A')
        || setweight(to_tsvector('english'::regconfig, coalesce(p_summary, '')), 'B')
        || setweight(to_tsvector('english'::regconfig, coalesce(
               (SELECT string_agg(l.value, ' ') FROM references_referencelabel l WHERE l.reference_id = p_id), ''
           )), 'B')
        || CASE WHEN p_publication = 'anonymised' THEN ''::tsvector
                ELSE setweight(to_tsvector('english'::regconfig, coalesce(
                         (SELECT a.name FROM references_account a WHERE a.id = p_account_id), ''
                     )), 'C')
           END
$$
"""

REFERENCE_TRIGGER = """
CREATE OR REPLACE FUNCTION refmgr_reference_document_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_document := refmgr_reference_document(
        NEW.id, NEW.title, NEW.summary, NEW.publication, NEW.account_id
    );
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS search_document ON references_reference;
CREATE TRIGGER search_document BEFORE INSERT OR UPDATE ON references_reference
    FOR EACH ROW EXECUTE FUNCTION refmgr_reference_document_row();
"""

# Setting the column to NULL is enough: the row trigger above recomputes it.
RELATED_TRIGGERS = """
CREATE OR REPLACE FUNCTION refmgr_reference_document_labels() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE references_reference SET search_document = NULL
     WHERE id IN (SELECT DISTINCT reference_id FROM changed);
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION refmgr_reference_document_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE references_reference SET search_document = NULL
     WHERE account_id IN (SELECT n.id FROM changed n JOIN previous o ON o.id = n.id WHERE n.name <> o.name);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS search_document_insert ON references_referencelabel;
DROP TRIGGER IF EXISTS search_document_update ON references_referencelabel;
DROP TRIGGER IF EXISTS search_document_delete ON references_referencelabel;
DROP TRIGGER IF EXISTS search_document ON references_account;
CREATE TRIGGER search_document_insert AFTER INSERT ON references_referencelabel
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION refmgr_reference_document_labels();
CREATE TRIGGER search_document_update AFTER UPDATE ON references_referencelabel
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION refmgr_reference_document_labels();
CREATE TRIGGER search_document_delete AFTER DELETE ON references_referencelabel
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION refmgr_reference_document_labels();
CREATE TRIGGER search_document AFTER UPDATE ON references_account
    REFERENCING OLD TABLE AS previous NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION refmgr_reference_document_accounts();
"""

LEAKPROOF = """
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        ALTER FUNCTION pg_catalog.ts_match_vq(tsvector, tsquery) LEAKPROOF;
    ELSE
        RAISE NOTICE 'refmgr: not a superuser, so ts_match_vq stays non-LEAKPROOF and the catalogue '
                     'search cannot use its GIN index under row-level security; see docs/operations.md';
    END IF;
END $$;
"""

FORWARD = [
    DOCUMENT_FUNCTION,
    REFERENCE_TRIGGER,
    RELATED_TRIGGERS,
    "UPDATE references_reference SET search_document = NULL",
    # The document's index; the expression index of 0002 is no longer searched.
    "CREATE INDEX IF NOT EXISTS references_reference_document ON references_reference USING gin (search_document)",
    "DROP INDEX IF EXISTS references_reference_search",
    LEAKPROOF,
]

BACKWARD = [
    "DROP TRIGGER IF EXISTS search_document ON references_reference",
    "DROP TRIGGER IF EXISTS search_document_insert ON references_referencelabel",
    "DROP TRIGGER IF EXISTS search_document_update ON references_referencelabel",
    "DROP TRIGGER IF EXISTS search_document_delete ON references_referencelabel",
    "DROP TRIGGER IF EXISTS search_document ON references_account",
    "DROP FUNCTION IF EXISTS refmgr_reference_document_row()",
    "DROP FUNCTION IF EXISTS refmgr_reference_document_labels()",
    "DROP FUNCTION IF EXISTS refmgr_reference_document_accounts()",
    "DROP FUNCTION IF EXISTS refmgr_reference_document(bigint, text, text, text, bigint)",
    "DROP INDEX IF EXISTS references_reference_document",
    "CREATE INDEX IF NOT EXISTS references_reference_search ON references_reference USING gin ("
    "(setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(summary, '')), 'B')))",
]


def _on_postgresql(statements: list[str]):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
        from refmgr.tenancy.context import cross_organization

        if schema_editor.connection.vendor != "postgresql":
            return
        # The backfill touches every organization's references (FORCE ROW LEVEL SECURITY binds the owner too).
        with cross_organization("migration: fill every reference's search document"):
            for statement in statements:
                schema_editor.execute(statement, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("references", "0005_incentives_row_level_security"),
    ]

    operations = [
        migrations.AddField(
            model_name="reference",
            name="search_document",
            field=django.contrib.postgres.search.SearchVectorField(editable=False, null=True),
        ),
        migrations.RunPython(_on_postgresql(FORWARD), _on_postgresql(BACKWARD), elidable=False),
    ]
