// tests/integration/relay_sdk.test.js — the official `openai` npm SDK against telex: it
// streams through the gateway and gets the same text as from the mock directly, usage
// when asked, plain answers, the model list, and typed errors (before the first chunk:
// HTTP status → the SDK's error classes; after it: the error event makes the stream throw).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { msgs, startRelay } from './lib/relay.js';

let relay;
let viaTelex;
let direct;
before(async () => {
  relay = await startRelay();
  viaTelex = new OpenAI({ baseURL: `${relay.url}/v1`, apiKey: 'client-key-not-checked', maxRetries: 0, timeout: 20000 });
  direct = new OpenAI({ baseURL: `${relay.mock.url}/v1`, apiKey: 'direct-key', maxRetries: 0, timeout: 20000 });
});
after(async () => {
  if (relay) await relay.stop();
});

async function streamText(client, params) {
  const stream = await client.chat.completions.create({ ...params, stream: true });
  let text = '';
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  return { text, chunks };
}

describe('openai SDK through telex', () => {
  test('streams the same text as from the mock directly', async () => {
    const params = { messages: msgs('Tell me a story'), mock: { tokens: 25, delay_ms: 5 } };
    const a = await streamText(viaTelex, { ...params, model: 'gpt-relay' });
    const b = await streamText(direct, { ...params, model: 'upstream-relay' });
    assert.ok(a.text.length > 50);
    assert.equal(a.text, b.text);
    assert.equal(a.chunks.length, b.chunks.length);
    assert.equal(a.chunks.at(-1).choices[0].finish_reason, 'stop');
    assert.equal(a.chunks[0].model, 'upstream-relay', 'the provider model name, as the provider sent it');
  });

  test('with stream_options.include_usage: the usage chunk, as from the mock', async () => {
    const params = { messages: msgs('count my tokens please'), stream_options: { include_usage: true }, mock: { tokens: 7 } };
    const a = await streamText(viaTelex, { ...params, model: 'gpt-relay' });
    const b = await streamText(direct, { ...params, model: 'upstream-relay' });
    // telex adds cost_usd (USD, from the route's prices) to the provider's usage
    const { cost_usd: cost, ...usage } = a.chunks.at(-1).usage;
    assert.equal(typeof cost, 'number');
    assert.deepEqual(usage, { prompt_tokens: 4, completion_tokens: 7, total_tokens: 11 });
    assert.deepEqual(usage, b.chunks.at(-1).usage);
    assert.deepEqual(a.chunks.at(-1).choices, []);
    assert.equal(a.text, b.text);
    // and without it, none
    const c = await streamText(viaTelex, { ...params, stream_options: undefined, model: 'gpt-relay' });
    assert.ok(c.chunks.every((x) => !x.usage));
  });

  test('the stream() helper assembles the final message', async () => {
    const runner = viaTelex.chat.completions.stream({ model: 'gpt-relay', messages: msgs('helper'), mock: { tokens: 6 } });
    const deltas = [];
    runner.on('content', (delta) => deltas.push(delta));
    const final = await runner.finalChatCompletion();
    assert.equal(final.choices[0].message.content, deltas.join(''));
    assert.equal(final.choices[0].message.content.split(' ').length, 6);
  });

  test('stream false: a chat.completion with the same text', async () => {
    const params = { messages: msgs('plain answer'), mock: { tokens: 9 } };
    const a = await viaTelex.chat.completions.create({ ...params, model: 'gpt-relay' });
    const b = await direct.chat.completions.create({ ...params, model: 'upstream-relay' });
    assert.equal(a.object, 'chat.completion');
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
    const { cost_usd: cost, ...usage } = a.usage;
    assert.equal(typeof cost, 'number');
    assert.deepEqual(usage, b.usage);
  });

  test('models.list()', async () => {
    const ids = [];
    for await (const m of viaTelex.models.list()) ids.push(m.id);
    assert.deepEqual(ids, ['gpt-relay', 'gpt-fallback', 'gpt-twice']);
  });

  test('errors before the first chunk are typed SDK errors', async () => {
    await assert.rejects(
      viaTelex.chat.completions.create({ model: 'gpt-nope', messages: msgs(), stream: true }),
      (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found',
    );
    await assert.rejects(
      viaTelex.chat.completions.create({ model: 'gpt-relay', messages: [], stream: true }),
      (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages',
    );
    await assert.rejects(
      viaTelex.chat.completions.create({ model: 'gpt-relay', messages: msgs(), stream: true, mock: { status: 429, retry_after: 2 } }),
      (e) => e instanceof OpenAI.RateLimitError && e.headers.get('retry-after') === '2',
    );
    await assert.rejects(
      viaTelex.chat.completions.create({ model: 'gpt-relay', messages: msgs(), stream: true, mock: { status: 503 } }),
      (e) => e instanceof OpenAI.APIError && e.status === 502,
    );
  });

  test('an error after the first chunk makes the SDK stream throw (no silent truncation)', async () => {
    let text = '';
    await assert.rejects(
      (async () => {
        const stream = await viaTelex.chat.completions.create({
          model: 'gpt-relay',
          messages: msgs(),
          stream: true,
          mock: { tokens: 6, cut_after: 3 },
        });
        for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
      })(),
      (e) => e instanceof OpenAI.APIError && /broke off|ended|cut/i.test(e.message),
    );
    assert.equal(text.split(' ').length, 3, 'the chunks before the failure were delivered');
  });
});
