// tests/integration/resume_clients.test.js — real clients against resumable streams.
//
//  - the official `openai` SDK streams through telex unchanged (it ignores `id:` and `retry:`
//    lines): the same text and chunks with resume on and off; it can read X-Telex-Stream-Id
//    (withResponse) and resume with its generic client.get(..., { stream: true });
//  - the `eventsource` npm package: attaches via the resume URL (token and last_event_id in
//    the query) mid-answer and receives exactly the rest; after [DONE] its automatic reconnect
//    gets 204 and it closes itself; a connection cut mid-answer is resumed by its own
//    reconnect (Last-Event-ID), exactly; an expired stream's 204 closes it at once;
//  - a page on another origin (cors.origins): the stream headers are exposed to it, and the
//    resume URL answers with Access-Control-Allow-Origin (EventSource across origins).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import OpenAI from 'openai';

import { waitFor } from './lib/proc.js';
import { SLACK, msgs, requestLogs, startRelay } from './lib/relay.js';
import { parseSSEText } from './lib/sse.js';
import {
  assertExact,
  contentOfEvents,
  directText,
  eventIds,
  openAnswer,
  request,
  resumeConfig,
  waitFinished,
} from './lib/resume.js';

let relay; // resume on
let plain; // resume off
before(async () => {
  relay = await startRelay({
    config: resumeConfig({ resume: { retry_ms: 200 }, cors: { origins: ['https://app.example.com'] } }),
  });
  plain = await startRelay({ mock: relay.mock, config: resumeConfig({ resume: { enabled: false } }) });
});
after(async () => {
  if (plain) await plain.stop();
  if (relay) await relay.stop();
});

const sdk = (r) => new OpenAI({ baseURL: `${r.url}/v1`, apiKey: 'sk-not-checked', maxRetries: 0, timeout: 20000 });

async function sdkStream(client, params) {
  const stream = await client.chat.completions.create({ ...params, stream: true });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return { chunks, text: chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('') };
}

describe('the openai SDK', () => {
  test('streams the same answer with resume on (id:/retry: lines) and off', async () => {
    const params = { model: 'gpt-relay', messages: msgs('sdk resume compat'), mock: { tokens: 30, delay_ms: 2 } };
    const on = await sdkStream(sdk(relay), params);
    const off = await sdkStream(sdk(plain), params);
    assert.equal(on.text, off.text);
    assert.equal(on.text, (await directText(relay.mock, params.mock, params.messages)).text);
    assert.equal(on.chunks.length, 32);
    assert.equal(on.chunks.length, off.chunks.length);
    const strip = (c) => ({ ...c, id: 'x', created: 0 });
    assert.deepEqual(on.chunks.map(strip), off.chunks.map(strip), 'chunk for chunk the same objects');
    assert.equal(on.chunks.at(-1).choices[0].finish_reason, 'stop');
    // ...and the resume-on stream did carry the SSE fields the SDK skipped
    const raw = await openAnswer(relay, params.mock, { messages: params.messages });
    assert.match(raw.text, /^id: st_[\w-]{22}\.1\nretry: 200\n/);
  });

  test('reads X-Telex-Stream-Id and resumes with client.get(..., { stream: true })', async () => {
    const client = sdk(relay);
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'gpt-relay', messages: msgs('sdk resume'), stream: true, mock: { tokens: 40, delay_ms: 10 } })
      .withResponse();
    const sid = response.headers.get('x-telex-stream-id');
    const got = [];
    for await (const c of stream) {
      got.push(c);
      if (got.length === 6) break; // leaves: the SDK aborts the request
    }
    const rest = await client.get(`/streams/${sid}`, { stream: true, headers: { 'Last-Event-ID': `${sid}.6` } });
    for await (const c of rest) got.push(c);
    const full = await waitFinished(relay, sid);
    const want = full.events.filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data));
    assert.deepEqual(got, want, 'the SDK got every chunk once');
  });

  test('resumes by count with client.get(..., { stream: true, query: { after: n } }) (docs/resume.md)', async () => {
    const client = sdk(relay);
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'gpt-relay', messages: msgs('sdk resume by count'), stream: true, mock: { tokens: 40, delay_ms: 10 } })
      .withResponse();
    const sid = response.headers.get('x-telex-stream-id');
    const got = [];
    for await (const c of stream) {
      got.push(c);
      if (got.length === 9) break;
    }
    const rest = await client.get(`/streams/${sid}`, { stream: true, query: { after: got.length } });
    for await (const c of rest) got.push(c);
    const full = await waitFinished(relay, sid);
    const want = full.events.filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data));
    assert.deepEqual(got, want, 'the SDK got every chunk once');
  });
});

