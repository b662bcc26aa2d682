"""Create the application role and turn on row-level security for tenancy tables.

PostgreSQL only (a no-op on SQLite). Runs as the migrating owner role; the
application then connects as DATABASE_APP_ROLE, which these policies bind.
"""

from django.db import migrations

from refmgr.tenancy.rls import create_app_role, enable_rls


class Migration(migrations.Migration):
    dependencies = [("tenancy", "0001_initial")]

    operations = [
        create_app_role(),
        enable_rls("tenancy_membership"),
        enable_rls("tenancy_invitation"),
        enable_rls("tenancy_apitoken"),
    ]
