// tests/integration/cluster_limits.test.js — cluster mode (issue 19): limits, budgets and
// revocation hold across nodes. Two real telex nodes share one redis-server and one SQLite
// file (the key rows); the limits live in Redis (atomic Lua scripts, cluster/limits.c).
//   - a key with rpm 3, requests alternating between the nodes: exactly 3 served, then 429;
//   - a $0.05 budget, 200 concurrent requests spread over both nodes: overshoot at most one
//     answer's worth (each node alone would let its share through);
//   - a key revoked through node A's admin API is refused by node B within a second, and B
//     says it reloaded because of the announcement (not only its database watch);
//   - a node killed mid-request does not hold the key's budget reservation: once its heartbeat
//     expires, the other node admits the key again;
//   - a key with max_concurrent 2 serves exactly 2 at once across both nodes (leases in Redis),
//     a slot freed on one node is usable on the other; leases are refreshed while their requests
//     run past the lease TTL, and those of a node killed while it held both slots lapse within it;
//     with Redis away a node falls back to its own count (which includes what Redis admitted),
//     and the requests it admitted on its own count get their leases in Redis when Redis is back;
//   - an admission whose reply is lost (the script held in a relay past the call timeout, then
//     delivered: Redis runs it after the node gave up) does not keep the key's budget: the
//     request, decided locally, gives back what the script reserved (reservation field and
//     lease) at its end — once Redis answers again when it ended meanwhile; while it runs (Redis
//     back) it holds them as any request — and its real cost is added to Redis' spend once
//     (Redis' spend equals the key's ledger).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import { LATE_MS, waitFor } from './lib/proc.js';
import { chunksOf, postChat } from './lib/sse.js';
import { msgs, tmpDir } from './lib/relay.js';
import {
  metricsText,
  redisCommand,
  startCluster,
  startNode,
  startRedis,
  startRedisProxy,
  waitRedisUp,
} from './lib/cluster.js';
import { BUDGET, PRICES, burst, createKey } from './lib/budget.js';

const ADMIN = 'admin-token-0123456789-SECRET';

