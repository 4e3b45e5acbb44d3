// tests/integration/client_fetch.test.js — fetchEventSource() and streamChat() of web/telex.js.
//
//  - against a real `telex serve` ($TELEX_BIN) with the demo model, and routed to `telex mock`:
//    streaming, HTTP errors, error events mid-stream, abort seen by the upstream, and the
//    streamed text equal to the non-streamed answer;
//  - against a small node:http server written here that speaks telex's resumable-stream
//    protocol (event ids, X-Telex-Stream-Id, GET /v1/streams/{id}, Last-Event-ID, 204 for a
//    stream that is gone, DELETE): retry: honoured, backoff, 204 stops, abort (also with an
//    already-aborted signal, and during a retry wait), resume with Last-Event-ID, and
//    streamChat with the connection cut mid-answer returning the exact uninterrupted text.
import test, { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  TelexConnectionError,
  TelexError,
  TelexHTTPError,
  TelexStreamError,
  cancelStream,
  fetchEventSource,
  streamChat,
} from '../../web/telex.js';
import { LATE_MS, sleep, startMock, startServe, stopProcess, waitFor, within } from './lib/proc.js';

/* ------------------------------------------------------------ test server */

// Starts an HTTP server whose every request goes to handler(req, res, record). Each request is
// recorded as { method, url, headers, body, at, gone } where `gone` turns true when the client
// closed the connection before the response ended.
async function startServer(handler) {
  const requests = [];
  const sockets = new Set();
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const record = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString(), at: Date.now(), gone: false };
    requests.push(record);
    res.on('close', () => {
      if (!res.writableFinished) record.gone = true;
    });
    try {
      await handler(req, res, record);
    } catch (err) {
      res.destroy(err);
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

function sseHead(res, extra = {}) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...extra });
  res.flushHeaders();
}

// Writes text, then drops the connection without ending the chunked body (a cut).
function writeThenCut(res, text) {
  return new Promise((resolve) => {
    const cut = () => {
      res.socket?.destroy();
      resolve();
    };
    if (text) res.write(text, cut);
    else setImmediate(cut);
  });
}

function errorJson(res, status, error, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ error: { param: null, code: null, ...error } }));
}

// The protocol of a resumable telex chat stream (issue 4), as a fake gateway:
//   POST /v1/chat/completions            a new stream (or, with Last-Event-ID of a known
//                                        stream, its continuation)
//   GET  /v1/streams/{id}                the stream after Last-Event-ID (from the start without)
//   DELETE /v1/streams/{id}              cancel
// Every event has `id: {streamId}.{n}`; the first carries `retry:`. `cuts[k]` is how many events
// the k-th connection sends before the socket is dropped (undefined: send to the end and end
// cleanly) — dropped even when that was the last event, which a client must shrug off.
function chatGateway({ answer, cuts = [], retryMs = 20, streamIdHeader = true, ids = true, apiKey, cost = 0.000123 }) {
  const tokens = answer.match(/\s*\S+|\s+$/g) ?? [];
  const streams = new Map();
  let connections = 0;
  let nextStream = 1;
  const chunk = (obj) => `data: ${JSON.stringify(obj)}\n\n`;
  function eventsFor(sid, model) {
    const base = { id: `chatcmpl-${sid}`, object: 'chat.completion.chunk', created: 1, model };
    const datas = [chunk({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] })];
    for (const t of tokens) datas.push(chunk({ ...base, choices: [{ index: 0, delta: { content: t }, finish_reason: null }] }));
    datas.push(chunk({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }));
    datas.push(chunk({ ...base, choices: [], usage: { prompt_tokens: 5, completion_tokens: tokens.length, total_tokens: 5 + tokens.length, cost_usd: cost } }));
    datas.push('data: [DONE]\n\n');
    return datas.map((d, n) => (ids ? `${n === 0 ? `retry: ${retryMs}\n` : ''}id: ${sid}.${n}\n${d}` : d));
  }
  async function send(res, stream, from) {
    const k = connections++;
    sseHead(res, streamIdHeader ? { 'x-telex-stream-id': stream.id } : {});
    const limit = cuts[k];
    const end = limit === undefined ? stream.events.length : Math.min(stream.events.length, from + limit);
    for (let i = from; i < end; i++) {
      if (stream.cancelled || res.destroyed) break;
      res.write(stream.events[i]);
      await sleep(1);
    }
    if (res.destroyed) return;
    if (stream.cancelled) {
      res.end(chunk({ error: { message: 'The stream was cancelled.', type: 'cancelled', code: 'cancelled' } }));
    } else if (limit !== undefined) {
      await writeThenCut(res, '');
    } else {
      res.end();
    }
  }
  function startIndex(stream, lastEventId) {
    if (!lastEventId) return 0;
    const n = Number(lastEventId.slice(stream.id.length + 1));
    return n + 1;
  }
  function authorized(req, res) {
    if (!apiKey || req.headers.authorization === `Bearer ${apiKey}`) return true;
    errorJson(res, 401, { message: 'Missing or wrong API key.', type: 'authentication_error', code: 'invalid_api_key' });
    return false;
  }
  return async (req, res, record) => {
    if (!authorized(req, res)) return;
    const last = req.headers['last-event-id'];
    const m = /^\/v1\/streams\/([^/?]+)/.exec(req.url);
    if (req.method === 'POST' && req.url === '/v1/chat/completions') {
      const body = JSON.parse(record.body);
      if (last) {
        const stream = streams.get(last.split('.')[0]);
        if (!stream) return void res.writeHead(204).end();
        return send(res, stream, startIndex(stream, last));
      }
      const id = `s${nextStream++}`;
      const stream = { id, events: eventsFor(id, body.model), cancelled: false };
      streams.set(id, stream);
      return send(res, stream, 0);
    }
    if (m && req.method === 'GET') {
      const stream = streams.get(decodeURIComponent(m[1]));
      if (!stream) return void res.writeHead(204).end();
      return send(res, stream, startIndex(stream, last));
    }
    if (m && req.method === 'DELETE') {
      const stream = streams.get(decodeURIComponent(m[1]));
      if (!stream) return errorJson(res, 404, { message: 'no such stream', type: 'invalid_request_error' });
      stream.cancelled = true;
      return void res.writeHead(204).end();
    }
    errorJson(res, 404, { message: `Unknown path ${req.url}`, type: 'invalid_request_error' });
  };
}

