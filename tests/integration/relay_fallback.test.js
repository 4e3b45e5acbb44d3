// tests/integration/relay_fallback.test.js — a model's routes are tried in order until
// one starts streaming: a dead port, a connect timeout, a 429, a 5xx (also after the headers were committed
// at commit_timeout, as long as no chunk was sent) move on to the next route; a failure
// after the first chunk never does. A hand-written upstream (the "stub") plays the
// failing provider, keyed by the upstream model name each route sends; the real mock
// is the healthy one.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';

import { SYNC_TIMEOUT_MS } from './lib/proc.js';
import { contentOf, postChat } from './lib/sse.js';
import { LATE_MS, baseConfig, chatBody, entriesSince, lastSeq, logBarrier, requestLogs, startRelay, startStub } from './lib/relay.js';

let relay;
let stub;
let blackhole; // a listener whose accept queue is full: connects to it time out
const held = []; // the stub's 'slow-503' answers, waiting for release()
const release = () => {
  for (const answer of held.splice(0)) answer();
};

// Python, because node always accepts: listen(0), fill the queue, then never accept.
const BLACKHOLE_PY = `
import socket, sys, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)
port = s.getsockname()[1]; held = []
for i in range(8):
    c = socket.socket(); c.settimeout(0.2)
    try:
        c.connect(('127.0.0.1', port)); held.append(c)
    except Exception:
        break
print(port, flush=True)
time.sleep(600)
`;
const havePython = spawnSync('python3', ['-c', 'pass'], { timeout: SYNC_TIMEOUT_MS }).status === 0;

async function startBlackhole() {
  const child = spawn('python3', ['-c', BLACKHOLE_PY], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    child.stdout.once('data', (d) => resolve(Number(String(d).trim())));
    child.once('exit', (code) => reject(new Error(`blackhole exited ${code}`)));
  });
  return { child, port };
}

const chunk = (content, finish = null) =>
  `data: ${JSON.stringify({ id: 'stub', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content }, finish_reason: finish }] })}\n\n`;

const behaviours = {
  'rate-limited': (req, res) => {
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '9' });
    res.end('{"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}');
  },
  'server-error': (req, res) => {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end('{"error":{"message":"boom","type":"server_error","param":null,"code":null}}');
  },
  'bad-request': (req, res) => {
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end('{"error":{"message":"stub says no","type":"invalid_request_error","param":"messages","code":null}}');
  },
  // answers 503 once the test calls release() (after it saw telex commit), or after 10 s
  'slow-503': (req, res) => {
    const answer = () => {
      clearTimeout(timer);
      if (res.headersSent || res.destroyed) return;
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end('{"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}');
    };
    const timer = setTimeout(answer, 10000).unref();
    held.push(answer);
  },
  'one-then-cut': (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(chunk('Partial'));
    setTimeout(() => res.socket.destroy(), 50);
  },
};

before(async () => {
  if (havePython) blackhole = await startBlackhole();
  stub = await startStub((req, res, body) => {
    const model = JSON.parse(body).model;
    (behaviours[model] ?? behaviours['server-error'])(req, res);
  });
  relay = await startRelay({
    config: (mockUrl) => {
      const cfg = baseConfig(mockUrl);
      cfg.providers.push({ name: 'stub', kind: 'openai', base_url: `${stub.url}/v1`, api_key: 'sk-stub-key' });
      if (blackhole) {
        cfg.providers.push({ name: 'blackhole', kind: 'openai', base_url: `http://127.0.0.1:${blackhole.port}/v1`, timeout_seconds: 0.3 });
        cfg.models.push(
          { name: 'gpt-timeout', providers: [{ provider: 'blackhole', model: 'never' }, { provider: 'mock', model: 'after-timeout' }] },
          { name: 'gpt-timeout-only', providers: [{ provider: 'blackhole', model: 'never' }] },
        );
      }
      const twoStep = (name, stubModel) => ({
        name,
        providers: [
          { provider: 'stub', model: stubModel },
          { provider: 'mock', model: `after-${stubModel}` },
        ],
      });
      cfg.models.push(
        twoStep('gpt-429', 'rate-limited'),
        twoStep('gpt-500', 'server-error'),
        twoStep('gpt-400', 'bad-request'),
        twoStep('gpt-slow-503', 'slow-503'),
        twoStep('gpt-cut', 'one-then-cut'),
        {
          name: 'gpt-all-fail',
          providers: [{ provider: 'dead' }, { provider: 'stub', model: 'server-error' }, { provider: 'stub', model: 'rate-limited' }],
        },
        { name: 'gpt-slow-only', providers: [{ provider: 'stub', model: 'slow-503' }] },
      );
      return cfg;
    },
  });
});
after(async () => {
  if (relay) await relay.stop();
  if (stub) await stub.close();
  if (blackhole) blackhole.child.kill('SIGKILL');
});

