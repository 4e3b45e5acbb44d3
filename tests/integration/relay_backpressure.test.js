// tests/integration/relay_backpressure.test.js — a client that reads slower than the
// provider writes: telex stops reading from the provider (curl pause) instead of
// buffering without bound, and resumes when the client catches up; the answer arrives
// complete and in order.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { sleep } from './lib/proc.js';
import { parseSSEText, contentOf } from './lib/sse.js';
import { chatBody, entriesSince, lastSeq, startRelay } from './lib/relay.js';

let relay;
before(async () => {
  relay = await startRelay();
});
after(async () => {
  if (relay) await relay.stop();
});

describe('back-pressure', () => {
  test('a client that stops reading pauses the provider; reading again completes the answer', async (t) => {
    // ~26 MB of chunks, sent as fast as the mock can: more than the loopback socket
    // buffers on the way (which autotune to several MB) and far more than telex's
    // per-stream limit (a few MB), so without pausing the provider telex would have
    // to end the stream (client_too_slow)
    const tokens = 100000;
    const since = await lastSeq(relay.mock);
    const body = JSON.stringify(chatBody({ tokens, delay_ms: 0, seed: 5 }));
    const res = await new Promise((resolve, reject) => {
      const req = http.request(`${relay.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      });
      req.on('response', resolve);
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(res.statusCode, 200);
    res.pause(); // read nothing for a while
    // the provider's progress comes to a standstill, short of the end
    let prev = -1;
    let entry;
    for (let i = 0; i < 40; i++) {
      await sleep(250);
      [entry] = await entriesSince(relay.mock, since);
      if (entry.content_events === prev) break;
      prev = entry.content_events;
    }
    t.diagnostic(`the provider stopped after ${entry.content_events} of ${tokens} chunks`);
    assert.equal(entry.content_events, prev, 'the provider stopped sending while the client did not read');
    assert.ok(entry.content_events < tokens, `paused short of the end (${entry.content_events} of ${tokens})`);
    assert.equal(entry.completed, false);
    const line = relay.serve.logs.find((l) => l.msg === 'request');
    assert.equal(line, undefined, 'the stream is still alive (not ended as client_too_slow)');
    // now read everything
    const parts = [];
    res.on('data', (d) => parts.push(d));
    res.resume();
    await new Promise((resolve, reject) => {
      res.on('end', resolve);
      res.on('error', reject);
    });
    const events = parseSSEText(Buffer.concat(parts).toString());
    assert.equal(events.at(-1).data, '[DONE]');
    assert.equal(events.length, 1 + tokens + 1 + 1);
    assert.equal(contentOf(events).split(' ').length, tokens);
    const [done] = await entriesSince(relay.mock, since);
    assert.equal(done.completed, true);
  });
});
