// tests/integration/key_concurrency.test.js — a key's max_concurrent (issue 19): how many of
// its requests may run at once on one node (no Redis here; cluster_limits.test.js does the
// same across two nodes).
//   - exactly N run at once; the N+1th gets 429 concurrency_limit_exceeded with Retry-After: 1
//     at once, before any upstream call (the mock never sees it); other keys are not affected;
//   - the slot comes back exactly once when a request ends, whatever ended it: finished, the
//     client gone, DELETE /v1/streams/{id}, a provider error status, a mid-stream error event,
//     a cut connection, an unreachable provider — after each the key has its N slots again;
//   - `telex keys create|update --max-concurrent N` and list/show, the admin API's
//     `max_concurrent` field (POST/PATCH/GET), both validated like rpm (bad values: 65 / 400
//     naming the field); a limit changed through the admin API is enforced at once.
//
// Requests are held open by the mock's long answers (many tokens, paced by delay_ms) and end
// when the test makes them end (the client leaves, or a DELETE); nothing waits a fixed time.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { LATE_MS, SYNC_TIMEOUT_MS, TELEX_BIN, waitFor } from './lib/proc.js';
import { postChat } from './lib/sse.js';
import { SANITIZER_ENV, baseConfig, lastSeq, msgs, startRelay, tmpDir } from './lib/relay.js';
import { createKey } from './lib/budget.js';

const ADMIN = 'admin-token-0123456789-SECRET';
const LONG = { tokens: 100000, delay_ms: 50 }; // runs until the client leaves or it is cancelled

let relay;
let dbPath;
const keys = {};
before(async () => {
  dbPath = path.join(tmpDir(), 'telex.db');
  keys.two = createKey(dbPath, 'two', ['--max-concurrent', '2']);
  keys.one = createKey(dbPath, 'one', ['--max-concurrent', '1']);
  keys.free = createKey(dbPath, 'free');
  relay = await startRelay({
    env: { TELEX_DB: dbPath, TELEX_ADMIN_TOKEN: ADMIN },
    config: (mockUrl) =>
      baseConfig(mockUrl, {
        // grace 0: the upstream stops as soon as the client leaves (with a grace, a stream whose client
        // left runs on, and holds its slot, until the grace is over)
        resume: { enabled: true, grace_seconds: 0, retention_seconds: 30 },
        models: [
          { name: 'gpt-relay', providers: [{ provider: 'mock', model: 'upstream-relay' }] },
          { name: 'gpt-dead', providers: [{ provider: 'dead', model: 'upstream-dead' }] },
        ],
      }),
  });
});
after(async () => {
  if (relay) await relay.stop();
});

const auth = (key) => ({ authorization: `Bearer ${key}` });
const body = (mock, model = 'gpt-relay') => ({ model, messages: msgs('concurrency'), stream: true, mock });

// A short request: resolves with its result once it has ended.
const short = (key, mock = { tokens: 2 }, model = 'gpt-relay') =>
  postChat(relay.url, body(mock, model), { headers: auth(key) });

// A request held open: `started` resolves with its stream id at its first event; leave() makes
// the client go away; `done` resolves when the response is over.
const live = new Set(); // held requests not over yet: a failed test leaves them, afterEach ends them
function hold(key) {
  const ac = new AbortController();
  let started;
  let refused;
  let running = false;
  const first = new Promise((resolve, reject) => {
    started = resolve;
    refused = reject;
  });
  const done = postChat(relay.url, body(LONG), {
    headers: { ...auth(key), 'x-telex-event-ids': '1' },
    signal: ac.signal,
    onEvent: (e) => {
      running = true;
      started(e.id.split('.')[0]);
    },
  });
  const h = { started: first, done, leave: () => ac.abort() };
  live.add(h);
  done.then((r) => {
    live.delete(h);
    if (!running) refused(new Error(`not admitted: ${r.status} ${r.raw.toString().slice(0, 300)}`));
  });
  return h;
}

// Waits until no request runs on the gateway (telex_active_streams drops in the same call that
// gives the slots back), so the next test starts with every key's slots free.
async function idle() {
  await waitFor(
    async () => {
      const text = await (await fetch(`${relay.url}/metrics`, { headers: auth(ADMIN) })).text();
      return /^telex_active_streams 0$/m.test(text);
    },
    { message: 'no request running' },
  );
}

// After a test that failed half-way: end what it held, and say what the gateway saw last.
afterEach(async (t) => {
  if (live.size === 0) return;
  const lines = relay.serve.logs.filter((l) => l.msg === 'request' && l.path === '/v1/chat/completions');
  t.diagnostic(`${live.size} held request(s) left; the last ones: ${JSON.stringify(lines.slice(-6).map((l) => [l.status, l.outcome, l.duration_ms]))}`);
  for (const h of live) h.leave();
  await Promise.all([...live].map((h) => h.done));
  await idle();
});

