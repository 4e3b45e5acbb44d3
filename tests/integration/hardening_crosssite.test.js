// tests/integration/hardening_crosssite.test.js — other web pages and an anonymous
// gateway (issue 18, item 5).
//
// Without keys (anonymous loopback access), a page on another site must not be able to
// use the gateway through the visitor's browser: a "simple" cross-origin POST
// (text/plain, no preflight) is refused before any upstream call, DNS rebinding (the
// page's own name pointed at 127.0.0.1, so Host is that name) is refused by the Host
// check, and a browser body must be application/json. The gateway's own page (same
// origin), clients without an Origin (SDKs, curl) and origins in cors.origins keep
// working.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { chatBody, journal, startRelay } from './lib/relay.js';
import { connect } from './lib/raw_http.js';

let relay;
let port;
before(async () => {
  relay = await startRelay({ config: { cors: { origins: ['https://app.example.com'], hosts: ['telex.internal'] } } });
  port = new URL(relay.url).port;
});
after(async () => {
  if (relay) await relay.stop();
});

async function send({ method = 'POST', path = '/v1/chat/completions', host, headers = {}, body }) {
  const c = await connect(relay.url);
  const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  const lines = [`${method} ${path} HTTP/1.1`, `Host: ${host ?? `127.0.0.1:${port}`}`];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (text !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(text)}`);
  await c.write(lines.join('\r\n') + '\r\n\r\n' + (text ?? ''));
  const r = await c.response();
  c.destroy();
  return r;
}

const body = chatBody({ tokens: 1 }, { stream: false });

describe('refused without keys', () => {
  test('a simple cross-origin POST (text/plain) runs nothing upstream', async () => {
    const before = (await journal(relay.mock)).total;
    const r = await send({ headers: { Origin: 'https://evil.example', 'Content-Type': 'text/plain' }, body });
    assert.equal(r.status, 403, r.body);
    assert.equal(r.json().error.code, 'cross_origin_not_allowed');
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    assert.equal((await journal(relay.mock)).total, before);
  });

  test('a cross-origin GET (reading models, streams) too', async () => {
    const r = await send({ method: 'GET', path: '/v1/models', headers: { Origin: 'https://evil.example' } });
    assert.equal(r.status, 403);
    assert.equal(r.json().error.code, 'cross_origin_not_allowed');
  });

  test('Origin: null (a sandboxed frame, a file:// page)', async () => {
    const r = await send({ headers: { Origin: 'null', 'Content-Type': 'application/json' }, body });
    assert.equal(r.status, 403);
  });

  test('DNS rebinding: the page is "same-origin" under its own name, the Host check refuses it', async () => {
    const host = `rebind.evil.example:${port}`;
    for (const req of [
      { host, headers: { Origin: `http://${host}`, 'Content-Type': 'application/json' }, body },
      { host, method: 'GET', path: '/v1/models' },
    ]) {
      const r = await send(req);
      assert.equal(r.status, 403, r.body);
      assert.equal(r.json().error.code, 'host_not_allowed');
    }
  });

  test('the gateway\'s own page must send application/json (415)', async () => {
    const r = await send({ headers: { Origin: `http://127.0.0.1:${port}`, 'Content-Type': 'text/plain' }, body });
    assert.equal(r.status, 415, r.body);
    assert.equal(r.json().error.code, 'unsupported_media_type');
  });

  test('a body still arriving is refused at its head (never read)', async () => {
    const c = await connect(relay.url);
    await c.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: https://evil.example\r\n` +
        'Content-Type: text/plain\r\nContent-Length: 500000\r\n\r\n{',
    );
    const r = await c.response();
    assert.equal(r.status, 403);
    assert.equal(r.headers.connection, 'close');
    await c.closed;
  });
});

describe('still served', () => {
  test('the gateway\'s own origin with application/json', async () => {
    const r = await send({
      headers: { Origin: `http://127.0.0.1:${port}`, 'Content-Type': 'application/json' },
      body,
    });
    assert.equal(r.status, 200, r.body);
  });

  test('a client without an Origin (SDK, curl -d with its form content type)', async () => {
    for (const ct of ['application/json', 'application/x-www-form-urlencoded']) {
      const r = await send({ headers: { 'Content-Type': ct }, body });
      assert.equal(r.status, 200, `${ct}: ${r.body}`);
    }
  });

  test('an origin in cors.origins, and a name in cors.hosts', async () => {
    let r = await send({ headers: { Origin: 'https://app.example.com', 'Content-Type': 'application/json' }, body });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.headers['access-control-allow-origin'], 'https://app.example.com');
    r = await send({ host: `telex.internal:${port}`, method: 'GET', path: '/healthz' });
    assert.equal(r.status, 200, r.body);
    r = await send({ host: 'localhost', method: 'GET', path: '/healthz' });
    assert.equal(r.status, 200, r.body);
    r = await send({ host: `[::1]:${port}`, method: 'GET', path: '/healthz' });
    assert.equal(r.status, 200, r.body);
  });
});

test('cors.hosts takes host names only, and the new limits are checked like the others', async () => {
  const { spawnSync } = await import('node:child_process');
  const fs = await import('node:fs');
  const path = await import('node:path');
  const { TELEX_BIN } = await import('./lib/proc.js');
  const { tmpDir } = await import('./lib/relay.js');
  const dir = tmpDir();
  for (const [yaml, word] of [
    ['cors:\n  hosts: ["http://telex.example"]\n', 'cors.hosts'],
    ['cors:\n  hosts: ["telex.example:8080"]\n', 'cors.hosts'],
    ['limits:\n  header_timeout_seconds: 0\n', 'header_timeout_seconds'],
    ['limits:\n  max_connections_per_client: 0\n', 'max_connections_per_client'],
    ['metrics:\n  token: short\n', 'metrics.token'],
  ]) {
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(file, yaml);
    const r = spawnSync(TELEX_BIN, ['serve', '--config', file, '--listen', '127.0.0.1:0'], { encoding: 'utf8', timeout: 20000 });
    assert.notEqual(r.status, 0, yaml);
    assert.match(r.stderr, new RegExp(word.replace('.', '\\.')), r.stderr);
  }
});
