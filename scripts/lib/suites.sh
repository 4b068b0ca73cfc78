# The suites scripts/test.sh runs: suite_NAME runs it, count_NAME LOG prints "passed failed".
# A suite with no count_ function counts as one check (1 passed or 1 failed).
# shellcheck shell=bash

ALL_SUITES=(cargo-fmt clippy rust-native wasm-deno deno-fmt deno-lint deno-check deno-unit deno-mock pgtap db-concurrency e2e chaos api fuzz-smoke bench-smoke)

one() { echo "0 0"; }

# --- Rust -------------------------------------------------------------------------------------
suite_cargo-fmt() { cargo fmt --all -- --check; }
count_cargo-fmt() { one; }

suite_clippy() {
  cargo clippy --all-targets -- -D warnings &&
    cargo clippy --lib --target wasm32-unknown-unknown -- -D warnings &&
    cargo clippy --tests --target wasm32-unknown-unknown -- -D warnings
}
count_clippy() { one; }

suite_rust-native() { cargo test --all-targets 2>&1; }
count_rust-native() { cargo_counts "$1"; }

# wasm-bindgen-test in headless Deno (scripts/lib/deno-shim adds the globals the runner expects).
suite_wasm-deno() {
  PATH="$PWD/scripts/lib/deno-shim:$PATH" WASM_BINDGEN_USE_DENO=1 \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo test --target wasm32-unknown-unknown --tests 2>&1
}
count_wasm-deno() { cargo_counts "$1"; }

cargo_counts() {
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
       END { print p + 0, f + 0 }' "$1"
}

# --- TypeScript (Deno) ---------------------------------------------------------------------------
suite_deno-fmt() { "$DENO" fmt --check; }
count_deno-fmt() { one; }
suite_deno-lint() { "$DENO" lint; }
count_deno-lint() { one; }
suite_deno-check() { "$DENO" check $(deno_sources); }
count_deno-check() { one; }
deno_sources() { git ls-files --cached --others --exclude-standard '*.ts' | grep -v '^pkg/'; }

suite_deno-unit() {
  "$DENO" test --allow-read --allow-env --allow-net=127.0.0.1 tests/wasm_api_test.ts $(git ls-files --cached --others --exclude-standard 'supabase/functions/*_test.ts')
}
count_deno-unit() { deno_counts "$1"; }

# The HTTPS Dataverse + Azure AD mock's own tests (real TLS with a CA generated per run).
suite_deno-mock() { "$DENO" test --allow-all supabase/tests/mock/; }
count_deno-mock() { deno_counts "$1"; }

# A Deno suite that needs pkg/ and a PostgreSQL cluster: uses $DATABASE_URL when set (scripts/test.sh
# exports it), otherwise starts and stops its own throwaway cluster, so it also runs on its own.
deno_db_suite() (
  set -u
  if [ ! -f pkg/hlf_dynamics_sync_bg.wasm ]; then
    scripts/build.sh || exit 1
  fi
  if [ -z "${DATABASE_URL:-}" ]; then
    pg_start_throwaway "$(mktemp -d -t hlf-suite-pg-XXXXXX)" || exit 1
    trap pg_stop_throwaway EXIT
  fi
  NO_COLOR=1 "$DENO" test --allow-all "$@"
)

deno_counts() {
  # "ok | 12 passed | 0 failed (1s)" or "FAILED | 3 passed | 1 failed"; ANSI colours stripped first.
  sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '/^(ok|FAILED) \| [0-9]+ passed/ { p += $3; f += $6 } END { print p + 0, f + 0 }'
}

# --- Database (pgTAP and real concurrent connections) ---------------------------------------------
. scripts/lib/suites-db.sh
. scripts/lib/suites-e2e.sh
. scripts/lib/suites-chaos.sh
. scripts/lib/suites-api.sh
. scripts/lib/suites-fuzz.sh
. scripts/lib/suites-bench.sh
