// tests/integration/presets_store.test.js — presets kept in the store, on SQLite and on
// PostgreSQL (lib/postgres.js), with a real `telex mock`, `telex serve` and the
// `telex presets` / `telex keys` CLI; plus the store items of issue 18.
//
//  - the admin API: POST /admin/presets (201), GET list/one (source config|store),
//    PATCH, DELETE; bad presets answer 400 naming the field; a name telex.yaml has: 409;
//    exactly the expanded request reaches the provider, before and after a change;
//  - a stored preset shadowed by one of telex.yaml: the file's wins, said at start;
//  - PostgreSQL, two nodes: a preset created through one node or the CLI is served by
//    the other within 1 s, and a deletion likewise;
//  - issue 18: admin `models: [""]` is refused (400, param models), a zero-length
//    database file is refused by the CLI and by `telex serve`; after `telex keys revoke`
//    returns ("now get 401"), the key is refused.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { LATE_MS, SYNC_TIMEOUT_MS, TELEX_BIN, startMock, stopProcess, waitFor } from './lib/proc.js';
import { SANITIZER_ENV, baseConfig, entriesSince, lastSeq, msgs, startGateway, stopChecked, tmpDir } from './lib/relay.js';
import { skipReason, startPostgres } from './lib/postgres.js';

const ADMIN = 'admin-token-0123456789-SECRET';
const pgSkip = skipReason();
const auth = (key) => ({ authorization: `Bearer ${key}` });

