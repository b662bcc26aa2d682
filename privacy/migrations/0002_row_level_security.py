"""Row-level security for privacy policies, and a trigger that keeps published versions as they are
(PostgreSQL only; no-ops on SQLite).

Drafts stay editable, so the application role keeps UPDATE and DELETE on the
table (unlike the append-only ledgers); the trigger refuses both on a row
whose status is already 'published', whoever runs them, the owner included.
TRUNCATE would skip row triggers, so the application role loses it.
"""

from django.db import migrations

from refmgr.tenancy.rls import app_role, enable_rls

TABLE = "privacy_privacypolicy"

FUNCTION = """
CREATE OR REPLACE FUNCTION privacy_policy_keep_published() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status = 'published' THEN
    RAISE EXCEPTION 'privacy policy version % is published and never changes: % refused', OLD.version, TG_OP
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  RETURN NEW;
END $$
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in (
        FUNCTION,
        f'DROP TRIGGER IF EXISTS keep_published ON "{TABLE}"',
        f'CREATE TRIGGER keep_published BEFORE UPDATE OR DELETE ON "{TABLE}" '
        "FOR EACH ROW EXECUTE FUNCTION privacy_policy_keep_published()",
        f'REVOKE TRUNCATE ON "{TABLE}" FROM {app_role()}',
    ):
        schema_editor.execute(statement, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f'DROP TRIGGER IF EXISTS keep_published ON "{TABLE}"', params=None)
    schema_editor.execute("DROP FUNCTION IF EXISTS privacy_policy_keep_published()", params=None)


class Migration(migrations.Migration):
    dependencies = [("privacy", "0001_privacy_policy"), ("tenancy", "0002_row_level_security")]

    operations = [
        enable_rls(TABLE),
        migrations.RunPython(forward, backward, elidable=False),
    ]
