// tests/integration/resume_grace.test.js — what happens to an answer whose clients left, and
// cancelling one on purpose.
//
//  - grace (resume.grace_seconds: 3): the original client leaves and nothing attaches → the
//    provider keeps streaming for the grace, then the mock sees the cancel (not before); the
//    kept answer ends with an `abandoned` error event and no [DONE];
//  - a client that attaches within the grace keeps the answer going to the end; when it leaves
//    too, the grace starts again from then;
//  - a client that leaves before commit (no stream id given out yet) cancels at once;
//  - DELETE /v1/streams/{id}: every subscriber gets a final error event `cancelled` and no
//    [DONE]; the mock sees the cancel; DELETE of what already ended is 200 "finished"; a DELETE
//    during the grace cancels at once;
//  - resume.enabled: false — the plain relay: immediate cancel, no id lines, no X-Telex headers,
//    /v1/streams/{id} is 404, and a POST with Last-Event-ID is a new request.
//
// Timing: "not before the grace" is a lower bound (it holds however slow the machine); "at once"
// and "soon after the grace" get LATE_MS of margin, and the wrong behaviour (cancelling only
// at the end of the grace, or never) is arranged to be later than that. What happens during the
// grace is started by events (the answer going on without its client, a subscriber attached),
// not by sleeping a fraction of the grace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { waitFor } from './lib/proc.js';
import { LATE_MS, entriesSince, lastSeq, msgs, requestLogs, startRelay, waitEntry } from './lib/relay.js';
import { assertExact, eventIds, openAnswer, request, resumeConfig, resumeGet, waitFinished } from './lib/resume.js';

const GRACE_MS = 3000;
let relay;
let top; // the file's relay, also where the other describe blocks find the mock
before(async () => {
  relay = await startRelay({
    // a long commit timeout: a client that leaves before its first token is noticed before commit
    config: resumeConfig({ resume: { grace_seconds: GRACE_MS / 1000 }, streaming: { commit_timeout_seconds: 20 } }),
  });
  top = relay;
});
after(async () => {
  if (relay) await relay.stop();
});

// The mock's journal entry of the request whose first message is `content`.
async function entryOf(since, content) {
  return (await entriesSince(relay.mock, since)).find((e) => e.body?.messages?.[0]?.content === content);
}
// Waits until the mock has sent more than `n` content chunks of that request: the answer goes on
// past what its client read, so telex has seen the client leave (its writes fail) and the grace runs.
const goesOnPast = (since, content, n) =>
  waitFor(async () => {
    const e = await entryOf(since, content);
    return e?.content_events > n && e;
  }, { message: `${content}: the answer going on past ${n} chunks` });

