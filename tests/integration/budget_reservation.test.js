// tests/integration/budget_reservation.test.js — budgets hold under concurrency (issue 18
// item 8, issue 19): each request reserves its estimated cost at admission (prompt estimate +
// max_tokens at the model's prices) and settles the real cost at its end, so 200 concurrent
// requests on a key with a $0.05 budget spend at most the budget plus one answer's worth
// (before: 200 concurrent requests spent 404x the budget).
//
// One node without Redis here; cluster_limits.test.js does the same across two nodes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { TELEX_BIN } from './lib/proc.js';
import { postChat } from './lib/sse.js';
import { SANITIZER_ENV, baseConfig, msgs, startRelay, tmpDir } from './lib/relay.js';

export const PRICES = { input_price_per_mtok: 1000, output_price_per_mtok: 2000 };
export const BUDGET = 0.05;

export function createKey(dbPath, name, extra = []) {
  const r = spawnSync(TELEX_BIN, ['keys', 'create', '--name', name, ...extra], {
    env: { ...process.env, TELEX_DB: dbPath, ...SANITIZER_ENV },
    encoding: 'utf8',
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

let relay;
let key;
before(async () => {
  const dbPath = path.join(tmpDir(), 'telex.db');
  key = createKey(dbPath, 'budgeted', ['--budget-usd', String(BUDGET)]);
  relay = await startRelay({ env: { TELEX_DB: dbPath }, config: (mockUrl) => pricedConfig(mockUrl) });
});
after(async () => {
  if (relay) await relay.stop();
});

test('200 concurrent requests on a $0.05 budget: overshoot at most one answer', async () => {
  const { ok, refused, spent, maxAnswer } = await burst([relay.url], key, 200);
  assert.equal(ok + refused, 200);
  assert.ok(ok >= 1, 'something was served');
  assert.ok(refused >= 150, `most were refused (${refused})`);
  assert.ok(spent <= BUDGET + maxAnswer + 1e-9, `spent $${spent} on a $${BUDGET} budget (one answer: $${maxAnswer})`);
  // once settled, what is left of the budget is usable again, and then it is spent
  const again = await burst([relay.url], key, 50);
  assert.ok(spent + again.spent <= BUDGET + Math.max(maxAnswer, again.maxAnswer) + 1e-9, 'still within one answer');
});
