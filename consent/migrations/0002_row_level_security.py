"""Row-level security for every consent table, and an append-only consent ledger (PostgreSQL only).

The ledger (consent_consentevent) gets the trigger that rejects UPDATE and
DELETE for every role, and the application role loses the right to both.
"""

from django.db import migrations

from refmgr.tenancy.rls import enable_rls, make_append_only

TABLES = [
    "consent_consentsettings",
    "consent_consentrequest",
    "consent_consentlink",
    "consent_consentevent",
    "consent_consentledgerhead",
    "consent_consentstate",
    "consent_consentmessage",
    "consent_takedowntask",
]


class Migration(migrations.Migration):
    dependencies = [("consent", "0001_consent_ledger"), ("tenancy", "0002_row_level_security")]

    operations = [
        *[enable_rls(table) for table in TABLES],
        make_append_only("consent_consentevent"),
    ]
