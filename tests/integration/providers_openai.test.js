// tests/integration/providers_openai.test.js — OpenAI-compatible upstreams (kind openai):
// what the provider streams beyond plain content reaches the client untouched, and its
// usage details are counted.
//  - tool-call deltas, reasoning_content, refusal: the chunks through telex are the mock's
//    own, byte for byte (but for id/created, which the mock numbers per request);
//  - `reasoning` (vLLM / OpenRouter style) and other unknown delta members from a
//    hand-written upstream pass byte for byte;
//  - usage with prompt_tokens_details.cached_tokens and
//    completion_tokens_details.reasoning_tokens: relayed when asked, priced with the cached
//    price, and counted in telex_tokens_total{type="cached"|"reasoning"}.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { postChat } from './lib/sse.js';
import { SLACK, startStub } from './lib/relay.js';
import { PRICES, answerOf, chat, metric, msgs, startProviders } from './lib/providers.js';

let relay;
let stub;
let stubChunks = [];

before(async () => {
  stub = await startStub((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (const c of stubChunks) res.write(`data: ${c}\n\n`);
    res.end('data: [DONE]\n\n');
  });
  relay = await startProviders({
    extra: {
      providers: [{ name: 'stub', kind: 'openai', base_url: `${stub.url}/v1` }],
      models: [{ name: 'via-stub', providers: [{ provider: 'stub', model: 'stub-model', ...PRICES }] }],
    },
  });
});
after(async () => {
  if (relay) await relay.stop();
  if (stub) await stub.close();
});

const sameBytes = (viaTelex, direct) => {
  const norm = (e) => e.data.replace(/"id":"chatcmpl-mock-\d+"/, '"id":"X"').replace(/"created":\d+/, '"created":0');
  assert.deepEqual(viaTelex.events.map(norm), direct.events.map(norm));
};

describe('pass-through', () => {
  test('tool-call deltas, reasoning_content and refusal: the provider’s chunks, byte for byte', async () => {
    const mock = {
      text: 'Looking it up.',
      thinking: 'The user wants rivers.',
      tool_calls: [
        { id: 'call_search', name: 'search', arguments: { q: 'longest rivers', limit: 3 } },
        { id: 'call_fixed', name: 'open', arguments: '{"url":"https://example.com/ünïcode"}' },
      ],
      delay_ms: 0,
    };
    const body = { messages: msgs(), stream: true, stream_options: { include_usage: false }, mock };
    const viaTelex = await postChat(relay.url, { ...body, model: 'via-openai' });
    // telex asks the provider for usage, then drops the "usage":null members and the usage
    // chunk the client did not ask for: it gets what the provider sends without include_usage
    const direct = await postChat(relay.mock.url, { ...body, model: 'upstream-model' });
    assert.equal(viaTelex.status, 200);
    sameBytes(viaTelex, direct);
    const a = answerOf(viaTelex.events);
    assert.equal(a.reasoning, 'The user wants rivers.');
    assert.equal(a.toolCalls.length, 2);
    assert.equal(a.toolCalls[1].id, 'call_fixed');
    assert.deepEqual(JSON.parse(a.toolCalls[0].arguments), { q: 'longest rivers', limit: 3 });
    assert.equal(JSON.parse(a.toolCalls[1].arguments).url, 'https://example.com/ünïcode');
    assert.equal(a.finish, 'tool_calls');

    const refusal = { messages: msgs(), stream: true, mock: { refusal: 'I will not do that.', delay_ms: 0 } };
    const rt = await postChat(relay.url, { ...refusal, model: 'via-openai' });
    const rd = await postChat(relay.mock.url, { ...refusal, model: 'upstream-model' });
    sameBytes(rt, rd);
    assert.equal(answerOf(rt.events).refusal, 'I will not do that.');
  });

  test('`reasoning` deltas and members telex does not know pass untouched', async () => {
    const base = '"object":"chat.completion.chunk","created":1,"model":"stub-model"';
    stubChunks = [
      `{"id":"s1",${base},"choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning":""},"finish_reason":null}]}`,
      `{"id":"s1",${base},"choices":[{"index":0,"delta":{"reasoning":"Weighing options…","reasoning_details":[{"type":"reasoning.text","text":"Weighing options…"}]},"finish_reason":null}]}`,
      `{"id":"s1",${base},"choices":[{"index":0,"delta":{"content":"Nile."},"finish_reason":null,"native_finish_reason":null}],"provider":"x"}`,
      `{"id":"s1",${base},"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"f","arguments":"{\\"a\\""}}]},"finish_reason":null}]}`,
      `{"id":"s1",${base},"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"tool_calls"}]}`,
    ];
    const r = await postChat(relay.url, { model: 'via-stub', messages: msgs(), stream: true });
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.events.map((e) => e.data),
      [...stubChunks, '[DONE]'],
    );
    const a = answerOf(r.events);
    assert.equal(a.reasoning, 'Weighing options…');
    assert.equal(a.toolCalls[0].arguments, '{"a":1}');
  });
});

describe('usage details', () => {
  test('cached and reasoning tokens: relayed when asked, priced, counted in the metrics', async () => {
    const labels = (type) => ({ model: 'via-openai', provider: 'openai', type });
    const before = {};
    for (const t of ['prompt', 'completion', 'cached', 'reasoning']) before[t] = (await metric(relay.url, 'telex_tokens_total', labels(t))) ?? 0;
    const r = await chat(relay.url, 'via-openai', {
      stream_options: { include_usage: true },
      mock: { seed: 2, tokens: 5, delay_ms: 0, cached_tokens: 4, thinking: 'one two three' },
    });
    const { cost_usd: cost, ...usage } = r.answer.usage;
    assert.deepEqual(usage, {
      prompt_tokens: 7,
      completion_tokens: 8,
      total_tokens: 15,
      prompt_tokens_details: { cached_tokens: 4 },
      completion_tokens_details: { reasoning_tokens: 3 },
    });
    const want = (3 * PRICES.input_price_per_mtok + 4 * PRICES.cached_input_price_per_mtok + 8 * PRICES.output_price_per_mtok) / 1e6;
    assert.ok(Math.abs(cost - want) < 1e-12, `cost ${cost} vs ${want}`);
    await relay.serve.waitForLog((l) => l.msg === 'request' && l.model === 'via-openai' && l.usage?.completion_tokens_details?.reasoning_tokens === 3, { timeoutMs: 10000 * SLACK });
    const delta = {};
    for (const t of ['prompt', 'completion', 'cached', 'reasoning']) delta[t] = (await metric(relay.url, 'telex_tokens_total', labels(t))) - before[t];
    assert.deepEqual(delta, { prompt: 7, completion: 8, cached: 4, reasoning: 3 });
  });
});
