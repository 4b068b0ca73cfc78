#!/usr/bin/env bash
# Runs every suite, prints a per-suite summary and, as its very last line, "N passed, N failed"
# summed over all suites. Exits non-zero when anything failed.
#
# Starts a throwaway PostgreSQL for the database suites unless DATABASE_URL is set.
# Pick suites by name:  scripts/test.sh rust-native pgtap     (default: all)
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/pg.sh
. scripts/lib/suites.sh

LOG_DIR=${TEST_LOG_DIR:-$(mktemp -d -t hlf-test-XXXXXX)}
export TEST_LOG_DIR=$LOG_DIR

started_pg=0
cleanup() { [ "$started_pg" = 1 ] && pg_stop_throwaway; }
trap cleanup EXIT
trap 'exit 130' INT TERM

needs_db() { [[ " $* " =~ " pgtap " || " $* " =~ " db-concurrency " || " $* " =~ " e2e " || " $* " =~ " chaos " || " $* " =~ " api " ]]; }

selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${ALL_SUITES[@]}")

if needs_db "${selected[@]}" && [ -z "${DATABASE_URL:-}" ]; then
  pg_start_throwaway "$(mktemp -d -t hlf-pg-XXXXXX)" && started_pg=1 ||
    echo "could not start a throwaway PostgreSQL; database suites will fail" >&2
fi

total_pass=0
total_fail=0
summary=()
for suite in "${selected[@]}"; do
  log="$LOG_DIR/$suite.log"
  printf '\n==> %s\n' "$suite"
  t0=$(date +%s)
  "suite_$suite" >"$log" 2>&1
  rc=$?
  read -r p f < <("count_$suite" "$log" 2>/dev/null || echo "0 0")
  p=${p:-0}
  f=${f:-0}
  # A suite that failed without a countable failure still counts as one failure.
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  if [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then p=1; fi
  if [ "$f" -gt 0 ]; then
    tail -n 60 "$log"
    echo "(full log: $log)"
  fi
  dt=$(($(date +%s) - t0))
  summary+=("$(printf '%-16s %5d passed %4d failed  %4ss' "$suite" "$p" "$f" "$dt")")
  total_pass=$((total_pass + p))
  total_fail=$((total_fail + f))
done

printf '\n==> summary (logs in %s)\n' "$LOG_DIR"
printf '%s\n' "${summary[@]}"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
