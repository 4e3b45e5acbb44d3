// tests/integration/relay_stream.test.js — the happy path of `telex serve`'s relay,
// against a real `telex mock` upstream:
//  - streaming headers; chunks arrive spaced as the mock sent them, not in a burst;
//    byte-identical chunks to the mock's own stream; the end is [DONE];
//  - the body reaches the provider unchanged except the model name and
//    stream_options.include_usage=true, with the configured key as a Bearer token;
//  - the usage chunk reaches the client only when it asked;
//  - stream false relays the provider's JSON and status;
//  - GET /v1/models, GET /healthz;
//  - without a config file: the demo model, and OPENAI_BASE_URL/OPENAI_API_KEY as catch-all;
//  - telex behind telex (its own output is a valid provider stream, keep-alives included);
//  - one JSON `request` log line per request, with the fields, never a key.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { startServe, waitFor } from './lib/proc.js';
import { chunksOf, contentOf, postChat } from './lib/sse.js';
import {
  API_KEY,
  DEAD_KEY,
  baseConfig,
  SANITIZER_ENV,
  SLACK,
  chatBody,
  entriesSince,
  lastSeq,
  logBarrier,
  msgs,
  requestLogs,
  startGateway,
  startRelay,
  stopChecked,
} from './lib/relay.js';

let relay;
before(async () => {
  relay = await startRelay({
    config: (mockUrl) => {
      const cfg = baseConfig(mockUrl);
      cfg.providers[0].headers = { 'X-Team': 'relay-tests', 'OpenAI-Organization': 'org-test' };
      return cfg;
    },
  });
});
after(async () => {
  if (relay) await relay.stop(); // asserts exit 0 and no sanitizer report
});

// A chunk's JSON text without what differs between two answers (id, created).
// telex adds its own fields only to usage (cost_usd, asserted separately).
const normalize = (data) =>
  data
    .replace(/"id":"chatcmpl-mock-\d+"/, '"id":"X"')
    .replace(/"created":\d+/, '"created":0')
    .replace(/,"cost_usd":[-0-9.eE+]+/, '');
// usage without the gateway's cost_usd, which must be a number
function usageWithoutCost(usage) {
  const { cost_usd: cost, ...rest } = usage;
  assert.equal(typeof cost, 'number', 'telex adds cost_usd to the usage it relays');
  return rest;
}