// Waits until the key has all n slots again (n held requests start together; clients that left
// are noticed by the gateway a moment later, so a try that did not get all n waits for the
// gateway to be idle before the next), then checks it has exactly n: the next is refused;
// leaves them all.
async function assertSlots(key, n, what) {
  let held;
  await waitFor(
    async () => {
      held = Array.from({ length: n }, () => hold(key));
      const ok = await Promise.all(held.map((h) => h.started.then(() => true, () => false)));
      if (ok.every(Boolean)) return true;
      for (const h of held) h.leave();
      await Promise.all(held.map((h) => h.done));
      // the gateway notices a client that left a moment after it left: until then the one this
      // try admitted holds its slot, and a next try at once would find it taken again and again
      await idle();
      return false;
    },
    { message: `the key's ${n} slot(s) back after ${what}` },
  );
  const refused = await short(key);
  assert.equal(refused.status, 429, `after ${what}: ${n} slot(s) and no more (${refused.raw.toString().slice(0, 300)})`);
  for (const h of held) h.leave();
  await Promise.all(held.map((h) => h.done));
  await idle();
}

describe('enforcement on one node', () => {
  test('exactly 2 run at once; the third gets 429 at once, before any upstream call', async (t) => {
    const a = hold(keys.two);
    const b = hold(keys.two);
    await Promise.all([a.started, b.started]);
    const seq = await lastSeq(relay.mock);
    const r = await short(keys.two);
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '1');
    const err = JSON.parse(r.raw.toString()).error;
    assert.equal(err.code, 'concurrency_limit_exceeded');
    assert.equal(err.type, 'rate_limit_error');
    assert.match(err.message, /2 requests running at once/);
    assert.ok(r.endAt < LATE_MS, `refused at once (${r.endAt.toFixed(0)} ms)`);
    t.diagnostic(`the third was refused in ${r.endAt.toFixed(1)} ms`);
    assert.equal(await lastSeq(relay.mock), seq, 'the refused request never reached the provider');
    // another key is not affected
    assert.equal((await short(keys.free)).status, 200);
    // one leaves: one more is admitted, and then no more
    a.leave();
    await a.done;
    await waitFor(async () => (await short(keys.two)).status === 200, { message: 'a slot back after the client left' });
    const c = hold(keys.two);
    await c.started;
    assert.equal((await short(keys.two)).status, 429);
    b.leave();
    c.leave();
    await Promise.all([b.done, c.done]);
    await assertSlots(keys.two, 2, 'clients leaving');
  });

  test('a finished request gives its slot back by the time its client has the end', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await short(keys.one);
      assert.equal(r.status, 200, `request ${i}: ${r.raw.toString().slice(0, 300)}`);
      assert.equal(r.events.at(-1).data, '[DONE]');
    }
    await assertSlots(keys.one, 1, 'finished requests');
  });

  test('many requests at once on max_concurrent 2: never more than 2 served at a time', async () => {
    // 20 at once, each held until all have answered: exactly 2 are admitted
    const held = Array.from({ length: 20 }, () => hold(keys.two));
    const results = await Promise.all(held.map((h) => h.started.then(() => 'ok', () => 'refused')));
    assert.equal(results.filter((x) => x === 'ok').length, 2, results.join(','));
    for (const h of held) h.leave();
    const ends = await Promise.all(held.map((h) => h.done));
    assert.equal(ends.filter((r) => r.status === 429).length, 18);
    await assertSlots(keys.two, 2, 'a burst');
  });

  test('cancel (DELETE /v1/streams/{id}) gives the slot back', async () => {
    const h = hold(keys.one);
    const sid = await h.started;
    assert.equal((await short(keys.one)).status, 429);
    const del = await fetch(`${relay.url}/v1/streams/${sid}`, { method: 'DELETE', headers: auth(keys.one) });
    assert.equal(del.status, 200, await del.text());
    await h.done;
    await assertSlots(keys.one, 1, 'a cancel');
  });

  test('provider failures give the slot back', async () => {
    const failures = [
      ['an error status', { status: 500 }, 'gpt-relay'],
      ['an error status, again', { status: 503 }, 'gpt-relay'],
      ['an error event mid-stream', { tokens: 5, error_after: 2 }, 'gpt-relay'],
      ['a cut connection', { tokens: 5, cut_after: 2 }, 'gpt-relay'],
      ['an unreachable provider', { tokens: 2 }, 'gpt-dead'],
    ];
    for (const [what, mock, model] of failures) {
      const r = await short(keys.one, mock, model);
      assert.notEqual(r.status, 429, `${what}: served, not refused`);
      // the next one is admitted: the failed one gave its slot back when its accounting ended (an
      // error answered before any event may reach the client a moment before that)
      await waitFor(async () => (await short(keys.one)).status === 200, { message: `the slot back after ${what}` });
    }
    await assertSlots(keys.one, 1, 'provider failures');
  });
});

const CLI_ENV = () => ({ ...process.env, TELEX_DB: dbPath, ...SANITIZER_ENV });
const cli = (args) => spawnSync(TELEX_BIN, ['keys', ...args], { env: CLI_ENV(), encoding: 'utf8', timeout: SYNC_TIMEOUT_MS });

