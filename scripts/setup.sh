#!/usr/bin/env bash
# Installs every tool the project needs, then builds pkg/. Idempotent and unattended:
# a second run only checks what is there and finishes in seconds.
#
#   wasm32-unknown-unknown target       rustup
#   wasm-bindgen-cli == Cargo.lock      cargo install, cached in $HLF_TOOLS_DIR (outside the clone)
#   deno (pinned), binaryen (wasm-opt)  npm, project-local in node_modules/
#   PostgreSQL 15, pgTAP, pg_cron       Debian packages, only when missing
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

step() { printf '\n==> %s\n' "$*"; }

step "Rust target wasm32-unknown-unknown"
if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "present"
else
  rustup target add wasm32-unknown-unknown
fi

step "wasm-bindgen-cli $WASM_BINDGEN_VERSION (the version in Cargo.lock)"
if [ -x "$WASM_BINDGEN_ROOT/bin/wasm-bindgen" ] &&
  [ "$("$WASM_BINDGEN_ROOT/bin/wasm-bindgen" --version | awk '{print $2}')" = "$WASM_BINDGEN_VERSION" ]; then
  echo "present in $WASM_BINDGEN_ROOT"
else
  # Without --locked on purpose: with it, a pinned dependency is missing from the registry mirror.
  # About 5 minutes on a 2-core machine; cached outside the clone so later clones reuse it.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --root "$WASM_BINDGEN_ROOT" --force
fi

step "Deno $DENO_VERSION and binaryen $BINARYEN_VERSION (npm, project-local)"
if [ -x "$DENO" ] && "$DENO" --version | head -1 | grep -q "deno $DENO_VERSION " &&
  [ -x node_modules/binaryen/bin/wasm-opt ] &&
  grep -q "\"version\": \"$BINARYEN_VERSION\"" node_modules/binaryen/package.json; then
  echo "present in node_modules/"
else
  # `npm install`, not `npm ci`: deno's optional per-platform packages for other systems are not
  # resolvable from this registry, which `npm ci` treats as an out-of-sync lock file.
  npm install --no-audit --no-fund --loglevel=error
fi

step "PostgreSQL 15 with pgTAP and pg_cron (Debian packages)"
need=()
[ -x "$PG_BIN/initdb" ] || need+=(postgresql-15 postgresql-contrib-15)
[ -f /usr/share/postgresql/15/extension/pgtap.control ] || need+=(postgresql-15-pgtap)
command -v pg_prove >/dev/null || need+=(libtap-parser-sourcehandler-pgtap-perl)
[ -f /usr/share/postgresql/15/extension/pg_cron.control ] || need+=(postgresql-15-cron)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -eq 0 ]; then
  echo "present"
else
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

step "Deno npm dependencies (cached by Deno for the function and tests)"
DENO_TLS_CA_STORE=system "$DENO" cache --quiet scripts/lib/deps.ts

step "Test tools: cargo-fuzz and schemathesis (pinned, cached in $HLF_TOOLS_DIR)"
scripts/fuzz.sh --install
supabase/tests/openapi/run_schemathesis.sh --install

step "Build pkg/"
scripts/build.sh
