// tests/integration/relay_errors.test.js — every bad input of the relay issue gets a
// clear OpenAI-style error with the right status, and never reaches the provider:
// non-JSON / non-object bodies, missing or empty messages, wrong types, unknown model
// (404), a body over limits.max_body_bytes (413), a wrong method (405 + Allow), an
// unknown path (404), a header section over limits.max_header_bytes (431), and more
// concurrent streams than limits.max_concurrent_streams (503 + Retry-After); and
// connections beyond limits.max_connections are closed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { waitFor } from './lib/proc.js';
import { collectSSE, postChat } from './lib/sse.js';
import {
  SLACK,
  baseConfig,
  chatBody,
  entriesSince,
  journal,
  lastSeq,
  msgs,
  requestLogs,
  startGateway,
  startRelay,
  stopChecked,
} from './lib/relay.js';

let relay;
before(async () => {
  relay = await startRelay({
    config: {
      limits: { max_body_bytes: 4096, max_header_bytes: 4096, max_concurrent_streams: 2 },
      // Stalled streams hold their slots as long as the test needs, however slow the machine;
      // only their clients leaving frees them, at once (no resume grace keeps the answer going).
      streaming: { idle_timeout_seconds: 60 },
      resume: { enabled: false },
    },
  });
});
after(async () => {
  if (relay) await relay.stop();
});

// Sends one request and checks the OpenAI error shape. Returns {r, error}.
async function expectError(req, status, label) {
  const r = await fetch(`${relay.url}${req.path ?? '/v1/chat/completions'}`, {
    method: req.method ?? 'POST',
    headers: req.headers ?? { 'content-type': 'application/json' },
    body: req.body === undefined ? undefined : typeof req.body === 'string' ? req.body : JSON.stringify(req.body),
  });
  const text = await r.text();
  assert.equal(r.status, status, `${label}: ${text}`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/, label);
  const o = JSON.parse(text);
  assert.deepEqual(Object.keys(o), ['error'], label);
  assert.deepEqual(Object.keys(o.error).sort(), ['code', 'message', 'param', 'type'], label);
  assert.equal(typeof o.error.message, 'string', label);
  assert.ok(o.error.message.length > 10, `${label}: a message that says something`);
  assert.equal(typeof o.error.type, 'string', label);
  return { r, error: o.error };
}

const good = { model: 'gpt-relay', messages: msgs(), stream: true, mock: { tokens: 1 } };

describe('bad bodies → 400', () => {
  const cases = [
    ['not JSON', 'this is not json', null],
    ['truncated JSON', '{"model":"gpt-relay","messages":[', null],
    ['empty body', '', null],
    ['an array', '[1,2,3]', null],
    ['a string', '"hello"', null],
    ['a number', '42', null],
    ['null', 'null', null],
    ['duplicate keys', '{"model":"gpt-relay","model":"x","messages":[{"role":"user","content":"hi"}]}', null],
    ['no messages', { model: 'gpt-relay' }, 'messages'],
    ['empty messages', { model: 'gpt-relay', messages: [] }, 'messages'],
    ['messages not an array', { model: 'gpt-relay', messages: 'hi' }, 'messages'],
    ['messages of strings', { model: 'gpt-relay', messages: ['hi'] }, 'messages'],
    ['message without role', { model: 'gpt-relay', messages: [{ content: 'hi' }] }, 'messages'],
    ['unknown role', { model: 'gpt-relay', messages: [{ role: 'wizard', content: 'hi' }] }, 'messages'],
    ['user message without content', { model: 'gpt-relay', messages: [{ role: 'user' }] }, 'messages'],
    ['content a number', { model: 'gpt-relay', messages: [{ role: 'user', content: 5 }] }, 'messages'],
    ['no model', { messages: msgs() }, 'model'],
    ['model a number', { model: 7, messages: msgs() }, 'model'],
    ['model empty', { model: '', messages: msgs() }, 'model'],
    ['stream a string', { ...good, stream: 'yes' }, 'stream'],
    ['stream_options a number', { ...good, stream_options: 1 }, 'stream_options'],
    ['include_usage a string', { ...good, stream_options: { include_usage: 'yes' } }, 'stream_options'],
    ['temperature a string', { ...good, temperature: 'hot' }, 'temperature'],
    ['top_p an array', { ...good, top_p: [] }, 'top_p'],
    ['max_tokens fractional', { ...good, max_tokens: 1.5 }, 'max_tokens'],
    ['max_tokens negative', { ...good, max_tokens: -1 }, 'max_tokens'],
    ['n zero', { ...good, n: 0 }, 'n'],
  ];
  test(`${cases.length} malformed requests, none reaches the provider`, async () => {
    const since = await lastSeq(relay.mock);
    for (const [label, body, param] of cases) {
      const { error } = await expectError({ body }, 400, label);
      assert.equal(error.type, 'invalid_request_error', label);
      if (param) assert.equal(error.param, param, label);
    }
    assert.deepEqual(await entriesSince(relay.mock, since), [], 'nothing was forwarded');
  });

  test('the same requests are fine once corrected (the limits are not too tight)', async () => {
    const r = await postChat(relay.url, good);
    assert.equal(r.status, 200);
    assert.equal(r.events.at(-1).data, '[DONE]');
  });
});

