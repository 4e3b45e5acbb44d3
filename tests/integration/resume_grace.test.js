// tests/integration/resume_grace.test.js — what happens to an answer whose clients left, and
// cancelling one on purpose.
//
//  - grace (resume.grace_seconds: 1): the original client leaves and nothing attaches → the
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
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { sleep, waitFor } from './lib/proc.js';
import { SLACK, entriesSince, lastSeq, msgs, requestLogs, startRelay, waitEntry } from './lib/relay.js';
import { assertExact, eventIds, openAnswer, request, resumeConfig, resumeGet, waitFinished } from './lib/resume.js';

const GRACE_MS = 1000;
let relay;
before(async () => {
  relay = await startRelay({
    // a long commit timeout: a client that leaves before its first token is noticed before commit
    config: resumeConfig({ resume: { grace_seconds: GRACE_MS / 1000 }, streaming: { commit_timeout_seconds: 3 } }),
  });
});
after(async () => {
  if (relay) await relay.stop();
});

// The mock's journal entry of the request whose first message is `content`.
async function entryOf(since, content) {
  return (await entriesSince(relay.mock, since)).find((e) => e.body?.messages?.[0]?.content === content);
}

describe('grace after the last client left', () => {
  test('nothing attaches: the upstream runs for grace_seconds, then is cancelled', async (t) => {
    const since = await lastSeq(relay.mock);
    const first = await openAnswer(relay, { tokens: 300, delay_ms: 20 }, { messages: msgs('left alone'), stopAfter: 5 });
    const leftAt = Date.now();
    // Still streaming well into the grace.
    await sleep(GRACE_MS * 0.6);
    const midway = await entryOf(since, 'left alone');
    assert.equal(midway.client_gone, false, 'not cancelled during the grace');
    assert.ok(midway.content_events > 20, `still streaming: ${midway.content_events} chunks`);
    const gone = await waitEntry(relay.mock, since, (e) => e.client_gone, { timeoutMs: 5000 * SLACK });
    const after = gone.gone_at_ms - leftAt;
    t.diagnostic(`cancelled ${after} ms after the client left (grace ${GRACE_MS} ms)`);
    assert.ok(after >= GRACE_MS - 50, `not before the grace: ${after} ms`);
    assert.ok(after < GRACE_MS + 1000 * SLACK, `soon after the grace: ${after} ms`);
    assert.ok(gone.content_events < 300);
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
    await sleep(GRACE_MS * 0.5);
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
    const first = await openAnswer(relay, { tokens: 400, delay_ms: 20 }, { messages: msgs('twice'), stopAfter: 3 });
    await sleep(GRACE_MS * 0.7);
    await resumeGet(relay, first.sid, { lastEventId: `${first.sid}.3`, stopAfter: 20 });
    const secondLeftAt = Date.now();
    const gone = await waitEntry(relay.mock, since, (e) => e.client_gone, { timeoutMs: 5000 * SLACK });
    const after = gone.gone_at_ms - secondLeftAt;
    t.diagnostic(`cancelled ${after} ms after the second client left`);
    assert.ok(after >= GRACE_MS - 50, `a fresh grace: ${after} ms`);
    assert.ok(after < GRACE_MS + 1000 * SLACK);
  });

  test('a client that leaves before commit cancels at once (no stream id was given out)', async () => {
    const since = await lastSeq(relay.mock);
    const r = await request(`${relay.url}/v1/chat/completions`, {
      body: { model: 'gpt-relay', messages: msgs('before commit'), stream: true, mock: { ttft_ms: 10000 } },
      timeoutMs: 200,
    });
    const leftAt = Date.now();
    assert.equal(r.status, 0, 'no response yet');
    const gone = await waitEntry(relay.mock, since, (e) => e.client_gone, { timeoutMs: 6000 * SLACK });
    // at once: within the 500 ms disconnect sweep, long before commit (3 s) + grace (1 s)
    assert.ok(gone.gone_at_ms - leftAt < Math.min(1000 * SLACK, 2500), `${gone.gone_at_ms - leftAt} ms`);
  });
});

describe('DELETE /v1/streams/{id}', () => {
  test('every subscriber gets a final cancelled event and no [DONE]; the mock sees the cancel', async () => {
    const since = await lastSeq(relay.mock);
    let sid;
    let deleted;
    const started = new Promise((resolve) => {
      deleted = openAnswer(
        relay,
        { tokens: 300, delay_ms: 20 },
        { messages: msgs('delete me'), onEvent: (e, evs) => evs.length === 3 && resolve(e.id.split('.')[0]) },
      );
    });
    sid = await started;
    const other = resumeGet(relay, sid);
    await sleep(200);
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
    const gone = await waitEntry(relay.mock, since, (e) => e.client_gone, { timeoutMs: 4000 * SLACK });
    assert.ok(gone.gone_at_ms - deletedAt < 1000 * SLACK, `cancelled ${gone.gone_at_ms - deletedAt} ms after DELETE`);
    assert.ok(gone.content_events < 300);
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
    const first = await openAnswer(relay, { tokens: 300, delay_ms: 20 }, { messages: msgs('delete alone'), stopAfter: 3 });
    await sleep(200);
    const del = await request(`${relay.url}/v1/streams/${first.sid}`, { method: 'DELETE' });
    const deletedAt = Date.now();
    assert.equal(JSON.parse(del.text).status, 'cancelled');
    const gone = await waitEntry(relay.mock, since, (e) => e.client_gone, { timeoutMs: 4000 * SLACK });
    assert.ok(gone.gone_at_ms - deletedAt < GRACE_MS * 0.8 * SLACK, `${gone.gone_at_ms - deletedAt} ms`);
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
    await openAnswer(plain, { tokens: 300, delay_ms: 20 }, { messages: msgs('plain leave'), stopAfter: 3 });
    const leftAt = Date.now();
    const gone = await waitEntry(relay.mock, since, (e) => e.client_gone, { timeoutMs: 4000 * SLACK });
    assert.ok(gone.gone_at_ms - leftAt < 1000 * SLACK, `${gone.gone_at_ms - leftAt} ms`);
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