describe('streamed answer', () => {
  test('SSE headers, one event per chunk written as it arrives, ends with [DONE]', async () => {
    // arrival times on CLOCK_MONOTONIC, the clock of the mock's `stamp` (mock_sent_ns)
    const arrived = [];
    const r = await postChat(relay.url, chatBody({ tokens: 8, delay_ms: 100, seed: 11, stamp: true }), {
      onEvent: () => arrived.push(process.hrtime.bigint()),
    });
    assert.equal(r.status, 200);
    assert.equal(r.error, null);
    assert.equal(r.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    assert.equal(r.headers.get('cache-control'), 'no-cache');
    assert.equal(r.headers.get('x-accel-buffering'), 'no');
    // role + 8 content + finish + [DONE], each a "data: ...\n\n" event
    assert.equal(r.events.length, 11);
    assert.equal(r.events.at(-1).data, '[DONE]');
    assert.equal(r.raw.toString().split('\n\n').filter(Boolean).length, 11);
    assert.ok(r.raw.toString().endsWith('data: [DONE]\n\n'));
    // written as it arrives, not in a burst: the content chunks were sent 100 ms apart, and
    // each reached the client before the mock sent the one after the next (telex added no
    // wait of its own; the margin of one chunk covers a client that read a little late)
    const sent = chunksOf(r.events.slice(0, 10)).map((c) => BigInt(c.mock_sent_ns));
    const early = [];
    for (let k = 1; k <= 6; k++) early.push(arrived[k] < sent[k + 2]);
    assert.ok(
      early.filter(Boolean).length >= 5,
      `content chunk k arrived (ms) before chunk k+2 was sent: ${[1, 2, 3, 4, 5, 6].map((k) => (Number(sent[k + 2] - arrived[k]) / 1e6).toFixed(0)).join(', ')}`,
    );
    // the first content chunk is not held back until the end: it arrived long before the last was sent
    assert.ok(sent[8] - arrived[1] > 500_000_000n, 'first content long before the end');
    assert.ok(r.events[8].t >= 7 * 100 - 5, `the last content was due 7 x 100 ms after the first: ${r.events[8].t}`);
  });

  test('the client gets exactly the chunks the mock streams (byte for byte, but id/created)', async () => {
    const mockDirect = await postChat(relay.mock.url, {
      model: 'upstream-relay',
      messages: msgs('compare me'),
      stream: true,
      stream_options: { include_usage: true },
      mock: { tokens: 12, delay_ms: 5 },
    });
    assert.equal(mockDirect.error, null);
    const viaTelex = await postChat(relay.url, {
      model: 'gpt-relay',
      messages: msgs('compare me'),
      stream: true,
      stream_options: { include_usage: true },
      mock: { tokens: 12, delay_ms: 5 },
    });
    assert.equal(viaTelex.error, null);
    assert.deepEqual(viaTelex.events.map((e) => normalize(e.data)), mockDirect.events.map((e) => normalize(e.data)));
    assert.equal(contentOf(viaTelex.events).split(' ').length, 12);

    // unicode, quotes, backslashes and newlines survive the relay
    const text = 'Grüße, "Welt"\n\ttab \\ back 🎉 done';
    const u = await postChat(relay.url, chatBody({ text, delay_ms: 1 }));
    assert.equal(u.error, null);
    assert.equal(contentOf(u.events), text);
    assert.equal(u.events.at(-1).data, '[DONE]');
  });

  test('the body reaches the provider unchanged but the model and include_usage; key as Bearer', async () => {
    const since = await lastSeq(relay.mock);
    const body = {
      model: 'gpt-relay',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: 'ünïcødé and "quotes"' }] },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: '42' },
      ],
      stream: true,
      stream_options: { include_usage: false },
      temperature: 0.7,
      top_p: 0.9,
      max_tokens: 64,
      n: 1,
      seed: 99,
      user: 'end-user-1',
      metadata: { trace: 'abc', nested: { list: [1, 2.5, 'x', null, true] } },
      logit_bias: { 50256: -100 },
      some_future_parameter: { anything: ['goes'] },
      mock: { tokens: 2 },
    };
    const r = await postChat(relay.url, body, { headers: { authorization: 'Bearer client-token-should-not-travel' } });
    assert.equal(r.error, null);
    const [e, ...rest] = await entriesSince(relay.mock, since);
    assert.equal(rest.length, 0, 'exactly one upstream request');
    assert.equal(e.method, 'POST');
    assert.equal(e.path, '/v1/chat/completions');
    const expected = { ...body, model: 'upstream-relay', stream_options: { include_usage: true } };
    assert.deepEqual(e.body, expected);
    assert.deepEqual(Object.keys(e.body), Object.keys(expected), 'key order kept');
    assert.equal(e.headers.authorization, 'Bearer [redacted]');
    assert.match(e.headers['content-type'], /^application\/json/);
    assert.equal(e.headers['x-api-key'], undefined);
    assert.equal(e.headers['x-team'], 'relay-tests', 'the provider headers from the config');
    assert.equal(e.headers['openai-organization'], 'org-test');

    // stream_options the client did not send is added; its other fields are kept
    const since2 = await lastSeq(relay.mock);
    await postChat(relay.url, chatBody({ tokens: 1 }, { stream_options: { future_option: 3 } }));
    await postChat(relay.url, chatBody({ tokens: 1 }));
    const [a, b] = await entriesSince(relay.mock, since2);
    assert.deepEqual(a.body.stream_options, { future_option: 3, include_usage: true });
    assert.deepEqual(b.body.stream_options, { include_usage: true });
    assert.equal(b.body.stream, true);
  });

  test('the usage chunk reaches the client only when it asked', async () => {
    const asked = await postChat(relay.url, chatBody({ tokens: 3 }, { stream_options: { include_usage: true } }));
    const chunks = chunksOf(asked.events);
    const u = chunks.at(-1);
    assert.deepEqual(u.choices, []);
    assert.deepEqual(usageWithoutCost(u.usage), { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 });
    assert.equal(asked.events.at(-1).data, '[DONE]');

    const notAsked = await postChat(relay.url, chatBody({ tokens: 3 }));
    const c2 = chunksOf(notAsked.events);
    assert.equal(c2.length, 1 + 3 + 1, 'role + content + finish, no usage chunk');
    assert.ok(c2.every((c) => c.choices.length === 1));
    assert.ok(c2.every((c) => c.usage == null), 'no usage numbers');
    assert.equal(notAsked.events.at(-1).data, '[DONE]');
    assert.equal(contentOf(notAsked.events), contentOf(asked.events));

    // include_usage:false is the same as not asking
    const no = await postChat(relay.url, chatBody({ tokens: 3 }, { stream_options: { include_usage: false } }));
    assert.equal(chunksOf(no.events).length, 5);

    // telex still learnt the usage: it is in the request log line (the last chat's, once
    // every line logged so far is on stderr)
    await logBarrier(relay.serve);
    const logs = requestLogs(relay.serve).filter((l) => l.path === '/v1/chat/completions');
    assert.deepEqual(usageWithoutCost(logs.at(-1).usage), { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 });
  });
});

