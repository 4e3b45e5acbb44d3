// bench/stalled_bench.mjs — what a client that never reads costs the gateway (issue 18,
// item 3), side by side in one run: resume on with the default budget, resume on with a
// small global budget (resume.max_total_bytes), and resume off.
//
//   TELEX_BIN=build/telex node bench/stalled_bench.mjs OUT_MARKDOWN [--readers 50] [--quick]
//
// For each setting a fresh `telex serve` (2 workers) in front of a fresh `telex mock`
// (started here on loopback, stopped by PID). After a warm-up answer, N clients POST a
// streamed chat of 100,000 chunks (~15 MB) and never read. When the mock's count of chunks
// sent stops moving (every provider paused by back-pressure), VmRSS of telex
// (/proc/PID/status) is compared with its VmRSS before, and the telex_stream_log_bytes gauge
// is read. Reported per stalled reader: RSS growth / N and log bytes / N; also the chunks
// each provider had sent when it was paused (what the socket buffers on the way hold, which
// is kernel memory, not telex's). Writes a markdown section to OUT_MARKDOWN and prints one
// JSON line per setting.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.env.TELEX_BIN ??= path.join(ROOT, 'build/telex');
const { startRelay, lastSeq } = await import('../tests/integration/lib/relay.js');
const { postUnread: post, readBody, rssOf, waitProvidersPaused } = await import('../tests/integration/lib/stalled.js');

const args = process.argv.slice(2);
const OUT = args[0];
if (!OUT) {
  console.error('usage: stalled_bench.mjs OUT_MARKDOWN [--readers N] [--quick]');
  process.exit(64);
}
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const QUICK = args.includes('--quick');
const READERS = Number(opt('readers', QUICK ? 10 : 50));
const TOKENS = 100000;
const MiB = 1024 * 1024;
const log = (...a) => console.error('stalled_bench:', ...a);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const chat = (mock) => JSON.stringify({ model: 'gpt-relay', messages: [{ role: 'user', content: 'x' }], stream: true, mock });

async function measure(name, resume) {
  const relay = await startRelay({
    config: { resume, streaming: { idle_timeout_seconds: 120 }, workers: 2 },
    env: { TELEX_LOG: 'quiet' },
  });
  try {
    await readBody(await post(relay.url, chat({ tokens: 2000, delay_ms: 0 })));
    await sleep(500);
    const base = rssOf(relay.serve.pid);
    const since = await lastSeq(relay.mock);
    const stalled = [];
    for (let i = 0; i < READERS; i++) stalled.push(await post(relay.url, chat({ tokens: TOKENS, delay_ms: 0, seed: i })));
    const entries = await waitProvidersPaused(relay.mock, since, {
      tokens: TOKENS,
      count: READERS,
      timeoutMs: 300000,
      message: `${name}: every provider to pause`,
    });
    const grown = rssOf(relay.serve.pid) - base;
    const metrics = await (await fetch(`${relay.url}/metrics`)).text();
    const logBytes = Number(/^telex_stream_log_bytes (\d+)/m.exec(metrics)?.[1] ?? NaN);
    const sent = entries.map((e) => e.content_events).sort((a, b) => a - b);
    for (const r of stalled) r.destroy();
    const row = {
      name,
      readers: READERS,
      rss_growth_bytes: grown,
      rss_per_reader_kib: grown / READERS / 1024,
      log_bytes: logBytes,
      log_per_reader_kib: logBytes / READERS / 1024,
      median_chunks_sent: sent[Math.floor(sent.length / 2)],
      completed: entries.filter((e) => e.completed).length,
    };
    console.log(JSON.stringify(row));
    return row;
  } finally {
    await relay.stop().catch(() => {});
  }
}

const rows = [];
rows.push(await measure('resume on, `max_total_bytes` 256 MiB (default)', { enabled: true }));
rows.push(await measure('resume on, `max_total_bytes` 16 MiB', { enabled: true, max_total_bytes: 16 * MiB }));
rows.push(await measure('resume off', { enabled: false }));

const md = [
  '## Stalled readers',
  '',
  `${READERS} clients each ask for a 100,000-chunk answer (~15 MB) and never read (bench/stalled_bench.mjs;`,
  'resume.max_bytes at its default, 8 MiB). Growth of telex\'s RSS once every provider is paused,',
  'per reader, and what all stream logs hold (`telex_stream_log_bytes`). Before issue 18 a stalled',
  'reader with resume on cost ~7.3 MB (its log grew to `max_bytes` minus the pause margin); now the',
  'provider is paused once the reader lags 256 KiB, and the total is bounded by',
  '`resume.max_total_bytes` ([memory.md](memory.md)). What the provider sent before the pause beyond',
  'that sits in the sockets\' kernel buffers on the way (not telex\'s memory); with resume on, what',
  'the client connection\'s buffers took counts as sent and stays in the log as history for a resume',
  '(the first row: ~2.3 MB of each reader\'s 2.6 MiB), within `resume.max_bytes` per stream and',
  '`resume.max_total_bytes` for all (the second row).',
  '',
  '| setting | RSS / reader | logs / reader | chunks sent before the pause (median) | answers completed |',
  '|---|---:|---:|---:|---:|',
  ...rows.map(
    (r) =>
      `| ${r.name} | ${r.rss_per_reader_kib.toFixed(0)} KiB | ${r.log_per_reader_kib.toFixed(0)} KiB | ${r.median_chunks_sent} | ${r.completed} of ${r.readers} |`,
  ),
  '',
  `Measured ${new Date().toISOString().slice(0, 10)} on ${os.cpus().length} cores (shared with other work while measured).`,
  '',
].join('\n');
fs.writeFileSync(OUT, md);
log(`wrote ${OUT}`);
process.exit(0);
