// tests/integration/provider_secrets.test.js — a provider's refusals and error texts never hand
// the gateway's own secrets, or the blame for them, to the client.
//
//  - the provider refuses telex's credentials (401, 403): the client gets 502
//    `provider_auth_failed` (not the provider's 401 `invalid_api_key`, which reads as a bad telex
//    key), streamed or not; the log names the provider and the status, never the key;
//  - a provider error body that echoes the key (some do) is relayed with the key masked: a 400
//    before the stream, a non-streamed 4xx, an error event after the first chunk; so is any
//    other token shaped like an API key.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { baseConfig, logBarrier, startGateway, startStub, stopChecked } from './lib/relay.js';
import { postChat } from './lib/sse.js';

const KEY = 'sk-provider-SECRET-abcdefghijklmnop0123';
const OTHER = 'sk-proj-AAAABBBBCCCCDDDDEEEEFFFF'; // not configured, but shaped like a key
const echo = (status, code) => ({
  error: { message: `Incorrect API key provided: ${KEY}. Also ${OTHER}.`, type: 'invalid_request_error', code, param: null },
});

let stub;
let gw;
before(async () => {
  stub = await startStub((req, res, body) => {
    const model = JSON.parse(body).model;
    const m = /^status-(\d+)$/.exec(model);
    if (m) {
      res.writeHead(Number(m[1]), { 'content-type': 'application/json' });
      res.end(JSON.stringify(echo(Number(m[1]), m[1] === '401' ? 'invalid_api_key' : 'bad')));
      return;
    }
    // one chunk, then an error event quoting the key
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\n`);
    res.end(`data: ${JSON.stringify(echo(500, 'oops'))}\n\n`);
  });
  const cfg = baseConfig(stub.url, {});
  cfg.providers = [{ name: 'stubbed', kind: 'openai', base_url: `${stub.url}/v1`, api_key: KEY, timeout_seconds: 5 }];
  cfg.models = [{ name: '*', providers: [{ provider: 'stubbed' }] }];
  gw = await startGateway(cfg);
});
after(async () => {
  if (gw) await stopChecked(gw);
  await stub?.close();
});

const noSecret = (text) => {
  assert.ok(!text.includes(KEY), `the configured key leaked: ${text}`);
  assert.ok(!text.includes(OTHER), `a key-shaped token leaked: ${text}`);
};

describe('the provider refuses the gateway credentials', () => {
  for (const status of [401, 403]) {
    for (const stream of [true, false]) {
      test(`${status}, ${stream ? 'streamed' : 'not streamed'}: 502 provider_auth_failed`, async () => {
        const r = await fetch(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: `status-${status}`, stream, messages: [{ role: 'user', content: 'x' }] }),
        });
        const text = await r.text();
        assert.equal(r.status, 502, text);
        const e = JSON.parse(text).error;
        assert.equal(e.code, 'provider_auth_failed');
        assert.equal(e.type, 'upstream_error');
        assert.match(e.message, new RegExp(`HTTP ${status}`));
        noSecret(text);
        const line = await gw.waitForLog((l) => l.msg === "provider refused the gateway's credentials" && l.status === status);
        assert.equal(line.provider, 'stubbed');
        await logBarrier(gw); // the request's own line too
        noSecret(gw.stderr());
      });
    }
  }
});

describe('provider error texts are masked', () => {
  test('a 400 before the stream: relayed with the key masked', async () => {
    const r = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'status-400', stream: true, messages: [{ role: 'user', content: 'x' }] }),
    });
    const text = await r.text();
    assert.equal(r.status, 400);
    noSecret(text);
    const e = JSON.parse(text).error;
    assert.equal(e.code, 'bad');
    assert.match(e.message, /^Incorrect API key provided: \*{10,}\. Also sk-\*{10,}\.$/);
  });

  test('a non-streamed 422: relayed with the key masked', async () => {
    const r = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'status-422', messages: [{ role: 'user', content: 'x' }] }),
    });
    const text = await r.text();
    assert.equal(r.status, 422);
    noSecret(text);
    assert.ok(JSON.parse(text).error.message.startsWith('Incorrect API key provided: ***'));
  });

  test('an error event after the first chunk: masked in the final error event', async () => {
    const r = await postChat(gw.url, { model: 'chunk-then-error', stream: true, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(r.status, 200);
    const last = JSON.parse(r.events.at(-1).data);
    assert.ok(last.error, r.raw.toString());
    noSecret(r.raw.toString());
    assert.match(last.error.message, /\*{10,}/);
  });
});