async function chatLine(model) {
  return relay.serve.waitForLog((l) => l.msg === 'request' && l.model === model);
}

describe('before the first chunk, the next route serves', () => {
  test('a dead provider (connection refused) first', async () => {
    const since = await lastSeq(relay.mock);
    const direct = await postChat(relay.mock.url, { ...chatBody({ tokens: 4 }), model: 'x' });
    const r = await postChat(relay.url, chatBody({ tokens: 4 }, { model: 'gpt-fallback' }));
    assert.equal(r.status, 200);
    assert.equal(r.events.at(-1).data, '[DONE]');
    assert.equal(contentOf(r.events), contentOf(direct.events));
    const seen = await entriesSince(relay.mock, since);
    assert.equal(seen.at(-1).body.model, 'upstream-fallback');
    const line = await chatLine('gpt-fallback');
    assert.equal(line.provider, 'mock');
    assert.equal(line.fallbacks, 1);
    assert.equal(line.outcome, 'ok');
    assert.ok(relay.serve.logs.some((l) => l.msg === 'falling back' && l.from === 'dead' && l.error === 'connect'));
  });

  test('a connect timeout first (provider timeout_seconds 0.3)', { skip: havePython ? false : 'python3 is needed for a listener that never accepts' }, async () => {
    const t0 = performance.now();
    const r = await postChat(relay.url, chatBody({ tokens: 3 }, { model: 'gpt-timeout' }));
    assert.equal(r.status, 200);
    assert.equal(r.events.at(-1).data, '[DONE]');
    assert.ok(r.events[0].t >= 250, `the first route was given its 0.3 s (${r.events[0].t} ms)`);
    // not the kernel's connect timeout (minutes): the provider's 0.3 s
    assert.ok(performance.now() - t0 < 300 + LATE_MS, `answered after ${performance.now() - t0} ms`);
    const line = await chatLine('gpt-timeout');
    assert.equal(line.fallbacks, 1);
    assert.ok(relay.serve.logs.some((l) => l.msg === 'falling back' && l.from === 'blackhole' && l.error === 'timeout'));
    // the only route timing out: 504 before commit
    const only = await fetch(`${relay.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify(chatBody({}, { model: 'gpt-timeout-only' })),
    });
    assert.equal(only.status, 504);
    assert.equal((await only.json()).error.type, 'upstream_error');
  });

  test('429 first → the next route; the client never sees the 429', async () => {
    const n = stub.requests.length;
    const r = await postChat(relay.url, chatBody({ tokens: 3 }, { model: 'gpt-429' }));
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('retry-after'), null);
    assert.equal(r.events.at(-1).data, '[DONE]');
    assert.equal(stub.requests.length, n + 1);
    assert.equal(JSON.parse(stub.requests.at(-1).body).model, 'rate-limited');
    assert.equal(stub.requests.at(-1).headers.authorization, 'Bearer sk-stub-key', "each route's own key");
    const line = await chatLine('gpt-429');
    assert.equal(line.fallbacks, 1);
    assert.equal(line.provider, 'mock');
  });

  test('5xx first → the next route', async () => {
    const r = await postChat(relay.url, chatBody({ tokens: 3 }, { model: 'gpt-500' }));
    assert.equal(r.status, 200);
    assert.equal(r.events.at(-1).data, '[DONE]');
    assert.equal((await chatLine('gpt-500')).fallbacks, 1);
  });

  test('a 4xx is the request’s fault: relayed, no fallback', async () => {
    const since = await lastSeq(relay.mock);
    const r = await fetch(`${relay.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify(chatBody({ tokens: 3 }, { model: 'gpt-400' })),
    });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error.message, 'stub says no');
    assert.deepEqual(await entriesSince(relay.mock, since), []);
  });

  test('a 503 after commit_timeout but before any chunk still falls back (headers already sent)', async () => {
    // telex's framing: keep-alives push the committed headers out over HTTP/1.1; the first route
    // answers 503 once the client has seen the first of them, i.e. after commit
    const since = await lastSeq(relay.mock);
    let releasedAt = null;
    const r = await postChat(relay.url, chatBody({ tokens: 3 }, { model: 'gpt-slow-503' }), {
      headers: { 'x-telex-event-ids': '1' },
      onComment: () => {
        if (releasedAt !== null) return;
        releasedAt = performance.now();
        release();
      },
    });
    assert.equal(r.status, 200);
    assert.ok(releasedAt !== null, 'a keep-alive came before any chunk');
    assert.ok(r.t0 + r.events[0].t >= releasedAt, 'the first chunk comes from the second route');
    assert.deepEqual((await entriesSince(relay.mock, since)).map((e) => e.body.model), ['after-slow-503']);
    assert.equal(r.events.at(-1).data, '[DONE]');
    // committed (headers and keep-alives out) before the first route's 503 and the fallback
    assert.ok(r.raw.toString().startsWith(': keepalive\n\n'));
    assert.equal((await chatLine('gpt-slow-503')).fallbacks, 1);
  });

  test('every route failing: the last failure, as an HTTP error before commit', async () => {
    const r = await fetch(`${relay.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify(chatBody({}, { model: 'gpt-all-fail' })),
    });
    assert.equal(r.status, 429, 'the last route answered 429');
    assert.equal(r.headers.get('retry-after'), '9');
    const o = await r.json();
    assert.equal(o.error.type, 'rate_limit_error');
    const line = await chatLine('gpt-all-fail');
    assert.equal(line.fallbacks, 2);
    assert.equal(line.status, 429);
  });

  test('every route failing after commit: an error event, not a fake answer', async () => {
    // the only route answers 503 once the client has seen telex commit (its first keep-alive)
    const r = await postChat(relay.url, chatBody({}, { model: 'gpt-slow-only' }), {
      headers: { 'x-telex-event-ids': '1' },
      onComment: release,
    });
    assert.equal(r.status, 200, 'committed at commit_timeout');
    const last = JSON.parse(r.events.at(-1).data);
    assert.equal(last.error.type, 'upstream_error');
    assert.match(last.error.message, /503/);
    assert.ok(!r.events.some((e) => e.data === '[DONE]'));
  });
});

describe('after the first chunk, never', () => {
  test('a cut after the first chunk → error event; the next route is not called', async () => {
    const since = await lastSeq(relay.mock);
    const r = await postChat(relay.url, chatBody({ tokens: 3 }, { model: 'gpt-cut' }));
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.events[0].data).choices[0].delta.content, 'Partial');
    const last = JSON.parse(r.events.at(-1).data);
    assert.equal(last.error.code, 'cut');
    assert.ok(!r.events.some((e) => e.data === '[DONE]'));
    assert.deepEqual(await entriesSince(relay.mock, since), [], 'no second route');
    const line = await chatLine('gpt-cut');
    assert.equal(line.fallbacks, 0);
    assert.equal(line.outcome, 'upstream_error');
    await logBarrier(relay.serve); // a second line would be on stderr by now
    assert.equal(requestLogs(relay.serve).filter((l) => l.model === 'gpt-cut').length, 1);
  });
});
