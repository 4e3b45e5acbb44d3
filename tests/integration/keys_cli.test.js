// tests/integration/keys_cli.test.js — `telex keys` and `telex usage` as an
// operator runs them, against a real SQLite file in a temp directory.
//
//  - create prints the key once, alone on stdout; the database holds only its
//    SHA-256 (the key's bytes appear nowhere in the file or its WAL);
//  - list/show never print a key; update and revoke change what show says;
//  - the store is found through --db, TELEX_DB, or a config's store.path;
//  - they need only the database: unset provider keys or admin token do not stop them;
//  - every mistake exits with its sysexits code and one clear line: 64 usage,
//    65 bad value or no such key, 69 a corrupted/unusable database, 78 config;
//  - several CLIs creating keys at once all succeed (SQLite locking);
//  - `telex usage` prints totals and the GET /v1/usage JSON.
//
// TELEX_BIN is the telex binary (default build/telex).
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { SYNC_TIMEOUT_MS } from './lib/proc.js';

const BIN = process.env.TELEX_BIN ?? 'build/telex';
const KEY_RE = /^tlx_[0-9A-Za-z]{43}$/;

const dirs = [];
process.on('exit', () => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function tmpDir() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'telex-keys-'));
  dirs.push(d);
  return d;
}

// Runs telex with args; env is merged over a clean environment (no TELEX_*).
// `unset` names further variables to leave out.
function run(args, { env = {}, input, unset = [] } = {}) {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('TELEX_') && k !== 'XDG_STATE_HOME' && !unset.includes(k)),
  );
  const r = spawnSync(BIN, args, { env: { ...base, ...env }, input, encoding: 'utf8', timeout: SYNC_TIMEOUT_MS });
  if (r.error) throw r.error;
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function runAsync(args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

function db() {
  const d = tmpDir();
  return { dir: d, path: path.join(d, 'state', 'telex.db') };
}

function create(dbPath, name, extra = []) {
  const r = run(['keys', 'create', '--db', dbPath, '--name', name, ...extra]);
  assert.equal(r.code, 0, r.err);
  const key = r.out.trim();
  assert.match(key, KEY_RE);
  assert.equal(r.out, `${key}\n`, 'stdout holds the key and nothing else');
  return { key, err: r.err };
}

test('create prints the key once; only its SHA-256 is stored', () => {
  const { path: p } = db();
  const { key, err } = create(p, 'alice', ['--budget-usd', '5', '--rpm', '60', '--tpm', '10000', '--models', 'demo,gpt-4o*,preset:summary', '--expires', '30d']);
  assert.match(err, /created key 1 "alice"\. The line above is the key: store it now, telex shows it only once\./);
  assert.ok(!err.includes(key));

  // the key's text is nowhere in the database files; its hash is
  const files = fs.readdirSync(path.dirname(p)).filter((f) => f.startsWith('telex.db'));
  assert.ok(files.includes('telex.db'));
  const hash = crypto.createHash('sha256').update(key).digest();
  let sawHash = false;
  for (const f of files) {
    const bytes = fs.readFileSync(path.join(path.dirname(p), f));
    assert.equal(bytes.indexOf(Buffer.from(key)), -1, `${f} must not contain the key`);
    assert.equal(bytes.indexOf(Buffer.from(key.slice(4))), -1, `${f} must not contain the key's secret part`);
    if (bytes.indexOf(hash) >= 0) sawHash = true;
  }
  assert.ok(sawHash, 'the SHA-256 of the key is stored');
  // the directory was created private
  assert.equal(fs.statSync(path.dirname(p)).mode & 0o777, 0o700);

  // show, list: never the key
  const show = run(['keys', 'show', 'alice', '--db', p]);
  assert.equal(show.code, 0, show.err);
  assert.ok(!show.out.includes(key));
  assert.match(show.out, /^id: +1$/m);
  assert.match(show.out, /^name: +alice$/m);
  assert.match(show.out, new RegExp(`^key: +${key.slice(0, 12)}\\.\\.\\. \\(only the start is kept in clear\\)$`, 'm'));
  assert.match(show.out, /^status: +active$/m);
  assert.match(show.out, /^budget: +\$5\.00 \(spent \$0\.000000, 0\.0%\)$/m);
  assert.match(show.out, /^rpm: +60 requests per minute$/m);
  assert.match(show.out, /^tpm: +10000 tokens per minute$/m);
  assert.match(show.out, /^models: +demo,gpt-4o\*,preset:summary$/m);
  const list = run(['keys', 'list', '--db', p]);
  assert.equal(list.code, 0);
  assert.ok(!list.out.includes(key));
  assert.match(list.out, /^ID +NAME +KEY +STATUS/);
  assert.match(list.out, /^1 +alice +tlx_\w{8}\.\.\. +active /m);

  const json = JSON.parse(run(['keys', 'list', '--json', '--db', p]).out);
  assert.equal(json.length, 1);
  assert.deepEqual(Object.keys(json[0]), ['id', 'object', 'name', 'prefix', 'status', 'created_at', 'expires_at', 'revoked_at', 'last_used_at', 'budget_usd', 'spent_usd', 'rpm', 'tpm', 'max_concurrent', 'models']);
  assert.equal(json[0].prefix, key.slice(0, 12));
  assert.deepEqual(json[0].models, ['demo', 'gpt-4o*', 'preset:summary']);
  assert.equal(json[0].budget_usd, 5);
  const expires = Date.parse(json[0].expires_at);
  assert.ok(Math.abs(expires - (Date.now() + 30 * 86400e3)) < 120e3, 'expires in 30 days');
});

test('create --json includes the key once; two keys never collide', () => {
  const { path: p } = db();
  const r = run(['keys', 'create', '--db', p, '--name', 'bot', '--json']);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.match(j.key, KEY_RE);
  assert.equal(j.name, 'bot');
  assert.equal(j.status, 'active');
  assert.equal(j.budget_usd, null);
  const other = create(p, 'bot2').key;
  assert.notEqual(other, j.key);
});

test('update and revoke', () => {
  const { path: p } = db();
  create(p, 'alice', ['--budget-usd', '1']);
  let r = run(['keys', 'update', 'alice', '--db', p, '--budget-usd', 'none', '--rpm', '5', '--models', 'all', '--expires', '2099-01-01']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^budget: +none \(spent \$0\.000000\)$/m);
  assert.match(r.out, /^rpm: +5 requests per minute$/m);
  assert.match(r.out, /^models: +all$/m);
  assert.match(r.out, /^expires: +2099-01-01 00:00 UTC$/m);
  r = run(['keys', 'update', '1', '--db', p, '--name', 'alice-2', '--json']);
  assert.equal(r.code, 0, r.err);
  assert.equal(JSON.parse(r.out).name, 'alice-2');
  r = run(['keys', 'update', '1', '--db', p]);
  assert.equal(r.code, 64);
  assert.match(r.err, /nothing to change/);

  r = run(['keys', 'revoke', 'alice-2', '--db', p]);
  assert.equal(r.code, 0);
  assert.equal(r.out, '');
  assert.match(r.err, /revoked key 1 "alice-2"; requests with it now get 401/);
  r = run(['keys', 'revoke', '1', '--db', p]);
  assert.equal(r.code, 0);
  assert.match(r.err, /was already revoked/);
  assert.match(run(['keys', 'show', '1', '--db', p]).out, /^status: +revoked$/m);
  // the name is free again
  create(p, 'alice-2');
  const json = JSON.parse(run(['keys', 'list', '--json', '--db', p]).out);
  assert.deepEqual(json.map((k) => [k.id, k.status]), [[1, 'revoked'], [2, 'active']]);
});

test('the store is found through --db, TELEX_DB or store.path', () => {
  const { dir, path: p } = db();
  create(p, 'one');
  // TELEX_DB
  let r = run(['keys', 'list'], { env: { TELEX_DB: p } });
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^1 +one /m);
  // a config's store.path
  const cfg = path.join(dir, 'telex.yaml');
  fs.writeFileSync(cfg, `store:\n  path: ${p}\n`);
  r = run(['keys', 'list', '--config', cfg]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^1 +one /m);
  r = run(['keys', 'list'], { env: { TELEX_CONFIG: cfg } });
  assert.match(r.out, /^1 +one /m);
  // the default: $XDG_STATE_HOME/telex/telex.db
  const xdg = tmpDir();
  r = run(['keys', 'create', '--name', 'x'], { env: { XDG_STATE_HOME: xdg } });
  assert.equal(r.code, 0, r.err);
  assert.ok(fs.existsSync(path.join(xdg, 'telex', 'telex.db')));
});

