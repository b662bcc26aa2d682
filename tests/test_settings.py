"""Settings from the environment: strict helpers, start-up that fails loudly, a clean deploy check."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from refmgr.settings.env import (
    database_from_url,
    email_from_url,
    env_bool,
    env_int,
    env_list,
    env_secret,
    env_str,
)

ROOT = Path(__file__).resolve().parent.parent

# Every variable the settings read; cleared so the developer's own environment cannot leak in.
SETTINGS_VARIABLES = [
    "ADMIN_EMAILS",
    "ALLOWED_HOSTS",
    "AXES_COOLOFF_MINUTES",
    "AXES_FAILURE_LIMIT",
    "AXES_PROXY_COUNT",
    "CONN_MAX_AGE",
    "CSRF_TRUSTED_ORIGINS",
    "DATABASE_APP_ROLE",
    "DATABASE_URL",
    "DEBUG",
    "DEFAULT_FROM_EMAIL",
    "DJANGO_ENV",
    "DJANGO_SETTINGS_MODULE",
    # Set by the browser fixture for live_server; never in a deployment.
    "DJANGO_ALLOW_ASYNC_UNSAFE",
    "EMAIL_URL",
    "INVITATION_MAX_AGE_DAYS",
    "LOG_LEVEL",
    "REDIS_URL",
    "SECRET_KEY",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_HSTS_SECONDS",
    "SECURE_SSL_REDIRECT",
    "SITE_URL",
]


def clean_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in SETTINGS_VARIABLES and not key.endswith("_FILE") and not key.startswith("REFMGR_")
    }
    env["REFMGR_VAR_DIR"] = str(tmp_path / "var")
    env.update(overrides)
    return env


def start_django(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    """Load the settings and set Django up in a fresh interpreter, as start-up does."""
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=clean_env(tmp_path, DJANGO_SETTINGS_MODULE="refmgr.settings.local", **overrides),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- Start-up fails on malformed values, naming the variable -------------------------------


@pytest.mark.parametrize(
    ("variable", "overrides"),
    [
        ("DEBUG", {"DEBUG": "yes"}),
        # CONN_MAX_AGE is read only for PostgreSQL; nothing connects during setup.
        ("CONN_MAX_AGE", {"DATABASE_URL": "postgres://refmgr@127.0.0.1:5432/refmgr", "CONN_MAX_AGE": "abc"}),
        ("DATABASE_URL", {"DATABASE_URL": "mysql://x"}),
        ("DATABASE_URL", {"DATABASE_URL": "postgres://refmgr@127.0.0.1:port/refmgr"}),
        ("REDIS_URL", {"REDIS_URL": "http://x"}),
        ("EMAIL_URL", {"EMAIL_URL": "bogus://"}),
        ("DJANGO_ENV", {"DJANGO_ENV": "staging"}),
        ("AXES_FAILURE_LIMIT", {"AXES_FAILURE_LIMIT": "0"}),
        ("SECRET_KEY", {"DJANGO_ENV": "production", "ALLOWED_HOSTS": "x.example", "EMAIL_URL": "smtp://m"}),
        ("DEBUG", {"DJANGO_ENV": "production", "DEBUG": "True", "SECRET_KEY": "k" * 50}),
    ],
    ids=[
        "debug-yes",
        "conn-max-age-abc",
        "database-mysql",
        "database-bad-port",
        "redis-http",
        "email-bogus",
        "env-staging",
        "axes-zero",
        "production-without-secret-key",
        "production-with-debug",
    ],
)
def test_it_refuses_to_start_with_a_malformed_value_and_names_the_variable(tmp_path, variable, overrides):
    result = start_django(tmp_path, **overrides)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{variable}:" in result.stderr, result.stderr[-2000:]


def test_it_starts_with_no_configuration_at_all(tmp_path):
    result = start_django(tmp_path)

    assert result.returncode == 0, result.stderr[-2000:]


def test_it_passes_the_deploy_check_in_production(tmp_path):
    env = clean_env(
        tmp_path,
        DJANGO_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="refmgr.example.com",
        EMAIL_URL="smtp://mail.example.com:25",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "System check identified no issues" in result.stdout


# --- The helpers ---------------------------------------------------------------------


def test_it_reads_a_string_with_a_default_for_unset_and_empty(monkeypatch):
    monkeypatch.setenv("REFMGR_TEST_STR", "value")
    assert env_str("REFMGR_TEST_STR", "default") == "value"
    monkeypatch.setenv("REFMGR_TEST_STR", "")
    assert env_str("REFMGR_TEST_STR", "default") == "default"
    monkeypatch.delenv("REFMGR_TEST_STR")
    assert env_str("REFMGR_TEST_STR", "default") == "default"


@pytest.mark.parametrize(("raw", "expected"), [("True", True), ("False", False), ("", None)])
def test_it_reads_only_true_and_false_as_booleans(monkeypatch, raw, expected):
    monkeypatch.setenv("REFMGR_TEST_BOOL", raw)
    default = object()
    assert env_bool("REFMGR_TEST_BOOL", default) is (default if expected is None else expected)  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", ["yes", "true", "1", "on", "TRUE"])
def test_it_refuses_other_boolean_spellings(monkeypatch, raw):
    monkeypatch.setenv("REFMGR_TEST_BOOL", raw)
    with pytest.raises(ImproperlyConfigured, match="REFMGR_TEST_BOOL: expected True or False"):
        env_bool("REFMGR_TEST_BOOL", False)


def test_it_reads_whole_numbers_and_enforces_the_minimum(monkeypatch):
    monkeypatch.setenv("REFMGR_TEST_INT", "42")
    assert env_int("REFMGR_TEST_INT", 1, minimum=0) == 42
    monkeypatch.setenv("REFMGR_TEST_INT", "4.2")
    with pytest.raises(ImproperlyConfigured, match="REFMGR_TEST_INT: expected a whole number"):
        env_int("REFMGR_TEST_INT", 1)
    monkeypatch.setenv("REFMGR_TEST_INT", "-1")
    with pytest.raises(ImproperlyConfigured, match="REFMGR_TEST_INT: must be at least 0"):
        env_int("REFMGR_TEST_INT", 1, minimum=0)
    monkeypatch.delenv("REFMGR_TEST_INT")
    assert env_int("REFMGR_TEST_INT", 7) == 7


def test_it_splits_lists_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv("REFMGR_TEST_LIST", " a.example , ,b.example,")
    assert env_list("REFMGR_TEST_LIST", []) == ["a.example", "b.example"]
    monkeypatch.delenv("REFMGR_TEST_LIST")
    assert env_list("REFMGR_TEST_LIST", ["default"]) == ["default"]


def test_it_reads_a_secret_from_a_file(monkeypatch, tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cret-from-a-file\n")
    monkeypatch.setenv("REFMGR_TEST_SECRET", "from-the-variable")
    monkeypatch.setenv("REFMGR_TEST_SECRET_FILE", str(secret_file))
    assert env_secret("REFMGR_TEST_SECRET") == "s3cret-from-a-file"


def test_it_names_the_variable_when_the_secret_file_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("REFMGR_TEST_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="REFMGR_TEST_SECRET_FILE: cannot read"):
        env_secret("REFMGR_TEST_SECRET")


def test_it_parses_a_postgres_url():
    database = database_from_url("DATABASE_URL", "postgres://app:p%40ss@db.internal:6432/refmgr?sslmode=require")
    assert database == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "refmgr",
        "USER": "app",
        "PASSWORD": "p@ss",
        "HOST": "db.internal",
        "PORT": "6432",
        "OPTIONS": {"sslmode": "require"},
    }


def test_it_parses_sqlite_urls():
    assert database_from_url("DATABASE_URL", "sqlite:///db.sqlite3")["NAME"] == "db.sqlite3"
    assert database_from_url("DATABASE_URL", "sqlite:////var/lib/refmgr.db")["NAME"] == "/var/lib/refmgr.db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x/db", "unsupported scheme 'mysql'"),
        ("postgres://host:5432/", "names no database"),
        ("postgres://host:abc/db", "port is not a number"),
        ("sqlite://", "needs a file path"),
    ],
)
def test_it_refuses_bad_database_urls(url, message):
    with pytest.raises(ImproperlyConfigured, match=f"DATABASE_URL: .*{message}"):
        database_from_url("DATABASE_URL", url)


def test_it_parses_smtp_urls_with_the_right_default_ports():
    plain = email_from_url("EMAIL_URL", "smtp://mail.example.com")
    assert plain["EMAIL_HOST"] == "mail.example.com"
    assert plain["EMAIL_PORT"] == 25
    tls = email_from_url("EMAIL_URL", "smtp+tls://user:pa%2Fss@mail.example.com")
    assert (tls["EMAIL_PORT"], tls["EMAIL_USE_TLS"], tls["EMAIL_USE_SSL"]) == (587, True, False)
    assert (tls["EMAIL_HOST_USER"], tls["EMAIL_HOST_PASSWORD"]) == ("user", "pa/ss")
    ssl = email_from_url("EMAIL_URL", "smtp+ssl://mail.example.com:2465")
    assert (ssl["EMAIL_PORT"], ssl["EMAIL_USE_SSL"]) == (2465, True)


def test_it_parses_the_development_email_backends():
    assert email_from_url("EMAIL_URL", "console://")["EMAIL_BACKEND"].endswith("console.EmailBackend")
    assert email_from_url("EMAIL_URL", "locmem://")["EMAIL_BACKEND"].endswith("locmem.EmailBackend")
    filebased = email_from_url("EMAIL_URL", "file:///tmp/mail")
    assert filebased["EMAIL_FILE_PATH"] == "/tmp/mail"  # noqa: S108


@pytest.mark.parametrize(
    ("url", "message"),
    [("bogus://", "unsupported scheme 'bogus'"), ("smtp://", "names no host"), ("smtp://h:x", "port is not a number")],
)
def test_it_refuses_bad_email_urls(url, message):
    with pytest.raises(ImproperlyConfigured, match=f"EMAIL_URL: .*{message}"):
        email_from_url("EMAIL_URL", url)