const ANSWER =
  'Streams break. A good client notices, reconnects with Last-Event-ID, and the reader never sees a gap:\n\n' +
  '```c\nint main(void) {\n    return 0;\n}\n```\n\n- one\n- two — ünïcödé 😀\n';
const chatBody = (content = 'hello') => ({ model: 'fake', messages: [{ role: 'user', content }] });

async function collect(chat) {
  let text = '';
  let deltas = 0;
  for await (const d of chat) {
    text += d;
    deltas++;
  }
  return { text, deltas };
}

/* ------------------------------------------------- fetchEventSource: server */

describe('fetchEventSource against the protocol test server', () => {
  test('sends method, headers, body; Accept: text/event-stream; onopen, onmessage, onclose in order', async (t) => {
    const srv = await startServer((req, res) => {
      sseHead(res);
      res.end('event: greet\nid: 1\ndata: a\ndata: b\n\ndata: c\n\n');
    });
    t.after(() => srv.close());
    const calls = [];
    await fetchEventSource(`${srv.url}/x`, {
      method: 'POST',
      headers: { 'x-custom': 'yes', 'content-type': 'application/json' },
      body: '{"q":1}',
      onopen: async (res) => calls.push(['open', res.status]),
      onmessage: (m) => calls.push(['message', m.type, m.event, m.data, m.id, m.lastEventId]),
      onclose: () => calls.push(['close']),
    });
    assert.deepEqual(calls, [
      ['open', 200],
      ['message', 'greet', 'greet', 'a\nb', '1', '1'],
      ['message', 'message', 'message', 'c', '1', '1'],
      ['close'],
    ]);
    assert.equal(srv.requests.length, 1, 'a clean end does not reconnect');
    const r = srv.requests[0];
    assert.equal(r.method, 'POST');
    assert.equal(r.body, '{"q":1}');
    assert.equal(r.headers['x-custom'], 'yes');
    assert.equal(r.headers.accept, 'text/event-stream');
    assert.equal(r.headers['last-event-id'], undefined);
  });

  test('reconnects after a cut with Last-Event-ID, after the retry: interval the server set', async (t) => {
    const srv = await startServer(async (req, res) => {
      sseHead(res);
      if (srv.requests.length === 1) return writeThenCut(res, 'retry: 150\nid: 41\ndata: first\n\nid: 42\ndata: second\n\nid: 43\ndata: never dispatched\n');
      res.end('id: 44\ndata: third\n\n');
    });
    t.after(() => srv.close());
    const got = [];
    const errors = [];
    await fetchEventSource(`${srv.url}/s`, {
      method: 'POST',
      body: 'same body',
      onmessage: (m) => got.push([m.data, m.lastEventId]),
      onerror: (err) => {
        errors.push(err);
      },
      retryInterval: 5000, // replaced by the server's retry: 150
    });
    assert.deepEqual(got, [
      ['first', '41'],
      ['second', '42'],
      ['third', '44'],
    ]);
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof TelexConnectionError, String(errors[0]));
    assert.equal(srv.requests.length, 2);
    const [a, b] = srv.requests;
    assert.equal(b.headers['last-event-id'], '42', 'the id of the last complete event');
    assert.equal(b.method, 'POST');
    assert.equal(b.body, 'same body');
    const gap = b.at - a.at;
    // after the server's 150 ms, not the 5000 ms it was replaced with
    assert.ok(gap >= 140 && gap < 5000, `reconnected after ${gap} ms (retry: 150)`);
  });

  test('backs off on repeated failures, honours maxRetries, rejects with the HTTP error', async (t) => {
    const srv = await startServer((req, res) => errorJson(res, 503, { message: 'busy', type: 'server_error' }));
    t.after(() => srv.close());
    const base = 100;
    await assert.rejects(
      fetchEventSource(`${srv.url}/s`, { retryInterval: base, maxRetries: 3, onmessage() {} }),
      (err) => err instanceof TelexHTTPError && err.status === 503 && err.message === 'busy',
    );
    assert.equal(srv.requests.length, 4, 'one try and three retries');
    // each wait is at least the backoff of web/telex.js (base x 2^(n-1), +-20 % jitter): lower
    // bounds hold however slow the machine; a delay that did not grow would be 3 x 100 ms shorter
    const gaps = srv.requests.slice(1).map((r, i) => r.at - srv.requests[i].at);
    assert.ok(gaps[0] >= base - 5, `first retry after retryInterval: ${gaps}`);
    assert.ok(gaps[1] >= 0.8 * 2 * base - 5, `the delay grows: ${gaps}`);
    assert.ok(gaps[2] >= 0.8 * 4 * base - 5, `the delay grows: ${gaps}`);
  });

  test('a 4xx is not retried by default; the OpenAI error body becomes a TelexHTTPError', async (t) => {
    const srv = await startServer((req, res) =>
      errorJson(res, 400, { message: 'messages must be a non-empty array.', type: 'invalid_request_error', param: 'messages', code: 'invalid_request' }),
    );
    t.after(() => srv.close());
    const err = await fetchEventSource(srv.url, { onmessage() {} }).then(
      () => null,
      (e) => e,
    );
    assert.ok(err instanceof TelexHTTPError && err instanceof TelexError);
    assert.deepEqual([err.status, err.type, err.param, err.code, err.message], [400, 'invalid_request_error', 'messages', 'invalid_request', 'messages must be a non-empty array.']);
    assert.equal(srv.requests.length, 1);
  });

  test('200 that is not text/event-stream is refused by the default onopen', async (t) => {
    const srv = await startServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
    t.after(() => srv.close());
    await assert.rejects(fetchEventSource(srv.url, { onerror: (e) => { throw e; } }), (e) => e instanceof TelexHTTPError && /text\/event-stream/.test(e.message));
  });

  test('204 on the first request: resolves at once, no events, no retry', async (t) => {
    const srv = await startServer((req, res) => res.writeHead(204).end());
    t.after(() => srv.close());
    let opened = false;
    let messages = 0;
    await fetchEventSource(srv.url, { onopen: () => { opened = true; }, onmessage: () => messages++ });
    assert.equal(opened, false, 'a 204 never reaches onopen');
    assert.equal(messages, 0);
    assert.equal(srv.requests.length, 1);
  });

  test('204 on a reconnection stops reconnecting', async (t) => {
    const srv = await startServer(async (req, res) => {
      if (srv.requests.length > 1) return void res.writeHead(204).end();
      sseHead(res);
      return writeThenCut(res, 'retry: 5\nid: 9\ndata: x\n\n');
    });
    t.after(() => srv.close());
    const got = [];
    await fetchEventSource(srv.url, { onmessage: (m) => got.push(m.data) });
    assert.deepEqual(got, ['x']);
    assert.equal(srv.requests.length, 2);
    assert.equal(srv.requests[1].headers['last-event-id'], '9');
  });

  test('onclose that throws turns a clean end into a reconnection', async (t) => {
    const srv = await startServer((req, res) => {
      sseHead(res);
      res.end(srv.requests.length === 1 ? 'retry: 5\nid: a\ndata: 1\n\n' : 'id: b\ndata: 2\n\nevent: end\ndata: bye\n\n');
    });
    t.after(() => srv.close());
    const got = [];
    let done = false;
    await fetchEventSource(srv.url, {
      onmessage: (m) => {
        got.push(m.data);
        if (m.type === 'end') done = true;
      },
      onclose: () => {
        if (!done) throw new TelexConnectionError('ended early');
      },
    });
    assert.deepEqual(got, ['1', '2', 'bye']);
    assert.equal(srv.requests[1].headers['last-event-id'], 'a');
  });

  test('onerror: a returned delay is used; what it throws rejects', async (t) => {
    const srv = await startServer(async (req, res) => {
      sseHead(res);
      return writeThenCut(res, 'retry: 10000\ndata: x\n\n');
    });
    t.after(() => srv.close());
    let n = 0;
    const stop = new Error('enough');
    await assert.rejects(
      fetchEventSource(srv.url, {
        onerror: () => {
          if (++n === 3) throw stop;
          return 10; // instead of the server's 10 s
        },
      }),
      (e) => e === stop,
    );
    assert.equal(srv.requests.length, 3);
  });

  test('onmessage that throws rejects (no onerror)', async (t) => {
    const srv = await startServer((req, res) => {
      sseHead(res);
      res.end('data: 1\n\ndata: 2\n\n');
    });
    t.after(() => srv.close());
    const boom = new Error('boom');
    await assert.rejects(fetchEventSource(srv.url, { onmessage: () => { throw boom; } }), (e) => e === boom);
    assert.equal(srv.requests.length, 1);
  });

  test('abort mid-stream: resolves, and the server sees the client leave', async (t) => {
    const srv = await startServer((req, res) => {
      sseHead(res);
      res.write('data: first\n\n'); // and then nothing, forever
    });
    t.after(() => srv.close());
    const ac = new AbortController();
    const got = [];
    const p = fetchEventSource(srv.url, {
      signal: ac.signal,
      onmessage: (m) => {
        got.push(m.data);
        ac.abort();
      },
    });
    await within(p, 1000 + LATE_MS, 'fetchEventSource after abort (the server never ends the stream)');
    assert.deepEqual(got, ['first']);
    await waitFor(() => srv.requests[0].gone, { message: 'the server noticing the client left' });
    assert.equal(srv.requests.length, 1, 'no reconnection after abort');
  });

  test('an already-aborted signal: resolves without any request', async (t) => {
    const srv = await startServer((req, res) => res.writeHead(204).end());
    t.after(() => srv.close());
    const ac = new AbortController();
    ac.abort();
    let opened = false;
    await fetchEventSource(srv.url, { signal: ac.signal, onopen: () => { opened = true; } });
    // (a request sent after all would show up here; a slow machine can only hide it, not invent it)
    await sleep(50);
    assert.equal(opened, false);
    assert.equal(srv.requests.length, 0);
  });

  test('abort during the wait before a reconnection resolves at once', async (t) => {
    const srv = await startServer(async (req, res) => {
      sseHead(res);
      return writeThenCut(res, 'retry: 60000\ndata: x\n\n');
    });
    t.after(() => srv.close());
    const ac = new AbortController();
    const p = fetchEventSource(srv.url, { signal: ac.signal, onerror: () => { setTimeout(() => ac.abort(), 20); } });
    await within(p, 1000 + LATE_MS, 'fetchEventSource aborted during a 60 s retry wait');
    assert.equal(srv.requests.length, 1);
  });

  test('a connection refused is a TelexConnectionError (passed to onerror)', async () => {
    const srv = await startServer(() => {});
    const url = srv.url;
    await srv.close();
    const seen = [];
    await assert.rejects(
      fetchEventSource(url, { onerror: (e) => { seen.push(e); throw e; } }),
      (e) => e instanceof TelexConnectionError && e.cause !== undefined,
    );
    assert.equal(seen.length, 1);
  });
});

