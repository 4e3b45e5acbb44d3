// tests/integration/lib/budget.js — helpers for the budget-reservation suites
// (budget_reservation.test.js on one node, cluster_limits.test.js across nodes).
//
// Exports:
//   PRICES, BUDGET                 the priced route ($1000/M in, $2000/M out) and the key's budget ($0.05)
//   createKey(dbPath, name, extra) -> the new key (telex keys create ...)
//   pricedConfig(mockUrl, patch?)  baseConfig with the one model gpt-priced at PRICES
//   burst(urls, key, n)            -> {ok, refused, spent, maxAnswer}: n streamed requests at once, spread
//                                     over urls, max_tokens 10, 5 tokens each; spent sums their cost_usd
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

import { SYNC_TIMEOUT_MS, TELEX_BIN } from './proc.js';
import { postChat } from './sse.js';
import { SANITIZER_ENV, baseConfig, msgs } from './relay.js';

export const PRICES = { input_price_per_mtok: 1000, output_price_per_mtok: 2000 };
export const BUDGET = 0.05;

export function createKey(dbPath, name, extra = []) {
  const r = spawnSync(TELEX_BIN, ['keys', 'create', '--name', name, ...extra], {
    env: { ...process.env, TELEX_DB: dbPath, ...SANITIZER_ENV },
    encoding: 'utf8',
    timeout: SYNC_TIMEOUT_MS,
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

export const pricedConfig = (mockUrl, patch = {}) =>
  baseConfig(mockUrl, {
    store: { flush_interval_seconds: 0.05 },
    ...patch,
    models: [{ name: 'gpt-priced', providers: [{ provider: 'mock', model: 'priced', ...PRICES }] }],
  });

// n requests at once, spread over the given base URLs; returns {ok, refused, spent, maxAnswer}
export async function burst(urls, key, n) {
  const body = {
    model: 'gpt-priced',
    messages: msgs('budget'),
    stream: true,
    max_tokens: 10,
    stream_options: { include_usage: true },
    mock: { tokens: 5, delay_ms: 40 },
  };
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      postChat(urls[i % urls.length], body, { headers: { authorization: `Bearer ${key}` } }),
    ),
  );
  let ok = 0;
  let refused = 0;
  let spent = 0;
  let maxAnswer = 0;
  for (const r of results) {
    if (r.status === 402) {
      refused++;
      continue;
    }
    assert.equal(r.status, 200, r.raw.toString());
    ok++;
    const usage = r.events
      .filter((e) => e.data !== '[DONE]')
      .map((e) => JSON.parse(e.data))
      .find((c) => c.usage)?.usage;
    assert.ok(usage, 'every answer reports its usage and cost');
    spent += usage.cost_usd;
    maxAnswer = Math.max(maxAnswer, usage.cost_usd);
  }
  return { ok, refused, spent, maxAnswer };
}
