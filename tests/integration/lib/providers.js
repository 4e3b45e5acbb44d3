// tests/integration/lib/providers.js — one telex mock behind one telex serve with a
// provider of every HTTP kind pointing at it, for tests/integration/providers_*.test.js.
//
// The mock serves OpenAI (/v1/chat/completions), Azure (/openai/deployments/...) and
// Anthropic (/v1/messages) from one process, so the same request through each kind
// yields the same answer (give mock.seed or mock.text: the generated words otherwise
// hash the messages, which each kind shapes differently).
//
// Exports:
//   ANT_KEY, AZ_KEY, API_KEY        the provider keys (must never reach a log line)
//   PRICES                          the prices of every via-* route
//   providersConfig(mockUrl, extra) the config (below); extra: {providers: [...], models: [...]}
//   startProviders(opts?)           startRelay with providersConfig; opts.extra, opts.config(cfg, mockUrl)
//   answerOf(events)                the OpenAI stream assembled: {role, content, reasoning, refusal,
//                                   toolCalls: [{index, id, type, name, arguments, deltas}], finish,
//                                   usage, chunks, done, error}
//   chat(url, model, body?, opts?)  POST a streamed chat; -> the collectSSE result + answer
//   plain(url, model, body?)        POST a plain chat; -> {status, body, headers}
//   entriesOf(mock, since)          the mock's requests since a counter (see relay.js)
//   metric(url, name, labels)       a sample of GET /metrics, or undefined
//
// Models (all upstream model names "upstream-model" unless said otherwise):
//   via-openai, via-claude, via-azure   one route each (azure: deployment "my-deployment")
//   claude-then-openai                  a dead anthropic provider, then openai
//   openai-then-claude                  a dead openai provider, then anthropic
//   claude-and-openai                   anthropic, then openai (both alive)
//   "*"                                 azure, the client's model name as the deployment
import { postChat } from './sse.js';
import { API_KEY, entriesSince, startRelay } from './relay.js';

export { API_KEY };
export const ANT_KEY = 'sk-ant-provider-test-SECRET-0123456789';
export const AZ_KEY = 'az-provider-test-SECRET-9876543210';
export const PRICES = { input_price_per_mtok: 1, cached_input_price_per_mtok: 0.25, output_price_per_mtok: 2 };

export function providersConfig(mockUrl, extra = {}) {
  const route = (provider, model = 'upstream-model') => ({ provider, model, ...PRICES });
  return {
    workers: 2,
    providers: [
      { name: 'openai', kind: 'openai', base_url: `${mockUrl}/v1`, api_key: API_KEY, timeout_seconds: 2 },
      { name: 'claude', kind: 'anthropic', base_url: mockUrl, api_key: ANT_KEY, max_tokens: 333, timeout_seconds: 2 },
      { name: 'azure', kind: 'azure', endpoint: mockUrl, api_key: AZ_KEY, timeout_seconds: 2 },
      { name: 'claude-dead', kind: 'anthropic', base_url: 'http://127.0.0.1:1', api_key: ANT_KEY, timeout_seconds: 1 },
      { name: 'openai-dead', kind: 'openai', base_url: 'http://127.0.0.1:1/v1', timeout_seconds: 1 },
      ...(extra.providers ?? []),
    ],
    models: [
      { name: 'via-openai', providers: [route('openai')] },
      { name: 'via-claude', providers: [route('claude')] },
      { name: 'via-azure', providers: [route('azure', 'my-deployment')] },
      { name: 'claude-then-openai', providers: [route('claude-dead'), route('openai')] },
      { name: 'openai-then-claude', providers: [route('openai-dead'), route('claude')] },
      { name: 'claude-and-openai', providers: [route('claude'), route('openai')] },
      ...(extra.models ?? []),
      { name: '*', providers: [{ provider: 'azure' }] },
    ],
    streaming: { keepalive_seconds: 5, commit_timeout_seconds: 2, idle_timeout_seconds: 5, shutdown_grace_seconds: 1 },
  };
}

export function startProviders(opts = {}) {
  return startRelay({
    ...opts,
    config: (mockUrl) => {
      const cfg = providersConfig(mockUrl, opts.extra);
      return opts.config ? opts.config(cfg, mockUrl) : cfg;
    },
  });
}

export function answerOf(events) {
  const a = { role: null, content: '', reasoning: '', refusal: '', toolCalls: [], finish: null, usage: null };
  a.done = events.at(-1)?.data === '[DONE]';
  a.chunks = [];
  a.error = null;
  for (const e of events) {
    if (e.data === '[DONE]') continue;
    const o = JSON.parse(e.data);
    if (o.error) {
      a.error = o.error;
      continue;
    }
    a.chunks.push(o);
    if (o.usage) a.usage = o.usage;
    const c = o.choices?.[0];
    if (!c) continue;
    const d = c.delta ?? {};
    if (d.role) a.role = d.role;
    a.content += d.content ?? '';
    a.reasoning += d.reasoning_content ?? d.reasoning ?? '';
    a.refusal += d.refusal ?? '';
    for (const tc of d.tool_calls ?? []) {
      const t = (a.toolCalls[tc.index] ??= { index: tc.index, id: null, type: null, name: null, arguments: '', deltas: [] });
      t.deltas.push(tc);
      if (tc.id) t.id = tc.id;
      if (tc.type) t.type = tc.type;
      if (tc.function?.name) t.name = tc.function.name;
      t.arguments += tc.function?.arguments ?? '';
    }
    if (c.finish_reason) a.finish = c.finish_reason;
  }
  return a;
}

export const msgs = (text = 'tell me about rivers') => [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: text },
];

export async function chat(url, model, body = {}, opts = {}) {
  const r = await postChat(url, { model, messages: msgs(), stream: true, ...body }, opts);
  r.answer = r.status === 200 ? answerOf(r.events) : null;
  return r;
}

export async function plain(url, model, body = {}) {
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: msgs(), ...body }),
  });
  const text = await r.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: r.status, headers: r.headers, body: parsed };
}

export const entriesOf = entriesSince;

export async function metric(url, name, labels) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2].split(',').sort();
    if (want.every((w) => have.includes(w))) return Number(m[3]);
  }
  return undefined;
}
