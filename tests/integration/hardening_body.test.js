// tests/integration/hardening_body.test.js — memory before authentication (issue 18, item 1).
//
// A request body is read only after its head has passed: with keys, a body without a
// valid key gets 401 at once and the connection closes (the body is never read); a
// Content-Length over limits.max_body_bytes gets 413 the same way; all bodies being
// received together fit limits.max_buffered_body_bytes, or the next one gets 503 with
// Retry-After. The attack from the issue (many keyless connections each holding an
// unfinished large body) must not grow telex's memory.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { SYNC_TIMEOUT_MS, TELEX_BIN, waitFor } from './lib/proc.js';
import { SANITIZER_ENV, chatBody, startRelay, tmpDir } from './lib/relay.js';
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

const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

const head = (pathName, headers) =>
  `POST ${pathName} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
  Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('') +
  '\r\n';

const METRICS_TOKEN = 'hardening-metrics-token-0123456789';
let relay;
let key;

// telex_request_body_bytes_in_flight: the bodies telex has taken room for now
async function bodiesInFlight() {
  const r = await fetch(`${relay.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  const text = await r.text();
  assert.equal(r.status, 200, text);
  return Number(/^telex_request_body_bytes_in_flight (\d+)$/m.exec(text)[1]);
}
before(async () => {
  const dbPath = path.join(tmpDir(), 'telex.db');
  key = createKey(dbPath, 'alice');
  relay = await startRelay({
    env: { TELEX_DB: dbPath },
    config: {
      store: { path: dbPath },
      limits: { max_body_bytes: 1048576, max_buffered_body_bytes: 1572864 },
      metrics: { token: METRICS_TOKEN },
    },
  });
});
after(async () => {
  if (relay) await relay.stop();
});

describe('with keys, a body is read only after the head authenticates', () => {
  for (const [what, headers] of [
    ['no key, Content-Length', { 'Content-Length': 900000 }],
    ['a wrong key, Content-Length', { 'Content-Length': 900000, Authorization: 'Bearer tlx_wrong' }],
    ['no key, chunked', { 'Transfer-Encoding': 'chunked' }],
  ]) {
    test(`${what}: 401 before the body has arrived, and the connection closes`, async () => {
      const c = await connect(relay.url);
      await c.write(head('/v1/chat/completions', headers));
      await c.write(headers['Transfer-Encoding'] ? '400\r\n' + 'x'.repeat(1024) + '\r\n' : 'x'.repeat(1000));
      const r = await c.response(); // the rest of the body is never sent
      assert.ok(r, 'a response');
      assert.equal(r.status, 401, r.body);
      assert.equal(r.headers.connection, 'close');
      assert.match(r.json().error.code, /missing_api_key|invalid_api_key/);
      await c.closed;
    });
  }

  test('the Anthropic front door answers in its own shape (x-api-key is a key too)', async () => {
    const c = await connect(relay.url);
    await c.write(head('/v1/messages', { 'Content-Length': 500000, 'x-api-key': 'tlx_nope' }));
    const r = await c.response();
    assert.equal(r.status, 401);
    assert.equal(r.json().type, 'error');
    assert.equal(r.json().error.type, 'authentication_error');
    await c.closed;
  });

  test('no body is no body: Content-Length: 0 without a key still reaches /healthz', async () => {
    const c = await connect(relay.url);
    await c.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n');
    const r = await c.response();
    assert.equal(r.status, 200, r.body);
    c.destroy();
  });

  test('a valid key: the body is read and the request runs', async () => {
    const body = JSON.stringify(chatBody({ tokens: 2 }, { stream: false }));
    const c = await connect(relay.url);
    await c.write(head('/v1/chat/completions', { 'Content-Length': Buffer.byteLength(body), Authorization: `Bearer ${key}` }));
    await c.write(body.slice(0, 10));
    await c.write(body.slice(10));
    const r = await c.response();
    assert.equal(r.status, 200, r.body);
    c.destroy();
  });

  test('a Content-Length over limits.max_body_bytes: 413 at once, with a key too', async () => {
    const c = await connect(relay.url);
    await c.write(head('/v1/chat/completions', { 'Content-Length': 1048577, Authorization: `Bearer ${key}` }));
    const r = await c.response();
    assert.equal(r.status, 413, r.body);
    assert.equal(r.json().error.code, 'request_too_large');
    await c.closed;
  });
});

