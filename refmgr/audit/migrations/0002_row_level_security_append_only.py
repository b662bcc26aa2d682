"""Row-level security for the audit log, and make it append-only.

A trigger rejects UPDATE and DELETE for every role; the application role is
left with INSERT and SELECT only.
"""

from django.db import migrations

from refmgr.tenancy.rls import enable_rls, make_append_only


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial"), ("tenancy", "0002_row_level_security")]

    operations = [
        enable_rls("audit_auditevent"),
        make_append_only("audit_auditevent"),
    ]