describe('HTTP/1.1 keep-alive', () => {
  test('answers, error events and error statuses all leave the connection reusable', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ports = new Set();
    const post = (body, method = 'POST', path = '/v1/chat/completions', extra = {}) =>
      new Promise((resolve, reject) => {
        const data = body === undefined ? '' : JSON.stringify(body);
        const req = http.request(`${relay.url}${path}`, {
          method,
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...extra },
        });
        req.on('response', (res) => {
          ports.add(res.socket.localPort);
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode, text }));
        });
        req.on('error', reject);
        req.end(data);
      });
    try {
      const a = await post(chatBody({ tokens: 2 }));
      assert.match(a.text, /data: \[DONE\]\n\n$/);
      const b = await post(chatBody({ tokens: 3, cut_after: 1 }));
      assert.match(b.text, /"code":"cut"/);
      const c = await post({ model: 'nope', messages: msgs() });
      assert.equal(c.status, 404);
      // telex's framing: committed at 0.5 s, keep-alive at 0.8 s
      const d = await post(chatBody({ tokens: 2, ttft_ms: 1000 }), 'POST', undefined, { 'x-telex-event-ids': '1' });
      assert.match(d.text, /^: keepalive\n\n[\s\S]*data: \[DONE\]\n\n$/);
      const e = await post({ ...chatBody({ tokens: 2 }), stream: false });
      assert.equal(JSON.parse(e.text).object, 'chat.completion');
      // every kind of error answer (h2o 2.2 closes the connection after a non-200
      // response of unknown length: telex must give them a Content-Length)
      assert.equal((await post({ model: 'gpt-relay' })).status, 400);
      assert.equal((await post(undefined, 'GET')).status, 405);
      assert.equal((await post(undefined, 'GET', '/nowhere')).status, 404);
      assert.equal((await post(chatBody({ status: 503 }))).status, 502);
      assert.equal((await post(chatBody({ status: 429 }))).status, 429);
      assert.equal((await post(chatBody({ status: 422 }))).status, 422);
      assert.equal((await post(undefined, 'GET', '/healthz')).status, 200);
      assert.equal(ports.size, 1, 'one connection for all twelve requests');
    } finally {
      agent.destroy();
    }
  });
});

