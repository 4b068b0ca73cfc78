#!/usr/bin/env bash
# Fuzzes the Rust core with cargo-fuzz (libFuzzer), each target for a while, and prints a summary.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   SECONDS per target (default 60); all targets by default
#   scripts/fuzz.sh --smoke                 the CI run: a quick unoptimised build without
#                                           AddressSanitizer, 3 s per target (about a minute)
#   scripts/fuzz.sh --install               only makes sure cargo-fuzz is installed
#
# Targets are fuzz/fuzz_targets/*.rs; their seed corpora are committed in fuzz/corpus/<target>/.
# New inputs libFuzzer finds go to fuzz/target/corpus/<target>/ (not committed); a crash is
# written to fuzz/artifacts/<target>/ and the summary prints how to replay it.
#
# cargo-fuzz needs nightly-only flags (-Zsanitizer, sancov passes). This machine has only the
# stable toolchain, so the runs set RUSTC_BOOTSTRAP=1, which lets stable rustc accept them
# (checked with rustc 1.95: AddressSanitizer and libFuzzer's coverage instrumentation work).
# cargo-fuzz itself is installed once, pinned, into $HLF_TOOLS_DIR (outside the clone).
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

CARGO_FUZZ_VERSION=0.13.2
CARGO_FUZZ_ROOT="$HLF_TOOLS_DIR/cargo-fuzz-$CARGO_FUZZ_VERSION"
export PATH="$CARGO_FUZZ_ROOT/bin:$PATH"

install_cargo_fuzz() {
  if [ -x "$CARGO_FUZZ_ROOT/bin/cargo-fuzz" ] &&
    [ "$("$CARGO_FUZZ_ROOT/bin/cargo-fuzz" --version | awk '{print $2}')" = "$CARGO_FUZZ_VERSION" ]; then
    return 0
  fi
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into $CARGO_FUZZ_ROOT (about a minute)"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --root "$CARGO_FUZZ_ROOT" --force --quiet
}

mode=full
seconds=60
case "${1:-}" in
  --install) install_cargo_fuzz; exit ;;
  --smoke) mode=smoke; seconds=3; shift ;;
  -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
  '') ;;
  *)
    [[ $1 =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...] | --smoke" >&2; exit 2; }
    seconds=$1
    shift
    ;;
esac

install_cargo_fuzz || { echo "could not install cargo-fuzz" >&2; exit 1; }

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

export RUSTC_BOOTSTRAP=1
if [ "$mode" = smoke ]; then
  # Unoptimised (overflow checks on) and without ASan: builds in ~35 s instead of ~60 s.
  build=(--dev -s none --target-dir fuzz/target/smoke)
else
  # Optimised with debug assertions (overflow checks) and AddressSanitizer.
  build=(-O -a)
fi

echo "==> building ${#targets[@]} fuzz targets ($mode)"
(cd fuzz && cargo fuzz build "${build[@]}") || { echo "build failed" >&2; exit 1; }

# No unbounded allocation: one malloc above 256 MB or an RSS above 1 GB is a crash.
limits=(-rss_limit_mb=1024 -malloc_limit_mb=256 -max_len=16384 -timeout=10 -print_final_stats=1)
failed=0
rows=()
for t in "${targets[@]}"; do
  if [ "$mode" = smoke ]; then
    work=$(mktemp -d -t "hlf-fuzz-$t-XXXXXX")
  else
    work="fuzz/target/corpus/$t"
    mkdir -p "$work"
  fi
  log="fuzz/target/fuzz-$t.log"
  mkdir -p fuzz/target "fuzz/artifacts/$t"
  printf '==> %s: %ss\n' "$t" "$seconds"
  work=$(cd "$work" && pwd)
  (cd fuzz && cargo fuzz run "${build[@]}" "$t" "$work" "corpus/$t" -- \
    -max_total_time="$seconds" "${limits[@]}") >"$log" 2>&1
  rc=$?
  runs=$(awk '/^Done [0-9]+ runs/ { print $2 }' "$log" | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  corp=$(grep -Eo 'corp: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  if [ "$rc" -eq 0 ]; then
    result=ok
  else
    result=FAILED
    failed=$((failed + 1))
    grep -E "panicked at|ERROR: libFuzzer|SUMMARY|Test unit written" "$log" | head -6
    crash=$(grep -Eo 'Test unit written to \S+' "$log" | awk '{print $5}' | tail -1)
    [ -n "$crash" ] && echo "replay: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run ${build[*]} $t $crash)"
    echo "(full log: $log)"
  fi
  [ "$mode" = smoke ] && rm -rf "$work"
  rows+=("$(printf '%-20s %-7s %10s runs  cov %6s  corpus %6s' "$t" "$result" "${runs:-0}" "${cov:--}" "${corp:--}")")
done

printf '\n==> fuzz summary (%s, %ss per target)\n' "$mode" "$seconds"
printf '%s\n' "${rows[@]}"
echo "$((${#targets[@]} - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
