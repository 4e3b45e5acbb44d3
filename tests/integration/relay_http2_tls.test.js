// tests/integration/relay_http2_tls.test.js — the relay over HTTP/2: cleartext with prior
// knowledge (curl --http2-prior-knowledge, and node:http2 multiplexing many streams on one
// connection), and TLS with ALPN h2 using a throw-away self-signed certificate made with
// the openssl CLI (`curl -k --http2` must negotiate HTTP/2 and stream).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http2 from 'node:http2';
import path from 'node:path';

import { SYNC_TIMEOUT_MS } from './lib/proc.js';
import { contentOf, parseSSEText, postChat } from './lib/sse.js';
import { baseConfig, chatBody, curl, entriesSince, lastSeq, startGateway, startRelay, stopChecked, tmpDir } from './lib/relay.js';

let relay;
before(async () => {
  relay = await startRelay();
});
after(async () => {
  if (relay) await relay.stop();
});

// curl prints the negotiated version after the body.
const VERSION_MARK = '\n--http-version:';
function splitVersion(out) {
  const i = out.lastIndexOf(VERSION_MARK);
  return { body: out.slice(0, i), version: out.slice(i + VERSION_MARK.length).trim() };
}

// Runs curl on a chat request, recording when each piece of output arrived: t in ms after the
// start, ns on CLOCK_MONOTONIC (process.hrtime, the clock of the mock's `stamp`).
async function curlChat(url, body, extra) {
  const arrivals = [];
  const t0 = performance.now();
  const res = await curl(
    [...extra, '-N', '-H', 'content-type: application/json', '-d', JSON.stringify(body), '-w', `${VERSION_MARK}%{http_version}`, url],
    {
      onData: (d) =>
        arrivals.push({ t: performance.now() - t0, ns: process.hrtime.bigint(), n: (d.match(/^data: /gm) ?? []).length }),
    },
  );
  return { ...res, ...splitVersion(res.out), arrivals };
}

// Streamed, not buffered: the first chunk reached the client before the mock had even sent the
// last content chunk (the mock stamps each chunk with its CLOCK_MONOTONIC send time). This
// holds whatever the machine's pace, unless the client read nothing for the whole answer.
function assertStreamed(res, events) {
  const lastSent = BigInt(JSON.parse(events.at(-3).data).mock_sent_ns); // before finish and [DONE]
  const first = res.arrivals.find((a) => a.n > 0);
  assert.ok(first.ns < lastSent, `first chunk ${Number(lastSent - first.ns) / 1e6} ms before the last was sent`);
}

describe('cleartext HTTP/2 (prior knowledge)', () => {
  test('curl --http2-prior-knowledge streams the answer, chunk by chunk', async () => {
    const body = chatBody({ tokens: 6, delay_ms: 100, stamp: true });
    const res = await curlChat(`${relay.url}/v1/chat/completions`, body, ['--http2-prior-knowledge']);
    assert.equal(res.code, 0, res.err);
    assert.equal(res.version, '2');
    const events = parseSSEText(res.body);
    assert.equal(events.at(-1).data, '[DONE]');
    const direct = await postChat(relay.mock.url, { ...body, model: 'x' });
    assert.equal(contentOf(events), contentOf(direct.events));
    // arrived as a stream: several separate reads, the first long before the answer was over
    const withData = res.arrivals.filter((a) => a.n > 0);
    assert.ok(withData.length >= 4, `separate arrivals: ${JSON.stringify(res.arrivals, (k, v) => (k === 'ns' ? undefined : v))}`);
    assertStreamed(res, events);
    assert.ok(withData.at(-1).t >= 5 * 100 - 5, 'the last content was due 5 x 100 ms after the first');
  });

  test('errors are the same OpenAI JSON over HTTP/2', async () => {
    const res = await curl([
      '--http2-prior-knowledge',
      '-w',
      `${VERSION_MARK}%{http_version} %{response_code}`,
      '-d',
      '{"model":"gpt-relay"}',
      `${relay.url}/v1/chat/completions`,
    ]);
    const { body, version } = splitVersion(res.out);
    assert.equal(version, '2 400');
    assert.equal(JSON.parse(body).error.param, 'messages');
  });

  test('twenty streams multiplexed on one HTTP/2 connection all complete intact', async () => {
    const since = await lastSeq(relay.mock);
    const session = http2.connect(relay.url);
    try {
      const one = (i) =>
        new Promise((resolve, reject) => {
          const req = session.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json' });
          let status = 0;
          let headers = {};
          let text = '';
          req.setEncoding('utf8');
          req.on('response', (h) => {
            status = h[':status'];
            headers = h;
          });
          req.on('data', (d) => (text += d));
          req.on('end', () => resolve({ i, status, headers, text }));
          req.on('error', reject);
          req.end(JSON.stringify(chatBody({ tokens: 8, delay_ms: 30, seed: i })));
        });
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => one(i)));
      // concurrent, not one at a time: the mock had many of them in flight at once (its journal's
      // received/ended times; one at a time would never have two)
      const seen = await entriesSince(relay.mock, since);
      assert.equal(seen.length, 20);
      const inFlight = (t) => seen.filter((e) => e.received_ms <= t && t < e.ended_ms).length;
      const most = Math.max(...seen.map((e) => inFlight(e.received_ms)));
      assert.ok(most >= 10, `concurrent, not serialized: at most ${most} in flight at once`);
      const expected = contentOf((await postChat(relay.mock.url, { ...chatBody({ tokens: 8, delay_ms: 0, seed: 3 }), model: 'x' })).events);
      for (const r of results) {
        assert.equal(r.status, 200);
        assert.equal(r.headers['content-type'], 'text/event-stream; charset=utf-8');
        assert.equal(r.headers['cache-control'], 'no-cache');
        const events = parseSSEText(r.text);
        assert.equal(events.length, 1 + 8 + 1 + 1, `stream ${r.i}`);
        assert.equal(events.at(-1).data, '[DONE]');
        if (r.i === 3) assert.equal(contentOf(events), expected);
      }
    } finally {
      session.close();
    }
  });
});

