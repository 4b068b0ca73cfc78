# Throwaway PostgreSQL 15 cluster for tests, dev and benchmarks; sourced, never run.
# pg_start_throwaway DIR [PORT]  -> starts a cluster in DIR (trust auth, loopback only, pg_cron loaded),
#                                   exports DATABASE_URL, PGHOST/PGPORT/PGUSER, PG_THROWAWAY_DIR
# pg_stop_throwaway               -> stops it and removes DIR
# shellcheck shell=bash

pg_free_port() {
  python3 - <<'PY'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

pg_start_throwaway() {
  local dir=$1 port=${2:-$(pg_free_port)}
  mkdir -p "$dir"
  chown postgres:postgres "$dir" 2>/dev/null || true
  local as=(runuser -u postgres --)
  [ "$(id -u)" -eq 0 ] || as=()
  "${as[@]}" "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; return 1; }
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
CONF
  "${as[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null ||
    { cat "$dir/server.log" >&2; return 1; }
  export PG_THROWAWAY_DIR=$dir PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

pg_stop_throwaway() {
  [ -n "${PG_THROWAWAY_DIR:-}" ] || return 0
  local as=(runuser -u postgres --)
  [ "$(id -u)" -eq 0 ] || as=()
  "${as[@]}" "$PG_BIN/pg_ctl" -D "$PG_THROWAWAY_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_THROWAWAY_DIR"
  unset PG_THROWAWAY_DIR
}