function cli(args, db) {
  const r = spawnSync(TELEX_BIN, args, { env: { ...process.env, TELEX_DB: db, ...SANITIZER_ENV }, encoding: 'utf8', timeout: SYNC_TIMEOUT_MS });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const FILE_PRESET = { name: 'summary', model: 'gpt-relay', system: 'From the file.', template: 'File: {{content}}' };

let pg;
let mock;

before(async () => {
  mock = await startMock([], { env: SANITIZER_ENV });
  if (!pgSkip) pg = await startPostgres();
});

after(async () => {
  await stopProcess(mock);
  await pg?.destroy();
});

async function node(db) {
  const dir = tmpDir();
  const config = baseConfig(mock.url, {
    store: { flush_interval_seconds: 0.05, spill_path: path.join(dir, 'ledger.spill') },
    presets: [FILE_PRESET],
  });
  return startGateway(config, { dir, env: { TELEX_DB: db, TELEX_ADMIN_TOKEN: ADMIN } });
}

async function admin(n, method, p, body) {
  const r = await fetch(`${n.url}${p}`, {
    method,
    headers: { ...auth(ADMIN), ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

// POST /v1/presets/NAME; returns the status and the body the provider got.
async function usePreset(n, name, content = 'hello') {
  const seq = await lastSeq(mock);
  const r = await fetch(`${n.url}/v1/presets/${name}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ content, stream: false, mock: { tokens: 1 } }),
  });
  await r.text();
  if (r.status !== 200) return { status: r.status };
  const [entry] = await entriesSince(mock, seq);
  return { status: r.status, body: entry.body };
}

async function dbFor(backend, name) {
  return backend === 'postgresql' ? pg.createDatabase(name) : path.join(tmpDir(), 'telex.db');
}

for (const backend of ['sqlite', 'postgresql']) {
  describe(`stored presets (${backend})`, () => {
    test('the admin API creates, lists, changes and deletes presets; the provider gets the expansion', async (t) => {
      if (backend === 'postgresql' && pgSkip) return t.skip(pgSkip);
      const db = await dbFor(backend, 'presets_admin');
      const a = await node(db);
      try {
        let r = await admin(a, 'POST', '/admin/presets', { name: 'short', model: 'gpt-relay', system: 'Be {{tone}}.', variables: { tone: 'brief' }, parameters: { temperature: 0.25 } });
        assert.equal(r.status, 201, JSON.stringify(r.json));
        assert.equal(r.json.source, 'store');
        let u = await usePreset(a, 'short');
        assert.equal(u.status, 200);
        assert.deepEqual(u.body.messages, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello' }]);
        assert.equal(u.body.temperature, 0.25);

        r = await admin(a, 'GET', '/admin/presets');
        assert.equal(r.status, 200);
        assert.deepEqual(r.json.data.map((p) => [p.name, p.source]), [['summary', 'config'], ['short', 'store']]);
        r = await admin(a, 'GET', '/admin/presets/summary');
        assert.equal(r.json.source, 'config');
        const list = await (await fetch(`${a.url}/v1/presets`)).json();
        assert.deepEqual(list.data.map((p) => p.id).sort(), ['short', 'summary']);

        r = await admin(a, 'PATCH', '/admin/presets/short', { system: 'Be {{tone}}!', variables: null });
        assert.equal(r.status, 200, JSON.stringify(r.json));
        assert.equal(r.json.variables, undefined);
        u = await usePreset(a, 'short');
        assert.equal(u.status, 400, 'the default variable is gone: {{tone}} is missing');

        // mistakes: 400 naming the field, 409 for names taken, 404
        const bad = [
          [{ name: 'x', model: 'gpt-relay', parameters: { temperature: 5 } }, 'parameters.temperature'],
          [{ name: 'x', model: 'no-such-model' }, 'model'],
          [{ name: 'x', model: 'preset:short' }, 'model'],
          [{ name: 'x y', model: 'gpt-relay' }, 'name'],
          [{ name: 'x', model: 'gpt-relay', template: '{{ oops' }, 'template'],
          [{ name: 'x', model: 'gpt-relay', colour: 'red' }, 'colour'],
          [{ name: 'x', model: 'gpt-relay', parameters: { messages: [] } }, 'parameters.messages'],
        ];
        for (const [body, param] of bad) {
          r = await admin(a, 'POST', '/admin/presets', body);
          assert.equal(r.status, 400, JSON.stringify(body));
          assert.equal(r.json.error.param, param, JSON.stringify(r.json));
        }
        assert.equal((await admin(a, 'POST', '/admin/presets', { name: 'short', model: 'gpt-relay' })).status, 409);
        r = await admin(a, 'POST', '/admin/presets', { name: 'summary', model: 'gpt-relay' });
        assert.equal(r.status, 409);
        assert.match(r.json.error.message, /telex.yaml already has a preset named "summary"/);
        assert.equal((await admin(a, 'PATCH', '/admin/presets/summary', { system: 'x' })).status, 409);
        assert.equal((await admin(a, 'PATCH', '/admin/presets/short', { name: 'other' })).status, 400);
        assert.equal((await admin(a, 'GET', '/admin/presets/nope')).status, 404);

        r = await admin(a, 'DELETE', '/admin/presets/short');
        assert.equal(r.status, 200);
        assert.equal((await usePreset(a, 'short')).status, 404);
        assert.equal((await admin(a, 'DELETE', '/admin/presets/short')).status, 404);
      } finally {
        await stopChecked(a);
      }
    });

    test('a preset of telex.yaml wins over a stored one of the same name (said at start)', async (t) => {
      if (backend === 'postgresql' && pgSkip) return t.skip(pgSkip);
      const db = await dbFor(backend, 'presets_shadow');
      const r = cli(['presets', 'create', 'summary', '--model', 'gpt-relay', '--system', 'From the store.'], db);
      assert.equal(r.code, 0, r.err);
      const a = await node(db);
      try {
        assert.match(a.stderr(), /"msg":"a preset in telex.yaml overrides the stored preset of the same name","preset":"summary"/);
        const u = await usePreset(a, 'summary', 'text');
        assert.deepEqual(u.body.messages, [{ role: 'system', content: 'From the file.' }, { role: 'user', content: 'File: text' }]);
        const list = await admin(a, 'GET', '/admin/presets');
        assert.deepEqual(list.json.data.map((p) => [p.name, p.source, p.shadowed ?? false]), [['summary', 'config', false], ['summary', 'store', true]]);
      } finally {
        await stopChecked(a);
      }
    });
  });
}

describe('stored presets on PostgreSQL reach every node within 1 s', () => {
  test('created through one node, and with the CLI, served by the other; deletions too', async (t) => {
    if (pgSkip) return t.skip(pgSkip);
    const db = await pg.createDatabase('presets_nodes');
    const a = await node(db);
    const b = await node(db);
    try {
      assert.equal((await usePreset(b, 'shared')).status, 404);
      const r = await admin(a, 'POST', '/admin/presets', { name: 'shared', model: 'gpt-relay', system: 'Shared.' });
      assert.equal(r.status, 201);
      const t0 = Date.now();
      await waitFor(async () => (await usePreset(b, 'shared')).status === 200, { timeoutMs: 1000 + LATE_MS, message: 'node b serves the preset' });
      t.diagnostic(`node b served the new preset ${Date.now() - t0} ms after node a created it`);
      const c = cli(['presets', 'create', 'from-cli', '--model', 'gpt-relay', '--template', 'CLI: {{content}}'], db);
      assert.equal(c.code, 0, c.err);
      for (const n of [a, b]) {
        await waitFor(async () => (await usePreset(n, 'from-cli')).status === 200, { timeoutMs: 1000 + LATE_MS, message: 'both nodes serve the CLI preset' });
      }
      assert.deepEqual((await usePreset(b, 'from-cli', 'x')).body.messages, [{ role: 'user', content: 'CLI: x' }]);
      assert.equal(cli(['presets', 'delete', 'shared'], db).code, 0);
      for (const n of [a, b]) {
        await waitFor(async () => (await usePreset(n, 'shared')).status === 404, { timeoutMs: 1000 + LATE_MS, message: 'the deletion reaches both nodes' });
      }
    } finally {
      await stopChecked(a);
      await stopChecked(b);
    }
  });
});

describe('issue 18: the store refuses what would silently open it up', () => {
  test('admin models [""] is refused with 400 naming the field (it was stored as "all models")', async () => {
    const a = await node(path.join(tmpDir(), 'telex.db'));
    try {
      for (const models of [[''], ['gpt-relay', ''], '', ['a,,b']]) {
        const r = await admin(a, 'POST', '/admin/keys', { name: 'k', models });
        assert.equal(r.status, 400, JSON.stringify(models));
        assert.equal(r.json.error.param, 'models');
        assert.match(r.json.error.message, /an empty model name/);
      }
      const ok = await admin(a, 'POST', '/admin/keys', { name: 'k', models: ['gpt-relay'] });
      assert.equal(ok.status, 201);
      assert.equal((await admin(a, 'PATCH', '/admin/keys/k', { models: [''] })).status, 400);
      assert.deepEqual((await admin(a, 'GET', '/admin/keys/k')).json.models, ['gpt-relay']);
    } finally {
      await stopChecked(a);
    }
    const r = cli(['keys', 'create', '--name', 'x', '--models', ''], path.join(tmpDir(), 'telex.db'));
    assert.equal(r.code, 65);
    assert.match(r.err, /--models: an empty model name/);
  });

  test('a zero-length database file is refused, not taken for a new database', async () => {
    const db = path.join(tmpDir(), 'telex.db');
    fs.writeFileSync(db, '');
    const r = cli(['keys', 'list'], db);
    assert.equal(r.code, 69);
    assert.match(r.err, /the file is empty \(0 bytes\), not a telex database; restore it from a backup, or remove it/);
    const serve = spawnSync(TELEX_BIN, ['serve', '--listen', '127.0.0.1:0'], { env: { ...process.env, TELEX_DB: db, ...SANITIZER_ENV }, encoding: 'utf8', timeout: 20000 });
    assert.notEqual(serve.status, 0);
    assert.match(serve.stderr, /the file is empty \(0 bytes\)/);
    assert.equal(fs.statSync(db).size, 0, 'the file is left as it was');
  });

  test('after `telex keys revoke` says "now get 401", the running server refuses the key', async () => {
    const db = path.join(tmpDir(), 'telex.db');
    const made = cli(['keys', 'create', '--name', 'soon-gone'], db);
    assert.equal(made.code, 0, made.err);
    const key = made.out.trim();
    cli(['keys', 'create', '--name', 'stays'], db);
    const a = await node(db);
    const ask = async () => (await fetch(`${a.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth(key) },
      body: JSON.stringify({ model: 'gpt-relay', messages: msgs(), stream: false, mock: { tokens: 1 } }),
    })).status;
    try {
      assert.equal(await ask(), 200);
      const r = cli(['keys', 'revoke', 'soon-gone'], db);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /requests with it now get 401/);
      assert.equal(await ask(), 401);
    } finally {
      await stopChecked(a);
    }
  });
});
