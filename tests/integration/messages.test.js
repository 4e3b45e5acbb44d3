// tests/integration/messages.test.js — POST /v1/messages, the Anthropic Messages API front door,
// driven by the official `@anthropic-ai/sdk` (messages.create streamed and not, messages.stream
// with finalMessage, a tool-use round trip, countTokens) and the Vercel AI SDK's
// `@ai-sdk/anthropic`, against a real `telex serve` and a real `telex mock`, through an Anthropic
// provider (via-claude) and an OpenAI-compatible one (via-openai): the answer model in between,
// Anthropic's event sequence out.
//
// What must hold: message_start, ping, content blocks (thinking, text, tool_use) with their
// deltas, message_delta with stop_reason and usage, message_stop; a cut answer ends with
// `event: error`, never message_stop; the key as x-api-key or Bearer; every error in Anthropic's
// shape ({"type":"error","error":{type,message}}) with the status Anthropic uses; the resume
// headers and GET /v1/streams/{id} serve the Messages stream again.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';

import { SYNC_TIMEOUT_MS, TELEX_BIN } from './lib/proc.js';
import { startProviders } from './lib/providers.js';
import { SANITIZER_ENV, startRelay, tmpDir } from './lib/relay.js';
import { request } from './lib/resume.js';

let relay;
before(async () => {
  relay = await startProviders({
    config: (cfg) => ({ ...cfg, resume: { enabled: true, grace_seconds: 5, retention_seconds: 30 } }),
  });
});
after(async () => {
  if (relay) await relay.stop();
});

// the SDK, with telex mock's knobs added to every request body (the SDK sends only its own)
function sdk(mock, opts = {}) {
  return new Anthropic({
    baseURL: relay.url,
    apiKey: 'unused',
    maxRetries: 0,
    fetch: (url, init) =>
      fetch(url, init.body ? { ...init, body: JSON.stringify({ ...JSON.parse(init.body), mock }) } : init),
    ...opts,
  });
}

const mockText = 'The quick brown fox jumps over the lazy dog.';

for (const model of ['via-claude', 'via-openai']) {
  describe(`through ${model === 'via-claude' ? 'an Anthropic provider' : 'an OpenAI-compatible provider'} (${model})`, () => {
    test('streamed: the event sequence, the text, stop_reason and usage', async () => {
      const client = sdk({ text: mockText, delay_ms: 1 });
      const stream = await client.messages.create({
        model,
        max_tokens: 200,
        stream: true,
        messages: [{ role: 'user', content: 'Say it' }],
      });
      const events = [];
      for await (const ev of stream) events.push(ev);
      const types = events.map((e) => e.type);
      assert.deepEqual(types.slice(0, 3), ['message_start', 'content_block_start', 'content_block_delta']);
      assert.deepEqual(types.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
      const text = events
        .filter((e) => e.type === 'content_block_delta')
        .map((e) => e.delta.text)
        .join('');
      assert.equal(text, mockText);
      const md = events.find((e) => e.type === 'message_delta');
      assert.equal(md.delta.stop_reason, 'end_turn');
      assert.ok(md.usage.output_tokens > 0, JSON.stringify(md.usage));
      assert.match(events[0].message.id, /^msg_[A-Za-z0-9_-]{22}$/);
      assert.equal(events[0].message.model, model);
    });

    test('messages.stream(): finalMessage, thinking and text blocks', async () => {
      const client = sdk({ text: mockText, thinking: 'Let me think.', delay_ms: 0 });
      const stream = client.messages.stream({ model, max_tokens: 200, messages: [{ role: 'user', content: 'Think' }] });
      const final = await stream.finalMessage();
      assert.deepEqual(
        final.content.map((b) => b.type),
        ['thinking', 'text'],
      );
      assert.equal(final.content[0].thinking, 'Let me think.');
      assert.equal(final.content[1].text, mockText);
      assert.equal(final.stop_reason, 'end_turn');
      assert.ok(final.usage.input_tokens > 0);
    });

    test('not streamed: the Message object', async () => {
      const client = sdk({ text: mockText });
      const m = await client.messages.create({ model, max_tokens: 100, messages: [{ role: 'user', content: 'Plain' }] });
      assert.equal(m.type, 'message');
      assert.equal(m.role, 'assistant');
      assert.equal(m.content[0].type, 'text');
      assert.equal(m.content[0].text, mockText);
      assert.equal(m.stop_reason, 'end_turn');
      assert.ok(m.usage.output_tokens > 0);
    });

    test('a tool-use round trip: tool_use block with its input, then the tool_result turn', async () => {
      const tools = [
        { name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } },
      ];
      const first = await sdk({ text: 'Checking.', tool_calls: [{ id: 'toolu_1', name: 'get_weather', arguments: { city: 'Oslo' } }] })
        .messages.stream({ model, max_tokens: 100, tools, messages: [{ role: 'user', content: 'Weather in Oslo?' }] })
        .finalMessage();
      assert.equal(first.stop_reason, 'tool_use');
      const use = first.content.find((b) => b.type === 'tool_use');
      assert.equal(use.name, 'get_weather');
      assert.deepEqual(use.input, { city: 'Oslo' });
      const second = await sdk({ text: 'Sunny in Oslo.' }).messages.create({
        model,
        max_tokens: 100,
        tools,
        messages: [
          { role: 'user', content: 'Weather in Oslo?' },
          { role: 'assistant', content: first.content },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }] },
        ],
      });
      assert.equal(second.content[0].text, 'Sunny in Oslo.');
    });
  });
}

