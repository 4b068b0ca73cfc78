#!/usr/bin/env bash
# Runs schemathesis (PyPI, pinned, in a venv under $HLF_TOOLS_DIR) against the served function,
# generated from supabase/functions/hlf-dynamics-sync/openapi.yaml, with a bounded budget:
#
#   DATABASE_URL=postgres://... supabase/tests/openapi/run_schemathesis.sh [MAX_EXAMPLES]
#
# MAX_EXAMPLES per operation defaults to 500 (about 45 s on 2 cores). It creates a fresh database on the
# cluster of $DATABASE_URL, migrates and seeds it (HLF with mentors in a settled state: no due
# job, no expiring certification), serves the function with scripts/serve.sh, and checks:
#   - every answer conforms to the spec (status, content type, headers, body schema);
#   - no 500 and no undocumented 5xx, no stack trace (the error schema forbids one);
#   - schema-invalid bodies are rejected (4xx), requests without valid auth get 401;
#   - the database is unchanged: rejected requests must change nothing, and on this settled data
#     the accepted ones have nothing to do either (row counts and contents of every sync and app
#     table are compared before and after).
# Dynamics is an https:// address where nothing listens, so actions that reach Dynamics (health,
# expiry_check's credential check, reconcile with mapped mentors) answer their documented 503;
# sync_mentor is only reached with random mentor ids (404). A forced sync that succeeds is
# covered by openapi_test.ts against the mock. Its last line is "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../../.."
. scripts/lib/common.sh
. scripts/lib/pg.sh
. scripts/lib/suites-db.sh

SCHEMATHESIS_VERSION=4.32.5
VENV="$HLF_TOOLS_DIR/schemathesis-$SCHEMATHESIS_VERSION"
MAX_EXAMPLES=${1:-500}
SPEC=supabase/functions/hlf-dynamics-sync/openapi.yaml
HERE=supabase/tests/openapi

install_schemathesis() {
  if [ -x "$VENV/bin/st" ] && "$VENV/bin/st" --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION\$"; then
    return 0
  fi
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION"
}

[ "${1:-}" = --install ] && { install_schemathesis; exit; }
install_schemathesis || { echo "could not install schemathesis"; echo "0 passed, 1 failed"; exit 1; }
[ -n "${DATABASE_URL:-}" ] || { echo "DATABASE_URL is not set"; echo "0 passed, 1 failed"; exit 1; }

work=$(mktemp -d -t hlf-schemathesis-XXXXXX)
fn_pid=
db=
cleanup() {
  [ -n "$fn_pid" ] && kill "$fn_pid" 2>/dev/null && wait "$fn_pid" 2>/dev/null
  [ -n "$db" ] && db_drop "$db"
  rm -rf "$work"
}
trap cleanup EXIT

db=$(db_fresh hlf_schemathesis) || { echo "could not create the database"; echo "0 passed, 1 failed"; exit 1; }

psql_q() { "$PG_BIN/psql" "$db" -X -q -v ON_ERROR_STOP=1 "$@"; }

# HLF (sync enabled) with two chapters, an active, a paused and an unmapped mentor, a coordinator.
psql_q <<'SQL' >/dev/null || { echo "seeding failed"; echo "0 passed, 1 failed"; exit 1; }
insert into public.organizations (id, code, name) values
  ('00000000-0000-4000-8000-00000000000a', 'HLF', 'HLF'), ('00000000-0000-4000-8000-00000000000b', 'NHF', 'NHF');
insert into public.org_sync_settings (organization_id, dynamics_sync_enabled)
  values ('00000000-0000-4000-8000-00000000000a', true);
insert into public.chapters (id, organization_id, name) values
  ('00000000-0000-4000-8000-0000000000c1', '00000000-0000-4000-8000-00000000000a', 'HLF Oslo'),
  ('00000000-0000-4000-8000-0000000000c2', '00000000-0000-4000-8000-00000000000a', 'HLF Bergen');
insert into public.peer_mentors (id, organization_id, full_name, status) values
  ('00000000-0000-4000-8000-000000000101', '00000000-0000-4000-8000-00000000000a', 'Active Mentor', 'active'),
  ('00000000-0000-4000-8000-000000000102', '00000000-0000-4000-8000-00000000000a', 'Paused Mentor', 'paused'),
  ('00000000-0000-4000-8000-000000000103', '00000000-0000-4000-8000-00000000000b', 'NHF Mentor', 'active');
insert into public.peer_mentor_chapters (mentor_id, chapter_id) values
  ('00000000-0000-4000-8000-000000000101', '00000000-0000-4000-8000-0000000000c1'),
  ('00000000-0000-4000-8000-000000000102', '00000000-0000-4000-8000-0000000000c2');
insert into public.certifications (mentor_id, expires_at) values
  ('00000000-0000-4000-8000-000000000101', now() + interval '400 days'),
  ('00000000-0000-4000-8000-000000000102', now() + interval '400 days');
insert into public.mentor_dynamics_contacts (mentor_id, dynamics_contact_id, last_synced_visible, last_synced_at) values
  ('00000000-0000-4000-8000-000000000101', '6f2a5b1c-0000-4000-8000-000000000101', true, now()),
  ('00000000-0000-4000-8000-000000000102', '6f2a5b1c-0000-4000-8000-000000000102', false, now());
