#!/usr/bin/env bash
# Benchmarks the product against its limits (issue 7): cold start, module size, queue overhead and
# CPU per job, drain rate under latency, throttling, end-to-end latency through the webhook path,
# trigger overhead, claim latency with history, reconcile and expiry check at 100 k mentors.
# Each figure is measured beside its baseline in the same run and printed with its target;
# results go to bench/results.json and the table in bench/README.md.
#
#   scripts/bench.sh                 # full mode (several minutes)
#   scripts/bench.sh --quick         # CI smoke, < 90 s, smaller sizes
#   scripts/bench.sh --out DIR       # write results.json / README.md table into DIR instead
#   scripts/bench.sh --only id,id    # some figures (ids in bench/figures.ts or step names)
#   scripts/bench.sh --profile       # also a V8 tick profile of the function (queue overhead)
#
# Self-setting-up: runs scripts/setup.sh when a tool or pkg/ is missing (it measures pkg/ as
# built; after changing src/, run scripts/build.sh first). Always starts its own
# throwaway PostgreSQL (it needs pg_stat_statements and auto_explain, which the test cluster
# does not preload), even when DATABASE_URL is set. Only loopback traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/pg.sh

if ! { [ -x "$DENO" ] && [ -f pkg/hlf_dynamics_sync_bg.wasm ] && [ -x "$PG_BIN/initdb" ] &&
  [ -x "$PG_BIN/pgbench" ] && [ -f /usr/share/postgresql/15/extension/pg_cron.control ] &&
  [ -f /usr/lib/postgresql/15/lib/pg_stat_statements.so ]; }; then
  echo "bench: tools or pkg/ missing; running scripts/setup.sh" >&2
  scripts/setup.sh
fi

work=$(mktemp -d -t hlf-bench-XXXXXX)
chmod 755 "$work" # the postgres user must reach the cluster directory inside
cleanup() {
  pg_stop_throwaway
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

unset DATABASE_URL
pg_start_throwaway "$work/pg"
cat >>"$PG_THROWAWAY_DIR/data/postgresql.conf" <<'CONF'
# scripts/bench.sh: statement times (DB time per invocation) and nested plans for the profiles.
shared_preload_libraries = 'pg_cron,pg_stat_statements'
pg_stat_statements.track = top
pg_stat_statements.max = 5000
# Durable commits as on a hosted project (pg.sh turns them off for test speed); the trigger
# overhead is relative to a real commit.
fsync = on
synchronous_commit = on
full_page_writes = on
max_wal_size = 4GB
shared_buffers = 512MB
CONF
as=(runuser -u postgres --)
[ "$(id -u)" -eq 0 ] || as=()
"${as[@]}" "$PG_BIN/pg_ctl" -D "$PG_THROWAWAY_DIR/data" -l "$PG_THROWAWAY_DIR/server.log" -w restart >/dev/null
psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c 'create extension if not exists pg_stat_statements' >/dev/null
# Every database the bench creates from template1 gets the extension's views too.
psql -X -q -v ON_ERROR_STOP=1 "${DATABASE_URL%/*}/template1" -c 'create extension if not exists pg_stat_statements' >/dev/null

NO_COLOR=1 "$DENO" run --allow-all bench/bench.ts "$@"
