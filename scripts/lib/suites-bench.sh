# Benchmark smoke suite, sourced by scripts/lib/suites.sh (conventions there: suite_NAME runs it,
# count_NAME LOG prints "passed failed"). Runs `scripts/bench.sh --quick` into a scratch directory
# (the committed bench/results.json and bench/README.md stay untouched) and checks that it
# produced a well-formed results.json with every figure present. It never asserts a time or a
# target: the benchmark reports those, tests do not.
# shellcheck shell=bash

suite_bench-smoke() (
  set -u
  out=$(mktemp -d -t hlf-bench-smoke-XXXXXX)
  trap 'rm -rf "$out"' EXIT
  t0=$(date +%s)
  scripts/bench.sh --quick --out "$out" 2>&1
  rc=$?
  echo "bench --quick: exit $rc after $(($(date +%s) - t0)) s"
  [ -f "$out/results.json" ] || { echo "not ok - no results.json"; exit 1; }
  "$DENO" run --allow-read bench/check_results.ts "$out/results.json" 2>&1 || exit 1
  [ "$rc" -eq 0 ] || { echo "not ok - scripts/bench.sh --quick exited $rc"; exit 1; }
  echo "ok - scripts/bench.sh --quick exited 0"
)

count_bench-smoke() {
  # One check per "ok - " / "not ok - " line of the suite's own output.
  awk '/^ok - / { p++ } /^not ok - / { f++ } END { print p + 0, f + 0 }' "$1"
}
