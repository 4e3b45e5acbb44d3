// tests/integration/mock.test.js — `telex mock`, the fake OpenAI upstream, as the
// other suites and benchmarks use it.
//
// Starts real `telex mock --listen 127.0.0.1:0` processes ($TELEX_BIN, default
// build/telex) and talks to them with fetch, node:http and curl:
//  - the stream: exact chat.completion.chunk sequence, headers, usage on/off,
//    deterministic text (seed / prompt / given text split at word boundaries);
//  - every knob (tokens, delay_ms, ttft_ms, stamp) per request and as flags;
//  - every fault (status + retry_after, cut_after, stall_after (+ stall_ms),
//    malformed_after, invalid_json_after, oversize_after, no_done);
//  - /mock/requests: bodies, redacted secrets, progress, client_gone within 1 s
//    during a stall, a delay and the time to first token (HTTP/1 and HTTP/2);
//  - non-streamed answers, /v1/models (also --models and Anthropic's shape), /healthz, the Azure path, bad input;
//  - hundreds of concurrent streams, SIGTERM with streams in flight, flags.
import test, { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

import { LATE_MS, SANITIZED, SYNC_TIMEOUT_MS, TELEX_BIN, startMock, startProcess, stopProcess, waitFor } from './lib/proc.js';
import { chunksOf, collectSSE, contentOf, parseSSEText, postChat } from './lib/sse.js';

// Timing: the pacing is checked on the mock's own clock (`stamp`: mock_sent_ns) or from the
// moment the request was sent (lower bounds), never from gaps between arrivals, which a busy
// machine stretches and squeezes; deadlines get LATE_MS of margin (lib/proc.js).
const msgs = (text = 'hi there') => [{ role: 'user', content: text }];
const chat = (mock = {}, extra = {}) => ({ model: 'gpt-test', messages: msgs(), stream: true, mock, ...extra });

let mock; // the shared mock, default flags

// Under ASan, h2o's per-thread pool recycle bin looks leaked at exit (see lib/lsan.supp).
const LSAN_ENV = SANITIZED
  ? { LSAN_OPTIONS: `suppressions=${fileURLToPath(new URL('./lib/lsan.supp', import.meta.url))}:print_suppressions=0` }
  : {};
const startMockChecked = (args = []) => startMock(args, { env: LSAN_ENV });
// Stops a mock and asserts a clean exit: status 0, no sanitizer report.
async function stopChecked(proc) {
  const exit = await stopProcess(proc);
  const report = /(AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:)[\s\S]*/.exec(proc.stderr());
  assert.equal(report, null, `sanitizer report:\n${report?.[0].slice(0, 4000)}`);
  assert.deepEqual(exit, { code: 0, signal: null });
  return exit;
}

async function journal(base, since = 0) {
  const r = await fetch(`${base}/mock/requests?since=${since}`);
  assert.equal(r.status, 200);
  return r.json();
}
async function lastSeq(base) {
  return (await journal(base)).total;
}
// The journal entry of the only request made since `since`.
async function onlyEntry(base, since) {
  const { requests } = await journal(base, since);
  assert.equal(requests.length, 1, `one request since ${since}: ${JSON.stringify(requests)}`);
  return requests[0];
}
// An AbortSignal that fires once the mock has the request made after `since` (a client that
// leaves while the mock is still silent, whatever the machine's pace).
function leaveOnceReceived(base, since) {
  const ac = new AbortController();
  const leave = () => ac.abort();
  waitFor(async () => (await journal(base, since)).requests.length > 0, { message: 'the request at the mock' }).then(leave, leave);
  return ac.signal;
}
// When the mock sent each chunk, in ms on CLOCK_MONOTONIC (requests with `stamp: true`).
const sentMs = (events) => chunksOf(events).map((c) => c.mock_sent_ns / 1e6);
const diffs = (xs) => xs.slice(1).map((x, i) => x - xs[i]);

before(async () => {
  mock = await startMockChecked();
});
after(async () => {
  await stopChecked(mock);
});

describe('process', () => {
  test('logs a listening line with the chosen port and answers /healthz', async () => {
    assert.ok(mock.port > 0);
    const line = mock.logs.find((l) => l.msg === 'listening');
    assert.equal(line.name, 'mock');
    assert.equal(line.address, `127.0.0.1:${mock.port}`);
    const r = await fetch(`${mock.url}/healthz`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { status: 'ok' });
  });

  test('--help describes every flag; bad flags exit 64', () => {
    const help = spawnSync(TELEX_BIN, ['mock', '--help'], { encoding: 'utf8', timeout: SYNC_TIMEOUT_MS });
    assert.equal(help.status, 0);
    for (const flag of ['--listen', '--workers', '--tokens', '--delay-ms', '--ttft-ms', '--stall-ms', '--journal', '--format'])
      assert.match(help.stdout, new RegExp(flag));
    for (const args of [
      ['--tokens', 'x'],
      ['--tokens', '-1'],
      ['--delay-ms'],
      ['--format', 'gemini'],
      ['--listen', 'nope'],
      ['--listen', '127.0.0.1:70000'],
      ['--workers', '0'],
      ['--bogus', '1'],
      ['stray'],
    ]) {
      const r = spawnSync(TELEX_BIN, ['mock', ...args], { encoding: 'utf8', timeout: 5000 });
      assert.equal(r.status, 64, `telex mock ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /telex mock:/);
    }
  });

  test('flags set the defaults of every request', async () => {
    const m = await startMockChecked(['--tokens', '3', '--delay-ms', '60', '--ttft-ms', '150', '--journal', '2', '--workers', '2']);
    try {
      const r = await postChat(m.url, { model: 'x', messages: msgs(), stream: true });
      assert.equal(r.error, null);
      const chunks = chunksOf(r.events);
      assert.equal(chunks.filter((c) => c.choices[0]?.delta?.content).length, 3);
      assert.ok(r.events[0].t >= 140, `ttft ${r.events[0].t}`);
      // content 3 is due 2 x 60 ms after content 1, which comes with the role chunk at 150 ms
      const content = r.events.slice(1, 4);
      assert.ok(content[2].t >= 150 + 2 * 60 - 5, `3 chunks 60 ms apart: ${content.map((e) => e.t.toFixed(0))}`);
      // a request still overrides them
      const o = await postChat(m.url, chat({ tokens: 1, ttft_ms: 0 }));
      assert.equal(chunksOf(o.events).filter((c) => c.choices[0]?.delta?.content).length, 1);
      // --journal 2 keeps only the last two
      await fetch(`${m.url}/v1/models`);
      const j = await journal(m.url);
      assert.equal(j.requests.length, 2);
      assert.equal(j.total, 3);
      assert.deepEqual(
        j.requests.map((e) => e.path),
        ['/v1/chat/completions', '/v1/models'],
      );
    } finally {
      await stopChecked(m);
    }
  });

  test('SIGTERM ends streams in flight and exits promptly, cleanly', async () => {
    const m = await startMockChecked();
    const pending = postChat(m.url, chat({ tokens: 5, stall_after: 2 }));
    await waitFor(async () => (await journal(m.url)).requests[0]?.outcome === 'stalled', { message: 'stall' });
    const t = Date.now();
    await stopChecked(m);
    // docs/mock.md: "exit within about a second" (the stall would last 10 minutes)
    assert.ok(Date.now() - t < 1000 + LATE_MS, `exit took ${Date.now() - t} ms`);
    const r = await pending;
    assert.ok(r.error, 'the stalled stream was cut');
    assert.equal(contentOf(r.events).split(' ').length, 2);
  });

  test('listens on IPv6 loopback', { skip: !fs.existsSync('/proc/net/if_inet6') }, async (t) => {
    let m;
    try {
      m = await startProcess(['mock', '--listen', '[::1]:0'], { env: LSAN_ENV });
    } catch (e) {
      t.skip(`no IPv6 loopback here: ${e.message.split('\n')[0]}`);
      return;
    }
    try {
      assert.match(m.address, /^\[::1\]:\d+$/);
      const r = await fetch(`${m.url}/healthz`);
      assert.equal(r.status, 200);
    } finally {
      await stopChecked(m);
    }
  });
});

describe('streamed answer', () => {
  test('exact chat.completion.chunk sequence with the default 20 tokens', async () => {
    const r = await postChat(mock.url, { model: 'gpt-test', messages: msgs(), stream: true });
    assert.equal(r.status, 200);
    assert.equal(r.error, null);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/);
    assert.equal(r.headers.get('cache-control'), 'no-cache');
    // one SSE event per chunk, each "data: {...}\n\n"
    assert.ok(r.raw.toString().split('\n\n').slice(0, -1).every((e) => e.startsWith('data: ')));
    assert.equal(r.events.at(-1).data, '[DONE]');
    const chunks = chunksOf(r.events);
    assert.equal(chunks.length, 1 + 20 + 1, 'role + 20 content + finish, no usage');
    const id = chunks[0].id;
    assert.match(id, /^chatcmpl-/);
    for (const c of chunks) {
      assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(c.id, id);
      assert.equal(c.model, 'gpt-test');
      assert.equal(typeof c.created, 'number');
      assert.equal(c.choices.length, 1);
      assert.equal(c.choices[0].index, 0);
      assert.ok(!('usage' in c), 'no usage key unless include_usage');
      assert.ok(!('mock_sent_ns' in c));
    }
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '', refusal: null });
    assert.equal(chunks[0].choices[0].finish_reason, null);
    for (const c of chunks.slice(1, 21)) {
      assert.deepEqual(Object.keys(c.choices[0].delta), ['content']);
      assert.ok(c.choices[0].delta.content.length > 0);
      assert.equal(c.choices[0].finish_reason, null);
    }
    assert.deepEqual(chunks[21].choices[0].delta, {});
    assert.equal(chunks[21].choices[0].finish_reason, 'stop');
    const text = contentOf(r.events);
    assert.match(text, /^[A-Z][a-z]+( [a-z]+){19}\.$/);
  });

  test('usage chunk when include_usage is asked, usage:null on the others; mock.usage:false drops it', async () => {
    const r = await postChat(mock.url, chat({ tokens: 4 }, { stream_options: { include_usage: true } }));
    const chunks = chunksOf(r.events);
    assert.equal(chunks.length, 1 + 4 + 1 + 1);
    for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null);
    const u = chunks.at(-1);
    assert.deepEqual(u.choices, []);
    assert.deepEqual(u.usage, { prompt_tokens: 2, completion_tokens: 4, total_tokens: 6 });
    assert.equal(r.events.at(-1).data, '[DONE]');

    const off = await postChat(mock.url, chat({ tokens: 4, usage: false }, { stream_options: { include_usage: true } }));
    const offChunks = chunksOf(off.events);
    assert.equal(offChunks.length, 1 + 4 + 1);
    assert.ok(offChunks.every((c) => c.choices.length === 1));
    assert.equal(off.events.at(-1).data, '[DONE]');
  });

  test('the answer is reproducible: same request, same text; prompt and seed change it', async () => {
    const a = contentOf((await postChat(mock.url, chat({}, { messages: msgs('one') }))).events);
    const b = contentOf((await postChat(mock.url, chat({}, { messages: msgs('one') }))).events);
    const c = contentOf((await postChat(mock.url, chat({}, { messages: msgs('two') }))).events);
    assert.equal(a, b);
    assert.notEqual(a, c);
    const s1 = contentOf((await postChat(mock.url, chat({}, { seed: 1, messages: msgs('one') }))).events);
    const s1b = contentOf((await postChat(mock.url, chat({}, { seed: 1, messages: msgs('other') }))).events);
    const s2 = contentOf((await postChat(mock.url, chat({ seed: 2 }, { seed: 1 }))).events);
    assert.equal(s1, s1b, 'the seed decides, not the prompt');
    assert.notEqual(s1, s2, 'mock.seed wins over seed');
  });

  test('mock.text is streamed split at word boundaries, byte for byte', async () => {
    const text = 'Hello, "world"\n  again ünïcødé 🎉 \\ tab\there ';
    const r = await postChat(mock.url, chat({ text }));
    const tokens = chunksOf(r.events)
      .slice(1, -1)
      .map((c) => c.choices[0].delta.content);
    assert.deepEqual(tokens, ['Hello,', ' "world"', '\n  again', ' ünïcødé', ' 🎉', ' \\', ' tab', '\there ']);
    assert.equal(contentOf(r.events), text);
    const empty = await postChat(mock.url, chat({ text: '' }));
    assert.equal(chunksOf(empty.events).length, 2, 'role + finish');
  });

  test('tokens, ttft_ms and delay_ms pace the chunks', async () => {
    const r = await postChat(mock.url, chat({ tokens: 5, ttft_ms: 300, delay_ms: 100, stamp: true }));
    assert.equal(r.error, null);
    assert.ok(r.headersAt >= 290, `headers come with the first chunk, after ttft (${r.headersAt})`);
    assert.ok(r.events[0].t >= 290, `first chunk at ${r.events[0].t}`);
    const content = r.events.slice(1, 6);
    assert.equal(content.length, 5);
    // On the planned timeline, as the mock sent them: a late chunk shortens the next gap, never
    // below delay/2; the last is due 4 delays after the first (lateness does not accumulate).
    const sent = sentMs(content);
    for (const g of diffs(sent)) assert.ok(g >= 50 - 5, `content gaps ${diffs(sent).map((x) => x.toFixed(1))}`);
    // a late first content chunk shortens the span by its lateness, which the gap rule bounds
    // by delay/2 (seen under load: the first content chunk 14 ms late, span 386 ms)
    const span = sent[4] - sent[0];
    assert.ok(span >= 4 * 100 - 50 - 5 && span < 4 * 100 + LATE_MS, `span ${span}`);
    assert.ok(r.endAt >= 700, `whole stream ${r.endAt}`);
  });

  test('the first content chunk comes with the role chunk, not delay_ms after it', async () => {
    // a delay far longer than any lateness: the client leaves after those two chunks
    const r = await postChat(mock.url, chat({ tokens: 2, delay_ms: 20000 }), { stopAfter: (e, evs) => evs.length === 2 });
    assert.ok(r.aborted);
    assert.equal(chunksOf(r.events)[1].choices[0].delta.content.length > 0, true);
    assert.ok(r.events[1].t - r.events[0].t < 20000 / 2, `${r.events[1].t - r.events[0].t} ms after the role chunk`);
  });

  test('stamp adds a CLOCK_MONOTONIC mock_sent_ns to every chunk', async () => {
    // Node's process.hrtime is CLOCK_MONOTONIC too: each stamp lies between the moment the
    // request was sent and the moment its chunk arrived
    const arrived = [];
    const sentAt = process.hrtime.bigint();
    const r = await postChat(mock.url, chat({ tokens: 4, delay_ms: 50, stamp: true }, { stream_options: { include_usage: true } }), {
      onEvent: () => arrived.push(process.hrtime.bigint()),
    });
    const ns = chunksOf(r.events).map((c) => c.mock_sent_ns);
    assert.equal(ns.length, 7);
    for (const v of ns) assert.ok(Number.isInteger(v) && v > 0);
    for (let i = 1; i < ns.length; i++) assert.ok(ns[i] >= ns[i - 1], 'monotonic');
    for (const [i, v] of ns.entries()) {
      assert.ok(BigInt(v) >= sentAt && BigInt(v) <= arrived[i], `chunk ${i} stamped between the request and its arrival`);
    }
    const gapMs = (ns[4] - ns[1]) / 3 / 1e6; // content 1..4
    assert.ok(gapMs >= 40 && gapMs < 50 + LATE_MS / 3, `sent 50 ms apart: ${gapMs}`);
  });

  test('curl -N sees the chunks live; a cut is a transfer error for curl', async () => {
    const curl = (args) =>
      new Promise((resolve) => {
        const p = spawn('curl', ['-sS', '-N', ...args]);
        let out = '';
        let err = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (err += d));
        p.on('exit', (code) => resolve({ code, out, err }));
      });
    const url = `${mock.url}/v1/chat/completions`;
    const ok = await curl([url, '-H', 'content-type: application/json', '-d', JSON.stringify(chat({ tokens: 3 }))]);
    assert.equal(ok.code, 0, ok.err);
    const events = parseSSEText(ok.out);
    assert.equal(events.length, 1 + 3 + 1 + 1);
    assert.equal(events.at(-1).data, '[DONE]');

    const cut = await curl([url, '-d', JSON.stringify(chat({ tokens: 5, cut_after: 2 }))]);
    assert.equal(cut.code, 18, `curl: transfer closed with outstanding data (${cut.err})`);
    const cutEvents = parseSSEText(cut.out);
    assert.equal(cutEvents.length, 3, 'role + 2 content, then the cut');

    const h2 = await curl(['--http2-prior-knowledge', url, '-d', JSON.stringify(chat({ tokens: 3 }))]);
    assert.equal(h2.code, 0, h2.err);
    assert.equal(parseSSEText(h2.out).at(-1).data, '[DONE]');
  });
});

describe('faults', () => {
  test('status answers an OpenAI error before streaming, with Retry-After', async () => {
    const r = await fetch(`${mock.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify(chat({ status: 429, retry_after: 7 })),
    });
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '7');
    assert.match(r.headers.get('content-type'), /application\/json/);
    const body = await r.json();
    assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(body.error.code, 'rate_limit_exceeded');
    assert.equal(typeof body.error.message, 'string');

    const t0 = performance.now();
    const s = await fetch(`${mock.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify(chat({ status: 503, ttft_ms: 200 })),
    });
    assert.equal(s.status, 503);
    assert.ok(performance.now() - t0 >= 190, 'the error waits ttft_ms');
    assert.equal(s.headers.get('retry-after'), null);
    assert.equal((await s.json()).error.type, 'server_error');
  });

  test('cut_after closes the connection abruptly after N content chunks', async () => {
    const since = await lastSeq(mock.url);
    const r = await postChat(mock.url, chat({ tokens: 5, cut_after: 2 }));
    assert.ok(r.error, 'the body ends with an error');
    assert.equal(r.events.length, 3, 'role + 2 content');
    assert.ok(!r.events.some((e) => e.data === '[DONE]'));
    const e = await onlyEntry(mock.url, since);
    assert.equal(e.outcome, 'cut');
    assert.equal(e.content_events, 2);
    assert.equal(e.completed, false);
    assert.equal(e.client_gone, false);

    const zero = await postChat(mock.url, chat({ cut_after: 0 }));
    assert.equal(zero.status, 0, 'cut_after 0: no response at all');
    assert.ok(zero.error);
  });

  test('stall_after goes silent but keeps the connection; the mock sees the client leave within 200 ms', async () => {
    const since = await lastSeq(mock.url);
    // the client gives up once the mock says it stalls (the stall lasts 10 minutes)
    const leave = new AbortController();
    const giveUp = () => leave.abort();
    waitFor(async () => (await journal(mock.url, since)).requests[0]?.outcome === 'stalled', { message: 'stall' }).then(giveUp, giveUp);
    const r = await collectSSE(`${mock.url}/v1/chat/completions`, {
      body: chat({ tokens: 5, stall_after: 2, delay_ms: 10 }),
      signal: leave.signal,
    });
    assert.equal(r.events.length, 3, 'role + 2 content, then nothing');
    assert.ok(r.aborted, 'the client gave up');
    const leftAt = Date.now();
    const e = await waitFor(async () => {
      const x = await onlyEntry(mock.url, since);
      return x.client_gone && x;
    }, { message: 'client_gone' });
    assert.equal(e.content_events, 2);
    assert.equal(e.completed, false);
    assert.ok(e.gone_at_ms - leftAt < 200 + LATE_MS, `noticed after ${e.gone_at_ms - leftAt} ms`);
  });

  test('stall_after with stall_ms resumes and completes', async () => {
    const r = await postChat(mock.url, chat({ tokens: 4, stall_after: 2, stall_ms: 500, delay_ms: 10, stamp: true }));
    assert.equal(r.error, null);
    assert.equal(r.events.at(-1).data, '[DONE]');
    const gaps = diffs(sentMs(r.events)); // as the mock sent them
    assert.ok(gaps[2] >= 500 - 5, `the stall is between content 2 and 3: ${gaps}`);
  });

  test('malformed_after sends a line that is no event-stream field, then goes on', async () => {
    const r = await postChat(mock.url, chat({ tokens: 3, malformed_after: 1 }));
    assert.equal(r.error, null);
    const bad = r.raw.indexOf(Buffer.from([0xff, 0xfe]));
    assert.ok(bad > 0, 'invalid UTF-8 bytes on the wire');
    assert.equal(r.raw.subarray(bad - 2, bad).toString(), '\n\n', 'right after the first content event');
    assert.ok(r.parseErrors.length >= 1, 'a WHATWG parser sees an unknown field');
    assert.equal(contentOf(r.events).split(' ').length, 3, 'the stream goes on');
    assert.equal(r.events.at(-1).data, '[DONE]');
  });

  test('invalid_json_after sends data: {not json', async () => {
    const r = await postChat(mock.url, chat({ tokens: 3, invalid_json_after: 1 }));
    assert.equal(r.events[2].data, '{not json');
    assert.throws(() => JSON.parse(r.events[2].data));
    assert.equal(r.events.at(-1).data, '[DONE]');
  });

  test('oversize_after sends one event over 1 MiB (or oversize_bytes)', async () => {
    const r = await postChat(mock.url, chat({ tokens: 2, oversize_after: 1 }));
    const big = r.events.find((e) => e.data.length > 1024 * 1024);
    assert.ok(big, 'a giant event');
    assert.ok(JSON.parse(big.data).mock_padding.length > 1024 * 1024);
    const small = await postChat(mock.url, chat({ tokens: 2, oversize_after: 0, oversize_bytes: 5000 }));
    assert.equal(small.events[0].data.length, 5000 - 'data: '.length - 2);
    assert.equal(small.events.at(-1).data, '[DONE]');
  });

  test('no_done ends the body cleanly without [DONE]', async () => {
    const since = await lastSeq(mock.url);
    const r = await postChat(mock.url, chat({ tokens: 2, no_done: true }));
    assert.equal(r.error, null);
    assert.ok(!r.events.some((e) => e.data === '[DONE]'));
    assert.equal(chunksOf(r.events).at(-1).choices[0].finish_reason, 'stop');
    const e = await onlyEntry(mock.url, since);
    assert.equal(e.completed, true);
  });

  test('faults past the last chunk fire before the finish chunk', async () => {
    const r = await postChat(mock.url, chat({ tokens: 2, cut_after: 99 }));
    assert.ok(r.error);
    assert.equal(contentOf(r.events).split(' ').length, 2);
    assert.ok(chunksOf(r.events).every((c) => c.choices[0].finish_reason === null));
  });
});

describe('client going away', () => {
  test('during a long delay, over HTTP/1', async () => {
    const since = await lastSeq(mock.url);
    const r = await collectSSE(`${mock.url}/v1/chat/completions`, {
      body: chat({ tokens: 3, delay_ms: 60000 }),
      stopAfter: (ev, evs) => evs.length === 2,
    });
    assert.ok(r.aborted);
    const leftAt = Date.now();
    const e = await waitFor(async () => {
      const x = await onlyEntry(mock.url, since);
      return x.client_gone && x;
    }, { message: 'client_gone' });
    assert.equal(e.content_events, 1);
    assert.ok(e.gone_at_ms - leftAt < 200 + LATE_MS, `noticed after ${e.gone_at_ms - leftAt} ms`);
  });

  test('before the first chunk (ttft)', async () => {
    const since = await lastSeq(mock.url);
    const r = await collectSSE(`${mock.url}/v1/chat/completions`, {
      body: chat({ ttft_ms: 60000 }),
      signal: leaveOnceReceived(mock.url, since),
    });
    assert.ok(r.aborted);
    assert.equal(r.status, 0, 'left before the first chunk (and the headers, which come with it)');
    const leftAt = Date.now();
    const e = await waitFor(async () => {
      const x = await onlyEntry(mock.url, since);
      return x.client_gone && x;
    }, { message: 'client_gone' });
    assert.equal(e.events, 0);
    assert.ok(e.gone_at_ms - leftAt < 200 + LATE_MS, `noticed after ${e.gone_at_ms - leftAt} ms`);
  });

  test('during a stall, over HTTP/2 (stream reset)', async () => {
    const since = await lastSeq(mock.url);
    const r = spawnSync(
      'curl',
      ['-sS', '-N', '-m', '1', '--http2-prior-knowledge', `${mock.url}/v1/chat/completions`, '-d', JSON.stringify(chat({ stall_after: 1 }))],
      { encoding: 'utf8', timeout: SYNC_TIMEOUT_MS },
    );
    assert.equal(r.status, 28, 'curl timed out');
    const e = await waitFor(async () => {
      const x = await onlyEntry(mock.url, since);
      return x.client_gone && x;
    }, { message: 'client_gone' });
    assert.equal(e.content_events, 1);
  });
});

describe('other endpoints and shapes', () => {
  test('stream false returns one chat.completion with the same text', async () => {
    const body = { model: 'gpt-test', messages: msgs('same prompt'), mock: { tokens: 6, ttft_ms: 150 } };
    const t0 = performance.now();
    const r = await fetch(`${mock.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(body) });
    assert.ok(performance.now() - t0 >= 140);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /application\/json/);
    const o = await r.json();
    assert.equal(o.object, 'chat.completion');
    assert.equal(o.model, 'gpt-test');
    assert.equal(o.choices[0].message.role, 'assistant');
    assert.equal(o.choices[0].finish_reason, 'stop');
    assert.deepEqual(o.usage, { prompt_tokens: 2, completion_tokens: 6, total_tokens: 8 });
    const streamed = await postChat(mock.url, { ...body, stream: true, mock: { tokens: 6 } });
    assert.equal(o.choices[0].message.content, contentOf(streamed.events));
  });

  test('GET /v1/models lists the model "mock"', async () => {
    const r = await fetch(`${mock.url}/v1/models`);
    assert.equal(r.status, 200);
    const o = await r.json();
    assert.equal(o.object, 'list');
    assert.deepEqual(o.data.map((m) => m.id), ['mock']);
    assert.equal(o.data[0].object, 'model');
  });

  test('--models: GET /v1/models lists those ids; Anthropic\'s shape when asked with anthropic-version', async () => {
    const m = await startMockChecked(['--models', 'gpt-a,claude-b']);
    try {
      const o = await (await fetch(`${m.url}/v1/models`)).json();
      assert.deepEqual(o, {
        object: 'list',
        data: [
          { id: 'gpt-a', object: 'model', created: 1700000000, owned_by: 'telex-mock' },
          { id: 'claude-b', object: 'model', created: 1700000000, owned_by: 'telex-mock' },
        ],
      });
      const a = await (await fetch(`${m.url}/v1/models?limit=1000`, { headers: { 'anthropic-version': '2023-06-01' } })).json();
      assert.deepEqual(a, {
        data: [
          { type: 'model', id: 'gpt-a', display_name: 'gpt-a', created_at: '2023-11-14T22:13:20Z' },
          { type: 'model', id: 'claude-b', display_name: 'claude-b', created_at: '2023-11-14T22:13:20Z' },
        ],
        has_more: false,
      });
    } finally {
      await stopChecked(m);
    }
  });

  test('the Azure path answers the same, model from the deployment', async () => {
    const r = await collectSSE(`${mock.url}/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21`, {
      body: { messages: msgs(), stream: true, mock: { tokens: 2 } },
      headers: { 'api-key': 'azure-SECRET-key' },
    });
    assert.equal(r.status, 200);
    assert.ok(chunksOf(r.events).every((c) => c.model === 'my-gpt'));
    assert.equal(r.events.at(-1).data, '[DONE]');
  });

  test('bad input gets an OpenAI-style error with the right status', async () => {
    const url = `${mock.url}/v1/chat/completions`;
    const cases = [
      { body: 'not json', status: 400 },
      { body: '[1,2]', status: 400 },
      { body: '', status: 400 },
      { body: { model: 'x' }, status: 400, param: 'messages' },
      { body: { model: 'x', messages: [] }, status: 400, param: 'messages' },
      { body: { model: 'x', messages: ['hi'] }, status: 400, param: 'messages[0]' },
      { body: { messages: msgs() }, status: 400, param: 'model' },
      { body: { model: 7, messages: msgs() }, status: 400, param: 'model' },
      { body: { model: 'x', messages: msgs(), stream: 'yes' }, status: 400, param: 'stream' },
      { body: { model: 'x', messages: msgs(), stream_options: 1 }, status: 400, param: 'stream_options' },
      { body: { model: 'x', messages: msgs(), mock: [] }, status: 400, param: 'mock' },
      { body: { model: 'x', messages: msgs(), mock: { tokenz: 1 } }, status: 400, param: 'mock.tokenz' },
      { body: { model: 'x', messages: msgs(), mock: { tokens: -1 } }, status: 400, param: 'mock.tokens' },
      { body: { model: 'x', messages: msgs(), mock: { tokens: 1.5 } }, status: 400, param: 'mock.tokens' },
      { body: { model: 'x', messages: msgs(), mock: { status: 200 } }, status: 400, param: 'mock.status' },
      { body: { model: 'x', messages: msgs(), mock: { retry_after: 3 } }, status: 400, param: 'mock.retry_after' },
      { body: { model: 'x', messages: msgs(), mock: { stamp: 1 } }, status: 400, param: 'mock.stamp' },
      { body: { model: 'x', messages: msgs(), mock: { text: 5 } }, status: 400, param: 'mock.text' },
      { method: 'GET', status: 405, allow: 'POST' },
      { method: 'PUT', body: '{}', status: 405, allow: 'POST' },
      { path: '/v1/models', method: 'POST', body: '{}', status: 405, allow: 'GET' },
      { path: '/nope', method: 'GET', status: 404 },
      { path: '/v1/chat/completion', method: 'POST', body: '{}', status: 404 },
    ];
    for (const c of cases) {
      const r = await fetch(c.path ? `${mock.url}${c.path}` : url, {
        method: c.method ?? 'POST',
        body: c.body === undefined ? undefined : typeof c.body === 'string' ? c.body : JSON.stringify(c.body),
      });
      const label = JSON.stringify(c);
      assert.equal(r.status, c.status, label);
      assert.match(r.headers.get('content-type'), /application\/json/, label);
      const o = await r.json();
      assert.deepEqual(Object.keys(o), ['error'], label);
      assert.deepEqual(Object.keys(o.error).sort(), ['code', 'message', 'param', 'type'], label);
      assert.ok(o.error.message.length > 0, label);
      if (c.param) assert.equal(o.error.param, c.param, label);
      if (c.allow) assert.equal(r.headers.get('allow'), c.allow, label);
    }
  });
});

