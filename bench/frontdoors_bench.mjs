// bench/frontdoors_bench.mjs — what a front door costs per event: the same answers from one
// `telex mock` (OpenAI chat wire) through /v1/chat/completions (OpenAI framing, and telex's
// framing with ids), /v1/responses (translated to Responses events) and /v1/messages
// (translated to Anthropic events), in interleaved rounds on one telex process (one worker).
// Reported: telex's CPU (user + system, from /proc) per event each client received, medians of
// the rounds, and the ratio to the chat relay.
//
//   TELEX_BIN=build/telex node bench/frontdoors_bench.mjs [out.md]
// Env: ROUNDS (3), STREAMS (concurrent, 200), TOKENS (per answer, 100), DELAY_MS (between
// tokens, 10).
import fs from 'node:fs';

import { startRelay } from '../tests/integration/lib/relay.js';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const STREAMS = Number(process.env.STREAMS ?? 200);
const TOKENS = Number(process.env.TOKENS ?? 100);
const DELAY_MS = Number(process.env.DELAY_MS ?? 10);

const relay = await startRelay({ config: { workers: 1, resume: { retention_seconds: 1 } }, env: { TELEX_LOG: 'quiet' } });
const pid = relay.serve.pid;
const ticksPerSecond = 100;
const cpuUs = () => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1e6) / ticksPerSecond;
};

const mock = { tokens: TOKENS, delay_ms: DELAY_MS };
const messages = [{ role: 'user', content: 'bench' }];
const DOORS = {
  chat: { path: '/v1/chat/completions', body: { model: 'gpt-relay', stream: true, messages, mock } },
  'chat (ids)': { path: '/v1/chat/completions', body: { model: 'gpt-relay', stream: true, messages, mock }, headers: { 'x-telex-event-ids': '1' } },
  responses: { path: '/v1/responses', body: { model: 'gpt-relay', stream: true, input: messages, mock } },
  messages: { path: '/v1/messages', body: { model: 'gpt-relay', stream: true, max_tokens: 1000, messages, mock } },
};

async function one(door) {
  const res = await fetch(relay.url + door.path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(door.headers ?? {}) },
    body: JSON.stringify(door.body),
  });
  const text = await res.text();
  return (text.match(/\n\n/g) || []).length;
}

async function round(door) {
  const c0 = cpuUs();
  const counts = await Promise.all(Array.from({ length: STREAMS }, () => one(door)));
  const events = counts.reduce((a, b) => a + b, 0);
  return (cpuUs() - c0) / events;
}

const results = Object.fromEntries(Object.keys(DOORS).map((k) => [k, []]));
for (let r = 0; r < ROUNDS; r++) for (const [name, door] of Object.entries(DOORS)) results[name].push(await round(door));
await relay.stop();

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = median(results.chat);
const lines = [
  '### Front doors: CPU per event',
  '',
  `${STREAMS} concurrent answers of ${TOKENS} tokens, ${DELAY_MS} ms apart, from one \`telex mock\` (OpenAI chat wire) through one telex worker; medians of ${ROUNDS} interleaved rounds (\`bench/frontdoors_bench.mjs\`).`,
  '',
  '| front door | telex CPU µs / event | vs chat |',
  '|---|---|---|',
  ...Object.entries(results).map(([name, xs]) => `| ${name} | ${median(xs).toFixed(2)} | ${(median(xs) / base).toFixed(2)}x |`),
  '',
];
const out = lines.join('\n');
if (process.argv[2]) fs.writeFileSync(process.argv[2], out + '\n');
console.log(out);
