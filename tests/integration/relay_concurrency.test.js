// tests/integration/relay_concurrency.test.js — many streams at once: 200 concurrent
// streams all complete intact (each its own text, in order, ending with [DONE]), and
// failing streams next to healthy ones do not disturb each other; after a burst ends
// the worker trims its heap once.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { chunksOf, contentOf, postChat } from './lib/sse.js';
import { SLACK, chatBody, entriesSince, lastSeq, requestLogs, startRelay } from './lib/relay.js';
import { waitFor } from './lib/proc.js';

let relay;
before(async () => {
  relay = await startRelay();
});
after(async () => {
  if (relay) await relay.stop();
});

describe('concurrency', () => {
  test('200 concurrent streams all complete intact', async () => {
    const n = 200;
    const body = (i, delay) => chatBody({ tokens: 10, delay_ms: delay, seed: 1000 + i });
    const expected = await Promise.all(
      Array.from({ length: n }, async (_, i) => contentOf((await postChat(relay.mock.url, { ...body(i, 0), model: 'x' })).events)),
    );
    assert.equal(new Set(expected).size, n, 'every stream has its own text');
    const since = await lastSeq(relay.mock);
    const logsBefore = requestLogs(relay.serve).length;
    const results = await Promise.all(Array.from({ length: n }, (_, i) => postChat(relay.url, body(i, 30), { timeoutMs: 30000 * SLACK })));
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, 200, `stream ${i}`);
      assert.equal(r.error, null, `stream ${i}: ${r.error}`);
      assert.equal(r.events.length, 1 + 10 + 1 + 1, `stream ${i}`);
      assert.equal(r.events.at(-1).data, '[DONE]', `stream ${i}`);
      assert.equal(contentOf(r.events), expected[i], `stream ${i} has its own text, intact`);
      const ids = new Set(chunksOf(r.events).map((c) => c.id));
      assert.equal(ids.size, 1, `stream ${i}: chunks of one answer only`);
    }
    const seen = await entriesSince(relay.mock, since);
    assert.equal(seen.length, n);
    assert.ok(seen.every((e) => e.completed && !e.client_gone));
    // they ran concurrently: the mock had many in flight at once (one at a time: never two),
    // counted on its journal's clock rather than by how long the whole took
    const inFlight = (t) => seen.filter((e) => e.received_ms <= t && t < e.ended_ms).length;
    const most = Math.max(...seen.map((e) => inFlight(e.received_ms)));
    assert.ok(most >= n / 4, `at most ${most} of ${n} streams in flight at once`);
    await waitFor(() => requestLogs(relay.serve).length >= logsBefore + n, { timeoutMs: 5000 * SLACK });
    const lines = requestLogs(relay.serve).slice(logsBefore);
    assert.equal(lines.filter((l) => l.outcome === 'ok' && l.status === 200).length, n);
  });

  test('after a burst of 600 streams ends, the worker gives freed heap back (one trim)', async () => {
    // one worker, no resume: every chat ends with its answer, so the worker's
    // stream count falls from ~600 to 0 and the sweep trims the heap once
    const solo = await startRelay({ config: { workers: 1, resume: { enabled: false } } });
    try {
      const n = 600;
      const results = await Promise.all(
        Array.from({ length: n }, (_, i) => postChat(solo.url, chatBody({ tokens: 10, delay_ms: 150, seed: i }), { timeoutMs: 30000 * SLACK })),
      );
      assert.ok(results.every((r) => r.status === 200 && r.events.at(-1)?.data === '[DONE]'));
      const trims = () => solo.serve.logs.filter((l) => l.msg === 'heap trimmed');
      await waitFor(() => trims().length > 0, { timeoutMs: 5000 * SLACK, message: 'a heap trimmed line' });
      const [t] = trims();
      assert.ok(t.peak >= 512 && t.streams <= t.peak / 2, JSON.stringify(t));
      // the line carries the trim's duration as a number (a missing or garbled field fails)
      assert.ok(typeof t.ms === 'number' && Number.isFinite(t.ms) && t.ms >= 0, JSON.stringify(t));
      // no second trim without a new burst: the only way to see nothing more happen is to wait a
      // while (two more sweeps); the count keeps falling meanwhile, which must not trim again
      await new Promise((r) => setTimeout(r, 1200));
      assert.equal(trims().length, 1);
    } finally {
      await solo.stop();
    }
  });

  test('failing streams next to healthy ones do not disturb them', async () => {
    const n = 60;
    const kinds = ['ok', 'cut', 'bad_json', 'status'];
    const mockOf = (kind, i) =>
      ({
        ok: { tokens: 8, delay_ms: 20, seed: i },
        cut: { tokens: 8, delay_ms: 20, cut_after: 3, seed: i },
        bad_json: { tokens: 8, delay_ms: 20, invalid_json_after: 2, seed: i },
        status: { status: 503 },
      })[kind];
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => postChat(relay.url, chatBody(mockOf(kinds[i % 4], i)), { timeoutMs: 20000 * SLACK })),
    );
    for (const [i, r] of results.entries()) {
      const kind = kinds[i % 4];
      if (kind === 'ok') {
        assert.equal(r.events.at(-1).data, '[DONE]', `healthy stream ${i}`);
        assert.equal(contentOf(r.events).split(' ').length, 8);
      } else if (kind === 'status') {
        assert.equal(r.status, 502, `stream ${i}`);
      } else {
        const last = JSON.parse(r.events.at(-1).data);
        assert.equal(last.error.code, kind, `stream ${i}`);
        assert.ok(!r.events.some((e) => e.data === '[DONE]'));
      }
    }
  });
});
