// tests/integration/models.test.js — GET /v1/models lists what the catch-all "*" reaches.
//
//  - the configured models first, then the providers' own lists (an openai-kind `telex mock`
//    and an anthropic-kind one, each asked with its key headers), no id twice, OpenAI's shape;
//    a "*" route with its own `model:` is not asked; a listed name really is served;
//  - the lists are cached: more calls (on either worker) do not ask the providers again;
//  - with no config file, OPENAI_BASE_URL / OPENAI_API_KEY (README's way) lists the provider's
//    models next to `demo`;
//  - a provider that is down or refuses the key: still 200 with the configured models, one
//    warning line naming the provider (never the key), and no new attempt right away;
//  - a provider that never answers: a request waiting for it is answered at shutdown, and
//    telex exits cleanly (no sanitizer report).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startMock, startServe, stopProcess, waitFor } from './lib/proc.js';
import { API_KEY, SANITIZER_ENV, entriesSince, logBarrier, startGateway, startStub, stopChecked } from './lib/relay.js';

const ANTHROPIC_KEY = 'sk-ant-models-SECRET-0123456789';
const procs = [];
after(async () => {
  for (const p of procs) await stopProcess(p);
});

async function mock(args) {
  const m = await startMock(args, { env: SANITIZER_ENV });
  procs.push(m);
  return m;
}

