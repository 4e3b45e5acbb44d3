// tests/integration/budget_reservation.test.js — budgets hold under concurrency (issue 18
// item 8, issue 19): each request reserves its estimated cost at admission (prompt estimate +
// max_tokens at the model's prices) and settles the real cost at its end, so 200 concurrent
// requests on a key with a $0.05 budget spend at most the budget plus one answer's worth
// (before: 200 concurrent requests spent 404x the budget).
//
// One node without Redis here; cluster_limits.test.js does the same across two nodes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import { BUDGET, burst, createKey, pricedConfig } from './lib/budget.js';
import { startRelay, tmpDir } from './lib/relay.js';

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
