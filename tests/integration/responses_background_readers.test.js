// tests/integration/responses_background_readers.test.js — readers that attach to a running
// background Response (POST /v1/responses with `background: true`, no stream) with
// GET /v1/responses/{id}?stream=true[&starting_after=N], and leave.
//
// What must hold:
//   - a reader that attaches, stops reading (back-pressure pauses the provider for it) and then
//     leaves — an HTTP/1.1 reader closing its connection, an HTTP/2 reader cancelling its
//     stream on a connection that stays open, the client of a `background: true, stream: true`
//     POST closing its connection — leaves an answer that goes on and completes:
//     `request` line `ok`, GET /v1/responses/{id} `completed` with the provider's whole text —
//     not paused for good with nobody left to read;
//   - after that, with the history nobody was sent dropped: a reader from the start, or from
//     where the first one stopped, gets 410 resume_position_dropped; one after the
//     next-to-last event gets exactly response.completed;
//   - with nothing dropped (an answer well inside resume.max_bytes): a second reader after the
//     first left gets the whole stream from the start, and exactly the events after a later
//     `starting_after`, the same bytes the first one got;
//   - a reader that attaches mid-answer and reads to the end gets every event once, in order,
//     the same bytes as a client that streamed the same request (POST stream: true), apart
//     from the ids (`resp_X`, the items' `msg_X_0`), `created_at` and the echoed `background`.
//
// The stalled reader is a raw net.Socket that stops reading once events flowed (or an HTTP/2
// stream whose 8 KiB window is never opened again). Node cannot shrink a TCP socket's buffers,
// but a socket nobody reads keeps the kernel's initial receive buffer (tcp_rmem, 128 KiB here),
// and telex's send buffer grows to tcp_wmem's 4 MiB: the answer is made ~20 MB long, so that
// the buffers on the way fill, the reader lags HIGH_WATER (256 KiB) behind and the provider is
// paused well short of its end (measured: after ~34,000 of its 100,000 chunks over HTTP/1.1,
// ~17,000 over HTTP/2, the provider's own socket buffers full too).
// Every wait is on an event (the mock's journal, telex's log lines, bytes read), no sleeps.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';

import { SLACK } from './lib/proc.js';
import { entriesSince, lastSeq, logBarrier, startRelay, waitEntry } from './lib/relay.js';
import { messageText, responsesClient } from './lib/responses.js';
import { request } from './lib/resume.js';
import { waitProvidersPaused } from './lib/stalled.js';

// Big enough for each closing event of the long answer (four of them repeat its ~650 KB of
// text, response.completed among them) and for pause thresholds above HIGH_WATER; far smaller
// than that answer's events (~20 MB), so its history is dropped once nobody reads it.
const MAX_BYTES = 2 * 1024 * 1024;
let relay;
before(async () => {
  relay = await startRelay({
    // max_total_bytes 0 (no global budget): the worker's sweep then never looks at paused
    // providers, so only the wake-up a reader's leaving sends can let one go on
    config: {
      resume: { enabled: true, max_bytes: MAX_BYTES, max_total_bytes: 0, retention_seconds: 60, grace_seconds: 5 },
    },
  });
});
after(async () => {
  if (relay) await relay.stop();
});

const msgs = (text) => [{ role: 'user', content: text }];
const { post, streamIdOf, ended, startBackground } = responsesClient(() => relay, {
  postTimeoutMs: 30000 * SLACK,
  endTimeoutMs: 60000 * SLACK,
});
const readerUrl = (rid, startingAfter) =>
  `${relay.url}/v1/responses/${rid}?stream=true` + (startingAfter !== undefined ? `&starting_after=${startingAfter}` : '');
const attach = (rid, startingAfter, opts = {}) =>
  request(readerUrl(rid, startingAfter), { timeoutMs: 60000 * SLACK, ...opts });
const parsed = (reply) => reply.events.map((e) => JSON.parse(e.data));

// a long text compared without printing it whole: its length and where it first differs
function assertSameText(got, want, what) {
  if (got === want) return;
  let i = 0;
  while (i < got.length && i < want.length && got[i] === want[i]) i++;
  assert.fail(
    `${what}: ${got.length} characters, want ${want.length}; first difference at ${i}: ` +
      `${JSON.stringify(got.slice(i, i + 60))} for ${JSON.stringify(want.slice(i, i + 60))}`,
  );
}

