// tests/integration/lib/resume.js — helpers for the resumable-stream suites
// (tests/integration/resume_*.test.js).
//
// Requests go through node:http with a fresh connection each (agent: false), so that
// with `workers: 2` every request lands on a worker chosen by the kernel (SO_REUSEPORT)
// and a resume often runs on another thread than the answer it attaches to.
//
// Exports:
//   resumeConfig(patch?)           config patch for startRelay: resume on, temp store, quiet keep-alives
//   request(url, opts?)            -> Promise<Reply>  one HTTP request, body read as an event stream
//   openAnswer(relay, mock, opts?) -> Promise<Reply & {sid, resumeUrl, token}>  POST a chat (see below)
//   resumeGet(relay, sid, opts?)   -> Promise<Reply>  GET /v1/streams/{sid}
//   replayAll(relay, sid)          -> Promise<Reply>  the whole answer again (GET from the start)
//   waitFinished(relay, sid)       -> Promise<Reply>  replay until the answer has ended
//   eventIds(sid, from, to)        -> ['<sid>.<from>', ...]
//   withoutRetry(events)           -> the events without their `retry` member
//   assertExact(parts, full, sid)  the concatenated parts equal `full` (ids and data), ids 1..n
//   directText(mock, mockKnobs, messages) -> the answer the mock gives for the same request
//   STREAM_ID_RE                   /^st_[A-Za-z0-9_-]{22}$/
//
// Reply: { status, headers (lower-case object), raw (Buffer), text, events: [{id, lastId, data,
//   type, retry}], comments, complete (the body ended normally), aborted (we dropped it after
//   `stopAfter` events), error }
// Event `id` is the event's own id line (null when it had none); `retry` the retry: value that
// came with it (null when none). Events are parsed with eventsource-parser (WHATWG rules).
import http from 'node:http';
import assert from 'node:assert/strict';
import path from 'node:path';
import { createParser } from 'eventsource-parser';

import { tmpDir, msgs } from './relay.js';

export const STREAM_ID_RE = /^st_[A-Za-z0-9_-]{22}$/;

export function resumeConfig(patch = {}) {
  const base = {
    resume: { enabled: true, grace_seconds: 5, retention_seconds: 30, retry_ms: 250 },
    streaming: { keepalive_seconds: 30 },
    store: { path: path.join(tmpDir('telex-resume-db-'), 'telex.db') },
  };
  const merge = (a, b) => {
    if (b === undefined) return a;
    if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object' || Array.isArray(b)) return b;
    const out = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = merge(a[k], v);
    return out;
  };
  return merge(base, patch);
}