describe('routing errors', () => {
  test('unknown model → 404 model_not_found', async () => {
    const since = await lastSeq(relay.mock);
    const { error } = await expectError({ body: { ...good, model: 'gpt-nope' } }, 404, 'unknown model');
    assert.equal(error.code, 'model_not_found');
    assert.equal(error.param, 'model');
    assert.match(error.message, /gpt-nope/);
    assert.deepEqual(await entriesSince(relay.mock, since), []);
  });

  test('wrong method → 405 with Allow', async () => {
    const cases = [
      ['GET', '/v1/chat/completions', 'POST'],
      ['PUT', '/v1/chat/completions', 'POST'],
      ['DELETE', '/v1/chat/completions', 'POST'],
      ['POST', '/v1/models', 'GET'],
      ['DELETE', '/v1/models', 'GET'],
      ['POST', '/healthz', 'GET'],
    ];
    for (const [method, path, allow] of cases) {
      const body = method === 'GET' || method === 'DELETE' ? undefined : JSON.stringify(good);
      const { r } = await expectError({ method, path, body }, 405, `${method} ${path}`);
      assert.equal(r.headers.get('allow'), allow, `${method} ${path}`);
    }
  });

  test('unknown path → 404', async () => {
    for (const [method, path] of [
      ['GET', '/nope'],
      ['GET', '/v1/nope'],
      ['POST', '/v1/chat/completion'],
      ['POST', '/v2/chat/completions'],
      ['GET', '/%ff'], // a path that is not UTF-8 was a 500: its bytes are quoted as '?'
      ['GET', '/v1/%c3%28x'],
    ]) {
      const { error } = await expectError({ method, path, body: method === 'POST' ? JSON.stringify(good) : undefined }, 404, path);
      assert.equal(error.type, 'invalid_request_error');
    }
  });
});

