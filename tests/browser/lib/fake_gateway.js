// tests/browser/lib/fake_gateway.js — a small node:http stand-in for a telex gateway with the
// features that are specified but not in the C gateway yet (resumable streams, API keys,
// presets, cost), so the chat page's code paths for them can be tested in Chromium today.
//
// It serves the page from web/ on disk and speaks the protocol of issues 4 and 5:
//   GET  / , /app.js, /telex.js, /style.css ...   files of web/
//   GET  /v1/models                               {data:[{id}]} of `models`
//   GET  /v1/presets                              {data:[{id, model, description, variables, defaults}]}
//                                                 of `presets` (names or objects; 404 when none)
//   POST /v1/chat/completions                     a new stream: X-Telex-Stream-Id, every event
//                                                 with `id: {stream}.{n}`, `retry:` first; the
//                                                 answer is generated on a timer whether or not
//                                                 anyone is connected (like telex's stream log)
//   GET  /v1/streams/{id}                         replay after Last-Event-ID, then live; 204 if unknown
//   DELETE /v1/streams/{id}                       cancel: a final error event "cancelled"
//   401 for a missing/wrong key when `apiKey` is set; the usage chunk carries cost_usd.
//
// startFakeGateway({ answer(body) -> string, delayMs, apiKey, presets, models, costUsd, holdAfter })
//   -> Promise<{ url, requests, streams, release(), close() }>
//   requests: [{ method, path, headers, body }]; streams: Map id -> { id, events, done, cancelled, subscribers }
//   holdAfter: N — every answer stops after N content tokens (still streaming, connections open)
//   until release() lets them all go on: "mid-answer" for as long as a test needs.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO } from './browser.js';

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.ts': 'text/plain; charset=utf-8', '.png': 'image/png' };

export async function startFakeGateway({
  answer = () => 'Hello from the fake gateway.',
  delayMs = 40,
  apiKey = null,
  presets = [],
  models = ['fake-model'],
  costUsd = 0.00042,
  holdAfter = null,
} = {}) {
  const requests = [];
  const streams = new Map();
  const all = new Set(); // every stream ever made (a test may clear `streams`)
  let held = holdAfter !== null;
  let next = 1;
  const sockets = new Set();

  function json(res, status, obj) {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(obj));
  }
  const error = (res, status, message, type, code) => json(res, status, { error: { message, type, param: null, code } });

  function append(stream, data) {
    const n = stream.events.length;
    const text = `${n === 0 ? 'retry: 200\n' : ''}id: ${stream.id}.${n}\ndata: ${data}\n\n`;
    stream.events.push(text);
    for (const s of stream.subscribers) s.write(text);
  }
  function finish(stream) {
    stream.done = true;
    clearInterval(stream.timer);
    for (const s of stream.subscribers) s.end();
    stream.subscribers.clear();
  }

  function createStream(body) {
    const id = `st_fake${next++}`;
    const text = answer(body);
    const tokens = text.match(/\s*\S+|\s+$/g) ?? [];
    const stream = { id, events: [], done: false, cancelled: false, subscribers: new Set(), tokens, model: body.model };
    const base = { id: `chatcmpl-${id}`, object: 'chat.completion.chunk', created: 1, model: body.model };
    append(stream, JSON.stringify({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] }));
    let k = 0;
    const tick = () => {
      if (held && k >= holdAfter) {
        clearInterval(stream.timer);
        stream.held = true;
        return;
      }
      if (k < tokens.length) {
        append(stream, JSON.stringify({ ...base, choices: [{ index: 0, delta: { content: tokens[k++] }, finish_reason: null }] }));
        return;
      }
      append(stream, JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }));
      const usage = { prompt_tokens: 9, completion_tokens: tokens.length, total_tokens: 9 + tokens.length, cost_usd: costUsd };
      append(stream, JSON.stringify({ ...base, choices: [], usage }));
      append(stream, '[DONE]');
      finish(stream);
    };
    stream.resume = () => {
      if (!stream.held) return;
      stream.held = false;
      stream.timer = setInterval(tick, delayMs);
    };
    stream.timer = setInterval(tick, delayMs);
    streams.set(id, stream);
    all.add(stream);
    return stream;
  }

  function subscribe(res, stream, lastEventId) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-telex-stream-id': stream.id });
    let from = 0;
    if (lastEventId && lastEventId.startsWith(`${stream.id}.`)) from = Number(lastEventId.slice(stream.id.length + 1)) + 1;
    for (let i = from; i < stream.events.length; i++) res.write(stream.events[i]);
    if (stream.done) return res.end();
    stream.subscribers.add(res);
    res.on('close', () => stream.subscribers.delete(res));
  }

  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const url = new URL(req.url, 'http://x');
    const record = { method: req.method, path: url.pathname, headers: req.headers, body: Buffer.concat(chunks).toString() };
    requests.push(record);
    const path = url.pathname;

    if (req.method === 'GET' && !path.startsWith('/v1/')) {
      const name = path === '/' ? 'index.html' : path.slice(1);
      if (!/^[\w.-]+$/.test(name)) return error(res, 404, 'not found', 'invalid_request_error', 'not_found');
      try {
        const data = await readFile(join(REPO, 'web', name));
        res.writeHead(200, { 'content-type': TYPES[name.slice(name.lastIndexOf('.'))] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
        return res.end(data);
      } catch {
        return error(res, 404, `Unknown path ${path}.`, 'invalid_request_error', 'not_found');
      }
    }
    if (apiKey && req.headers.authorization !== `Bearer ${apiKey}`) {
      return error(res, 401, req.headers.authorization ? 'Incorrect API key provided.' : 'You did not provide an API key.', 'authentication_error', 'invalid_api_key');
    }
    if (req.method === 'GET' && path === '/v1/models') return json(res, 200, { object: 'list', data: models.map((id) => ({ id, object: 'model' })) });
    if (req.method === 'GET' && path === '/v1/presets') {
      if (presets.length === 0) return error(res, 404, `Unknown path ${path}.`, 'invalid_request_error', 'not_found');
      const data = presets.map((p) => (typeof p === 'string' ? { id: p } : p)).map((p) => ({ object: 'preset', model: 'fake-model', description: null, variables: [], defaults: {}, ...p }));
      return json(res, 200, { object: 'list', data });
    }
    if (req.method === 'POST' && path === '/v1/chat/completions') {
      let body;
      try {
        body = JSON.parse(record.body);
      } catch {
        return error(res, 400, 'The request body is not valid JSON.', 'invalid_request_error', 'invalid_request');
      }
      return subscribe(res, createStream(body), null);
    }
    const m = /^\/v1\/streams\/([^/]+)$/.exec(path);
    if (m) {
      const stream = streams.get(decodeURIComponent(m[1]));
      if (req.method === 'GET') {
        if (!stream) return void res.writeHead(204).end();
        return subscribe(res, stream, req.headers['last-event-id']);
      }
      if (req.method === 'DELETE') {
        if (!stream) return error(res, 404, 'No such stream.', 'invalid_request_error', 'not_found');
        if (!stream.done) {
          stream.cancelled = true;
          append(stream, JSON.stringify({ error: { message: 'The stream was cancelled.', type: 'cancelled', code: 'cancelled' } }));
          finish(stream);
        }
        return void res.writeHead(204).end();
      }
    }
    error(res, 404, `Unknown path ${path}.`, 'invalid_request_error', 'not_found');
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    streams,
    release() {
      held = false;
      for (const st of all) if (!st.cancelled) st.resume();
    },
    close() {
      for (const st of all) clearInterval(st.timer);
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(r));
    },
  };
}