const haveOpenssl = spawnSync('openssl', ['version'], { encoding: 'utf8', timeout: SYNC_TIMEOUT_MS }).status === 0;

describe('TLS with ALPN h2', { skip: haveOpenssl ? false : 'the openssl CLI is not installed: cannot make a test certificate' }, () => {
  let tls;
  before(async () => {
    const dir = tmpDir('telex-tls-');
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    const gen = spawnSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      ],
      { encoding: 'utf8', timeout: SYNC_TIMEOUT_MS },
    );
    assert.equal(gen.status, 0, `openssl req: ${gen.stderr}`);
    tls = await startGateway(baseConfig(relay.mock.url, { tls: { cert, key } }), { dir });
  });
  after(async () => {
    if (tls) await stopChecked(tls);
  });

  test('the listening line says https', () => {
    const line = tls.logs.find((l) => l.msg === 'listening');
    assert.match(line.url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
  });

  test('curl -k --http2 negotiates HTTP/2 and streams', async () => {
    const url = `https://127.0.0.1:${tls.port}/v1/chat/completions`;
    const res = await curlChat(url, chatBody({ tokens: 5, delay_ms: 100, stamp: true }), ['-k', '--http2']);
    assert.equal(res.code, 0, res.err);
    assert.equal(res.version, '2');
    const events = parseSSEText(res.body);
    assert.equal(events.length, 1 + 5 + 1 + 1);
    assert.equal(events.at(-1).data, '[DONE]');
    const withData = res.arrivals.filter((a) => a.n > 0);
    assert.ok(withData.length >= 3, `streamed, not buffered: ${JSON.stringify(res.arrivals, (k, v) => (k === 'ns' ? undefined : v))}`);
    assertStreamed(res, events);
  });

  test('HTTP/1.1 over TLS works too; plain HTTP to the TLS port does not', async () => {
    const url = `https://127.0.0.1:${tls.port}/v1/chat/completions`;
    const res = await curlChat(url, chatBody({ tokens: 2 }), ['-k', '--http1.1']);
    assert.equal(res.code, 0, res.err);
    assert.equal(res.version, '1.1');
    assert.equal(parseSSEText(res.body).at(-1).data, '[DONE]');
    const models = await curl(['-k', '--http2', `https://127.0.0.1:${tls.port}/v1/models`]);
    assert.equal(JSON.parse(models.out).object, 'list');
    const plain = await curl(['-m', '3', `http://127.0.0.1:${tls.port}/healthz`]);
    assert.notEqual(plain.code, 0, 'cleartext is not served on the TLS port');
  });
});
