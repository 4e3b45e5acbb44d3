// tests/integration/relay_disconnect.test.js — a client that leaves cancels the upstream
// request: the mock's /mock/requests shows client_gone (telex closed its connection)
// within about a second, whether the stream was busy, stalled after commit, waiting for
// the first token before commit, or waiting after commit; over HTTP/1.1 (fetch) and
// HTTP/2 (curl closing the connection; RST_STREAM on a connection that stays open).
// telex logs the request with outcome client_gone.
//
// The deadline (docs/api.md: at once, or within one second on a silent HTTP/1 connection) is
// asserted with LATE_MS of margin for a busy machine; what telex would do if it did not notice
// is arranged to take far longer: the idle timeout is 30 s, the first token 60 s away.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';

import { collectSSE } from './lib/sse.js';
import { LATE_MS, SLACK, chatBody, curl, lastSeq, logBarrier, requestLogs, startRelay, waitEntry } from './lib/relay.js';
import { waitFor } from './lib/proc.js';

let relay;
// The plain relay (resume off): a client that leaves cancels the upstream at
// once. With resume on, the answer outlives its client for resume.grace_seconds
// (resume_*.test.js covers that). A stalled provider is not given up on (idle timeout) before
// far past the deadline; commit comes 2 s after the request.
before(async () => {
  relay = await startRelay({
    config: { resume: { enabled: false }, streaming: { idle_timeout_seconds: 30, commit_timeout_seconds: 2 } },
  });
});
after(async () => {
  if (relay) await relay.stop();
});

const LIMIT_MS = 1000 + LATE_MS;
const NEVER_MS = 60000; // a first token that does not come while the test runs

// Runs a stream that the client abandons (stopAfter or timeoutMs), then waits for the
// mock to see telex leave. Returns {r, entry, noticedMs}.
async function abandon(mock, opts) {
  const since = await lastSeq(relay.mock);
  const r = await collectSSE(`${relay.url}/v1/chat/completions`, { body: chatBody(mock), ...opts });
  const leftAt = Date.now();
  const entry = await waitEntry(relay.mock, since, (e) => e.client_gone, {
    message: 'client_gone at the mock',
  });
  return { r, entry, noticedMs: entry.gone_at_ms - leftAt };
}

describe('HTTP/1.1 client leaves', () => {
  test('while chunks are flowing', async (t) => {
    const { r, entry, noticedMs } = await abandon(
      { tokens: 100, delay_ms: 50 },
      { stopAfter: (ev, evs) => evs.length === 4 },
    );
    assert.ok(r.aborted);
    assert.ok(entry.content_events < 100, `the mock stopped early (${entry.content_events} of 100)`);
    assert.equal(entry.completed, false);
    t.diagnostic(`upstream cancelled ${noticedMs} ms after the client left`);
    assert.ok(noticedMs < LIMIT_MS, `upstream cancelled ${noticedMs} ms after the client left`);
  });

  test('during a stall after commit (silent connection)', async (t) => {
    const { r, entry, noticedMs } = await abandon(
      { tokens: 5, stall_after: 2, delay_ms: 10 },
      { stopAfter: (ev, evs) => evs.length === 3 },
    );
    assert.ok(r.aborted);
    assert.equal(entry.content_events, 2);
    t.diagnostic(`upstream cancelled ${noticedMs} ms after the client left`);
    assert.ok(noticedMs < LIMIT_MS, `upstream cancelled ${noticedMs} ms after the client left`);
  });

  test('while waiting for the first token, before commit', async (t) => {
    // the client leaves once the request has reached the mock: long before commit (2 s)
    const since = await lastSeq(relay.mock);
    const leave = new AbortController();
    waitEntry(relay.mock, since).then(() => leave.abort(), () => leave.abort());
    const { r, entry, noticedMs } = await abandon({ ttft_ms: NEVER_MS }, { signal: leave.signal });
    assert.ok(r.aborted);
    assert.equal(r.status, 0, 'no response yet when the client gave up');
    assert.equal(entry.events, 0);
    t.diagnostic(`upstream cancelled ${noticedMs} ms after the client left`);
    assert.ok(noticedMs < LIMIT_MS, `upstream cancelled ${noticedMs} ms after the client left`);
  });

  test('while waiting for the first token, after commit (keep-alives flowing)', async (t) => {
    // telex's framing (keep-alives) pushes the headers out at commit over HTTP/1.1; the client
    // leaves at the first keep-alive comment, so after commit whatever the machine's pace
    const { r, entry, noticedMs } = await abandon(
      { ttft_ms: NEVER_MS },
      { headers: { 'x-telex-event-ids': '1' }, stopOnComment: true, timeoutMs: 20000 * SLACK },
    );
    assert.ok(r.aborted, 'left at the first keep-alive');
    assert.equal(r.status, 200, 'headers were committed at commit_timeout');
    assert.equal(entry.events, 0);
    t.diagnostic(`upstream cancelled ${noticedMs} ms after the client left`);
    assert.ok(noticedMs < LIMIT_MS, `upstream cancelled ${noticedMs} ms after the client left`);
  });

  test('telex logs each of them as client_gone and frees the slots', async () => {
    await waitFor(() => requestLogs(relay.serve).filter((l) => l.outcome === 'client_gone').length >= 4, {
      message: 'four client_gone log lines',
    });
    await logBarrier(relay.serve); // and no fifth on its way
    const gone = requestLogs(relay.serve).filter((l) => l.outcome === 'client_gone');
    assert.equal(gone.length, 4);
    for (const l of gone) assert.equal(l.model, 'gpt-relay');
    // nothing left running: SIGTERM later must find an idle gateway (relay.stop checks exit 0)
  });
});

