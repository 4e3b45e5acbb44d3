#!/usr/bin/env bash
# bench/h2mem.sh — memory per held stream of telex with HTTP/2 to the provider, for one or more
# binaries side by side in one run (the measurement behind "14.9 KB/stream" in bench/findings.md).
#
#   bench/h2mem.sh N CONFIG TELEX_BIN [TELEX_BIN...]
#
# One `telex mock` (2 workers, from the first binary) for all; for each binary a fresh
# `telex serve` (one worker, bench/CONFIG, e.g. telex-plain-h2.yaml), 40 warm-up answers, then N
# HTTP/1.1 clients (bench/loadgen, started at 4,000/s) each holding an answer of 24 chunks 500 ms
# apart (12 s; all N open at once). Prints one JSON line per binary: loadgen's result, the 1-min
# load average at the start, and kb_per_stream = (RSS in the steady window - RSS before) / N
# (kB = 1,000 bytes), as bench/report.py computes it. H2MEM_TOKENS and H2MEM_RATE change the
# answer's length (chunks, 500 ms apart) and the ramp-up rate: every stream is open at once when
# N / RATE plus the connects' delays stays under TOKENS / 2 seconds.
set -euo pipefail
N=$1 CONF=$2
shift 2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOADGEN=${LOADGEN:-$ROOT/build/loadgen}
WORK=$(mktemp -d /tmp/h2mem.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 300); do (echo > /dev/tcp/127.0.0.1/"$1") 2> /dev/null && return 0; sleep 0.1; done; return 1; }
ulimit -n "$(ulimit -Hn)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done; wait 2> /dev/null || true; }
trap cleanup EXIT
MOCK_PORT=$(free_port)
"$1" mock --listen "127.0.0.1:$MOCK_PORT" --workers 2 --journal 0 > "$WORK/mock.log" 2>&1 &
PIDS+=($!)
wait_port "$MOCK_PORT"
i=0
for bin in "$@"; do
  i=$((i + 1))
  port=$(free_port)
  sed -e "s/@LISTEN@/127.0.0.1:$port/" -e "s/@UPSTREAM@/127.0.0.1:$MOCK_PORT/" -e "s/@WORKERS@/1/" \
    "$ROOT/bench/$CONF" > "$WORK/t$i.yaml"
  TELEX_LOG=quiet TELEX_DB=$WORK/t$i.db "$bin" serve --config "$WORK/t$i.yaml" > "$WORK/t$i.log" 2>&1 &
  pid=$!
  PIDS+=($pid)
  wait_port "$port"
  url=http://127.0.0.1:$port/v1/chat/completions
  "$LOADGEN" "$url" -H "authorization: Bearer sk-mock" -c 20 -n 40 --tokens 5 --delay-ms 10 > /dev/null 2>&1
  load=$(cut -d' ' -f1 /proc/loadavg)
  tokens=${H2MEM_TOKENS:-24} rate=${H2MEM_RATE:-4000}
  out=$("$LOADGEN" "$url" -H "authorization: Bearer sk-mock" -c "$N" -r "$rate" --tokens "$tokens" --delay-ms 500 \
    -d "$(python3 -c "print(int($tokens / 2 + $N / $rate + 30))")" -p "$pid" -l "$bin" 2> "$WORK/run$i.err")
  kill "$pid"
  wait "$pid" 2> /dev/null || true
  python3 - "$out" "$N" "$load" "$CONF" << 'EOF'
import json, sys
r = json.loads(sys.argv[1]); n = int(sys.argv[2]); p = r.get("proc", {})
rss = p.get("rss_window_kb") or p.get("rss_peak_kb")
print(json.dumps({"telex": r["label"], "config": sys.argv[4], "streams": n, "load1": float(sys.argv[3]),
                  "completed": r["completed"], "errors": r["errors"], "unfinished": r["unfinished"],
                  "rss_base_kb": p.get("rss_base_kb"), "rss_window_kb": rss,
                  "kb_per_stream": round((rss - p["rss_base_kb"]) * 1024 / n / 1000, 2) if rss else None,
                  "cpu_us_per_event": p.get("cpu_us_per_event"),
                  "connect_ms_max": (r.get("connect_ms") or {}).get("max"), "ttfb_ms_max": (r.get("ttfb_ms") or {}).get("max"),
                  "duration_ms_min": (r.get("duration_ms") or {}).get("min"), "elapsed_s": r["elapsed_s"]}))
EOF
done
