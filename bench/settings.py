"""Settings for the benchmark: production-like, on a ``refmgr_bench*`` database, under row-level security.

Only ``bench/`` uses this module (``DJANGO_SETTINGS_MODULE=bench.settings``); the application never
imports it. It differs from the shared settings in what a production process would differ in:
DEBUG off (so no query log and cached templates), persistent connections, and the database session
running as the application role, so the policies of ``refmgr/tenancy/rls.py`` bind exactly as in
production.

The connection logs in as the owner named in ``DATABASE_URL`` (the bench database's creator) and takes
the application role at connection start (libpq ``options=-c role=refmgr_app``), which is the same
session state the tests reach with ``SET ROLE`` but costs no statement per connection.
``BENCH_RLS=off`` leaves the role out: the owner is a superuser here, so the policies do not bind
(every statement still carries the organization prefix, so only the policies' own cost differs). The
report's RLS rows do not need it: ``bench.pages rls`` switches role on one connection, alternating,
which keeps the machine's load out of the difference; the switch is for comparing whole runs by hand
(e.g. gunicorn without the policies).
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_ENV", "development")  # production.py would demand HTTPS, e-mail and a secret
os.environ["DEBUG"] = "False"

from refmgr.settings.base import *  # noqa: F403
from refmgr.settings.base import DATABASE_APP_ROLE, DATABASES, TEMPLATES

if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql" or not str(
    DATABASES["default"]["NAME"]
).startswith("refmgr_bench"):
    raise RuntimeError("bench.settings: DATABASE_URL must name a PostgreSQL refmgr_bench* database")

BENCH_RLS = os.environ.get("BENCH_RLS", "on").lower() not in {"off", "0", "false", "no"}

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "bench.urls"
# Persistent connections as under gunicorn in production: no connect per request.
DATABASES["default"]["CONN_MAX_AGE"] = None
DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
if BENCH_RLS:
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = f"{_options.get('options', '')} -c role={DATABASE_APP_ROLE}".strip()

# Cached templates, as Django does by default when DEBUG is off (stated, so it cannot silently change).
TEMPLATES[0]["OPTIONS"]["loaders"] = [
    (
        "django.template.loaders.cached.Loader",
        ["django.template.loaders.filesystem.Loader", "django.template.loaders.app_directories.Loader"],
    )
]
TEMPLATES[0]["APP_DIRS"] = False

# The public pages' rate limit stays on (its cache round trip is part of their cost) but high enough
# that one address sending thousands of benchmark requests is never refused.
RATELIMIT_PUBLIC = "1000000/m"
# Request logging would be the bench's own cost: only problems.
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
