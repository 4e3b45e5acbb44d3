// tests/integration/resume_errors.test.js — resuming what is over, gone, wrong or too old.
//
//  - after the answer ended (within resume.retention_seconds): the whole answer again, ending
//    with [DONE], as often as asked;
//  - expired (retention 0.5 s), unknown, or malformed stream ids: 204 for a client that accepts
//    text/event-stream (EventSource stops), else 404 JSON `stream_not_found`; DELETE 404;
//  - a Last-Event-ID of another stream, a malformed one, or of an event that does not exist yet:
//    400 `bad_last_event_id`; a POST with an unparseable Last-Event-ID is a new request;
//  - other methods on /v1/streams/{id}: 405 with Allow;
//  - resume.max_bytes: a long answer whose reader keeps up completes while old events are
//    dropped; resuming from a dropped position is 410 `resume_position_dropped`; with no
//    subscriber attached nothing is dropped: the producer pauses the upstream instead, and a
//    client that comes back within the grace resumes exactly from where it left.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { waitFor } from './lib/proc.js';
import { SLACK, entriesSince, lastSeq, msgs, startRelay, waitEntry } from './lib/relay.js';
import {
  assertExact,
  contentOfEvents,
  directText,
  eventIds,
  openAnswer,
  request,
  resumeConfig,
  resumeGet,
  waitFinished,
  withoutRetry,
} from './lib/resume.js';

let relay;
// Finished answers are kept for 2 s: long enough to replay one a few times on a busy machine,
// short enough to watch one expire.
const RETENTION_MS = 2000 * SLACK;
before(async () => {
  relay = await startRelay({ config: resumeConfig({ resume: { retention_seconds: RETENTION_MS / 1000 } }) });
});
after(async () => {
  if (relay) await relay.stop();
});

const UNKNOWN = 'st_AAAAAAAAAAAAAAAAAAAAAA';

async function assertGone(sid, what) {
  const sse = await resumeGet(relay, sid);
  assert.equal(sse.status, 204, `${what}, Accept: text/event-stream: ${sse.status} ${sse.text}`);
  assert.equal(sse.raw.length, 0);
  const json = await resumeGet(relay, sid, { accept: null });
  assert.equal(json.status, 404, `${what}, no Accept`);
  assert.match(json.headers['content-type'], /^application\/json/);
  const err = JSON.parse(json.text).error;
  assert.equal(err.code, 'stream_not_found');
  assert.equal(err.type, 'invalid_request_error');
  const json2 = await resumeGet(relay, sid, { accept: 'application/json' });
  assert.equal(json2.status, 404, `${what}, Accept: application/json`);
  // With a Last-Event-ID, too.
  const withId = await resumeGet(relay, sid, { lastEventId: `${UNKNOWN}.3` });
  assert.equal(withId.status, 204, `${what} with Last-Event-ID`);
  // DELETE: 404 JSON
  const del = await request(`${relay.url}/v1/streams/${sid}`, { method: 'DELETE' });
  assert.equal(del.status, 404, `${what}: DELETE`);
  assert.equal(JSON.parse(del.text).error.code, 'stream_not_found');
}

describe('a finished answer, kept for resume.retention_seconds', () => {
  test('replays whole, ending with [DONE], as often as asked; then expires', async () => {
    const r = await openAnswer(relay, { tokens: 6 });
    assert.ok(r.complete);
    for (let i = 0; i < 3; i++) {
      const again = await resumeGet(relay, r.sid);
      assert.equal(again.status, 200);
      assert.deepEqual(again.events, r.events);
      assert.equal(again.events.at(-1).data, '[DONE]');
      assert.ok(again.complete);
    }
    const tail = await resumeGet(relay, r.sid, { lastEventId: `${r.sid}.5` });
    assert.deepEqual(withoutRetry(tail.events), withoutRetry(r.events.slice(5)));
    await waitFor(async () => (await resumeGet(relay, r.sid)).status === 204, {
      timeoutMs: RETENTION_MS + 10000 * SLACK,
      intervalMs: 100,
      message: 'the answer to expire',
    });
    await assertGone(r.sid, 'expired');
  });

  test('unknown and malformed stream ids look the same as expired ones', async () => {
    await assertGone(UNKNOWN, 'unknown');
    for (const bad of ['st_short', 'nope', `st_${'A'.repeat(23)}`, `st_${'A'.repeat(21)}!`, `xx_${'A'.repeat(22)}`])
      await assertGone(encodeURIComponent(bad), `malformed ${bad}`);
    await assertGone(`${UNKNOWN}/extra`, 'a longer path');
  });
});

