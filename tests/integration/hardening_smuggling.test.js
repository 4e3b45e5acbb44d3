// tests/integration/hardening_smuggling.test.js — request smuggling (issue 18, item 4).
//
// A request with both Content-Length and Transfer-Encoding: chunked, or with two
// different Content-Lengths, is refused with 400 and the connection is closed
// (RFC 9112 §6.3): the bytes after the part one reading of the framing would take are
// never run as a second request. Checked with the whole request in one write (h2o has
// the body at once and calls the handler) and with the body sent after the head (the
// guard sees the head while h2o waits for the body).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { chatBody, journal, startRelay } from './lib/relay.js';
import { connect, parseResponses } from './lib/raw_http.js';

let relay;
before(async () => {
  relay = await startRelay();
});
after(async () => {
  if (relay) await relay.stop();
});

const SMUGGLED = 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';

async function attack(headLines, body, split) {
  const c = await connect(relay.url);
  const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${headLines.join('\r\n')}\r\n\r\n`;
  if (split) {
    await c.write(head);
    await c.write(body);
  } else {
    await c.write(head + body);
  }
  await c.closed;
  return parseResponses(c.data());
}

const inner = JSON.stringify(chatBody({ tokens: 1 }, { stream: false }));

const cases = [
  ['Content-Length and Transfer-Encoding', ['Content-Length: 5', 'Transfer-Encoding: chunked'], `0\r\n\r\n${SMUGGLED}`],
  ['Transfer-Encoding before Content-Length', ['Transfer-Encoding: chunked', 'Content-Length: 40'], `0\r\n\r\n${SMUGGLED}`],
  [
    'two different Content-Lengths',
    [`Content-Length: ${inner.length}`, `Content-Length: ${inner.length + SMUGGLED.length}`],
    inner + SMUGGLED,
  ],
];

describe('ambiguous framing → 400 and close, nothing smuggled', () => {
  for (const [what, lines, body] of cases) {
    for (const split of [false, true]) {
      test(`${what} (${split ? 'body after the head' : 'one write'})`, async () => {
        const before = (await journal(relay.mock)).total;
        const rs = await attack(lines, body, split);
        assert.equal(rs.length, 1, `exactly one response: ${rs.map((r) => r.status)}`);
        assert.equal(rs[0].status, 400, rs[0].body);
        assert.equal(rs[0].headers.connection, 'close');
        assert.equal(rs[0].json().error.code, 'ambiguous_request_length');
        assert.equal((await journal(relay.mock)).total, before, 'no upstream request');
      });
    }
  }
});

test('two equal Content-Lengths are one length: the request runs', async () => {
  const c = await connect(relay.url);
  await c.write(
    `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${inner.length}\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`,
  );
  const r = await c.response();
  assert.equal(r.status, 200, r.body);
  c.destroy();
});

test('a chunked body alone is fine', async () => {
  const c = await connect(relay.url);
  const size = Buffer.byteLength(inner).toString(16);
  await c.write(
    `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Transfer-Encoding: chunked\r\n\r\n${size}\r\n${inner}\r\n0\r\n\r\n`,
  );
  const r = await c.response();
  assert.equal(r.status, 200, r.body);
  c.destroy();
});
