// tests/integration/relay_faults.test.js — what the client sees when the provider
// misbehaves, for every fault `telex mock` can inject (and a few only a hand-written
// upstream can):
//  - before the first chunk: HTTP status 500/503/429 (Retry-After relayed)/400 → a real
//    HTTP error with an OpenAI-style body; a cut before any event → 502;
//  - commit_timeout: the headers go out before a slow first chunk, keep-alive comments
//    fill the wait;
//  - after the first chunk: cut → error event `cut`, stall → `: keepalive` comments then
//    an `idle_timeout` error event, malformed SSE → `protocol`, invalid JSON → `bad_json`,
//    an oversized event → `protocol`, an error object → `error_event`; never [DONE];
//  - no [DONE] from the provider: completed with [DONE] when a finish_reason arrived,
//    else an error event (docs/architecture.md, "A provider that omits [DONE]");
//  - usage off at the provider: no usage chunk even when asked; usage carried on a
//    content chunk is removed when the client did not ask;
//  - a plain request whose provider stays silent → 504 after idle_timeout;
//  - valid streams in other shapes (BOM, CR/CRLF, comments, event/id/retry) pass.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { chunksOf, collectSSE, contentOf, postChat } from './lib/sse.js';
import { waitFor } from './lib/proc.js';
import {
  LATE_MS,
  SLACK,
  baseConfig,
  chatBody,
  entriesSince,
  lastSeq,
  requestLogs,
  startRelay,
  startStub,
  waitEntry,
} from './lib/relay.js';

let relay;
let stub;
// What the stub upstream does next: a function (req, res, body).
let stubBehaviour = (req, res) => res.end();

before(async () => {
  stub = await startStub((req, res, body) => stubBehaviour(req, res, body));
  relay = await startRelay({
    config: (mockUrl) => {
      const cfg = baseConfig(mockUrl, { limits: { max_event_bytes: 65536 } });
      cfg.providers.push({ name: 'stub', kind: 'openai', base_url: `${stub.url}/v1`, api_key: 'sk-stub' });
      cfg.models.push({ name: 'gpt-stub', providers: [{ provider: 'stub', model: 'stub-model' }] });
      return cfg;
    },
  });
});
after(async () => {
  if (relay) await relay.stop();
  if (stub) await stub.close();
});

const errorEvent = (r) => {
  const last = r.events.at(-1);
  assert.ok(last, 'at least one event');
  const o = JSON.parse(last.data);
  assert.ok(o.error, `the last event is an error: ${last.data}`);
  return o.error;
};
const noDone = (r) => assert.ok(!r.events.some((e) => e.data === '[DONE]'), 'no [DONE] after a failure');

async function errorResponse(body, status, label) {
  const r = await fetch(`${relay.url}/v1/chat/completions`, {
    method: 'POST',
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10000 * SLACK), // a gateway that never answers fails here, not in 5 min
  });
  const text = await r.text();
  assert.equal(r.status, status, `${label}: ${text}`);
  assert.match(r.headers.get('content-type'), /^application\/json/, label);
  const o = JSON.parse(text);
  assert.deepEqual(Object.keys(o.error).sort(), ['code', 'message', 'param', 'type'], label);
  return { r, error: o.error };
}

