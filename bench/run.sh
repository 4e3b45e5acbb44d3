#!/usr/bin/env bash
# bench/run.sh — `make bench`: runs every benchmark on this machine and writes
# docs/benchmarks.md. Each section is measured in this one run, against what
# it is compared to, so ratios are meaningful on a shared, noisy machine.
#
#   bench/run.sh BUILD_DIR
set -euo pipefail
BUILD=${1:?usage: bench/run.sh BUILD_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/docs/benchmarks.md
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

START=$(date +%s)
"$ROOT/bench/sse_parse.sh" "$BUILD" "$WORK/sse_parse.md"
SSE_S=$(($(date +%s) - START))

# The cost of resumable streams (memory per stream, replay time): bench/resume.sh.
"$ROOT/bench/resume.sh" "$BUILD" "$WORK/resume.md"

# Cluster mode on vs off (Redis), side by side: bench/cluster.sh.
"$ROOT/bench/cluster.sh" "$BUILD" "$WORK/cluster.md"

# What a client that never reads costs (resume on, a small global budget, resume off).
TELEX_BIN="$(cd "$BUILD" && pwd)/telex" node "$ROOT/bench/stalled_bench.mjs" "$WORK/stalled.md" >/dev/null

# What each front door costs per event (chat, chat with ids, Responses, Messages).
TELEX_BIN="$(cd "$BUILD" && pwd)/telex" node "$ROOT/bench/frontdoors_bench.mjs" "$WORK/frontdoors.md" >/dev/null

# The relays side by side (bench/relay.sh measures, bench/report.py writes
# the tables and the docs/benchmarks-*.png charts).
"$ROOT/bench/relay.sh" "$BUILD" "$WORK/relay.jsonl"
python3 "$ROOT/bench/report.py" "$WORK/relay.jsonl" "$WORK/relay.md" "$ROOT/docs"
if [ -n "${BENCH_KEEP:-}" ]; then cp "$WORK/relay.jsonl" "$BENCH_KEEP"; fi

{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` ($(date -u +%Y-%m-%d)). Machine: $(nproc) cores,"
  echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"),"
  echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'). The machine is shared;"
  echo "every comparison below was measured side by side in the same run, and ratios matter more"
  echo "than absolute numbers."
  echo
  cat "$ROOT/bench/howto.md"
  echo
  cat "$WORK/relay.md"
  echo
  cat "$ROOT/bench/findings.md"
  echo
  cat "$WORK/sse_parse.md"
  echo
  cat "$WORK/resume.md"
  echo
  cat "$WORK/stalled.md"
  echo
  cat "$ROOT/bench/soak.md"
  echo
  cat "$WORK/frontdoors.md"
  echo
  cat "$WORK/cluster.md"
  echo
  echo "---"
  echo "\`make bench\` took $(( $(date +%s) - START )) s (SSE parser ${SSE_S} s)."
} > "$OUT"
echo "bench: wrote $OUT"
