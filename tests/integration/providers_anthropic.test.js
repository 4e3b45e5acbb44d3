// tests/integration/providers_anthropic.test.js — provider kind `anthropic` end to end:
// a real `telex mock` speaking the Anthropic Messages API behind a real `telex serve`.
//  - the same answer through kinds anthropic and openai: identical text, equivalent usage
//    (cached tokens, cost), the same chunk shapes; thinking → reasoning_content;
//  - a tool-call round trip through each kind (tools → streamed tool-call deltas →
//    the same assembled arguments; the next turn's tool_calls/tool messages as tool_use /
//    tool_result blocks), also assembled by the official openai SDK;
//  - the request as Anthropic receives it (headers, system, max_tokens default, stop,
//    images, tool_choice, what is dropped) and the 400 for what cannot be expressed (also
//    when it quotes a client's text cut inside a UTF-8 character);
//  - every Anthropic event type, every stop_reason, the error event, malformed events,
//    cuts, a missing message_stop, HTTP errors in Anthropic's shape (OpenAI-shaped for the
//    client), plain answers, a provider's model cut inside a UTF-8 character;
//  - fallback between an anthropic and an openai provider before the first event, both
//    ways, and none after it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { collectSSE, postChat } from './lib/sse.js';
import { startMock } from './lib/proc.js';
import { SANITIZER_ENV, SLACK, lastSeq, requestLogs, startStub, stopChecked } from './lib/relay.js';
import {
  ANT_KEY,
  AZ_KEY,
  API_KEY,
  PRICES,
  answerOf,
  chat,
  entriesOf,
  metric,
  msgs,
  plain,
  startProviders,
} from './lib/providers.js';

let relay;
let stub;
let stubBehaviour = (req, res) => res.end();

before(async () => {
  stub = await startStub((req, res, body) => stubBehaviour(req, res, body));
  relay = await startProviders({
    extra: {
      providers: [{ name: 'claude-stub', kind: 'anthropic', base_url: stub.url, api_key: ANT_KEY, timeout_seconds: 2 }],
      models: [
        {
          name: 'stub-then-openai',
          providers: [
            { provider: 'claude-stub', model: 'claude-busy' },
            { provider: 'openai', model: 'upstream-model' },
          ],
        },
        { name: 'via-stub', providers: [{ provider: 'claude-stub', model: 'claude-stub-model' }] },
      ],
    },
  });
});
after(async () => {
  try {
    if (relay) await relay.stop();
  } finally {
    if (stub) await stub.close();
    // read once it has exited: every line it logged is on stderr by then
    const stderr = relay?.serve.stderr() ?? '';
    for (const key of [ANT_KEY, AZ_KEY, API_KEY]) assert.ok(!stderr.includes(key), 'a provider key reached the log');
  }
});

const usageOf = (a) => {
  const { cost_usd: cost, ...usage } = a.usage;
  return { usage, cost };
};
const lastEntry = async (since) => (await entriesOf(relay.mock, since)).at(-1);

