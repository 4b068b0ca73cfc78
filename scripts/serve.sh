#!/usr/bin/env bash
# Serves the function like `supabase functions serve`, at
#   http://127.0.0.1:$PORT/functions/v1/hlf-dynamics-sync        (PORT defaults to 54321)
# configured only by the environment (see the README's configuration table).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
export PORT=${PORT:-54321}
[ -f pkg/hlf_dynamics_sync_bg.wasm ] || scripts/build.sh
exec "$DENO" run --allow-net --allow-env --allow-read --allow-sys=hostname,osRelease \
  supabase/functions/hlf-dynamics-sync/index.ts