describe('limits across nodes', () => {
  let c;
  let keys;
  before(async () => {
    const dbPath = path.join(tmpDir(), 'telex.db');
    keys = {
      rpm3: createKey(dbPath, 'rpm3', ['--rpm', '3']),
      budget: createKey(dbPath, 'budget', ['--budget-usd', String(BUDGET)]),
      doomed: createKey(dbPath, 'doomed'),
    };
    c = await startCluster({
      nodes: 2,
      dbPath,
      env: { TELEX_ADMIN_TOKEN: ADMIN },
      config: {
        store: { flush_interval_seconds: 0.05 },
        models: [
          { name: 'gpt-relay', providers: [{ provider: 'mock', model: 'upstream-relay' }] },
          { name: 'gpt-priced', providers: [{ provider: 'mock', model: 'priced', ...PRICES }] },
        ],
      },
    });
  });
  after(async () => {
    if (c) await c.stop();
  });

  const chat = (node, key) =>
    postChat(node.url, { model: 'gpt-relay', messages: msgs('limits'), stream: true, mock: { tokens: 2 } }, {
      headers: { authorization: `Bearer ${key}` },
    });

  test('rpm 3 across two nodes serves exactly 3', async () => {
    const statuses = [];
    for (let i = 0; i < 8; i++) statuses.push((await chat(c.nodes[i % 2], keys.rpm3)).status);
    assert.deepEqual(statuses, [200, 200, 200, 429, 429, 429, 429, 429]);
    // at once, too: nobody else gets through
    const more = await Promise.all(c.nodes.map((n) => chat(n, keys.rpm3)));
    assert.deepEqual(more.map((r) => r.status), [429, 429]);
    assert.ok(Number(more[0].headers.get('retry-after')) >= 1);
  });

  test('a $0.05 budget under 200 concurrent requests over two nodes: overshoot at most one answer', async () => {
    const { ok, refused, spent, maxAnswer } = await burst(c.nodes.map((n) => n.url), keys.budget, 200);
    assert.equal(ok + refused, 200);
    assert.ok(ok >= 1 && refused >= 150, `${ok} served, ${refused} refused`);
    assert.ok(spent <= BUDGET + maxAnswer + 1e-9, `spent $${spent} on $${BUDGET} (one answer: $${maxAnswer})`);
  });

  test('a key revoked on node A is refused on node B within a second', async () => {
    const [A, B] = c.nodes;
    assert.equal((await chat(B, keys.doomed)).status, 200);
    const list = await (await fetch(`${A.url}/admin/keys/doomed`, { headers: { authorization: `Bearer ${ADMIN}` } })).json();
    const del = await fetch(`${A.url}/admin/keys/${list.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    assert.equal(del.status, 200);
    const t0 = performance.now();
    let status = 200;
    while (status === 200 && performance.now() - t0 < 10000) status = (await chat(B, keys.doomed)).status;
    const took = performance.now() - t0;
    assert.equal(status, 401);
    assert.ok(took < 1000 + LATE_MS, `refused on B after ${took.toFixed(0)} ms`);
    await B.waitForLog((l) => l.msg === 'cluster: keys changed on another node; reloading');
  });
});

describe('a dead node does not hold the budget', () => {
  let c;
  let key;
  before(async () => {
    const dbPath = path.join(tmpDir(), 'telex.db');
    key = createKey(dbPath, 'reserved', ['--budget-usd', String(BUDGET)]);
    c = await startCluster({
      nodes: 2,
      dbPath,
      config: { models: [{ name: 'gpt-priced', providers: [{ provider: 'mock', model: 'priced', ...PRICES }] }] },
    });
  });
  after(async () => {
    if (c) await c.stop();
  });

  test('kill -9 of the node running a request that reserved the whole budget', async () => {
    const [A, B] = c.nodes;
    const auth = { authorization: `Bearer ${key}` };
    // max_tokens 100 at $2000/M: a $0.2 reservation, more than the whole $0.05 budget
    const big = { model: 'gpt-priced', messages: msgs('hold it'), stream: true, max_tokens: 100, mock: { tokens: 2000, delay_ms: 20 } };
    let started;
    const running = new Promise((resolve) => (started = resolve));
    const held = postChat(A.url, big, { headers: auth, onEvent: () => started() });
    await running;
    const small = { ...big, max_tokens: 1, mock: { tokens: 1 } };
    assert.equal((await postChat(B.url, small, { headers: auth })).status, 402, 'the reservation holds the budget');
    process.kill(A.pid, 'SIGKILL');
    await held;
    const t0 = performance.now();
    let status = 402;
    while (status === 402 && performance.now() - t0 < 15000) {
      status = (await postChat(B.url, small, { headers: auth })).status;
      if (status === 402) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 200, 'admitted again once the dead node\'s heartbeat expired');
    assert.ok(performance.now() - t0 < 2000 + LATE_MS + 1000, 'within about the heartbeat TTL');
  });
});

describe('max_concurrent across nodes', () => {
  let c;
  let key;
  before(async () => {
    const dbPath = path.join(tmpDir(), 'telex.db');
    key = createKey(dbPath, 'conc2', ['--max-concurrent', '2']);
    // grace 0: a stream whose client left stops at once (and gives its slot back)
    c = await startCluster({ nodes: 2, dbPath, config: { resume: { grace_seconds: 0 } } });
  });
  after(async () => {
    if (c) await c.stop();
  });

  const auth = () => ({ authorization: `Bearer ${key}` });
  const short = (node) =>
    postChat(node.url, { model: 'gpt-relay', messages: msgs('conc'), stream: true, mock: { tokens: 2 } }, { headers: auth() });
  // a request held open until leave(); `started` resolves at its first event, rejects when refused
  function hold(node, { until } = {}) {
    const ac = new AbortController();
    let running = false;
    let reached;
    const late = new Promise((resolve) => (reached = resolve));
    let ok;
    let no;
    const started = new Promise((resolve, reject) => {
      ok = resolve;
      no = reject;
    });
    const done = postChat(
      node.url,
      { model: 'gpt-relay', messages: msgs('conc'), stream: true, mock: { tokens: 100000, delay_ms: 50 } },
      {
        headers: auth(),
        signal: ac.signal,
        onEvent: (e) => {
          running = true;
          ok();
          if (until !== undefined && e.t >= until) reached();
        },
      },
    );
    done.then((r) => {
      if (!running) no(Object.assign(new Error(`refused: ${r.status}`), { status: r.status, result: r }));
    });
    return { started, done, late, leave: () => ac.abort() };
  }
  const freed = (node) => waitFor(async () => (await short(node)).status === 200, { message: 'a slot free again' });
  // no request running on the live nodes (a request's end removes its lease in the same call)
  const idle = () =>
    waitFor(
      async () => {
        for (const n of c.nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null))
          if (!/^telex_active_streams 0$/m.test(await metricsText(n))) return false;
        return true;
      },
      { message: 'no request running' },
    );

  test('max_concurrent 2 across two nodes serves exactly 2 at once', async () => {
    const [A, B] = c.nodes;
    // 12 at once, 6 on each node: exactly 2 run, the others are refused with 429
    const held = Array.from({ length: 12 }, (_, i) => hold(c.nodes[i % 2]));
    const outcomes = await Promise.all(held.map((h) => h.started.then(() => 200, (e) => e.status)));
    assert.equal(outcomes.filter((s) => s === 200).length, 2, outcomes.join(','));
    assert.equal(outcomes.filter((s) => s === 429).length, 10, outcomes.join(','));
    const refused = await short(A);
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.equal(JSON.parse(refused.raw.toString()).error.code, 'concurrency_limit_exceeded');
    assert.equal((await short(B)).status, 429);
    for (const h of held) h.leave();
    await Promise.all(held.map((h) => h.done));
    await idle();
    // one running on each node: a third is refused on either; one ending on A frees a slot for B
    const a = hold(A);
    const b = hold(B);
    await Promise.all([a.started, b.started]);
    assert.equal((await short(A)).status, 429);
    assert.equal((await short(B)).status, 429);
    a.leave();
    await a.done;
    await freed(B);
    const b2 = hold(B);
    await b2.started;
    assert.equal((await short(A)).status, 429, 'two running on B: A refuses');
    b.leave();
    b2.leave();
    await Promise.all([b.done, b2.done]);
    await idle();
  });

  test('leases outlive their TTL while their requests run; those of a killed node lapse within it', async (t) => {
    const [A, B] = c.nodes;
    await idle();
    // the first runs past the lease TTL (5 s) by 2 s: its node refreshes both leases meanwhile
    const held = [hold(A, { until: 7000 }), hold(A)];
    await Promise.all(held.map((h) => h.started));
    assert.equal((await short(B)).status, 429, 'A holds both slots');
    await held[0].late;
    assert.equal((await short(B)).status, 429, 'still both, 7 s on: the leases were refreshed');
    process.kill(A.pid, 'SIGKILL');
    await Promise.all(held.map((h) => h.done));
    const t0 = performance.now();
    let status = 429;
    while (status === 429 && performance.now() - t0 < 20000) {
      status = (await short(B)).status;
      if (status === 429) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 200, 'admitted again once the dead node\'s leases expired');
    const firstFree = performance.now() - t0;
    // both slots: A's two workers refresh their leases each on its own second, so the second
    // lease may lapse up to a second after the first
    let two;
    await waitFor(
      async () => {
        two = [hold(B), hold(B)];
        const ok = await Promise.all(two.map((h) => h.started.then(() => true, () => false)));
        if (ok.every(Boolean)) return true;
        for (const h of two) h.leave();
        await Promise.all(two.map((h) => h.done));
        await idle();
        return false;
      },
      { message: 'both slots free', intervalMs: 100 },
    );
    const took = performance.now() - t0;
    t.diagnostic(`both slots free ${took.toFixed(0)} ms after the kill (first one after ${firstFree.toFixed(0)} ms)`);
    assert.ok(took < 5000 + 1000 + LATE_MS + 1000, `within about the lease TTL (5 s): ${took.toFixed(0)} ms`);
    // and the limit still holds with the node that is left
    assert.equal((await short(B)).status, 429);
    for (const h of two) h.leave();
    await Promise.all(two.map((h) => h.done));
  });

  test('Redis away: the node falls back to its own count, which includes what Redis admitted', async () => {
    const B = c.nodes[1];
    await idle();
    const first = hold(B); // admitted by Redis
    await first.started;
    await c.redis.stop();
    await waitFor(async () => /^telex_cluster_redis_up 0$/m.test(await metricsText(B)), { message: 'redis down seen' });
    const second = hold(B); // admitted by the node's own count: 1 of 2 running
    await second.started;
    const r = await short(B);
    assert.equal(r.status, 429, 'the node counts the request Redis admitted too');
    assert.equal(JSON.parse(r.raw.toString()).error.code, 'concurrency_limit_exceeded');
    first.leave();
    await first.done;
    await freed(B);
    second.leave();
    await second.done;
  });

  test('Redis back: the requests a node admitted on its own count meanwhile hold leases in Redis', async () => {
    const B = c.nodes[1];
    // every concurrency lease Redis holds (this suite's key is the only one with max_concurrent)
    const leases = () =>
      redisCommand(
        c.redis,
        `EVAL "local n = 0 for _, k in ipairs(redis.call('KEYS', 'telex:k:*:c')) do n = n + redis.call('ZCARD', k) end return n" 0`,
      );
    await idle();
    await c.redis.stop(); // (already stopped by the test above, unless it failed early)
    await waitFor(async () => /^telex_cluster_redis_up 0$/m.test(await metricsText(B)), { message: 'redis down seen' });
    const held = [hold(B), hold(B)]; // both admitted by B's own count
    await Promise.all(held.map((h) => h.started));
    c.redis = await startRedis(c.redis.port); // empty: no persistence
    await waitRedisUp(B);
    // B's lease refresh (every second) puts both leases into Redis
    await waitFor(async () => (await leases()) === 2, { message: 'both leases in Redis' });
    // Redis decides again, and counts them: no third request on any node
    const r = await short(B);
    assert.equal(r.status, 429, 'Redis counts the two requests B admitted while it was away');
    assert.equal(JSON.parse(r.raw.toString()).error.code, 'concurrency_limit_exceeded');
    for (const h of held) h.leave();
    await Promise.all(held.map((h) => h.done));
    // their end removed their leases
    await waitFor(async () => (await leases()) === 0, { message: 'the leases removed at the ends' });
    await freed(B);
  });
});

describe('an admission whose reply was lost', () => {
  let c;
  let key;
  let proxy;
  let A;
  let k; // the key's id in Redis
  before(async () => {
    const dbPath = path.join(tmpDir(), 'telex.db');
    key = createKey(dbPath, 'lost', ['--budget-usd', String(BUDGET), '--rpm', '1000', '--max-concurrent', '4']);
    c = await startCluster({
      nodes: 0,
      dbPath,
      // grace 0: a stream whose client left ends at once
      config: {
        resume: { grace_seconds: 0 },
        models: [{ name: 'gpt-priced', providers: [{ provider: 'mock', model: 'priced', ...PRICES }] }],
      },
    });
    // the node talks to Redis through a relay that can hold what the node sends (Redis "slow")
    proxy = await startRedisProxy(c.redis);
    A = await startNode(c, { env: { TELEX_REDIS_URL: proxy.url } });
    await waitRedisUp(A);
    // a request Redis admits: the key's hash exists (each worker connects on its own: one may not be yet)
    const name = await waitFor(
      async () => {
        const r0 = await postChat(A.url, { ...body, max_tokens: 1 }, { headers: auth() });
        assert.equal(r0.status, 200);
        return redisCommand(c.redis, `EVAL "return redis.call('KEYS', 'telex:k:*')[1]" 0`);
      },
      { message: "the key's hash in Redis" },
    );
    k = /^telex:k:(\d+)/.exec(name)[1];
  });
  after(async () => {
    if (c) await c.stop();
    if (proxy) await proxy.close();
  });

  const auth = () => ({ authorization: `Bearer ${key}` });
  // max_tokens 20 at $2000/M (+ the prompt): a reservation of the whole $0.05 budget
  const body = {
    model: 'gpt-priced',
    messages: msgs('lost reply'),
    stream: true,
    max_tokens: 20,
    stream_options: { include_usage: true },
    mock: { tokens: 2 },
  };
  const hget = (f) => redisCommand(c.redis, `HGET telex:k:${k} ${f}`);
  const reserved = () => redisCommand(c.redis, `HLEN telex:k:${k}:r`);
  const leases = () => redisCommand(c.redis, `ZCARD telex:k:${k}:c`);
  const near = (a, b) => Math.abs(a - b) < 1e-9;
  const timeouts = () => A.logs.filter((l) => l.msg === 'redis unavailable' && l.why === 'a command timed out').length;
  // the key's spend in the ledger (GET /v1/usage with the key)
  const ledgerCost = async () =>
    (await (await fetch(`${A.url}/v1/usage`, { headers: auth() })).json()).total.cost_usd;
  // nothing in flight: no reservation, no lease; the spend and the rpm bucket's last take (Redis ms)
  async function settled() {
    await waitFor(async () => (await reserved()) === 0 && (await leases()) === 0, { message: 'nothing in flight' });
    return { sp: Number(await hget('sp')), ra: await hget('ra') };
  }

  test('Redis runs the admission script after the node gave up on its reply: the reservation is given back at the end', async () => {
    const before = await settled();
    const timeouts0 = timeouts();
    // the admission script waits in the relay past the 1 s call timeout: the node gives up on
    // its reply, decides locally and serves the request
    proxy.hold();
    let released = false;
    try {
      const r = await postChat(A.url, body, { headers: auth() });
      assert.equal(r.status, 200, r.raw.toString());
      const cost = chunksOf(r.events).find((e) => e.usage).usage.cost_usd;
      assert.ok(cost > 0);
      assert.ok(timeouts() > timeouts0, 'the admission timed out');
      assert.equal(await reserved(), 0, 'nothing reached Redis yet');
      // then Redis gets the script after all, and runs it: it reserves for a request that ended
      proxy.release();
      released = true;
      await waitFor(async () => (await hget('ra')) !== before.ra, { message: 'the lost admission ran in Redis' });
      // its reservation and lease are given back once the node is connected again, and the
      // request's real cost is in the spend once
      await waitFor(async () => (await reserved()) === 0, { message: 'the lost reservation given back' });
      assert.equal(await leases(), 0);
      const sp = Number(await hget('sp'));
      assert.ok(near(sp, before.sp + cost), `spend ${sp}: ${before.sp} before, the request cost ${cost}`);
      // Redis admits the key again (the lost reservation alone would refuse it: 402)
      await waitRedisUp(A);
      const again = await postChat(A.url, { ...body, max_tokens: 1 }, { headers: auth() });
      assert.equal(again.status, 200, again.raw.toString());
    } finally {
      if (!released) proxy.release();
    }
  });

  test('Redis back while the request runs: its reservation holds until the request ends, then goes', async () => {
    const before = await settled();
    const timeouts0 = timeouts();
    proxy.hold();
    let released = false;
    const ac = new AbortController();
    try {
      let started;
      const running = new Promise((resolve) => (started = resolve));
      const done = postChat(A.url, { ...body, mock: { tokens: 100000, delay_ms: 50 } }, {
        headers: auth(),
        signal: ac.signal,
        onEvent: () => started(),
      });
      await running; // decided locally: it runs
      assert.ok(timeouts() > timeouts0, 'the admission timed out');
      proxy.release();
      released = true;
      await waitFor(async () => (await hget('ra')) !== before.ra, { message: 'the lost admission ran in Redis' });
      // the node is connected again while the request runs: its reservation stays (as a
      // request Redis admitted holds one), and so does its lease
      await waitRedisUp(A);
      assert.equal(await reserved(), 1, 'the running request holds its reservation');
      assert.equal(await leases(), 1);
      const refused = await postChat(A.url, { ...body, max_tokens: 1 }, { headers: auth() });
      assert.equal(refused.status, 402, 'the budget is held by the running request');
      ac.abort();
      const r = await done;
      assert.ok(r.events.length > 0);
      const after = await settled(); // its end gave both back
      assert.ok(after.sp > before.sp, 'its cost is in the spend');
      // Redis' spend is the key's ledger: every request counted once, the lost ones included
      let ledger;
      await waitFor(async () => near((ledger = await ledgerCost()), after.sp), {
        message: `Redis' spend ${after.sp} = the ledger's ${ledger}`,
      });
    } finally {
      ac.abort();
      if (!released) proxy.release();
    }
  });
});
