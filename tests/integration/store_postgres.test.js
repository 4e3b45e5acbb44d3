// tests/integration/store_postgres.test.js — the store shared by several nodes through
// PostgreSQL, and the ledger's spill file, with real processes: a throwaway PostgreSQL 15
// (lib/postgres.js), a real `telex mock` and real `telex serve` / `telex keys` /
// `telex usage` processes.
//
//  - two nodes on one database: a key created with the CLI works on both; the ledger
//    holds every request of both with the exact token counts the upstream reported;
//  - a key revoked through one node's admin API is refused by the other within 1 s;
//  - a key's max_concurrent set with the CLI reaches both nodes (the change trigger watches the
//    column added by schema version 3); without Redis each node counts its own requests;
//  - PostgreSQL stopped for several seconds under load, then started again: every
//    request that completed has its row afterwards (rows spilled to a local file);
//  - the ledger table locked by another session for seconds (PostgreSQL slow) under
//    load with a small queue: nothing dropped, every row there afterwards;
//  - telex stopped while rows are spilled and PostgreSQL is down, then both started
//    again: the rows are written;
//  - SQLite on a full disk (a small tmpfs, filled): rows spilled at SIGTERM into the
//    spill file's reserved room, written at the next start;
//  - a provider reporting prompt_tokens 9223372036854775807: the row is clamped and
//    logged, GET /v1/usage and `telex usage` keep working (PostgreSQL and SQLite).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { LATE_MS, SYNC_TIMEOUT_MS, TELEX_BIN, startMock, stopProcess, waitFor } from './lib/proc.js';
import { SANITIZER_ENV, baseConfig, msgs, startGateway, stopChecked, tmpDir } from './lib/relay.js';
import { postChat } from './lib/sse.js';
import { skipReason, startPostgres } from './lib/postgres.js';

const ADMIN = 'admin-token-0123456789-SECRET';
const skip = skipReason();

function cli(args, db) {
  const r = spawnSync(TELEX_BIN, args, { env: { ...process.env, TELEX_DB: db, ...SANITIZER_ENV }, encoding: 'utf8', timeout: SYNC_TIMEOUT_MS });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function createKey(db, name) {
  const r = cli(['keys', 'create', '--name', name], db);
  assert.equal(r.code, 0, r.err);
  return r.out.trim();
}

function usageTotals(db) {
  const r = cli(['usage', '--json'], db);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out).total;
}

const auth = (key) => ({ authorization: `Bearer ${key}` });

// One non-streamed answer whose usage the mock sets exactly.
async function ask(url, key, { prompt = 7, tokens = 3 } = {}) {
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? auth(key) : {}) },
    body: JSON.stringify({ model: 'gpt-relay', messages: msgs(), mock: { tokens, prompt_tokens: prompt } }),
  });
  const text = await r.text();
  return { status: r.status, body: text };
}

let pg;
let mock;

before(async () => {
  if (skip) return;
  pg = await startPostgres();
  mock = await startMock([], { env: SANITIZER_ENV });
});

after(async () => {
  await stopProcess(mock);
  await pg?.destroy();
});

async function node(db, extra = {}) {
  const dir = tmpDir();
  const config = baseConfig(mock.url, {
    store: { flush_interval_seconds: 0.05, spill_path: path.join(dir, 'ledger.spill'), ...(extra.store ?? {}) },
    streaming: { shutdown_grace_seconds: 1 },
  });
  const serve = await startGateway(config, { dir, env: { TELEX_DB: db, TELEX_ADMIN_TOKEN: ADMIN } });
  serve.dir = dir;
  return serve;
}

