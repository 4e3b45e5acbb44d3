#!/bin/sh
# bench/sse_parse.sh — SSE parser throughput: libtelex (C) against the
# `eventsource-parser` npm package, on the same bytes in the same run.
#
#   bench/sse_parse.sh BUILD_DIR OUT_MARKDOWN_FILE
#
# BUILD_DIR holds the built `sse_parse_bench` (CMake builds every bench/*.c).
# The C benchmark generates the synthetic streams (realistic chat-completion
# chunks, and 64 KiB events), writes them to a temporary directory and
# measures libtelex; bench/sse_parse_bench.mjs then measures
# eventsource-parser on those files. Both print JSON lines (echoed on
# stderr); the markdown table with MB/s and the ratio goes to
# OUT_MARKDOWN_FILE and to stdout. Exit 1 if the parsers disagree on the
# number of events.
#
# Environment: SSE_BENCH_MB (stream size, default 100), SSE_BENCH_RUNS (timed
# runs per measurement, median reported, default 5), TMPDIR (where the
# streams are written; needs 2 x SSE_BENCH_MB of space).
set -eu

if [ $# -ne 2 ]; then
  echo "usage: $0 BUILD_DIR OUT_MARKDOWN_FILE" >&2
  exit 64
fi
BUILD_DIR=$1
OUT=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MB=${SSE_BENCH_MB:-100}
RUNS=${SSE_BENCH_RUNS:-5}
BENCH=$BUILD_DIR/sse_parse_bench

if [ ! -x "$BENCH" ]; then
  echo "sse_parse.sh: $BENCH not found; build first (make build)" >&2
  exit 1
fi
if [ ! -d "$ROOT/node_modules/eventsource-parser" ]; then
  echo "sse_parse.sh: node_modules/eventsource-parser missing; run scripts/bootstrap" >&2
  exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/telex-sse-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM

echo "sse_parse.sh: libtelex parser (C), ${MB} MB streams, median of ${RUNS} runs" >&2
"$BENCH" --mb "$MB" --runs "$RUNS" \
  --write-realistic "$WORK/realistic.sse" --write-large "$WORK/large.sse" >"$WORK/c.jsonl"
cat "$WORK/c.jsonl" >&2
echo "sse_parse.sh: eventsource-parser (Node $(node --version)) on the same files" >&2
(cd "$ROOT" && node bench/sse_parse_bench.mjs --runs "$RUNS" \
  --realistic "$WORK/realistic.sse" --large "$WORK/large.sse") >"$WORK/js.jsonl"
cat "$WORK/js.jsonl" >&2

CPU=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)
CC_VERSION=$(sed -n 's/^CMAKE_C_COMPILER:[^=]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null | head -n 1)
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[^=]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null | head -n 1)
if [ -n "$CC_VERSION" ] && [ -x "$CC_VERSION" ]; then
  CC_VERSION=$("$CC_VERSION" --version | head -n 1)
fi

node - "$WORK/c.jsonl" "$WORK/js.jsonl" "${CPU:-unknown CPU}" "$(nproc 2>/dev/null || echo '?')" \
  "${CC_VERSION:-unknown compiler}" "${BUILD_TYPE:-unknown}" "$(date -u +%Y-%m-%d)" >"$OUT" <<'EOF'
const fs = require('fs');
const [cFile, jsFile, cpu, cores, cc, buildType, date] = process.argv.slice(2);
const read = (f) => fs.readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const c = read(cFile);
const js = read(jsFile);
const fmt = (x) => x.toLocaleString('en-US', { maximumFractionDigits: 0 });
const rows = [];
let mismatch = false;
for (const r of c) {
  const j = js.find((x) => x.stream === r.stream);
  if (!j) throw new Error(`no eventsource-parser result for ${r.stream}`);
  if (j.bytes !== r.bytes || j.events !== r.events) mismatch = true;
  const what = r.stream === 'realistic'
    ? `realistic chat-completion chunks (${r.mean_event_bytes.toFixed(0)} B/event)`
    : `large events (64 KiB data)`;
  rows.push(`| ${what} | ${(r.bytes / 1e6).toFixed(1)} | ${fmt(r.events)} | **${fmt(r.mb_per_s)}** | ${fmt(j.mb_per_s)} | **${(r.mb_per_s / j.mb_per_s).toFixed(1)}x** | ${fmt(j.feed_only_mb_per_s)} |`);
}
const js0 = js[0];
console.log(`## SSE parser throughput

\`bench/sse_parse.sh\` (part of \`make bench\`), ${date}, on ${cpu} (${cores} cores).
Both parsers read the same synthetic bytes in 64 KiB chunks; MB/s is 10^6 input bytes per
second, the median of ${c[0].runs} timed runs after one warm-up.

| stream | MB | events | libtelex C (MB/s) | eventsource-parser ${js0.version} (MB/s) | ratio | eventsource-parser, feed only (MB/s) |
|---|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}

- libtelex: \`sse_parse_bench\` (${cc}, ${buildType} build), callbacks count events.
- eventsource-parser: Node ${js0.node}; each chunk goes through a streaming \`TextDecoder\` and
  then \`parser.feed()\`, as a browser or Node consumer of a byte stream does. The last column
  times \`feed()\` alone on chunks decoded beforehand (the ratio uses the full path).
- ${mismatch ? '**WARNING: the two parsers saw different byte or event counts.**' : 'Both parsers saw the same bytes and dispatched the same number of events.'}`);
if (mismatch) process.exitCode = 1;
EOF
cat "$OUT"