describe('front-door behaviour', () => {
  test('a cut answer ends with event: error, never message_stop', async () => {
    const r = await request(`${relay.url}/v1/messages`, {
      body: { model: 'via-openai', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'cut' }], mock: { tokens: 6, cut_after: 3 } },
    });
    assert.equal(r.status, 200);
    const types = r.events.map((e) => e.type);
    assert.equal(types.at(-1), 'error');
    assert.ok(!types.includes('message_stop'));
    const err = JSON.parse(r.events.at(-1).data);
    assert.equal(err.type, 'error');
    assert.equal(err.error.type, 'api_error');
  });

  test('errors in Anthropic shape with Anthropic statuses', async () => {
    const post = (body, headers = {}) =>
      fetch(`${relay.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    const cases = [
      [{ model: 'via-openai', messages: [{ role: 'user', content: 'x' }] }, 400, 'invalid_request_error', /max_tokens/],
      [{ model: 'via-openai', max_tokens: 5, messages: [] }, 400, 'invalid_request_error', /messages/],
      [{ model: 'via-openai', max_tokens: 5, messages: [{ role: 'wizard', content: 'x' }] }, 400, 'invalid_request_error', /role/],
      [{ model: 'via-openai', max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'document', source: {} }] }] }, 400, 'invalid_request_error', /document/],
    ];
    for (const [body, status, type, msg] of cases) {
      const res = await post(body);
      const j = await res.json();
      assert.equal(res.status, status, JSON.stringify(j));
      assert.deepEqual(Object.keys(j).sort(), ['error', 'type']);
      assert.equal(j.type, 'error');
      assert.equal(j.error.type, type);
      assert.match(j.error.message, msg);
    }
    // (this gateway has a catch-all model, so an unknown path stands in for a 404)
    const nf = await fetch(`${relay.url}/v1/messages/nothing-here`);
    assert.equal(nf.status, 404);
    assert.equal((await nf.json()).error.type, 'not_found_error');
    const get = await fetch(`${relay.url}/v1/messages`);
    assert.equal(get.status, 405);
    assert.equal((await get.json()).type, 'error');
    await assert.rejects(
      sdk({}).messages.create({ model: 'via-openai', max_tokens: 5, messages: [] }),
      (e) => e.status === 400 && e.error?.error?.type === 'invalid_request_error',
    );
  });

  test('GET /v1/models in Anthropic shape with anthropic-version (the SDK lists them)', async () => {
    const page = await sdk({}).models.list();
    const ids = page.data.map((m) => m.id);
    assert.ok(ids.includes('via-claude') && ids.includes('via-openai'), ids.join(','));
    assert.equal(page.data[0].type, 'model');
    assert.match(page.data[0].created_at, /^\d{4}-\d\d-\d\dT/);
    const openaiShape = await (await fetch(`${relay.url}/v1/models`)).json();
    assert.equal(openaiShape.object, 'list');
  });

  test('countTokens: telex estimate, marked', async () => {
    const res = await fetch(`${relay.url}/v1/messages/count_tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'via-claude', messages: [{ role: 'user', content: 'How many tokens is this sentence?' }] }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-telex-estimate'), 'true');
    const j = await res.json();
    assert.ok(j.input_tokens > 3 && j.input_tokens < 40, JSON.stringify(j));
    const viaSdk = await sdk({}).messages.countTokens({ model: 'via-claude', messages: [{ role: 'user', content: 'How many tokens is this sentence?' }] });
    assert.equal(viaSdk.input_tokens, j.input_tokens);
  });

  test('server tools and thinking history are named in X-Telex-Ignored; resume serves the Messages stream', async () => {
    const r = await request(`${relay.url}/v1/messages`, {
      body: {
        model: 'via-openai',
        max_tokens: 50,
        stream: true,
        tools: [{ type: 'web_search_20250305', name: 'web_search' }],
        messages: [
          { role: 'user', content: 'a' },
          { role: 'assistant', content: [{ type: 'thinking', thinking: 'hm', signature: 's' }, { type: 'text', text: 'b' }] },
          { role: 'user', content: 'c' },
        ],
        mock: { text: 'ok then' },
      },
      headers: { 'x-api-key': 'anything' },
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-telex-ignored'], 'thinking blocks, tools (web_search_20250305)');
    const again = await request(`${relay.url}${r.headers['x-telex-resume-url']}`, { headers: { accept: 'text/event-stream' } });
    assert.deepEqual(
      again.events.map((e) => [e.type, e.data]),
      r.events.map((e) => [e.type, e.data]),
    );
    assert.equal(again.events[0].id, `${r.headers['x-telex-stream-id']}.1`);
  });

  test('the Vercel AI SDK with @ai-sdk/anthropic', async () => {
    const { streamText } = await import('ai');
    const { createAnthropic } = await import('@ai-sdk/anthropic');
    const anthropic = createAnthropic({
      baseURL: `${relay.url}/v1`,
      apiKey: 'unused',
      fetch: (url, init) => fetch(url, { ...init, body: JSON.stringify({ ...JSON.parse(init.body), mock: { text: mockText } }) }),
    });
    const result = streamText({ model: anthropic('via-openai'), prompt: 'ai sdk' });
    let text = '';
    for await (const part of result.textStream) text += part;
    assert.equal(text, mockText);
    assert.ok((await result.usage).outputTokens > 0);
  });

  test('keys: x-api-key or Bearer; a wrong key is 401 authentication_error, usage counted for the key', async () => {
    const db = path.join(tmpDir(), 'telex.db');
    const made = spawnSync(TELEX_BIN, ['keys', 'create', '--name', 'claude-user'], {
      env: { ...process.env, TELEX_DB: db, ...SANITIZER_ENV },
      encoding: 'utf8',
      timeout: SYNC_TIMEOUT_MS,
    });
    assert.equal(made.status, 0, made.stderr);
    const key = made.stdout.trim();
    const keyed = await startRelay({ env: { TELEX_DB: db }, mock: relay.mock });
    try {
      const body = { model: 'gpt-relay', max_tokens: 20, messages: [{ role: 'user', content: 'hi' }], mock: { text: 'yes' } };
      const ask = (headers) =>
        fetch(`${keyed.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
      let res = await ask({ 'x-api-key': key, 'anthropic-version': '2023-06-01' });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal((await res.json()).content[0].text, 'yes');
      res = await ask({ authorization: `Bearer ${key}` });
      assert.equal(res.status, 200);
      for (const headers of [{}, { 'x-api-key': 'tlx_wrong' }]) {
        res = await ask(headers);
        assert.equal(res.status, 401);
        const j = await res.json();
        assert.equal(j.type, 'error');
        assert.equal(j.error.type, 'authentication_error');
      }
      const client = new Anthropic({ baseURL: keyed.url, apiKey: key, maxRetries: 0 });
      const m = await client.messages.create({ model: 'gpt-relay', max_tokens: 20, messages: [{ role: 'user', content: 'sdk' }] });
      assert.equal(m.type, 'message');
      const line = await keyed.serve.waitForLog((l) => l.msg === 'request' && l.path === '/v1/messages' && l.status === 200);
      assert.equal(line.outcome, 'ok');
    } finally {
      await keyed.stop();
    }
  });
});
