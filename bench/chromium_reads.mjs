// bench/chromium_reads.mjs — where Chromium's fetch reader cuts an HTTP/1.1 chunked SSE body:
// for a write of N bytes of whole events, does some `reader.read()` chunk end mid-event?
//
//   node bench/chromium_reads.mjs [--head-reps N] [--reps N] [--long-mb M] [--head-bytes B]
//                                 [--sizes 250,512,...] [--only head,paced,flat,long] [--json FILE]
//
// A Node http server on 127.0.0.1 (ephemeral port) serves an empty page and a chunked
// text/event-stream body per request; Debian's Chromium (tests/browser/lib/browser.js, as the
// browser tests launch it) opens the page and reads each body with fetch + getReader(),
// recording every read() chunk's length. Events are OpenAI-shaped `data: {...}\n\n`, 220–300 B
// (seeded, so boundaries are not periodic); a write of cap S carries as many whole events as fit
// in S bytes (at least one: cap 250 is one event per write, the baseline). Each write is its own
// `res.write` in its own tick, so Node sends it as one writev (size line, data, CRLF). The
// response head is padded (an x-pad header) to --head-bytes, default 374: telex's own head for
// a streamed POST (measured), so the 4 KiB arithmetic below is telex's.
//
// Scenarios (each request is one scenario × one cap; --head-reps requests each for the head
// rows, default 20; --reps for paced and flat, default 3; the long stream once):
//   head+burst    writeHead and the first write in the same tick: head and burst in one writev
//   head, next    flushHeaders, then the burst on the next tick (setImmediate)
//   head, 10ms    flushHeaders, then the burst 10 ms later (the head read alone)
//   head, flat    head and first write together, then back-to-back writes up to 32 KiB
//   paced         flushHeaders; 10 ms later writes 10 ms apart (≤ 30 writes, ≤ 192 KiB)
//   flat          flushHeaders; 10 ms later writes back to back (each on the next tick, or
//                 after 'drain'), 512 KiB in all: the reader falls behind
//   long          flushHeaders; writes 1 ms apart up to --long-mb MiB (default 4.25), past the
//                 body data pipe's wrap points (Chromium's is a 2 MiB ring)
// A cut is a read() boundary that is not an event end (what the naive readers of
// tests/integration/lib/seed_clients.js cannot survive); a cut write is a write with a cut
// inside it. Per row: writes, reads, cut writes, and for the cuts: where in its write the cut
// fell (bytes of the write delivered before it, min–max) and the length of the read() chunk
// that ended there (min–max). "4K−head" is 4096 − head − the first size line: where the first
// read() ends if Chromium's 4 KiB head read also took body bytes. Cut body offsets of the long
// stream are printed below the table. Prints the table (markdown) on stdout, progress on
// stderr; --json FILE also writes every row with its cuts.
import http from 'node:http';
import fs from 'node:fs';
import { launch } from '../tests/browser/lib/browser.js';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const REPS = Number(opt('reps', 3));
const HEAD_REPS = Number(opt('head-reps', 20));
const HEAD_BYTES = Number(opt('head-bytes', 374));
const LONG_BYTES = Math.round(Number(opt('long-mb', 4.25)) * 1024 * 1024);
const SIZES = opt('sizes', '250,512,1024,2048,3072,4096,8192,16384').split(',').map(Number);
const ONLY = opt('only', 'head,paced,flat,long').split(',');
const JSON_OUT = opt('json', null);
const KiB = 1024;

// ---- events: deterministic, OpenAI-shaped, 220–300 bytes ----
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const WORDS = 'the of relay stream chunk event token gateway answer reader write socket pipe'.split(' ');
function eventSource(seed) {
  const r = rng(seed);
  let n = 0;
  return () => {
    const target = 220 + Math.floor(r() * 81);
    const head = `{"id":"chatcmpl-${seed}","object":"chat.completion.chunk","created":1765100000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"`;
    const tail = `"},"finish_reason":null}],"n":${n++}}`;
    const frame = (text) => `data: ${head}${text}${tail}\n\n`;
    let text = '';
    while (frame(text).length < target) text += WORDS[Math.floor(r() * WORDS.length)] + ' ';
    return Buffer.from(frame(text.slice(0, target - frame('').length)));
  };
}

