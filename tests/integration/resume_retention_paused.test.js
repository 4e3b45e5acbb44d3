// tests/integration/resume_retention_paused.test.js — an answer that ends the moment a
// resumer un-pauses its provider still expires after resume.retention_seconds (the one
// stream whose log outlived its retention in the hour-long soak, bench/soak.md).
//
// The sequence, each step waited for on an event, never a sleep:
//   1. the provider (a stub) sends one chunk, then holds the rest; the client reads it and
//      leaves; telex notices (its connection count drops) and the stream is in its grace;
//   2. the stub sends the whole rest of the answer, [DONE] and the body's end in one write;
//      telex appends the first of those chunks and — over resume.max_total_bytes with nobody
//      reading — pauses the provider: the rest waits in telex's read buffer (the log gauge
//      grows by exactly one big event and then stays);
//   3. a resumer attaches: waking the producer lets the provider go on, which parses the
//      buffered rest at once and ends the answer inside that wakeup. The grace bookkeeping
//      that followed used to stop the retention timer finish() had just armed, so the ended
//      stream stayed registered, with its log, for good.
// The check: the resumer gets the whole answer, then the stream is gone (404) and the logs'
// gauge is back to 0 within retention + LATE_MS — by its own retention timer: the worker's
// sweep now re-arms a lost one (and logs an error; debug builds assert), which must not be
// what happened here.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';

import { LATE_MS, waitFor } from './lib/proc.js';
import { baseConfig, logBarrier, startGateway, stopChecked } from './lib/relay.js';
import { parseSSEText } from './lib/sse.js';

const RETENTION = 1;
const chunk = (text) =>
  `data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"${text}"},"finish_reason":null}]}\n\n`;
const FIRST = chunk('first ');
// Each big enough that the log needs a new, larger segment for it: the gauge shows the append.
const REST = [
  ...[1, 2, 3, 4].map((i) => chunk(`${'x'.repeat(700)}${i} `)),
  // the last chunk has its finish_reason; no [DONE]: the body's end completes the answer
  'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
];

// The provider: a raw HTTP/1.1 server, so that what it sends in one write is exact. Each
// event is an HTTP chunk of its own (telex's provider client pauses between chunks).
const httpChunk = (text) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
let stub;
let gw;
let sendRest = null; // writes the rest of the answer, once the request came
const restReady = [];
before(async () => {
  stub = net.createServer((sock) => {
    let got = Buffer.alloc(0);
    sock.on('error', () => {});
    sock.on('data', (d) => {
      got = Buffer.concat([got, d]);
      const headEnd = got.indexOf('\r\n\r\n');
      if (headEnd < 0 || sendRest !== null) return;
      const len = Number(/content-length: *(\d+)/i.exec(got.subarray(0, headEnd).toString())?.[1] ?? 0);
      if (got.length < headEnd + 4 + len) return;
      sock.write(
        'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n' +
          httpChunk(FIRST),
      );
      sendRest = () => sock.write(REST.map(httpChunk).join('') + '0\r\n\r\n');
      for (const w of restReady) w();
    });
  });
  await new Promise((r) => stub.listen(0, '127.0.0.1', r));
  const stubUrl = `http://127.0.0.1:${stub.address().port}`;
  gw = await startGateway(
    baseConfig(stubUrl, {
      resume: { enabled: true, grace_seconds: 60, retention_seconds: RETENTION, max_total_bytes: 1 },
      streaming: { idle_timeout_seconds: 60, commit_timeout_seconds: 30, keepalive_seconds: 30 },
    }),
  );
});
after(async () => {
  try {
    if (gw) await stopChecked(gw);
  } finally {
    if (stub) stub.close();
  }
});

const base = () => `http://127.0.0.1:${gw.port}`;
// /metrics on a connection of its own (closed after): the connection count it reports is
// telex's clients plus this one.
const metrics = () =>
  new Promise((resolve, reject) => {
    http
      .get(`${base()}/metrics`, { agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          const g = (name) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
          resolve({ conns: g('telex_connections_open'), logBytes: g('telex_stream_log_bytes') });
        });
        res.on('error', reject);
      })
      .on('error', reject);
  });

// POSTs a stream; resolves once its first event arrived, with the stream id and the socket.
const postAndReadFirst = () =>
  new Promise((resolve, reject) => {
    const body = JSON.stringify({ model: 'gpt-relay', messages: [{ role: 'user', content: 'hi' }], stream: true });
    const req = http.request(`${base()}/v1/chat/completions`, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json', 'x-telex-event-ids': '1' },
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
        if (text.includes('\n\n')) resolve({ req, sid: res.headers['x-telex-stream-id'], text });
      });
      res.on('error', () => {});
    });
    req.on('error', (e) => (e.code === 'ECONNRESET' ? null : reject(e)));
    req.end(body);
  });

test('an answer that ends as a resumer un-pauses its provider expires after retention', async () => {
  const idle = await metrics();
  const first = await postAndReadFirst();
  assert.match(first.sid ?? '', /^st_/);
  assert.match(first.text, /first /);
  if (sendRest === null) await new Promise((r) => restReady.push(r));

  // 1. the client leaves; telex notices (its sweep probes a quiet response)
  first.req.destroy();
  await waitFor(async () => (await metrics()).conns <= idle.conns, { message: 'telex to notice the client left' });
  const before = (await metrics()).logBytes;

  // 2. the rest of the answer in one write; telex appends one event and pauses the provider
  sendRest();
  await waitFor(
    async () => {
      const m = await metrics();
      return m.logBytes > before ? m : null;
    },
    { message: 'telex to append the next event' },
  );
  // 3. the resumer attaches after event 1 and gets the rest to [DONE]
  const resumed = await fetch(`${base()}/v1/streams/${first.sid}`, {
    headers: { accept: 'text/event-stream', 'last-event-id': `${first.sid}.1` },
  });
  assert.equal(resumed.status, 200);
  const events = parseSSEText(await resumed.text()).filter((e) => e.data !== undefined && e.data !== '');
  assert.equal(events.at(-1).data, '[DONE]');
  assert.equal(events.length, 6, "the four big chunks, the finish chunk and telex's [DONE]");

  // the ended stream expires: unknown (404), and no log bytes are left
  const gone = await waitFor(
    async () => {
      const r = await fetch(`${base()}/v1/streams/${first.sid}`, { headers: { accept: 'application/json' } });
      await r.arrayBuffer();
      return r.status === 404;
    },
    { timeoutMs: RETENTION * 1000 + LATE_MS, message: 'the stream to expire after its retention' },
  );
  assert.ok(gone);
  await waitFor(async () => (await metrics()).logBytes === 0, {
    timeoutMs: LATE_MS,
    message: 'telex_stream_log_bytes back to 0',
  });
  // by its own timer, not by the sweep's safety net (which logs this when it has to step in)
  await logBarrier(gw); // a line logged by now is on stderr
  const netted = gw.logs.filter((l) => l.msg === 'an ended stream lost its retention timer');
  assert.deepEqual(netted, [], "the retention timer ran on its own (the sweep's net did not step in)");
});
