// tests/integration/framing.test.js — the bytes of POST /v1/chat/completions are OpenAI's.
//
// A scripted upstream sends a stream exactly as OpenAI frames it (`data: <chunk>\n\n`,
// `"usage":null` in every chunk when asked for usage, a last usage chunk, `data: [DONE]`).
// Through telex, by default, the client must get exactly what OpenAI would have sent *it*:
//  - no `id:`, no `retry:`, no comment, one `data:` line per event, whole events per write (at
//    most 3 KiB of them in the write with the head, so that a browser's first read does not cut
//    one, 16 KiB in later writes);
//  - without `stream_options.include_usage`: no `"usage":null` and no usage chunk (telex asked
//    the provider for usage for its own accounting), every other byte unchanged;
//  - with it: the chunks byte for byte (the usage chunk gains telex's `cost_usd`).
// telex's framing (ids, retry:, keep-alives) is opt-in: `X-Telex-Event-Ids: 1`, or
// `streaming.event_ids: true` for every stream (then `X-Telex-Event-Ids: 0` declines it).
// The resume headers are always there, and a client that only counted chunks resumes with
// `?after=N`. The seeds' own readers (tests/integration/lib/seed_clients.js) read whole
// answers, also across a silence longer than the keep-alive interval.
// On the HTTP/1.1 wire (telex writes the chunk framing itself, http/chunked.c): one chunk per
// write, the size in lowercase hex, `transfer-encoding: chunked` once, the last chunk, and the
// connection kept alive for the next request.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';

import { baseConfig, startGateway, startStub, stopChecked } from './lib/relay.js';
import { request } from './lib/resume.js';
import { runSeedClient } from './lib/seed_clients.js';

const BASE = '"id":"chatcmpl-Ab12Cd34","object":"chat.completion.chunk","created":1733500000,' +
  '"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0aa8d3e20b"';
const choice = (delta, finish = null) =>
  `"choices":[{"index":0,"delta":${JSON.stringify(delta)},"logprobs":null,"finish_reason":${JSON.stringify(finish)}}]`;
const WORDS = ['Hello', ' there', ',', ' "friend"', ' \\ é 😀', '.'];

// The chunks OpenAI sends for a request; withUsage: the request asked for include_usage.
function openaiChunks(withUsage) {
  const u = withUsage ? ',"usage":null' : '';
  const out = [`{${BASE},${choice({ role: 'assistant', content: '', refusal: null })}${u}}`];
  for (const w of WORDS) out.push(`{${BASE},${choice({ content: w })}${u}}`);
  out.push(`{${BASE},${choice({}, 'stop')}${u}}`);
  if (withUsage)
    out.push(`{${BASE},"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}`);
  return out;
}
// n content chunks of ~250 bytes, some with multi-byte characters, as OpenAI frames them
const burstChunks = (n) => [
  `{${BASE},${choice({ role: 'assistant', content: '' })}}`,
  ...Array.from({ length: n }, (_, i) => `{${BASE},${choice({ content: i % 3 ? ` w${i}` : ` é😀${i}` })}}`),
  `{${BASE},${choice({}, 'stop')}}`,
];
const wire = (chunks) => chunks.map((c) => `data: ${c}\n\n`).join('') + 'data: [DONE]\n\n';