describe('PostgreSQL: two nodes share keys and the ledger', () => {
  test('max_concurrent set with the CLI reaches both nodes; each counts its own requests', async (t) => {
    if (skip) return t.skip(skip);
    const db = await pg.createDatabase('concurrency');
    const key = createKey(db, 'conc');
    const a = await node(db);
    const b = await node(db);
    const leave = new AbortController();
    let held;
    try {
      // one request running on b
      await new Promise((resolve, reject) => {
        held = postChat(
          b.url,
          { model: 'gpt-relay', messages: msgs(), stream: true, mock: { tokens: 100000, delay_ms: 50 } },
          { headers: auth(key), signal: leave.signal, onEvent: resolve },
        );
        held.then((r) => reject(new Error(`the held request ended: ${r.status}`)));
      });
      const r = cli(['keys', 'update', 'conc', '--max-concurrent', '1'], db);
      assert.equal(r.code, 0, r.err);
      await waitFor(async () => (await ask(b.url, key)).status === 429, { message: 'b applies the new limit' });
      const refused = await ask(b.url, key);
      assert.equal(refused.status, 429);
      assert.equal(JSON.parse(refused.body).error.code, 'concurrency_limit_exceeded');
      // a has nothing running for the key (no Redis: each node its own count)
      await waitFor(() => /"msg":"API keys reloaded"/.test(a.stderr()), { message: 'a reloaded' });
      assert.equal((await ask(a.url, key)).status, 200);
    } finally {
      leave.abort();
      await held;
      await stopChecked(a);
      await stopChecked(b);
    }
  });

  test('a key created with the CLI works on both; the ledger adds up both nodes exactly', async (t) => {
    if (skip) return t.skip(skip);
    const db = await pg.createDatabase('two_nodes');
    const key = createKey(db, 'shared');
    const a = await node(db);
    const b = await node(db);
    try {
      assert.match(a.stderr(), /"msg":"store opened".*"backend":"postgresql"/);
      let prompt = 0;
      let completion = 0;
      for (let i = 0; i < 20; i++) {
        const n = i % 2 ? b : a;
        const r = await ask(n.url, key, { prompt: 1000 + i, tokens: 1 + (i % 5) });
        assert.equal(r.status, 200, r.body);
        prompt += 1000 + i;
        completion += 1 + (i % 5);
      }
      // a wrong key is refused on both
      assert.equal((await ask(a.url, 'tlx_' + 'x'.repeat(43))).status, 401);
    } finally {
      await stopChecked(a);
      await stopChecked(b);
    }
    const total = usageTotals(db);
    assert.equal(total.requests, 20); // the 401 never passed admission: no row
    assert.equal(total.failed_requests, 0);
    assert.equal(total.completion_tokens, 1 * 4 + 2 * 4 + 3 * 4 + 4 * 4 + 5 * 4);
    assert.equal(total.prompt_tokens, 20 * 1000 + (19 * 20) / 2);
  });

  test('a key revoked through one node is refused by the other within 1 s', async (t) => {
    if (skip) return t.skip(skip);
    const db = await pg.createDatabase('revoke');
    const key = createKey(db, 'doomed');
    createKey(db, 'other'); // keys stay required after the revocation
    const a = await node(db);
    const b = await node(db);
    try {
      assert.equal((await ask(b.url, key)).status, 200);
      const r = await fetch(`${a.url}/admin/keys/doomed`, { method: 'DELETE', headers: auth(ADMIN) });
      assert.equal(r.status, 200, await r.text());
      const revokedAt = Date.now();
      let refusedAt = null;
      while (Date.now() - revokedAt < 1000 + LATE_MS) {
        const s = (await ask(b.url, key)).status;
        if (s === 401) {
          refusedAt = Date.now();
          break;
        }
        assert.equal(s, 200);
      }
      assert.ok(refusedAt !== null, 'node b never refused the revoked key');
      // the bound is 1 s; LATE_MS covers a machine too loaded to schedule us
      assert.ok(refusedAt - revokedAt <= 1000 + LATE_MS, `refused after ${refusedAt - revokedAt} ms`);
      t.diagnostic(`node b refused the key ${refusedAt - revokedAt} ms after node a revoked it`);
      await waitFor(() => /"msg":"API keys reloaded"/.test(b.stderr()), { message: 'the reload log line' });
    } finally {
      await stopChecked(a);
      await stopChecked(b);
    }
  });
});

