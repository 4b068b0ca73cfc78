# Database suites, sourced by scripts/lib/suites.sh (conventions there: suite_NAME runs it,
# count_NAME LOG prints "passed failed"). Each suite creates a FRESH database on the cluster of
# $DATABASE_URL, migrates it with scripts/migrate.sh, runs, and drops it again.
# shellcheck shell=bash

# db_url_for NAME -> $DATABASE_URL with its database name replaced by NAME (query string kept).
db_url_for() {
  local base=${DATABASE_URL%%\?*} query=
  [ "$base" != "$DATABASE_URL" ] && query="?${DATABASE_URL#*\?}"
  local rest=${base#*://}
  if [[ $rest == */* ]]; then base=${base%/*}; fi
  printf '%s/%s%s\n' "$base" "$1" "$query"
}

# db_fresh PREFIX -> creates and migrates a new database, prints its URL on stdout.
db_fresh() {
  local name="${1}_$$_${RANDOM}"
  "$PG_BIN/psql" "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -c "create database $name" >&2 || return 1
  local url
  url=$(db_url_for "$name")
  DATABASE_URL=$url scripts/migrate.sh >&2 || { db_drop "$url"; return 1; }
  printf '%s\n' "$url"
}

db_drop() {
  local name=${1%%\?*}
  name=${name##*/}
  "$PG_BIN/psql" "$DATABASE_URL" -X -q -c "drop database if exists $name with (force)" >/dev/null 2>&1 || true
}

suite_pgtap() {
  local url rc
  url=$(db_fresh hlf_pgtap) || return 1
  "$PG_BIN/psql" "$url" -X -q -v ON_ERROR_STOP=1 -c "create extension if not exists pgtap" || { db_drop "$url"; return 1; }
  PATH="$PG_BIN:$PATH" pg_prove --verbose --dbname "$url" supabase/tests/database/*.test.sql
  rc=$?
  db_drop "$url"
  return $rc
}

# Counts individual pgTAP assertions from pg_prove --verbose output; assertions planned but not
# run (a file that died half-way) count as failed.
count_pgtap() {
  awk '
    /^[[:space:]]*ok [0-9]+/ { p++ }
    /^[[:space:]]*not ok [0-9]+/ { if ($0 !~ /# TODO/) f++; else p++ }
    /You planned [0-9]+ tests? but ran [0-9]+/ {
      for (i = 1; i <= NF; i++) { if ($i == "planned") planned = $(i+1); if ($i == "ran") ran = $(i+1) + 0 }
      if (planned > ran) f += planned - ran
    }
    END { print p + 0, f + 0 }' "$1"
}

suite_db-concurrency() {
  local url rc
  url=$(db_fresh hlf_concurrency) || return 1
  DATABASE_URL=$url "$DENO" test --allow-env --allow-net=127.0.0.1 tests/db/
  rc=$?
  db_drop "$url"
  return $rc
}

count_db-concurrency() {
  sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '/^(ok|FAILED) \| [0-9]+ passed/ { p += $3; f += $6 } END { print p + 0, f + 0 }'
}