// The answer text the mock gives for this input (deterministic; asked without a stream: for a
// 100,000-token answer 20 times faster than parsing its stream).
async function mockText(input, tokens) {
  const r = await request(`${relay.mock.url}/v1/chat/completions`, {
    body: { model: 'direct', messages: msgs(input), mock: { tokens, delay_ms: 0 } },
    timeoutMs: 30000 * SLACK,
  });
  assert.equal(r.status, 200, r.text.slice(0, 300));
  return JSON.parse(r.text).choices[0].message.content;
}

async function getResponse(rid) {
  const got = await request(`${relay.url}/v1/responses/${rid}`);
  assert.equal(got.status, 200, got.text.slice(0, 300));
  return JSON.parse(got.text);
}

// A reader on a raw socket (HTTP/1.1) that sends `head` (and `body`) and stops reading once
// `enough(text)` holds for what it has received. Resolves with { text, leave(), close() }: text
// is everything received (headers, chunk framing and all) up to the stop; the socket is paused,
// never read again; leave() and close() close it.
function stalledRawReader(url, head, body, enough) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: u.hostname, port: Number(u.port) });
    const parts = [];
    socket.on('error', () => {}); // closed by the test; telex may reset it first
    socket.once('error', reject);
    socket.on('connect', () => socket.write(`${head}Host: ${u.host}\r\n\r\n${body}`));
    const onData = (d) => {
      parts.push(d);
      const text = Buffer.concat(parts).toString('utf8');
      if (!/^HTTP\/1\.1 200 /.test(text) || !enough(text)) return;
      socket.off('data', onData);
      socket.pause();
      resolve({ text, leave: () => socket.destroy(), close: () => socket.destroy() });
    };
    socket.on('data', onData);
    socket.on('end', () => reject(new Error(`the reader's response ended: ${Buffer.concat(parts).toString().slice(0, 300)}`)));
  });
}

// GET url (a reader attaching) on a raw socket that stalls.
function stalledReaderH1(url, enough) {
  const u = new URL(url);
  return stalledRawReader(url, `GET ${u.pathname}${u.search} HTTP/1.1\r\nAccept: text/event-stream\r\n`, '', enough);
}

// The same over HTTP/2 (h2c with prior knowledge), with a stream window of 8 KiB that is never
// opened again once it stops reading. leave() cancels the stream (RST_STREAM) and keeps the
// connection; close() ends the connection.
function stalledReaderH2(url, enough) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const session = http2.connect(u.origin, { settings: { initialWindowSize: 8192 } });
    session.on('error', () => {}); // closed by the test
    const stream = session.request({ ':path': `${u.pathname}${u.search}`, accept: 'text/event-stream' });
    stream.on('error', () => {}); // cancelled by the test
    let status = 0;
    let text = '';
    stream.on('response', (h) => (status = h[':status']));
    const onData = (d) => {
      text += d.toString('utf8');
      if (status !== 200 || !enough(text)) return;
      stream.off('data', onData);
      stream.pause();
      resolve({ text, leave: () => stream.close(http2.constants.NGHTTP2_CANCEL), close: () => session.destroy() });
    };
    stream.on('data', onData);
    stream.on('end', () => reject(new Error(`the reader's response ended (${status}): ${text.slice(0, 300)}`)));
    session.once('error', reject);
  });
}

// The complete events in a raw response text (what a stalled reader got; its last may be cut).
const completeEvents = (text) => [...text.matchAll(/\ndata: (\{[^\n]*\})\n\n/g)].map((m) => JSON.parse(m[1]));

// Three ways to be the first reader of a background answer from its start, each stalling once
// it has `enough`: resolve with the reader and the response id.
const STALLED = {
  // GET /v1/responses/{id}?stream=true over HTTP/1.1, after the POST's Response object
  h1: async (input, mock, enough) => {
    const started = await startBackground(input, mock);
    return { rid: started.id, reader: await stalledReaderH1(readerUrl(started.id), enough) };
  },
  // the same over HTTP/2
  h2: async (input, mock, enough) => {
    const started = await startBackground(input, mock);
    return { rid: started.id, reader: await stalledReaderH2(readerUrl(started.id), enough) };
  },
  // the client of the POST itself, with `background: true, stream: true`
  post: async (input, mock, enough) => {
    const body = JSON.stringify({ model: 'gpt-relay', input, background: true, stream: true, mock });
    const head =
      'POST /v1/responses HTTP/1.1\r\ncontent-type: application/json\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n`;
    const reader = await stalledRawReader(`${relay.url}/v1/responses`, head, body, enough);
    const sid = /\r\nx-telex-stream-id: *(st_[A-Za-z0-9_-]+)\r\n/i.exec(reader.text)?.[1];
    assert.ok(sid, reader.text.slice(0, 500));
    return { rid: `resp_${sid.slice('st_'.length)}`, reader };
  },
};