// A writer of bursts of whole events: next() returns one Buffer ≤ cap (or one event if
// larger) and records the event ends and write ranges in body offsets.
function burstWriter(seed, cap) {
  const next = eventSource(seed);
  const rec = { eventEnds: [], writes: [], bytes: 0 };
  let pending = null;
  rec.next = () => {
    const parts = [];
    let len = 0;
    for (;;) {
      const ev = pending ?? next();
      pending = null;
      if (parts.length > 0 && len + ev.length > cap) {
        pending = ev;
        break;
      }
      parts.push(ev);
      len += ev.length;
      rec.eventEnds.push(rec.bytes + len);
    }
    rec.writes.push([rec.bytes, rec.bytes + len]);
    rec.bytes += len;
    return Buffer.concat(parts, len);
  };
  return rec;
}

// ---- the server: one plan per request id ----
const plans = new Map();
const HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' };
let baseHead = null; // Node's own head for HEADERS, measured by the warm-up request
const tick = () => new Promise((r) => setImmediate(r));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function serve(plan, res) {
  const w = plan.rec;
  const write = async (buf) => {
    if (!res.write(buf)) await new Promise((r) => res.once('drain', r));
  };
  const first = w.next();
  const pad = baseHead === null ? 0 : HEAD_BYTES - baseHead - 'x-pad: \r\n'.length;
  res.writeHead(200, pad > 0 ? { ...HEADERS, 'x-pad': 'x'.repeat(pad) } : HEADERS);
  baseHead ??= Buffer.byteLength(res._header);
  // what precedes the body on the wire: the head and the first write's chunk size line
  plan.headBytes = Buffer.byteLength(res._header) + first.length.toString(16).length + 2;
  const sc = plan.scenario;
  if (sc !== 'head+burst') {
    res.flushHeaders();
    if (sc === 'head, next') await tick();
    else if (sc !== 'head, flat') await sleep(10);
  }
  await write(first);
  if (sc === 'paced') {
    const n = Math.max(1, Math.min(30, Math.floor((192 * KiB) / plan.cap)));
    for (let i = 1; i < n; i++) {
      await sleep(10);
      await write(w.next());
    }
  } else if (sc === 'flat' || sc === 'head, flat') {
    const total = sc === 'flat' ? 512 * KiB : 32 * KiB;
    while (w.bytes < total) {
      await tick();
      await write(w.next());
    }
  } else if (sc === 'long') {
    while (w.bytes < LONG_BYTES) {
      await sleep(1);
      await write(w.next());
    }
  }
  await tick();
  res.end();
}

