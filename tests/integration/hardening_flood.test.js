// tests/integration/hardening_flood.test.js — connection exhaustion (issue 18, item 2).
//
// One client address cannot take all of the gateway's connections: beyond
// limits.max_connections_per_client its connections are closed at accept, beyond
// limits.max_unfinished_requests_per_client its half-sent requests get 429; a request
// head must be complete within limits.header_timeout_seconds, while a body may take up
// to limits.body_timeout_seconds. And while a flood of slow connections from one
// address is in progress, a keyed client elsewhere still gets its stream.
//
// The flood comes from 127.0.0.2 (all of 127/8 is loopback on Linux), the real client
// from 127.0.0.1. limits.max_connections is below the flood's size, so without the
// per-client limit the flood alone would fill the gateway.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { LATE_MS, SYNC_TIMEOUT_MS, TELEX_BIN, waitFor } from './lib/proc.js';
import { SANITIZER_ENV, chatBody, startRelay, tmpDir } from './lib/relay.js';
import { postChat, contentOf } from './lib/sse.js';
import { connect } from './lib/raw_http.js';

function createKey(dbPath, name) {
  const r = spawnSync(TELEX_BIN, ['keys', 'create', '--name', name], {
    env: { ...process.env, TELEX_DB: dbPath, ...SANITIZER_ENV },
    encoding: 'utf8',
    timeout: SYNC_TIMEOUT_MS,
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

const FLOOD = '127.0.0.2';
const PER_CLIENT = 40;
const HEADER_TIMEOUT_S = 1;

let relay;
let key;
before(async () => {
  const dbPath = path.join(tmpDir(), 'telex.db');
  key = createKey(dbPath, 'alice');
  relay = await startRelay({
    env: { TELEX_DB: dbPath },
    config: {
      store: { path: dbPath },
      limits: {
        max_connections: 100,
        max_connections_per_client: PER_CLIENT,
        max_unfinished_requests_per_client: 20,
        header_timeout_seconds: HEADER_TIMEOUT_S,
        body_timeout_seconds: 30,
      },
    },
  });
});
after(async () => {
  if (relay) await relay.stop();
});

const partialHead = 'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n';

describe('a flood of slow connections from one address', () => {
  test('is capped per address, and a keyed stream from elsewhere is served meanwhile', async () => {
    // 150 connections, each sending half a head and then nothing (slowloris)
    const flood = await Promise.all(Array.from({ length: 150 }, () => connect(relay.url, { localAddress: FLOOD })));
    await Promise.all(flood.map((c) => c.write('G')));
    // the ones over the per-client limit are closed by the gateway at once
    let closedCount = 0;
    for (const c of flood) c.closed.then(() => closedCount++);
    await waitFor(() => closedCount >= 150 - PER_CLIENT, { message: `${150 - PER_CLIENT} flood connections closed` });
    const open = flood.filter((c) => c.socket.readyState === 'open');
    assert.ok(open.length <= PER_CLIENT, `${open.length} flood connections still open`);
    assert.ok(open.length > 0, 'the first ones stay (until the header timeout)');

    const r = await postChat(relay.url, chatBody({ tokens: 5 }), { headers: { authorization: `Bearer ${key}` } });
    assert.equal(r.status, 200, String(r.error ?? r.text));
    assert.ok(contentOf(r.events).length > 0, 'the answer streamed');
    for (const c of flood) c.destroy();
  });

  test('half-sent requests beyond max_unfinished_requests_per_client get 429', async () => {
    const conns = [];
    for (let i = 0; i < 25; i++) {
      const c = await connect(relay.url, { localAddress: '127.0.0.3' });
      await c.write(partialHead);
      conns.push(c);
    }
    const answered = [];
    for (const c of conns) c.response().then((r) => r && answered.push(r));
    await waitFor(() => answered.length >= 5, { message: '5 refusals' });
    for (const r of answered) {
      assert.equal(r.status, 429);
      assert.equal(r.json().error.code, 'too_many_unfinished_requests');
    }
    for (const c of conns) c.destroy();
  });
});

test('the header timeout is shorter than the body timeout', async () => {
  const t0 = performance.now();
  const slowHead = await connect(relay.url, { localAddress: '127.0.0.4' });
  await slowHead.write(partialHead);
  const slowBody = await connect(relay.url, { localAddress: '127.0.0.4' });
  await slowBody.write(`${partialHead}Authorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`);
  await slowHead.closed;
  const took = performance.now() - t0;
  assert.ok(took >= HEADER_TIMEOUT_S * 1000 - 50, `closed after ${took} ms`);
  assert.ok(took < HEADER_TIMEOUT_S * 1000 + 1000 + LATE_MS, `closed after ${took} ms`);
  // the connection whose head was complete is still open: its body may take 30 s
  assert.equal(slowBody.socket.readyState, 'open');
  assert.equal(slowBody.data().length, 0);
  slowBody.destroy();
});

test('after a burst of connections ends, the worker gives freed heap back', async () => {
  // 700 idle connections on one worker, closed by the gateway's header timeout (1 s): they are
  // open for at least a second, so the 500 ms sweep sees the peak before the fall
  const solo = await startRelay({ config: { workers: 1, limits: { header_timeout_seconds: 1 } } });
  try {
    const conns = await Promise.all(Array.from({ length: 700 }, () => connect(solo.url)));
    await Promise.all(conns.map((c) => c.closed));
    const trims = () => solo.serve.logs.filter((l) => l.msg === 'heap trimmed' && l.connections !== undefined);
    await waitFor(() => trims().length > 0, { message: 'a heap trimmed line after the connections closed' });
    const [t] = trims();
    assert.ok(t.peak >= 700 && t.connections + t.streams <= t.peak / 2, JSON.stringify(t));
  } finally {
    await solo.stop();
  }
});
