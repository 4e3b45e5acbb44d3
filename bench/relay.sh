#!/usr/bin/env bash
# bench/relay.sh — telex against nginx, the seeds' Python relay, Portkey,
# nullplatform and pushpin, all in front of the same `telex mock`, in one run.
#
#   bench/relay.sh BUILD_DIR RESULTS.jsonl
#
# Starts the mock, two telex gateways (plain relay; resume + accounting), an
# nginx (proxy_buffering off) and the peers of ../shared/peers, then runs
# bench/loadgen against each target, interleaved and repeated, and appends one
# JSON line per measurement to RESULTS.jsonl (bench/report.py turns them into
# tables and charts). Every process it starts is stopped by PID on exit.
#
# Phases (see docs/benchmarks.md for how to read the results):
#   A  mock answers 200 chunks, no delay:  time to first byte (one client,
#      sequential), throughput at 50 and 500 concurrent clients;
#   B  every gateway restarted; mock answers TOKENS chunks at 20 events/s:
#      per-event latency at 100 and 1,000 streams (memory, CPU), the largest
#      stream count telex sustains under 10 ms p99 added latency, and the
#      "10k" level (the most this sandbox's fd limit allows, see NOTE_FD).
#   h2up  telex with http2: on to the mock holds up to 19,000 streams from
#      HTTP/1.1 clients (one socket per stream); nginx at its best beside it.
#
# Environment: BENCH_ROUNDS (default 2), BENCH_QUICK=1 (tiny sizes, to test
# the script), BENCH_TARGETS (subset, space-separated), PEERS_RUN,
# BENCH_ONLY=h2up (only the last phase: HTTP/2 to the provider, §9),
# BENCH_ONLY=search (only the "most streams under 10 ms" search, §5: direct,
# telex plain, telex full and nginx; no peers).
set -uo pipefail
BUILD=$(cd "${1:?usage: relay.sh BUILD_DIR RESULTS.jsonl}" && pwd)
RESULTS=${2:?usage: relay.sh BUILD_DIR RESULTS.jsonl}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS=$(cd "$ROOT/../shared/peers" 2>/dev/null && pwd || true)
export PEERS_RUN=${PEERS_RUN:-${TMPDIR:-/tmp}/telex-bench-peers}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/telex-bench.XXXXXX")
LOADGEN=$BUILD/loadgen
TELEX=$BUILD/telex
ROUNDS=${BENCH_ROUNDS:-2}
QUICK=${BENCH_QUICK:-0}

# Sizes. A stream of TOKENS chunks at 50 ms lasts TOKENS/20 seconds; every
# stream level ramps up at RATE new streams per second and is measured while
# all its streams are open.
TOKENS=120
TP_SECONDS=3
TTFB_N=40
LEVELS="100 1000"
BIG=9900
if [ "$QUICK" = 1 ]; then TOKENS=40; TP_SECONDS=1; TTFB_N=5; LEVELS="50 200"; BIG=500; ROUNDS=1; fi
ALL_TARGETS="direct telex-plain telex-full nginx pushpin pyrelay portkey nullplatform"
TARGETS=${BENCH_TARGETS:-$ALL_TARGETS}

