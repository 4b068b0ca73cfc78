#!/usr/bin/env bash
# Builds pkg/: the release wasm, wasm-bindgen glue (--target web: the function loads the bytes
# itself and calls initSync, which works in Supabase's edge runtime), then wasm-opt from the npm
# binaryen package (Debian's binaryen 108 breaks modules from current rustc).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

cargo build --quiet --release --lib --target wasm32-unknown-unknown
raw=target/wasm32-unknown-unknown/release/hlf_dynamics_sync.wasm
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
wasm-bindgen --target web --out-dir "$out" --out-name hlf_dynamics_sync "$raw"
node_modules/binaryen/bin/wasm-opt -Oz --enable-reference-types --enable-bulk-memory --enable-sign-ext \
  --enable-mutable-globals --enable-nontrapping-float-to-int --enable-multivalue \
  "$out/hlf_dynamics_sync_bg.wasm" -o "$out/hlf_dynamics_sync_bg.opt.wasm"
mv "$out/hlf_dynamics_sync_bg.opt.wasm" "$out/hlf_dynamics_sync_bg.wasm"
mkdir -p pkg
cp "$out"/hlf_dynamics_sync.js "$out"/hlf_dynamics_sync.d.ts "$out"/hlf_dynamics_sync_bg.wasm pkg/
size=$(stat -c %s pkg/hlf_dynamics_sync_bg.wasm)
printf 'pkg/hlf_dynamics_sync_bg.wasm: %d bytes (%d KB) after wasm-opt -Oz\n' "$size" $(((size + 1023) / 1024))
