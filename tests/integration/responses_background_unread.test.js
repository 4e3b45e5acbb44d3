// tests/integration/responses_background_unread.test.js — a background Response (POST
// /v1/responses with `background: true`, no stream) whose events outgrow half of a small
// resume.max_bytes. Its client gets the Response object at once and comes back with
// GET /v1/responses/{id}; nobody reads the answer's log.
//
// What must hold: the answer runs to its end with nobody attached (it once stayed `in_progress`
// for good: the provider was paused by back-pressure waiting for a reader to free room in the
// log, and none ever came); GET then returns the completed Response with the provider's whole
// text (the Response kept with the stream, not rebuilt from the log, whose history nobody read
// was dropped); a reader attached from the start (GET with stream=true) still gets every event
// in order through response.completed (back-pressure, not dropped history, for it).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startRelay } from './lib/relay.js';
import { messageText, responsesClient } from './lib/responses.js';
import { directText, request } from './lib/resume.js';

const MAX_BYTES = 8192;
let relay;
before(async () => {
  relay = await startRelay({
    config: { resume: { enabled: true, max_bytes: MAX_BYTES, retention_seconds: 30, grace_seconds: 5 } },
  });
});
after(async () => {
  if (relay) await relay.stop();
});

const msgs = (text) => [{ role: 'user', content: text }];
const { ended, startBackground } = responsesClient(() => relay);

describe('background Responses on a small resume.max_bytes', () => {
  test('nobody reads the log: the answer completes and GET returns it whole', async () => {
    const mock = { tokens: 400, delay_ms: 0 };
    const want = (await directText(relay.mock, mock, msgs('unread background'))).text;
    const started = await startBackground('unread background', mock);
    const line = await ended(started.id);
    assert.equal(line.outcome, 'ok', JSON.stringify(line));
    assert.ok(line.bytes > 4 * MAX_BYTES, `the events (${line.bytes} bytes) outgrew the log several times`);
    const got = await request(`${relay.url}/v1/responses/${started.id}`);
    assert.equal(got.status, 200, got.text.slice(0, 300));
    const done = JSON.parse(got.text);
    assert.equal(done.id, started.id);
    assert.equal(done.status, 'completed');
    assert.equal(messageText(done), want);
    assert.ok(done.usage?.output_tokens > 0, JSON.stringify(done.usage));
  });

  test('a reader attached from the start gets every event through response.completed', async () => {
    // ttft_ms: the provider's first event comes after the reader has attached (under the relay's
    // 1.5 s idle_timeout); a text short enough for the closing events (each repeats it), which a
    // reader cannot ack in between, to fit the log together with what it has not acked yet (up to
    // the half of the log at which the provider pauses for it); delay_ms: chunks read one by one,
    // so that the pause takes effect between them (those of one read are all parsed)
    const mock = { tokens: 60, delay_ms: 3, ttft_ms: 700 };
    const want = (await directText(relay.mock, { tokens: 60 }, msgs('read background'))).text;
    const started = await startBackground('read background', mock);
    const reply = await request(`${relay.url}/v1/responses/${started.id}?stream=true`, { timeoutMs: 30000 });
    assert.equal(reply.status, 200, reply.text.slice(0, 300));
    const events = reply.events.map((e) => JSON.parse(e.data));
    assert.deepEqual(
      events.map((e) => e.sequence_number),
      events.map((_, i) => i),
      'sequence_number 0, 1, 2 … with no gap',
    );
    assert.equal(events[0].type, 'response.created');
    assert.equal(events.at(-1).type, 'response.completed', JSON.stringify(events.at(-1)).slice(0, 300));
    const deltas = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta);
    assert.equal(deltas.join(''), want);
    assert.equal(events.at(-1).response.output[0].content[0].text, want);
    const line = await ended(started.id);
    assert.equal(line.outcome, 'ok', JSON.stringify(line));
    assert.ok(line.bytes > MAX_BYTES, `the events (${line.bytes} bytes) outgrew the log`);
  });
});