const server = http.createServer((req, res) => {
  const m = /^\/s\/(\d+)$/.exec(req.url);
  if (m && plans.has(m[1])) {
    serve(plans.get(m[1]), res).catch((e) => {
      console.error('server:', e);
      res.destroy();
    });
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end('<!doctype html><title>chromium_reads</title>');
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${server.address().port}`;

// ---- analysis of one request ----
function analyse(plan, lens) {
  const { eventEnds, writes, bytes } = plan.rec;
  const total = lens.reduce((a, b) => a + b, 0);
  if (total !== bytes) throw new Error(`${plan.scenario}/${plan.cap}: read ${total} of ${bytes} bytes`);
  const ends = new Set(eventEnds);
  const cuts = [];
  let off = 0;
  let wi = 0;
  for (const len of lens) {
    off += len;
    if (off === total || ends.has(off)) continue;
    while (writes[wi][1] <= off) wi++;
    cuts.push({ write: wi, into: off - writes[wi][0], readLen: len, offset: off });
  }
  return { writes: writes.length, events: eventEnds.length, reads: lens.length, cuts };
}

// ---- run ----
const browser = await launch();
const rows = [];
let id = 0;
let version = '';
try {
  const page = await browser.newPage();
  await page.goto(`${origin}/`);
  const readAll = (url) =>
    page.evaluate(async (u) => {
      const r = await fetch(u, { cache: 'no-store' });
      const reader = r.body.getReader();
      const lens = [];
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return lens;
        lens.push(value.byteLength);
      }
    }, url);

  const SCENARIOS = [
    ['head', 'head+burst', HEAD_REPS],
    ['head', 'head, next', HEAD_REPS],
    ['head', 'head, 10ms', HEAD_REPS],
    ['head', 'head, flat', HEAD_REPS],
    ['paced', 'paced', REPS],
    ['flat', 'flat', REPS],
    ['long', 'long', 1],
  ].filter(([group]) => ONLY.includes(group));

  // warm-up: opens the keep-alive connection and measures Node's head (baseHead) for the padding
  plans.set(String(++id), { scenario: 'head, 10ms', cap: 250, rec: burstWriter(1, 250) });
  await readAll(`/s/${id}`);
  plans.delete(String(id));
  const t0 = Date.now();
  for (const [, scenario, reps] of SCENARIOS) {
    for (const cap of SIZES) {
      const row = { scenario, cap, requests: reps, writes: 0, events: 0, reads: 0, cutWrites: 0, cuts: [], headBytes: [] };
      for (let rep = 0; rep < reps; rep++) {
        const plan = { scenario, cap, rec: burstWriter(1000 * cap + rep + 7 * id, cap) };
        plans.set(String(++id), plan);
        const lens = await readAll(`/s/${id}`);
        plans.delete(String(id));
        const a = analyse(plan, lens);
        row.writes += a.writes;
        row.events += a.events;
        row.reads += a.reads;
        row.cutWrites += new Set(a.cuts.map((c) => c.write)).size;
        row.cuts.push(...a.cuts);
        row.headBytes.push(plan.headBytes);
      }
      rows.push(row);
      process.stderr.write(`chromium_reads: ${scenario} cap ${cap}: ${row.cutWrites}/${row.writes} writes cut (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
    }
  }
  version = browser.context.browser()?.version() ?? '';
} finally {
  await browser.close();
  server.close();
}

// ---- report ----
const range = (xs) => (xs.length === 0 ? '–' : `${Math.min(...xs)}–${Math.max(...xs)}`);
const out = [];
out.push(`Chromium ${version}, ${new Date().toISOString()}, head ${HEAD_BYTES} B, reps ${HEAD_REPS} (head rows) / ${REPS}, long stream ${(LONG_BYTES / 1048576).toFixed(1)} MiB`);
out.push('');
out.push('| scenario | write cap (B) | writes | reads | cut writes | cut at (B into write) | read len at cut | 4K−head |');
out.push('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  const headCol = r.scenario.startsWith('head') ? String(4096 - Math.max(...r.headBytes)) : '';
  out.push(
    `| ${r.scenario} | ${r.cap} | ${r.writes} | ${r.reads} | ${r.cutWrites} | ${range(r.cuts.map((c) => c.into))} | ${range(r.cuts.map((c) => c.readLen))} | ${headCol} |`,
  );
}
const longRows = rows.filter((r) => r.scenario === 'long');
if (longRows.length) {
  out.push('');
  out.push('long stream, body offsets of the cuts (offset mod 2 MiB, the data pipe):');
  for (const r of longRows) {
    const offs = r.cuts.map((c) => `${c.offset} (${c.offset % (2048 * KiB)})`);
    out.push(`  cap ${r.cap}: ${offs.length ? offs.slice(0, 12).join(', ') + (offs.length > 12 ? `, … ${offs.length} in all` : '') : 'none'}`);
  }
}
console.log(out.join('\n'));
if (JSON_OUT) fs.writeFileSync(JSON_OUT, JSON.stringify({ version, reps: REPS, longBytes: LONG_BYTES, rows }, null, 1));