// (a) and (b): a reader attaches from the start, stops reading until back-pressure pauses the
// provider, then leaves; the answer completes; readers after it find the history dropped.
async function stallThenLeave(t, how, input) {
  const tokens = 100000;
  const mock = { tokens, delay_ms: 0, ttft_ms: 700 }; // ttft: the reader attaches before the first event
  const want = await mockText(input, tokens);
  const since = await lastSeq(relay.mock);
  const { rid, reader } = await STALLED[how](input, mock, (text) =>
    text.includes('"type":"response.output_text.delta"'),
  );
  t.after(() => reader.close());
  // back-pressure: the provider stops, short of its end, and stays stopped
  const [paused] = await waitProvidersPaused(relay.mock, since, {
    tokens,
    count: 1,
    timeoutMs: 60000 * SLACK,
    message: 'the stalled reader to pause the provider',
  });
  t.diagnostic(`the provider paused after ${paused.content_events} of ${tokens} chunks`);
  assert.equal(paused.completed, false);
  assert.ok(paused.content_events < tokens, `paused short of the end (${paused.content_events} of ${tokens})`);
  await logBarrier(relay.serve); // a line logged by now is on stderr
  assert.equal(
    relay.serve.logs.find((l) => l.msg === 'request' && l.stream_id === streamIdOf(rid)),
    undefined,
    'the answer is still running (paused, not ended)',
  );
  assert.equal((await getResponse(rid)).status, 'in_progress');
  const seen = completeEvents(reader.text);
  assert.ok(seen.length >= 3, `the reader got events before it stalled (${seen.length})`);
  assert.deepEqual(
    seen.map((e) => e.sequence_number),
    seen.map((_, i) => i),
  );

  // the reader leaves: nobody reads now, and the answer must run to its end
  reader.leave();
  const line = await ended(rid);
  assert.equal(line.outcome, 'ok', JSON.stringify(line));
  const [entry] = await entriesSince(relay.mock, since);
  assert.equal(entry.completed, true);
  assert.equal(entry.content_events, tokens);
  const done = await getResponse(rid);
  assert.equal(done.status, 'completed');
  assertSameText(messageText(done), want, 'the completed Response');
  assert.ok(done.usage?.output_tokens > 0, JSON.stringify(done.usage));

  // a second reader after the first left: the log holds at most MAX_BYTES at a time, so of
  // events many times that the early ones are gone, from the start or from where the first
  // reader stopped (410); its last event is still there
  const lastSeqNo = line.events - 1;
  assert.ok(line.bytes > 2 * MAX_BYTES, `the events (${line.bytes} bytes) outgrew the log`);
  for (const from of [undefined, seen.at(-1).sequence_number]) {
    const r = await attach(rid, from);
    assert.equal(r.status, 410, `starting_after=${from}: ${r.status} ${r.text.slice(0, 300)}`);
    assert.equal(JSON.parse(r.text).error.code, 'resume_position_dropped');
  }
  const tail = await attach(rid, lastSeqNo - 1);
  assert.equal(tail.status, 200, tail.text.slice(0, 300));
  assert.ok(tail.complete, String(tail.error));
  const tailEvents = parsed(tail);
  assert.deepEqual(
    tailEvents.map((e) => [e.type, e.sequence_number]),
    [['response.completed', lastSeqNo]],
  );
  assertSameText(messageText(tailEvents[0].response), want, 'response.completed');
}

