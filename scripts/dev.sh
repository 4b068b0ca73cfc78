#!/usr/bin/env bash
# The main job on an embedded default: a throwaway PostgreSQL with the migrations and demo data,
# an HTTPS mock of Dynamics, the function at http://127.0.0.1:54321/functions/v1/hlf-dynamics-sync,
# and a local webhook relay (NOTIFY → webhook POST). Then it pauses a mentor and shows the change
# flow through to the mock portal. Ctrl-C stops everything it started.
#   DEV_NO_DEMO=1 scripts/dev.sh     # start everything, skip the demo
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/pg.sh

[ -x "$DENO" ] && [ -f pkg/hlf_dynamics_sync_bg.wasm ] || { echo "run scripts/setup.sh first" >&2; exit 1; }
PORT=${PORT:-54321}
WORK=$(mktemp -d -t hlf-dev-XXXXXX)
chmod 755 "$WORK" # the postgres user must reach the cluster directory inside
pids=()
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "stopping…"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pg_stop_throwaway
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m▶ %s\033[0m\n' "$*"; }
q() { psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" "$@"; }

say "PostgreSQL (throwaway) and migrations"
pg_start_throwaway "$WORK/pg"
scripts/migrate.sh >/dev/null
echo "DATABASE_URL=$DATABASE_URL"

say "HTTPS mock of Azure AD + Dataverse"
export DYNAMICS_MOCK_CLIENT_SECRET="dev-client-secret-$RANDOM$RANDOM"
"$DENO" run -A supabase/tests/mock/main.ts --port 0 --cert-dir "$WORK/certs" --contacts 3 \
  >"$WORK/mock.out" 2>"$WORK/mock.err" &
pids+=($!)
for _ in $(seq 100); do [ -s "$WORK/mock.out" ] && break; sleep 0.1; done
mock=$(head -1 "$WORK/mock.out")
base_url=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["baseUrl"])' "$mock")
token_url=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tokenUrl"])' "$mock")
tenant=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tenantId"])' "$mock")
client=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["clientId"])' "$mock")
echo "Dataverse mock at $base_url"
# The three demo contacts start listed on the portal.
curl -sf --cacert "$WORK/certs/ca.pem" -XPOST "$base_url/__mock/contacts" -d '{"contacts":[
  {"id":"00000000-0000-4000-8000-000000000001","visible":true},
  {"id":"00000000-0000-4000-8000-000000000002","visible":true},
  {"id":"00000000-0000-4000-8000-000000000003","visible":true}]}' >/dev/null

say "Demo data: HLF (sync on) with three mentors mapped to portal contacts; credentials in Vault"
q -o /dev/null <<SQL
insert into organizations (id, code) values ('aaaaaaaa-0000-4000-8000-000000000001', 'HLF');
insert into org_sync_settings (organization_id, dynamics_sync_enabled) values ('aaaaaaaa-0000-4000-8000-000000000001', true);
insert into chapters (id, organization_id, name) values ('cccccccc-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-000000000001', 'HLF Oslo');
insert into peer_mentors (id, organization_id, full_name, status) values
  ('bbbbbbbb-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-000000000001', 'Kari Nordmann', 'active'),
  ('bbbbbbbb-0000-4000-8000-000000000002', 'aaaaaaaa-0000-4000-8000-000000000001', 'Ola Hansen', 'active'),
  ('bbbbbbbb-0000-4000-8000-000000000003', 'aaaaaaaa-0000-4000-8000-000000000001', 'Ingrid Berg', 'active');
insert into peer_mentor_chapters (mentor_id, chapter_id) select id, 'cccccccc-0000-4000-8000-000000000001' from peer_mentors;
insert into certifications (mentor_id, expires_at) select id, now() + interval '200 days' from peer_mentors;
insert into mentor_dynamics_contacts (mentor_id, dynamics_contact_id, last_synced_visible)
  select id, ('00000000-0000-4000-8000-00000000000' || right(id::text, 1))::uuid, true from peer_mentors;
