#!/usr/bin/env bash
# Runs once, when the PostgreSQL volume is first created (docker-entrypoint-initdb.d).
#
# Two roles, neither a superuser (a superuser skips row-level security):
# - refmgr_owner owns the database and runs the migrations (the `migrate` service);
# - refmgr_app is what web, worker and beat log in as: NOBYPASSRLS, so the
#   organization policies bind it. The migrations grant it its table rights.
set -euo pipefail

: "${REFMGR_OWNER_PASSWORD:?set REFMGR_OWNER_PASSWORD}"
: "${REFMGR_APP_PASSWORD:?set REFMGR_APP_PASSWORD}"
DB=${REFMGR_DB:-refmgr}

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_password="$REFMGR_OWNER_PASSWORD" -v app_password="$REFMGR_APP_PASSWORD" -v db="$DB" <<'SQL'
CREATE ROLE refmgr_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'owner_password';
CREATE ROLE refmgr_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'app_password';
CREATE DATABASE :"db" OWNER refmgr_owner;
\connect :"db"
-- PostgreSQL 15: the public schema belongs to the database owner; nobody else creates in it.
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO refmgr_app;
-- The catalogue's full-text match (`@@`) may then be an index condition under row-level security
-- (references migration 0006 explains the review); only a superuser may mark a built-in LEAKPROOF.
ALTER FUNCTION pg_catalog.ts_match_vq(tsvector, tsquery) LEAKPROOF;
SQL
