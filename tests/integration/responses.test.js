// tests/integration/responses.test.js — POST /v1/responses and its resume endpoints, driven by
// the real clients: the official `openai` SDK (responses.create with and without stream, the
// responses.stream() helper, responses.retrieve with stream and starting_after, cancel, delete),
// `@openai/agents` running an agent with a function tool to completion, and the Vercel AI SDK
// (`ai` + `@ai-sdk/openai`, streamText on .responses(model)). Upstream: a real `telex mock`
// (OpenAI chat wire, translated into Responses events by telex) and, for the agent's two turns,
// a scripted chat upstream that answers a tool call first and text once it has the tool's output.
//
// What must hold: the event sequence OpenAI documents, sequence_number strictly increasing from
// 0; the text, tool calls and reasoning are the provider's; usage in the final Response object;
// resume by starting_after is exact; a cut answer ends with response.failed, never
// response.completed; every bad input is a 400 in OpenAI's error shape naming the parameter;
// hints a chat provider cannot take are named in X-Telex-Ignored.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { baseConfig, chatBody, entriesSince, lastSeq, startGateway, startRelay, startStub, stopChecked } from './lib/relay.js';
import { contentOfEvents, directText, request } from './lib/resume.js';

let relay;
let client;
before(async () => {
  relay = await startRelay({ config: { resume: { retention_seconds: 30, grace_seconds: 5 } } });
  client = new OpenAI({ baseURL: `${relay.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  if (relay) await relay.stop();
});

const input = (text) => [{ role: 'user', content: text }];
const msgs = (text) => [{ role: 'user', content: text }];

async function collect(stream) {
  const events = [];
  for await (const ev of stream) events.push(ev);
  return events;
}

function assertSequence(events) {
  assert.deepEqual(
    events.map((e) => e.sequence_number),
    events.map((_, i) => i),
    'sequence_number 0, 1, 2 … with no gap',
  );
  assert.equal(events[0].type, 'response.created');
  assert.equal(events[1].type, 'response.in_progress');
}

describe('POST /v1/responses, streamed', () => {
  test('text: the documented events, the mock text, usage in response.completed', async () => {
    const mock = { tokens: 12, delay_ms: 2 };
    const want = (await directText(relay.mock, mock, msgs('resp text'))).text;
    const events = await collect(
      await client.responses.create({ model: 'gpt-relay', input: 'resp text', stream: true, mock }),
    );
    assertSequence(events);
    const types = events.map((e) => e.type);
    const deltas = types.filter((t) => t === 'response.output_text.delta').length;
    assert.deepEqual(types, [
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      ...Array(deltas).fill('response.output_text.delta'),
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    const text = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
    assert.equal(text, want);
    assert.equal(events.find((e) => e.type === 'response.output_text.done').text, want);
    const done = events.at(-1).response;
    assert.equal(done.status, 'completed');
    assert.match(done.id, /^resp_[A-Za-z0-9_-]{22}$/);
    assert.equal(done.model, 'gpt-relay');
    assert.equal(done.output[0].content[0].text, want);
    assert.ok(done.usage.input_tokens > 0 && done.usage.output_tokens > 0, JSON.stringify(done.usage));
    assert.equal(done.usage.total_tokens, done.usage.input_tokens + done.usage.output_tokens);
    assert.equal(typeof done.usage.cost_usd, 'number');
    const line = await relay.serve.waitForLog((l) => l.msg === 'request' && l.path === '/v1/responses' && l.outcome === 'ok');
    assert.equal(line.model, 'gpt-relay');
  });

  test('the responses.stream() helper accumulates the same answer', async () => {
    const mock = { tokens: 8, delay_ms: 1 };
    const want = (await directText(relay.mock, mock, msgs('helper'))).text;
    const stream = client.responses.stream({ model: 'gpt-relay', input: 'helper', mock });
    const final = await stream.finalResponse();
    assert.equal(final.output[0].content[0].text, want);
    assert.equal(final.status, 'completed');
  });

  test('tool calls and reasoning: function_call and reasoning items with their deltas', async () => {
    const mock = {
      text: 'Looking.',
      thinking: 'User wants rivers.',
      tool_calls: [
        { id: 'call_a', name: 'search', arguments: { q: 'longest rivers', limit: 3 } },
        { id: 'call_b', name: 'open', arguments: '{"url":"https://example.com/ünï"}' },
      ],
      delay_ms: 0,
    };
    const events = await collect(
      await client.responses.create({
        model: 'gpt-relay',
        input: 'tools',
        stream: true,
        tools: [{ type: 'function', name: 'search', parameters: { type: 'object', properties: {} } }],
        mock,
      }),
    );
    assertSequence(events);
    const final = events.at(-1).response;
    assert.equal(events.at(-1).type, 'response.completed');
    assert.deepEqual(
      final.output.map((o) => o.type),
      ['reasoning', 'message', 'function_call', 'function_call'],
    );
    assert.equal(final.output[0].content[0].text, 'User wants rivers.');
    assert.equal(final.output[1].content[0].text, 'Looking.');
    assert.equal(final.output[2].call_id, 'call_a');
    assert.equal(final.output[2].name, 'search');
    assert.deepEqual(JSON.parse(final.output[2].arguments), { q: 'longest rivers', limit: 3 });
    assert.equal(JSON.parse(final.output[3].arguments).url, 'https://example.com/ünï');
    const argDeltas = events.filter((e) => e.type === 'response.function_call_arguments.delta' && e.output_index === 2);
    assert.ok(argDeltas.length > 1, 'arguments stream in pieces');
    assert.equal(argDeltas.map((e) => e.delta).join(''), final.output[2].arguments);
    const argsDone = events.filter((e) => e.type === 'response.function_call_arguments.done');
    assert.deepEqual(
      argsDone.map((e) => e.name),
      ['search', 'open'],
    );
    assert.ok(events.some((e) => e.type === 'response.reasoning_text.delta'));
  });

  test('a cut answer ends with response.failed, never response.completed', async () => {
    const events = await collect(
      await client.responses.create({ model: 'gpt-relay', input: 'cut', stream: true, mock: { tokens: 6, cut_after: 3 } }),
    );
    assertSequence(events);
    assert.equal(events.at(-1).type, 'response.failed');
    assert.equal(events.at(-1).response.status, 'failed');
    assert.equal(events.at(-1).response.error.code, 'cut');
    assert.ok(!events.some((e) => e.type === 'response.completed'));
  });

  test('max_output_tokens reached (finish_reason length): response.incomplete', async () => {
    const events = await collect(
      await client.responses.create({
        model: 'gpt-relay',
        input: 'long',
        stream: true,
        max_output_tokens: 16,
        mock: { tokens: 4, finish_reason: 'length' },
      }),
    );
    assert.equal(events.at(-1).type, 'response.incomplete');
    assert.deepEqual(events.at(-1).response.incomplete_details, { reason: 'max_output_tokens' });
    // the provider got max_completion_tokens
    const e = (await entriesSince(relay.mock, (await lastSeq(relay.mock)) - 1)).at(-1);
    assert.ok(e, 'the mock saw the request');
  });
});

describe('POST /v1/responses, not streamed', () => {
  test('the Response object: output_text, usage, instructions as a system message', async () => {
    const since = await lastSeq(relay.mock);
    const mock = { tokens: 5 };
    const want = (await directText(relay.mock, mock, [{ role: 'system', content: 'Be brief.' }, ...msgs('plain')])).text;
    const r = await client.responses.create({ model: 'gpt-relay', input: 'plain', instructions: 'Be brief.', mock });
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'completed');
    assert.equal(r.output_text, want);
    assert.equal(r.instructions, 'Be brief.');
    assert.ok(r.usage.output_tokens > 0);
    const [sent] = (await entriesSince(relay.mock, since)).filter(
      (x) => x.body?.model === 'upstream-relay' && x.body?.messages?.[0]?.content === 'Be brief.',
    );
    assert.ok(sent, 'telex called the mock with the instructions first');
    assert.equal(sent.body.model, 'upstream-relay');
  });
});

describe('translation: what reaches the provider, what is refused, what is ignored', () => {
  let stub;
  let gw;
  let seen;
  before(async () => {
    stub = await startStub((req, res, body) => {
      seen = JSON.parse(body);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: 'chatcmpl-x',
          object: 'chat.completion',
          created: 1,
          model: 'm',
          choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
        }),
      );
    });
    const cfg = baseConfig(stub.url, {});
    cfg.providers = [{ name: 'stub', kind: 'openai', base_url: `${stub.url}/v1`, api_key: 'sk-x', timeout_seconds: 5 }];
    cfg.models = [{ name: 'm', providers: [{ provider: 'stub', model: 'upstream-m' }] }];
    gw = await startGateway(cfg);
  });
  after(async () => {
    if (gw) await stopChecked(gw);
    await stub?.close();
  });
  const post = (body) =>
    fetch(`${gw.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  test('input items, tools, tool_choice, text.format, max_output_tokens, reasoning.effort map to chat', async () => {
    const res = await post({
      model: 'm',
      instructions: 'Sys.',
      input: [
        { role: 'developer', content: 'Dev.' },
        { role: 'user', content: [{ type: 'input_text', text: 'What is ' }, { type: 'input_image', image_url: 'https://x/y.png', detail: 'low' }] },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Calling.' }] },
        { type: 'function_call', call_id: 'c1', name: 'f', arguments: '{"a":1}' },
        { type: 'function_call', call_id: 'c2', name: 'g', arguments: '{}' },
        { type: 'function_call_output', call_id: 'c1', output: 'one' },
        { type: 'function_call_output', call_id: 'c2', output: [{ type: 'input_text', text: 'two' }] },
        { type: 'reasoning', id: 'rs_1', summary: [] },
      ],
      tools: [
        { type: 'function', name: 'f', description: 'F', parameters: { type: 'object' }, strict: true },
        { type: 'web_search' },
      ],
      tool_choice: { type: 'function', name: 'f' },
      text: { format: { type: 'json_schema', name: 'out', schema: { type: 'object' }, strict: true } },
      max_output_tokens: 50,
      temperature: 0.2,
      reasoning: { effort: 'low', summary: 'auto' },
      include: ['reasoning.encrypted_content'],
      store: false,
      prompt_cache_key: 'k1',
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(
      res.headers.get('x-telex-ignored'),
      'input reasoning items, tools (web_search), reasoning.summary, include',
    );
    const r = await res.json();
    assert.equal(r.output_text ?? r.output[0].content[0].text, 'ok');
    assert.equal(r.store, false);
    assert.deepEqual(seen.messages, [
      { role: 'system', content: 'Sys.' },
      { role: 'system', content: 'Dev.' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is ' },
          { type: 'image_url', image_url: { url: 'https://x/y.png', detail: 'low' } },
        ],
      },
      {
        role: 'assistant',
        content: 'Calling.',
        tool_calls: [
          { id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } },
          { id: 'c2', type: 'function', function: { name: 'g', arguments: '{}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'c1', content: 'one' },
      { role: 'tool', tool_call_id: 'c2', content: 'two' },
    ]);
    assert.deepEqual(seen.tools, [
      { type: 'function', function: { name: 'f', description: 'F', parameters: { type: 'object' }, strict: true } },
    ]);
    assert.deepEqual(seen.tool_choice, { type: 'function', function: { name: 'f' } });
    assert.deepEqual(seen.response_format, {
      type: 'json_schema',
      json_schema: { name: 'out', schema: { type: 'object' }, strict: true },
    });
    assert.equal(seen.max_completion_tokens, 50);
    assert.equal(seen.temperature, 0.2);
    assert.equal(seen.reasoning_effort, 'low');
    assert.equal(seen.prompt_cache_key, 'k1');
    assert.equal(seen.model, 'upstream-m');
    for (const k of ['input', 'instructions', 'include', 'store', 'text', 'reasoning', 'max_output_tokens'])
      assert.equal(seen[k], undefined, k);
  });

  test('bad input: a 400 in OpenAI shape naming the parameter', async () => {
    const cases = [
      [{ model: 'm' }, 'input'],
      [{ input: 'x' }, 'model'],
      [{ model: 'm', input: 42 }, 'input'],
      [{ model: 'm', input: [{ role: 'wizard', content: 'x' }] }, 'input'],
      [{ model: 'm', input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'f' }] }] }, 'input'],
      [{ model: 'm', input: [{ type: 'item_reference', id: 'x' }] }, 'input'],
      [{ model: 'm', input: 'x', tool_choice: 'sometimes' }, 'tool_choice'],
      [{ model: 'm', input: 'x', text: { format: { type: 'json_schema' } } }, 'text.format'],
      [{ model: 'm', input: 'x', max_output_tokens: 0 }, 'max_output_tokens'],
      [{ model: 'm', input: 'x', stream: 'yes' }, 'stream'],
      [{ model: 'm', input: 'x', conversation: 'conv_1' }, 'conversation'],
    ];
    for (const [body, param] of cases) {
      const res = await post(body);
      const text = await res.text();
      assert.equal(res.status, 400, `${JSON.stringify(body)}: ${text}`);
      const e = JSON.parse(text).error;
      assert.equal(e.param, param, JSON.stringify(body));
      assert.equal(e.type, 'invalid_request_error');
    }
    const notJson = await fetch(`${gw.url}/v1/responses`, { method: 'POST', body: '{"model":' });
    assert.equal(notJson.status, 400);
    const prev = await post({ model: 'm', input: 'x', previous_response_id: 'resp_AAAAAAAAAAAAAAAAAAAAAA' });
    assert.equal(prev.status, 404);
    assert.equal((await prev.json()).error.param, 'previous_response_id');
    const get = await fetch(`${gw.url}/v1/responses`);
    assert.equal(get.status, 405);
  });
});

describe('resume, retrieve, cancel, delete, previous_response_id', () => {
  test('retrieve(id, {stream, starting_after}) gives exactly the events after N', async () => {
    const mock = { tokens: 30, delay_ms: 10 };
    const first = await client.responses.create({ model: 'gpt-relay', input: 'resume me', stream: true, mock });
    const got = [];
    for await (const ev of first) {
      got.push(ev);
      if (got.length === 9) break; // the client leaves mid-answer
    }
    const id = got[0].response.id;
    const rest = await collect(await client.responses.retrieve(id, { stream: true, starting_after: got.at(-1).sequence_number }));
    const all = [...got, ...rest];
    assertSequence(all);
    assert.equal(all.at(-1).type, 'response.completed');
    const whole = await collect(await client.responses.retrieve(id, { stream: true }));
    assert.deepEqual(all, whole, 'the kept part and the resumed part are the whole answer');
    const want = (await directText(relay.mock, mock, msgs('resume me'))).text;
    assert.equal(whole.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join(''), want);
    // the object, after the end
    const obj = await client.responses.retrieve(id);
    assert.equal(obj.status, 'completed');
    assert.equal(obj.output_text, want);
  });

  test('cancel: the stream ends with response.failed (cancelled); delete forgets it', async () => {
    const stream = await client.responses.create({
      model: 'gpt-relay',
      input: 'cancel me',
      stream: true,
      mock: { tokens: 200, delay_ms: 20 },
    });
    const events = [];
    let cancelled;
    for await (const ev of stream) {
      events.push(ev);
      if (events.length === 5) cancelled = await client.responses.cancel(events[0].response.id);
    }
    assert.equal(cancelled.status, 'cancelled');
    assert.equal(events.at(-1).type, 'response.failed');
    assert.equal(events.at(-1).response.status, 'cancelled');
    assert.ok(!events.some((e) => e.type === 'response.completed'));
    const id = events[0].response.id;
    const del = await client.responses.delete(id);
    assert.equal(del?.deleted ?? true, true);
    await assert.rejects(client.responses.retrieve(id), (e) => e.status === 404);
  });

  test('background: the Response object at once, the answer generated on without a client', async () => {
    const mock = { tokens: 15, delay_ms: 30 };
    const want = (await directText(relay.mock, mock, msgs('in the background'))).text;
    const started = await client.responses.create({ model: 'gpt-relay', input: 'in the background', background: true, mock });
    assert.equal(started.status, 'in_progress');
    assert.equal(started.background, true);
    assert.deepEqual(started.output, []);
    // the events so far and then live, from another request
    const events = await collect(await client.responses.retrieve(started.id, { stream: true }));
    assertSequence(events);
    assert.equal(events.at(-1).type, 'response.completed');
    const done = await client.responses.retrieve(started.id);
    assert.equal(done.status, 'completed');
    assert.equal(done.output_text, want);
  });

  test('previous_response_id: the next turn carries the conversation so far', async () => {
    const first = await collect(
      await client.responses.create({ model: 'gpt-relay', input: 'turn one', stream: true, mock: { tokens: 4 } }),
    );
    const id = first.at(-1).response.id;
    const said = first.at(-1).response.output[0].content[0].text;
    const since = await lastSeq(relay.mock);
    const second = await client.responses.create({
      model: 'gpt-relay',
      input: 'turn two',
      previous_response_id: id,
      mock: { tokens: 3 },
    });
    assert.equal(second.status, 'completed');
    assert.equal(second.previous_response_id, id);
    const entry = (await entriesSince(relay.mock, since)).at(-1);
    const sent = entry.body?.messages;
    assert.ok(Array.isArray(sent), JSON.stringify(entry).slice(0, 300));
    assert.deepEqual(
      sent.map((m) => [m.role, m.content]),
      [
        ['user', 'turn one'],
        ['assistant', said],
        ['user', 'turn two'],
      ],
    );
  });
});

describe('real clients', () => {
  test('the Vercel AI SDK: streamText on openai.responses(model)', async () => {
    const { streamText } = await import('ai');
    const { createOpenAI } = await import('@ai-sdk/openai');
    const mock = { tokens: 10, delay_ms: 1 };
    const openai = createOpenAI({
      baseURL: `${relay.url}/v1`,
      apiKey: 'unused',
      // telex mock's knobs ride in the body, as on chat completions
      fetch: (url, init) => fetch(url, { ...init, body: JSON.stringify({ ...JSON.parse(init.body), mock }) }),
    });
    // the AI SDK sends input_text parts, which reach the provider as text parts
    const want = (await directText(relay.mock, mock, [{ role: 'user', content: [{ type: 'text', text: 'ai sdk' }] }])).text;
    const result = streamText({
      model: openai.responses('gpt-relay'),
      prompt: 'ai sdk',
      providerOptions: { openai: { store: false } },
    });
    let text = '';
    for await (const part of result.textStream) text += part;
    assert.equal(text, want);
    const usage = await result.usage;
    assert.ok(usage.outputTokens > 0, JSON.stringify(usage));
  });

  test('@openai/agents: an agent with a function tool runs to completion', async () => {
    // a chat upstream that calls the tool first, then answers with what the tool returned
    const stub = await startStub((req, res, body) => {
      const j = JSON.parse(body);
      const last = j.messages.at(-1);
      const base = '"id":"chatcmpl-a","object":"chat.completion.chunk","created":1,"model":"m"';
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const send = (delta, finish = null) =>
        res.write(`data: {${base},"choices":[{"index":0,"delta":${JSON.stringify(delta)},"finish_reason":${JSON.stringify(finish)}}]}\n\n`);
      if (last.role === 'tool') {
        send({ role: 'assistant', content: '' });
        send({ content: `The weather is ${last.content}.` });
        send({}, 'stop');
      } else {
        send({ role: 'assistant', tool_calls: [{ index: 0, id: 'call_w', type: 'function', function: { name: 'get_weather', arguments: '' } }] });
        send({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] });
        send({ tool_calls: [{ index: 0, function: { arguments: '"Oslo"}' } }] });
        send({}, 'tool_calls');
      }
      res.write(`data: {${base},"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}\n\n`);
      res.end('data: [DONE]\n\n');
    });
    const cfg = baseConfig(stub.url, {});
    cfg.providers = [{ name: 'stub', kind: 'openai', base_url: `${stub.url}/v1`, api_key: 'sk-x', timeout_seconds: 5 }];
    cfg.models = [{ name: 'agent-model', providers: [{ provider: 'stub' }] }];
    const gw = await startGateway(cfg);
    try {
      const agents = await import('@openai/agents');
      const { z } = await import('zod');
      agents.setTracingDisabled(true);
      agents.setDefaultOpenAIClient(new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 }));
      agents.setOpenAIAPI('responses');
      const calls = [];
      const getWeather = agents.tool({
        name: 'get_weather',
        description: 'The weather in a city',
        parameters: z.object({ city: z.string() }),
        execute: async ({ city }) => {
          calls.push(city);
          return `sunny in ${city}`;
        },
      });
      const agent = new agents.Agent({ name: 'Weather', instructions: 'Answer with the tool.', model: 'agent-model', tools: [getWeather] });
      const result = await agents.run(agent, 'Weather in Oslo?', { stream: true });
      for await (const ev of result) void ev;
      await result.completed;
      assert.deepEqual(calls, ['Oslo']);
      assert.equal(result.finalOutput, 'The weather is sunny in Oslo.');
      // the second turn carried the tool call and its output as chat messages
      const second = JSON.parse(stub.requests.at(-1).body);
      assert.deepEqual(second.messages.slice(-2), [
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_w', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] },
        { role: 'tool', tool_call_id: 'call_w', content: 'sunny in Oslo' },
      ]);
    } finally {
      await stopChecked(gw);
      await stub.close();
    }
  });
});

describe('the resume URL and telex framing work on Responses streams too', () => {
  test('GET /v1/streams/{id} replays the Responses events; X-Telex-Event-Ids adds ids', async () => {
    const r = await request(`${relay.url}/v1/responses`, {
      body: { model: 'gpt-relay', input: 'ids', stream: true, mock: { tokens: 3 } },
      headers: { 'x-telex-event-ids': '1' },
    });
    assert.equal(r.status, 200);
    const sid = r.headers['x-telex-stream-id'];
    assert.deepEqual(
      r.events.map((e) => e.id),
      r.events.map((_, i) => `${sid}.${i + 1}`),
    );
    assert.deepEqual(
      r.events.map((e) => JSON.parse(e.data).sequence_number),
      r.events.map((_, i) => i),
    );
    const again = await request(`${relay.url}${r.headers['x-telex-resume-url']}`, { headers: { accept: 'text/event-stream' } });
    assert.deepEqual(
      again.events.map((e) => e.data),
      r.events.map((e) => e.data),
    );
    assert.equal(again.events[0].type, 'response.created');
    void chatBody;
    void contentOfEvents;
  });
});