describe('the same answer through kinds anthropic and openai', () => {
  test('identical text, equivalent usage and cost, the same chunk shapes', async () => {
    const body = {
      stream_options: { include_usage: true },
      mock: { seed: 42, tokens: 12, delay_ms: 2, cached_tokens: 3 },
    };
    const o = await chat(relay.url, 'via-openai', body);
    const c = await chat(relay.url, 'via-claude', body);
    for (const [r, kind] of [
      [o, 'openai'],
      [c, 'anthropic'],
    ]) {
      assert.equal(r.status, 200, kind);
      assert.match(r.headers.get('content-type'), /^text\/event-stream/);
      assert.ok(r.answer.done, `${kind}: ends with [DONE]`);
      assert.equal(r.answer.role, 'assistant');
      assert.equal(r.answer.finish, 'stop');
      const first = r.answer.chunks[0];
      assert.equal(first.object, 'chat.completion.chunk');
      assert.deepEqual(first.choices[0].delta, kind === 'openai' ? { role: 'assistant', content: '', refusal: null } : { role: 'assistant', content: '' });
      assert.equal(first.model, 'upstream-model');
      for (const ch of r.answer.chunks) {
        assert.equal(ch.object, 'chat.completion.chunk');
        assert.equal(typeof ch.id, 'string');
        assert.equal(typeof ch.created, 'number');
      }
      assert.deepEqual(r.answer.chunks.at(-1).choices, [], `${kind}: the usage chunk has no choices`);
    }
    assert.ok(o.answer.content.split(' ').length === 12);
    assert.equal(c.answer.content, o.answer.content);
    // the content chunks: one per token, in both
    const contentChunks = (a) => a.chunks.filter((x) => x.choices[0]?.delta?.content).length;
    assert.equal(contentChunks(c.answer), 12);
    assert.equal(contentChunks(o.answer), 12);
    const uo = usageOf(o.answer);
    const uc = usageOf(c.answer);
    // 7 prompt words (system + user), 3 of them "cached"
    assert.deepEqual(uo.usage, { prompt_tokens: 7, completion_tokens: 12, total_tokens: 19, prompt_tokens_details: { cached_tokens: 3 } });
    assert.deepEqual(uc.usage, uo.usage);
    const cost = (4 * PRICES.input_price_per_mtok + 3 * PRICES.cached_input_price_per_mtok + 12 * PRICES.output_price_per_mtok) / 1e6;
    assert.ok(Math.abs(uo.cost - cost) < 1e-12, `openai cost ${uo.cost} vs ${cost}`);
    assert.ok(Math.abs(uc.cost - cost) < 1e-12, `anthropic cost ${uc.cost} vs ${cost}`);
  });

  test('without include_usage neither kind sends the usage chunk', async () => {
    for (const model of ['via-openai', 'via-claude']) {
      const r = await chat(relay.url, model, { mock: { seed: 1, tokens: 3, delay_ms: 0 } });
      assert.equal(r.status, 200);
      assert.ok(r.answer.done);
      assert.ok(r.answer.chunks.every((ch) => !ch.usage), model);
      assert.ok(r.answer.chunks.every((ch) => ch.choices.length === 1), model);
    }
  });

  test('thinking becomes reasoning_content deltas; through openai reasoning_content passes untouched', async () => {
    const body = {
      stream_options: { include_usage: true },
      mock: { seed: 7, tokens: 4, delay_ms: 0, thinking: 'First I weigh the question, then I answer.' },
    };
    const o = await chat(relay.url, 'via-openai', body);
    const c = await chat(relay.url, 'via-claude', body);
    assert.equal(o.answer.reasoning, 'First I weigh the question, then I answer.');
    assert.equal(c.answer.reasoning, o.answer.reasoning);
    assert.equal(c.answer.content, o.answer.content);
    // reasoning first, then content, in both
    for (const a of [o.answer, c.answer]) {
      const kinds = a.chunks.map((x) => (x.choices[0]?.delta?.reasoning_content ? 'r' : x.choices[0]?.delta?.content ? 'c' : '-'));
      assert.match(kinds.join(''), /^-r{8}c{4}--$/);
    }
    // usage: thinking tokens are output tokens in both; only OpenAI reports them apart
    assert.equal(usageOf(o.answer).usage.completion_tokens, 12);
    assert.equal(usageOf(c.answer).usage.completion_tokens, 12);
    assert.deepEqual(usageOf(o.answer).usage.completion_tokens_details, { reasoning_tokens: 8 });
  });

  test('plain answers: chat.completion objects with the same content, reasoning and usage', async () => {
    const body = { mock: { seed: 9, tokens: 5, thinking: 'Quick thought.', cached_tokens: 1 } };
    const o = await plain(relay.url, 'via-openai', body);
    const c = await plain(relay.url, 'via-claude', body);
    assert.equal(o.status, 200);
    assert.equal(c.status, 200);
    assert.equal(c.body.object, 'chat.completion');
    assert.equal(c.body.model, 'upstream-model');
    const mo = o.body.choices[0].message;
    const mc = c.body.choices[0].message;
    assert.equal(mc.role, 'assistant');
    assert.equal(mc.content, mo.content);
    assert.equal(mc.reasoning_content, 'Quick thought.');
    assert.equal(mc.reasoning_content, mo.reasoning_content);
    assert.equal(c.body.choices[0].finish_reason, 'stop');
    const { cost_usd: cc, ...uc } = c.body.usage;
    const { cost_usd: co, ...uo } = o.body.usage;
    assert.deepEqual(
      { ...uc, prompt_tokens_details: uc.prompt_tokens_details },
      { prompt_tokens: uo.prompt_tokens, completion_tokens: uo.completion_tokens, total_tokens: uo.total_tokens, prompt_tokens_details: { cached_tokens: 1 } },
    );
    assert.equal(cc, co);
  });
});

