#!/usr/bin/env bash
# The soak run (user-run, minutes): random status/certification changes over many mentors with
# random injected faults and kill -9 of function processes, then drain until converged; checks
# that the portal equals the desired state for every mentor, that every job is done or
# dead-lettered with an alert, and that the audit log accounts for every PATCH; prints figures.
#
#   scripts/soak.sh [--mentors N] [--changes N] [--seconds S] [--seed N] [--processes N] [--kills N]
#
# Defaults: 300 mentors, 3000 changes spread over ~60 s, 3 processes, a random seed (printed;
# pass --seed to replay the same changes and faults). Uses $DATABASE_URL when set (a fresh
# database is created and dropped on that cluster), otherwise a throwaway PostgreSQL.
# Exit status 0 only when every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/pg.sh

if [ ! -f pkg/hlf_dynamics_sync_bg.wasm ]; then
  scripts/build.sh
fi
if [ -z "${DATABASE_URL:-}" ]; then
  pg_start_throwaway "$(mktemp -d -t hlf-soak-pg-XXXXXX)"
  trap pg_stop_throwaway EXIT
  trap 'exit 130' INT TERM
fi
NO_COLOR=1 "$DENO" run --allow-all supabase/tests/chaos/soak.ts "$@"