log() { echo "bench: $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
wait_port() { for _ in $(seq 100); do listening "$1" && return 0; sleep 0.1; done; return 1; }

# Room for 10,000 client sockets plus 10,000 upstream sockets in one relay
# process. Raising the hard limit needs CAP_SYS_RESOURCE, which a container
# may not have: then we keep whatever the hard limit allows, and say so.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
# A relay holds two sockets per stream, plus a few dozen other descriptors.
MAX_RELAY_STREAMS=$(((NOFILE - 64) / 2))
if [ "$BIG" -gt "$MAX_RELAY_STREAMS" ]; then BIG=$MAX_RELAY_STREAMS; fi

PIDS_TO_STOP=()
cleanup() {
  local p
  for p in "${PIDS_TO_STOP[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${PIDS_TO_STOP[@]}"; do kill -9 "$p" 2>/dev/null; done
  [ -n "$PEERS" ] && "$PEERS/peers.sh" stop pushpin pyrelay portkey nullplatform > /dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MOCK_PORT=$(free_port)
NGINX_PORT=$(free_port)
NGINX_H2_PORT=$(free_port)
PLAIN_PORT=$(free_port)
FULL_PORT=$(free_port)
UP=127.0.0.1:$MOCK_PORT
declare -A URL URL_H2 EXTRA PIDOF

# ------------------------------------------------------------ processes

MOCK_PID=
start_mock() { # TOKENS DELAY_MS: the defaults for requests whose body lost its "mock" object
  if [ -n "$MOCK_PID" ]; then kill "$MOCK_PID" 2>/dev/null; wait "$MOCK_PID" 2>/dev/null; fi
  "$TELEX" mock --listen "$UP" --workers 2 --journal 0 --tokens "$1" --delay-ms "$2" \
    > "$WORK/mock.log" 2>&1 &
  MOCK_PID=$!
  PIDS_TO_STOP+=("$MOCK_PID")
  wait_port "$MOCK_PORT" || { log "mock did not start"; cat "$WORK/mock.log" >&2; exit 1; }
}

start_telex() { # NAME PORT CONFIG
  local name=$1 port=$2 conf=$3 pid
  sed -e "s/@LISTEN@/127.0.0.1:$port/" -e "s/@UPSTREAM@/$UP/" -e "s/@WORKERS@/1/" \
    "$ROOT/bench/$conf" > "$WORK/$name.yaml"
  TELEX_DB=$WORK/$name.db "$TELEX" serve --config "$WORK/$name.yaml" > "$WORK/$name.log" 2>&1 &
  pid=$!
  PIDS_TO_STOP+=("$pid")
  PIDOF[$name]=$pid
  wait_port "$port" || { log "$name did not start"; tail -5 "$WORK/$name.log" >&2; return 1; }
}

start_nginx() {
  mkdir -p "$WORK/nginx/tmp"
  sed -e "s|@UPSTREAM@|$UP|" -e "s|@LISTEN@|127.0.0.1:$NGINX_PORT|" -e "s|@LISTEN_H2@|127.0.0.1:$NGINX_H2_PORT|" \
    -e "s|@NOFILE@|$NOFILE|" \
    "$ROOT/bench/nginx.conf" > "$WORK/nginx/nginx.conf"
  nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e stderr -g 'daemon off;' > "$WORK/nginx.log" 2>&1 &
  local pid=$!
  PIDS_TO_STOP+=("$pid")
  PIDOF[nginx]=$pid
  wait_port "$NGINX_PORT" || { log "nginx did not start"; tail -5 "$WORK/nginx.log" >&2; return 1; }
}

start_peers() {
  local n
  [ -n "$PEERS" ] || { log "../shared/peers not found: peers skipped"; return 0; }
  UPSTREAM=$UP "$PEERS/peers.sh" start pushpin pyrelay portkey nullplatform > "$WORK/peers.log" 2>&1 ||
    log "some peers did not start (see below)"
  for n in pushpin pyrelay portkey nullplatform; do
    if [ -s "$PEERS_RUN/$n.pid" ] && kill -0 "$(cat "$PEERS_RUN/$n.pid")" 2>/dev/null; then
      PIDOF[$n]=$(cat "$PEERS_RUN/$n.pid")
    else
      unset "PIDOF[$n]"
      grep "^$n" "$WORK/peers.log" >&2
    fi
  done
  [ -n "${PIDOF[pushpin]:-}" ] && [ -s "$PEERS_RUN/zurl.pid" ] && PIDOF[pushpin]="${PIDOF[pushpin]},$(cat "$PEERS_RUN/zurl.pid")"
  return 0
}

stop_gateways() {
  local n p
  for n in telex-plain telex-full nginx; do
    p=${PIDOF[$n]:-}
    [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    unset "PIDOF[$n]"
  done
  [ -n "$PEERS" ] && "$PEERS/peers.sh" stop pushpin pyrelay portkey nullplatform > /dev/null 2>&1
  for n in pushpin pyrelay portkey nullplatform; do unset "PIDOF[$n]"; done
}

start_gateways() {
  rm -f "$WORK"/telex-*.db*
  start_telex telex-plain "$PLAIN_PORT" telex-plain.yaml
  start_telex telex-full "$FULL_PORT" telex-full.yaml
  KEY=$(TELEX_DB=$WORK/telex-full.db "$TELEX" keys create --name bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
  start_nginx
  start_peers
  URL[direct]=http://$UP/v1/chat/completions
  URL[telex-plain]=http://127.0.0.1:$PLAIN_PORT/v1/chat/completions
  URL[telex-full]=http://127.0.0.1:$FULL_PORT/v1/chat/completions
  URL[nginx]=http://127.0.0.1:$NGINX_PORT/v1/chat/completions
  URL_H2[nginx]=http://127.0.0.1:$NGINX_H2_PORT/v1/chat/completions
  URL[pushpin]=http://127.0.0.1:7999/v1/chat/completions
  URL[pyrelay]=http://127.0.0.1:8090/v1/chat/completions
  URL[portkey]=http://127.0.0.1:8787/v1/chat/completions
  URL[nullplatform]=http://127.0.0.1:8788/openai/v1/chat/completions
  EXTRA[telex-full]="Authorization: Bearer $KEY"
  EXTRA[portkey]="x-portkey-custom-host: http://$UP/v1"
}

available() { [ "$1" = direct ] || [ -n "${PIDOF[$1]:-}" ]; }

# ------------------------------------------------------------ measuring

# Waits (at most 8 s) until the machine is quiet: less than 15 % of its CPU
# busy over half a second. A gateway that is still working off a run that hit
# its time cap (a slow peer finishing streams the client already left) would
# otherwise take CPU from the next target's measurement.
wait_quiet() {
  python3 - <<'EOF'
import sys, time
def busy():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(f) - f[3] - f[4], sum(f)
t0 = time.time()
while time.time() - t0 < 8:
    b0, a0 = busy(); time.sleep(0.5); b1, a1 = busy()
    if a1 > a0 and (b1 - b0) / (a1 - a0) < 0.15:
        break
waited = time.time() - t0
if waited > 2:
    print(f"bench: waited {waited:.0f} s for the machine to go quiet", file=sys.stderr)
EOF
}

# measure PHASE ROUND TARGET N [loadgen options...]: one loadgen run, one result line.
measure() {
  local phase=$1 round=$2 t=$3 n=$4; shift 4
  local args=(-l "$t" -H "authorization: Bearer sk-mock")
  [ "$t" = telex-full ] && args=(-l "$t" -H "${EXTRA[$t]}")
  [ "$t" = portkey ] && args+=(-H "x-portkey-provider: openai" -H "${EXTRA[$t]}")
  [ -n "${PIDOF[$t]:-}" ] && args+=(-p "${PIDOF[$t]}")
  local load out
  wait_quiet
  load=$(cut -d' ' -f1 /proc/loadavg)
  out=$("$LOADGEN" "${URL[$t]}" "${args[@]}" "$@" 2> "$WORK/last.err")
  if [ -z "$out" ]; then
    log "$phase $t n=$n: loadgen printed nothing"; tail -3 "$WORK/last.err" >&2; return 0
  fi
  printf '{"phase":"%s","round":%s,"target":"%s","n":%s,"load1":%s,"r":%s}\n' \
    "$phase" "$round" "$t" "$n" "$load" "$out" >> "$RESULTS"
  grep -m1 '^[a-z]' "$WORK/last.err" | sed "s/^/bench: $phase round $round: /" >&2
  grep -m1 'latency (steady' "$WORK/last.err" | sed 's/^/bench:  /' >&2
  # A peer that hit the time cap goes on working off the streams the client
  # left (nullplatform for a minute and more): restart it, so that backlog
  # does not run into the next target's measurement. Throughput runs too:
  # they end at the cap by design, and direct, telex and nginx finish the
  # answers in flight within milliseconds, but the slow peers' 500 left-over
  # answers kept a core busy past wait_quiet's 8 s and slowed whichever
  # target came next in the rotation (bench/findings.md, fifth round).
  case $t in
  pushpin | pyrelay | portkey | nullplatform)
    if [ "$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["unfinished"])')" != 0 ]; then
      restart_peer "$t"
    fi ;;
  esac
}

restart_peer() { # NAME
  "$PEERS/peers.sh" stop "$1" > /dev/null 2>&1
  UPSTREAM=$UP "$PEERS/peers.sh" start "$1" >> "$WORK/peers.log" 2>&1
  if [ -s "$PEERS_RUN/$1.pid" ] && kill -0 "$(cat "$PEERS_RUN/$1.pid")" 2>/dev/null; then
    PIDOF[$1]=$(cat "$PEERS_RUN/$1.pid")
    [ "$1" = pushpin ] && [ -s "$PEERS_RUN/zurl.pid" ] && PIDOF[pushpin]="${PIDOF[pushpin]},$(cat "$PEERS_RUN/zurl.pid")"
    log "$1 restarted (it left streams unfinished)"
  else
    unset "PIDOF[$1]"
    log "$1 did not restart"
  fi
}

# a few requests to each target after a (re)start, results ignored
warm_up() {
  local t
  for t in $TARGETS; do
    available "$t" || continue
    local args=(-H "authorization: Bearer sk-mock")
    [ "$t" = telex-full ] && args=(-H "${EXTRA[$t]}")
    [ "$t" = portkey ] && args+=(-H "x-portkey-provider: openai" -H "${EXTRA[$t]}")
    "$LOADGEN" "${URL[$t]}" "${args[@]}" -c 4 -n 8 -d 10 "$@" > /dev/null 2>&1
  done
}

# the targets in a different order every round, so drift in the machine's
# load does not always favour the same one
order() { # ROUND
  local list=() t
  for t in $TARGETS; do available "$t" && list+=("$t"); done
  local n=${#list[@]} k=$(( ($1 * 3) % ${#list[@]} )) i
  for ((i = 0; i < n; i++)); do echo "${list[$(( (i + k) % n ))]}"; done
}

meta() { printf '{"phase":"meta","%s":%s}\n' "$1" "$2" >> "$RESULTS"; }

# ------------------------------------------------------------ run

[ -x "$LOADGEN" ] || { log "$LOADGEN not built"; exit 1; }
[ "${BENCH_ONLY:-}" = search ] && PEERS= # the search runs telex and nginx only
if [ -n "$PEERS" ] && [ "${BENCH_ONLY:-}" != h2up ]; then
  "$PEERS/peers.sh" install > "$WORK/install.log" 2>&1 || { log "peers.sh install failed"; tail -5 "$WORK/install.log" >&2; }
fi
: > "$RESULTS"
meta nofile "$NOFILE"
meta big "$BIG"
meta tokens "$TOKENS"
meta rounds "$ROUNDS"
meta versions "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' \
  "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), pushpin $(pushpin --version 2>/dev/null | head -1 | awk '{print $NF}'), python3 $(/usr/bin/python3 -c 'import platform; print(platform.python_version())') + starlette $(/usr/bin/python3 -c 'import starlette; print(starlette.__version__)' 2>/dev/null) + uvicorn $(/usr/bin/python3 -c 'import uvicorn; print(uvicorn.__version__)' 2>/dev/null) + httpx $(/usr/bin/python3 -c 'import httpx; print(httpx.__version__)' 2>/dev/null), node $(node --version), portkey $(node -p 'require(process.argv[1]).version' "$PEERS_RUN/portkey/node_modules/@portkey-ai/gateway/package.json" 2>/dev/null), nullplatform $(node -p 'require(process.argv[1]).version' "$PEERS_RUN/nullplatform/node_modules/@nullplatform/llm-gateway/package.json" 2>/dev/null)")"
T0=$(date +%s)

if [ "${BENCH_ONLY:-}" = h2up ]; then # just the HTTP/2-upstream phase at the end (§9)
  start_mock "$TOKENS" 50
else
if [ "${BENCH_ONLY:-}" = search ]; then # just the search (§5), on fresh gateways
  start_mock "$TOKENS" 50
  start_gateways
  warm_up --tokens 5 --delay-ms 10
  span=$(python3 -c "print($TOKENS / 20)")
else
log "phase A: 200-chunk answers (mock on $UP)"
start_mock 200 0
start_gateways
warm_up
for round in $(seq "$ROUNDS"); do
  for t in $(order "$round"); do
    measure ttfb "$round" "$t" 1 -c 1 -n "$TTFB_N" -d 20
  done
done
for round in $(seq "$ROUNDS"); do
  for c in 50 500; do
    for t in $(order "$round"); do
      measure throughput "$round" "$t" "$c" -c "$c" -n 0 -d "$TP_SECONDS" -w 0.5 -r 5000
    done
  done
done
# One more round for the closest comparison (direct, telex, nginx), as for
# the latency levels below: one round's answers/s swing by 10-15 % with the
# machine's load, and a median of three resists one bad run.
if [ "$QUICK" != 1 ]; then
  round=$((ROUNDS + 1))
  for c in 50 500; do
    for t in $(order "$round"); do
      case $t in direct | telex-plain | telex-full | nginx) ;; *) continue ;; esac
      measure throughput "$round" "$t" "$c" -c "$c" -n 0 -d "$TP_SECONDS" -w 0.5 -r 5000
    done
  done
fi
meta phase_a_s "$(($(date +%s) - T0))"

log "phase B: $TOKENS-chunk answers at 20 events/s; gateways restarted"
stop_gateways
start_mock "$TOKENS" 50
start_gateways
warm_up --tokens 5 --delay-ms 10
# RSS of each gateway, fresh and warmed up: the base of "memory per stream"
for t in $TARGETS; do
  available "$t" && [ "$t" != direct ] || continue
  base=$("$LOADGEN" "${URL[direct]}" -c 1 -n 1 --tokens 1 -p "${PIDOF[$t]}" 2> /dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["proc"]["rss_base_kb"])')
  printf '{"phase":"rss_base","target":"%s","rss_kb":%s}\n' "$t" "$base" >> "$RESULTS"
done
span=$(python3 -c "print($TOKENS / 20)")
for round in $(seq "$ROUNDS"); do
  for n in $LEVELS; do
    rate=$((n <= 100 ? 1000 : 2000))
    for t in $(order "$round"); do
      measure latency "$round" "$t" "$n" -c "$n" -r "$rate" --tokens "$TOKENS" --delay-ms 50 \
        -d "$(python3 -c "print($span + $n / $rate + 5)")"
    done
  done
done
# One more round for the closest comparison (direct, telex, nginx): p99s on a
# shared 2-core machine are noisy, and a median of three resists one bad run.
if [ "$QUICK" != 1 ]; then
  round=$((ROUNDS + 1))
  for n in $LEVELS; do
    rate=$((n <= 100 ? 1000 : 2000))
    for t in $(order "$round"); do
      case $t in direct | telex-plain | telex-full | nginx) ;; *) continue ;; esac
      measure latency "$round" "$t" "$n" -c "$n" -r "$rate" --tokens "$TOKENS" --delay-ms 50 \
        -d "$(python3 -c "print($span + $n / $rate + 5)")"
    done
  done
