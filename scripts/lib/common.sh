# Shared settings for the scripts; sourced, never run. Paths are relative to the repo root.
# shellcheck shell=bash
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
HLF_TOOLS_DIR=${HLF_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hlf-dynamics-sync}
WASM_BINDGEN_ROOT="$HLF_TOOLS_DIR/wasm-bindgen-$WASM_BINDGEN_VERSION"
DENO_VERSION=$(node -p 'require("./package.json").devDependencies.deno')
BINARYEN_VERSION=$(node -p 'require("./package.json").devDependencies.binaryen')
# The real binary, not node_modules/.bin/deno (a Node launcher: slower, and it orphans the process).
DENO="$PWD/node_modules/deno/deno"
PG_BIN=/usr/lib/postgresql/15/bin
export PATH="$WASM_BINDGEN_ROOT/bin:$PATH"
# Deno reaches the npm registry here only through the system CA store.
export DENO_TLS_CA_STORE=system
