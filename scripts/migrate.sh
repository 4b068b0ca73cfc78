#!/usr/bin/env bash
# Applies the local platform bootstrap (supabase/bootstrap/local_platform.sql: roles, auth.uid(),
# vault emulation - only what a Supabase project already has) and then supabase/migrations/*.sql
# in order to $DATABASE_URL. Each migration runs in one transaction together with its record in
# supabase_migrations.schema_migrations (the Supabase CLI's table), so a re-run is a no-op.
# On a real Supabase project (role supabase_admin exists) the bootstrap is skipped.
#
#   DATABASE_URL=postgres://... scripts/migrate.sh
set -euo pipefail
cd "$(dirname "$0")/.."

: "${DATABASE_URL:?DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres)}"
PSQL_BIN=psql
[ -x /usr/lib/postgresql/15/bin/psql ] && PSQL_BIN=/usr/lib/postgresql/15/bin/psql
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
psql_do() { "$PSQL_BIN" "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 "$@"; }

if [ "$(psql_do -tAc "select exists (select 1 from pg_roles where rolname = 'supabase_admin')")" = t ]; then
  echo "bootstrap: skipped (a Supabase platform is present)"
else
  psql_do -1 -f supabase/bootstrap/local_platform.sql
  echo "bootstrap: applied supabase/bootstrap/local_platform.sql"
fi

psql_do -c "create schema if not exists supabase_migrations;
            create table if not exists supabase_migrations.schema_migrations (
              version text primary key, statements text[], name text)"

applied=0
present=0
shopt -s nullglob
for file in supabase/migrations/*.sql; do
  base=$(basename "$file" .sql)
  version=${base%%_*}
  name=${base#*_}
  if ! [[ $version =~ ^[0-9]+$ ]]; then
    echo "migration $file: name must start with a numeric version and '_'" >&2
    exit 1
  fi
  if [ "$(psql_do -tAc "select exists (select 1 from supabase_migrations.schema_migrations where version = '$version')")" = t ]; then
    echo "migration $base: already applied"
    present=$((present + 1))
    continue
  fi
  # One transaction: take the lock, re-check, apply, record.
  if ! psql_do -1 \
    -c "select pg_advisory_xact_lock(hashtext('hlf_migrate'))" \
    -c "do \$\$ begin if exists (select 1 from supabase_migrations.schema_migrations where version = '$version') then raise exception 'migration $version was applied concurrently'; end if; end \$\$" \
    -f "$file" \
    -c "insert into supabase_migrations.schema_migrations (version, name) values ('$version', '$name')" \
    >/dev/null; then
    echo "migration $base: FAILED (nothing of it was applied)" >&2
    exit 1
  fi
  echo "migration $base: applied"
  applied=$((applied + 1))
done
echo "migrations: $applied applied, $present already present"
