#!/usr/bin/env bash
# Line coverage of the sans-IO core (the native test suite; src/wasm/ is the wasm32-only adapter
# and is excluded). Prints the per-file table and "core line coverage: N %", and fails when the
# figure is below the threshold (90 %, or $HLF_MIN_LINE_COVERAGE).
#
# cargo-llvm-cov is installed once into the tools cache of scripts/lib/common.sh
# ($HLF_TOOLS_DIR/cargo-llvm-cov-<version>); the first run takes a few minutes, later ones seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

MIN_LINES=${HLF_MIN_LINE_COVERAGE:-90}
LLVM_COV_VERSION=0.9.1
LLVM_COV_ROOT="$HLF_TOOLS_DIR/cargo-llvm-cov-$LLVM_COV_VERSION"

if [ ! -x "$LLVM_COV_ROOT/bin/cargo-llvm-cov" ]; then
  echo "coverage: installing cargo-llvm-cov $LLVM_COV_VERSION into $LLVM_COV_ROOT (once, takes minutes)" >&2
  cargo install cargo-llvm-cov --version "=$LLVM_COV_VERSION" --locked --root "$LLVM_COV_ROOT"
fi
export PATH="$LLVM_COV_ROOT/bin:$PATH"

if command -v rustup >/dev/null 2>&1 &&
  ! rustup component list --installed 2>/dev/null | grep -q '^llvm-tools'; then
  echo "coverage: adding the llvm-tools-preview rustup component" >&2
  rustup component add llvm-tools-preview
fi

IGNORE='(^|/)src/wasm/|(^|/)tests/'

# Runs the native suite once under instrumentation (in target/llvm-cov-target, apart from the
# normal build), then reports from the same profile data.
cargo llvm-cov clean --workspace >/dev/null 2>&1 || true
cargo llvm-cov --all-targets --no-report --quiet
cargo llvm-cov report --summary-only --ignore-filename-regex "$IGNORE"

# TOTAL row: Filename Regions Missed Cover Functions Missed Executed Lines Missed Cover …
lines=$(cargo llvm-cov report --summary-only --ignore-filename-regex "$IGNORE" |
  awk '$1 == "TOTAL" { sub(/%/, "", $10); print $10 }')
if [ -z "$lines" ]; then
  echo "coverage: could not read the line coverage from the report" >&2
  exit 1
fi
echo "core line coverage: $lines % (minimum $MIN_LINES %)"
if awk -v l="$lines" -v m="$MIN_LINES" 'BEGIN { exit !(l + 0 < m + 0) }'; then
  echo "coverage: FAILED, line coverage $lines % is below $MIN_LINES %" >&2
  exit 1
fi