const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city now',
      parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city'] },
    },
  },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } } },
];
const CALLS = [
  { name: 'get_weather', arguments: { city: 'Paris', unit: 'celsius' } },
  { name: 'get_time', arguments: '{"tz": "Europe/Paris — été"}' },
];

describe('tool calls', () => {
  test('tools → streamed tool-call deltas → the same assembled calls through each kind', async () => {
    const since = await lastSeq(relay.mock);
    const body = {
      messages: msgs('weather and time in Paris?'),
      tools: TOOLS,
      tool_choice: 'auto',
      mock: { text: 'Let me check.', tool_calls: CALLS, delay_ms: 1 },
    };
    const o = await chat(relay.url, 'via-openai', body);
    const c = await chat(relay.url, 'via-claude', body);
    for (const [r, prefix] of [
      [o, 'call_'],
      [c, 'toolu_'],
    ]) {
      assert.equal(r.status, 200);
      assert.ok(r.answer.done);
      assert.equal(r.answer.content, 'Let me check.');
      assert.equal(r.answer.finish, 'tool_calls');
      assert.equal(r.answer.toolCalls.length, 2);
      r.answer.toolCalls.forEach((t, i) => {
        assert.equal(t.index, i);
        assert.ok(t.id.startsWith(prefix), t.id);
        assert.equal(t.type, 'function');
        assert.equal(t.name, CALLS[i].name);
        // the first delta of a call carries id, type and name; the others only arguments
        assert.deepEqual(Object.keys(t.deltas[0]).sort(), ['function', 'id', 'index', 'type']);
        assert.equal(t.deltas[0].function.arguments, '');
        for (const d of t.deltas.slice(1)) assert.deepEqual(Object.keys(d).sort(), ['function', 'index']);
        assert.ok(t.deltas.length > 2, 'arguments arrive in fragments');
      });
    }
    const args = (a) => a.toolCalls.map((t) => t.arguments);
    assert.deepEqual(args(c.answer), args(o.answer));
    assert.deepEqual(JSON.parse(c.answer.toolCalls[0].arguments), CALLS[0].arguments);
    assert.deepEqual(JSON.parse(c.answer.toolCalls[1].arguments), { tz: 'Europe/Paris — été' });

    // what each provider was sent
    const [eo, ec] = await entriesOf(relay.mock, since);
    assert.deepEqual(eo.body.tools, TOOLS, 'openai: tools as the client sent them');
    assert.equal(eo.body.tool_choice, 'auto');
    assert.deepEqual(ec.body.tools, [
      { name: 'get_weather', description: 'The weather in a city now', input_schema: TOOLS[0].function.parameters },
      { name: 'get_time', input_schema: TOOLS[1].function.parameters },
    ]);
    assert.deepEqual(ec.body.tool_choice, { type: 'auto' });
  });

  test('the next turn: assistant tool_calls and tool results become tool_use and tool_result blocks', async () => {
    const since = await lastSeq(relay.mock);
    const messages = [
      ...msgs('weather and time in Paris?'),
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
          { id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '{}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_1', content: '21C and sunny' },
      { role: 'tool', tool_call_id: 'call_2', content: [{ type: 'text', text: '14:05' }] },
    ];
    const body = { messages, tools: TOOLS, mock: { text: 'It is 21C and 14:05.' } };
    const o = await chat(relay.url, 'via-openai', body);
    const c = await chat(relay.url, 'via-claude', body);
    assert.equal(o.answer.content, 'It is 21C and 14:05.');
    assert.equal(c.answer.content, o.answer.content);
    assert.equal(c.answer.finish, 'stop');
    const [eo, ec] = await entriesOf(relay.mock, since);
    assert.deepEqual(eo.body.messages, messages, 'openai: the conversation untouched');
    assert.deepEqual(ec.body.system, [{ type: 'text', text: 'You are terse.' }]);
    assert.deepEqual(ec.body.messages, [
      { role: 'user', content: [{ type: 'text', text: 'weather and time in Paris?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'call_2', name: 'get_time', input: {} },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_1', content: '21C and sunny' },
          { type: 'tool_result', tool_use_id: 'call_2', content: [{ type: 'text', text: '14:05' }] },
        ],
      },
    ]);
  });

  test('tool_choice required / a named function / parallel_tool_calls:false map to Anthropic', async () => {
    const cases = [
      [{ tool_choice: 'required' }, { type: 'any' }],
      [{ tool_choice: 'none' }, { type: 'none' }],
      [{ tool_choice: { type: 'function', function: { name: 'get_time' } } }, { type: 'tool', name: 'get_time' }],
      [{ parallel_tool_calls: false }, { type: 'auto', disable_parallel_tool_use: true }],
      [{ tool_choice: 'required', parallel_tool_calls: false }, { type: 'any', disable_parallel_tool_use: true }],
    ];
    for (const [params, want] of cases) {
      const since = await lastSeq(relay.mock);
      const r = await chat(relay.url, 'via-claude', { tools: TOOLS, ...params, mock: { tokens: 1 } });
      assert.equal(r.status, 200, JSON.stringify(params));
      const e = await lastEntry(since);
      assert.deepEqual(e.body.tool_choice, want, JSON.stringify(params));
      assert.equal(e.body.parallel_tool_calls, undefined);
    }
  });

  test('the official openai SDK assembles the same tool calls from both kinds', async () => {
    const client = new OpenAI({ baseURL: `${relay.url}/v1`, apiKey: 'client-key', maxRetries: 0, timeout: 20000 });
    const run = async (model) => {
      const stream = client.chat.completions.stream({
        model,
        messages: msgs('weather?'),
        tools: TOOLS,
        mock: { text: 'Checking.', tool_calls: CALLS, delay_ms: 0 },
      });
      return stream.finalChatCompletion();
    };
    const o = await run('via-openai');
    const c = await run('via-claude');
    const calls = (x) => x.choices[0].message.tool_calls.map((t) => ({ type: t.type, name: t.function.name, arguments: t.function.arguments }));
    assert.equal(c.choices[0].finish_reason, 'tool_calls');
    assert.equal(c.choices[0].message.content, 'Checking.');
    assert.deepEqual(calls(c), calls(o));
    assert.equal(calls(c).length, 2);
  });
});

