"""Row-level security for incentives and review flags (PostgreSQL only)."""

from django.db import migrations

from refmgr.tenancy.rls import enable_rls


class Migration(migrations.Migration):
    dependencies = [("references", "0004_incentives_and_review_flags")]

    operations = [enable_rls("references_incentive"), enable_rls("references_reviewflag")]