/* ------------------------------------------------------- streamChat: server */

describe('streamChat against the protocol test server', () => {
  for (const [name, cuts] of [
    ['cut before the first event', [0]],
    ['cut after one event', [1]],
    ['cut mid-answer', [12]],
    ['cut before [DONE]', [-1]],
    ['cut every 5 events', Array(40).fill(5)],
  ]) {
    test(`resumes transparently: ${name} — exact uninterrupted text, usage with cost`, async (t) => {
      const total = (ANSWER.match(/\s*\S+|\s+$/g) ?? []).length + 4;
      const plan = cuts.map((c) => (c < 0 ? total + c : c));
      const srv = await startServer(chatGateway({ answer: ANSWER, cuts: plan, retryMs: 5 }));
      t.after(() => srv.close());
      const seenIds = [];
      const chat = streamChat({ baseUrl: srv.url, apiKey: 'tlx_test', body: chatBody(), onStreamId: (id) => seenIds.push(id) });
      const { text } = await collect(chat);
      assert.equal(text, ANSWER);
      const done = await chat.done;
      assert.equal(done.text, ANSWER);
      assert.equal(done.finishReason, 'stop');
      assert.equal(done.usage.cost_usd, 0.000123);
      assert.equal(done.usage.completion_tokens, total - 4);
      assert.equal(chat.streamId, 's1');
      assert.ok(seenIds.length >= 1 && seenIds.every((id) => id === 's1'));
      const resumes = srv.requests.slice(1);
      assert.equal(chat.resumes, resumes.length);
      assert.ok(resumes.length >= 1, 'at least one resume');
      const first = srv.requests[0];
      assert.equal(first.method, 'POST');
      assert.equal(first.headers.authorization, 'Bearer tlx_test');
      const sent = JSON.parse(first.body);
      assert.equal(sent.stream, true);
      assert.deepEqual(sent.stream_options, { include_usage: true });
      for (const r of resumes) {
        assert.equal(r.method, 'GET');
        assert.equal(r.url, '/v1/streams/s1');
        assert.equal(r.headers.authorization, 'Bearer tlx_test', 'a resume carries the same key');
      }
      if (plan[0] > 0) assert.equal(resumes[0].headers['last-event-id'], `s1.${plan[0] - 1}`);
      else assert.equal(resumes[0].headers['last-event-id'], undefined, 'nothing received: from the start');
    });
  }

  test('without X-Telex-Stream-Id: resumes by re-POSTing the same body with Last-Event-ID', async (t) => {
    const srv = await startServer(chatGateway({ answer: ANSWER, cuts: [7], streamIdHeader: false, retryMs: 5 }));
    t.after(() => srv.close());
    const chat = streamChat({ baseUrl: srv.url + '/', body: chatBody('same') });
    const { text } = await collect(chat);
    assert.equal(text, ANSWER);
    assert.equal(srv.requests.length, 2);
    const [a, b] = srv.requests;
    assert.equal(b.method, 'POST');
    assert.equal(b.url, '/v1/chat/completions');
    assert.equal(b.body, a.body);
    assert.equal(b.headers['last-event-id'], 's1.6');
    assert.equal(chat.streamId, null);
  });

  test('the retry: interval of the stream paces the resume', async (t) => {
    const srv = await startServer(chatGateway({ answer: ANSWER, cuts: [3], retryMs: 300 }));
    t.after(() => srv.close());
    const { text } = await collect(streamChat({ baseUrl: srv.url, body: chatBody() }));
    assert.equal(text, ANSWER);
    const gap = srv.requests[1].at - srv.requests[0].at;
    assert.ok(gap >= 290, `resumed after ${gap} ms`);
  });

  test('a server without event ids cannot resume: TelexConnectionError, text so far kept', async (t) => {
    const srv = await startServer(chatGateway({ answer: ANSWER, cuts: [6], ids: false, streamIdHeader: false }));
    t.after(() => srv.close());
    const chat = streamChat({ baseUrl: srv.url, body: chatBody() });
    let text = '';
    await assert.rejects(
      (async () => {
        for await (const d of chat) text += d;
      })(),
      (e) => e instanceof TelexConnectionError && /does not support resuming/.test(e.message),
    );
    assert.ok(text.length > 0 && ANSWER.startsWith(text) && text.length < ANSWER.length);
    assert.equal(chat.text, text);
    assert.equal(srv.requests.length, 1, 'no second generation is started');
  });

  test('a stream that is gone on resume (204) is a clear TelexConnectionError', async (t) => {
    const inner = chatGateway({ answer: ANSWER, cuts: [4], retryMs: 5 });
    const srv = await startServer((req, res, rec) => (req.method === 'GET' ? void res.writeHead(204).end() : inner(req, res, rec)));
    t.after(() => srv.close());
    await assert.rejects(collect(streamChat({ baseUrl: srv.url, body: chatBody() })), (e) => e instanceof TelexConnectionError && /could not be resumed/.test(e.message));
  });

  test('attach to a running stream by id (a reloaded page): the whole answer from the start', async (t) => {
    const srv = await startServer(chatGateway({ answer: ANSWER, cuts: [5], retryMs: 5 }));
    t.after(() => srv.close());
    // Start one and abandon it after its first connection broke.
    const first = streamChat({ baseUrl: srv.url, body: chatBody(), maxRetries: 0 });
    await assert.rejects(collect(first), TelexConnectionError);
    assert.equal(first.streamId, 's1');
    const again = streamChat({ baseUrl: srv.url, streamId: 's1' });
    const { text } = await collect(again);
    assert.equal(text, ANSWER);
    const r = srv.requests.at(-1);
    assert.equal(r.method, 'GET');
    assert.equal(r.url, '/v1/streams/s1');
    assert.equal(r.headers['last-event-id'], undefined);
  });

  test('HTTP errors are typed: 401, 402, 429 with Retry-After', async (t) => {
    const srv = await startServer((req, res, rec) => {
      const status = Number(JSON.parse(rec.body).messages[0].content);
      errorJson(res, status, { message: `status ${status}`, type: 'x', code: `c${status}` }, status === 429 ? { 'retry-after': '7' } : {});
    });
    t.after(() => srv.close());
    for (const status of [401, 402, 429, 500]) {
      const chat = streamChat({ baseUrl: srv.url, body: chatBody(String(status)) });
      const err = await collect(chat).then(
        () => null,
        (e) => e,
      );
      assert.ok(err instanceof TelexHTTPError, `${status}: ${err}`);
      assert.equal(err.status, status);
      assert.equal(err.code, `c${status}`);
      assert.equal(err.message, `status ${status}`);
      assert.equal(err.retryAfter, status === 429 ? 7 : null);
      await assert.rejects(chat.done, (e) => e === err);
    }
    assert.equal(srv.requests.length, 4, 'HTTP errors are not retried');
  });

  test('an error event mid-stream is a TelexStreamError; no resume attempted', async (t) => {
    const srv = await startServer((req, res) => {
      sseHead(res);
      res.end(
        'id: 1\ndata: {"choices":[{"delta":{"content":"Hel"}}]}\n\n' +
          'id: 2\ndata: {"error":{"message":"The provider broke the stream.","type":"upstream_error","code":"cut"}}\n\n',
      );
    });
    t.after(() => srv.close());
    const chat = streamChat({ baseUrl: srv.url, body: chatBody() });
    let text = '';
    const err = await (async () => {
      for await (const d of chat) text += d;
    })().then(
      () => null,
      (e) => e,
    );
    assert.ok(err instanceof TelexStreamError, String(err));
    assert.equal(err.code, 'cut');
    assert.equal(err.type, 'upstream_error');
    assert.equal(err.message, 'The provider broke the stream.');
    assert.equal(text, 'Hel');
    assert.equal(srv.requests.length, 1);
  });

  test('abort: the iterator throws AbortError and the server sees the client leave', async (t) => {
    const srv = await startServer((req, res) => {
      sseHead(res, { 'x-telex-stream-id': 'sx' });
      res.write('id: sx.0\ndata: {"choices":[{"delta":{"content":"a"}}]}\n\n');
    });
    t.after(() => srv.close());
    const ac = new AbortController();
    const chat = streamChat({ baseUrl: srv.url, body: chatBody(), signal: ac.signal });
    const err = await (async () => {
      for await (const d of chat) {
        assert.equal(d, 'a');
        ac.abort();
      }
    })().then(
      () => null,
      (e) => e,
    );
    assert.equal(err?.name, 'AbortError');
    await waitFor(() => srv.requests[0].gone, { message: 'client gone' });
    assert.equal(srv.requests.length, 1);
  });

  test('an already-aborted signal: no request at all', async (t) => {
    const srv = await startServer((req, res) => res.writeHead(500).end());
    t.after(() => srv.close());
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(collect(streamChat({ baseUrl: srv.url, body: chatBody(), signal: ac.signal })), { name: 'AbortError' });
    await sleep(30); // as above: a late request could only be missed, never made up
    assert.equal(srv.requests.length, 0);
  });

  test('breaking out of for-await closes the connection', async (t) => {
    const srv = await startServer((req, res) => {
      sseHead(res);
      res.write('data: {"choices":[{"delta":{"content":"a"}}]}\n\n');
    });
    t.after(() => srv.close());
    for await (const d of streamChat({ baseUrl: srv.url, body: chatBody() })) {
      assert.equal(d, 'a');
      break;
    }
    await waitFor(() => srv.requests[0].gone, { message: 'client gone' });
  });

  test('cancel(): aborts and DELETEs /v1/streams/{id} with the key; other subscribers see the end', async (t) => {
    const srv = await startServer(chatGateway({ answer: ANSWER.repeat(20), apiKey: 'k1' }));
    t.after(() => srv.close());
    const chat = streamChat({ baseUrl: srv.url, apiKey: 'k1', body: chatBody() });
    const it = chat[Symbol.asyncIterator]();
    await it.next();
    await waitFor(() => chat.streamId, { message: 'stream id' });
    const watcher = streamChat({ baseUrl: srv.url, apiKey: 'k1', streamId: chat.streamId });
    const watched = collect(watcher).then(
      () => null,
      (e) => e,
    );
    assert.equal(await chat.cancel(), true);
    await assert.rejects(it.next(), { name: 'AbortError' });
    const del = srv.requests.find((r) => r.method === 'DELETE');
    assert.equal(del.url, `/v1/streams/${chat.streamId}`);
    assert.equal(del.headers.authorization, 'Bearer k1');
    const werr = await watched;
    assert.ok(werr instanceof TelexStreamError && werr.code === 'cancelled', String(werr));
    assert.equal(await cancelStream({ baseUrl: srv.url, apiKey: 'k1', streamId: 'nope' }), false);
    assert.equal(await cancelStream({ baseUrl: srv.url, apiKey: 'k1' }), false, 'no id: nothing to do');
  });

  test('preset: POSTs to /v1/presets/{name}', async (t) => {
    const srv = await startServer((req, res) => {
      sseHead(res);
      res.end('data: {"choices":[{"delta":{"content":"ok"}}]}\n\ndata: [DONE]\n\n');
    });
    t.after(() => srv.close());
    const { text } = await collect(streamChat({ baseUrl: srv.url, preset: 'sum mary', body: { content: 'text', variables: { a: 1 } } }));
    assert.equal(text, 'ok');
    assert.equal(srv.requests[0].url, '/v1/presets/sum%20mary');
    assert.deepEqual(JSON.parse(srv.requests[0].body).variables, { a: 1 });
  });
});