// Runs an EventSource until it closes itself (or the timeout); records its events and errors.
function runEventSource(url, opts = {}) {
  const es = new EventSource(url, opts.init);
  const out = { es, events: [], errors: [], opens: 0 };
  out.closed = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      es.close();
      reject(new Error(`EventSource still open after ${opts.timeoutMs ?? 20000} ms: ${out.events.length} events`));
    }, opts.timeoutMs ?? 20000 * SLACK);
    es.addEventListener('open', () => out.opens++);
    es.addEventListener('message', (m) => {
      out.events.push({ id: m.lastEventId, data: m.data });
      if (m.data === '[DONE]') out.doneAt = performance.now();
      if (opts.closeOnDone && m.data === '[DONE]') {
        es.close();
        clearTimeout(timer);
        resolve(out);
      }
    });
    es.addEventListener('error', (e) => {
      out.errors.push({ code: e.code, message: e.message, readyState: es.readyState });
      if (es.readyState === EventSource.CLOSED) {
        out.closedAt = performance.now();
        clearTimeout(timer);
        resolve(out);
      }
    });
  });
  return out;
}

const streamGets = (gw, sid) => requestLogs(gw.serve).filter((l) => l.path === `/v1/streams/${sid}`);

describe('the eventsource npm package', () => {
  test('attaches mid-answer via the resume URL + last_event_id, gets the rest, stops on 204', async () => {
    const first = await openAnswer(relay, { tokens: 40, delay_ms: 15 }, { messages: msgs('es attach'), stopAfter: 8 });
    const url = `${relay.url}${first.resumeUrl}&last_event_id=${first.sid}.8`;
    const run = runEventSource(url);
    await run.closed;
    assert.equal(run.es.readyState, EventSource.CLOSED);
    // exactly the rest, ids included
    const full = await waitFinished(relay, first.sid);
    assertExact([first.events.slice(0, 8), run.events], full.events, first.sid, 'eventsource');
    assert.equal(run.events.at(-1).data, '[DONE]');
    // It reconnected once after the end (with Last-Event-ID = the [DONE] event's id), after
    // retry: 200 ms (sent at the start of the attach), got 204 and closed itself: no loop.
    assert.equal(run.opens, 1);
    assert.deepEqual(
      run.errors.map((e) => [e.code, e.readyState]),
      [
        [undefined, EventSource.CONNECTING],
        [204, EventSource.CLOSED],
      ],
    );
    const gap = run.closedAt - run.doneAt;
    // after retry: 200 ms, not the package's default of 3 s
    assert.ok(gap >= 150 && gap < 3000, `reconnected ${gap.toFixed(0)} ms after the end`);
    // (the EventSource is CLOSED: no more requests can come from it; the log lines of the
    // three requests are written as each ends)
    await waitFor(() => streamGets(relay, first.sid).length >= 3, { message: 'three GET log lines' });
    const gets = streamGets(relay, first.sid);
    assert.deepEqual(
      gets.map((l) => l.status),
      [200, 204, 200],
      'attach, the reconnect, and our replay',
    );
  });

  test('a connection cut mid-answer: its own reconnect resumes with Last-Event-ID, exactly', async () => {
    const first = await openAnswer(relay, { tokens: 60, delay_ms: 15 }, { messages: msgs('es cut'), stopAfter: 2 });
    let connections = 0;
    const lastIds = [];
    // A fetch whose first response body breaks off after ~2 KB, like a dropped connection.
    const cuttingFetch = async (input, init) => {
      connections++;
      lastIds.push(new Headers(init.headers).get('last-event-id'));
      const res = await fetch(input, init);
      if (connections > 1 || !res.body) return res;
      const reader = res.body.getReader();
      let seen = 0;
      const body = new ReadableStream({
        async pull(controller) {
          const { value, done } = await reader.read();
          if (done) return controller.close();
          seen += value.length;
          controller.enqueue(value);
          if (seen > 2000) {
            reader.cancel().catch(() => {});
            controller.error(new TypeError('terminated'));
          }
        },
      });
      return new Response(body, { status: res.status, headers: res.headers });
    };
    const run = runEventSource(`${relay.url}${first.resumeUrl}`, { init: { fetch: cuttingFetch }, closeOnDone: true });
    await run.closed;
    assert.equal(connections, 2, 'one reconnect');
    assert.equal(lastIds[0], null);
    assert.match(lastIds[1], new RegExp(`^${first.sid}\\.\\d+$`), 'the reconnect sent Last-Event-ID');
    const full = await waitFinished(relay, first.sid);
    assert.deepEqual(
      run.events.map((e) => e.id),
      eventIds(first.sid, 1, 63),
    );
    assert.deepEqual(
      run.events.map((e) => e.data),
      full.events.map((e) => e.data),
    );
  });

  test('an expired or unknown stream: 204 at once, no reconnect', async () => {
    const run = runEventSource(`${relay.url}/v1/streams/st_AAAAAAAAAAAAAAAAAAAAAA?token=x`);
    await run.closed;
    assert.equal(run.opens, 0);
    assert.deepEqual(
      run.errors.map((e) => e.code),
      [204],
    );
    assert.equal(run.events.length, 0);
  });
});