async function models(url) {
  const r = await fetch(`${url}/v1/models`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  const body = await r.json();
  assert.equal(body.object, 'list');
  for (const m of body.data) {
    assert.deepEqual(Object.keys(m), ['id', 'object', 'created', 'owned_by']);
    assert.equal(m.object, 'model');
  }
  return body.data;
}

const modelCalls = async (m) => (await entriesSince(m, 0)).filter((e) => e.path.startsWith('/v1/models'));

describe('the catch-all’s providers are listed', () => {
  let openai;
  let anthropic;
  let serve;
  test('configured first, then each provider’s list, no id twice, asked with the provider’s key', async () => {
    openai = await mock(['--models', 'gpt-named,up-a,up-b']);
    anthropic = await mock(['--models', 'claude-c,up-a']);
    serve = await startGateway({
      workers: 2,
      providers: [
        { name: 'oa', kind: 'openai', base_url: `${openai.url}/v1`, api_key: API_KEY },
        { name: 'renamer', kind: 'openai', base_url: `${openai.url}/v1`, api_key: API_KEY },
        { name: 'anth', kind: 'anthropic', base_url: anthropic.url, api_key: ANTHROPIC_KEY },
        { name: 'demo', kind: 'demo' },
      ],
      models: [
        { name: 'gpt-named', providers: [{ provider: 'oa', model: 'upstream-named' }] },
        { name: 'demo', providers: ['demo'] },
        { name: '*', providers: ['oa', { provider: 'renamer', model: 'one-model' }, 'anth', 'oa'] },
      ],
    });
    procs.push(serve);
    const list = await models(serve.url);
    assert.deepEqual(
      list.map((m) => [m.id, m.owned_by, m.created]),
      [
        ['gpt-named', 'oa', 0],
        ['demo', 'demo', 0],
        ['up-a', 'telex-mock', 1700000000],
        ['up-b', 'telex-mock', 1700000000],
        ['claude-c', 'anth', 1700000000], // Anthropic names no owner; created_at converted
      ],
    );
    const [o] = await modelCalls(openai);
    assert.equal((await modelCalls(openai)).length, 1, 'the openai provider was asked once (not for "renamer")');
    assert.equal(o.method, 'GET');
    assert.equal(o.path, '/v1/models');
    assert.equal(o.headers.authorization, 'Bearer [redacted]');
    const [a, ...more] = await modelCalls(anthropic);
    assert.equal(more.length, 0);
    assert.equal(a.path, '/v1/models?limit=1000');
    assert.equal(a.headers['x-api-key'], '[redacted]');
    assert.equal(a.headers['anthropic-version'], '2023-06-01');
    await logBarrier(serve); // the fetches' lines are on stderr (written by the log thread)
    const fetched = serve.logs.filter((l) => l.msg === 'models fetched');
    assert.deepEqual(fetched.map((l) => [l.provider, l.models]).sort(), [['anth', 2], ['oa', 3]]);
    assert.ok(!serve.stderr().includes(API_KEY) && !serve.stderr().includes(ANTHROPIC_KEY), 'no key in the logs');
  });

  test('cached: more calls, on either worker, do not ask the providers again', async () => {
    const first = await models(serve.url);
    const again = await Promise.all(Array.from({ length: 6 }, () => models(serve.url)));
    for (const l of again) assert.deepEqual(l, first);
    assert.equal((await modelCalls(openai)).length, 1);
    assert.equal((await modelCalls(anthropic)).length, 1);
  });

  test('a listed name is served through the catch-all', async () => {
    const r = await fetch(`${serve.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'up-b', messages: [{ role: 'user', content: 'hi' }], mock: { tokens: 3 } }),
    });
    assert.equal(r.status, 200);
    const chats = (await entriesSince(openai, 0)).filter((e) => e.path === '/v1/chat/completions');
    assert.equal(chats.at(-1).body.model, 'up-b');
  });
});

test('no config file: OPENAI_BASE_URL and OPENAI_API_KEY list the provider’s models next to demo', async () => {
  const upstream = await mock(['--models', 'gpt-4o-mini,o3']);
  const serve = await startServe([], {
    env: { TELEX_CONFIG: '', OPENAI_BASE_URL: `${upstream.url}/v1`, OPENAI_API_KEY: API_KEY, ...SANITIZER_ENV },
  });
  procs.push(serve);
  assert.deepEqual(
    (await models(serve.url)).map((m) => m.id),
    ['demo', 'gpt-4o-mini', 'o3'],
  );
  await stopChecked(serve);
});

describe('a provider that fails does not fail /v1/models', () => {
  test('down: 200 with the configured models, one warning, no retry at once', async () => {
    const upstream = await mock([]);
    const url = upstream.url;
    await stopProcess(upstream); // nothing listens there now
    const serve = await startGateway({
      providers: [
        { name: 'gone', kind: 'openai', base_url: `${url}/v1`, api_key: API_KEY, timeout_seconds: 2 },
        { name: 'demo', kind: 'demo' },
      ],
      models: [
        { name: 'demo', providers: ['demo'] },
        { name: '*', providers: ['gone'] },
      ],
    });
    procs.push(serve);
    assert.deepEqual((await models(serve.url)).map((m) => m.id), ['demo']);
    assert.deepEqual((await models(serve.url)).map((m) => m.id), ['demo']);
    // log lines reach stderr through telex's log writer thread: wait for the first,
    // and for the answer's own request line, written after any second warning would be
    await serve.waitForLog((l) => l.msg === 'models fetch failed');
    await waitFor(() => serve.logs.filter((l) => l.msg === 'request' && l.path === '/v1/models').length === 2, { message: 'both request lines' });
    const warnings = serve.logs.filter((l) => l.msg === 'models fetch failed');
    assert.equal(warnings.length, 1, 'the failure is remembered: no second attempt right away');
    assert.equal(warnings[0].level, 'warn');
    assert.equal(warnings[0].provider, 'gone');
    assert.match(warnings[0].error, /cannot reach the provider/);
    await stopChecked(serve);
  });

  test('a refused key: 200 with the configured models, the status in the log', async () => {
    const stub = await startStub((req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}');
    });
    const serve = await startGateway({
      providers: [{ name: 'wrongkey', kind: 'openai', base_url: `${stub.url}/v1`, api_key: API_KEY }],
      models: [
        { name: 'named', providers: ['wrongkey'] },
        { name: '*', providers: ['wrongkey'] },
      ],
    });
    procs.push(serve);
    assert.deepEqual((await models(serve.url)).map((m) => m.id), ['named']);
    assert.equal(stub.requests.length, 1);
    assert.equal(stub.requests[0].headers.authorization, `Bearer ${API_KEY}`);
    const w = await serve.waitForLog((l) => l.msg === 'models fetch failed'); // written by the log thread
    assert.equal(w.provider, 'wrongkey');
    assert.match(w.error, /HTTP 401/);
    assert.ok(!serve.stderr().includes(API_KEY));
    await stopChecked(serve);
    await stub.close();
  });

  test('never answers: a waiting request is answered at shutdown, and telex exits cleanly', async () => {
    const stub = await startStub(() => {}); // reads the request, never answers
    const serve = await startGateway({
      providers: [
        { name: 'silent', kind: 'openai', base_url: `${stub.url}/v1` },
        { name: 'demo', kind: 'demo' },
      ],
      models: [
        { name: 'demo', providers: ['demo'] },
        { name: '*', providers: ['silent'] },
      ],
    });
    procs.push(serve);
    const pending = models(serve.url);
    await waitFor(() => stub.requests.length === 1, { message: 'the models request upstream' });
    const stopped = stopChecked(serve);
    assert.deepEqual((await pending).map((m) => m.id), ['demo']);
    await stopped;
    await stub.close();
  });
});
