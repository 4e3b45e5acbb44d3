// tests/integration/relay_http2_upstream.test.js — telex's HTTP/2 client to providers
// (src/upstream/http2_session.c): a provider with `http2: on` reaches `telex mock` over h2c
// (prior knowledge; the mock's journal says which HTTP each request came in), many streams at
// once, a client leaving resets only its own stream; over TLS, ALPN h2 with a telex gateway as
// the provider (http2: on fails unless h2 is negotiated), and the fall back to HTTP/1.1 with a
// provider that speaks only HTTP/1.1 (auto works, on fails with a clear message). Last, the key
// relay suites run once more with TELEX_UPSTREAM_HTTP2=1 (lib/relay.js: every provider at the
// mock gets http2: on).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import https from 'node:https';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { collectSSE, contentOf } from './lib/sse.js';
import {
  baseConfig, chatBody, entriesSince, lastSeq, requestLogs, startGateway, startRelay, stopChecked, tmpDir, useHttp2,
  waitEntry,
} from './lib/relay.js';
import { SYNC_TIMEOUT_MS, waitFor } from './lib/proc.js';

const chat = (relay, body, opts = {}) => collectSSE(`${relay.url}/v1/chat/completions`, { body, ...opts });

describe('h2c with prior knowledge to telex mock', () => {
  let relay;
  before(async () => {
    relay = await startRelay({ config: (mockUrl) => useHttp2(baseConfig(mockUrl, { resume: { enabled: false } }), mockUrl) });
  });
  after(async () => {
    if (relay) await relay.stop();
  });

  test('a streamed answer arrives whole; the mock saw HTTP/2', async () => {
    assert.equal(relay.config.providers.find((p) => p.name === 'mock').http2, 'on');
    const since = await lastSeq(relay.mock);
    const r = await chat(relay, chatBody({ tokens: 6, delay_ms: 5 }));
    assert.equal(r.status, 200);
    assert.equal(r.events.at(-1).data, '[DONE]');
    assert.ok(contentOf(r.events).length > 0);
    const [entry] = await entriesSince(relay.mock, since);
    assert.equal(entry.http, '2');
    assert.equal(entry.headers.authorization, 'Bearer [redacted]');
  });

  test('40 streams at once all complete over HTTP/2', async () => {
    const since = await lastSeq(relay.mock);
    const rs = await Promise.all(Array.from({ length: 40 }, () => chat(relay, chatBody({ tokens: 8, delay_ms: 20 }))));
    for (const r of rs) {
      assert.equal(r.status, 200);
      assert.equal(r.events.at(-1).data, '[DONE]');
    }
    const entries = await entriesSince(relay.mock, since);
    assert.equal(entries.length, 40);
    assert.ok(entries.every((e) => e.http === '2'));
  });

  test('a client that leaves resets its stream; a stream beside it completes', async () => {
    const since = await lastSeq(relay.mock);
    const leaving = new AbortController();
    const staying = chat(relay, chatBody({ tokens: 20, delay_ms: 50 }));
    const left = chat(relay, chatBody({ tokens: 200, delay_ms: 50 }), {
      signal: leaving.signal,
      onEvent: (e) => e.data.includes('content') && leaving.abort(),
    });
    const gone = await waitEntry(relay.mock, since, (e) => e.client_gone && e.http === '2');
    assert.equal(gone.outcome, 'client_gone');
    const r = await staying;
    assert.equal(r.status, 200);
    assert.equal(r.events.at(-1).data, '[DONE]');
    assert.equal((await left).aborted, true);
  });

  test('the default (auto) stays HTTP/1.1 on plain http', async () => {
    const plain = await startRelay({ mock: relay.mock, config: { resume: { enabled: false } } });
    try {
      const since = await lastSeq(relay.mock);
      const r = await chat(plain, chatBody({ tokens: 2, delay_ms: 1 }));
      assert.equal(r.status, 200);
      const [entry] = await entriesSince(relay.mock, since);
      assert.equal(entry.http, '1.1');
    } finally {
      await stopChecked(plain.serve);
    }
  });
});

const haveOpenssl = spawnSync('openssl', ['version'], { encoding: 'utf8', timeout: SYNC_TIMEOUT_MS }).status === 0;

