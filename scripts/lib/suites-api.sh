# API suite, sourced by scripts/lib/suites.sh (conventions there: suite_NAME runs it, count_NAME
# LOG prints "passed failed"). Needs $DATABASE_URL (scripts/test.sh exports it): both parts create
# a fresh database on that cluster, migrate it, and drop it at the end.
#   1. supabase/tests/openapi/openapi_test.ts: real answers of the served function (with the
#      HTTPS Dynamics mock) checked against supabase/functions/hlf-dynamics-sync/openapi.yaml.
#   2. supabase/tests/openapi/run_schemathesis.sh: schemathesis (PyPI, pinned, venv under
#      $HLF_TOOLS_DIR) generating ~700 requests from the spec: no 500, answers conform, invalid
#      bodies and bad auth rejected, database unchanged.
# shellcheck shell=bash

suite_api() {
  local rc=0
  "$DENO" test --allow-all supabase/tests/openapi/ || rc=1
  supabase/tests/openapi/run_schemathesis.sh || rc=1
  return $rc
}

count_api() {
  sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '
    /^(ok|FAILED) \| [0-9]+ passed/ { p += $3; f += $6 }
    /^[0-9]+ passed, [0-9]+ failed$/ { p += $1; f += $3 }
    END { print p + 0, f + 0 }'
}