// opts: { method, headers, body (object -> JSON), stopAfter (number of events, or fn(event, events)),
//         stopOnHeaders (drop the connection as soon as the headers are in; also stopAfter: 0),
//         leaveWhen (a promise: drop the connection when it settles, whatever has arrived),
//         timeoutMs, onEvent(event, events), localAddress (the client socket's source address, e.g.
//         127.0.0.2: another client address on loopback) }
export function request(url, opts = {}) {
  const { method = opts.body !== undefined ? 'POST' : 'GET', timeoutMs = 30000 } = opts;
  const headers = { ...(opts.headers ?? {}) };
  let body = opts.body;
  if (body !== undefined && typeof body !== 'string') {
    body = JSON.stringify(body);
    headers['content-type'] ??= 'application/json';
  }
  return new Promise((resolve) => {
    const reply = {
      status: 0,
      headers: {},
      raw: Buffer.alloc(0),
      text: '',
      events: [],
      comments: [],
      complete: false,
      aborted: false,
      error: null,
    };
    const parts = [];
    let lastId = '';
    let pendingRetry = null;
    let stop = false;
    let settled = false;
    const parser = createParser({
      onEvent(ev) {
        if (ev.id !== undefined) lastId = ev.id;
        const e = { id: ev.id ?? null, lastId, data: ev.data, type: ev.event ?? 'message', retry: pendingRetry };
        pendingRetry = null;
        reply.events.push(e);
        if (opts.onEvent) opts.onEvent(e, reply.events);
        const s = opts.stopAfter;
        if (!stop && s !== undefined && (typeof s === 'function' ? s(e, reply.events) : reply.events.length >= s))
          stop = true;
      },
      onRetry(ms) {
        pendingRetry = ms;
      },
      onComment(c) {
        reply.comments.push(c);
      },
    });
    const decoder = new TextDecoder();
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reply.raw = Buffer.concat(parts);
      reply.text = reply.raw.toString('utf8');
      resolve(reply);
    };
    const req = http.request(url, { method, headers, agent: false, localAddress: opts.localAddress });
    const timer = setTimeout(() => {
      reply.error = new Error(`timed out after ${timeoutMs} ms`);
      req.destroy();
      finish();
    }, timeoutMs);
    req.on('error', (err) => {
      if (!reply.aborted && !reply.error) reply.error = err;
      finish();
    });
    if (opts.leaveWhen) {
      const leave = () => {
        if (settled) return;
        reply.aborted = true;
        req.destroy();
        finish();
      };
      Promise.resolve(opts.leaveWhen).then(leave, leave);
    }
    req.on('response', (res) => {
      reply.status = res.statusCode;
      reply.headers = res.headers;
      if (opts.stopOnHeaders || opts.stopAfter === 0) {
        reply.aborted = true;
        req.destroy();
        finish();
        return;
      }
      res.on('data', (chunk) => {
        if (reply.aborted) return;
        parts.push(chunk);
        parser.feed(decoder.decode(chunk, { stream: true }));
        if (stop) {
          reply.aborted = true;
          req.destroy();
          finish();
        }
      });
      res.on('end', () => {
        if (!reply.aborted) {
          parser.feed(decoder.decode());
          reply.complete = true;
        }
        finish();
      });
      res.on('error', (err) => {
        if (!reply.aborted && !reply.error) reply.error = err;
        finish();
      });
      res.on('close', () => finish());
    });
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

// POSTs a streamed chat to the relay (model gpt-relay) and returns the reply with the
// stream id and resume URL from its headers. opts: request() options plus `messages`,
// `extra` (more body members), `eventIds` (default true: ask for telex's framing with
// X-Telex-Event-Ids: 1; false: the default, OpenAI-exact framing without ids).
export async function openAnswer(relay, mockKnobs, opts = {}) {
  const body = {
    model: 'gpt-relay',
    messages: opts.messages ?? msgs(),
    stream: true,
    mock: mockKnobs,
    ...(opts.extra ?? {}),
  };
  const r = await request(`${relay.url}/v1/chat/completions`, {
    ...opts,
    body,
    headers: {
      accept: 'text/event-stream',
      ...(opts.eventIds === false ? {} : { 'x-telex-event-ids': '1' }),
      ...(opts.headers ?? {}),
    },
  });
  r.sid = r.headers['x-telex-stream-id'] ?? null;
  r.resumeUrl = r.headers['x-telex-resume-url'] ?? null;
  r.token = r.resumeUrl ? new URL(r.resumeUrl, 'http://x').searchParams.get('token') : null;
  return r;
}

// GET /v1/streams/{sid}. opts: request() options plus lastEventId (header), query (string
// appended after '?'), accept (default text/event-stream; null for none).
export function resumeGet(relay, sid, opts = {}) {
  const headers = { ...(opts.headers ?? {}) };
  const accept = opts.accept === undefined ? 'text/event-stream' : opts.accept;
  if (accept !== null) headers.accept = accept;
  if (opts.lastEventId !== undefined) headers['last-event-id'] = opts.lastEventId;
  const q = opts.query ? `?${opts.query}` : '';
  return request(`${relay.url}/v1/streams/${sid}${q}`, { ...opts, headers, method: opts.method ?? 'GET' });
}

export const replayAll = (relay, sid) => resumeGet(relay, sid);

// Replays the stream from the start until the replay is a finished answer (it ends with
// [DONE] or an error event). Polls: a GET attached to a running answer simply follows it.
export async function waitFinished(relay, sid) {
  const r = await resumeGet(relay, sid, { timeoutMs: 60000 });
  assert.equal(r.status, 200, `replay of ${sid}: ${r.status} ${r.text.slice(0, 300)}`);
  assert.ok(r.complete, `replay of ${sid} ended cleanly (${r.error})`);
  return r;
}

// Events without the retry: field that came with them (a response resumed after event 1
// opens with its own retry: block, so its first event has one).
export const withoutRetry = (events) => events.map(({ retry, ...e }) => e); // eslint-disable-line no-unused-vars

export const eventIds = (sid, from, to) => {
  const out = [];
  for (let n = from; n <= to; n++) out.push(`${sid}.${n}`);
  return out;
};

// Every event carries its own id <sid>.<n>, n = 1, 2, 3... ; `parts` (arrays of events)
// concatenated are exactly `full`: same ids, same data, nothing missing, nothing twice.
export function assertExact(parts, full, sid, what = '') {
  const joined = parts.flat();
  const ids = full.map((e) => e.id);
  assert.deepEqual(ids, eventIds(sid, 1, full.length), `${what}: the full answer has ids 1..n`);
  assert.deepEqual(
    joined.map((e) => e.id),
    ids,
    `${what}: the ids of the pieces (${parts.map((p) => p.length).join('+')}) are the full answer's`,
  );
  assert.deepEqual(
    joined.map((e) => e.data),
    full.map((e) => e.data),
    `${what}: the data of the pieces are the full answer's`,
  );
}

export const contentOfEvents = (events) =>
  events
    .filter((e) => e.data !== '[DONE]')
    .map((e) => JSON.parse(e.data))
    .map((c) => c.choices?.[0]?.delta?.content ?? '')
    .join('');

// The answer text the mock itself gives for the same request (it is deterministic).
export async function directText(mock, mockKnobs, messages = msgs()) {
  const r = await request(`${mock.url}/v1/chat/completions`, {
    body: { model: 'direct', messages, stream: true, mock: mockKnobs },
  });
  assert.equal(r.status, 200);
  return { text: contentOfEvents(r.events), events: r.events.length };
}