describe('PostgreSQL down: nothing lost', () => {
  test('stopped for several seconds under load: every completed request has its row afterwards', async (t) => {
    if (skip) return t.skip(skip);
    const db = await pg.createDatabase('outage');
    const key = createKey(db, 'busy');
    // a small queue so that the outage spills to the file
    const a = await node(db, { store: { max_pending: 200 } });
    let ok = 0;
    let completion = 0;
    let stop = false;
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        const r = await ask(a.url, key, { prompt: 11, tokens: 1 + (i % 3) });
        if (r.status === 200) {
          ok++;
          completion += JSON.parse(r.body).usage.completion_tokens;
        }
      }
    })();
    try {
      await waitFor(() => ok >= 50, { message: '50 answers before the outage' });
      await pg.stop();
      const atStop = ok;
      const outageStart = Date.now();
      // keep serving with the keys already known while the database is down
      await waitFor(() => ok >= atStop + 400 && Date.now() - outageStart >= 3000, { timeoutMs: 60000, message: '400 answers during the outage' });
      await waitFor(() => /spilling them to a local file/.test(a.stderr()), { message: 'the spill' });
      await waitFor(() => /"msg":"cannot reach the store; serving with the keys and presets last loaded"/.test(a.stderr()), { message: 'the outage noticed' });
      await pg.start();
      await waitFor(() => ok >= atStop + 500, { message: 'answers after the outage' });
      await waitFor(() => /"msg":"the store is reachable again"/.test(a.stderr()), { message: 'the recovery noticed' });
    } finally {
      stop = true;
      await load;
      await stopChecked(a);
    }
    const total = usageTotals(db);
    assert.equal(total.requests, ok);
    assert.equal(total.prompt_tokens, ok * 11);
    assert.equal(total.completion_tokens, completion);
    assert.match(a.stderr(), /"msg":"spilled ledger rows written; the spill file is empty"/);
  });

  test('slow (the ledger table locked for seconds) under load: nothing dropped, every row there afterwards', async (t) => {
    if (skip) return t.skip(skip);
    const db = await pg.createDatabase('slow');
    const key = createKey(db, 'slowpoke');
    // a small queue (2,000 rows; about two seconds of this load) so that it must spill
    const a = await node(db, { store: { max_pending: 2000 } });
    let ok = 0;
    let stop = false;
    const load = (async () => {
      while (!stop) if ((await ask(a.url, key, { prompt: 3, tokens: 1 })).status === 200) ok++;
    })();
    // another session holds the table: the writer's INSERT waits (up to statement_timeout)
    const locker = spawn('psql', ['-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', '-d', 'slow', '-q'], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      await waitFor(() => ok >= 20, { message: 'answers before the lock' });
      locker.stdin.write('BEGIN; LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE;\n');
      const atLock = ok;
      await waitFor(() => /"why":"writes are too slow"/.test(a.stderr()), { timeoutMs: 30000, message: 'the spill of a stuck write' });
      await waitFor(() => ok >= atLock + 3000, { timeoutMs: 60000, message: '3,000 answers while the table is locked' });
      locker.stdin.write('COMMIT;\n');
      locker.stdin.end();
      await waitFor(() => /spilled ledger rows written; the spill file is empty/.test(a.stderr()), { timeoutMs: 40000, message: 'the replay' });
    } finally {
      stop = true;
      await load;
      locker.kill();
      await stopChecked(a);
    }
    assert.doesNotMatch(a.stderr(), /rows are being dropped/);
    const total = usageTotals(db);
    assert.equal(total.requests, ok);
    assert.equal(total.prompt_tokens, ok * 3);
  });

  test('telex restarted while rows are spilled: they are written at the next start', async (t) => {
    if (skip) return t.skip(skip);
    const db = await pg.createDatabase('restart');
    const key = createKey(db, 'patient');
    let a = await node(db);
    const spill = path.join(a.dir, 'ledger.spill');
    assert.equal((await ask(a.url, key, { prompt: 5, tokens: 2 })).status, 200);
    await pg.stop();
    for (let i = 0; i < 30; i++) assert.equal((await ask(a.url, key, { prompt: 5, tokens: 2 })).status, 200);
    await stopChecked(a);
    assert.match(a.stderr(), /"msg":"ledger rows spilled at shutdown; they are written at the next start","rows":\d+/);
    await pg.start();
    // the same node again (same config, same spill file)
    const dir = a.dir;
    a = await startGateway(JSON.parse(fs.readFileSync(a.configFile, 'utf8')), { dir, env: { TELEX_DB: db, TELEX_ADMIN_TOKEN: ADMIN } });
    try {
      await waitFor(() => /spilled ledger rows written/.test(a.stderr()), { message: 'the replay' });
      assert.match(a.stderr(), /"msg":"ledger rows from an earlier run wait in the spill file; writing them"/);
    } finally {
      await stopChecked(a);
    }
    const total = usageTotals(db);
    assert.equal(total.requests, 31);
    assert.equal(total.prompt_tokens, 31 * 5);
    assert.equal(total.completion_tokens, 31 * 2);
    // the header's counts (rows replayed, rows appended) say the file is empty again
    const header = fs.readFileSync(spill).subarray(0, 32);
    assert.equal(header.subarray(0, 8).toString(), 'TLXSPIL1');
    assert.equal(header.readBigUInt64LE(24), 0n);
  });
});