describe('readers of a running background Response', () => {
  test('a reader that stalls, pausing the provider, then leaves (an HTTP/1.1 reader closes its connection)', (t) =>
    stallThenLeave(t, 'h1', 'stalled reader'));

  test('a reader that stalls, pausing the provider, then leaves (an HTTP/2 reader cancels its stream)', (t) =>
    stallThenLeave(t, 'h2', 'stalled http2 reader'));

  test('the client of a background stream (POST with stream: true) stalls, then closes its connection', (t) =>
    stallThenLeave(t, 'post', 'stalled background client'));

  test('a second reader after the first left gets the whole stream, or the rest after a position', async () => {
    // an answer well inside resume.max_bytes: nothing is dropped, with or without a reader;
    // paced, so that the readers below attach while it runs
    const mock = { tokens: 200, delay_ms: 10 };
    const want = await mockText('second reader', 200);
    const since = await lastSeq(relay.mock);
    const started = await startBackground('second reader', mock);
    // the first reader reads 20 events and leaves
    const first = await attach(started.id, undefined, { stopAfter: 20 });
    assert.equal(first.status, 200, first.text.slice(0, 300));
    assert.ok(first.aborted);
    assert.equal(first.events.length, 20);
    const k = JSON.parse(first.events.at(-1).data).sequence_number;
    assert.equal(k, 19);
    // still running when the next readers attach (else they only replay)
    const running = (await entriesSince(relay.mock, since))[0];
    assert.equal(running.completed, false, `the answer still runs (${running.content_events} chunks)`);
    const [whole, rest] = await Promise.all([attach(started.id), attach(started.id, k)]);
    for (const r of [whole, rest]) {
      assert.equal(r.status, 200, r.text.slice(0, 300));
      assert.ok(r.complete, String(r.error));
    }
    const all = parsed(whole);
    assert.deepEqual(
      all.map((e) => e.sequence_number),
      all.map((_, i) => i),
      'sequence_number 0, 1, 2 … with no gap',
    );
    assert.equal(all.at(-1).type, 'response.completed');
    assert.equal(messageText(all.at(-1).response), want);
    const deltas = all.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta);
    assert.equal(deltas.join(''), want);
    // the same bytes for every reader: the first one's 20 events, the rest after k
    assert.deepEqual(
      first.events.map((e) => [e.type, e.data]),
      whole.events.slice(0, 20).map((e) => [e.type, e.data]),
    );
    assert.deepEqual(
      rest.events.map((e) => [e.type, e.data]),
      whole.events.slice(k + 1).map((e) => [e.type, e.data]),
    );
    const line = await ended(started.id);
    assert.equal(line.outcome, 'ok', JSON.stringify(line));
    assert.equal(line.events, all.length);
    assert.ok(line.bytes < MAX_BYTES / 2, `the answer (${line.bytes} bytes) stayed well inside the log`);
    const done = await getResponse(started.id);
    assert.equal(done.status, 'completed');
    assert.equal(messageText(done), want);
    // and once it has ended, a reader from the start replays the same events to the end
    const replay = await attach(started.id);
    assert.equal(replay.status, 200, replay.text.slice(0, 300));
    assert.ok(replay.complete, String(replay.error));
    assert.equal(replay.text, whole.text);
  });

  test('a reader that attaches mid-answer gets every event once, as a streamed client does', async () => {
    const mock = { tokens: 120, delay_ms: 10 };
    const since = await lastSeq(relay.mock);
    const started = await startBackground('attach mid-answer', mock);
    // attach once the provider has sent 20 chunks, well before its end
    const early = await waitEntry(relay.mock, since, (e) => e.content_events >= 20);
    assert.equal(early.completed, false, `the answer still runs (${early.content_events} chunks)`);
    const reader = await attach(started.id);
    assert.equal(reader.status, 200, reader.text.slice(0, 300));
    assert.ok(reader.complete, String(reader.error));
    const [entry] = await entriesSince(relay.mock, since);
    assert.ok(entry.completed);
    // the same request, streamed to its client
    const straight = await post({ model: 'gpt-relay', input: 'attach mid-answer', stream: true, mock });
    assert.equal(straight.status, 200, straight.text.slice(0, 300));
    assert.ok(straight.complete, String(straight.error));
    const sid = straight.headers['x-telex-stream-id'];
    assert.ok(sid, 'the streamed answer has its stream id');

    const events = parsed(reader);
    assert.deepEqual(
      events.map((e) => e.sequence_number),
      events.map((_, i) => i),
      'every event once, in order',
    );
    assert.equal(events.at(-1).type, 'response.completed');
    // byte for byte, apart from the ids (resp_X and the items' msg_X_0: the same 22 characters),
    // created_at (seconds) and the echoed background
    const normalize = (text, rid) =>
      text
        .replaceAll(rid.slice('resp_'.length), '<id>')
        .replace(/"created_at":\d+/g, '"created_at":0')
        .replace(/"background":(true|false)/g, '"background":-');
    const straightId = `resp_${sid.slice('st_'.length)}`;
    assert.ok(reader.text.includes('"background":true'));
    assert.ok(straight.text.includes('"background":false'));
    assert.equal(normalize(reader.text, started.id), normalize(straight.text, straightId));
    const line = await ended(started.id);
    assert.equal(line.outcome, 'ok', JSON.stringify(line));
    assert.equal(line.events, events.length, 'the reader got every event the answer had');
  });
});