describe('setting and showing max_concurrent', () => {
  test('telex keys create/update --max-concurrent, list and show', () => {
    const created = cli(['create', '--name', 'cli-conc', '--max-concurrent', '3', '--rpm', '10', '--json']);
    assert.equal(created.status, 0, created.stderr);
    assert.equal(JSON.parse(created.stdout).max_concurrent, 3);
    let show = cli(['show', 'cli-conc']);
    assert.match(show.stdout, /^concurrent: 3 requests at once$/m);
    assert.match(show.stdout, /^rpm: +10 requests per minute$/m);
    const list = cli(['list']);
    const [head, ...rows] = list.stdout.trim().split('\n');
    // the last two columns: CONCURRENT, then MODELS ("all": one word)
    assert.deepEqual(head.split(/\s+/).slice(-2), ['CONCURRENT', 'MODELS']);
    assert.equal(rows.find((l) => l.includes('cli-conc')).split(/\s+/).at(-2), '3');
    assert.equal(rows.find((l) => /\bfree\b/.test(l)).split(/\s+/).at(-2), '-');
    const json = JSON.parse(cli(['list', '--json']).stdout);
    assert.equal(json.find((k) => k.name === 'cli-conc').max_concurrent, 3);
    assert.equal(json.find((k) => k.name === 'free').max_concurrent, 0);
    const upd = cli(['update', 'cli-conc', '--max-concurrent', '0']);
    assert.equal(upd.status, 0, upd.stderr);
    assert.match(upd.stdout, /^concurrent: unlimited$/m);
    assert.match(upd.stdout, /^rpm: +10 requests per minute$/m, 'other limits kept');
    show = cli(['show', 'cli-conc', '--json']);
    assert.equal(JSON.parse(show.stdout).max_concurrent, 0);
    for (const bad of ['-1', 'x', '1.5', '', '1000000001', '99999999999999999999']) {
      for (const args of [['update', 'cli-conc', '--max-concurrent', bad], ['create', '--name', 'nope', '--max-concurrent', bad]]) {
        const r = cli(args);
        assert.equal(r.status, 65, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, /--max-concurrent: expected a whole number from 0 \(unlimited\) to 1000000000/);
      }
    }
    assert.match(cli(['list', '--max-concurrent', '2']).stderr, /--max-concurrent, --models and --expires are for create and update/);
  });

  test('a limit set with the CLI reaches the running server', async () => {
    const key = createKey(dbPath, 'late-limit');
    await waitFor(async () => (await short(key)).status === 200, { message: 'the server knows the new key' });
    const a = hold(key);
    const b = hold(key);
    await Promise.all([a.started, b.started]); // unlimited: both run
    const upd = cli(['update', 'late-limit', '--max-concurrent', '2']);
    assert.equal(upd.status, 0, upd.stderr);
    // the server reloads within a second; the two running requests count against the new limit
    await waitFor(async () => (await short(key)).status === 429, { message: 'the new limit applied' });
    a.leave();
    b.leave();
    await Promise.all([a.done, b.done]);
    await assertSlots(key, 2, 'a limit set while requests ran');
  });

  test('the admin API: POST/PATCH/GET max_concurrent, enforced at once; bad values are 400 naming it', async () => {
    const admin = (method, p, b) =>
      fetch(`${relay.url}/admin/keys${p}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: b === undefined ? undefined : JSON.stringify(b),
      });
    let r = await admin('POST', '', { name: 'api-conc', max_concurrent: 2 });
    assert.equal(r.status, 201);
    const created = await r.json();
    assert.equal(created.max_concurrent, 2);
    const key = created.key;
    r = await admin('GET', '/api-conc');
    assert.equal((await r.json()).max_concurrent, 2);
    r = await admin('PATCH', '/api-conc', { max_concurrent: 1 });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).max_concurrent, 1);
    // enforced at once
    const h = hold(key);
    await h.started;
    assert.equal((await short(key)).status, 429);
    r = await admin('PATCH', '/api-conc', { max_concurrent: 0 });
    assert.equal((await r.json()).max_concurrent, 0);
    assert.equal((await short(key)).status, 200, 'unlimited again');
    h.leave();
    await h.done;
    await idle();
    const list = await (await admin('GET', '')).json();
    assert.equal(list.data.find((k) => k.name === 'api-conc').max_concurrent, 0);
    for (const bad of [-1, '2', 1.5, true, 1e10, {}]) {
      for (const [method, p, b] of [['PATCH', '/api-conc', { max_concurrent: bad }], ['POST', '', { name: 'x', max_concurrent: bad }]]) {
        r = await admin(method, p, b);
        assert.equal(r.status, 400, `${method} ${JSON.stringify(b)}`);
        const err = (await r.json()).error;
        assert.equal(err.param, 'max_concurrent');
        assert.match(err.message, /max_concurrent is a whole number from 0 \(unlimited\) to 1000000000/);
      }
    }
    assert.equal((await (await admin('GET', '/api-conc')).json()).max_concurrent, 0, 'unchanged by the bad PATCHes');
  });
});
