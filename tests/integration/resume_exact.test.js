// tests/integration/resume_exact.test.js — a client that lost its connection gets the rest
// of the answer, exactly: no event missing, none twice.
//
// An answer of 43 events (role, 40 content chunks, finish, [DONE]) is dropped by its client
// after k events, k = 0 (right after the headers), 1, 21 (mid-answer, while it is being
// generated), 42 (the last before [DONE]) and 43 (after [DONE]). It is resumed three ways:
//   GET /v1/streams/{id} with a Last-Event-ID header (none for k = 0: from the start),
//   GET /v1/streams/{id}?token=...&last_event_id=... (the resume URL, for EventSource),
//   POST /v1/chat/completions with Last-Event-ID (a fetch client retrying; no new generation).
// A fourth way is for a client that asked for no ids (the default, OpenAI-exact framing) and
// only counted the chunks it got: GET the resume URL with &after=k.
// The events the client kept plus the resumed ones must equal the whole answer (replayed from
// the start afterwards) in ids and data, and its text the mock's own answer.
// Then: a chain of resumes (drop every few events, until the end), and 40 answers resumed over
// fresh connections on a two-worker gateway, so producer and resumer run on different threads.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { lastSeq, msgs, startRelay, SLACK } from './lib/relay.js';
import {
  assertExact,
  contentOfEvents,
  directText,
  openAnswer,
  request,
  resumeConfig,
  resumeGet,
  waitFinished,
} from './lib/resume.js';

let relay;
before(async () => {
  relay = await startRelay({ config: resumeConfig({ workers: 2 }) });
});
after(async () => {
  if (relay) await relay.stop();
});

const MOCK = { tokens: 40, delay_ms: 15 };
const N = 43;
let expected;

const HOW = {
  // each returns the resumed reply for stream sid after event k
  header: (r, k) => resumeGet(relay, r.sid, k > 0 ? { lastEventId: `${r.sid}.${k}` } : {}),
  query: (r, k) =>
    request(`${relay.url}${r.resumeUrl}&last_event_id=${r.sid}.${k}`, { headers: { accept: 'text/event-stream' } }),
  after: (r, k) => request(`${relay.url}${r.resumeUrl}&after=${k}`, { headers: { accept: 'text/event-stream' } }),
  post: (r, k, body) =>
    request(`${relay.url}/v1/chat/completions`, {
      body,
      headers: { accept: 'text/event-stream', 'last-event-id': `${r.sid}.${k}` },
    }),
};

async function dropAndResume(how, k, label) {
  const body = { model: 'gpt-relay', messages: msgs(`exact ${label}`), stream: true, mock: MOCK };
  const plain = how === 'after'; // the client asked for no ids: it counts chunks
  const first = await request(`${relay.url}/v1/chat/completions`, {
    body,
    headers: { accept: 'text/event-stream', ...(plain ? {} : { 'x-telex-event-ids': '1' }) },
    stopAfter: k,
  });
  assert.equal(first.status, 200);
  assert.ok(first.aborted || k === N, 'the client dropped the connection');
  if (plain) assert.doesNotMatch(first.text, /^(id|retry):/m, 'no ids without X-Telex-Event-Ids');
  const sid = first.headers['x-telex-stream-id'];
  const r = { sid, resumeUrl: first.headers['x-telex-resume-url'] };
  const kept = first.events.slice(0, k);
  assert.equal(kept.length, k);
  const since = await lastSeq(relay.mock);
  const resumed = await HOW[how](r, k, body);
  assert.equal(await lastSeq(relay.mock), since, 'a resume never asks the provider again');
  const full = await waitFinished(relay, sid);
  const text = (await directText(relay.mock, MOCK, body.messages)).text;
  if (k === N) {
    // Nothing can follow [DONE]: 204 tells an event-stream client to stop reconnecting.
    assert.equal(resumed.status, 204, resumed.text);
    assert.equal(resumed.raw.length, 0);
  } else {
    assert.equal(resumed.status, 200, resumed.text);
    assert.equal(resumed.headers['x-telex-stream-id'], sid);
    assert.ok(resumed.complete, `the resumed response ended cleanly (${resumed.error})`);
    assert.equal(resumed.events.at(-1).data, '[DONE]');
  }
  if (plain) {
    // the kept chunks had no ids; the resumed ones have theirs (k+1 .. N)
    assertExact([full.events.slice(0, k), resumed.events], full.events, sid, `${how} after ${k}`);
    assert.deepEqual(
      kept.map((e) => e.data),
      full.events.slice(0, k).map((e) => e.data),
      'the kept chunks are the first k',
    );
  } else {
    assertExact([kept, resumed.events], full.events, sid, `${how} after ${k}`);
  }
  assert.equal(full.events.length, N);
  assert.equal(contentOfEvents(full.events), text, 'the answer is the mock answer');
  return { first, resumed, full };
}

