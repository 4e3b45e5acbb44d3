// tests/integration/resume_ids.test.js — what a resumable answer looks like on the wire.
//
//  - every event carries `id: <stream id>.<n>`, n = 1, 2, 3 ... in order; only the first
//    carries `retry: <resume.retry_ms>`; the [DONE] event has an id too;
//  - headers X-Telex-Stream-Id (st_ + 22 base64url characters) and X-Telex-Resume-Url (a
//    relative URL /v1/streams/{id}?token=<43 base64url characters>) that works as it is;
//  - stream ids are unguessable: 200 of them are distinct and each of their 128 bits is
//    about as often 0 as 1 (a counter or a clock would fail that); tokens are per stream;
//  - the body is the same answer the mock gives, with the mock's own chunks unchanged;
//  - a response resumed after event k opens with its own `retry:` block (no event);
//  - HTTP/2 (h2c): the same ids and headers.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { curl, startRelay } from './lib/relay.js';
import { parseSSEText } from './lib/sse.js';
import {
  STREAM_ID_RE,
  contentOfEvents,
  directText,
  eventIds,
  openAnswer,
  request,
  resumeConfig,
} from './lib/resume.js';

let relay;
before(async () => {
  relay = await startRelay({ config: resumeConfig({ resume: { retry_ms: 1234 } }) });
});
after(async () => {
  if (relay) await relay.stop();
});

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function bitsOf(sid) {
  let bits = '';
  for (const ch of sid.slice(3)) bits += B64URL.indexOf(ch).toString(2).padStart(6, '0');
  return bits.slice(0, 128); // 22 characters carry 132 bits; the last 4 are padding
}

describe('ids and headers', () => {
  test('every event has id <stream>.<n> (n = 1, 2, ...); the first carries retry', async () => {
    const mock = { tokens: 12, delay_ms: 5 };
    const r = await openAnswer(relay, mock);
    assert.equal(r.status, 200);
    assert.ok(r.complete);
    assert.match(r.sid, STREAM_ID_RE);
    const n = r.events.length;
    assert.equal(n, 1 + 12 + 1 + 1, 'role, 12 content chunks, finish, [DONE]');
    assert.deepEqual(
      r.events.map((e) => e.id),
      eventIds(r.sid, 1, n),
      'each event has its own id line',
    );
    assert.equal(r.events[0].retry, 1234, 'retry: resume.retry_ms on the first event');
    assert.ok(r.events.slice(1).every((e) => e.retry === null), 'and on no other');
    assert.equal(r.events.at(-1).data, '[DONE]');
    // raw form: "id: ..." then "retry: ..." then "data: ..." for the first event
    assert.ok(r.text.startsWith(`id: ${r.sid}.1\nretry: 1234\ndata: {`), r.text.slice(0, 80));
    // the chunks are the mock's, unchanged; the answer is the mock's answer
    const direct = await directText(relay.mock, mock);
    assert.equal(contentOfEvents(r.events), direct.text);
    assert.equal(n, direct.events);
  });

  test('X-Telex-Stream-Id and X-Telex-Resume-Url (relative, with ?token=)', async () => {
    const r = await openAnswer(relay, { tokens: 3 });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.match(r.headers['x-telex-stream-id'], STREAM_ID_RE);
    assert.match(r.resumeUrl, /^\/v1\/streams\/st_[A-Za-z0-9_-]{22}\?token=[A-Za-z0-9_-]{43}$/);
    assert.ok(r.resumeUrl.startsWith(`/v1/streams/${r.sid}?token=`));
    assert.ok(!r.token.includes(r.sid.slice(3)), 'the token is not the id');
    // The URL works exactly as given, against the gateway's origin.
    const again = await request(new URL(r.resumeUrl, relay.url).href, { headers: { accept: 'text/event-stream' } });
    assert.equal(again.status, 200);
    assert.equal(again.headers['x-telex-stream-id'], r.sid);
    assert.deepEqual(again.events, r.events, 'the resume URL replays the same events');
  });

  test('stream ids are unguessable: 200 distinct ids, every bit balanced; tokens per stream', async () => {
    const replies = [];
    for (let i = 0; i < 200; i += 20) {
      replies.push(...(await Promise.all(Array.from({ length: 20 }, () => openAnswer(relay, { tokens: 0 })))));
    }
    const ids = replies.map((r) => r.sid);
    for (const id of ids) assert.match(id, STREAM_ID_RE);
    assert.equal(new Set(ids).size, 200, 'all distinct');
    assert.equal(new Set(replies.map((r) => r.token)).size, 200, 'one token per stream');
    const ones = new Array(128).fill(0);
    for (const id of ids) [...bitsOf(id)].forEach((b, i) => (ones[i] += b === '1'));
    // For random bits each count is Binomial(200, 1/2): outside [55, 145] has probability < 1e-10.
    const skewed = ones.map((c, i) => [i, c]).filter(([, c]) => c < 55 || c > 145);
    assert.deepEqual(skewed, [], 'bits that are (almost) always the same');
    // The 4 padding bits of the last character are 0: it is one of A, Q, g, w.
    for (const id of ids) assert.match(id.at(-1), /[AQgw]/);
  });

  test('a resumed response after event k opens with retry: (a block that is no event)', async () => {
    const r = await openAnswer(relay, { tokens: 5 });
    const tail = await request(`${relay.url}/v1/streams/${r.sid}`, {
      headers: { accept: 'text/event-stream', 'last-event-id': `${r.sid}.2` },
    });
    assert.ok(tail.text.startsWith(`retry: 1234\n\nid: ${r.sid}.3\ndata: `), tail.text.slice(0, 80));
    assert.deepEqual(tail.events, r.events.slice(2).map((e, i) => ({ ...e, retry: i === 0 ? 1234 : null })));
    // from the start, event 1 carries it as in the original: the bytes are the original's
    const whole = await request(`${relay.url}/v1/streams/${r.sid}`, { headers: { accept: 'text/event-stream' } });
    assert.ok(whole.raw.equals(r.raw));
  });

  test('HTTP/2 (h2c prior knowledge): same ids, retry and headers', async () => {
    const res = await curl([
      '--http2-prior-knowledge',
      '-N',
      '-D',
      '-',
      '-H',
      'content-type: application/json',
      '-H',
      'x-telex-event-ids: 1',
      '-d',
      JSON.stringify({ model: 'gpt-relay', messages: [{ role: 'user', content: 'h2' }], stream: true, mock: { tokens: 4 } }),
      `${relay.url}/v1/chat/completions`,
    ]);
    assert.equal(res.code, 0, res.err);
    const [head, body] = res.out.split('\r\n\r\n');
    assert.match(head, /^HTTP\/2 200/);
    const sid = /x-telex-stream-id: (\S+)/.exec(head)[1];
    assert.match(sid, STREAM_ID_RE);
    assert.match(head, new RegExp(`x-telex-resume-url: /v1/streams/${sid}\\?token=`));
    const events = parseSSEText(body);
    assert.deepEqual(
      events.map((e) => e.id),
      eventIds(sid, 1, 7),
    );
    assert.ok(body.startsWith(`id: ${sid}.1\nretry: 1234\n`));
  });
});