describe('bad Last-Event-ID', () => {
  test('of another stream: 400 bad_last_event_id (header, query and POST)', async () => {
    const a = await openAnswer(relay, { tokens: 20, delay_ms: 20 }, { stopAfter: 2 });
    const b = await openAnswer(relay, { tokens: 2 });
    for (const r of [
      await resumeGet(relay, a.sid, { lastEventId: `${b.sid}.1` }),
      await resumeGet(relay, a.sid, { query: `last_event_id=${b.sid}.1` }),
    ]) {
      assert.equal(r.status, 400, r.text);
      const err = JSON.parse(r.text).error;
      assert.equal(err.code, 'bad_last_event_id');
      assert.equal(err.param, 'Last-Event-ID');
    }
  });

  test('malformed on GET: 400; on POST it is no resume (a new answer)', async () => {
    const a = await openAnswer(relay, { tokens: 50, delay_ms: 20 }, { stopAfter: 1 });
    for (const bad of ['garbage', `${a.sid}`, `${a.sid}.`, `${a.sid}.x`, `${a.sid}.-1`, `${a.sid}.1.2`, `${a.sid}.${'9'.repeat(19)}`]) {
      const r = await resumeGet(relay, a.sid, { lastEventId: bad });
      assert.equal(r.status, 400, `${bad}: ${r.text}`);
      assert.equal(JSON.parse(r.text).error.code, 'bad_last_event_id');
    }
    const since = await lastSeq(relay.mock);
    const post = await request(`${relay.url}/v1/chat/completions`, {
      body: { model: 'gpt-relay', messages: msgs(), stream: true, mock: { tokens: 2 } },
      headers: { 'last-event-id': 'garbage' },
    });
    assert.equal(post.status, 200);
    assert.notEqual(post.headers['x-telex-stream-id'], a.sid);
    assert.equal((await entriesSince(relay.mock, since)).length, 1, 'a new generation');
  });

  test('of an event that does not exist yet: 400', async () => {
    const a = await openAnswer(relay, { tokens: 50, delay_ms: 20 }, { stopAfter: 1 });
    const r = await resumeGet(relay, a.sid, { lastEventId: `${a.sid}.99` });
    assert.equal(r.status, 400);
    assert.equal(JSON.parse(r.text).error.code, 'bad_last_event_id');
  });

  test('POST with the Last-Event-ID of an unknown stream: 204 / 404, and nothing generated', async () => {
    const since = await lastSeq(relay.mock);
    const body = { model: 'gpt-relay', messages: msgs(), stream: true };
    const sse = await request(`${relay.url}/v1/chat/completions`, {
      body,
      headers: { accept: 'text/event-stream', 'last-event-id': `${UNKNOWN}.4` },
    });
    assert.equal(sse.status, 204);
    const json = await request(`${relay.url}/v1/chat/completions`, { body, headers: { 'last-event-id': `${UNKNOWN}.4` } });
    assert.equal(json.status, 404);
    assert.equal(JSON.parse(json.text).error.code, 'stream_not_found');
    assert.equal(await lastSeq(relay.mock), since);
  });

  test('other methods on /v1/streams/{id}: 405 with Allow', async () => {
    const a = await openAnswer(relay, { tokens: 1 });
    for (const method of ['PUT', 'POST', 'PATCH']) {
      const r = await request(`${relay.url}/v1/streams/${a.sid}`, { method, body: '{}' });
      assert.equal(r.status, 405, method);
      assert.equal(r.headers.allow, 'GET, DELETE');
    }
  });
});

