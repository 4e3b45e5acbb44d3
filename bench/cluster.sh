#!/usr/bin/env bash
# bench/cluster.sh — what cluster mode costs (issue 19), side by side in one run.
#
#   bench/cluster.sh BUILD_DIR OUT_MARKDOWN_FILE
#
# Starts one `telex mock`, one redis-server (no persistence) and three gateways with the
# same config (resume on, 1 worker): `off` (single node), `on` and `on2` (TELEX_REDIS_URL:
# every event of every stream is also appended to Redis). All on loopback, free ports,
# stopped by PID on exit.
#   1. Latency and CPU: bench/loadgen opens N streams x 20 events/s through direct (the
#      mock), `off` and `on`, interleaved, ROUNDS times: p99 added per-event latency
#      (gateway minus direct in the same round), reported three ways: every event of the
#      steady window; each answer's first event (in cluster mode the stream's
#      registration in Redis starts with it) with the time to first byte; the later events
#      (the relay and the Redis tap); and the gateway's CPU per event; Redis' CPU during
#      the `on` runs and its memory per stream (used_memory growth while the finished
#      streams are still retained, per stream).
#   2. Throughput: `on` and `on2` both produce as fast as the mock sends (no delay); the
#      events per second Redis took (telex_cluster_events_published_total of both nodes
#      over the wall time) and Redis' CPU meanwhile.
# Writes a "Cluster mode" markdown section to OUT_MARKDOWN_FILE and the JSON lines to stderr.
#
# Environment: CLUSTER_BENCH_STREAMS (1000), CLUSTER_BENCH_TOKENS (100: 5 s answers),
# CLUSTER_BENCH_ROUNDS (2), CLUSTER_BENCH_QUICK=1 (tiny sizes, to test the script),
# CLUSTER_BENCH_THROUGHPUT=0 (skip part 2), CLUSTER_BENCH_PIN=1|0 (gateways on CPU 1, the rest on CPU 0; default 1 with 2+ cores), CLUSTER_BENCH_BEFORE=PATH (another telex
# binary, run as a fourth gateway `before` with cluster mode on, interleaved with the
# others: a change's effect measured side by side), REDIS_SERVER (/usr/bin/redis-server).
set -euo pipefail
BUILD=$(cd "${1:?usage: cluster.sh BUILD_DIR OUT.md}" && pwd)
OUT=${2:?usage: cluster.sh BUILD_DIR OUT.md}
TELEX=$BUILD/telex
LOADGEN=$BUILD/loadgen
REDIS=${REDIS_SERVER:-/usr/bin/redis-server}
N=${CLUSTER_BENCH_STREAMS:-1000}
TOKENS=${CLUSTER_BENCH_TOKENS:-100}
ROUNDS=${CLUSTER_BENCH_ROUNDS:-2}
THROUGHPUT=${CLUSTER_BENCH_THROUGHPUT:-1}
BEFORE=${CLUSTER_BENCH_BEFORE:-}
TP_STREAMS=200
TP_TOKENS=1000
if [ "${CLUSTER_BENCH_QUICK:-0}" = 1 ]; then N=50; TOKENS=20; ROUNDS=1; TP_STREAMS=20; TP_TOKENS=200; fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/telex-cluster-bench.XXXXXX")
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "cluster-bench: $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