/* ------------------------------------------------------------- real telex */

describe('against a real telex serve (demo model)', () => {
  let serve;
  before(async () => {
    serve = await startServe();
  });
  after(() => stopProcess(serve));

  test('fetchEventSource streams chunks then [DONE] and resolves after onclose', async () => {
    const datas = [];
    let status = 0;
    let closed = false;
    await fetchEventSource(`${serve.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hi' }], stream: true, max_tokens: 8 }),
      onopen: async (r) => {
        status = r.status;
        assert.match(r.headers.get('content-type'), /^text\/event-stream/);
      },
      onmessage: (m) => datas.push(m.data),
      onclose: () => {
        closed = true;
      },
    });
    assert.equal(status, 200);
    assert.ok(closed);
    assert.equal(datas.at(-1), '[DONE]');
    const content = datas.slice(0, -1).map((d) => JSON.parse(d).choices[0]?.delta?.content ?? '');
    assert.equal(content.filter(Boolean).length, 8, 'max_tokens: 8 content chunks');
  });

  test('streamChat text equals the non-streamed answer; usage counts it', async () => {
    const body = { model: 'demo', messages: [{ role: 'user', content: 'How do I learn SQL joins?' }], max_tokens: 40 };
    const chat = streamChat({ baseUrl: serve.url, body });
    const { text, deltas } = await collect(chat);
    const whole = await (await fetch(`${serve.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(body) })).json();
    assert.equal(text, whole.choices[0].message.content);
    assert.equal(deltas, 40);
    const done = await chat.done;
    assert.equal(done.usage.completion_tokens, 40);
    assert.equal(done.finishReason, 'length');
    assert.equal(done.model, 'demo');
  });

  test('an unknown model is a TelexHTTPError 404 model_not_found; a wrong path 404 too', async () => {
    await assert.rejects(
      collect(streamChat({ baseUrl: serve.url, body: { model: 'no-such', messages: [{ role: 'user', content: 'x' }] } })),
      (e) => e instanceof TelexHTTPError && e.status === 404 && e.code === 'model_not_found' && /does not exist/.test(e.message),
    );
    await assert.rejects(fetchEventSource(`${serve.url}/v1/nothing`, {}), (e) => e instanceof TelexHTTPError && e.status === 404);
  });

  test('a resumable telex: drop the connection mid-answer, streamChat still returns the exact text', async (t) => {
    const probe = await fetch(`${serve.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'resume' }], stream: true, max_tokens: 1 }),
    });
    const resumable = probe.headers.has('x-telex-stream-id');
    await probe.body.cancel();
    if (!resumable) return t.skip('gateway has no resumable streams yet (issue 4)');
    const body = { model: 'demo', messages: [{ role: 'user', content: 'Tell me about resumable streams' }], max_tokens: 60 };
    const expected = (await (await fetch(`${serve.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(body) })).json()).choices[0].message.content;
    // A fetch that breaks the body after 10 chunks of the first response.
    let calls = 0;
    const cutting = async (input, init) => {
      const res = await fetch(input, init);
      if (calls++ > 0 || !res.body) return res;
      const reader = res.body.getReader();
      let n = 0;
      const stream = new ReadableStream({
        async pull(c) {
          const { done, value } = await reader.read();
          if (done) return c.close();
          if (++n > 10) {
            reader.cancel();
            return c.error(new TypeError('terminated'));
          }
          c.enqueue(value);
        },
      });
      return new Response(stream, { status: res.status, headers: res.headers });
    };
    const chat = streamChat({ baseUrl: serve.url, body, fetch: cutting, retryInterval: 10 });
    const { text } = await collect(chat);
    assert.equal(text, expected);
    assert.ok(chat.resumes >= 1);
  });
});