describe('grace after the last client left', () => {
  test('nothing attaches: the upstream runs for grace_seconds, then is cancelled', async (t) => {
    const since = await lastSeq(relay.mock);
    // 1000 chunks, 20 s: far longer than the grace
    const first = await openAnswer(relay, { tokens: 1000, delay_ms: 20 }, { messages: msgs('left alone'), stopAfter: 5 });
    const leftAt = Date.now();
    // Still streaming into the grace (and not cancelled before its end: the lower bound below).
    await goesOnPast(since, 'left alone', 20);
    const gone = await waitEntry(relay.mock, since, (e) => e.client_gone, { timeoutMs: GRACE_MS + 10000 });
    const after = gone.gone_at_ms - leftAt;
    t.diagnostic(`cancelled ${after} ms after the client left (grace ${GRACE_MS} ms)`);
    assert.ok(after >= GRACE_MS - 50, `not before the grace: ${after} ms`);
    assert.ok(after < GRACE_MS + LATE_MS, `soon after the grace: ${after} ms`);
    assert.ok(gone.content_events > 20 && gone.content_events < 1000, `${gone.content_events} chunks`);
    // What was generated is kept; it ends with the abandoned error event, no [DONE].
    const kept = await waitFinished(relay, first.sid);
    const err = JSON.parse(kept.events.at(-1).data).error;
    assert.equal(err.code, 'abandoned');
    assert.equal(err.type, 'cancelled');
    assert.ok(kept.events.every((e) => e.data !== '[DONE]'));
    assert.deepEqual(
      kept.events.map((e) => e.id),
      eventIds(first.sid, 1, kept.events.length),
    );
    const line = await waitFor(() => requestLogs(relay.serve).find((l) => l.stream_id === first.sid));
    assert.equal(line.outcome, 'client_gone');
    assert.equal(line.error, 'abandoned');
  });

  test('a client that attaches within the grace keeps the answer going to the end', async () => {
    const since = await lastSeq(relay.mock);
    const first = await openAnswer(relay, { tokens: 100, delay_ms: 20 }, { messages: msgs('come back'), stopAfter: 5 });
    // the answer goes on without a client (the grace runs); come back well within it
    await goesOnPast(since, 'come back', 10);
    const rest = await resumeGet(relay, first.sid, { lastEventId: `${first.sid}.5` });
    assert.equal(rest.status, 200);
    assert.equal(rest.events.at(-1).data, '[DONE]');
    const full = await waitFinished(relay, first.sid);
    assertExact([first.events.slice(0, 5), rest.events], full.events, first.sid, 'came back');
    const e = await entryOf(since, 'come back');
    assert.equal(e.completed, true);
    assert.equal(e.client_gone, false);
    assert.equal(e.content_events, 100);
  });

  test('when the one who came back leaves too, the grace starts again from then', async (t) => {
    const since = await lastSeq(relay.mock);
    const first = await openAnswer(relay, { tokens: 1000, delay_ms: 20 }, { messages: msgs('twice'), stopAfter: 3 });
    const firstLeftAt = Date.now();
    await goesOnPast(since, 'twice', 5);
    // The second client stays for 60 live events: at least 60 x 10 ms (the mock never sends two
    // chunks less than delay/2 apart), about 1.2 s. A grace that still ran from the first
    // client would then end that much earlier than one that starts again when it leaves.
    let live = 0;
    await resumeGet(relay, first.sid, {
      lastEventId: `${first.sid}.3`,
      stopAfter: () => ++live > 60 + 10, // (the first few are the replay of what was already there)
    });
    const secondLeftAt = Date.now();
    const gone = await waitEntry(relay.mock, since, (e) => e.client_gone, { timeoutMs: GRACE_MS + 10000 });
    const after = gone.gone_at_ms - secondLeftAt;
    t.diagnostic(`cancelled ${after} ms after the second client left, ${gone.gone_at_ms - firstLeftAt} ms after the first`);
    assert.ok(after >= GRACE_MS - 50, `a fresh grace: ${after} ms`);
    assert.ok(after < GRACE_MS + LATE_MS);
  });

  test('a client that leaves before commit cancels at once (no stream id was given out)', async () => {
    const since = await lastSeq(relay.mock);
    // the client leaves once its request has reached the mock (commit would come after 20 s)
    const r = await request(`${relay.url}/v1/chat/completions`, {
      body: { model: 'gpt-relay', messages: msgs('before commit'), stream: true, mock: { ttft_ms: 60000 } },
      leaveWhen: waitEntry(relay.mock, since),
    });
    const leftAt = Date.now();
    assert.equal(r.status, 0, 'no response yet');
    const gone = await waitEntry(relay.mock, since, (e) => e.client_gone);
    // at once: within the 500 ms disconnect sweep (docs/api.md: within one second), long before
    // commit (20 s) + grace (3 s)
    assert.ok(gone.gone_at_ms - leftAt < 1000 + LATE_MS, `${gone.gone_at_ms - leftAt} ms`);
  });
});

