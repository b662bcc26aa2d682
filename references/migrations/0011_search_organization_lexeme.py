"""Each search document also carries its organization as a lexeme (``org<id>``), and searches AND it in.

Why (issue 6, measured on the benchmark's 1,000,000 references): a common word's posting list
spans every organization. Searching "migration" in an organization of 663 references made the
GIN bitmap read all 494,690 matches of every organization (48 ms) before the organization filter
narrowed them. With the organization's lexeme in the query, GIN's fast scan walks the rarer
posting list and skips through the other: 0.18 ms for the same search. The lexeme only narrows
an index scan; the explicit organization filter and row-level security still decide what is seen
(a summary that happens to contain the text "org501" gains nothing: it is not in organization 501).

The account is read anyway for its name, so the organization comes from it (a reference and its
account always share one).
"""

from django.db import migrations

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
                ELSE setweight(to_tsvector('english'::regconfig, coalesce(a.name, '')), 'C')
           END
        || coalesce(array_to_tsvector(ARRAY['org' || a.organization_id::text]), ''::tsvector)
      FROM (SELECT NULL) AS one
      LEFT JOIN references_account a ON a.id = p_account_id
$$
"""

PREVIOUS_FUNCTION = """
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

# The row trigger recomputes each document with the function above.
REFILL = "UPDATE references_reference SET search_document = NULL"


def _on_postgresql(statements: list[str]):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
        from refmgr.tenancy.context import cross_organization

        if schema_editor.connection.vendor != "postgresql":
            return
        with cross_organization("migration: refill every reference's search document"):
            for statement in statements:
                schema_editor.execute(statement, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("references", "0010_bulk_search_document"),
    ]

    operations = [
        migrations.RunPython(
            _on_postgresql([DOCUMENT_FUNCTION, REFILL]),
            _on_postgresql([PREVIOUS_FUNCTION, REFILL]),
            elidable=False,
        ),
    ]