describe('limits', () => {
  test('a body over limits.max_body_bytes → 413 (JSON), never forwarded', async () => {
    const since = await lastSeq(relay.mock);
    const big = { ...good, messages: msgs('x'.repeat(5000)) };
    const { error } = await expectError({ body: big }, 413, '5 KB body');
    assert.match(error.message, /4096/);
    // just under the limit passes
    const fits = { ...good, messages: msgs('y'.repeat(3800)) };
    assert.ok(JSON.stringify(fits).length <= 4096);
    const ok = await postChat(relay.url, fits);
    assert.equal(ok.status, 200);
    // a body far over the limit is still refused (h2o's own cap, plain or JSON)
    const huge = await fetch(`${relay.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ ...good, messages: msgs('z'.repeat(200_000)) }),
    }).catch((e) => ({ status: 0, error: e }));
    if (huge.status !== 0) {
      assert.equal(huge.status, 413);
      await huge.text();
    }
    const seen = await entriesSince(relay.mock, since);
    assert.equal(seen.length, 1, 'only the request that fits was forwarded');
  });

  test('a header section over limits.max_header_bytes → 431 (JSON)', async () => {
    const since = await lastSeq(relay.mock);
    for (const path of ['/v1/chat/completions', '/v1/models', '/healthz']) {
      const { error } = await expectError(
        {
          path,
          method: path === '/v1/chat/completions' ? 'POST' : 'GET',
          headers: { 'content-type': 'application/json', 'x-padding': 'p'.repeat(5000) },
          body: path === '/v1/chat/completions' ? JSON.stringify(good) : undefined,
        },
        431,
        `431 on ${path}`,
      );
      assert.equal(error.code, 'headers_too_large');
    }
    // many small headers count too (fewer than h2o's hard cap of 100 header fields,
    // beyond which h2o itself answers a plain 400)
    const many = {};
    for (let i = 0; i < 60; i++) many[`x-h${i}`] = 'v'.repeat(80);
    await expectError({ headers: many, body: JSON.stringify(good) }, 431, '60 headers');
    assert.deepEqual(await entriesSince(relay.mock, since), []);
    // and a normal one still works
    const r = await fetch(`${relay.url}/healthz`, { headers: { 'x-padding': 'p'.repeat(1000) } });
    assert.equal(r.status, 200);
  });

  test('more than limits.max_concurrent_streams → 503 with Retry-After; slots come back', async () => {
    const since = await lastSeq(relay.mock);
    const controllers = [];
    const held = [];
    for (let i = 0; i < 2; i++) {
      const ac = new AbortController();
      controllers.push(ac);
      // stalls after one content chunk: the stream stays open
      held.push(
        fetch(`${relay.url}/v1/chat/completions`, {
          method: 'POST',
          body: JSON.stringify(chatBody({ tokens: 3, stall_after: 1 })),
          signal: ac.signal,
        }).then(async (res) => {
          const reader = res.body.getReader();
          await reader.read();
          return { res, reader };
        }),
      );
    }
    const streams = await Promise.all(held);
    for (const { res } of streams) assert.equal(res.status, 200);
    await waitFor(async () => (await entriesSince(relay.mock, since)).filter((e) => e.outcome === 'stalled').length === 2, {
      message: 'two stalled upstreams',
    });

    const { r, error } = await expectError({ body: chatBody({ tokens: 1 }) }, 503, 'third stream');
    assert.equal(r.headers.get('retry-after'), '1');
    assert.equal(error.code, 'too_many_streams');
    // a plain request also needs a slot
    await expectError({ body: { ...good, stream: false } }, 503, 'plain request at the limit');
    assert.equal((await entriesSince(relay.mock, since)).length, 2, 'the refused ones were not forwarded');
    // other endpoints still answer
    assert.equal((await fetch(`${relay.url}/healthz`)).status, 200);

    // the client leaves one stream: its slot is free again within a second or so
    controllers[0].abort();
    await waitFor(
      async () => {
        const x = await postChat(relay.url, chatBody({ tokens: 1 }), { timeoutMs: 10000 * SLACK });
        return x.status === 200 && x.events.at(-1)?.data === '[DONE]';
      },
      { intervalMs: 100, message: 'a free slot after the client left' },
    );
    controllers[1].abort();
    // sequential streams never pile up slots
    await waitFor(async () => (await postChat(relay.url, chatBody({ tokens: 1 }))).status === 200, {
      intervalMs: 100,
      message: 'the second slot after its client left',
    });
    for (let i = 0; i < 6; i++) {
      const x = await postChat(relay.url, chatBody({ tokens: 1 }));
      assert.equal(x.status, 200, `sequential stream ${i}`);
    }
    // every refusal was logged as such
    // (the lines reach stderr through telex's log thread, a moment after the responses)
    await waitFor(() => requestLogs(relay.serve).filter((l) => l.status === 503).length >= 2, {
      message: 'a 503 log line for each refusal',
    });
  });
});

describe('connections', () => {
  // One keep-alive HTTP/1.1 connection that has completed a request; resolves with the socket.
  const openConnection = (port) =>
    new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      let got = '';
      sock.setEncoding('utf8');
      sock.on('error', reject);
      sock.on('connect', () => sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
      sock.on('data', (d) => {
        got += d;
        if (got.includes('{"status":"ok"}')) resolve(sock);
      });
      sock.on('close', () => reject(new Error(`closed before a response: ${JSON.stringify(got)}`)));
    });

  test('limits.max_connections: connections beyond it are closed; a freed one can be reused', async () => {
    const serve = await startGateway(baseConfig(relay.mock.url, { limits: { max_connections: 3 } }));
    const socks = [];
    try {
      for (let i = 0; i < 3; i++) socks.push(await openConnection(serve.port));
      await assert.rejects(openConnection(serve.port), /closed before a response|ECONNRESET|EPIPE/);
      socks.shift().destroy();
      const again = await waitFor(() => openConnection(serve.port).catch(() => null), {
        intervalMs: 50,
        message: 'a connection slot after one closed',
      });
      socks.push(again);
    } finally {
      for (const s of socks) s.destroy();
      await stopChecked(serve);
    }
  });
});

describe('after all that', () => {
  test('the gateway still serves and the mock saw only valid requests', async () => {
    const r = await collectSSE(`${relay.url}/v1/chat/completions`, { body: chatBody({ tokens: 2 }) });
    assert.equal(r.status, 200);
    assert.equal(r.events.at(-1).data, '[DONE]');
    const j = await journal(relay.mock);
    for (const e of j.requests) assert.equal(e.status, 200, JSON.stringify(e));
  });
});
