// tests/integration/responses_fit.test.js — a streamed POST /v1/responses whose parameters do not
// fit the stream's log. response.created and response.in_progress repeat the request's parameters
// (instructions, tools, metadata, …), so a body well under limits.max_body_bytes can take more than
// a small resume.max_bytes in the answer's first two events.
//
// What must hold: such a request is answered 400 invalid_request_error (code request_too_large) in
// OpenAI's error shape naming resume.max_bytes and its value, before any provider is called (it
// once got 200 and an event stream that just ended: the events failed after the hand-over); a
// normal-size request on the same gateway still streams to response.completed; an answer whose
// closing events (which repeat its text and parameters) outgrow the log ends with OpenAI's `error`
// event, never silently (Responses' events keep room for it in the log); background without
// a stream is unchanged: it answers the Response object itself at once. At start telex warns that
// resume.max_bytes is below limits.max_body_bytes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { lastSeq, entriesSince, startRelay } from './lib/relay.js';
import { request } from './lib/resume.js';

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

const post = (body) => request(`${relay.url}/v1/responses`, { body, timeoutMs: 30000 });
// ~6 KiB of instructions: one copy fits 8 KiB, the two first events (two copies) do not
const longInstructions = 'Answer briefly and politely. '.repeat(220);
const manyTools = Array.from({ length: 40 }, (_, i) => ({
  type: 'function',
  name: `tool_${i}`,
  description: `Looks up record ${i} of the catalogue and returns it as JSON.`,
  parameters: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
}));

function assertTooLarge(reply) {
  assert.equal(reply.status, 400, `status ${reply.status}: ${reply.text.slice(0, 300)}`);
  assert.match(reply.headers['content-type'], /application\/json/);
  const body = JSON.parse(reply.text);
  assert.equal(body.error.type, 'invalid_request_error');
  assert.equal(body.error.code, 'request_too_large');
  assert.equal(body.error.param, null);
  assert.match(body.error.message, new RegExp(`exceed resume\\.max_bytes of ${MAX_BYTES} bytes`));
  assert.match(body.error.message, /response\.created/);
}

describe('streamed Responses whose first events do not fit resume.max_bytes', () => {
  test('long instructions: 400 naming resume.max_bytes, and no provider call', async () => {
    const since = await lastSeq(relay.mock);
    const body = { model: 'gpt-relay', input: 'hi', instructions: longInstructions, stream: true, mock: { tokens: 3 } };
    assert.ok(JSON.stringify(body).length < MAX_BYTES, 'the body alone fits the log');
    assertTooLarge(await post(body));
    assert.equal((await entriesSince(relay.mock, since)).length, 0, 'the provider was not called');
  });

  test('telex warns at start that resume.max_bytes is below limits.max_body_bytes', async () => {
    const line = await relay.serve.waitForLog((l) => l.msg?.startsWith('resume.max_bytes is below limits.max_body_bytes'));
    assert.equal(line.level, 'warn');
    assert.equal(line.max_bytes, MAX_BYTES);
    assert.equal(line.max_body_bytes, 1048576);
  });

  test('many tools: 400 as well', async () => {
    assertTooLarge(
      await post({ model: 'gpt-relay', input: 'hi', tools: manyTools, stream: true, mock: { tokens: 3 } }),
    );
  });

  test('background with a stream: 400 as well', async () => {
    assertTooLarge(
      await post({
        model: 'gpt-relay',
        input: 'hi',
        instructions: longInstructions,
        background: true,
        stream: true,
        mock: { tokens: 3 },
      }),
    );
  });

  test('a normal-size request on the same gateway streams to response.completed', async () => {
    const reply = await post({
      model: 'gpt-relay',
      input: 'hi',
      instructions: 'Answer briefly.',
      tools: manyTools.slice(0, 2),
      stream: true,
      mock: { tokens: 5 },
    });
    assert.equal(reply.status, 200);
    assert.equal(reply.error, null);
    const types = reply.events.map((e) => e.type);
    assert.equal(types[0], 'response.created');
    assert.equal(types[1], 'response.in_progress');
    assert.equal(types.at(-1), 'response.completed', types.join(' '));
    assert.ok(types.includes('response.output_text.delta'));
    const done = JSON.parse(reply.events.at(-1).data).response;
    assert.equal(done.status, 'completed');
    assert.equal(done.instructions, 'Answer briefly.');
    assert.equal(done.tools.length, 2);
  });

  test('an answer whose closing events outgrow the log ends with an error event, not silently', async () => {
    // the start fits; the .done events and response.completed repeat the text (and completed the
    // instructions) in one burst the reader cannot ack in between: they do not fit 8 KiB
    const reply = await post({
      model: 'gpt-relay',
      input: 'hi',
      instructions: 'x'.repeat(2500),
      stream: true,
      mock: { tokens: 500, delay_ms: 0 },
    });
    assert.equal(reply.status, 200);
    assert.equal(reply.error, null);
    const types = reply.events.map((e) => e.type);
    assert.equal(types[0], 'response.created');
    assert.ok(!types.includes('response.completed'), 'no response.completed for a cut answer');
    const last = reply.events.at(-1);
    assert.equal(last.type, 'error', `the stream ends with ${last.type}`);
    const err = JSON.parse(last.data);
    assert.equal(err.type, 'error');
    assert.equal(err.code, 'log_full');
    assert.match(err.message, /resume\.max_bytes/);
    assert.equal(err.param, null);
    assert.deepEqual(
      reply.events.map((e) => JSON.parse(e.data).sequence_number),
      reply.events.map((_, i) => i),
      'sequence_number 0, 1, 2 … through the error event',
    );
  });

  test('background without a stream: unchanged, the Response object itself at once', async () => {
    // the client does not read the events: no 400 for it (what response.created would have
    // repeated is the object it gets)
    const reply = await post({
      model: 'gpt-relay',
      input: 'hi',
      instructions: longInstructions,
      background: true,
      mock: { tokens: 3 },
    });
    assert.equal(reply.status, 200, reply.text.slice(0, 300));
    assert.match(reply.headers['content-type'], /application\/json/);
    const started = JSON.parse(reply.text);
    assert.equal(started.object, 'response');
    assert.equal(started.status, 'in_progress');
    assert.equal(started.background, true);
    assert.equal(started.instructions, longInstructions);
  });
});