describe('the request as Anthropic receives it', () => {
  test('POST /v1/messages with x-api-key and anthropic-version; system hoisted; defaults and mapped parameters', async () => {
    const since = await lastSeq(relay.mock);
    const r = await chat(relay.url, 'via-claude', {
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'developer', content: 'Answer in English.' },
        { role: 'user', content: 'hi' },
      ],
      temperature: 0.4,
      top_p: 0.9,
      stop: 'END',
      user: 'user-7',
      seed: 5,
      frequency_penalty: 0.5,
      presence_penalty: 0.1,
      stream_options: { include_usage: true },
      mock: { tokens: 2 },
    });
    assert.equal(r.status, 200);
    const e = await lastEntry(since);
    assert.equal(e.method, 'POST');
    assert.equal(e.path, '/v1/messages');
    assert.equal(e.headers['x-api-key'], '[redacted]', 'the key is sent (the journal never stores it)');
    assert.equal(e.headers['anthropic-version'], '2023-06-01');
    assert.equal(e.headers.authorization, undefined);
    assert.equal(e.headers.accept, 'text/event-stream');
    assert.equal(e.status, 200, 'the mock, as strict as Anthropic, accepted it');
    assert.deepEqual(e.body, {
      model: 'upstream-model',
      system: [
        { type: 'text', text: 'You are terse.' },
        { type: 'text', text: 'Answer in English.' },
      ],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }],
      temperature: 0.4,
      top_p: 0.9,
      stop_sequences: ['END'],
      metadata: { user_id: 'user-7' },
      mock: { tokens: 2 },
      max_tokens: 333,
      stream: true,
    });
  });

  test('max_tokens, then max_completion_tokens, from the request win over the configured default', async () => {
    for (const [params, want] of [
      [{ max_tokens: 50 }, 50],
      [{ max_tokens: 50, max_completion_tokens: 70 }, 70],
      [{}, 333],
    ]) {
      const since = await lastSeq(relay.mock);
      const r = await chat(relay.url, 'via-claude', { ...params, mock: { tokens: 1 } });
      assert.equal(r.status, 200);
      assert.equal((await lastEntry(since)).body.max_tokens, want);
    }
  });

  test('images given as image_url parts become image blocks', async () => {
    const since = await lastSeq(relay.mock);
    const r = await chat(relay.url, 'via-claude', {
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is in these?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
            { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg', detail: 'high' } },
          ],
        },
      ],
      mock: { tokens: 2 },
    });
    assert.equal(r.status, 200);
    assert.deepEqual((await lastEntry(since)).body.messages[0].content, [
      { type: 'text', text: 'What is in these?' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
      { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
    ]);
  });

  test('what Anthropic cannot express is a 400 naming the parameter, and nothing is sent', async () => {
    const cases = [
      [{ n: 2 }, 'n'],
      [{ logprobs: true }, 'logprobs'],
      [{ response_format: { type: 'json_object' } }, 'response_format'],
      [{ messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'x', format: 'wav' } }] }] }, 'messages[0].content[0]'],
      [{ tools: [{ type: 'custom', custom: { name: 'x' } }] }, 'tools[0]'],
    ];
    for (const [params, param] of cases) {
      const since = await lastSeq(relay.mock);
      for (const stream of [true, false]) {
        const res = await fetch(`${relay.url}/v1/chat/completions`, {
          method: 'POST',
          body: JSON.stringify({ model: 'via-claude', messages: msgs(), stream, ...params }),
        });
        assert.equal(res.status, 400, JSON.stringify(params));
        const body = await res.json();
        assert.equal(body.error.type, 'invalid_request_error');
        assert.equal(body.error.param, param);
        assert.equal(body.error.code, 'unsupported_by_provider');
        assert.match(body.error.message, /Anthropic/);
      }
      assert.equal(await lastSeq(relay.mock), since, 'nothing reached the provider');
    }
  });

  test('a part type the 400 cuts inside a UTF-8 character is still that 400 (not a call that cannot start)', async () => {
    // the message quotes at most 40 bytes of the type: here they end in the first byte of 'é'
    const type = `${'x'.repeat(39)}é-part`;
    const since = await lastSeq(relay.mock);
    for (const stream of [true, false]) {
      const res = await fetch(`${relay.url}/v1/chat/completions`, {
        method: 'POST',
        body: JSON.stringify({ model: 'via-claude', messages: [{ role: 'user', content: [{ type, text: 'hi' }] }], stream }),
      });
      const body = await res.json();
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(body.error.param, 'messages[0].content[0]');
      assert.equal(body.error.code, 'unsupported_by_provider');
      assert.ok(body.error.message.includes(`type '${'x'.repeat(39)}?' are not supported`), body.error.message);
    }
    assert.equal(await lastSeq(relay.mock), since, 'nothing reached the provider');
  });
});