fi
meta phase_b_levels_s "$(($(date +%s) - T0))"
fi # BENCH_ONLY=search

# The largest count of 20-events/s streams each relay (telex plain, telex
# full, nginx) carries with p99 added latency under 10 ms: up by half each
# step, each relay until it fails, then one bisection step per relay that
# failed (bench/search.sh's rule, on the gateways already running here).
# added_ok N TARGET: 0 if in some try at N the target's p99 was under 10 ms
# above direct's in the same try (and no stream failed or was cut by the cap),
# direct's own p99 being under 10 ms too: when the machine alone puts direct
# at hundreds of ms, "added" is the difference of two noises and decides
# nothing (a loaded run had nginx "hold" 2,000 streams at p99 226 ms because
# direct's was 441 ms).
added_ok() {
  python3 - "$RESULTS" "$1" "$2" <<'EOF'
import json, sys
path, n, target = sys.argv[1], int(sys.argv[2]), sys.argv[3]
runs = {}
for line in open(path):
    d = json.loads(line)
    if d.get("phase") == "search" and d.get("n") == n:
        r = d["r"]
        w = r.get("latency_window_ms")
        ok = r["errors"] == 0 and r.get("unfinished", 0) == 0 and w
        runs.setdefault(d["round"], {})[d["target"]] = w["p99"] if ok else None
ok = any(t.get(target) is not None and t.get("direct") is not None and t["direct"] < 10 and t[target] - t["direct"] < 10
         for t in runs.values())
sys.exit(0 if ok else 1)
EOF
}
# search_step N TARGET...: measures direct and the targets at N; HELD is set
# to the targets that stayed under 10 ms added. A target that fails is
# measured once more with a fresh direct run (the machine is shared: one burst
# of someone else's work should not decide it); it holds if either try does.
HELD=""
search_step() {
  local n=$1 rate t try left still
  shift
  left="$*" HELD=""
  rate=$((n <= 2000 ? 2000 : 4000))
  for try in 1 2; do
    [ -n "$left" ] || break
    for t in direct $left; do
      measure search "$try" "$t" "$n" -c "$n" -r "$rate" --tokens "$TOKENS" --delay-ms 50 \
        -d "$(python3 -c "print($span + $n / $rate + 5)")"
    done
    still=""
    for t in $left; do
      if added_ok "$n" "$t"; then HELD="$HELD $t"; else still="$still $t"; fi
    done
    left=$still
  done
}
# (From 1,000: 500 streams have always held with room to spare, and the time
# goes to the extra throughput round above; a failure at 1,000 still bisects.)
if [ "$QUICK" = 1 ]; then STEPS="300 600"; else STEPS="1000 2000 3000 4500 6750 $BIG"; fi
SEARCHED=""
for t in telex-plain telex-full nginx; do available "$t" && SEARCHED="$SEARCHED $t"; done
declare -A SGOOD SBAD MIDS
in_race=$SEARCHED
for n in $STEPS; do
  [ -n "$in_race" ] || break
  search_step "$n" $in_race
  for t in $in_race; do
    case " $HELD " in *" $t "*) SGOOD[$t]=$n ;; *) SBAD[$t]=$n ;; esac
  done
  in_race=$HELD
