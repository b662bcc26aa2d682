"""The review sweep's checkpoint per organization, and the indexes that let it read only what changed.

Issue 6: the nightly review sweep re-read every reference, asset, usage request and incentive of every
organization (143 s over the benchmark's million references). It now reads only rows changed since
the organization's ``ReviewScan.scanned_until``, and beat's entry asks, in one statement across
organizations, which organizations have any. Each index below is what that question and that read
probe per organization, (organization, updated_at); references already have one
(``references_ref_updated``, 0008).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from refmgr.tenancy.rls import enable_rls


class Migration(migrations.Migration):
    dependencies = [
        ("references", "0008_keyset_sort_indexes"),
        ("tenancy", "0002_row_level_security"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ReviewScan",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("scanned_until", models.DateTimeField()),
                ("fingerprint", models.CharField(max_length=64)),
            ],
            options={
                "abstract": False,
            },
        ),
        # Incentives changed since the checkpoint (new, or moved to another contact or date).
        migrations.AddIndex(
            model_name="incentive",
            index=models.Index(fields=["organization", "updated_at"], name="references_incentive_changed"),
        ),
        # A reference's material changed since the checkpoint (its text is scanned for the words).
        migrations.AddIndex(
            model_name="referenceasset",
            index=models.Index(fields=["organization", "updated_at"], name="references_asset_changed"),
        ),
        # Usage requests changed since the checkpoint (their purpose and notes are scanned too).
        migrations.AddIndex(
            model_name="usagerequest",
            index=models.Index(fields=["organization", "updated_at"], name="references_usage_changed"),
        ),
        migrations.AddField(
            model_name="reviewscan",
            name="organization",
            field=models.ForeignKey(
                editable=False, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="tenancy.organization"
            ),
        ),
        migrations.AddConstraint(
            model_name="reviewscan",
            constraint=models.UniqueConstraint(fields=("organization", "id"), name="references_reviewscan_org_id_uniq"),
        ),
        migrations.AddConstraint(
            model_name="reviewscan",
            constraint=models.UniqueConstraint(fields=("organization",), name="references_review_scan_one_per_org"),
        ),
        enable_rls("references_reviewscan"),
    ]