// The stub upstream: each chunk in its own write; a last message "pause:<ms>" makes it fall
// silent that long before the third chunk (the seeds' readers send only model and messages).
let stub;
let gw;
let gwIds; // streaming.event_ids: true
before(async () => {
  stub = await startStub((req, res, body) => {
    const j = JSON.parse(body);
    const chunks = openaiChunks(j.stream_options?.include_usage === true);
    const pause = Number(/^pause:(\d+)$/.exec(j.messages.at(-1).content)?.[1] ?? 0);
    const burst = Number(/^burst:(\d+)$/.exec(j.messages.at(-1).content)?.[1] ?? 0);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    if (burst > 0) { // the whole answer in one write
      res.end(wire(burstChunks(burst)));
      return;
    }
    let i = 0;
    const next = () => {
      if (i === chunks.length) {
        res.end('data: [DONE]\n\n');
        return;
      }
      res.write(`data: ${chunks[i++]}\n\n`);
      setTimeout(next, i === 2 ? pause : 5);
    };
    next();
  });
  const cfg = (patch) =>
    baseConfig(stub.url, {
      providers: [{ name: 'mock', kind: 'openai', base_url: `${stub.url}/v1`, api_key: 'sk-x', timeout_seconds: 5 }],
      models: [{ name: 'gpt-3.5-turbo', providers: [{ provider: 'mock', model: 'gpt-4o-mini' }] }],
      streaming: { keepalive_seconds: 0.2, idle_timeout_seconds: 10 },
      ...patch,
    });
  const c1 = cfg({});
  c1.providers = c1.providers.filter((p) => p.name === 'mock');
  c1.models = c1.models.filter((m) => m.name === 'gpt-3.5-turbo');
  gw = await startGateway(c1);
  const c2 = cfg({ streaming: { keepalive_seconds: 0.2, idle_timeout_seconds: 10, event_ids: true } });
  c2.providers = c1.providers;
  c2.models = c1.models;
  gwIds = await startGateway(c2);
});
after(async () => {
  if (gw) await stopChecked(gw);
  if (gwIds) await stopChecked(gwIds);
  await stub?.close();
});

const messages = [{ role: 'user', content: 'hi' }];
const paused = [{ role: 'user', content: 'pause:700' }];
const post = (g, extra = {}, headers = {}) =>
  request(`${g.url}/v1/chat/completions`, {
    body: { model: 'gpt-3.5-turbo', messages, stream: true, ...extra },
    headers,
  });

// Every body piece Node's http parser hands over (one per read of the socket): pieces.
function postPieces(g, extra = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${g.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      agent: false,
    });
    req.on('response', (res) => {
      const pieces = [];
      res.setEncoding('utf8');
      res.on('data', (d) => pieces.push(d));
      res.on('end', () => resolve({ res, pieces }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(JSON.stringify({ model: 'gpt-3.5-turbo', messages, stream: true, ...extra }));
  });
}

// POSTs on one raw keep-alive connection, one after another; for each response its head and
// its chunks, parsed strictly (a lowercase hex size without leading zeros, CRLF after the data,
// the last chunk "0\r\n\r\n" with no trailers).
function rawPosts(g, bodies) {
  const { hostname, port } = new URL(g.url);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), hostname);
    let buf = Buffer.alloc(0);
    const results = [];
    const send = () => {
      const body = JSON.stringify(bodies[results.length]);
      sock.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: ${hostname}:${port}\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    };
    // One whole response off the front of buf, or null while it is incomplete.
    const parse = () => {
      const headEnd = buf.indexOf('\r\n\r\n');
      if (headEnd < 0) return null;
      const head = buf.subarray(0, headEnd).toString('latin1');
      const chunks = [];
      let at = headEnd + 4;
      for (;;) {
        const eol = buf.indexOf('\r\n', at);
        if (eol < 0) return null;
        const line = buf.subarray(at, eol).toString('latin1');
        if (!/^(0|[1-9a-f][0-9a-f]*)$/.test(line)) throw new Error(`bad chunk size line ${JSON.stringify(line)}`);
        const size = parseInt(line, 16);
        if (size === 0) {
          if (buf.length < eol + 4) return null;
          if (buf.subarray(eol + 2, eol + 4).toString('latin1') !== '\r\n') throw new Error('trailers or junk after the last chunk');
          buf = buf.subarray(eol + 4);
          return { head, chunks };
        }
        if (buf.length < eol + 2 + size + 2) return null;
        chunks.push(buf.subarray(eol + 2, eol + 2 + size).toString('utf8'));
        if (buf.subarray(eol + 2 + size, eol + 4 + size).toString('latin1') !== '\r\n') throw new Error('no CRLF after chunk data');
        at = eol + 4 + size;
      }
    };
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      try {
        const r = parse();
        if (r === null) return;
        if (buf.length !== 0) throw new Error(`bytes after the response: ${JSON.stringify(buf.toString('latin1'))}`);
        results.push(r);
        if (results.length === bodies.length) {
          sock.end();
          resolve(results);
        } else send();
      } catch (e) {
        sock.destroy();
        reject(e);
      }
    });
    sock.on('error', reject);
    sock.on('close', () => reject(new Error(`closed after ${results.length} responses`)));
    sock.on('connect', send);
  });
}

