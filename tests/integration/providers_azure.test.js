// tests/integration/providers_azure.test.js — provider kind `azure` (Azure OpenAI) end to
// end against `telex mock`, which serves the deployment URL shape:
//  - POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...,
//    the key in `api-key` (never Authorization), the body as the gateway built it;
//  - the deployment is the route's model; through the catch-all, the client's model name,
//    percent-encoded into one path segment;
//  - the same stream semantics as kind openai: same text, chunks, usage, tool calls and
//    reasoning passed untouched, [DONE]; errors before the first chunk as HTTP statuses,
//    after it as error events; plain answers relayed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { lastSeq } from './lib/relay.js';
import { AZ_KEY, chat, entriesOf, plain, startProviders } from './lib/providers.js';

let relay;
before(async () => {
  relay = await startProviders({
    config: (cfg, mockUrl) => {
      cfg.providers.push({ name: 'azure-preview', kind: 'azure', endpoint: `${mockUrl}/`, api_key: AZ_KEY, api_version: '2025-01-01-preview' });
      cfg.models.unshift({ name: 'via-azure-preview', providers: [{ provider: 'azure-preview', model: 'dep.v2_x-1' }] });
      return cfg;
    },
  });
});
after(async () => {
  if (relay) {
    try {
      await relay.stop();
    } finally {
      // read once it has exited: every line it logged is on stderr by then
      assert.ok(!relay.serve.stderr().includes(AZ_KEY), 'the azure key reached the log');
    }
  }
});

const lastEntry = async (since) => (await entriesOf(relay.mock, since)).at(-1);

describe('the Azure request', () => {
  test('deployment URL with api-version, api-key header, the body as built for openai', async () => {
    const since = await lastSeq(relay.mock);
    const r = await chat(relay.url, 'via-azure', { temperature: 0.2, seed: 11, mock: { tokens: 3, delay_ms: 0 } });
    assert.equal(r.status, 200);
    const e = await lastEntry(since);
    assert.equal(e.path, '/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21');
    assert.equal(e.headers['api-key'], '[redacted]', 'the key is sent as api-key');
    assert.equal(e.headers.authorization, undefined);
    assert.equal(e.body.model, 'my-deployment');
    assert.equal(e.body.temperature, 0.2);
    assert.equal(e.body.seed, 11);
    assert.equal(e.body.stream, true);
    assert.deepEqual(e.body.stream_options, { include_usage: true });
    assert.deepEqual(e.body.messages, [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'tell me about rivers' },
    ]);
  });

  test('api_version from the config; the endpoint’s trailing slash is dropped', async () => {
    const since = await lastSeq(relay.mock);
    const r = await chat(relay.url, 'via-azure-preview', { mock: { tokens: 1 } });
    assert.equal(r.status, 200);
    assert.equal((await lastEntry(since)).path, '/openai/deployments/dep.v2_x-1/chat/completions?api-version=2025-01-01-preview');
  });

  test('through the catch-all the client’s model name is the deployment, percent-encoded as one segment', async () => {
    let since = await lastSeq(relay.mock);
    const ok = await chat(relay.url, 'gpt 4o', { mock: { tokens: 2, delay_ms: 0 } });
    assert.equal(ok.status, 200);
    assert.ok(ok.answer.done);
    assert.equal((await lastEntry(since)).path, '/openai/deployments/gpt%204o/chat/completions?api-version=2024-10-21');
    // a '/' cannot reach another path: it is encoded (and no such deployment exists)
    since = await lastSeq(relay.mock);
    const bad = await plain(relay.url, '../../v1/chat/completions?x=');
    assert.equal(bad.status, 404);
    assert.equal(
      (await lastEntry(since)).path,
      '/openai/deployments/..%2F..%2Fv1%2Fchat%2Fcompletions%3Fx%3D/chat/completions?api-version=2024-10-21',
    );
  });
});

describe('the same stream semantics as kind openai', () => {
  test('same text, chunks, usage and finish as through kind openai', async () => {
    const body = { stream_options: { include_usage: true }, mock: { seed: 5, tokens: 9, delay_ms: 1, cached_tokens: 2 } };
    const a = await chat(relay.url, 'via-azure', body);
    const o = await chat(relay.url, 'via-openai', body);
    assert.equal(a.status, 200);
    assert.ok(a.answer.done);
    assert.equal(a.answer.content, o.answer.content);
    assert.equal(a.answer.chunks.length, o.answer.chunks.length);
    assert.equal(a.answer.finish, 'stop');
    assert.deepEqual(a.answer.usage, o.answer.usage);
    // chunk for chunk, the same JSON but for the id and the model (the deployment)
    const norm = (ch) => ({ ...ch, id: 'x', created: 0, model: 'm' });
    assert.deepEqual(a.answer.chunks.map(norm), o.answer.chunks.map(norm));
    assert.equal(a.answer.chunks[0].model, 'my-deployment');
  });

  test('tool-call deltas, reasoning_content and refusal pass untouched', async () => {
    const body = {
      mock: { text: 'Checking.', thinking: 'Think first.', tool_calls: [{ name: 'lookup', arguments: { q: 'rivers' } }], delay_ms: 0 },
      tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }],
    };
    const a = await chat(relay.url, 'via-azure', body);
    assert.equal(a.answer.reasoning, 'Think first.');
    assert.equal(a.answer.content, 'Checking.');
    assert.equal(a.answer.toolCalls[0].name, 'lookup');
    assert.deepEqual(JSON.parse(a.answer.toolCalls[0].arguments), { q: 'rivers' });
    assert.equal(a.answer.finish, 'tool_calls');
    const refusal = await chat(relay.url, 'via-azure', { mock: { refusal: 'I cannot help with that.', delay_ms: 0 } });
    assert.equal(refusal.answer.refusal, 'I cannot help with that.');
    assert.equal(refusal.answer.content, '');
  });

  test('plain answers are relayed as they are', async () => {
    const p = await plain(relay.url, 'via-azure', { mock: { seed: 5, tokens: 3 } });
    assert.equal(p.status, 200);
    assert.equal(p.body.object, 'chat.completion');
    assert.equal(p.body.model, 'my-deployment');
    assert.equal(p.body.choices[0].message.content.split(' ').length, 3);
  });

  test('errors: 4xx relayed, 429 with Retry-After, 5xx → 502; after the first chunk an error event', async () => {
    for (const [status, want] of [
      [400, 400],
      [404, 404],
      [429, 429],
      [503, 502],
    ]) {
      const res = await fetch(`${relay.url}/v1/chat/completions`, {
        method: 'POST',
        body: JSON.stringify({ model: 'via-azure', messages: [{ role: 'user', content: 'x' }], stream: true, mock: { status, ...(status === 429 ? { retry_after: 3 } : {}) } }),
      });
      assert.equal(res.status, want, String(status));
      const body = await res.json();
      assert.ok(body.error.message, String(status));
      if (status === 429) assert.equal(res.headers.get('retry-after'), '3');
    }
    for (const [knob, code] of [
      ['cut_after', 'cut'],
      ['invalid_json_after', 'bad_json'],
      ['error_after', 'error_event'],
    ]) {
      const r = await chat(relay.url, 'via-azure', { mock: { tokens: 4, delay_ms: 0, [knob]: 2 } });
      assert.equal(r.status, 200);
      assert.ok(!r.answer.done, knob);
      assert.equal(r.answer.error?.code, code, knob);
    }
  });
});