describe('/mock/requests', () => {
  test('records body, headers without secrets, and progress', async () => {
    const since = await lastSeq(mock.url);
    const body = chat({ tokens: 3 }, { temperature: 0.5 });
    const r = await postChat(mock.url, body, {
      headers: {
        authorization: 'Bearer sk-test-SECRET-1',
        'x-api-key': 'SECRET-2',
        cookie: 'session=SECRET-3',
        'x-trace': 'abc',
      },
    });
    assert.equal(r.error, null);
    const dump = await (await fetch(`${mock.url}/mock/requests?since=${since}`)).text();
    assert.ok(!dump.includes('SECRET'), 'no secret is ever returned');
    const e = JSON.parse(dump).requests[0];
    assert.equal(e.seq, since + 1);
    assert.equal(e.method, 'POST');
    assert.equal(e.path, '/v1/chat/completions');
    assert.equal(e.authority, `127.0.0.1:${mock.port}`);
    assert.deepEqual(e.body, body);
    assert.equal(e.headers.authorization, 'Bearer [redacted]');
    assert.equal(e.headers['x-api-key'], '[redacted]');
    assert.equal(e.headers.cookie, '[redacted]');
    assert.equal(e.headers['x-trace'], 'abc');
    assert.equal(e.headers['content-type'], 'application/json');
    assert.equal(e.status, 200);
    assert.equal(e.events, 1 + 3 + 1 + 1);
    assert.equal(e.content_events, 3);
    assert.equal(e.completed, true);
    assert.equal(e.client_gone, false);
    assert.equal(e.gone_at_ms, null);
    assert.equal(e.outcome, 'completed');
    assert.ok(Math.abs(e.received_ms - Date.now()) < 5000);
    assert.ok(e.ended_ms >= e.received_ms);
  });

  test('records rejected requests and the raw body of non-JSON', async () => {
    const since = await lastSeq(mock.url);
    await fetch(`${mock.url}/v1/chat/completions`, { method: 'POST', body: '{oops' });
    const e = await onlyEntry(mock.url, since);
    assert.equal(e.body, '{oops');
    assert.equal(e.status, 400);
    assert.equal(e.outcome, 'rejected');
  });

  test('in flight entries show progress; DELETE clears; since filters', async () => {
    const since = await lastSeq(mock.url);
    // the client stays until the entry has been seen in flight (not for a fixed 800 ms)
    const leave = new AbortController();
    const pending = collectSSE(`${mock.url}/v1/chat/completions`, { body: chat({ tokens: 3, stall_after: 1 }), signal: leave.signal });
    const e = await waitFor(async () => {
      const x = (await journal(mock.url, since)).requests[0];
      return x?.outcome === 'stalled' && x;
    }, { message: 'stalled entry' });
    assert.equal(e.completed, false);
    assert.equal(e.content_events, 1);
    assert.equal(e.ended_ms, null);
    leave.abort();
    await pending;
    const del = await fetch(`${mock.url}/mock/requests`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    const after = await journal(mock.url);
    assert.deepEqual(after.requests, []);
    assert.ok(after.total >= since + 1, 'sequence numbers keep counting');
    await fetch(`${mock.url}/v1/models`);
    assert.equal((await journal(mock.url, after.total)).requests.length, 1);
    assert.equal((await journal(mock.url, after.total + 1)).requests.length, 0);
  });

  test('the last 1000 requests are kept, oldest first', async () => {
    await fetch(`${mock.url}/mock/requests`, { method: 'DELETE' });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
    const get = () =>
      new Promise((resolve, reject) => {
        http.get(`${mock.url}/v1/models`, { agent }, (res) => {
          res.resume();
          res.on('end', resolve);
        }).on('error', reject);
      });
    const start = await lastSeq(mock.url);
    for (let i = 0; i < 1100; i += 100) await Promise.all(Array.from({ length: 100 }, get));
    agent.destroy();
    const j = await journal(mock.url);
    assert.equal(j.requests.length, 1000);
    assert.equal(j.requests[0].seq, start + 101);
    assert.equal(j.requests.at(-1).seq, start + 1100);
    for (let i = 1; i < j.requests.length; i++) assert.ok(j.requests[i].seq > j.requests[i - 1].seq);
  });
});

describe('load', () => {
  test('500 concurrent streams all complete intact', async () => {
    const n = 500;
    const body = (i) => chat({ tokens: 10, delay_ms: 20, seed: i });
    const results = await Promise.all(Array.from({ length: n }, (_, i) => postChat(mock.url, body(i))));
    const expected = new Map();
    for (let i = 0; i < 3; i++) {
      const one = await postChat(mock.url, body(i));
      expected.set(i, contentOf(one.events));
    }
    for (const [i, r] of results.entries()) {
      assert.equal(r.error, null, `stream ${i}: ${r.error}`);
      assert.equal(r.events.length, 1 + 10 + 1 + 1);
      assert.equal(r.events.at(-1).data, '[DONE]');
      if (expected.has(i)) assert.equal(contentOf(r.events), expected.get(i));
    }
  });
});
