// tests/integration/hardening_endpoints.test.js — what callers without a key can read
// while keys exist, and metric labels clients cannot grow (issue 18, item 9, HTTP parts).
//
// With keys: GET /metrics needs the admin token or metrics.token; GET /v1/models and
// GET /v1/presets need a key. Without keys (anonymous loopback) they stay open. Model
// names a client invents (404) are counted under one "_other_" label, however many.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { SYNC_TIMEOUT_MS, TELEX_BIN } from './lib/proc.js';
import { SANITIZER_ENV, baseConfig, chatBody, startRelay, tmpDir } from './lib/relay.js';

function createKey(dbPath, name) {
  const r = spawnSync(TELEX_BIN, ['keys', 'create', '--name', name], {
    env: { ...process.env, TELEX_DB: dbPath, ...SANITIZER_ENV },
    encoding: 'utf8',
    timeout: SYNC_TIMEOUT_MS,
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

const ADMIN = 'admin-token-hardening-0123456789';
const SCRAPER = 'metrics-token-hardening-0123456789';
const bearer = (k) => ({ authorization: `Bearer ${k}` });

describe('with keys', () => {
  let relay;
  let key;
  before(async () => {
    const dbPath = path.join(tmpDir(), 'telex.db');
    key = createKey(dbPath, 'alice');
    relay = await startRelay({
      env: { TELEX_DB: dbPath, TELEX_ADMIN_TOKEN: ADMIN },
      config: (mockUrl) =>
        baseConfig(mockUrl, {
          store: { path: dbPath },
          metrics: { token: SCRAPER },
          presets: [{ name: 'p1', model: 'gpt-relay' }],
        }),
    });
  });
  after(async () => {
    if (relay) await relay.stop();
  });

  test('GET /metrics: 401 without a token or with an API key; the admin token and metrics.token read it', async () => {
    for (const headers of [{}, bearer(key), bearer('wrong-token-0123456789')]) {
      const r = await fetch(`${relay.url}/metrics`, { headers });
      assert.equal(r.status, 401);
      assert.equal((await r.json()).error.code, 'invalid_admin_token');
    }
    for (const token of [ADMIN, SCRAPER]) {
      const r = await fetch(`${relay.url}/metrics`, { headers: bearer(token) });
      assert.equal(r.status, 200);
      const text = await r.text();
      assert.match(text, /^telex_active_streams /m);
      assert.match(text, /^telex_connections_open \d+$/m);
      assert.match(text, /^telex_request_body_bytes_in_flight \d+$/m);
      assert.match(text, /^telex_guard_refusals_total \d+$/m);
    }
  });

  test('GET /v1/models and /v1/presets need a key', async () => {
    for (const p of ['/v1/models', '/v1/presets', '/models', '/presets']) {
      const anon = await fetch(`${relay.url}${p}`);
      assert.equal(anon.status, 401, p);
      assert.equal((await anon.json()).error.code, 'missing_api_key');
      assert.equal((await fetch(`${relay.url}${p}`, { headers: bearer('tlx_' + 'x'.repeat(43)) })).status, 401, p);
      const ok = await fetch(`${relay.url}${p}`, { headers: bearer(key) });
      assert.equal(ok.status, 200, p);
      assert.equal((await ok.json()).object, 'list');
    }
    // Anthropic's SDKs list models with x-api-key
    const anthropic = await fetch(`${relay.url}/v1/models`, { headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01' } });
    assert.equal(anthropic.status, 200);
    await anthropic.text();
  });

  test('invented model names do not grow the metrics: one _other_ label', async () => {
    const names = Array.from({ length: 200 }, (_, i) => `invented-model-${i}-${'q'.repeat(40)}`);
    for (let i = 0; i < names.length; i += 20) {
      await Promise.all(
        names.slice(i, i + 20).map(async (model) => {
          const r = await fetch(`${relay.url}/v1/chat/completions`, {
            method: 'POST',
            headers: { ...bearer(key), 'content-type': 'application/json' },
            body: JSON.stringify({ ...chatBody({ tokens: 1 }), model }),
          });
          assert.equal(r.status, 404);
          await r.text();
        }),
      );
    }
    const ok = await fetch(`${relay.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...bearer(key), 'content-type': 'application/json' },
      body: JSON.stringify(chatBody({ tokens: 1 }, { stream: false })),
    });
    assert.equal(ok.status, 200);
    const text = await (await fetch(`${relay.url}/metrics`, { headers: bearer(SCRAPER) })).text();
    assert.doesNotMatch(text, /invented-model/);
    const other = /^telex_requests_total\{status="404",model="_other_",provider="none"\} (\d+)$/m.exec(text);
    assert.ok(other, text.slice(0, 2000));
    assert.ok(Number(other[1]) >= 200, other[0]);
    assert.match(text, /^telex_requests_total\{status="200",model="gpt-relay",provider="mock"\} \d+$/m);
  });
});

describe('without keys (anonymous loopback)', () => {
  let relay;
  before(async () => {
    relay = await startRelay();
  });
  after(async () => {
    if (relay) await relay.stop();
  });

  test('/metrics, /v1/models and /v1/presets stay open', async () => {
    for (const p of ['/metrics', '/v1/models', '/v1/presets']) {
      const r = await fetch(`${relay.url}${p}`);
      assert.equal(r.status, 200, p);
      await r.text();
    }
  });
});