describe('errors before the first chunk are HTTP errors', () => {
  test('5xx from the provider → 502 with an OpenAI error body (stream and plain)', async () => {
    for (const status of [500, 503]) {
      for (const stream of [true, false]) {
        const label = `mock ${status}, stream ${stream}`;
        const { error } = await errorResponse(chatBody({ status }, { stream }), 502, label);
        assert.equal(error.type, 'upstream_error', label);
        assert.match(error.message, new RegExp(String(status)), label);
        assert.ok(!error.message.includes('sk-'), label);
      }
    }
  });

  test('429 → 429 with the provider Retry-After', async () => {
    const { r, error } = await errorResponse(chatBody({ status: 429, retry_after: 7 }), 429, '429');
    assert.equal(r.headers.get('retry-after'), '7');
    assert.equal(error.type, 'rate_limit_error');
    const { r: r2 } = await errorResponse(chatBody({ status: 429 }), 429, '429 without Retry-After');
    assert.equal(r2.headers.get('retry-after'), null);
  });

  test('4xx from the provider → relayed as is (status and OpenAI body)', async () => {
    for (const status of [400, 404, 422]) {
      const { error } = await errorResponse(chatBody({ status }), status, `mock ${status}`);
      assert.match(error.message, new RegExp(`injected HTTP status ${status}`));
    }
  });

  test('401 / 403 from the provider (it refused the gateway key) → 502 provider_auth_failed', async () => {
    for (const status of [401, 403]) {
      for (const stream of [true, false]) {
        const label = `mock ${status}, stream ${stream}`;
        const { error } = await errorResponse(chatBody({ status }, { stream }), 502, label);
        assert.equal(error.code, 'provider_auth_failed', label);
        assert.equal(error.type, 'upstream_error', label);
      }
    }
  });

  test('a plain (stream false) request whose provider stays silent → 504 after idle_timeout', async () => {
    // (a stub, not the mock: `telex mock` aborts when its client leaves a plain request
    // during ttft_ms — h2o_send before the response started; reported to its owner)
    let closedAt = null;
    stubBehaviour = (req, res) => res.socket.once('close', () => (closedAt = performance.now()));
    const t0 = performance.now();
    const { error } = await errorResponse({ ...chatBody(), model: 'gpt-stub', stream: false }, 504, 'silent provider');
    const took = performance.now() - t0;
    assert.equal(error.code, 'idle_timeout');
    // the promised deadline (the stub would stay silent forever)
    assert.ok(took >= 1400 && took < 1500 + LATE_MS, `answered after ${took} ms (idle_timeout 1.5 s)`);
    await waitFor(() => closedAt !== null, { message: 'telex closed the upstream connection' });
    assert.ok(closedAt - t0 < 1500 + LATE_MS);
  });

  test('a provider that closes before any event (cut_after 0) → 502', async () => {
    const { error } = await errorResponse(chatBody({ cut_after: 0 }), 502, 'cut before any event');
    assert.equal(error.type, 'upstream_error');
  });

  test('with a second route, 5xx / 429 / cut fall back (4xx does not)', async () => {
    for (const [mock, status, calls] of [
      [{ status: 503 }, 502, 2],
      [{ status: 429, retry_after: 3 }, 429, 2],
      [{ cut_after: 0 }, 502, 2],
      [{ status: 400 }, 400, 1],
    ]) {
      const since = await lastSeq(relay.mock);
      const label = JSON.stringify(mock);
      await errorResponse(chatBody(mock, { model: 'gpt-twice' }), status, label);
      // (libcurl silently resends a request once when a reused connection dies before
      // any response byte, so a cut before any event may show the same route twice)
      const tried = (await entriesSince(relay.mock, since)).map((e) => e.body.model).filter((m, i, a) => m !== a[i - 1]);
      assert.deepEqual(tried, ['first-try', 'second-try'].slice(0, calls), `${label}: the routes tried`);
    }
    const line = await waitFor(() => requestLogs(relay.serve).findLast((l) => l.model === 'gpt-twice' && l.status === 429), {
      message: 'the 429 request line', // written by telex's log thread
    });
    assert.equal(line.fallbacks, 1);
  });
});

// Keep-alive comments are part of telex's framing (X-Telex-Event-Ids: 1, or streaming.event_ids);
// the default, OpenAI-exact framing has none (tests/integration/framing.test.js).
const IDS = { headers: { 'x-telex-event-ids': '1' } };