describe('drop after k events, then resume', () => {
  for (const how of ['header', 'query', 'post', 'after']) {
    for (const k of [0, 1, 21, N - 1, N]) {
      test(`${how}: dropped after ${k} event(s)`, async () => {
        await dropAndResume(how, k, `${how}-${k}`);
      });
    }
  }

  test('mid-answer: the resume replays what is there at once, then follows live', async () => {
    const slow = { tokens: 30, delay_ms: 60 * SLACK };
    const first = await openAnswer(relay, slow, { stopAfter: 5, messages: msgs('live follow') });
    const t0 = performance.now();
    const arrivals = [];
    const resumed = await resumeGet(relay, first.sid, {
      lastEventId: `${first.sid}.3`,
      onEvent: () => arrivals.push(performance.now() - t0),
    });
    assert.equal(resumed.status, 200);
    const full = await waitFinished(relay, first.sid);
    assertExact([first.events.slice(0, 3), resumed.events], full.events, first.sid, 'live');
    // The tail came live: it took about as long as the rest of the answer did to generate.
    const span = arrivals.at(-1) - arrivals[0];
    assert.ok(span > 20 * slow.delay_ms * 0.5, `the rest streamed live over ${span.toFixed(0)} ms`);
  });

  test('a chain of resumes: drop every 4 events, resume from the last id, until the end', async () => {
    const body = { model: 'gpt-relay', messages: msgs('chain'), stream: true, mock: { tokens: 40, delay_ms: 10 } };
    const first = await request(`${relay.url}/v1/chat/completions`, {
      body,
      headers: { accept: 'text/event-stream', 'x-telex-event-ids': '1' },
      stopAfter: 4,
    });
    const sid = first.headers['x-telex-stream-id'];
    const pieces = [first.events.slice(0, 4)];
    let last = `${sid}.4`;
    for (let round = 0; round < 30; round++) {
      const r = await resumeGet(relay, sid, { lastEventId: last, stopAfter: 4 });
      assert.equal(r.status, 200, r.text);
      const got = r.aborted ? r.events.slice(0, 4) : r.events;
      pieces.push(got);
      last = got.at(-1).id;
      if (got.at(-1).data === '[DONE]') break;
    }
    assert.equal(pieces.flat().at(-1).data, '[DONE]', 'reached the end');
    const full = await waitFinished(relay, sid);
    assertExact(pieces, full.events, sid, 'chain');
    assert.ok(pieces.length >= 10, `${pieces.length} pieces`);
  });
});

describe('across worker threads (workers: 2, a fresh connection per request)', () => {
  test('40 answers, each dropped at a different point and resumed: all exact', async () => {
    const one = async (i) => {
      const k = 1 + ((i * 7) % 30);
      const body = { model: 'gpt-relay', messages: msgs(`threads ${i}`), stream: true, mock: { tokens: 30, delay_ms: 10 } };
      const first = await request(`${relay.url}/v1/chat/completions`, {
        body,
        headers: { accept: 'text/event-stream', 'x-telex-event-ids': '1' },
        stopAfter: k,
      });
      assert.equal(first.status, 200);
      const sid = first.headers['x-telex-stream-id'];
      const resumed =
        i % 2 === 0
          ? await resumeGet(relay, sid, { lastEventId: `${sid}.${k}` })
          : await request(`${relay.url}${first.headers['x-telex-resume-url']}&last_event_id=${sid}.${k}`, {
              headers: { accept: 'text/event-stream' },
            });
      assert.equal(resumed.status, 200);
      const full = await waitFinished(relay, sid);
      assertExact([first.events.slice(0, k), resumed.events], full.events, sid, `answer ${i} after ${k}`);
      assert.equal(full.events.length, 33);
      return sid;
    };
    const sids = [];
    for (let b = 0; b < 40; b += 10) sids.push(...(await Promise.all(Array.from({ length: 10 }, (_, j) => one(b + j)))));
    assert.equal(new Set(sids).size, 40);
  });
});