insert into public.coordinator_chapters (user_id, chapter_id)
  values ('00000000-0000-4000-8000-0000000000d1', '00000000-0000-4000-8000-0000000000c1');
-- Settled: what the seeding itself queued or logged is gone.
delete from public.sync_queue;
delete from public.sync_audit_log;
SQL

# Row count and content digest of every table the function reads or writes.
TABLES=(organizations chapters peer_mentors peer_mentor_chapters certifications coordinator_chapters
  org_sync_settings mentor_dynamics_contacts sync_queue sync_audit_log dead_letter_queue
  dynamics_sync_failures sync_alerts cert_expiry_reminders)
snapshot() {
  local t
  for t in "${TABLES[@]}"; do
    psql_q -At -c "select '$t', count(*), coalesce(md5(string_agg(x::text, ',' order by x::text)), '-')
                   from public.$t x"
  done
}
snapshot >"$work/before.txt" || { echo "snapshot failed"; echo "0 passed, 1 failed"; exit 1; }

port=$(pg_free_port)
key="schemathesis-service-$RANDOM$RANDOM$RANDOM"
env -i PATH="$PATH" HOME="$HOME" DENO_TLS_CA_STORE=system DENO_NO_UPDATE_CHECK=1 NO_COLOR=1 \
  PORT="$port" SUPABASE_DB_URL="$db" SUPABASE_SERVICE_ROLE_KEY="$key" \
  SUPABASE_JWT_SECRET="schemathesis-jwt-secret-$RANDOM$RANDOM" \
  DYNAMICS_BASE_URL="https://127.0.0.1:9" \
  DYNAMICS_TOKEN_URL="https://127.0.0.1:9/{tenant}/oauth2/v2.0/token" \
  DYNAMICS_TENANT_ID=tenant DYNAMICS_CLIENT_ID=client DYNAMICS_CLIENT_SECRET="not-a-real-secret-$RANDOM" \
  BACKOFF_MULTIPLIER_MS=1 BACKOFF_JITTER_MS=0 DYNAMICS_TIMEOUT_MS=2000 \
  scripts/serve.sh >"$work/function.log" 2>&1 &
fn_pid=$!
url="http://127.0.0.1:$port/functions/v1/hlf-dynamics-sync"
for _ in $(seq 1 300); do
  curl -sf "$url" >/dev/null 2>&1 && break
  kill -0 "$fn_pid" 2>/dev/null || break
  sleep 0.1
done
curl -sf "$url" >/dev/null 2>&1 ||
  { cat "$work/function.log"; echo "the function did not start"; echo "0 passed, 1 failed"; exit 1; }

echo "==> schemathesis $SCHEMATHESIS_VERSION against $url (max $MAX_EXAMPLES examples per operation)"
# From the scratch directory: schemathesis and hypothesis leave state (.schemathesis/,
# .hypothesis/) in the working directory.
root=$PWD
(cd "$work" && "$VENV/bin/st" --config-file "$root/$HERE/schemathesis.toml" run "$root/$SPEC" \
  --url "http://127.0.0.1:$port" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,ignored_auth,unsupported_method,allow_header_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "$MAX_EXAMPLES" \
  --seed "${SCHEMATHESIS_SEED:-20261123}" \
  --workers 2 \
  --request-timeout 30 \
  --generation-database none \
  --output-sanitize true \
  --report junit --report-junit-path "$work/junit.xml" \
  --no-color) 2>&1 | tee "$work/st.log"
st_rc=${PIPESTATUS[0]}

passed=0
failed=0
check() { # NAME CONDITION-RESULT(0 ok)
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); echo "FAIL $1"; fi
}

# One check per tested operation from the JUnit report, then the run's own verdict.
if [ -f "$work/junit.xml" ]; then
  read -r tests fails errors < <(python3 - "$work/junit.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) for s in suites)
e = sum(int(s.get("errors", 0)) for s in suites)
print(t, f, e)
PY
  )
  passed=$((passed + ${tests:-0} - ${fails:-0} - ${errors:-0}))
  failed=$((failed + ${fails:-0} + ${errors:-0}))
  echo "schemathesis operations: ${tests:-0} tested, ${fails:-0} failed, ${errors:-0} errors"
fi
check "schemathesis exit status ($st_rc)" "$st_rc"

snapshot >"$work/after.txt"
if diff -u "$work/before.txt" "$work/after.txt"; then db_rc=0; else db_rc=1; fi
check "database unchanged by the run (${#TABLES[@]} tables compared)" "$db_rc"

# An unexpected exception is logged as request_failed and answered 500; none may occur.
unexpected=$(grep -c '"request_failed"' "$work/function.log" || true)
check "no unexpected error in the function log ($unexpected)" "$([ "$unexpected" -eq 0 ] && echo 0 || echo 1)"
[ "$unexpected" -eq 0 ] || grep '"request_failed"' "$work/function.log" | head -5
kill -0 "$fn_pid" 2>/dev/null
check "the function is still serving" $?

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
