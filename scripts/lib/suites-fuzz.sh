# Fuzz smoke suite, sourced by scripts/lib/suites.sh (conventions there: suite_NAME runs it,
# count_NAME LOG prints "passed failed"). A bounded cargo-fuzz run of every target of fuzz/
# (unoptimised, 3 s each, about a minute with the build); scripts/fuzz.sh installs cargo-fuzz
# into $HLF_TOOLS_DIR when missing. Longer runs: scripts/fuzz.sh [SECONDS].
# shellcheck shell=bash

suite_fuzz-smoke() { scripts/fuzz.sh --smoke; }

# One check per fuzz target, from the script's closing "N passed, N failed" line.
count_fuzz-smoke() {
  awk '/^[0-9]+ passed, [0-9]+ failed$/ { p = $1; f = $3 } END { print p + 0, f + 0 }' "$1"
}
