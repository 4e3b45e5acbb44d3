// bench/sse_parse_bench.mjs — throughput of the `eventsource-parser` npm package
// (the parser most JavaScript SSE clients use) on the same bytes as
// bench/sse_parse_bench.c.
//
//   node bench/sse_parse_bench.mjs [--runs N] [--realistic FILE] [--large FILE]
//
// Each FILE (written by `sse_parse_bench --write-realistic/--write-large`) is
// read into memory, then parsed in 64 KiB chunks the way a real consumer does:
// each chunk goes through a streaming TextDecoder and the string is fed to
// createParser({onEvent}).feed(). One warm-up pass, then --runs timed passes
// (default 5). A second measurement, "feed only", pre-decodes the chunks
// outside the timer and times only parser.feed(), to show the parser alone.
// Prints one JSON line per file, like the C benchmark (MB = 10^6 bytes):
//   {"bench":"sse_parse","impl":"eventsource-parser","stream":"realistic",
//    "bytes":…,"events":…,"chunk":65536,"runs":…,"mb_per_s":<median>,
//    "mb_per_s_min":…,"mb_per_s_max":…,"feed_only_mb_per_s":<median>}
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createParser } from 'eventsource-parser';

const CHUNK = 65536;

function usage(code) {
  (code ? process.stderr : process.stdout).write(
    'usage: node bench/sse_parse_bench.mjs [--runs N] [--realistic FILE] [--large FILE]\n',
  );
  process.exit(code);
}

const args = process.argv.slice(2);
let runs = 5;
const files = [];
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if (arg === '--help' || arg === '-h') usage(0);
  const value = args[++i];
  if (value === undefined) usage(2);
  if (arg === '--runs') {
    runs = Number(value);
    if (!Number.isInteger(runs) || runs < 1 || runs > 101) usage(2);
  } else if (arg === '--realistic' || arg === '--large') {
    files.push({ stream: arg.slice(2), path: value });
  } else {
    usage(2);
  }
}
if (files.length === 0) usage(2);

const median = (sorted) =>
  sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;

function newCounter() {
  const counts = { events: 0, dataChars: 0 };
  const parser = createParser({
    onEvent(event) {
      counts.events++;
      counts.dataChars += event.data.length;
    },
  });
  return { counts, parser };
}

// One pass as a consumer of a byte stream does it: decode + feed, 64 KiB at a time.
function decodeAndFeed(bytes) {
  const { counts, parser } = newCounter();
  const decoder = new TextDecoder('utf-8');
  const start = process.hrtime.bigint();
  for (let off = 0; off < bytes.length; off += CHUNK) {
    parser.feed(decoder.decode(bytes.subarray(off, off + CHUNK), { stream: true }));
  }
  const tail = decoder.decode();
  if (tail) parser.feed(tail);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { seconds, counts };
}

// The parser alone: the chunks are decoded to strings beforehand.
function feedOnly(strings) {
  const { counts, parser } = newCounter();
  const start = process.hrtime.bigint();
  for (const s of strings) parser.feed(s);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { seconds, counts };
}

const require = createRequire(import.meta.url);
let version = 'unknown';
try {
  version = require('eventsource-parser/package.json').version;
} catch {
  // the package does not export package.json; the version stays unknown
}

for (const { stream, path } of files) {
  const bytes = readFileSync(path);
  const mbps = [];
  let events = -1;
  for (let run = -1; run < runs; run++) {
    const { seconds, counts } = decodeAndFeed(bytes);
    if (events >= 0 && counts.events !== events) throw new Error(`${stream}: event count changed between runs`);
    events = counts.events;
    if (run >= 0) mbps.push(bytes.length / 1e6 / seconds);
  }
  mbps.sort((a, b) => a - b);

  const decoder = new TextDecoder('utf-8');
  const strings = [];
  for (let off = 0; off < bytes.length; off += CHUNK) strings.push(decoder.decode(bytes.subarray(off, off + CHUNK), { stream: true }));
  const feedMbps = [];
  for (let run = -1; run < runs; run++) {
    const { seconds, counts } = feedOnly(strings);
    if (counts.events !== events) throw new Error(`${stream}: feed-only pass saw ${counts.events} events, not ${events}`);
    if (run >= 0) feedMbps.push(bytes.length / 1e6 / seconds);
  }
  feedMbps.sort((a, b) => a - b);

  const round = (x) => Math.round(x * 10) / 10;
  console.log(
    JSON.stringify({
      bench: 'sse_parse',
      impl: 'eventsource-parser',
      version,
      node: process.version,
      stream,
      bytes: bytes.length,
      events,
      chunk: CHUNK,
      runs,
      mb_per_s: round(median(mbps)),
      mb_per_s_min: round(mbps[0]),
      mb_per_s_max: round(mbps[mbps.length - 1]),
      feed_only_mb_per_s: round(median(feedMbps)),
    }),
  );
}
