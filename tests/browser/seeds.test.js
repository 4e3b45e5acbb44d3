// tests/browser/seeds.test.js — the seed documents' own browser readers, in Chromium, read whole
// answers from telex's default stream (POST /v1/chat/completions, no telex headers).
//
// Seed 001 splits each network read on "\n\n" and strips "data: "; seed 002's hand-rolled
// fetchEventSource drops every read that does not start with "data: " and splits on it. Both
// read OpenAI's own stream; both read nothing through a stream with `id:` lines. The code runs
// verbatim (tests/integration/lib/seed_clients.js says what had to change: the URL and the
// placeholders) in a page on the gateway's origin, against a real `telex serve` + `telex mock`;
// the text each collects must be the mock's answer, for a fast answer (several events to a read)
// and a slow one (one event per read).
//
// Run: TELEX_BIN=/abs/path/telex node --test --test-concurrency=1 tests/browser/
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';

import { baseConfig, startGateway, startRelay, startStub, stopChecked } from '../integration/lib/relay.js';
import { contentOfEvents, directText } from '../integration/lib/resume.js';
import { SEED_SOURCE } from '../integration/lib/seed_clients.js';
import { launch } from './lib/browser.js';

// A provider that writes its answer in bursts: BURSTS writes, BURST_GAP_MS apart, of whole events
// (~240 bytes each): the first of 11 events (~2.6 KiB), the others of 40 (~9.7 KiB) — as a model
// streams when the network bunches its packets. telex coalesces whole events up to 3 KiB in the
// write with the response head and 16 KiB in later ones; a reader that keeps up must get whole
// events, the first write included.
const BURSTS = 12;
const perBurst = (b) => (b === 0 ? 11 : 40);
const BURST_GAP_MS = 60;
const burstWord = (b, i) => ` b${b}w${i}é😀${'x'.repeat(40)}`;
const burstEvent = (content) =>
  `data: {"id":"chatcmpl-burst","object":"chat.completion.chunk","created":1733500000,"model":"gpt-4o-mini",` +
  `"choices":[{"index":0,"delta":${JSON.stringify({ content })},"logprobs":null,"finish_reason":null}]}\n\n`;
const burstText = Array.from({ length: BURSTS }, (_, b) =>
  Array.from({ length: perBurst(b) }, (_, i) => burstWord(b, i)).join('')).join('');

let relay;
let stub;
let burstGw;
let browser;
before(async () => {
  relay = await startRelay({});
  stub = await startStub((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    let b = 0;
    const next = () => {
      if (b === BURSTS) {
        res.end('data: [DONE]\n\n');
        return;
      }
      res.write(Array.from({ length: perBurst(b) }, (_, i) => burstEvent(burstWord(b, i))).join(''));
      b++;
      setTimeout(next, BURST_GAP_MS);
    };
    next();
  });
  burstGw = await startGateway(baseConfig(stub.url, {}));
  browser = await launch();
});
after(async () => {
  await browser?.close();
  if (relay) await relay.stop();
  if (burstGw) await stopChecked(burstGw);
  await stub?.close();
});

const messages = (text) => [{ role: 'user', content: text }];

// Runs seed `which` in a fresh page on the gateway's origin; resolves with the text it
// collected (002: what it appended to #mean) or the error it threw.
async function runInPage(which, mockKnobs, text, origin = relay.url) {
  const page = await browser.context.newPage();
  try {
    await page.goto(`${origin}/`);
    // evaluated through the debugging protocol: the page's CSP forbids inline scripts
    await page.evaluate(`(() => { ${SEED_SOURCE}; window.seed001 = seed001; window.seed002 = seed002; })()`);
    return await page.evaluate(
      async ({ which, mock, msgs }) => {
        // telex's mock reads its knobs from the request body: a member the seeds do not send,
        // so the page's fetch adds it (the seeds' own code is untouched)
        const realFetch = window.fetch;
        window.fetch = (url, init) => {
          const body = JSON.parse(init.body);
          return realFetch(url, { ...init, body: JSON.stringify({ ...body, mock }) });
        };
        const parts = [];
        try {
          if (which === '001') {
            await seed001('/v1/chat/completions', 'gpt-relay', msgs, (t) => parts.push(t));
          } else {
            const $ = () => ({ append: (t) => parts.push(t ?? '') });
            await Promise.race([
              seed002('/v1/chat/completions', { model: 'gpt-relay', messages: msgs, stream: true }, $),
              new Promise((_, reject) => setTimeout(() => reject(new Error('seed 002 never closed')), 20000)),
            ]);
          }
          return { text: parts.join('') };
        } catch (e) {
          return { error: String(e), text: parts.join('') };
        }
      },
      { which, mock: mockKnobs, msgs: messages(text) },
    );
  } finally {
    await page.close();
  }
}

for (const which of ['001', '002']) {
  for (const [label, mock] of [
    ['a fast answer', { tokens: 40, delay_ms: 0 }],
    ['a slow answer (one event per read)', { tokens: 12, delay_ms: 40 }],
  ]) {
    test(`seed ${which} reads ${label} whole`, async () => {
      const text = `seed ${which} ${label}`;
      const want = (await directText(relay.mock, mock, messages(text))).text;
      const got = await runInPage(which, mock, text);
      assert.equal(got.error, undefined, got.error);
      assert.equal(got.text, want);
      assert.ok(want.length > 20, 'a real answer');
    });
  }
}

for (const which of ['001', '002']) {
  test(`seed ${which} reads a provider's bursts (2.6 KiB, then 9.7 KiB of events a write) whole`, async () => {
    const got = await runInPage(which, {}, `bursts ${which}`, burstGw.url);
    assert.equal(got.error, undefined, got.error);
    assert.equal(got.text, burstText);
  });
}

test('the same answer read by the seeds and by a spec-exact parser', async () => {
  const mock = { tokens: 20, delay_ms: 5 };
  const r = await fetch(`${relay.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-relay', stream: true, messages: messages('parity'), mock }),
  });
  const body = await r.text();
  assert.doesNotMatch(body, /^(id|retry|:)/m, 'no telex framing by default');
  const events = body
    .split('\n\n')
    .filter(Boolean)
    .map((b) => ({ data: b.slice('data: '.length) }));
  const seen = await runInPage('001', mock, 'parity');
  assert.equal(seen.text, contentOfEvents(events));
});