describe('SQLite on a full disk: nothing lost', () => {
  // A small tmpfs holds the database and the spill file; a filler file takes every free
  // byte; SIGTERM then has rows the database cannot take. Needs root (mount).
  test('rows queued when the disk is full are spilled at SIGTERM and written at the next start', async (t) => {
    const mnt = fs.mkdtempSync(path.join(tmpDir(), 'full-'));
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', mnt], { encoding: 'utf8', timeout: SYNC_TIMEOUT_MS });
    if (m.status !== 0) return t.skip(`cannot mount a tmpfs: ${m.stderr.trim()}`);
    try {
      const db = path.join(mnt, 'telex.db');
      const key = createKey(db, 'full');
      let a = await node(db, { store: { spill_path: path.join(mnt, 'telex.db.spill') } });
      const config = JSON.parse(fs.readFileSync(a.configFile, 'utf8'));
      const dir = a.dir;
      assert.equal((await ask(a.url, key, { prompt: 4, tokens: 1 })).status, 200);
      await waitFor(() => usageTotals(db).requests === 1, { message: 'the first row' });
      // fill the disk
      const filler = path.join(mnt, 'filler');
      const fd = fs.openSync(filler, 'w');
      const chunk = Buffer.alloc(1 << 20, 1);
      try {
        for (;;) fs.writeSync(fd, chunk);
      } catch (e) {
        assert.equal(e.code, 'ENOSPC');
      }
      try {
        for (;;) fs.writeSync(fd, chunk.subarray(0, 4096));
      } catch (e) {
        assert.equal(e.code, 'ENOSPC');
      }
      fs.closeSync(fd);
      for (let i = 0; i < 299; i++) assert.equal((await ask(a.url, key, { prompt: 4, tokens: 1 })).status, 200);
      await stopChecked(a);
      assert.match(a.stderr(), /"msg":"ledger write failed; will retry".*(full|disk)/i);
      assert.match(a.stderr(), /"msg":"ledger rows spilled at shutdown; they are written at the next start"/);
      assert.doesNotMatch(a.stderr(), /could not be written at shutdown|rows are being dropped/);
      fs.rmSync(filler);
      a = await startGateway(config, { dir, env: { TELEX_DB: db, TELEX_ADMIN_TOKEN: ADMIN } });
      try {
        await waitFor(() => /spilled ledger rows written/.test(a.stderr()), { message: 'the replay' });
      } finally {
        await stopChecked(a);
      }
      const total = usageTotals(db);
      assert.equal(total.requests, 300);
      assert.equal(total.prompt_tokens, 1200);
    } finally {
      spawnSync('umount', ['-l', mnt], { timeout: SYNC_TIMEOUT_MS });
      fs.rmSync(mnt, { recursive: true, force: true });
    }
  });
});

describe('absurd usage from a provider', () => {
  for (const backend of ['postgresql', 'sqlite']) {
    test(`prompt_tokens 9223372036854775807 is clamped; usage keeps working (${backend})`, async (t) => {
      if (skip && backend === 'postgresql') return t.skip(skip);
      const db = backend === 'postgresql' ? await pg.createDatabase('absurd') : path.join(tmpDir(), 'telex.db');
      const key = createKey(db, 'absurd');
      const a = await node(db);
      try {
        // JSON numbers beyond 2^53 lose precision in JS: send the exact text
        const raw = await fetch(`${a.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...auth(key) },
          body: '{"model":"gpt-relay","messages":[{"role":"user","content":"hi"}],"mock":{"tokens":2,"prompt_tokens":9223372036854775807}}',
        });
        assert.equal(raw.status, 200);
        await raw.text();
        await waitFor(() => /absurd token count; clamped before the ledger/.test(a.stderr()), { message: 'the warning' });
        assert.match(a.stderr(), /"reported":9223372036854775807,"clamped_to":1000000000/);
        await waitFor(async () => {
          const u = await fetch(`${a.url}/v1/usage`, { headers: auth(ADMIN) });
          if (u.status !== 200) throw new Error(`GET /v1/usage: ${u.status} ${await u.text()}`);
          return (await u.json()).total.requests >= 1;
        }, { message: 'GET /v1/usage with the row' });
      } finally {
        await stopChecked(a);
      }
      const total = usageTotals(db);
      assert.equal(total.requests, 1);
      assert.equal(total.prompt_tokens, 1000000000);
      assert.equal(total.completion_tokens, 2);
    });
  }
});