describe('resume.max_bytes', () => {
  // 16 KiB events at most; a 512 KiB log: the producer keeps at most ~430 KiB and pauses the
  // upstream above that. An answer of 4000 chunks is ~1 MiB on the wire.
  let big;
  const LONG = { tokens: 4000, delay_ms: 0 };
  before(async () => {
    big = await startRelay({
      mock: relay.mock,
      config: resumeConfig({
        limits: { max_event_bytes: 16384 },
        // a grace long enough to come back in after the burst has filled the log, on a busy machine
        resume: { max_bytes: 524288, grace_seconds: 6 * SLACK, retention_seconds: 30 },
        // the mock stalls for 2 s on purpose: longer than that is no idle provider
        streaming: { idle_timeout_seconds: 30 },
      }),
    });
  });
  after(async () => {
    if (big) await big.stop();
  });

  test('a reader that keeps up gets the whole long answer; the dropped start is 410', async () => {
    const messages = msgs('long answer');
    const r = await openAnswer(big, LONG, { messages, timeoutMs: 60000 });
    assert.equal(r.status, 200);
    assert.ok(r.complete, String(r.error));
    assert.ok(r.raw.length > 1_000_000, `${r.raw.length} bytes`);
    assert.equal(r.events.at(-1).data, '[DONE]', r.events.at(-1).data.slice(0, 200));
    assert.deepEqual(
      r.events.map((e) => e.id),
      eventIds(r.sid, 1, 4003),
    );
    assert.equal(contentOfEvents(r.events), (await directText(relay.mock, LONG, messages)).text);
    for (const from of [{}, { lastEventId: `${r.sid}.1` }, { lastEventId: `${r.sid}.1000` }]) {
      const old = await resumeGet(big, r.sid, from);
      assert.equal(old.status, 410, old.text);
      const err = JSON.parse(old.text).error;
      assert.equal(err.code, 'resume_position_dropped');
      assert.equal(err.param, 'Last-Event-ID');
    }
    // The end is still there.
    const tail = await resumeGet(big, r.sid, { lastEventId: `${r.sid}.3990` });
    assert.equal(tail.status, 200);
    assert.deepEqual(withoutRetry(tail.events), withoutRetry(r.events.slice(3990)));
  });

  // The client leaves during a stall of the mock (so telex has noticed before the burst that
  // follows: bytes a dead socket's buffers swallowed would count as written, see docs/resume.md;
  // telex's sweep looks every 500 ms, the stall leaves it 2 s), then the mock sends 50,000
  // chunks (~13 MB) as fast as it can, far more than the log may hold.
  const BURST = { tokens: 50000, delay_ms: 0, stall_after: 10, stall_ms: 2000 };

  test('with no subscriber the producer pauses instead of dropping; a resume gets the exact rest', async () => {
    const messages = msgs('paused while away');
    const since = await lastSeq(relay.mock);
    const first = await openAnswer(big, BURST, { messages, stopAfter: 11 });
    assert.equal(first.status, 200);
    // The upstream comes to a standstill well before the end: the log is full and nobody reads it.
    let prev = -1;
    const stalled = await waitFor(
      async () => {
        const e = (await entriesSince(relay.mock, since)).find((x) => x.body?.messages?.[0]?.content === messages[0].content);
        if (!e || e.content_events <= 10) return null;
        const same = e.content_events === prev;
        prev = e.content_events;
        return same ? e : null;
      },
      { timeoutMs: 20000 * SLACK, intervalMs: 250, message: 'the upstream to stall' },
    );
    assert.ok(stalled.content_events < 45000, `paused after ${stalled.content_events} of 50000 chunks`);
    assert.equal(stalled.completed, false);
    assert.equal(stalled.client_gone, false, 'not cancelled: the grace is not over');
    // Nothing was dropped: the whole answer so far is there, from the first event.
    const rest = await resumeGet(big, first.sid, { lastEventId: `${first.sid}.11`, timeoutMs: 120000 });
    assert.equal(rest.status, 200);
    assert.ok(rest.complete, String(rest.error));
    const all = [...first.events.slice(0, 11), ...rest.events];
    assert.deepEqual(
      all.map((e) => e.id),
      eventIds(first.sid, 1, 50003),
    );
    assert.equal(all.at(-1).data, '[DONE]');
    assert.equal(contentOfEvents(all), (await directText(relay.mock, BURST, messages)).text);
    // Following the resumer let the producer drop the history behind it.
    const old = await resumeGet(big, first.sid, { lastEventId: `${first.sid}.11` });
    assert.equal(old.status, 410);
  });

  test('with no subscriber and nobody coming back: cancelled after the grace, nothing dropped', async () => {
    const messages = msgs('abandoned while paused');
    const since = await lastSeq(relay.mock);
    const first = await openAnswer(big, BURST, { messages, stopAfter: 11 });
    const gone = await waitEntry(
      relay.mock,
      since,
      (e) => e.client_gone && e.body?.messages?.[0]?.content === messages[0].content,
      { timeoutMs: 30000 * SLACK },
    );
    assert.ok(gone.content_events < 45000);
    const replay = await waitFinished(big, first.sid);
    const last = replay.events.at(-1);
    assert.equal(JSON.parse(last.data).error.code, 'abandoned');
    assert.ok(replay.events.every((e) => e.data !== '[DONE]'));
    assertExact([replay.events], replay.events, first.sid, 'abandoned replay');
    assert.deepEqual(replay.events.slice(0, 11), first.events.slice(0, 11));
    assert.ok(replay.events.length > 1000, `${replay.events.length} events kept`);
  });

  // (chat.c once paused only at 256 KiB whatever max_bytes was, so a smaller log filled up and
  // the answer ended with log_full although its reader kept up.)
  test(
    'a max_bytes smaller than the pause threshold: a reader that keeps up still gets the whole answer',
    async () => {
      const small = await startRelay({
        mock: relay.mock,
        config: resumeConfig({ resume: { max_bytes: 65536 } }),
      });
      try {
        const r = await openAnswer(small, { tokens: 1000, delay_ms: 0 }, { timeoutMs: 30000 });
        assert.equal(r.status, 200);
        assert.equal(r.events.at(-1).data, '[DONE]', `ends with ${r.events.at(-1).data}`);
        assert.equal(r.events.length, 1003);
      } finally {
        await small.stop();
      }
    },
  );
});