describe('against telex serve routed to telex mock', () => {
  let mock;
  let serve;
  let dir;
  before(async () => {
    mock = await startMock(['--delay-ms', '30']);
    dir = mkdtempSync(join(tmpdir(), 'telex-client-'));
    const cfg = join(dir, 'telex.yaml');
    writeFileSync(
      cfg,
      `providers:\n  - name: mock\n    kind: openai\n    base_url: ${mock.url}/v1\nmodels:\n  - name: gpt-test\n    providers:\n      - provider: mock\n        input_price_per_mtok: 1\n        output_price_per_mtok: 2\nresume:\n  grace_seconds: 0.5\n`,
    );
    serve = await startServe(['--config', cfg]);
  });
  after(async () => {
    await stopProcess(serve);
    await stopProcess(mock);
    rmSync(dir, { recursive: true, force: true });
  });
  const journal = async () => (await (await fetch(`${mock.url}/mock/requests`)).json()).requests;

  test('mock.text arrives exactly, token by token', async () => {
    const text = 'Exactly this — with <b>markup</b>, "quotes",\n\ttabs and 😀.';
    const chat = streamChat({ baseUrl: serve.url, body: { model: 'gpt-test', messages: [{ role: 'user', content: 'x' }], mock: { text, delay_ms: 1 } } });
    const { text: got, deltas } = await collect(chat);
    assert.equal(got, text);
    assert.ok(deltas > 5);
    assert.ok((await chat.done).usage.total_tokens > 0);
  });

  test('an upstream cut mid-answer reaches streamChat as TelexStreamError code "cut"', async () => {
    const chat = streamChat({ baseUrl: serve.url, body: { model: 'gpt-test', messages: [{ role: 'user', content: 'x' }], mock: { tokens: 10, cut_after: 4, delay_ms: 1 } } });
    let text = '';
    const err = await (async () => {
      for await (const d of chat) text += d;
    })().then(
      () => null,
      (e) => e,
    );
    assert.ok(err instanceof TelexStreamError, String(err));
    assert.equal(err.code, 'cut');
    assert.ok(text.length > 0);
  });

  test('an upstream 429 before the stream is a TelexHTTPError 429', async () => {
    const err = await collect(
      streamChat({ baseUrl: serve.url, body: { model: 'gpt-test', messages: [{ role: 'user', content: 'x' }], mock: { status: 429, retry_after: 3 } } }),
    ).then(
      () => null,
      (e) => e,
    );
    assert.ok(err instanceof TelexHTTPError, String(err));
    assert.equal(err.status, 429);
  });

  // An abort only drops this client's connection; the gateway keeps the answer for
  // resume.grace_seconds (0.5 here) in case it comes back, then cancels it.
  test('abort in the client: after the resume grace the mock sees the client leave', async () => {
    const before = (await journal()).length;
    const ac = new AbortController();
    const chat = streamChat({ baseUrl: serve.url, signal: ac.signal, body: { model: 'gpt-test', messages: [{ role: 'user', content: 'x' }], mock: { tokens: 500, delay_ms: 20 } } });
    let n = 0;
    await assert.rejects(
      (async () => {
        for await (const _ of chat) if (++n === 3) ac.abort();
      })(),
      { name: 'AbortError' },
    );
    const entry = await waitFor(
      async () => {
        const all = await journal();
        const e = all[before];
        return e && e.client_gone && e;
      },
      { message: 'the mock journal saying client_gone' },
    );
    assert.equal(entry.completed, false);
    assert.ok(entry.content_events < 500);
  });
});
