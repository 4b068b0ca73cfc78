# Chaos suite, sourced by scripts/lib/suites.sh (conventions there: suite_NAME runs it,
# count_NAME LOG prints "passed failed"). supabase/tests/chaos/: kill -9 loops, a PostgreSQL
# restart (on a private cluster the test starts itself), a Dataverse outage, a 429 storm, the
# token endpoint down, three competing processors, a bounded soak, and the cross-path secret
# hygiene test. Bounded: about a minute on 2 cores. CHAOS_SEED=N replays the random choices.
#
# Uses $DATABASE_URL when set (scripts/test.sh exports it); otherwise starts and stops its own
# throwaway cluster (scripts/lib/pg.sh), so `scripts/test.sh chaos` works on its own.
# shellcheck shell=bash

suite_chaos() (
  set -u
  if [ ! -f pkg/hlf_dynamics_sync_bg.wasm ]; then
    scripts/build.sh || exit 1
  fi
  if [ -z "${DATABASE_URL:-}" ]; then
    pg_start_throwaway "$(mktemp -d -t hlf-chaos-pg-XXXXXX)" || exit 1
    trap pg_stop_throwaway EXIT
  fi
  NO_COLOR=1 "$DENO" test --allow-all supabase/tests/chaos/
)

count_chaos() {
  # "ok | 8 passed | 0 failed (1m)" or "FAILED | 7 passed | 1 failed"; ANSI colours stripped first.
  sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '/^(ok|FAILED) \| [0-9]+ passed/ { p += $3; f += $6 } END { print p + 0, f + 0 }'
}
