#!/usr/bin/env bash
# tests/unit/with_postgres.sh — runs a command against a throwaway
# PostgreSQL 15: initdb in a temp directory owned by the unprivileged
# `postgres` user (the server refuses root), listening on 127.0.0.1 at a free
# port with trust authentication, then the command with
# TELEX_TEST_PG_URL=postgresql://postgres@127.0.0.1:PORT; stops the server by
# its PID and removes the directory whatever the command's outcome.
#
#   tests/unit/with_postgres.sh build/test_store
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
# 77: "skipped" for ctest (SKIP_RETURN_CODE) when PostgreSQL is not installed
[ -x "$PGBIN/postgres" ] || { echo "with_postgres: $PGBIN/postgres not found (scripts/bootstrap test installs postgresql); skipped" >&2; exit 77; }
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || { echo "with_postgres: running as root needs the postgres user (Debian's postgresql package); skipped" >&2; exit 77; }
  as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
dir=$(mktemp -d /tmp/telex-pg-XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
"${as_pg[@]}" "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
"${as_pg[@]}" "$PGBIN/postgres" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
  -c fsync=off -c max_connections=200 >"$dir/postgres.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/postgres.log" >&2; exit 1; }
  sleep 0.1
done
pg_isready -q -h 127.0.0.1 -p "$port" || { echo "with_postgres: the server did not start in 30 s" >&2; cat "$dir/postgres.log" >&2; exit 1; }
TELEX_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port" "$@"
