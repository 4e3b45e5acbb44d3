// tests/integration/memory_stalled.test.js — clients that never read, with resume on (issue
// 18, item 3): what they cost is bounded (a reader lagging HIGH_WATER behind pauses its
// provider; all streams' logs together stay under resume.max_total_bytes, beyond which each
// stream keeps only what its readers lag), and a client that does read keeps streaming to
// its [DONE] meanwhile. Bounds are computed from the config, never from a timing.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { SANITIZED, waitFor } from './lib/proc.js';
import { SLACK, chatBody, lastSeq, startRelay } from './lib/relay.js';
import { contentOf, parseSSEText } from './lib/sse.js';
import { postUnread as post, readBody, rssOf, waitProvidersPaused } from './lib/stalled.js';

const MiB = 1 << 20;
const STALLED = 32;
const TOTAL = 8 * MiB; // resume.max_total_bytes for this gateway
// What one stalled stream may cost beyond the logs' budget: its lag (HIGH_WATER, 256 KiB),
// what the provider's last read still delivers after the pause, the request's and the
// upstream connection's buffers — generously.
const PER_STREAM = 1 * MiB;
// The process's fixed growth under load (malloc arenas of the worker threads, h2o's pools).
const FIXED = 32 * MiB;

const readAll = async (res) => parseSSEText((await readBody(res)).toString());

let relay;
before(async () => {
  relay = await startRelay({ config: { resume: { max_total_bytes: TOTAL }, streaming: { idle_timeout_seconds: 60 } } });
});
after(async () => {
  if (relay) await relay.stop();
});

describe('stalled readers', { skip: SANITIZED && 'RSS under ASan measures the sanitizer, not telex' }, () => {
  test('cost a bounded amount each and all together; a reading client keeps streaming', async (t) => {
    // warm up: one whole answer, so the baseline has the worker threads' arenas
    await readAll(await post(relay.url, JSON.stringify(chatBody({ tokens: 2000, delay_ms: 0 }))));
    const base = rssOf(relay.serve.pid);
    const since = await lastSeq(relay.mock);
    // each answer is ~15 MB: far more than any bound here, so only back-pressure stops it
    const stalled = [];
    for (let i = 0; i < STALLED; i++)
      stalled.push(await post(relay.url, JSON.stringify(chatBody({ tokens: 100000, delay_ms: 0, seed: i }))));
    for (const res of stalled) assert.equal(res.statusCode, 200);
    // every provider comes to a standstill short of its end: the mock's count of chunks sent
    // is the same at two looks 500 ms apart (on a loaded machine the sockets on the way can take
    // a while to fill)
    const entries = await waitProvidersPaused(relay.mock, since, {
      tokens: 100000,
      count: STALLED,
      timeoutMs: 180000 * SLACK,
      message: 'every stalled stream to pause its provider',
    });
    for (const e of entries) assert.equal(e.completed, false, 'paused short of the end');
    const grown = rssOf(relay.serve.pid) - base;
    const bound = TOTAL + STALLED * PER_STREAM + FIXED;
    t.diagnostic(
      `${STALLED} stalled readers: RSS +${(grown / MiB).toFixed(1)} MiB (${(grown / STALLED / 1024).toFixed(0)} KiB each), ` +
        `bound ${(bound / MiB).toFixed(0)} MiB; chunks sent before the pause: ${entries.map((e) => e.content_events).join(' ')}`,
    );
    assert.ok(grown < bound, `RSS grew ${grown} bytes with ${STALLED} stalled readers (bound ${bound})`);

    // a client that reads gets its whole answer while the stalled ones hold their logs
    const events = await readAll(await post(relay.url, JSON.stringify(chatBody({ tokens: 3000, delay_ms: 0, seed: 99 }))));
    assert.equal(events.at(-1).data, '[DONE]');
    assert.equal(contentOf(events).split(' ').length, 3000);

    // the stalled ones, read now, are complete and in order
    const first = await readAll(stalled[0]);
    assert.equal(first.at(-1).data, '[DONE]');
    assert.equal(contentOf(first).split(' ').length, 100000);
    for (const res of stalled.slice(1)) res.destroy();
  });
});

describe('the global budget and ended answers', () => {
  const BUDGET = 2 * MiB;
  let r2;
  before(async () => {
    r2 = await startRelay({ config: { workers: 1, resume: { max_total_bytes: BUDGET, retention_seconds: 300 } } }); // one worker: one sweep, oldest first
  });
  after(async () => {
    if (r2) await r2.stop();
  });

  const gauge = async () =>
    Number(/^telex_stream_log_bytes (\d+)/m.exec(await (await fetch(`${r2.url}/metrics`)).text())[1]);
  const replayStatus = (sid) =>
    new Promise((resolve, reject) => {
      http
        .get(`${r2.url}/v1/streams/${sid}`, { headers: { accept: 'text/event-stream' } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        })
        .on('error', reject);
    });

  test('ended answers nobody reads lose their history, oldest first, until the logs fit', async (t) => {
    // five answers of ~450 KB each, read to their end: 2.2 MB of history, over the 2 MiB budget
    const sids = [];
    for (let i = 0; i < 5; i++) {
      const res = await post(r2.url, JSON.stringify(chatBody({ tokens: 3000, delay_ms: 0, seed: i })));
      sids.push(res.headers['x-telex-stream-id']);
      const events = await readAll(res);
      assert.equal(events.at(-1).data, '[DONE]');
    }
    // the workers' sweep (every 500 ms) brings the total back under the budget
    const total = await waitFor(async () => {
      const g = await gauge();
      return g <= BUDGET && g;
    }, { message: 'the logs to fit the budget' });
    t.diagnostic(`logs hold ${total} bytes (budget ${BUDGET})`);
    // the oldest lost its history (410); the newest is still whole
    // oldest first: some 410s (history dropped), then 200s; the newest is whole
    const statuses = [];
    for (const sid of sids) statuses.push(await replayStatus(sid));
    t.diagnostic(`replays: ${JSON.stringify(statuses)}`);
    assert.equal(statuses[0], 410);
    assert.equal(statuses.at(-1), 200);
    const firstWhole = statuses.indexOf(200);
    assert.ok(statuses.slice(firstWhole).every((s) => s === 200), 'no older answer kept over a newer one');
  });
});