describe('commit timeout and keep-alive', () => {
  test('a slow first token: headers at commit_timeout, keep-alives, then the answer', async () => {
    const r = await postChat(relay.url, chatBody({ tokens: 3, ttft_ms: 1500, delay_ms: 10 }), IDS);
    assert.equal(r.status, 200);
    assert.equal(r.error, null);
    assert.ok(r.headersAt >= 450, `headers after commit_timeout 0.5 s: ${r.headersAt}`);
    assert.ok(r.events[0].t >= 1450, `first chunk after ttft 1.5 s: ${r.events[0].t}`);
    // the headers (and keep-alives) came before the first chunk: the first bytes are keep-alives
    const pings = r.raw.toString().split(': keepalive\n\n').length - 1;
    assert.ok(pings >= 2, `keep-alive comments while waiting (${pings})`);
    assert.ok(r.raw.toString().startsWith(': keepalive\n\n'), 'the first bytes are a keep-alive');
    assert.equal(r.events.at(-1).data, '[DONE]');
    assert.equal(contentOf(r.events).split(' ').length, 3);
  });

  test('a stall after the first chunks: keep-alives every keepalive_seconds, then idle_timeout', async () => {
    const since = await lastSeq(relay.mock);
    const r = await postChat(relay.url, chatBody({ tokens: 5, stall_after: 2, delay_ms: 10 }), IDS);
    assert.equal(r.status, 200);
    assert.equal(contentOf(r.events.slice(0, -1)).split(' ').length, 2, 'the 2 chunks before the stall');
    const err = errorEvent(r);
    assert.equal(err.type, 'upstream_error');
    assert.equal(err.code, 'idle_timeout');
    noDone(r);
    // From the request (the last chunk came ~20 ms after it): the idle timeout counts from the
    // last chunk telex got, so not before 1.5 s; then by the promised deadline (the stall lasts
    // 10 minutes). The gap between two arrivals would shrink whenever the client read late.
    const errAt = r.events.at(-1).t;
    assert.ok(errAt >= 1500 - 50 && errAt < 1500 + LATE_MS, `idle_timeout ${errAt} ms after the request`);
    const body = r.raw.toString();
    const stall = body.slice(body.indexOf(r.events.at(-2).data));
    const pings = stall.split(': keepalive\n\n').length - 1;
    // 1.5 s / 0.3 s: at most 5; fewer when a loaded machine fires the timers late
    assert.ok(pings >= 2 && pings <= 5, `about 1.5 s / 0.3 s keep-alives during the stall: ${pings}`);
    assert.equal(r.error, null, 'the response ends cleanly after the error event');
    // telex gave up on the provider: the mock sees its client leave
    const e = await waitEntry(relay.mock, since, (x) => x.client_gone, { message: 'the mock sees telex leave' });
    assert.equal(e.content_events, 2);
    const line = await relay.serve.waitForLog((l) => l.msg === 'request' && l.error === 'idle_timeout');
    assert.equal(line.outcome, 'upstream_error');
  });

  test('a live stream slower than keepalive_seconds gets keep-alives between chunks', async () => {
    const r = await postChat(relay.url, chatBody({ tokens: 3, delay_ms: 700 }), IDS);
    assert.equal(r.events.at(-1).data, '[DONE]');
    // the mock's timeline: content 3 is due 2 x 700 ms after content 1 (sent with the role chunk)
    assert.ok(r.events[3].t >= 2 * 700 - 5, `content 3 at ${r.events[3].t} ms`);
    // keep-alives in the quiet between the chunks: one per 0.3 s of silence, about 4 in all
    const body = r.raw.toString();
    const between = body.slice(body.indexOf(r.events[1].data), body.indexOf(r.events[3].data));
    const pings = between.split(': keepalive\n\n').length - 1;
    assert.ok(pings >= 2, `keep-alives in the 700 ms gaps (${pings})`);
    // but a stream faster than that has none (its chunks come at once, 0.3 s is far away)
    const fast = await postChat(relay.url, chatBody({ tokens: 10, delay_ms: 0 }), IDS);
    assert.equal(fast.events.at(-1).data, '[DONE]');
    assert.ok(!fast.raw.toString().includes(': keepalive'));
    // and without telex's framing, a slow stream has none either: OpenAI sends none, and
    // naive readers that split on blank lines and strip "data: " break on a comment
    const plain = await postChat(relay.url, chatBody({ tokens: 3, delay_ms: 700 }));
    assert.equal(plain.events.at(-1).data, '[DONE]');
    assert.equal(plain.comments.length, 0);
  });
});