wait_listening() { # LOGFILE -> prints the address
  local i
  for i in $(seq 200); do
    if grep -q '"msg":"listening"' "$1" 2>/dev/null; then
      sed -n 's/.*"msg":"listening"[^}]*"address":"\([^"]*\)".*/\1/p' "$1" | head -n 1
      return 0
    fi
    sleep 0.05
  done
  log "no listening line in $1"; cat "$1" >&2; return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
redis_cli() { redis-cli -p "$REDIS_PORT" "$@"; } # (redis-tools, a dependency of redis-server)
used_memory() { redis_cli INFO memory | tr -d '\r' | sed -n 's/^used_memory:\([0-9]*\)$/\1/p'; }
published() { # URL -> telex_cluster_events_published_total
  curl -s "$1/metrics" | sed -n 's/^telex_cluster_events_published_total \([0-9]*\)/\1/p'
}

# CLUSTER_BENCH_PIN=1: the gateways on CPU 1 alone, the mock, Redis and the load generator on
# CPU 0 — Redis as if on another host, so its CPU does not land on the gateway's core (on two
# shared cores the `on` runs otherwise pay for Redis' own work in scheduling delays).
GW_CPU=() REST_CPU=()
# The default: pinned where there are two cores or more (make bench).
PIN=${CLUSTER_BENCH_PIN:-$([ "$(nproc)" -ge 2 ] && echo 1 || echo 0)}
if [ "$PIN" = 1 ]; then GW_CPU=(taskset -c 1) REST_CPU=(taskset -c 0); fi
"${REST_CPU[@]}" "$TELEX" mock --listen 127.0.0.1:0 --workers 2 --journal 0 > "$WORK/mock.log" 2>&1 &
PIDS+=($!)
MOCK=$(wait_listening "$WORK/mock.log")
REDIS_PORT=$(free_port)
"${REST_CPU[@]}" "$REDIS" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" > "$WORK/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=($REDIS_PID)
for _ in $(seq 100); do grep -q 'Ready to accept' "$WORK/redis.log" && break; sleep 0.05; done

cat > "$WORK/telex.yaml" <<EOF
workers: 1
providers: [{name: mock, kind: openai, base_url: "http://$MOCK/v1", api_key: sk-mock}]
models: [{name: "*", providers: [{provider: mock}]}]
limits: {max_connections: 50000, max_concurrent_streams: 50000}
resume: {enabled: true, retention_seconds: 5}
EOF
declare -A URL PID
start_gateway() { # NAME BINARY [env...]
  local name=$1 bin=$2; shift 2
  env TELEX_DB="$WORK/$name.db" TELEX_LOG=quiet "$@" "${GW_CPU[@]}" "$bin" serve --config "$WORK/telex.yaml" \
    --listen 127.0.0.1:0 > "$WORK/$name.log" 2>&1 &
  PID[$name]=$!
  PIDS+=($!)
  URL[$name]="http://$(wait_listening "$WORK/$name.log")"
}
CLUSTER_ENV=(TELEX_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" TELEX_RESUME_SECRET=bench-secret-0123456789)
TARGETS=(direct off on)
start_gateway off "$TELEX"
start_gateway on "$TELEX" "${CLUSTER_ENV[@]}"
start_gateway on2 "$TELEX" "${CLUSTER_ENV[@]}"
if [ -n "$BEFORE" ]; then
  start_gateway before "$BEFORE" "${CLUSTER_ENV[@]}"
  TARGETS+=(before)
fi
URL[direct]="http://$MOCK"
for t in "${!PID[@]}"; do # warm up
  "$LOADGEN" "${URL[$t]}/v1/chat/completions" -c 4 -n 8 --tokens 5 --delay-ms 5 > /dev/null 2>&1 || true
done
sleep 6 # the warm-up's streams leave Redis (retention 5 s)

RESULTS=$WORK/results.jsonl
span=$(python3 -c "print($TOKENS / 20 + $N / 2000 + 10)")
for round in $(seq "$ROUNDS"); do
  for t in "${TARGETS[@]}"; do
    args=(-c "$N" -r 2000 --tokens "$TOKENS" --delay-ms 50 -d "$span" -l "$t")
    [ "$t" != direct ] && args+=(-p "${PID[$t]}")
    mem0=$(used_memory); rc0=$(cpu_ticks "$REDIS_PID")
    out=$("${REST_CPU[@]}" "$LOADGEN" "${URL[$t]}/v1/chat/completions" "${args[@]}" 2> "$WORK/last.err")
    mem1=$(used_memory); rc1=$(cpu_ticks "$REDIS_PID")
    line=$(printf '{"bench":"cluster_latency","round":%s,"target":"%s","redis_mem_delta":%s,"redis_cpu_ticks":%s,"r":%s}' \
      "$round" "$t" "$((mem1 - mem0))" "$((rc1 - rc0))" "$out")
    echo "$line" >> "$RESULTS"
    echo "$line" >&2
    sleep 6 # retention: each run's streams leave Redis and the gateway before the next
  done
done

# Throughput: both cluster nodes produce as fast as the mock sends.
if [ "$THROUGHPUT" = 1 ]; then
p0=$(( $(published "${URL[on]}") + $(published "${URL[on2]}") ))
rc0=$(cpu_ticks "$REDIS_PID")
t0=$(date +%s.%N)
"${REST_CPU[@]}" "$LOADGEN" "${URL[on]}/v1/chat/completions" -c "$TP_STREAMS" --tokens "$TP_TOKENS" --delay-ms 0 -d 60 -l on \
  > "$WORK/tp1.json" 2> /dev/null &
l1=$!
"${REST_CPU[@]}" "$LOADGEN" "${URL[on2]}/v1/chat/completions" -c "$TP_STREAMS" --tokens "$TP_TOKENS" --delay-ms 0 -d 60 -l on2 \
  > "$WORK/tp2.json" 2> /dev/null &
l2=$!
wait $l1 $l2
t1=$(date +%s.%N)
rc1=$(cpu_ticks "$REDIS_PID")
p1=$(( $(published "${URL[on]}") + $(published "${URL[on2]}") ))
line=$(printf '{"bench":"cluster_throughput","events":%s,"seconds":%s,"redis_cpu_ticks":%s,"clk_tck":%s}' \
  "$((p1 - p0))" "$(python3 -c "print($t1 - $t0)")" "$((rc1 - rc0))" "$(getconf CLK_TCK)")
echo "$line" >> "$RESULTS"
echo "$line" >&2
fi

python3 - "$RESULTS" "$N" "$TOKENS" "$(getconf CLK_TCK)" "${#GW_CPU[@]}" > "$OUT" <<'EOF'
import json, os, statistics, sys, datetime
rows = [json.loads(l) for l in open(sys.argv[1])]
n, tokens, hz = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
pinned = int(sys.argv[5]) > 0
lat = [r for r in rows if r["bench"] == "cluster_latency"]
rounds = sorted({r["round"] for r in lat})
targets = [t for t in ("off", "on", "before") if any(r["target"] == t for r in lat)]
def get(t, rnd):
    return next(r for r in lat if r["target"] == t and r["round"] == rnd)
def dist(r, name, q):
    d = r["r"].get(name)
    return d[q] if d else float("nan")
# per target and round: the gateway's figure minus direct's in the same round (ms)
added = {t: [] for t in targets}                      # every event of the steady window, p99
first = {t: {"p50": [], "p99": []} for t in targets}  # each answer's first event
later = {t: {"p50": [], "p99": []} for t in targets}  # the later events
ttfb = {t: {"p50": [], "p99": []} for t in targets}   # request written -> first response byte
cpu = {t: [] for t in targets}
for rnd in rounds:
    d = get("direct", rnd)
    for t in targets:
        r = get(t, rnd)
        added[t].append(dist(r, "latency_window_ms", "p99") - dist(d, "latency_window_ms", "p99"))
        for q in ("p50", "p99"):
            first[t][q].append(dist(r, "first_event_latency_ms", q) - dist(d, "first_event_latency_ms", q))
            later[t][q].append(dist(r, "later_event_latency_ms", q) - dist(d, "later_event_latency_ms", q))
            ttfb[t][q].append(dist(r, "ttfb_ms", q) - dist(d, "ttfb_ms", q))
        cpu[t].append(r["r"]["proc"]["cpu_us_per_event"])
on_runs = [get("on", rnd) for rnd in rounds]
redis_us_per_event = statistics.median(
    r["redis_cpu_ticks"] / hz * 1e6 / max(1, r["r"]["events"]) for r in on_runs)
redis_bytes_per_stream = statistics.median(r["redis_mem_delta"] / n for r in on_runs)
tp = next((r for r in rows if r["bench"] == "cluster_throughput"), None)
med = statistics.median
p = print
def ratio(a, b):
    return f"×{a / b:.2f}" if b > 0 else "×n/a"
names = {"off": "cluster off", "on": "cluster on", "before": "cluster on, `before` binary"}
p("## Cluster mode")
p()
p(f"`bench/cluster.sh BUILD_DIR OUT.md`, {datetime.date.today()}, loopback, load average {os.getloadavg()[0]:.1f} at the")
p("end (a shared 2-core machine: read the ratios, not the absolute")
p(f"numbers). One `telex mock`, one redis-server, gateways with 1 worker and resume on. {n:,} streams of")
p(f"{tokens} events at 20 events/s through the mock directly, a single node (`off`) and a node with")
p(f"cluster mode on (`on`: every event also appended to a Redis Stream), interleaved, {len(rounds)} round(s), medians.")
p("Latency added = the gateway's figure minus the mock's own (direct) in the same round. Each answer's first")
p("event (in cluster mode the stream's registration in Redis starts with it) and the time to")
p("first byte are reported apart from the later events.")
if pinned:
    p("Pinned (CLUSTER_BENCH_PIN=1): the gateways on CPU 1 alone, the mock, Redis and the load generator on")
    p("CPU 0, so Redis' own work (as on another host in production) does not land on the gateway's core.")
else:
    p("Not pinned: Redis, the mock and the load generator share both cores with the gateways.")
p()
p("| | first event added, p50 / p99 | time to first byte added, p50 / p99 | later events added, p50 / p99 | p99 added, all events (steady window) | gateway CPU per event |")
p("|---|---|---|---|---|---|")
for t in targets:
    p(f"| {names[t]} | {med(first[t]['p50']):.2f} / {med(first[t]['p99']):.2f} ms | {med(ttfb[t]['p50']):.2f} / {med(ttfb[t]['p99']):.2f} ms"
      f" | {med(later[t]['p50']):.2f} / {med(later[t]['p99']):.2f} ms | {med(added[t]):.2f} ms | {med(cpu[t]):.1f} µs |")
p()
def vs(what, q):
    a, b = med(what["on"][q]), med(what["off"][q])
    return f"{a - b:+.2f} ms ({ratio(a, b)})"
p(f"Cluster on vs off (added latency on minus off, and on/off): first event p99 {vs(first, 'p99')}, p50 {vs(first, 'p50')};")
p(f"time to first byte p99 {vs(ttfb, 'p99')}, p50 {vs(ttfb, 'p50')}; later events p99 {vs(later, 'p99')};")
p(f"p99 over all events of the steady window {med(added['on']) - med(added['off']):+.2f} ms (goal: ≤ 1 ms more); CPU per")
p(f"event {ratio(med(cpu['on']), med(cpu['off']))} (goal: ≤ 1.25×). Each round (on minus off): first event p99 "
  + ", ".join(f"{a - b:+.1f}" for a, b in zip(first["on"]["p99"], first["off"]["p99"]))
  + " ms; later events p99 " + ", ".join(f"{a - b:+.1f}" for a, b in zip(later["on"]["p99"], later["off"]["p99"])) + " ms.")
if "before" in targets:
    p(f"`before` (CLUSTER_BENCH_BEFORE) → `on`: first event added p99 {med(first['before']['p99']):.2f} → {med(first['on']['p99']):.2f} ms"
      f" (p50 {med(first['before']['p50']):.2f} → {med(first['on']['p50']):.2f}), time to first byte added p99"
      f" {med(ttfb['before']['p99']):.2f} → {med(ttfb['on']['p99']):.2f} ms, CPU per event {med(cpu['before']):.1f} → {med(cpu['on']):.1f} µs.")
p(f"Redis during the `on` runs: {redis_us_per_event:.1f} µs of CPU per event,")
p(f"{redis_bytes_per_stream/1024:.1f} KiB of memory per stream of {tokens} events (still retained just after the run).")
if tp is not None:
    p(f"Two cluster nodes producing as fast as the mock sends: one Redis took {tp['events']/tp['seconds']:,.0f} events/s")
    p(f"({tp['events']:,} events in {tp['seconds']:.1f} s; Redis CPU {tp['redis_cpu_ticks']/hz/tp['seconds']*100:.0f} % of a core) — there the gateways and")
    p("the mock, not Redis, were the limit on 2 cores.")
EOF
cat "$OUT"
