// tests/integration/resume_subscribers.test.js — several clients on one answer (two tabs).
//
//  - the original client and a GET attached from the start mid-answer receive byte-identical
//    bodies; an attach with Last-Event-ID k receives exactly the original's events after k;
//  - two GET attaches at once, and 10 attaches on fresh connections spread over two workers
//    (plus one over HTTP/2), all identical to the original from their start points;
//  - a subscriber that stops reading holds nobody else back: the others finish on time;
//  - a reader slower than the provider for longer than idle_timeout still gets the whole answer
//    (the idle deadline once ran while telex itself had paused the provider for back-pressure).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { sleep } from './lib/proc.js';
import { LATE_MS, curl, entriesSince, lastSeq, startRelay } from './lib/relay.js';
import { parseSSEText } from './lib/sse.js';
import { assertExact, eventIds, openAnswer, resumeConfig, resumeGet, withoutRetry } from './lib/resume.js';

let relay;
before(async () => {
  relay = await startRelay({ config: resumeConfig({ workers: 2 }) });
});
after(async () => {
  if (relay) await relay.stop();
});

// Starts an answer and resolves, once its first `k` events are in, with {sid, done}: `done`
// resolves with the original client's whole reply.
function startAnswer(mockKnobs, k = 3, target = relay) {
  return new Promise((resolve, reject) => {
    let sid = null;
    const done = openAnswer(target, mockKnobs, {
      onEvent: (e, events) => {
        if (events.length === k) {
          sid = e.id.split('.')[0];
          resolve({ sid, done });
        }
      },
    });
    done.then((r) => (sid ? null : reject(new Error(`the answer ended before ${k} events: ${r.status}`))));
  });
}

describe('several subscribers on one answer', () => {
  test('original and an attach from the start mid-answer: byte-identical bodies', async () => {
    const { sid, done } = await startAnswer({ tokens: 40, delay_ms: 15 }, 5);
    const attach = resumeGet(relay, sid);
    const tail = resumeGet(relay, sid, { lastEventId: `${sid}.5` });
    const [orig, a, b] = await Promise.all([done, attach, tail]);
    assert.ok(orig.complete && a.complete && b.complete);
    assert.equal(orig.events.length, 43);
    assert.ok(a.raw.equals(orig.raw), 'the attach from 0 received exactly the same bytes');
    // (an attach after event 1 opens with its own retry: field; the events are the same)
    assert.deepEqual(withoutRetry(b.events), withoutRetry(orig.events.slice(5)));
    // both attaches were live, not replays of a finished answer
    assert.ok(a.events.length === 43 && b.events.at(-1).data === '[DONE]');
  });

  test('two GET attaches at once and the original: identical sequences', async () => {
    const { sid, done } = await startAnswer({ tokens: 60, delay_ms: 10 }, 2);
    const [x, y] = await Promise.all([resumeGet(relay, sid), resumeGet(relay, sid)]);
    const orig = await done;
    assert.ok(x.raw.equals(y.raw));
    assert.ok(x.raw.equals(orig.raw));
    assert.deepEqual(
      orig.events.map((e) => e.id),
      eventIds(sid, 1, 63),
    );
  });

  test('10 attaches on fresh connections over two workers, and one over HTTP/2', async () => {
    const { sid, done } = await startAnswer({ tokens: 80, delay_ms: 10 }, 3);
    const ks = [0, 1, 2, 3, 3, 2, 1, 0, 3, 2];
    const attaches = ks.map((k) => resumeGet(relay, sid, k ? { lastEventId: `${sid}.${k}` } : {}));
    const h2 = curl(['--http2-prior-knowledge', '-N', '-H', 'accept: text/event-stream', `${relay.url}/v1/streams/${sid}`]);
    const [orig, ...replies] = await Promise.all([done, ...attaches]);
    replies.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.ok(r.complete);
      assertExact([orig.events.slice(0, ks[i]), r.events], orig.events, sid, `attach ${i} from ${ks[i]}`);
    });
    const h2r = await h2;
    assert.equal(h2r.code, 0, h2r.err);
    assert.equal(h2r.out, orig.text, 'HTTP/2 attach: the same bytes');
  });

  test('a subscriber that stops reading holds nobody back', async () => {
    const mock = { tokens: 200, delay_ms: 5 };
    const { sid, done } = await startAnswer(mock, 2);
    // A second subscriber that reads the headers and then nothing at all.
    const stuck = await new Promise((resolve, reject) => {
      const req = http.get(`${relay.url}/v1/streams/${sid}`, { agent: false, headers: { accept: 'text/event-stream' } });
      req.on('response', (res) => {
        res.pause();
        resolve({ req, res });
      });
      req.on('error', reject);
    });
    const t0 = performance.now();
    const orig = await done;
    const took = performance.now() - t0;
    assert.ok(orig.complete);
    assert.equal(orig.events.at(-1).data, '[DONE]');
    // at the mock's pace (200 x 5 ms), not held until the stuck one reads (it reads only after this)
    assert.ok(took < 200 * 5 + LATE_MS, `the original finished in ${took.toFixed(0)} ms`);
    // the stuck one can still read it all afterwards
    const parts = [];
    stuck.res.on('data', (d) => parts.push(d));
    stuck.res.resume();
    await new Promise((r) => stuck.res.on('end', r));
    assert.equal(Buffer.concat(parts).toString(), orig.text);
  });
});

describe('slow readers and the idle timeout', () => {
  // A log of at most 512 KiB (pause above ~430 KiB) and the default test idle timeout of 1.5 s.
  // The same without resume (the plain relay pauses above 256 KiB of backlog).
  const gateways = {};
  before(async () => {
    gateways.resume = await startRelay({
      mock: relay.mock,
      config: resumeConfig({ limits: { max_event_bytes: 16384 }, resume: { max_bytes: 524288 } }),
    });
    gateways.plain = await startRelay({ mock: relay.mock, config: resumeConfig({ resume: { enabled: false } }) });
  });
  after(async () => {
    for (const g of Object.values(gateways)) await g.stop();
  });

  for (const which of ['resume', 'plain'])
    test(
    `${which}: a client that stops reading for 2 x idle_timeout, then reads: the whole answer`,
    async () => {
      const since = await lastSeq(relay.mock);
      const res = await new Promise((resolve, reject) => {
        const req = http.request(`${gateways[which].url}/v1/chat/completions`, {
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json' },
        });
        req.on('response', resolve);
        req.on('error', reject);
        req.end(JSON.stringify({ model: 'gpt-relay', messages: [{ role: 'user', content: 'slow' }], stream: true, mock: { tokens: 100000, delay_ms: 0 } }));
      });
      res.pause();
      // Proves a negative (the pause is not taken for an idle provider), so it has to wait: at
      // least 2 x idle_timeout_seconds (1.5) of not reading; a slower machine only waits longer.
      await sleep(3500);
      const [entry] = await entriesSince(relay.mock, since);
      assert.ok(entry.content_events < 100000, 'the upstream was paused');
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.resume();
      await new Promise((r) => res.on('end', r));
      const events = parseSSEText(Buffer.concat(parts).toString());
      assert.equal(events.at(-1).data, '[DONE]', `ends with ${events.at(-1).data.slice(0, 160)}`);
      assert.equal(events.length, 100003);
    },
  );
});