describe('not streamed', () => {
  test('stream false (or absent): the provider JSON and status are relayed', async () => {
    const body = { messages: msgs('plain please'), mock: { tokens: 5 } };
    const direct = await fetch(`${relay.mock.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ ...body, model: 'upstream-relay' }),
    });
    const expected = await direct.json();
    for (const stream of [false, undefined]) {
      const r = await fetch(`${relay.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...body, model: 'gpt-relay', ...(stream === undefined ? {} : { stream }) }),
      });
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type'), /^application\/json/);
      const o = await r.json();
      assert.equal(o.object, 'chat.completion');
      assert.equal(o.model, 'upstream-relay');
      // telex adds cost_usd to the provider's usage; everything else is the provider's
      const usage = usageWithoutCost(o.usage);
      assert.deepEqual({ ...o, id: 'X', created: 0, usage }, { ...expected, id: 'X', created: 0 });
    }
    // and nothing was added upstream for a plain request
    const since = await lastSeq(relay.mock);
    await (await fetch(`${relay.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ ...body, model: 'gpt-relay' }) })).text();
    const [e] = await entriesSince(relay.mock, since);
    assert.deepEqual(e.body, { ...body, model: 'upstream-relay' });
  });

  test('the /chat/completions alias serves the same', async () => {
    const r = await postChat(relay.url, chatBody({ tokens: 2 }));
    assert.equal(r.status, 200);
    const alias = await fetch(`${relay.url}/chat/completions`, { method: 'POST', body: JSON.stringify(chatBody({ tokens: 2 })) });
    assert.equal(alias.status, 200);
    assert.match(await alias.text(), /data: \[DONE\]\n\n$/);
  });
});

describe('other endpoints', () => {
  test('GET /v1/models lists the configured models in OpenAI format', async () => {
    const r = await fetch(`${relay.url}/v1/models`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^application\/json/);
    const o = await r.json();
    assert.equal(o.object, 'list');
    assert.deepEqual(
      o.data.map((m) => m.id),
      ['gpt-relay', 'gpt-fallback', 'gpt-twice'],
    );
    for (const m of o.data) {
      assert.equal(m.object, 'model');
      assert.equal(typeof m.created, 'number');
      assert.equal(typeof m.owned_by, 'string');
    }
  });

  test('GET /healthz', async () => {
    const r = await fetch(`${relay.url}/healthz`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { status: 'ok' });
  });
});

describe('request log', () => {
  test('one JSON line per request with the issue fields, never a key', async () => {
    // a marker request: once its line is in, every earlier request's line is too
    const marker = `/marker-${process.pid}-${Date.now()}`;
    assert.equal((await fetch(`${relay.url}${marker}`)).status, 404);
    await relay.serve.waitForLog((l) => l.msg === 'request' && l.path === marker);
    const before = requestLogs(relay.serve).length;
    const r = await postChat(relay.url, chatBody({ tokens: 4, delay_ms: 20, ttft_ms: 120 }));
    assert.equal(r.error, null);
    const models = await fetch(`${relay.url}/v1/models`);
    await models.text();
    const bad = await fetch(`${relay.url}/v1/chat/completions`, { method: 'POST', body: '{"model":"gpt-relay"}' });
    await bad.text();
    // the log line is written when h2o disposes of the request: just after the response
    await waitFor(() => requestLogs(relay.serve).length >= before + 3).catch(() => {});
    const mine = requestLogs(relay.serve).slice(before);
    assert.equal(mine.length, 3, `one line per request: ${JSON.stringify(mine, null, 1)}`);
    const [s, m, b] = mine;
    for (const k of ['time', 'method', 'path', 'status', 'model', 'provider', 'ttft_ms', 'duration_ms', 'events', 'bytes', 'outcome'])
      assert.ok(k in s, `field ${k} in ${JSON.stringify(s)}`);
    assert.match(s.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(s.method, 'POST');
    assert.equal(s.path, '/v1/chat/completions');
    assert.equal(s.status, 200);
    assert.equal(s.model, 'gpt-relay');
    assert.equal(s.provider, 'mock');
    assert.equal(s.outcome, 'ok');
    assert.equal(s.events, r.events.length);
    assert.equal(s.bytes, r.raw.length);
    // at least the mock's 120 ms, at most what the client saw from sending to the first chunk
    assert.ok(s.ttft_ms >= 100 && s.ttft_ms <= r.events[0].t + 1, `ttft ${s.ttft_ms}, client ${r.events[0].t}`);
    // the mock sends chunk k at 120 + 20·k ms after it got the request, or at once when it is
    // late (a busy machine): so the last of 4 comes at least 180 ms after telex started the
    // request, whatever the first chunk's delay — less the mock's timer granularity: libuv
    // counts a timer from the loop's cached millisecond clock, taken when the loop turn began
    // (before the request was read), so a chunk may leave up to ~1 ms before 120 + 20·k ms
    // after the request's arrival (seen: 179.9 ms)
    const TIMER_GRANULARITY_MS = 2;
    assert.ok(s.duration_ms >= 120 + 3 * 20 - TIMER_GRANULARITY_MS, `duration ${s.duration_ms}`);

    assert.equal(m.method, 'GET');
    assert.equal(m.path, '/v1/models');
    assert.equal(m.status, 200);

    assert.equal(b.status, 400);
    assert.equal(b.path, '/v1/chat/completions');
    assert.ok('model' in b);
    assert.equal(b.outcome, 'rejected');
  });

  test('neither provider key appears anywhere on stderr', async () => {
    // make sure both keys were used (the dead provider's on a fallback)
    const r = await postChat(relay.url, chatBody({ tokens: 1 }, { model: 'gpt-fallback' }));
    assert.equal(r.error, null);
    await logBarrier(relay.serve); // every line of that request is on stderr
    const text = relay.serve.stderr();
    assert.ok(text.length > 0);
    assert.ok(!text.includes(API_KEY), 'the mock provider key leaked into the log');
    assert.ok(!text.includes(DEAD_KEY), 'the dead provider key leaked into the log');
    assert.ok(!text.includes('SECRET'));
    assert.ok(!text.includes('org-test'), 'provider header values are secrets too');
    for (const l of relay.serve.logs) assert.ok(!('raw' in l), `every stderr line is JSON: ${l.raw}`);
  });
});


describe('without a config file', () => {
  test('the demo model, and with OPENAI_BASE_URL/OPENAI_API_KEY every other name goes to that provider', async () => {
    const env = { ...SANITIZER_ENV, TELEX_CONFIG: '', OPENAI_BASE_URL: `${relay.mock.url}/v1`, OPENAI_API_KEY: API_KEY };
    const serve = await startServe(['--workers', '1'], { env });
    try {
      assert.equal(serve.logs.find((l) => l.msg === 'listening').workers, 1, '--workers');
      const models = await (await fetch(`${serve.url}/v1/models`)).json();
      // the catch-all "*" itself is not listed; what its provider lists (the mock's "mock") is
      assert.deepEqual(models.data.map((m) => m.id), ['demo', 'mock']);

      const demo = await postChat(serve.url, { model: 'demo', messages: msgs('tell me about rivers'), stream: true, max_tokens: 6 });
      assert.equal(demo.status, 200);
      assert.equal(demo.events.at(-1).data, '[DONE]');
      const chunks = chunksOf(demo.events);
      assert.ok(chunks.some((c) => c.choices[0]?.finish_reason === 'length'), 'max_tokens honoured');
      assert.ok(contentOf(demo.events).trim().length > 0);

      const since = await lastSeq(relay.mock);
      const r = await postChat(serve.url, { model: 'any-model-name', messages: msgs('routed'), stream: true, mock: { tokens: 3 } });
      assert.equal(r.status, 200);
      assert.equal(r.events.at(-1).data, '[DONE]');
      const [e] = await entriesSince(relay.mock, since);
      assert.equal(e.body.model, 'any-model-name', 'sent under the name the client asked for');
      assert.equal(e.headers.authorization, 'Bearer [redacted]');
      await logBarrier(serve); // every line of these requests is on stderr
      assert.ok(!serve.stderr().includes(API_KEY));
    } finally {
      await stopChecked(serve);
    }
    // and without them, only the demo model exists
    const bare = await startServe(['--workers', '1'], {
      env: { ...SANITIZER_ENV, TELEX_CONFIG: '', OPENAI_BASE_URL: '', OPENAI_API_KEY: '' },
    });
    try {
      const r = await fetch(`${bare.url}/v1/chat/completions`, {
        method: 'POST',
        body: JSON.stringify({ model: 'any-model-name', messages: msgs() }),
      });
      assert.equal(r.status, 404);
      assert.equal((await r.json()).error.code, 'model_not_found');
    } finally {
      await stopChecked(bare);
    }
  });
});

describe('telex behind telex', () => {
  test('a gateway whose provider is another telex: keep-alives, answers and errors pass through', async () => {
    const front = await startGateway({
      workers: 1,
      providers: [{ name: 'inner', kind: 'openai', base_url: `${relay.url}/v1`, api_key: 'sk-inner-SECRET' }],
      models: [{ name: 'chain', providers: [{ provider: 'inner', model: 'gpt-relay' }] }],
      streaming: { keepalive_seconds: 0.3, commit_timeout_seconds: 0.5, idle_timeout_seconds: 3 },
    });
    try {
      // the inner gateway commits at 0.5 s and sends keep-alive comments until the first token
      const slow = await postChat(front.url, { ...chatBody({ tokens: 4, ttft_ms: 1200 }), model: 'chain' }, { timeoutMs: 20000 * SLACK });
      assert.equal(slow.status, 200);
      assert.equal(slow.events.at(-1).data, '[DONE]');
      assert.equal(contentOf(slow.events).split(' ').length, 4);
      // an error event from the inner gateway ends the outer stream with an error too
      const cut = await postChat(front.url, { ...chatBody({ tokens: 4, cut_after: 2 }), model: 'chain' });
      const last = JSON.parse(cut.events.at(-1).data);
      assert.equal(last.error.type, 'upstream_error');
      assert.equal(last.error.code, 'error_event');
      assert.match(last.error.message, /broke off|ended/);
      assert.ok(!cut.events.some((e) => e.data === '[DONE]'));
      // plain answers too
      const plain = await fetch(`${front.url}/v1/chat/completions`, {
        method: 'POST',
        body: JSON.stringify({ model: 'chain', messages: msgs(), mock: { tokens: 3 } }),
      });
      assert.equal(plain.status, 200);
      assert.equal((await plain.json()).choices[0].message.content.split(' ').length, 3);
    } finally {
      await stopChecked(front);
    }
  });
});