describe('TLS: ALPN h2, and the fall back to HTTP/1.1', { skip: haveOpenssl ? false : 'no openssl CLI for a test certificate' }, () => {
  let relay, edge, h1only, dir, cert, key;
  before(async () => {
    relay = await startRelay({ config: { resume: { enabled: false } } });
    dir = tmpDir('telex-h2tls-');
    cert = path.join(dir, 'cert.pem');
    key = path.join(dir, 'key.pem');
    const gen = spawnSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      ],
      { encoding: 'utf8', timeout: SYNC_TIMEOUT_MS },
    );
    assert.equal(gen.status, 0, `openssl req: ${gen.stderr}`);
    // The provider: a telex gateway on TLS (h2o: ALPN h2), relaying to the mock.
    edge = await startGateway(baseConfig(relay.mock.url, { tls: { cert, key }, resume: { enabled: false } }), {
      dir: tmpDir('telex-edge-'),
    });
    // A provider that speaks HTTP/1.1 only (ALPN offers http/1.1 alone).
    h1only = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key), ALPNProtocols: ['http/1.1'] }, (req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const chunk = { id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content: 'over h1' }, finish_reason: null }] };
        const last = { ...chunk, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] };
        res.end(`data: ${JSON.stringify(chunk)}\n\ndata: ${JSON.stringify(last)}\n\ndata: [DONE]\n\n`);
      });
    });
    await new Promise((resolve) => h1only.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    try {
      if (edge) await stopChecked(edge);
    } finally {
      if (h1only) await new Promise((resolve) => h1only.close(resolve));
      if (relay) await relay.stop();
    }
  });

  // A telex whose one model goes to `base_url` with the given http2 mode, trusting the test certificate.
  async function front(baseUrl, http2) {
    const cfg = baseConfig('http://127.0.0.1:1', { resume: { enabled: false } });
    cfg.providers = [{ name: 'tls', kind: 'openai', base_url: baseUrl, api_key: 'sk-tls', timeout_seconds: 5, http2 }];
    cfg.models = [{ name: 'gpt-relay', providers: [{ provider: 'tls', model: 'gpt-relay' }] }];
    return startGateway(cfg, { env: { SSL_CERT_FILE: cert } });
  }

  for (const http2 of ['on', 'auto']) {
    test(`http2: ${http2} to a TLS provider that offers h2 streams the answer`, async () => {
      const gw = await front(`https://127.0.0.1:${edge.port}/v1`, http2);
      try {
        const since = await lastSeq(relay.mock);
        const r = await chat({ url: gw.url }, chatBody({ tokens: 5, delay_ms: 5 }));
        assert.equal(r.status, 200, JSON.stringify(r.events));
        assert.equal(r.events.at(-1).data, '[DONE]');
        assert.equal((await entriesSince(relay.mock, since)).length, 1);
      } finally {
        await stopChecked(gw);
      }
    });
  }

  test('http2: auto to a TLS provider that speaks only HTTP/1.1 falls back to it', async () => {
    const gw = await front(`https://127.0.0.1:${h1only.address().port}/v1`, 'auto');
    try {
      const r = await chat({ url: gw.url }, chatBody({}));
      assert.equal(r.status, 200);
      assert.equal(contentOf(r.events), 'over h1');
    } finally {
      await stopChecked(gw);
    }
  });

  test('http2: on to a TLS provider that speaks only HTTP/1.1 fails, saying why', async () => {
    const gw = await front(`https://127.0.0.1:${h1only.address().port}/v1`, 'on');
    try {
      // The server refuses a handshake that offers only h2 (RFC 7301's no_application_protocol
      // alert), or completes it without choosing h2: either way the call fails before any event.
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(chatBody({})),
      });
      assert.equal(res.status, 502);
      const body = await res.json();
      assert.match(body.error.message, /only h2 was offered in ALPN|did not choose HTTP\/2 in ALPN/);
      const log = await waitFor(() => requestLogs(gw).at(-1), { message: 'the request log line' });
      assert.equal(log.outcome, 'upstream_error');
    } finally {
      await stopChecked(gw);
    }
  });
});

// The suites that exercise the upstream client most, once more over HTTP/2 to the mock.
const SUITES = ['relay_stream', 'relay_disconnect', 'relay_backpressure', 'relay_faults', 'relay_fallback', 'relay_errors'];

describe('relay suites with http2: on', () => {
  test(SUITES.join(', '), { timeout: 600000 }, async (t) => {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const files = SUITES.map((s) => path.join(here, `${s}.test.js`));
    const env = { ...process.env, TELEX_UPSTREAM_HTTP2: '1' };
    delete env.NODE_TEST_CONTEXT; // a test runner of its own, not a child of this one
    // a test that hangs in there fails by name (--test-timeout, as in the Makefile); if this
    // test times out first, the runner goes too (SIGTERM: it ends its files, they their telex)
    const child = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=240000', '--test-reporter=tap', ...files], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.signal.addEventListener('abort', () => child.kill('SIGTERM'));
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise((resolve) => child.on('close', resolve));
    const fails = out.split('\n').filter((l) => /^\s*not ok /.test(l));
    assert.equal(code, 0, `failing over HTTP/2:\n${fails.join('\n')}\n${out.slice(-4000)}`);
    assert.match(out, /# fail 0/);
  });
});
