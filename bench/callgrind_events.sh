#!/usr/bin/env bash
# bench/callgrind_events.sh — telex's user-space instructions per relayed event, counted by
# valgrind's callgrind (exact and repeatable on a shared machine, unlike timings).
#
#   bench/callgrind_events.sh TELEX_BIN CONFIG TOKENS ANSWERS CONCURRENCY [LOADGEN]
#
# CONFIG is a bench/*.yaml (telex-full.yaml: resume + API key + SQLite ledger). Starts
# `TELEX_BIN mock` (not under valgrind) and `TELEX_BIN serve` (one worker) under callgrind,
# creates an API key when the config is telex-full.yaml, relays a warm-up of 10 answers, zeroes
# the counters (so start-up and warm-up are not counted), relays ANSWERS answers of TOKENS
# chunks each (no delay between chunks) with CONCURRENCY clients, dumps the counters, and
# prints one JSON line: instructions, events the client received, instructions per event.
# CG_OPTS adds callgrind options (CG_OPTS=--cache-sim=yes also counts simulated cache misses,
# printed as d1_misses/ll_misses: a pointer chase costs misses more than instructions).
# CG_DELAY_MS paces the measured answers (mock.delay_ms, default 0): at a model's pace (50) each
# read from the provider brings one event, so what telex does per read is paid per event.
# CG_PATH (default /v1/chat/completions) and CG_BODY (a request body file, which then sets the
# mock's tokens and delay itself) measure another front door, e.g. /v1/responses; events are
# what the client received (a Responses answer has more events than chunks).
set -euo pipefail
TELEX=$(realpath "$1") CONF=$2 TOKENS=$3 ANSWERS=$4 CONC=$5
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOADGEN=${6:-$ROOT/build/loadgen}
WORK=$(mktemp -d /tmp/cg-events.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 600); do (echo > /dev/tcp/127.0.0.1/"$1") 2> /dev/null && return 0; sleep 0.1; done; return 1; }
MOCK_PORT=$(free_port) PORT=$(free_port)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done; wait 2> /dev/null || true; }
trap cleanup EXIT

"$TELEX" mock --listen "127.0.0.1:$MOCK_PORT" --workers 1 --journal 0 > "$WORK/mock.log" 2>&1 &
PIDS+=($!)
wait_port "$MOCK_PORT"
sed -e "s/@LISTEN@/127.0.0.1:$PORT/" -e "s/@UPSTREAM@/127.0.0.1:$MOCK_PORT/" -e "s/@WORKERS@/1/" \
  "$ROOT/bench/$CONF" > "$WORK/telex.yaml"
HDR="authorization: Bearer sk-mock"
if [ "$CONF" = telex-full.yaml ]; then
  KEY=$(TELEX_DB=$WORK/telex.db "$TELEX" keys create --name bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
  HDR="Authorization: Bearer $KEY"
fi
TELEX_LOG=quiet TELEX_DB=$WORK/telex.db valgrind --tool=callgrind ${CG_OPTS:-} --callgrind-out-file="$WORK/cg.out.%p" \
  "$TELEX" serve --config "$WORK/telex.yaml" > "$WORK/telex.log" 2>&1 &
VG=$!
PIDS+=($VG)
wait_port "$PORT" || { tail -20 "$WORK/telex.log" >&2; exit 1; }
URL=http://127.0.0.1:$PORT${CG_PATH:-/v1/chat/completions}
BODY=()
[ -n "${CG_BODY:-}" ] && BODY=(-b "$CG_BODY")
"$LOADGEN" "$URL" -H "$HDR" "${BODY[@]}" -c 5 -n 10 --tokens "$TOKENS" --delay-ms 0 -d 600 > /dev/null 2>&1
callgrind_control -z "$VG" > /dev/null 2>&1
"$LOADGEN" "$URL" -H "$HDR" "${BODY[@]}" -c "$CONC" -n "$ANSWERS" --tokens "$TOKENS" --delay-ms "${CG_DELAY_MS:-0}" -d 3600 -l run \
  > "$WORK/run.json" 2> "$WORK/run.err"
callgrind_control -d "$VG" > /dev/null 2>&1
sleep 1 # the dump is written asynchronously by the instrumented process
kill -TERM "$VG"
wait "$VG" 2> /dev/null || true
DUMP=$(ls "$WORK"/cg.out.*.1 2> /dev/null | head -1)
[ -n "$DUMP" ] || { echo "no callgrind dump in $WORK" >&2; exit 1; }
TOTALS=$(callgrind_annotate "$DUMP" 2> /dev/null | awk '/^Events shown:/ {sub(/^Events shown: */, ""); ev=$0} /PROGRAM TOTALS/ {gsub(",", ""); print ev "|" $0; exit}')
python3 - "$WORK/run.json" "$TOTALS" "$TELEX" "$CONF" "$TOKENS" "$ANSWERS" "$CONC" "$DUMP" "${CG_DELAY_MS:-0}" << 'EOF'
import json, sys
run = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
names, values = sys.argv[2].split("|")
counts = dict(zip(names.split(), (int(v) for v in values.split() if v.isdigit())))
ir = counts["Ir"]
misses = {"d1_misses": counts.get("D1mr", 0) + counts.get("D1mw", 0), "ll_misses": counts.get("DLmr", 0) + counts.get("DLmw", 0)}
events = run.get("events") or run.get("events_received") or 0
out = {"telex": sys.argv[3], "config": sys.argv[4], "tokens": int(sys.argv[5]), "delay_ms": int(sys.argv[9]),
       "answers": int(sys.argv[6]), "concurrency": int(sys.argv[7]),
       "completed": run.get("completed"), "errors": run.get("errors"), "events": events,
       "instructions": ir, "per_event": round(ir / events, 1) if events else None}
if "D1mr" in counts:
    out.update(misses)
    out["ll_misses_per_event"] = round(misses["ll_misses"] / events, 2) if events else None
out["dump"] = sys.argv[8]
print(json.dumps(out))
EOF