done
if [ "$QUICK" != 1 ]; then
  # relays that failed at the same step share their bisection runs
  for t in $SEARCHED; do
    [ -n "${SBAD[$t]:-}" ] || continue
    mid=$(((${SGOOD[$t]:-0} + SBAD[$t]) / 2))
    MIDS[$mid]="${MIDS[$mid]:-} $t"
  done
  for mid in $(printf '%s\n' "${!MIDS[@]}" | sort -n); do
    search_step "$mid" ${MIDS[$mid]}
    for t in $HELD; do SGOOD[$t]=$mid; done
  done
fi
for t in $SEARCHED; do
  printf '{"phase":"search_result","target":"%s","good":%s,"bad":%s}\n' "$t" "${SGOOD[$t]:-0}" "${SBAD[$t]:-0}" >> "$RESULTS"
  log "search: $t held ${SGOOD[$t]:-none}; first failed: ${SBAD[$t]:-none}"
done
meta phase_b_search_s "$(($(date +%s) - T0))"
if [ "${BENCH_ONLY:-}" != search ]; then

# Holding the big level: BIG streams at 2 events/s (12 chunks, 500 ms apart),
# a rate this machine can carry with the mock and the client on the same two
# cores, to see whether every stream gets through and what the gateway holds in
# memory. (Portkey and nullplatform are left out: they drop the request's
# "mock" object, so their streams would run at the mock's 20 events/s
# defaults — the run below shows how they do at that.)
for t in $TARGETS; do
  available "$t" || continue
  case $t in portkey | nullplatform) continue ;; esac
  kill -0 "$MOCK_PID" 2>/dev/null || start_mock "$TOKENS" 50
  measure hold 1 "$t" "$BIG" -c "$BIG" -r 4000 --tokens 12 --delay-ms 500 \
    -d "$(python3 -c "print(6 + $BIG / 4000 + 6)")"
  sleep 1