delete from sync_queue;
select vault.create_secret('$tenant', 'dynamics_tenant_id');
select vault.create_secret('$client', 'dynamics_client_id');
select vault.create_secret('$DYNAMICS_MOCK_CLIENT_SECRET', 'dynamics_client_secret');
SQL

say "The function on http://127.0.0.1:$PORT/functions/v1/hlf-dynamics-sync"
SERVICE_KEY="dev-service-role-key-$RANDOM$RANDOM"
SUPABASE_DB_URL=$DATABASE_URL SUPABASE_SERVICE_ROLE_KEY=$SERVICE_KEY \
  SUPABASE_JWT_SECRET="dev-jwt-secret-$RANDOM$RANDOM-0123456789abcdef" \
  DYNAMICS_BASE_URL=$base_url DYNAMICS_TOKEN_URL=$token_url DENO_CERT="$WORK/certs/ca.pem" \
  PORT=$PORT scripts/serve.sh >"$WORK/function.log" 2>&1 &
pids+=($!)
url="http://127.0.0.1:$PORT/functions/v1/hlf-dynamics-sync"
for _ in $(seq 100); do curl -sf "$url" >/dev/null && break; sleep 0.1; done
curl -sf "$url" >/dev/null || { cat "$WORK/function.log"; exit 1; }
echo "function log: $WORK/function.log"

say "Webhook relay (NOTIFY hlf_sync_queue → POST, standing in for a Database Webhook)"
DATABASE_URL=$DATABASE_URL FUNCTION_URL=$url SERVICE_ROLE_KEY=$SERVICE_KEY \
  "$DENO" run -A scripts/lib/webhook_relay.ts >"$WORK/relay.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q listening "$WORK/relay.log" 2>/dev/null && break; sleep 0.1; done

mock_contact() {
  curl -s --cacert "$WORK/certs/ca.pem" "$base_url/__mock/contacts" |
    python3 -c 'import json,sys; [print("  contact " + c["id"] + "  visible=" + str(c["visible"]).lower()) for c in json.load(sys.stdin) if c["id"].endswith(sys.argv[1])]' "$1"
}

if [ -z "${DEV_NO_DEMO:-}" ]; then
  say "1. Kari is listed on the portal:"
  mock_contact 000000000001
  say "2. A coordinator pauses Kari:  update peer_mentors set status = 'paused' …"
  q -c "update peer_mentors set status = 'paused' where full_name = 'Kari Nordmann'"
  say "3. The outbox trigger wrote a job in the same transaction; the relay invoked the function:"
  for _ in $(seq 50); do
    [ "$(q -tAc "select count(*) from sync_queue where status = 'done'")" -ge 1 ] && break
    sleep 0.1
  done
  q -c "select id, operation, status, triggered_by_event, attempts from sync_queue order by id"
  say "4. The PATCH arrived at the mock portal; Kari is no longer listed:"
  mock_contact 000000000001
  say "5. The audit log:"
  q -c "select job_id, event, operation, http_status, error_code, attempt, duration_ms from sync_audit_log order by id"
  say "6. Kari is reinstated (valid certification) and comes back:"
  q -c "update peer_mentors set status = 'active' where full_name = 'Kari Nordmann'"
  for _ in $(seq 50); do
    [ "$(q -tAc "select count(*) from sync_queue where status = 'done'")" -ge 2 ] && break
    sleep 0.1
  done
  mock_contact 000000000001
fi

say "Running. Try:"
cat <<EOF
  curl -s -XPOST -H 'authorization: Bearer $SERVICE_KEY' -d '{"action":"status"}' $url
  psql '$DATABASE_URL' -c "update peer_mentors set status='paused' where full_name='Ola Hansen'"
Ctrl-C stops everything.
EOF
tail -f "$WORK/function.log" "$WORK/relay.log" &
pids+=($!)
wait
