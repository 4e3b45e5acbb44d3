// tests/integration/relay_complete.test.js — when is an answer complete? A provider that ends
// its body without `data: [DONE]` completed the answer only if every choice (the request's n)
// got its own top-level finish_reason; otherwise the stream was cut and the client gets the
// `cut` error event, never a fake [DONE]:
//  - n: 2, choice 0 finished, choice 1 mid-answer, the body ends: cut;
//  - n: 2, both finished, the body ends without [DONE]: complete ([DONE]);
//  - a finish_reason nested inside logprobs is not the choice's: cut.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { baseConfig, startGateway, startStub, stopChecked } from './lib/relay.js';
import { postChat } from './lib/sse.js';

const BASE = '"id":"c","object":"chat.completion.chunk","created":1,"model":"m"';
const chunk = (choices) => `data: {${BASE},"choices":${JSON.stringify(choices)}}\n\n`;

let stub;
let gw;
before(async () => {
  stub = await startStub((req, res, body) => {
    const script = JSON.parse(body).messages[0].content;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    if (script === 'one-of-two') {
      res.write(chunk([{ index: 0, delta: { content: 'a' }, finish_reason: null }, { index: 1, delta: { content: 'b' }, finish_reason: null }]));
      res.write(chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]));
      res.end(chunk([{ index: 1, delta: { content: 'c' }, finish_reason: null }]));
    } else if (script === 'two-of-two') {
      res.write(chunk([{ index: 0, delta: { content: 'a' }, finish_reason: 'stop' }]));
      res.end(chunk([{ index: 1, delta: { content: 'b' }, finish_reason: 'stop' }]));
    } else {
      res.write(chunk([{ index: 0, delta: { content: 'a' }, finish_reason: null }]));
      res.end(chunk([{ index: 0, delta: { content: 'b' }, logprobs: { content: [{ finish_reason: 'stop' }] }, finish_reason: null }]));
    }
  });
  const cfg = baseConfig(stub.url, {});
  cfg.providers = [{ name: 'stub', kind: 'openai', base_url: `${stub.url}/v1`, api_key: 'sk-x', timeout_seconds: 5 }];
  cfg.models = [{ name: 'm', providers: [{ provider: 'stub' }] }];
  gw = await startGateway(cfg);
});
after(async () => {
  if (gw) await stopChecked(gw);
  await stub?.close();
});

const ask = (script, n) => postChat(gw.url, { model: 'm', stream: true, n, messages: [{ role: 'user', content: script }] });

test('n: 2, one choice finished, the body ends: cut, no [DONE]', async () => {
  const r = await ask('one-of-two', 2);
  assert.equal(r.status, 200);
  assert.ok(!r.events.some((e) => e.data === '[DONE]'), 'no [DONE]');
  assert.equal(JSON.parse(r.events.at(-1).data).error.code, 'cut');
});

test('n: 2, both finished, the body ends without [DONE]: complete', async () => {
  const r = await ask('two-of-two', 2);
  assert.equal(r.events.at(-1).data, '[DONE]');
});

test('a finish_reason nested inside logprobs does not finish the choice', async () => {
  const r = await ask('nested', 1);
  assert.ok(!r.events.some((e) => e.data === '[DONE]'), 'no [DONE]');
  assert.equal(JSON.parse(r.events.at(-1).data).error.code, 'cut');
});
