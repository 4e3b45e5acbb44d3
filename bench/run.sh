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

"$ROOT/bench/sse_parse.sh" "$BUILD" "$WORK/sse_parse.md"

{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` ($(date -u +%Y-%m-%d)). Machine: $(nproc) cores,"
  echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"),"
  echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'). The machine is shared;"
  echo "every comparison below was measured side by side in the same run, and ratios matter more"
  echo "than absolute numbers."
  echo
  cat "$WORK/sse_parse.md"
} > "$OUT"
echo "bench: wrote $OUT"