describe('errors after the first chunk end the stream with an error event', () => {
  test('cut_after → error event `cut`, no [DONE]', async () => {
    const r = await postChat(relay.url, chatBody({ tokens: 5, cut_after: 2 }));
    assert.equal(r.status, 200);
    const err = errorEvent(r);
    assert.equal(err.type, 'upstream_error');
    assert.equal(err.code, 'cut');
    noDone(r);
    assert.equal(contentOf(r.events.slice(0, -1)).split(' ').length, 2);
    assert.equal(r.error, null, 'telex ends the response properly after the error event');
  });

  test('a failure after the first chunk never falls back', async () => {
    const since = await lastSeq(relay.mock);
    const r = await postChat(relay.url, chatBody({ tokens: 5, cut_after: 1 }, { model: 'gpt-twice' }));
    assert.equal(errorEvent(r).code, 'cut');
    noDone(r);
    const seen = await entriesSince(relay.mock, since);
    assert.deepEqual(seen.map((e) => e.body.model), ['first-try']);
  });

  test('malformed SSE → error event (upstream_error), no [DONE]', async () => {
    const r = await postChat(relay.url, chatBody({ tokens: 4, malformed_after: 1 }));
    assert.equal(r.status, 200);
    const err = errorEvent(r);
    assert.equal(err.type, 'upstream_error');
    assert.equal(err.code, 'protocol');
    assert.match(err.message, /a line that is not an event-stream field/);
    noDone(r);
    assert.equal(contentOf(r.events.slice(0, -1)).split(' ').length, 1);
    assert.ok(!r.raw.includes(Buffer.from([0xff, 0xfe])), 'the bad bytes are not relayed');
  });

  test('invalid JSON chunk → error event `bad_json`, no [DONE]', async () => {
    const r = await postChat(relay.url, chatBody({ tokens: 4, invalid_json_after: 2 }));
    const err = errorEvent(r);
    assert.equal(err.type, 'upstream_error');
    assert.equal(err.code, 'bad_json');
    noDone(r);
    assert.ok(!r.raw.toString().includes('{not json'), 'the bad chunk is not relayed');
    assert.equal(contentOf(r.events.slice(0, -1)).split(' ').length, 2);
  });

  test('an event over limits.max_event_bytes → error event `protocol`', async () => {
    const r = await postChat(relay.url, chatBody({ tokens: 3, oversize_after: 1, oversize_bytes: 100000 }));
    const err = errorEvent(r);
    assert.equal(err.code, 'protocol');
    noDone(r);
    assert.ok(r.raw.length < 20000, 'the giant event was not relayed');
    // under the limit it is relayed like any chunk
    const ok = await postChat(relay.url, chatBody({ tokens: 2, oversize_after: 1, oversize_bytes: 30000 }));
    assert.equal(ok.events.at(-1).data, '[DONE]');
    assert.ok(ok.events.some((e) => e.data.length > 29000));
  });

  test('the provider streams an error object → error event `error_event`', async () => {
    stubBehaviour = (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"id":"s1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n');
      res.end('data: {"error":{"message":"model overloaded","type":"server_error"}}\n\n');
    };
    const r = await postChat(relay.url, { ...chatBody(), model: 'gpt-stub' });
    const err = errorEvent(r);
    assert.equal(err.code, 'error_event');
    assert.match(err.message, /model overloaded/);
    noDone(r);
    assert.equal(contentOf(r.events.slice(0, -1)), 'Hi');
  });
});

describe('valid event streams in other shapes', () => {
  test('BOM, CRLF / CR line ends, comments, event/id/retry fields and split writes are relayed', async () => {
    const chunk = (i, content, finish = null) =>
      JSON.stringify({
        id: 's3',
        object: 'chat.completion.chunk',
        choices: [{ index: 0, delta: { content }, finish_reason: finish }],
      });
    stubBehaviour = async (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
      const parts = [
        '\uFEFF: OPENROUTER PROCESSING\r\n\r\n',
        `retry: 1000\r\nid: 1\r\nevent: message\r\ndata: ${chunk(0, 'One')}\r\n\r\n`,
        `data: ${chunk(1, ' two')}\r\r`,
        `data:${chunk(2, ' three')}\n`,
        '\n:\n\n',
        `da`,
        `ta: ${chunk(3, ' four', 'stop')}\n\ndata: [DONE]\n\n`,
      ];
      for (const p of parts) {
        res.write(p);
        await new Promise((r) => setTimeout(r, 5));
      }
      res.end();
    };
    const r = await postChat(relay.url, { ...chatBody(), model: 'gpt-stub' });
    assert.equal(r.status, 200);
    assert.equal(r.error, null);
    assert.equal(contentOf(r.events), 'One two three four');
    assert.equal(r.events.at(-1).data, '[DONE]');
  });
});