describe('HTTP/2 client leaves', () => {
  test('curl --http2-prior-knowledge gives up during a stall', async (t) => {
    const since = await lastSeq(relay.mock);
    const res = await curl([
      '--http2-prior-knowledge',
      '-N',
      '-m',
      '2', // gives up during the stall (10 minutes), long before the idle timeout (30 s)
      '-H',
      'content-type: application/json',
      '-d',
      JSON.stringify(chatBody({ tokens: 5, stall_after: 1 })),
      `${relay.url}/v1/chat/completions`,
    ]);
    const leftAt = Date.now();
    assert.equal(res.code, 28, `curl timed out: ${res.err}`);
    assert.match(res.out, /^data: /m, 'it got the first chunks over HTTP/2');
    const entry = await waitEntry(relay.mock, since, (e) => e.client_gone);
    assert.equal(entry.content_events, 1);
    t.diagnostic(`upstream cancelled ${entry.gone_at_ms - leftAt} ms after the client left`);
    assert.ok(entry.gone_at_ms - leftAt < LIMIT_MS, `noticed after ${entry.gone_at_ms - leftAt} ms`);
  });

  // A stream reset (RST_STREAM CANCEL) on a connection that stays open.
  async function resetStream(t, mock, when) {
    const since = await lastSeq(relay.mock);
    const session = http2.connect(relay.url);
    try {
      const req = session.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json' });
      req.on('error', () => {});
      req.end(JSON.stringify(chatBody(mock)));
      await when(req, since);
      req.close(http2.constants.NGHTTP2_CANCEL);
      const leftAt = Date.now();
      const entry = await waitEntry(relay.mock, since, (e) => e.client_gone);
      t.diagnostic(`upstream cancelled ${entry.gone_at_ms - leftAt} ms after the reset`);
      assert.ok(entry.gone_at_ms - leftAt < LIMIT_MS, `noticed after ${entry.gone_at_ms - leftAt} ms`);
      // the connection is still usable
      const ok = await new Promise((resolve, reject) => {
        const r2 = session.request({ ':path': '/healthz' });
        r2.on('response', (h) => resolve(h[':status']));
        r2.on('error', reject);
        r2.end();
      });
      assert.equal(ok, 200);
      return entry;
    } finally {
      session.close();
    }
  }

  test('RST_STREAM while chunks are flowing', async (t) => {
    const entry = await resetStream(t, { tokens: 100, delay_ms: 50 }, (req) => new Promise((r) => req.once('data', r)));
    assert.ok(entry.content_events < 100);
    assert.equal(entry.completed, false);
  });

  test('RST_STREAM before commit (waiting for the first token)', async (t) => {
    // reset once the request has reached the mock: long before commit (2 s)
    const entry = await resetStream(t, { ttft_ms: NEVER_MS }, (req, since) => waitEntry(relay.mock, since));
    assert.equal(entry.events, 0);
  });
});