done
meta phase_b_hold_s "$(($(date +%s) - T0))"

# 10,000 streams exactly, over HTTP/2: with HTTP/1.1 clients a relay needs two
# sockets per stream and the sandbox's 20,000-file limit stops every relay
# just short of 10,000 (above); HTTP/2 clients multiplex (h2load: 100
# connections x 100 streams), so the gateway holds 10,000 provider sockets and
# 100 client ones. Same answers as the hold run (12 chunks, 500 ms apart).
# Fresh gateways, so that the memory they grow is this run's (a gateway that
# already held 9,900 streams reuses the memory it freed).
stop_gateways
rm -f "$WORK"/telex-*.db*
start_telex telex-plain "$PLAIN_PORT" telex-plain.yaml
start_telex telex-full "$FULL_PORT" telex-full.yaml
KEY=$(TELEX_DB=$WORK/telex-full.db "$TELEX" keys create --name bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
EXTRA[telex-full]="Authorization: Bearer $KEY"
start_nginx
warm_up --tokens 5 --delay-ms 10
H2N=$([ "$QUICK" = 1 ] && echo 400 || echo 10000)
H2C=$([ "$QUICK" = 1 ] && echo 4 || echo 100)
printf '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello"}],"mock":{"tokens":12,"delay_ms":500}}' \
  > "$WORK/h2body.json"
for t in telex-plain telex-full nginx; do
  available "$t" || continue
  case $t in nginx) u=${URL_H2[nginx]}; h="authorization: Bearer sk-mock"; m=() ;;
    *) u=${URL[$t]}; h=${EXTRA[$t]:-authorization: Bearer sk-mock}; m=(--metrics "${URL[$t]%/v1/chat/completions}/metrics") ;; esac
  kill -0 "$MOCK_PID" 2>/dev/null || start_mock "$TOKENS" 50
  wait_quiet
  load=$(cut -d' ' -f1 /proc/loadavg)
  out=$(python3 "$ROOT/bench/h2hold.py" "$u" "${PIDOF[$t]}" "$WORK/h2body.json" "$H2N" "$H2C" -H "$h" "${m[@]}" 2> "$WORK/last.err")
  if [ -n "$out" ]; then
    printf '{"phase":"h2hold","round":1,"target":"%s","n":%s,"load1":%s,"r":%s}\n' "$t" "$H2N" "$load" "$out" >> "$RESULTS"
    log "h2hold $t: $out"
  else
    log "h2hold $t: h2hold.py printed nothing"; tail -3 "$WORK/last.err" >&2
  fi
  sleep 1
