// tests/integration/relay_shutdown.test.js — graceful shutdown on SIGTERM/SIGINT: telex
// stops accepting at once, lets running streams go on for shutdown_grace_seconds (1 s
// here), then ends each remaining stream with the error event `shutting_down` (or a 503
// when it had not started), cancels the upstream, and exits 0. A second signal exits at
// once.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { SANITIZED, startMock, stopProcess, waitFor } from './lib/proc.js';
import { collectSSE, contentOf, postChat } from './lib/sse.js';
import {
  LATE_MS,
  SANITIZER_ENV,
  baseConfig,
  chatBody,
  lastSeq,
  sanitizerReports,
  startGateway,
  waitEntry,
} from './lib/relay.js';

let mock;
const gateways = []; // each test stops its own by signal; these are stopped too if it failed first
before(async () => {
  mock = await startMock([], { env: SANITIZER_ENV });
});
after(async () => {
  for (const g of gateways) await stopProcess(g);
  if (mock) await stopProcess(mock);
});

const gateway = async (patch) => {
  const g = await startGateway(baseConfig(mock.url, patch));
  gateways.push(g);
  return g;
};

// Waits until the mock has the stream in flight (so SIGTERM lands mid-answer).
const inFlight = (since, pred = (e) => e.events > 0) => waitEntry(mock, since, pred, { message: 'stream in flight' });

async function refused(serve) {
  try {
    const r = await fetch(`${serve.url}/healthz`, { signal: AbortSignal.timeout(2000) });
    await r.text();
    return false;
  } catch (e) {
    return /ECONNREFUSED/.test(String(e.cause?.code ?? e.cause?.message ?? e));
  }
}

function assertCleanExit(serve, exit) {
  assert.equal(sanitizerReports(serve), null);
  assert.deepEqual(exit, { code: 0, signal: null }, serve.stderr().slice(-2000));
  assert.ok(serve.logs.some((l) => l.msg === 'shutting down'));
  assert.ok(serve.logs.some((l) => l.msg === 'stopped'));
}

// Deadlines get LATE_MS of margin (lib/proc.js); each test arranges that the wrong behaviour
// (waiting out a 30 s grace, a 10 s answer running to its end) would take far longer.
describe('SIGTERM', () => {
  test('a stream that ends within the grace period completes; new connections are refused', async () => {
    // a grace far longer than the answer (~2 s): telex exits when the answer is done, not at the grace
    const serve = await gateway({ streaming: { shutdown_grace_seconds: 30 } });
    const since = await lastSeq(mock);
    let answeredAt = null;
    const pending = postChat(serve.url, chatBody({ tokens: 20, delay_ms: 100 })).finally(() => (answeredAt = Date.now()));
    await inFlight(since);
    process.kill(serve.pid, 'SIGTERM');
    await serve.waitForLog((l) => l.msg === 'shutting down');
    // the listeners close as the workers see the signal
    await waitFor(() => refused(serve), { message: 'new connections refused after SIGTERM' });
    assert.equal(serve.child.exitCode, null, 'refused by a telex that is still running');
    assert.equal(answeredAt, null, 'refused while the answer is still streaming');
    const r = await pending;
    assert.equal(r.error, null);
    assert.equal(r.events.at(-1).data, '[DONE]', 'the running answer finished normally');
    assert.equal(contentOf(r.events).split(' ').length, 20);
    const exit = await serve.exited;
    assert.ok(Date.now() - answeredAt < 500 + LATE_MS, `exited ${Date.now() - answeredAt} ms after the answer ended`);
    assertCleanExit(serve, exit);
  });

  test('a stream still running at the end of the grace period gets `shutting_down`', async () => {
    const serve = await gateway();
    const since = await lastSeq(mock);
    const pending = postChat(serve.url, chatBody({ tokens: 100, delay_ms: 100 }));
    await inFlight(since);
    const t0 = performance.now();
    process.kill(serve.pid, 'SIGTERM');
    const r = await pending;
    const endedAfter = performance.now() - t0;
    assert.equal(r.status, 200);
    const last = JSON.parse(r.events.at(-1).data);
    assert.equal(last.error.code, 'shutting_down');
    assert.ok(!r.events.some((e) => e.data === '[DONE]'));
    assert.ok(r.events.length > 5, 'it kept streaming during the grace period');
    // at the grace (1 s), not at the end of the answer (10 s)
    assert.ok(endedAfter >= 900 && endedAfter < 1000 + LATE_MS, `ended ${endedAfter} ms after SIGTERM (grace 1 s)`);
    const entry = await waitEntry(mock, since, (e) => e.client_gone, { message: 'upstream cancelled' });
    assert.ok(entry.content_events < 100);
    assertCleanExit(serve, await serve.exited);
  });

  test('a request still waiting for its first token (not committed) gets 503 + Retry-After', async () => {
    const serve = await gateway({ streaming: { commit_timeout_seconds: 5 } });
    const since = await lastSeq(mock);
    const pending = fetch(`${serve.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(chatBody({ ttft_ms: 10000 })) });
    await inFlight(since, () => true);
    process.kill(serve.pid, 'SIGINT');
    const r = await pending;
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('retry-after'), '1');
    const o = await r.json();
    assert.equal(o.error.code, 'shutting_down');
    assertCleanExit(serve, await serve.exited);
  });

  test('an idle gateway exits at once', async () => {
    const serve = await gateway({ streaming: { shutdown_grace_seconds: 30 } });
    await (await fetch(`${serve.url}/healthz`)).text(); // an idle keep-alive connection
    const t0 = Date.now();
    const exit = await stopProcess(serve, { timeoutMs: 30000 });
    // at once, not after the 30 s grace (nor the idle connection's keep-alive timeout)
    assert.ok(Date.now() - t0 < 500 + LATE_MS, `exit took ${Date.now() - t0} ms`);
    assertCleanExit(serve, exit);
  });

  test('a second signal exits at once', async () => {
    const serve = await gateway({ streaming: { shutdown_grace_seconds: 30 } });
    const since = await lastSeq(mock);
    const pending = collectSSE(`${serve.url}/v1/chat/completions`, { body: chatBody({ tokens: 100, delay_ms: 100 }) });
    await inFlight(since);
    process.kill(serve.pid, 'SIGTERM');
    await serve.waitForLog((l) => l.msg === 'shutting down');
    const t0 = Date.now();
    process.kill(serve.pid, 'SIGTERM');
    const exit = await serve.exited;
    assert.ok(Date.now() - t0 < 1000 + LATE_MS, 'did not wait for the 30 s grace');
    assert.equal(exit.code, 130);
    const r = await pending;
    assert.ok(r.error, 'the stream was cut by the exit');
    if (!SANITIZED) assert.ok(serve.logs.some((l) => l.msg === 'second signal, exiting now'));
  });
});