test('keys and usage need only the database: unset provider keys and admin token do not stop them', () => {
  const { dir, path: p } = db();
  const cfg = path.join(dir, 'telex.yaml');
  fs.writeFileSync(
    cfg,
    'providers:\n' +
      '  - name: openai\n    kind: openai\n    api_key_env: OPENAI_API_KEY\n' +
      '  - name: anthropic\n    kind: anthropic\n    api_key_env: ANTHROPIC_API_KEY\n' +
      'models:\n  - name: m\n    providers: [openai, anthropic]\n' +
      `auth:\n  admin_token_env: TELEX_ADMIN_TOKEN\nstore:\n  path: ${p}\n` +
      `tls:\n  cert: ${dir}/no-such-cert.pem\n  key: ${dir}/no-such-key.pem\n`,
  );
  const unset = ['OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'OPENAI_BASE_URL'];
  let r = run(['keys', 'create', '--name', 'ops', '--config', cfg], { unset });
  assert.equal(r.code, 0, r.err);
  assert.match(r.out.trim(), KEY_RE);
  r = run(['keys', 'list', '--config', cfg], { unset, env: { TELEX_LISTEN: 'nonsense', TELEX_WORKERS: 'x' } });
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^1 +ops /m);
  r = run(['usage', '--config', cfg], { unset, env: { TELEX_CONFIG: cfg } });
  assert.equal(r.code, 0, r.err);
  r = run(['usage'], { unset, env: { TELEX_CONFIG: cfg } });
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^total +0 /m);
  // without --config, the built-in defaults need no key either
  r = run(['keys', 'list', '--db', p], { unset });
  assert.equal(r.code, 0, r.err);

  // serve uses them all: it names every unset variable in one line (and exits 78)
  fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace(/tls:[^]*$/, ''));
  r = run(['serve', '--config', cfg, '--listen', '127.0.0.1:0'], { unset });
  assert.equal(r.code, 78, r.err);
  assert.equal(
    r.err,
    `telex serve: ${cfg}:4:18: 3 environment variables are not set: ` +
      '"OPENAI_API_KEY" (providers[0].api_key_env, line 4), "ANTHROPIC_API_KEY" (providers[1].api_key_env, line 7), ' +
      '"TELEX_ADMIN_TOKEN" (auth.admin_token_env, line 12)\n',
  );
});