describe('every Anthropic event, end to end', () => {
  test('message_start, ping, thinking/text/tool_use blocks and their deltas, signature, message_delta, message_stop', async () => {
    const mock = { text: 'Two words.', thinking: 'Hmm, okay.', tool_calls: [{ name: 'get_time', arguments: '{"tz":"UTC"}' }], cached_tokens: 2, delay_ms: 0 };
    // what the mock sends: every event type
    const direct = await collectSSE(`${relay.mock.url}/v1/messages`, {
      body: { model: 'claude-x', max_tokens: 100, messages: [{ role: 'user', content: 'tell me about rivers' }], stream: true, mock },
    });
    const types = direct.events.map((e) => `${e.type}${e.type === 'content_block_delta' ? ':' + JSON.parse(e.data).delta.type : ''}`);
    assert.deepEqual(types, [
      'message_start',
      'ping',
      'content_block_start',
      'content_block_delta:thinking_delta',
      'content_block_delta:thinking_delta',
      'content_block_delta:signature_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta:text_delta',
      'content_block_delta:text_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta:input_json_delta',
      'content_block_delta:input_json_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    // what the client gets: role, 2 reasoning, 2 content, tool header, 2 argument fragments, finish, usage
    const r = await chat(relay.url, 'via-claude', { stream_options: { include_usage: true }, mock });
    assert.equal(r.status, 200);
    const shape = r.answer.chunks.map((ch) => {
      const c = ch.choices[0];
      if (!c) return 'usage';
      const d = c.delta;
      if (c.finish_reason) return `finish:${c.finish_reason}`;
      if (d.role) return 'role';
      if (d.reasoning_content) return 'reasoning';
      if (d.content) return 'content';
      if (d.tool_calls?.[0].id) return 'tool';
      if (d.tool_calls) return 'arguments';
      return JSON.stringify(d);
    });
    assert.deepEqual(shape, ['role', 'reasoning', 'reasoning', 'content', 'content', 'tool', 'arguments', 'arguments', 'finish:tool_calls', 'usage']);
    assert.equal(r.answer.reasoning, 'Hmm, okay.');
    assert.equal(r.answer.content, 'Two words.');
    assert.equal(r.answer.toolCalls[0].arguments, '{"tz":"UTC"}');
    assert.match(r.answer.chunks[0].id, /^msg_mock_\d+$/, "the message's id");
    assert.ok(r.answer.chunks.every((ch) => ch.id === r.answer.chunks[0].id && ch.model === 'upstream-model'));
    const { cost_usd: _cost, ...usage } = r.answer.usage;
    assert.deepEqual(usage, { prompt_tokens: 7, completion_tokens: 6, total_tokens: 13, prompt_tokens_details: { cached_tokens: 2 } });
    assert.ok(r.answer.done);
  });

  test('stop_reason → finish_reason: end_turn, stop_sequence → stop; max_tokens → length; tool_use → tool_calls; refusal → content_filter', async () => {
    for (const [stop, finish] of [
      ['end_turn', 'stop'],
      ['stop_sequence', 'stop'],
      ['max_tokens', 'length'],
      ['tool_use', 'tool_calls'],
      ['refusal', 'content_filter'],
      ['pause_turn', 'stop'],
    ]) {
      const r = await chat(relay.url, 'via-claude', { mock: { tokens: 2, delay_ms: 0, finish_reason: stop } });
      assert.equal(r.status, 200);
      assert.equal(r.answer.finish, finish, stop);
      assert.ok(r.answer.done);
      const p = await plain(relay.url, 'via-claude', { mock: { tokens: 2, finish_reason: stop } });
      assert.equal(p.body.choices[0].finish_reason, finish, `plain ${stop}`);
    }
  });

  test('an error event ends the stream with an error event (error_event), never [DONE]', async () => {
    const r = await chat(relay.url, 'via-claude', { mock: { tokens: 5, delay_ms: 0, error_after: 2 } });
    assert.equal(r.status, 200);
    assert.equal(r.answer.content.split(' ').length, 2);
    assert.ok(!r.answer.done);
    assert.equal(r.answer.error.type, 'upstream_error');
    assert.equal(r.answer.error.code, 'error_event');
    assert.match(r.answer.error.message, /mock: injected error event \(overloaded_error\)/);
  });

  test('a malformed Anthropic event ends the stream with an error event', async () => {
    for (const [knob, code] of [
      ['invalid_json_after', 'bad_json'],
      ['malformed_after', 'protocol'],
      ['oversize_after', 'protocol'],
      ['cut_after', 'cut'],
    ]) {
      const r = await chat(relay.url, 'via-claude', { mock: { tokens: 4, delay_ms: 0, [knob]: 2, oversize_bytes: 2 * 1024 * 1024 } });
      assert.equal(r.status, 200, knob);
      assert.ok(!r.answer.done, knob);
      assert.equal(r.answer.error?.code, code, knob);
      assert.equal(r.answer.content.split(' ').length, 2, knob);
    }
  });

  test('a malformed event before the first one: an HTTP error, not a stream', async () => {
    const res = await fetch(`${relay.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'via-claude', messages: msgs(), stream: true, mock: { invalid_json_after: 0 } }),
    });
    assert.equal(res.status, 502);
    assert.equal((await res.json()).error.code, 'bad_json');
  });

  test('a stream that stops after its stop_reason without message_stop is complete; one cut before it is not', async () => {
    const complete = await chat(relay.url, 'via-claude', { stream_options: { include_usage: true }, mock: { tokens: 3, delay_ms: 0, no_done: true } });
    assert.ok(complete.answer.done);
    assert.equal(complete.answer.finish, 'stop');
    assert.equal(complete.answer.usage.completion_tokens, 3);
    const cut = await chat(relay.url, 'via-claude', { mock: { tokens: 3, delay_ms: 0, cut_after: 3 } });
    assert.ok(!cut.answer.done);
    assert.equal(cut.answer.error.code, 'cut');
  });

  test('HTTP errors in Anthropic’s shape reach the client OpenAI-shaped: 4xx relayed, 429 with Retry-After, 5xx/529 → 502', async () => {
    for (const [status, want, type] of [
      [400, 400, 'invalid_request_error'],
      [401, 502, 'upstream_error'], // the provider refused the gateway's key: the operator's problem
      [404, 404, 'not_found_error'],
      [429, 429, 'rate_limit_error'],
      [500, 502, 'upstream_error'],
      [529, 502, 'upstream_error'],
    ]) {
      for (const stream of [true, false]) {
        const res = await fetch(`${relay.url}/v1/chat/completions`, {
          method: 'POST',
          body: JSON.stringify({ model: 'via-claude', messages: msgs(), stream, mock: { status, ...(status === 429 ? { retry_after: 7 } : {}) } }),
        });
        assert.equal(res.status, want, `${status} stream:${stream}`);
        const body = await res.json();
        assert.deepEqual(Object.keys(body), ['error']);
        assert.equal(body.error.type, type, `${status}`);
        assert.match(body.error.message, new RegExp(`${status}`));
        if (status === 429) assert.equal(res.headers.get('retry-after'), '7');
      }
    }
  });

  test('a model name the translation cuts inside a UTF-8 character: the failure says so (stream and plain)', async () => {
    // telex keeps 255 bytes of the provider's model: here they end in the first byte of 'é'
    const model = `${'m'.repeat(254)}é`;
    stubBehaviour = (req, res, body) => {
      if (JSON.parse(body).stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const message = { id: 'msg_1', type: 'message', role: 'assistant', model, content: [], usage: { input_tokens: 1, output_tokens: 0 } };
        res.write(`event: message_start\ndata: ${JSON.stringify({ type: 'message_start', message })}\n\n`);
        res.write(`event: content_block_start\ndata: ${JSON.stringify({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } })}\n\n`);
        res.end(`event: content_block_delta\ndata: ${JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'hi' } })}\n\n`);
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'msg_1', type: 'message', role: 'assistant', model, content: [{ type: 'text', text: 'hi' }], stop_reason: 'end_turn', usage: { input_tokens: 1, output_tokens: 1 } }));
      }
    };
    for (const stream of [true, false]) {
      const res = await fetch(`${relay.url}/v1/chat/completions`, {
        method: 'POST',
        body: JSON.stringify({ model: 'via-stub', messages: msgs(), stream }),
      });
      const body = await res.json();
      assert.equal(res.status, 502, JSON.stringify(body));
      assert.match(body.error.message, /model \(over 255 bytes\) was cut inside a UTF-8 character/, `stream:${stream}`);
      assert.doesNotMatch(body.error.message, /memory/);
    }
  });

  test('a body that is not an Anthropic error still becomes an OpenAI error', async () => {
    stubBehaviour = (req, res) => {
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end('<html>not here</html>');
    };
    const p = await plain(relay.url, 'via-stub');
    assert.equal(p.status, 404);
    assert.deepEqual(p.body, { error: { message: 'the provider answered HTTP 404', type: 'invalid_request_error', param: null, code: null } });
    // a 403 (whatever its body) is the provider refusing the gateway's credentials: 502
    stubBehaviour = (req, res) => {
      res.writeHead(403, { 'content-type': 'text/html' });
      res.end('<html>forbidden</html>');
    };
    const f = await plain(relay.url, 'via-stub');
    assert.equal(f.status, 502);
    assert.equal(f.body.error.code, 'provider_auth_failed');
  });
});

describe('fallback between kinds', () => {
  test('anthropic provider down before the first event → the openai provider answers, same format', async () => {
    const since = await lastSeq(relay.mock);
    const r = await chat(relay.url, 'claude-then-openai', { mock: { seed: 3, tokens: 4, delay_ms: 0 } });
    const ref = await chat(relay.url, 'via-claude', { mock: { seed: 3, tokens: 4, delay_ms: 0 } });
    assert.equal(r.status, 200);
    assert.ok(r.answer.done);
    assert.equal(r.answer.content, ref.answer.content);
    const seen = await entriesOf(relay.mock, since);
    assert.equal(seen[0].path, '/v1/chat/completions');
    const line = await relay.serve.waitForLog((l) => l.msg === 'request' && l.model === 'claude-then-openai');
    assert.equal(line.provider, 'openai');
    assert.equal(line.fallbacks, 1);
    assert.ok(relay.serve.logs.some((l) => l.msg === 'falling back' && l.from === 'claude-dead' && l.error === 'connect'));
  });

  test('an overloaded Anthropic (529) → the openai provider answers', async () => {
    stubBehaviour = (req, res) => {
      res.writeHead(529, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }));
    };
    const n = stub.requests.length;
    const r = await chat(relay.url, 'stub-then-openai', { mock: { seed: 3, tokens: 4, delay_ms: 0 } });
    assert.equal(r.status, 200);
    assert.ok(r.answer.done);
    assert.equal(r.answer.content.split(' ').length, 4);
    assert.equal(stub.requests.length, n + 1);
    const sent = stub.requests.at(-1);
    assert.equal(sent.url, '/v1/messages');
    assert.equal(sent.headers['x-api-key'], ANT_KEY);
    assert.equal(JSON.parse(sent.body).model, 'claude-busy');
  });

  test('openai provider down → the anthropic provider answers; the client sees one format', async () => {
    const r = await chat(relay.url, 'openai-then-claude', { stream_options: { include_usage: true }, mock: { seed: 3, tokens: 4, delay_ms: 0 } });
    const ref = await chat(relay.url, 'via-openai', { stream_options: { include_usage: true }, mock: { seed: 3, tokens: 4, delay_ms: 0 } });
    assert.equal(r.status, 200);
    assert.ok(r.answer.done);
    assert.equal(r.answer.content, ref.answer.content);
    assert.equal(r.answer.usage.completion_tokens, ref.answer.usage.completion_tokens);
    const line = await relay.serve.waitForLog((l) => l.msg === 'request' && l.model === 'openai-then-claude');
    assert.equal(line.provider, 'claude');
    assert.equal(line.fallbacks, 1);
  });

  test('no fallback after the first event: the anthropic error event ends the stream', async () => {
    const since = await lastSeq(relay.mock);
    const r = await chat(relay.url, 'claude-and-openai', { mock: { tokens: 4, delay_ms: 0, error_after: 1 } });
    assert.equal(r.status, 200);
    assert.equal(r.answer.error.code, 'error_event');
    assert.ok(!r.answer.done);
    const seen = await entriesOf(relay.mock, since);
    assert.deepEqual(seen.map((e) => e.path), ['/v1/messages']);
  });
});

describe('telex mock: choosing the format', () => {
  test('--format anthropic answers every path in Anthropic’s format; mock.format overrides it per request', async () => {
    const m = await startMock(['--format', 'anthropic', '--tokens', '2', '--delay-ms', '0'], { env: SANITIZER_ENV });
    try {
      const openaiBody = { model: 'x', messages: [{ role: 'user', content: 'hi' }], stream: true };
      const a = await postChat(m.url, openaiBody);
      assert.equal(a.status, 200);
      assert.deepEqual(
        a.events.map((e) => e.type),
        ['message_start', 'ping', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'],
      );
      const o = await postChat(m.url, { ...openaiBody, mock: { format: 'openai' } });
      assert.equal(o.events.at(-1).data, '[DONE]');
      assert.equal(JSON.parse(o.events[0].data).object, 'chat.completion.chunk');
      // an injected status answers in the chosen format
      const err = await fetch(`${m.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ ...openaiBody, mock: { status: 529 } }) });
      assert.equal(err.status, 529);
      assert.deepEqual(await err.json(), { type: 'error', error: { type: 'overloaded_error', message: 'mock: injected HTTP status 529' } });
      // /v1/messages still validates an Anthropic request
      const bad = await fetch(`${m.url}/v1/messages`, { method: 'POST', body: JSON.stringify({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }) });
      assert.equal(bad.status, 400);
      assert.deepEqual(await bad.json(), { type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: Field required' } });
    } finally {
      await stopChecked(m);
    }
  });
});

describe('accounting', () => {
  test('cached tokens from Anthropic are counted (metrics), as from OpenAI', async () => {
    const labels = (model, provider, type) => ({ model, provider, type });
    const before = {};
    for (const [m, p] of [
      ['via-openai', 'openai'],
      ['via-claude', 'claude'],
    ])
      before[m] = (await metric(relay.url, 'telex_tokens_total', labels(m, p, 'cached'))) ?? 0;
    const body = { mock: { seed: 4, tokens: 2, delay_ms: 0, cached_tokens: 4 } };
    await chat(relay.url, 'via-openai', body);
    await chat(relay.url, 'via-claude', body);
    await relay.serve.waitForLog((l) => l.msg === 'request' && l.model === 'via-claude' && l.usage?.prompt_tokens_details?.cached_tokens === 4, { timeoutMs: 10000 * SLACK });
    for (const [m, p] of [
      ['via-openai', 'openai'],
      ['via-claude', 'claude'],
    ]) {
      const after = await metric(relay.url, 'telex_tokens_total', labels(m, p, 'cached'));
      assert.equal(after - before[m], 4, m);
    }
    assert.ok(requestLogs(relay.serve).length > 0);
  });
});
