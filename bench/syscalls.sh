#!/usr/bin/env bash
# bench/syscalls.sh — system calls per relayed event at a model's pace: telex plain, telex full
# (resume + API key + SQLite ledger) and nginx side by side, all in front of the same `telex mock`.
#
#   bench/syscalls.sh BUILD_DIR [OLD_TELEX_BIN] > RESULTS.jsonl
#
# Starts `telex mock` (2 workers), telex with bench/telex-plain.yaml and bench/telex-full.yaml
# (one worker each), nginx with bench/nginx.conf and, when OLD_TELEX_BIN is given, the same two
# telex configurations on that binary ("old-plain", "old-full"). Then, SC_ROUNDS times, in a
# rotating order, each target relays SC_STREAMS streams of SC_TOKENS chunks 50 ms apart (20
# events/s; ramped up at 1,000 new streams/s) while `perf stat -e 'syscalls:sys_enter_*' -p PID`
# counts every system call of every thread of the relay, from the first request to the last
# answer. Counts divided by the events the client received are the result: unlike timings, they
# do not depend on the machine's load. Per-answer calls (accept, connect, close, ...) are in the
# counts too, spread over the answer's SC_TOKENS events. Also printed: the relay's user and system
# CPU time per event (/proc/PID/stat over the same span; slowed a little by the counting).
# SC_H2=1: HTTP/2 clients (h2load, SC_H2_CONNS connections, default 10) instead of loadgen's HTTP/1.1.
# SC_PERF=0 leaves perf out (CPU time alone, without the counting's cost).
# SC_FLAT=1: flat out instead of at a model's pace: SC_FLAT_ANSWERS answers (default 600) from 50
# clients, no delay between chunks (HTTP/1.1 clients only).
# One JSON line per run on stdout; a table per target (medians over rounds) on stderr.
# Every process it starts is stopped by PID on exit.
set -uo pipefail
BUILD=$(cd "${1:?usage: syscalls.sh BUILD_DIR [OLD_TELEX_BIN]}" && pwd)
OLD=${2:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TELEX=$BUILD/telex
LOADGEN=$BUILD/loadgen
STREAMS=${SC_STREAMS:-300}
TOKENS=${SC_TOKENS:-200}
ROUNDS=${SC_ROUNDS:-2}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/telex-syscalls.XXXXXX")
ulimit -n 65536 2> /dev/null || ulimit -n "$(ulimit -Hn)"

log() { echo "syscalls: $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do ss -Hltn "sport = :$1" 2> /dev/null | grep -q . && return 0; sleep 0.1; done; return 1; }

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -9 "$p" 2> /dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MOCK_PORT=$(free_port)
UP=127.0.0.1:$MOCK_PORT
"$TELEX" mock --listen "$UP" --workers 2 --journal 0 --tokens "$TOKENS" --delay-ms 50 > "$WORK/mock.log" 2>&1 &
PIDS+=($!)
wait_port "$MOCK_PORT" || { log "mock did not start"; exit 1; }

declare -A URL HDR PIDOF
start_telex() { # NAME BINARY CONFIG
  local name=$1 bin=$2 conf=$3 port
  port=$(free_port)
  sed -e "s/@LISTEN@/127.0.0.1:$port/" -e "s/@UPSTREAM@/$UP/" -e "s/@WORKERS@/1/" \
    "$ROOT/bench/$conf" > "$WORK/$name.yaml"
  TELEX_DB=$WORK/$name.db "$bin" serve --config "$WORK/$name.yaml" > "$WORK/$name.log" 2>&1 &
  PIDOF[$name]=$!
  PIDS+=($!)
  wait_port "$port" || { log "$name did not start"; tail -5 "$WORK/$name.log" >&2; exit 1; }
  URL[$name]=http://127.0.0.1:$port/v1/chat/completions
  HDR[$name]="authorization: Bearer sk-mock"
  if [ "$conf" = telex-full.yaml ]; then
    local key
    key=$(TELEX_DB=$WORK/$name.db "$bin" keys create --name bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
    HDR[$name]="Authorization: Bearer $key"
  fi
}
TARGETS="telex-plain telex-full nginx"
start_telex telex-plain "$TELEX" telex-plain.yaml
start_telex telex-full "$TELEX" telex-full.yaml
if [ -n "$OLD" ]; then
  start_telex old-plain "$OLD" telex-plain.yaml
  start_telex old-full "$OLD" telex-full.yaml
  TARGETS="old-plain telex-plain old-full telex-full nginx"
fi
NGINX_PORT=$(free_port)
NGINX_H2_PORT=$(free_port)
mkdir -p "$WORK/nginx/tmp"
sed -e "s|@UPSTREAM@|$UP|" -e "s|@LISTEN@|127.0.0.1:$NGINX_PORT|" -e "s|@LISTEN_H2@|127.0.0.1:$NGINX_H2_PORT|" \
  -e "s|@NOFILE@|$(ulimit -n)|" "$ROOT/bench/nginx.conf" > "$WORK/nginx/nginx.conf"
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e stderr -g 'daemon off;' > "$WORK/nginx.log" 2>&1 &
PIDS+=($!)
wait_port "$NGINX_PORT" || { log "nginx did not start"; tail -5 "$WORK/nginx.log" >&2; exit 1; }
# the worker, not the master, relays
for _ in $(seq 50); do
  PIDOF[nginx]=$(pgrep -P "${PIDS[-1]}" | head -1)
  [ -n "${PIDOF[nginx]}" ] && break
  sleep 0.1
done
URL[nginx]=http://127.0.0.1:$NGINX_PORT/v1/chat/completions
HDR[nginx]="authorization: Bearer sk-mock"
H2=${SC_H2:-0}
if [ "$H2" = 1 ]; then
  # HTTP/2 clients: h2load, SC_STREAMS streams over SC_H2_CONNS connections, all started at once;
  # nginx on its h2c port. Events = answers x the events of one answer (counted by loadgen).
  URL[nginx]=http://127.0.0.1:$NGINX_H2_PORT/v1/chat/completions
  H2_CONNS=${SC_H2_CONNS:-10}
  printf '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello"}],"mock":{"tokens":%s,"delay_ms":50}}' \
    "$TOKENS" > "$WORK/h2body.json"
  EVENTS_PER_ANSWER=$("$LOADGEN" "${URL[telex-plain]}" -H "${HDR[telex-plain]}" -c 1 -n 1 --tokens "$TOKENS" --delay-ms 1 2> /dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["events"])')
fi

cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }

for t in $TARGETS; do # warm up: connections, caches, the ledger's first rows
  "$LOADGEN" "${URL[$t]}" -H "${HDR[$t]}" -c 20 -n 40 --tokens 5 --delay-ms 10 -d 30 > /dev/null 2>&1
done

list=($TARGETS)
for round in $(seq "$ROUNDS"); do
  n=${#list[@]}
  for ((i = 0; i < n; i++)); do
    t=${list[$(((i + round) % n))]}
    pid=${PIDOF[$t]}
    sleep 2
    read -r u0 s0 < <(cpu_ticks "$pid")
    : > "$WORK/perf.txt"
    perf_pid=
    if [ "${SC_PERF:-1}" = 1 ]; then
      perf stat -x, -e 'syscalls:sys_enter_*' -p "$pid" -o "$WORK/perf.txt" &
      perf_pid=$!
      sleep 0.5
    fi
    if [ "$H2" = 1 ]; then
      timeout "$((TOKENS / 20 + 30))" h2load -n "$STREAMS" -c "$H2_CONNS" -m "$(((STREAMS + H2_CONNS - 1) / H2_CONNS))" \
        -d "$WORK/h2body.json" -H 'content-type: application/json' -H "${HDR[$t]}" "${URL[$t]}" > "$WORK/run.err" 2>&1
      python3 - "$WORK/run.err" "$EVENTS_PER_ANSWER" > "$WORK/run.json" << 'EOF'
import json, re, sys
text = open(sys.argv[1]).read()
m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", text)
ok, failed = (int(m.group(4)), int(m.group(5))) if m else (0, -1)
print(json.dumps({"events": ok * int(sys.argv[2]), "errors": failed, "unfinished": 0}))
EOF
    elif [ "${SC_FLAT:-0}" = 1 ]; then
      "$LOADGEN" "${URL[$t]}" -H "${HDR[$t]}" -l "$t" -c 50 -n "${SC_FLAT_ANSWERS:-600}" --tokens "$TOKENS" \
        --delay-ms 0 -d 120 > "$WORK/run.json" 2> "$WORK/run.err"
    else
      "$LOADGEN" "${URL[$t]}" -H "${HDR[$t]}" -l "$t" -c "$STREAMS" -r 1000 --tokens "$TOKENS" --delay-ms 50 \
        -d "$((TOKENS / 20 + STREAMS / 1000 + 20))" > "$WORK/run.json" 2> "$WORK/run.err"
    fi
    if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" 2> /dev/null; fi
    read -r u1 s1 < <(cpu_ticks "$pid")
    python3 - "$t" "$round" "$WORK/run.json" "$WORK/perf.txt" "$((u1 - u0))" "$((s1 - s0))" "$(getconf CLK_TCK)" "$(cut -d' ' -f1 /proc/loadavg)" << 'EOF'
import json, sys
t, rnd, runf, perff, ut, st, hz, load = sys.argv[1:]
run = json.loads(open(runf).read().strip().splitlines()[-1])
ev = run["events"]
counts = {}
for line in open(perff):
    f = line.strip().split(",")
    if len(f) < 3 or not f[2].startswith("syscalls:sys_enter_") or not f[0].isdigit():
        continue
    if int(f[0]):
        counts[f[2][len("syscalls:sys_enter_"):]] = int(f[0])
out = {"target": t, "round": int(rnd), "events": ev, "errors": run["errors"], "unfinished": run["unfinished"],
       "load1": float(load), "p99_ms": (run.get("latency_window_ms") or {}).get("p99"),
       "user_us_per_event": int(ut) / int(hz) * 1e6 / ev if ev else None,
       "sys_us_per_event": int(st) / int(hz) * 1e6 / ev if ev else None,
       "syscalls": counts}
print(json.dumps(out), flush=True)
open(runf.rsplit("/", 1)[0] + "/all.jsonl", "a").write(json.dumps(out) + "\n")
print(f"syscalls: round {rnd} {t}: {ev} events, {sum(counts.values()) / max(ev, 1):.3f} syscalls/event, "
      f"cpu {(int(ut) + int(st)) / int(hz) * 1e6 / max(ev, 1):.2f} us/event, load {load}", file=sys.stderr)
EOF
  done
done

# the table: per target, each kind's median count per event over the rounds
python3 - "$WORK/all.jsonl" "$TARGETS" << 'EOF' >&2
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
targets = sys.argv[2].split()
kinds = sorted({k for r in runs for k in r["syscalls"]},
               key=lambda k: -sum(r["syscalls"].get(k, 0) / r["events"] for r in runs if r["events"]))
def med(t, f):
    v = [f(r) for r in runs if r["target"] == t and r["events"]]
    return statistics.median(v) if v else float("nan")
print("per event (median of rounds) | " + " | ".join(targets))
for k in kinds:
    print(f"{k:>24} | " + " | ".join(f"{med(t, lambda r: r['syscalls'].get(k, 0) / r['events']):.4f}" for t in targets))
print(f"{'all':>24} | " + " | ".join(f"{med(t, lambda r: sum(r['syscalls'].values()) / r['events']):.4f}" for t in targets))
print(f"{'cpu us/event (user+sys)':>24} | " + " | ".join(f"{med(t, lambda r: r['user_us_per_event'] + r['sys_us_per_event']):.2f}" for t in targets))
EOF