test('mistakes: usage 64, values and missing keys 65', () => {
  const { path: p } = db();
  create(p, 'alice');
  const cases = [
    [['keys'], 64, /usage: telex keys create/],
    [['keys', 'destroy', '--db', p], 64, /unknown command 'destroy' \(create, list, show, revoke, update\)/],
    [['keys', 'create', '--db', p], 64, /--name is required/],
    [['keys', 'create', '--db', p, '--name'], 64, /--name needs a value/],
    [['keys', 'create', '--db', p, '--name', 'x', '--colour', 'red'], 64, /unknown option '--colour'/],
    [['keys', 'show', '--db', p], 64, /which key\? give its id or name/],
    [['keys', 'show', 'a', 'b', '--db', p], 64, /unexpected argument 'b'/],
    [['keys', 'list', '--rpm', '5', '--db', p], 64, /are for create and update/],
    [['keys', 'create', '--db', p, '--name', 'alice'], 65, /an active key is already named "alice"/],
    [['keys', 'create', '--db', p, '--name', '42'], 65, /--name: a key name cannot be only digits/],
    [['keys', 'create', '--db', p, '--name', 'x', '--budget-usd', '-1'], 65, /--budget-usd: expected a number of US dollars/],
    [['keys', 'create', '--db', p, '--name', 'x', '--budget-usd', 'lots'], 65, /--budget-usd/],
    [['keys', 'create', '--db', p, '--name', 'x', '--rpm', '1.5'], 65, /--rpm: expected a whole number/],
    [['keys', 'create', '--db', p, '--name', 'x', '--tpm', '-3'], 65, /--tpm: expected a whole number/],
    [['keys', 'create', '--db', p, '--name', 'x', '--models', 'gpt 4'], 65, /--models: model "gpt 4": only letters/],
    [['keys', 'create', '--db', p, '--name', 'x', '--expires', '2001-01-01'], 65, /--expires: is in the past/],
    [['keys', 'create', '--db', p, '--name', 'x', '--expires', 'soon'], 65, /--expires: expected a date/],
    [['keys', 'show', 'nobody', '--db', p], 65, /no key named "nobody"/],
    [['keys', 'revoke', '77', '--db', p], 65, /no key with id 77/],
  ];
  for (const [args, code, re] of cases) {
    const r = run(args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re, args.join(' '));
    assert.equal(r.out, '', `${args.join(' ')} prints nothing on stdout`);
  }
  assert.equal(run(['keys', '--help']).code, 0);
  assert.match(run(['keys', 'create', '--help']).out, /--budget-usd X/);
  // nothing was created by the failed attempts
  assert.equal(JSON.parse(run(['keys', 'list', '--json', '--db', p]).out).length, 1);
});