done
meta phase_b_h2hold_s "$(($(date +%s) - T0))"

# The big level at 20 events/s, once per target (slow peers may not keep up:
# the time cap ends their run, and what they managed is recorded).
for t in $TARGETS; do
  available "$t" || continue
  kill -0 "$MOCK_PID" 2>/dev/null || start_mock "$TOKENS" 50
  measure big 1 "$t" "$BIG" -c "$BIG" -r 4000 --tokens "$TOKENS" --delay-ms 50 \
    -d "$(python3 -c "print($span + $BIG / 4000 + 8)")"
  sleep 1
done
meta phase_b_big_s "$(($(date +%s) - T0))"
fi # BENCH_ONLY != search
fi # BENCH_ONLY = h2up

# HTTP/2 to the provider (bench/telex-plain-h2.yaml: http2: on, h2c with prior
# knowledge to the mock): telex carries up to the mock's
# SETTINGS_MAX_CONCURRENT_STREAMS (h2o: 100) streams on each provider
# connection, so with HTTP/1.1 clients one process holds H2UP_N streams within
# the file limit — one socket per stream, plus one per 100 — where every relay
# with HTTP/1.1 upstreams stops at BIG. nginx cannot proxy to an HTTP/2
# upstream: its best is BIG, measured in this phase beside it; direct is the
# mock under the same H2UP_N streams. Answers of H2UP_TOKENS chunks 500 ms
# apart (2 events/s, as in the hold run, but 12 s long: started at 4,000/s,
# 19,000 streams are all open together for some 7 s, a real steady window for
# latency and memory; 6 s answers overlapped for under half a second). A
# fresh telex, so that the memory it grows is this run's.
if [ "${BENCH_ONLY:-}" != search ]; then
H2UP_N=$((NOFILE - 1000))
if [ "$H2UP_N" -gt 19000 ]; then H2UP_N=19000; fi
H2UP_TOKENS=24
if [ "$QUICK" = 1 ]; then H2UP_N=1000; H2UP_TOKENS=6; fi
meta h2up_n "$H2UP_N"
meta h2up_tokens "$H2UP_TOKENS"
stop_gateways
H2UP_PORT=$(free_port)
if start_telex telex-plain-h2 "$H2UP_PORT" telex-plain-h2.yaml; then
  URL[telex-plain-h2]=http://127.0.0.1:$H2UP_PORT/v1/chat/completions
  URL[nginx]=http://127.0.0.1:$NGINX_PORT/v1/chat/completions
  URL[direct]=http://$UP/v1/chat/completions
  if ! command -v nginx > /dev/null || ! start_nginx; then
    unset "PIDOF[nginx]"
    log "nginx is not available: the h2up phase runs without it"
  fi
  kill -0 "$MOCK_PID" 2>/dev/null || start_mock "$TOKENS" 50
  for t in telex-plain-h2 nginx; do
    available "$t" || continue
    "$LOADGEN" "${URL[$t]}" -H "authorization: Bearer sk-mock" -c 4 -n 8 -d 10 --tokens 5 --delay-ms 10 > /dev/null 2>&1
  done
  for t in direct telex-plain-h2 nginx; do
    available "$t" || continue
    n=$H2UP_N
    [ "$t" = nginx ] && n=$BIG
    kill -0 "$MOCK_PID" 2>/dev/null || start_mock "$TOKENS" 50
    measure h2up 1 "$t" "$n" -c "$n" -r 4000 --tokens "$H2UP_TOKENS" --delay-ms 500 \
      -d "$(python3 -c "print($H2UP_TOKENS / 2 + $n / 4000 + 8)")"
    sleep 1
  done
  conns=$(ss -Htn "dport = :$MOCK_PORT" 2>/dev/null | wc -l)
  meta h2up_mock_conns_after "$conns"
fi
fi # BENCH_ONLY != search
for t in telex-plain-h2 nginx; do
  p=${PIDOF[$t]:-}
  [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
  unset "PIDOF[$t]"
done
meta total_s "$(($(date +%s) - T0))"
log "done in $(($(date +%s) - T0)) s"