describe('usage inside a content chunk', () => {
  test('a provider that puts usage on the finish chunk: kept when asked, removed when not', async () => {
    stubBehaviour = (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"id":"s4","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n');
      res.end(
        'data: {"id":"s4","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\ndata: [DONE]\n\n',
      );
    };
    const asked = await postChat(relay.url, { ...chatBody(), model: 'gpt-stub', stream_options: { include_usage: true } });
    const { cost_usd: cost, ...usage } = chunksOf(asked.events).at(-1).usage;
    assert.equal(typeof cost, 'number', 'telex adds cost_usd');
    assert.deepEqual(usage, { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 });
    const not = await postChat(relay.url, { ...chatBody(), model: 'gpt-stub' });
    const last = chunksOf(not.events).at(-1);
    assert.ok(!('usage' in last), JSON.stringify(last));
    assert.equal(last.choices[0].finish_reason, 'stop', 'the rest of the chunk is kept');
    assert.equal(last.id, 's4');
    assert.equal(not.events.at(-1).data, '[DONE]');
  });
});

describe('a provider that omits [DONE]', () => {
  test('after a finish_reason (mock no_done): telex completes the answer with [DONE]', async () => {
    const since = await lastSeq(relay.mock);
    const r = await postChat(relay.url, chatBody({ tokens: 3, no_done: true }, { stream_options: { include_usage: true } }));
    assert.equal(r.error, null);
    assert.equal(r.events.at(-1).data, '[DONE]');
    const chunks = chunksOf(r.events);
    assert.equal(chunks.at(-2).choices[0].finish_reason, 'stop');
    assert.ok(chunks.at(-1).usage, 'the usage chunk after the finish still arrives');
    const [e] = await entriesSince(relay.mock, since);
    assert.equal(e.completed, true);
  });

  test('without a finish_reason: the answer was cut → error event, no [DONE]', async () => {
    stubBehaviour = (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"id":"s2","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Half"},"finish_reason":null}]}\n\n');
      res.end(); // clean end of the body, but the answer never finished
    };
    const r = await postChat(relay.url, { ...chatBody(), model: 'gpt-stub' });
    assert.equal(r.status, 200);
    assert.equal(errorEvent(r).code, 'cut');
    noDone(r);
  });

  test('a provider answering a stream with JSON instead of an event stream → 502', async () => {
    stubBehaviour = (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"id":"x","object":"chat.completion","choices":[]}');
    };
    const { error } = await errorResponse({ ...chatBody(), model: 'gpt-stub' }, 502, 'not an event stream');
    assert.equal(error.type, 'upstream_error');
    assert.match(error.message, /application\/json/);
  });
});

describe('usage off at the provider', () => {
  test('the client asked, the provider sent none: no usage chunk, still [DONE]', async () => {
    const r = await postChat(relay.url, chatBody({ tokens: 3, usage: false }, { stream_options: { include_usage: true } }));
    assert.equal(r.events.at(-1).data, '[DONE]');
    const chunks = chunksOf(r.events);
    assert.equal(chunks.length, 5);
    assert.ok(chunks.every((c) => c.choices.length === 1 && c.usage == null));
    const line = await relay.serve.waitForLog((l) => l.msg === 'request' && l.events === 6 && l.status === 200 && !('usage' in l));
    assert.equal(line.outcome, 'ok');
  });
});

describe('the error event', () => {
  test('is one well-formed SSE event with the OpenAI error shape', async () => {
    const r = await collectSSE(`${relay.url}/v1/chat/completions`, { body: chatBody({ tokens: 3, cut_after: 1 }) });
    const text = r.raw.toString();
    const last = text.slice(text.lastIndexOf('data: '));
    assert.match(last, /^data: \{"error":\{.*\}\}\n\n$/s);
    const err = JSON.parse(last.slice(6)).error;
    assert.equal(typeof err.message, 'string');
    assert.equal(err.type, 'upstream_error');
    assert.equal(err.code, 'cut');
  });
});
