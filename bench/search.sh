#!/usr/bin/env bash
# bench/search.sh — the most 20-events/s streams each relay carries with p99 added latency under
# 10 ms (relay.sh's search, phase B), for telex AND nginx in one run (issue 21, goal e).
#
#   bench/search.sh BUILD_DIR RESULTS.jsonl [STEPS]
#
# Starts `telex mock` (2 workers), telex plain (bench/telex-plain.yaml), telex with resume + key +
# ledger (bench/telex-full.yaml) and nginx (bench/nginx.conf), one worker/process each. For every
# step N of STEPS (default "1000 2000 3000 4500 6750 9900"): N streams of 120 chunks 50 ms apart,
# started at 2,000/s (4,000/s above 2,000), measured direct to the mock and then through each relay
# still in the race; a relay holds at N when no stream failed and its p99 (steady window) is under
# 10 ms above direct's in the same step, direct's own p99 being under 10 ms (else the try decides
# nothing); one that fails is measured once more (with a fresh direct run) and drops out if that
# fails too. Appends one JSON line per run (with the 1-min load average) and prints each relay's
# largest held N and the first failed one. Every process it starts is stopped by PID on exit.
# `make bench` runs the same rule in bench/relay.sh (§5; BENCH_ONLY=search runs it alone), with
# one bisection step per relay and the direct run shared by the relays of a step.
set -uo pipefail
BUILD=$(cd "${1:?usage: search.sh BUILD_DIR RESULTS.jsonl [STEPS]}" && pwd)
RESULTS=${2:?usage: search.sh BUILD_DIR RESULTS.jsonl [STEPS]}
STEPS=${3:-1000 2000 3000 4500 6750 9900}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/telex-search.XXXXXX)
TELEX=$BUILD/telex LOADGEN=$BUILD/loadgen TOKENS=120
ulimit -n "$(ulimit -Hn)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 300); do (echo > /dev/tcp/127.0.0.1/"$1") 2> /dev/null && return 0; sleep 0.1; done; return 1; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done; wait 2> /dev/null || true; }
trap cleanup EXIT
declare -A URL HDR

MOCK_PORT=$(free_port)
"$TELEX" mock --listen "127.0.0.1:$MOCK_PORT" --workers 2 --journal 0 > "$WORK/mock.log" 2>&1 &
PIDS+=($!)
wait_port "$MOCK_PORT"
URL[direct]=http://127.0.0.1:$MOCK_PORT/v1/chat/completions
HDR[direct]="authorization: Bearer sk-mock"
for name in telex-plain telex-full; do
  port=$(free_port)
  sed -e "s/@LISTEN@/127.0.0.1:$port/" -e "s/@UPSTREAM@/127.0.0.1:$MOCK_PORT/" -e "s/@WORKERS@/1/" \
    "$ROOT/bench/$name.yaml" > "$WORK/$name.yaml"
  HDR[$name]="authorization: Bearer sk-mock"
  if [ "$name" = telex-full ]; then
    key=$(TELEX_DB=$WORK/$name.db "$TELEX" keys create --name bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
    HDR[$name]="Authorization: Bearer $key"
  fi
  TELEX_LOG=quiet TELEX_DB=$WORK/$name.db "$TELEX" serve --config "$WORK/$name.yaml" > "$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port"
  URL[$name]=http://127.0.0.1:$port/v1/chat/completions
done
RELAYS="telex-plain telex-full"
if command -v nginx > /dev/null; then
  port=$(free_port) port2=$(free_port)
  mkdir -p "$WORK/nginx/tmp"
  sed -e "s|@UPSTREAM@|127.0.0.1:$MOCK_PORT|" -e "s|@LISTEN@|127.0.0.1:$port|" -e "s|@LISTEN_H2@|127.0.0.1:$port2|" \
    -e "s|@NOFILE@|$(ulimit -n)|" "$ROOT/bench/nginx.conf" > "$WORK/nginx/nginx.conf"
  nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e stderr -g 'daemon off;' > "$WORK/nginx.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port"
  URL[nginx]=http://127.0.0.1:$port/v1/chat/completions
  HDR[nginx]="authorization: Bearer sk-mock"
  RELAYS="$RELAYS nginx"
fi
for t in direct $RELAYS; do # warm-up
  "$LOADGEN" "${URL[$t]}" -H "${HDR[$t]}" -c 4 -n 8 -d 10 --tokens 5 --delay-ms 10 > /dev/null 2>&1
done

# run STEP TRY TARGET N: one loadgen run; prints the p99 (steady window) or "fail"
run() {
  local n=$4 rate out load
  rate=$((n <= 2000 ? 2000 : 4000))
  load=$(cut -d' ' -f1 /proc/loadavg)
  out=$("$LOADGEN" "${URL[$3]}" -H "${HDR[$3]}" -l "$3" -c "$n" -r "$rate" --tokens "$TOKENS" --delay-ms 50 \
    -d "$(python3 -c "print($TOKENS / 20 + $n / $rate + 5)")" 2> /dev/null)
  [ -n "$out" ] || { echo fail; return; }
  printf '{"phase":"search","step":%s,"try":%s,"target":"%s","n":%s,"load1":%s,"r":%s}\n' "$1" "$2" "$3" "$n" "$load" "$out" >> "$RESULTS"
  printf '%s' "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin); w = r.get("latency_window_ms")
print(w["p99"] if r["errors"] == 0 and r["unfinished"] == 0 and w else "fail")'
}
declare -A GOOD BAD
in_race="$RELAYS"
step=0
for n in $STEPS; do
  [ -n "$in_race" ] || break
  step=$((step + 1))
  next=""
  for t in $in_race; do
    held=0
    for try in 1 2; do
      d=$(run "$step" "$try" direct "$n")
      p=$(run "$step" "$try" "$t" "$n")
      echo "search: n=$n try $try: direct p99 $d ms, $t p99 $p ms" >&2
      if [ "$d" != fail ] && [ "$p" != fail ] && python3 -c "import sys; sys.exit(0 if $d < 10 and $p - $d < 10 else 1)"; then
        held=1
        break
      fi
    done
    if [ "$held" = 1 ]; then GOOD[$t]=$n; next="$next $t"; else BAD[$t]=$n; fi
  done
  in_race=$next
done
for t in $RELAYS; do
  echo "search: $t held ${GOOD[$t]:-none} streams; first failed: ${BAD[$t]:-none (every step held)}"
  printf '{"phase":"search_result","target":"%s","good":%s,"bad":%s}\n' "$t" "${GOOD[$t]:-0}" "${BAD[$t]:-0}" >> "$RESULTS"
done
