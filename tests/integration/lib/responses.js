// tests/integration/lib/responses.js — a test's client of telex's /v1/responses on one relay
// (the background-Response suites share it): POST, the stream id behind a Response id, the
// gateway's request line for an answer (written when it ends, whatever way), starting a
// background Response, and the text of a Response's message items.
import assert from 'node:assert/strict';

import { request } from './resume.js';

// relayOf: () => the relay (tests start it in before(), after this is called).
export function responsesClient(relayOf, { postTimeoutMs = 30000, endTimeoutMs = 30000 } = {}) {
  const post = (body) => request(`${relayOf().url}/v1/responses`, { body, timeoutMs: postTimeoutMs });
  const streamIdOf = (rid) => `st_${rid.slice('resp_'.length)}`;
  const ended = (rid) =>
    relayOf().serve.waitForLog((l) => l.msg === 'request' && l.stream_id === streamIdOf(rid), {
      timeoutMs: endTimeoutMs,
    });
  async function startBackground(input, mock) {
    const reply = await post({ model: 'gpt-relay', input, background: true, mock });
    assert.equal(reply.status, 200, reply.text.slice(0, 300));
    const started = JSON.parse(reply.text);
    assert.equal(started.status, 'in_progress');
    assert.equal(started.background, true);
    return started;
  }
  return { post, streamIdOf, ended, startBackground };
}

export const messageText = (response) =>
  response.output
    .filter((i) => i.type === 'message')
    .flatMap((i) => i.content)
    .map((p) => p.text)
    .join('');