describe('DELETE /v1/streams/{id}', () => {
  // A grace of 30 s here: a DELETE that did not cancel at once would be seen far too late.
  let relay;
  before(async () => {
    relay = await startRelay({ mock: top.mock, config: resumeConfig({ resume: { grace_seconds: 30 } }) });
  });
  after(async () => {
    if (relay) await relay.stop();
  });

  test('every subscriber gets a final cancelled event and no [DONE]; the mock sees the cancel', async () => {
    const since = await lastSeq(relay.mock);
    let sid;
    let deleted;
    // 1000 chunks, 20 s: running to its end would take far longer than the deadline below
    const started = new Promise((resolve) => {
      deleted = openAnswer(
        relay,
        { tokens: 1000, delay_ms: 20 },
        { messages: msgs('delete me'), onEvent: (e, evs) => evs.length === 3 && resolve(e.id.split('.')[0]) },
      );
    });
    sid = await started;
    // a second subscriber, attached (it has its first event) before the DELETE
    let other;
    await new Promise((resolve) => {
      other = resumeGet(relay, sid, { onEvent: resolve });
    });
    const del = await request(`${relay.url}/v1/streams/${sid}`, { method: 'DELETE' });
    const deletedAt = Date.now();
    assert.equal(del.status, 200, del.text);
    assert.deepEqual(JSON.parse(del.text), { id: sid, object: 'stream', status: 'cancelled' });
    const [orig, attached] = await Promise.all([deleted, other]);
    for (const r of [orig, attached]) {
      assert.ok(r.complete, 'the response ended cleanly');
      const err = JSON.parse(r.events.at(-1).data).error;
      assert.equal(err.code, 'cancelled');
      assert.equal(err.type, 'cancelled');
      assert.ok(r.events.every((e) => e.data !== '[DONE]'));
    }
    assert.ok(attached.raw.equals(orig.raw), 'both saw the same events');
    const gone = await waitEntry(relay.mock, since, (e) => e.client_gone);
    assert.ok(gone.gone_at_ms - deletedAt < 1000 + LATE_MS, `cancelled ${gone.gone_at_ms - deletedAt} ms after DELETE`);
    assert.ok(gone.content_events < 1000);
    // The cancelled answer stays resumable (for the retention) and ends the same way.
    const replay = await resumeGet(relay, sid);
    assert.ok(replay.raw.equals(orig.raw));
    // DELETE again: it has ended.
    const again = await request(`${relay.url}/v1/streams/${sid}`, { method: 'DELETE' });
    assert.equal(again.status, 200);
    assert.equal(JSON.parse(again.text).status, 'finished');
    const line = await waitFor(() => requestLogs(relay.serve).find((l) => l.stream_id === sid));
    assert.equal(line.outcome, 'cancelled');
  });

  test('DELETE of a finished answer: 200 "finished"; of an unknown one: 404', async () => {
    const r = await openAnswer(relay, { tokens: 2 });
    const del = await request(`${relay.url}/v1/streams/${r.sid}`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    assert.deepEqual(JSON.parse(del.text), { id: r.sid, object: 'stream', status: 'finished' });
    assert.deepEqual((await resumeGet(relay, r.sid)).events, r.events, 'unchanged');
    const unknown = await request(`${relay.url}/v1/streams/st_0123456789abcdefghijkl`, { method: 'DELETE' });
    assert.equal(unknown.status, 404);
    assert.equal(JSON.parse(unknown.text).error.code, 'stream_not_found');
  });

  test('DELETE during the grace (no subscriber) cancels at once', async () => {
    const since = await lastSeq(relay.mock);
    const first = await openAnswer(relay, { tokens: 1000, delay_ms: 20 }, { messages: msgs('delete alone'), stopAfter: 3 });
    await goesOnPast(since, 'delete alone', 5); // in the grace: nobody attached, the answer goes on
    const del = await request(`${relay.url}/v1/streams/${first.sid}`, { method: 'DELETE' });
    const deletedAt = Date.now();
    assert.equal(JSON.parse(del.text).status, 'cancelled');
    const gone = await waitEntry(relay.mock, since, (e) => e.client_gone);
    // at once, not when the grace (30 s) would have ended
    assert.ok(gone.gone_at_ms - deletedAt < 1000 + LATE_MS, `${gone.gone_at_ms - deletedAt} ms`);
    const kept = await waitFinished(relay, first.sid);
    assert.equal(JSON.parse(kept.events.at(-1).data).error.code, 'cancelled');
  });
});

describe('resume.enabled: false', () => {
  let plain;
  before(async () => {
    plain = await startRelay({ mock: relay.mock, config: resumeConfig({ resume: { enabled: false, grace_seconds: 5 } }) });
  });
  after(async () => {
    if (plain) await plain.stop();
  });

  test('no id or retry lines, no X-Telex headers', async () => {
    const r = await openAnswer(plain, { tokens: 5 });
    assert.equal(r.status, 200);
    assert.equal(r.sid, null);
    assert.equal(r.resumeUrl, null);
    assert.ok(r.events.every((e) => e.id === null && e.retry === null));
    assert.doesNotMatch(r.text, /^(id|retry):/m);
    assert.ok(r.text.startsWith('data: {'));
    assert.equal(r.events.at(-1).data, '[DONE]');
  });

  test('a client that leaves cancels the upstream at once (no grace)', async () => {
    const since = await lastSeq(relay.mock);
    // grace_seconds is 5 but resume is off: no grace; the answer (20 s) does not run to its end
    await openAnswer(plain, { tokens: 1000, delay_ms: 20 }, { messages: msgs('plain leave'), stopAfter: 3 });
    const leftAt = Date.now();
    const gone = await waitEntry(relay.mock, since, (e) => e.client_gone);
    assert.ok(gone.gone_at_ms - leftAt < 1000 + LATE_MS, `${gone.gone_at_ms - leftAt} ms`);
  });

  test('/v1/streams/{id} is 404 (204 for event-stream clients); POST with Last-Event-ID generates', async () => {
    const on = await openAnswer(relay, { tokens: 30, delay_ms: 20 }, { stopAfter: 2 });
    for (const id of [on.sid, 'st_AAAAAAAAAAAAAAAAAAAAAA']) {
      const json = await request(`${plain.url}/v1/streams/${id}`);
      assert.equal(json.status, 404);
      assert.equal(JSON.parse(json.text).error.code, 'stream_not_found');
      const sse = await request(`${plain.url}/v1/streams/${id}`, { headers: { accept: 'text/event-stream' } });
      assert.equal(sse.status, 204);
      const del = await request(`${plain.url}/v1/streams/${id}`, { method: 'DELETE' });
      assert.equal(del.status, 404);
    }
    const since = await lastSeq(relay.mock);
    const post = await request(`${plain.url}/v1/chat/completions`, {
      body: { model: 'gpt-relay', messages: msgs(), stream: true, mock: { tokens: 3 } },
      headers: { 'last-event-id': `${on.sid}.2` },
    });
    assert.equal(post.status, 200);
    assert.equal(post.events.length, 6);
    assert.equal((await entriesSince(relay.mock, since)).length, 1, 'a new generation');
  });
});
