#!/usr/bin/env bash
# bench/ledger.sh — flat-out answers per second with the usage ledger on PostgreSQL,
# on SQLite and off (store.ledger: false), side by side in one run: the ledger must
# stay off the hot path. Needs PostgreSQL 15 (scripts/bootstrap test): the run
# wraps itself in tests/unit/with_postgres.sh, which starts a throwaway server.
#
#   bench/ledger.sh [BUILD_DIR] [OUT.jsonl]      (default build, /tmp/telex-ledger-bench.jsonl)
#
# One telex worker per gateway, the same `telex mock` (2 workers) behind all three,
# short answers (BENCH_TOKENS, default 1, no delay) so that requests/s, not streaming, is measured;
# BENCH_SECONDS per measurement (default 15, 3 s warm-up not counted), BENCH_ROUNDS
# rounds (default 3) in rotating order; prints the median answers/s of each and the
# ratios to "off". Every answer writes a row (except "off"); the rows are counted
# afterwards so a ledger that fell behind or lost rows shows.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=${2:-/tmp/telex-ledger-bench.jsonl}
if [ -z "${TELEX_TEST_PG_URL:-}" ]; then
  exec tests/unit/with_postgres.sh "$0" "$BUILD" "$OUT"
fi
TELEX=$BUILD/telex
LOADGEN=$BUILD/loadgen
SECONDS_EACH=${BENCH_SECONDS:-15}
ROUNDS=${BENCH_ROUNDS:-3}
CONC=${BENCH_CONCURRENCY:-32}
TOKENS=${BENCH_TOKENS:-1}
dir=$(mktemp -d /tmp/telex-ledger-bench-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
wait_listening() { # log file
  for _ in $(seq 1 200); do grep -q '"listening"' "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "ledger.sh: $1: not listening" >&2; cat "$1" >&2; exit 1
}

mport=$(port)
"$TELEX" mock --listen "127.0.0.1:$mport" --workers 2 --journal 0 2>"$dir/mock.log" &
pids+=($!)
wait_listening "$dir/mock.log"

psql -q -h 127.0.0.1 -p "${TELEX_TEST_PG_URL##*:}" -U postgres -d postgres -c "CREATE DATABASE bench" >/dev/null
declare -A url db
for target in pg sqlite off; do
  p=$(port)
  url[$target]="http://127.0.0.1:$p/v1/chat/completions"
  ledger=true
  [ "$target" = off ] && ledger=false
  cat >"$dir/$target.yaml" <<YAML
listen: "127.0.0.1:$p"
workers: 1
providers:
  - {name: mock, kind: openai, base_url: "http://127.0.0.1:$mport/v1", api_key: sk-mock}
models:
  - name: "*"
    providers: [{provider: mock, input_price_per_mtok: 0.15, output_price_per_mtok: 0.60}]
limits: {max_connections: 50000, max_concurrent_streams: 50000}
resume: {enabled: false}
store: {ledger: $ledger, spill_path: "$dir/$target.spill"}
YAML
  case $target in
    pg) db[$target]="$TELEX_TEST_PG_URL/bench" ;;
    *) db[$target]="$dir/$target.db" ;;
  esac
  TELEX_DB=${db[$target]} TELEX_LOG=quiet "$TELEX" serve --config "$dir/$target.yaml" 2>"$dir/$target.log" &
  pids+=($!)
  eval "pid_$target=$!"
  wait_listening "$dir/$target.log"
done

: >"$OUT"
order=(pg sqlite off)
for r in $(seq 1 "$ROUNDS"); do
  for target in "${order[@]}"; do
    pidvar="pid_$target"
    "$LOADGEN" "${url[$target]}" -c "$CONC" -n 0 -d $((SECONDS_EACH + 3)) -w 3 --tokens "$TOKENS" -p "${!pidvar}" \
      -l "ledger-$target" 2>/dev/null | sed "s/^{/{\"round\":$r,/" >>"$OUT"
  done
  order=("${order[@]:1}" "${order[0]}") # rotate: no target always runs first
done

# let the writers finish, then count the rows each ledger holds
for target in pg sqlite; do
  pidvar="pid_$target"
  kill -TERM "${!pidvar}"
  wait "${!pidvar}" 2>/dev/null || true
done
rows_pg=$(psql -Atq -h 127.0.0.1 -p "${TELEX_TEST_PG_URL##*:}" -U postgres -d bench -c "SELECT count(*) FROM ledger")
rows_sqlite=$(sqlite3 "${db[sqlite]}" "SELECT count(*) FROM ledger" 2>/dev/null || echo "?")

node - "$OUT" "$rows_pg" "$rows_sqlite" <<'JS'
const fs = require('fs');
const [file, rowsPg, rowsSqlite] = process.argv.slice(2);
const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const by = {};
for (const l of lines) (by[l.label] ??= []).push(l);
const off = median(by['ledger-off'].map((l) => l.answers_per_s));
console.log('| ledger | answers/s (median) | vs off | p99 duration ms | gateway CPU s | answers | errors |');
console.log('|---|---|---|---|---|---|---|');
for (const label of ['ledger-off', 'ledger-sqlite', 'ledger-pg']) {
  const ls = by[label];
  const aps = median(ls.map((l) => l.answers_per_s));
  const cpu = ls.map((l) => l.proc?.cpu_s ?? 0);
  console.log(`| ${label.slice(7)} | ${aps.toFixed(0)} | ${(aps / off).toFixed(3)} | ${median(ls.map((l) => l.duration_ms.p99)).toFixed(2)} | ${median(cpu).toFixed(2)} | ${ls.reduce((s, l) => s + l.completed, 0)} | ${ls.reduce((s, l) => s + l.errors, 0)} |`);
}
const total = (label) => by[label].reduce((s, l) => s + (l.statuses?.['200'] ?? 0), 0);
console.log(`\nrows written: postgresql ${rowsPg} (200s seen ${total("ledger-pg")}), sqlite ${rowsSqlite} (200s seen ${total("ledger-sqlite")}); rows >= 200s: nothing lost (answers cut at the end of a run also leave rows)`);
JS
