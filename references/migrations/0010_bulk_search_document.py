"""A transaction-local switch that lets the reference import compute search documents itself.

Issue 6 (the CSV import of 100,000 references ≤ 30 s): the row trigger of migration 0006 recomputes
every new reference's document in a PL/pgSQL call a row, which was about half of the references'
INSERT (10,000 rows in psql: 0.70-0.75 s with the document computed in the INSERT's own SELECT and
the trigger off, 1.31-1.55 s with it). The import (``references/imports.py``) now turns the
triggers off for its own statements only, with ``set_config('refmgr.bulk_document', 'on', true)``
(``SET LOCAL``: it ends with the transaction, or with the savepoint if that rolls back, so it
cannot leak to another request on the same connection), writes the documents with
``refmgr_reference_document(…)`` in the INSERT itself, and turns the switch off again straight
after. While it is on:

- the reference row trigger keeps the document the statement supplies;
- the label statement triggers do nothing (the import inserts the labels before the references,
  whose INSERT then reads them).

Every other write leaves the setting unset (``current_setting(…, true)`` is NULL then), so the
triggers stay authoritative for the UI, the API and the services.
"""

from django.db import migrations

REFERENCE_TRIGGER = """
CREATE OR REPLACE FUNCTION refmgr_reference_document_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('refmgr.bulk_document', true) = 'on' THEN
        RETURN NEW;  -- the bulk import computed the document in its statement
    END IF;
    NEW.search_document := refmgr_reference_document(
        NEW.id, NEW.title, NEW.summary, NEW.publication, NEW.account_id
    );
    RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION refmgr_reference_document_labels() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('refmgr.bulk_document', true) = 'on' THEN
        RETURN NULL;  -- the bulk import computes the documents of the references it inserts
    END IF;
    UPDATE references_reference SET search_document = NULL
     WHERE id IN (SELECT DISTINCT reference_id FROM changed);
    RETURN NULL;
END $$;
"""

# Migration 0006's definitions.
PREVIOUS = """
CREATE OR REPLACE FUNCTION refmgr_reference_document_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_document := refmgr_reference_document(
        NEW.id, NEW.title, NEW.summary, NEW.publication, NEW.account_id
    );
    RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION refmgr_reference_document_labels() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE references_reference SET search_document = NULL
     WHERE id IN (SELECT DISTINCT reference_id FROM changed);
    RETURN NULL;
END $$;
"""


def _on_postgresql(statement: str):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(statement, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("references", "0009_review_scan"),
    ]

    operations = [
        migrations.RunPython(_on_postgresql(REFERENCE_TRIGGER), _on_postgresql(PREVIOUS), elidable=False),
    ]