describe('default framing: exactly OpenAI\'s', () => {
  test('no include_usage: the chunks OpenAI would send without it, byte for byte, and nothing else', async () => {
    const r = await post(gw);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.equal(r.text, wire(openaiChunks(false)));
    // telex did ask the provider for usage (its ledger needs it)
    assert.equal(JSON.parse(stub.requests.at(-1).body).stream_options.include_usage, true);
    // and the stream is still resumable
    assert.match(r.headers['x-telex-stream-id'], /^st_/);
    assert.match(r.headers['x-telex-resume-url'], /^\/v1\/streams\/st_.*\?token=/);
  });

  test('include_usage: every chunk as the provider sent it, "usage":null included, then usage', async () => {
    const r = await post(gw, { stream_options: { include_usage: true } });
    assert.equal(r.status, 200);
    const sent = openaiChunks(true);
    const got = r.events.map((e) => e.data);
    assert.deepEqual(got.slice(0, sent.length - 1), sent.slice(0, -1));
    const usage = JSON.parse(got[sent.length - 1]).usage;
    assert.equal(usage.total_tokens, 15);
    assert.equal(typeof usage.cost_usd, 'number');
    assert.equal(got.at(-1), '[DONE]');
    assert.doesNotMatch(r.text, /^(id|retry|:)/m);
  });

  test('a silence longer than keepalive_seconds brings no comment', async () => {
    const r = await post(gw, { messages: paused });
    assert.equal(r.text, wire(openaiChunks(false)));
  });

  test('HTTP/1.1 wire: whole events per chunk, transfer-encoding once, kept alive for the next request', async () => {
    const body = { model: 'gpt-3.5-turbo', messages, stream: true };
    const rs = await rawPosts(gw, [body, body]);
    for (const { head, chunks } of rs) {
      const lines = head.split('\r\n');
      assert.equal(lines[0], 'HTTP/1.1 200 OK');
      assert.deepEqual(lines.filter((l) => /^transfer-encoding:/i.test(l)), ['transfer-encoding: chunked']);
      assert.equal(lines.filter((l) => /^content-length:/i.test(l)).length, 0);
      assert.ok(lines.includes('Connection: keep-alive'), head);
      for (const c of chunks) assert.ok(/^(data: [^\n]*\n\n)+$/.test(c), JSON.stringify(c.slice(0, 60)));
      assert.equal(chunks.join(''), wire(openaiChunks(false)));
    }
  });

  test('a burst (the whole answer in one upstream write) goes out as whole events, 3 KiB in the first write, 16 KiB in later ones', async () => {
    const n = 80;
    const body = { model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: `burst:${n}` }], stream: true };
    const [{ chunks }] = await rawPosts(gw, [body]);
    assert.equal(chunks.join(''), wire(burstChunks(n)));
    for (const c of chunks) {
      assert.ok(/^(data: [^\n]*\n\n)+$/.test(c), JSON.stringify(c.slice(0, 60)));
      assert.ok(Buffer.byteLength(c) <= 16384, `a chunk of ${Buffer.byteLength(c)} bytes`);
    }
    // the write with the response head stays below byte 4,096 of the response (Chromium's first read)
    assert.ok(Buffer.byteLength(chunks[0]) <= 3072, `a first chunk of ${Buffer.byteLength(chunks[0])} bytes`);
    // ~250-byte events: several to a write, not one each (nor all in one)
    assert.ok(chunks.length <= Math.ceil(Buffer.byteLength(wire(burstChunks(n))) / 1536), `${chunks.length} writes`);
  });

  test('whole events per write: every piece the client reads starts with "data: " and ends a block', async () => {
    const { res, pieces } = await postPieces(gw);
    assert.equal(res.statusCode, 200);
    for (const p of pieces) {
      assert.ok(p.startsWith('data: ') && p.endsWith('\n\n'), JSON.stringify(p.slice(0, 60)));
    }
    assert.equal(pieces.join(''), wire(openaiChunks(false)));
  });
});

