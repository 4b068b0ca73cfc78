# End-to-end suite, sourced by scripts/lib/suites.sh (conventions there: suite_NAME runs it,
# count_NAME LOG prints "passed failed"). Real PostgreSQL + the real function processes + the
# HTTPS mock of Azure AD and Dataverse: supabase/tests/e2e/ (harness.ts creates and drops a fresh
# database per test file on the cluster of $DATABASE_URL).
#
# Uses $DATABASE_URL when set (scripts/test.sh exports it); otherwise starts and stops its own
# throwaway cluster (scripts/lib/pg.sh), so `scripts/test.sh e2e` works on its own.
# shellcheck shell=bash

suite_e2e() (
  set -u
  if [ ! -f pkg/hlf_dynamics_sync_bg.wasm ]; then
    scripts/build.sh || exit 1
  fi
  if [ -z "${DATABASE_URL:-}" ]; then
    pg_start_throwaway "$(mktemp -d -t hlf-e2e-pg-XXXXXX)" || exit 1
    trap pg_stop_throwaway EXIT
  fi
  NO_COLOR=1 "$DENO" test --allow-all supabase/tests/e2e/
)

count_e2e() {
  # "ok | 12 passed | 0 failed (1s)" or "FAILED | 3 passed | 1 failed"; ANSI colours stripped first.
  sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '/^(ok|FAILED) \| [0-9]+ passed/ { p += $3; f += $6 } END { print p + 0, f + 0 }'
}