describe('resume with fetch', () => {
  test('a POST retried with Last-Event-ID continues the same answer (what web/telex.js does)', async () => {
    const body = { model: 'gpt-relay', messages: msgs('fetch retry'), stream: true, mock: { tokens: 30, delay_ms: 10 } };
    const first = await openAnswer(relay, body.mock, { messages: body.messages, stopAfter: 4 });
    const res = await fetch(`${relay.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'last-event-id': `${first.sid}.4` },
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-telex-stream-id'), first.sid);
    const text = await res.text();
    const rest = parseSSEText(text);
    const full = await waitFinished(relay, first.sid);
    assertExact([first.events.slice(0, 4), rest.map((e) => ({ id: e.id, data: e.data }))], full.events, first.sid, 'fetch');
    assert.equal(contentOfEvents(full.events), (await directText(relay.mock, body.mock, body.messages)).text);
  });
});

describe('a page on another origin (cors.origins)', () => {
  const ORIGIN = 'https://app.example.com';

  test('GET /v1/streams/{id} carries Access-Control-Allow-Origin (cross-origin EventSource)', async () => {
    const first = await openAnswer(relay, { tokens: 3 }, { headers: { origin: ORIGIN } });
    assert.equal(first.headers['access-control-allow-origin'], ORIGIN);
    const r = await request(`${relay.url}${first.resumeUrl}`, { headers: { origin: ORIGIN, accept: 'text/event-stream' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], ORIGIN);
    // the preflight of a fetch that resumes with a Last-Event-ID header allows that header
    const pre = await request(`${relay.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'last-event-id' },
    });
    assert.equal(pre.status, 204);
    assert.match(pre.headers['access-control-allow-headers'], /(^|,\s*)Last-Event-ID(,|$)/i);
  });

  test(
    'the page can read X-Telex-Stream-Id and X-Telex-Resume-Url (Access-Control-Expose-Headers)',
    async () => {
      const first = await openAnswer(relay, { tokens: 1 }, { headers: { origin: ORIGIN } });
      const exposed = first.headers['access-control-expose-headers'].split(/,\s*/).map((h) => h.toLowerCase());
      assert.ok(exposed.includes('x-telex-stream-id'), exposed.join(', '));
      assert.ok(exposed.includes('x-telex-resume-url'), exposed.join(', '));
    },
  );
});