test('a corrupted, foreign or unusable database fails with one clear line (69), a bad config with 78', () => {
  const d = tmpDir();
  const garbage = path.join(d, 'garbage.db');
  fs.writeFileSync(garbage, Buffer.alloc(8192, 0x41));
  let r = run(['keys', 'list', '--db', garbage]);
  assert.equal(r.code, 69);
  assert.equal(r.err, `telex keys: ${garbage}: reading the database: the database is corrupted (file is not a database); restore it from a backup or move it away\n`);

  // a real database whose pages were overwritten
  const { path: p } = db();
  for (let i = 0; i < 30; i++) create(p, `k${i}`, ['--models', Array(7).fill('m'.repeat(120)).join(',')]);
  run(['keys', 'list', '--db', p]); // checkpoint state does not matter
  const fd = fs.openSync(p, 'r+');
  fs.writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, 2 * 4096);
  fs.closeSync(fd);
  for (const f of fs.readdirSync(path.dirname(p))) if (f !== 'telex.db') fs.rmSync(path.join(path.dirname(p), f));
  r = run(['keys', 'list', '--db', p]);
  assert.equal(r.code, 69, r.err);
  assert.match(r.err, /the database is corrupted/);

  const plain = path.join(d, 'plain');
  fs.writeFileSync(plain, 'x');
  r = run(['keys', 'list', '--db', path.join(plain, 'telex.db')]);
  assert.equal(r.code, 69);
  assert.equal(r.err, `telex keys: ${path.join(plain, 'telex.db')}: ${plain} is not a directory\n`);
  r = run(['keys', 'list', '--db', d]);
  assert.equal(r.code, 69);
  assert.match(r.err, /is a directory; store\.path must name a file/);

  const cfg = path.join(d, 'bad.yaml');
  fs.writeFileSync(cfg, 'store:\n  pth: x\n');
  r = run(['keys', 'list', '--config', cfg]);
  assert.equal(r.code, 78);
  assert.equal(r.err, `telex keys: ${cfg}:2:3: store.pth: unknown key; did you mean "path"?\n`);
});

test('many CLIs creating keys at once all succeed', async () => {
  const { path: p } = db();
  create(p, 'first'); // the schema exists before the race
  const results = await Promise.all(Array.from({ length: 12 }, (_, i) => runAsync(['keys', 'create', '--db', p, '--name', `k${i}`], {})));
  const keys = new Set();
  for (const r of results) {
    assert.equal(r.code, 0, r.err);
    keys.add(r.out.trim());
  }
  assert.equal(keys.size, 12);
  const list = JSON.parse(run(['keys', 'list', '--json', '--db', p]).out);
  assert.equal(list.length, 13);
});

test('telex usage prints totals and the /v1/usage JSON', () => {
  const { path: p } = db();
  create(p, 'alice');
  let r = run(['usage', '--db', p]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^TOTAL +REQUESTS +PROMPT +COMPLETION +CACHED +REASONING +COST_USD$/m);
  assert.match(r.out, /^total +0 +0 +0 +0 +0 +0\.000000$/m);
  r = run(['usage', '--db', p, '--group-by', 'model', '--from', '2026-01-01', '--to', '2026-01-31', '--json']);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.object, 'usage');
  assert.equal(j.group_by, 'model');
  assert.equal(j.from, '2026-01-01T00:00:00Z');
  assert.equal(j.to, '2026-02-01T00:00:00Z');
  assert.deepEqual(j.data, []);
  assert.equal(j.total.requests, 0);
  r = run(['usage', '--db', p, '--key', 'alice', '--json']);
  assert.equal(r.code, 0, r.err);
  assert.equal(JSON.parse(r.out).key_id, 1);

  for (const [args, code, re] of [
    [['usage', '--db', p, '--group-by', 'week'], 64, /--group-by: expected key, model or day/],
    [['usage', '--db', p, '--from', 'monday'], 65, /--from: expected 2026-01-31/],
    [['usage', '--db', p, '--from', '2026-02-01', '--to', '2026-01-01'], 65, /--from must be before --to/],
    [['usage', '--db', p, '--key', 'bob'], 65, /--key: no key named "bob"/],
    [['usage', '--db', p, 'extra'], 64, /unexpected argument 'extra'/],
  ]) {
    const res = run(args);
    assert.equal(res.code, code, `${args.join(' ')}: ${res.err}`);
    assert.match(res.err, re);
  }
  assert.match(run(['usage', '--help']).out, /--group-by G/);
  assert.match(run(['--help']).out, /keys +create, list, show, revoke and update API keys/);
});
