// tests/integration/relay_backpressure.test.js — a client that reads slower than the
// provider writes: telex stops reading from the provider instead of buffering without
// bound, and resumes when the client catches up; the answer arrives complete and in
// order — also when the client pauses for longer than the idle timeout and the provider
// packs hundreds of events into each write.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { sleep, waitFor } from './lib/proc.js';
import { parseSSEText, contentOf } from './lib/sse.js';
import { SLACK, baseConfig, chatBody, entriesSince, lastSeq, logBarrier, startRelay, startStub } from './lib/relay.js';

// A provider that writes 500 events per write, 60,000 in all, as fast as the socket takes them.
const EVENTS = 60000;
const chunk = (i) =>
  `data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"w${i} "},"finish_reason":null}]}\n\n`;
function batchy(req, res) {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  let i = 0;
  const pump = () => {
    while (i < EVENTS) {
      let s = '';
      for (let k = 0; k < 500; k++) s += chunk(i++);
      if (!res.write(s)) {
        res.once('drain', pump);
        return;
      }
    }
    res.end(
      'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n',
    );
  };
  pump();
}

// POSTs body to the relay; resolves with the response, unread.
const post = (body) =>
  new Promise((resolve, reject) => {
    const req = http.request(`${relay.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    req.on('response', resolve);
    req.on('error', reject);
    req.end(body);
  });

// Reads a paused response to its end; resolves with its events.
async function readAll(res) {
  const parts = [];
  res.on('data', (d) => parts.push(d));
  res.resume();
  await new Promise((resolve, reject) => {
    res.on('end', resolve);
    res.on('error', reject);
  });
  return parseSSEText(Buffer.concat(parts).toString());
}

let relay;
let stub;
before(async () => {
  stub = await startStub(batchy);
  relay = await startRelay({
    config: (mockUrl) => {
      const cfg = baseConfig(mockUrl); // streaming.idle_timeout_seconds: 1.5
      cfg.providers.push({ name: 'batchy', kind: 'openai', base_url: `${stub.url}/v1`, api_key: 'sk-stub' });
      cfg.models.push({ name: 'batchy', providers: [{ provider: 'batchy', model: 'b' }] });
      return cfg;
    },
  });
});
after(async () => {
  if (relay) await relay.stop();
  if (stub) await stub.close();
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
    const res = await post(body);
    assert.equal(res.statusCode, 200);
    res.pause(); // read nothing for a while
    // the provider's progress comes to a standstill, short of the end: no new chunk between two
    // looks 250 ms apart (a machine too busy to send one in 250 ms can only end this early, short
    // of the end all the same)
    let prev = -1;
    const entry = await waitFor(
      async () => {
        const [e] = await entriesSince(relay.mock, since);
        const still = e.content_events === prev;
        prev = e.content_events;
        return still && e;
      },
      { intervalMs: 250, timeoutMs: 30000 * SLACK, message: 'the provider to stop sending' },
    );
    t.diagnostic(`the provider stopped after ${entry.content_events} of ${tokens} chunks`);
    assert.ok(entry.content_events < tokens, `paused short of the end (${entry.content_events} of ${tokens})`);
    assert.equal(entry.completed, false);
    await logBarrier(relay.serve); // a line logged by now is on stderr
    const line = relay.serve.logs.find((l) => l.msg === 'request' && l.path === '/v1/chat/completions');
    assert.equal(line, undefined, 'the stream is still alive (not ended as client_too_slow)');
    // now read everything
    const events = await readAll(res);
    assert.equal(events.at(-1).data, '[DONE]');
    assert.equal(events.length, 1 + tokens + 1 + 1);
    assert.equal(contentOf(events).split(' ').length, tokens);
    const [done] = await entriesSince(relay.mock, since);
    assert.equal(done.completed, true);
  });

  test('a pause longer than the idle timeout is not an idle provider (many events per read)', async () => {
    // telex pauses the provider in the middle of a read that holds hundreds of events; the
    // events parsed after the pause must not count as provider activity that keeps the
    // idle deadline going, nor must the pause itself end the answer as idle_timeout
    const body = JSON.stringify(chatBody({}, { model: 'batchy' }));
    const res = await post(body);
    assert.equal(res.statusCode, 200);
    res.pause();
    // Proves a negative (the pause is not taken for an idle provider), so it has to wait: more
    // than idle_timeout_seconds (1.5) twice over; a slower machine only waits longer.
    await sleep(3500);
    const events = await readAll(res);
    assert.equal(events.at(-1).data, '[DONE]', `ended with ${events.at(-1).data.slice(0, 120)}`);
    assert.equal(events.length, EVENTS + 2);
  });
});