describe('telex framing, opt-in', () => {
  test('X-Telex-Event-Ids: 1: ids on every event, retry: on the first', async () => {
    const r = await post(gw, {}, { 'x-telex-event-ids': '1' });
    const sid = r.headers['x-telex-stream-id'];
    const n = openaiChunks(false).length + 1;
    assert.deepEqual(
      r.events.map((e) => e.id),
      Array.from({ length: n }, (_, i) => `${sid}.${i + 1}`),
    );
    assert.ok(r.text.startsWith(`id: ${sid}.1\nretry: 3000\ndata: {`), r.text.slice(0, 80));
    assert.deepEqual(
      r.events.map((e) => e.data),
      [...openaiChunks(false), '[DONE]'],
    );
  });

  test('with ids, a silence brings ": keepalive" comments', async () => {
    const r = await post(gw, { messages: paused }, { 'x-telex-event-ids': '1' });
    assert.ok(r.comments.length >= 1, `${r.comments.length} comments`);
    assert.equal(r.events.length, openaiChunks(false).length + 1);
  });

  test('streaming.event_ids: true gives ids without the header; X-Telex-Event-Ids: 0 declines them', async () => {
    const on = await post(gwIds);
    assert.ok(on.events.every((e) => e.id?.startsWith(on.headers['x-telex-stream-id'])));
    const off = await post(gwIds, {}, { 'x-telex-event-ids': '0' });
    assert.equal(off.text, wire(openaiChunks(false)));
  });

  test('GET /v1/streams/{id} always has ids; ?after=N resumes a client that counted chunks', async () => {
    const r = await post(gw);
    const sid = r.headers['x-telex-stream-id'];
    const url = `${gw.url}${r.headers['x-telex-resume-url']}`;
    const all = await request(url, { headers: { accept: 'text/event-stream' } });
    assert.equal(all.events.length, r.events.length);
    assert.equal(all.events[0].id, `${sid}.1`);
    const rest = await request(`${url}&after=3`, { headers: { accept: 'text/event-stream' } });
    assert.equal(rest.status, 200);
    assert.deepEqual(
      rest.events.map((e) => e.data),
      r.events.slice(3).map((e) => e.data),
    );
    assert.equal(rest.events[0].id, `${sid}.4`);
    const bad = await request(`${url}&after=x1`, { headers: { accept: 'application/json' } });
    assert.equal(bad.status, 400);
    assert.equal(JSON.parse(bad.text).error.code, 'bad_after');
    const beyond = await request(`${url}&after=99`, { headers: { accept: 'application/json' } });
    assert.equal(beyond.status, 400);
    assert.equal(JSON.parse(beyond.text).error.param, 'after');
  });
});

describe("the seeds' own readers", () => {
  const answer = WORDS.join('');
  for (const which of ['001', '002']) {
    test(`seed ${which} reads the whole answer`, async () => {
      const text = await runSeedClient(which, `${gw.url}/v1/chat/completions`, { model: 'gpt-3.5-turbo', messages });
      assert.equal(text, answer);
    });
    test(`seed ${which} reads the whole answer across a silence longer than keepalive_seconds`, async () => {
      const text = await runSeedClient(which, `${gw.url}/v1/chat/completions`, {
        model: 'gpt-3.5-turbo',
        messages: paused,
      });
      assert.equal(text, answer);
    });
  }
});