describe('the budget of bodies in flight (limits.max_buffered_body_bytes)', () => {
  test('a body that does not fit gets 503 + Retry-After; room comes back when the first ends', async () => {
    const auth = { Authorization: `Bearer ${key}` };
    const a = await connect(relay.url);
    await a.write(head('/v1/chat/completions', { 'Content-Length': 1000000, ...auth }));
    await a.write('{"model":');
    // a's reservation is taken once telex has read its head (the gauge shows it); b needs
    // more than what is left
    await waitFor(async () => (await bodiesInFlight()) >= 1000000, { message: "a's body in telex_request_body_bytes_in_flight" });
    const c = await connect(relay.url);
    await c.write(head('/v1/chat/completions', { 'Content-Length': 800000, ...auth }));
    const b = await c.response();
    c.destroy();
    assert.ok(b, 'a response to b');
    assert.equal(b.status, 503, b.body);
    assert.equal(b.headers['retry-after'], '1');
    assert.equal(b.json().error.code, 'overloaded');
    a.destroy(); // gives its reservation back
    await a.closed;
    const body = JSON.stringify(chatBody({ tokens: 1 }, { stream: false, pad: 'x'.repeat(700000) }));
    const r = await waitFor(async () => {
      const c = await connect(relay.url);
      await c.write(head('/v1/chat/completions', { 'Content-Length': Buffer.byteLength(body), ...auth }) + body);
      const res = await c.response();
      c.destroy();
      return res.status === 503 ? null : res;
    });
    assert.notEqual(r.status, 503, r.body);
  });
});

describe('the attack from the issue', () => {
  test('300 keyless connections pushing 512 KiB bodies: all 401, memory stays flat', async () => {
    const pid = relay.serve.pid;
    const before = rssKiB(pid);
    const chunk = 'x'.repeat(64 * 1024);
    const conns = await Promise.all(Array.from({ length: 300 }, () => connect(relay.url)));
    const statuses = await Promise.all(
      conns.map(async (c) => {
        await c.write(head('/v1/chat/completions', { 'Content-Length': 2000000 }));
        for (let i = 0; i < 8; i++) if (!(await c.write(chunk))) break;
        const r = await c.response();
        await c.closed;
        return r ? r.status : 'closed without a response';
      }),
    );
    const peak = rssKiB(pid);
    const counts = {};
    for (const s of statuses) counts[s] = (counts[s] ?? 0) + 1;
    // a refused connection may be reset by the kernel before its 401 arrives, when
    // the client was still writing; none may be anything else
    assert.deepEqual(
      Object.keys(counts).filter((s) => s !== '401' && s !== 'closed without a response'),
      [],
      JSON.stringify(counts),
    );
    assert.ok((counts['401'] ?? 0) > 0, JSON.stringify(counts));
    // 300 × 512 KiB would be 150 MiB if the bodies were read
    assert.ok(peak - before < 40 * 1024, `RSS grew by ${peak - before} KiB`);
  });
});

describe('HTTP/2: bodies being received count against the same budget', () => {
  test('a connection whose unfinished bodies would overflow it is closed; memory stays flat', async () => {
    const http2 = await import('node:http2');
    const pid = relay.serve.pid;
    const before = rssKiB(pid);
    const session = http2.connect(relay.url);
    session.on('error', () => {});
    const closed = new Promise((r) => session.once('close', r));
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const streams = [];
    for (let i = 0; i < 40; i++) {
      const s = session.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json' });
      s.on('error', () => {});
      streams.push(s);
      // 40 × 512 KiB = 20 MiB, far over the 1.5 MiB budget; never ended
      (async () => {
        for (let k = 0; k < 8 && !s.destroyed && !session.destroyed; k++)
          await new Promise((r) => s.write(chunk, r));
      })();
    }
    await closed;
    assert.ok(rssKiB(pid) - before < 40 * 1024, `RSS grew by ${rssKiB(pid) - before} KiB`);
    // the budget came back with the connection: an authenticated request over HTTP/2 runs
    const again = http2.connect(relay.url);
    const body = JSON.stringify(chatBody({ tokens: 1 }, { stream: false }));
    const status = await new Promise((resolve, reject) => {
      const s = again.request({
        ':method': 'POST',
        ':path': '/v1/chat/completions',
        'content-type': 'application/json',
        authorization: `Bearer ${key}`,
      });
      s.on('response', (h) => resolve(h[':status']));
      s.on('error', reject);
      s.end(body);
    });
    again.close();
    assert.equal(status, 200);
  });
});
