// tests/browser/resume_eventsource.test.js — the browser's own EventSource (Debian's Chromium,
// headless, playwright-core) on telex's resume URL, against a real `telex serve` + `telex mock`.
//
//  - attach mid-answer: a page on the gateway's origin opens `new EventSource(resumeUrl +
//    '&last_event_id=' + id)` and receives exactly the rest of the answer; after [DONE] its
//    automatic reconnect (Last-Event-ID = the [DONE] event's id) gets 204 and it closes itself;
//  - a cut connection: through a TCP proxy that breaks the stream's connection mid-answer,
//    Chromium reconnects by itself after `retry:` with Last-Event-ID and the page ends up with
//    every event exactly once, ids <stream>.1 … <stream>.n in order;
//  - an expired or unknown stream: 204, error, CLOSED, no reconnect.
//
// Run: TELEX_BIN=/abs/path/telex node --test --test-concurrency=1 tests/browser/
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { SANITIZED, waitFor } from '../integration/lib/proc.js';
import { startRelay } from '../integration/lib/relay.js';
import { eventIds, openAnswer, resumeConfig, waitFinished } from '../integration/lib/resume.js';
import { launch } from './lib/browser.js';

const SLACK = SANITIZED ? 3 : 1;

let relay;
let browser;
before(async () => {
  relay = await startRelay({ config: resumeConfig({ resume: { retry_ms: 200 } }) });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  if (relay) await relay.stop();
});

// In the page: opens an EventSource on url and resolves when it is CLOSED (by the server's 204)
// or when [DONE] arrived and closeOnDone is set. Returns what it saw.
function collectInPage(page, url, { closeOnDone = false, timeoutMs = 20000 * SLACK } = {}) {
  return page.evaluate(
    ({ url, closeOnDone, timeoutMs }) =>
      new Promise((resolve) => {
        const es = new EventSource(url);
        const out = { events: [], errors: [], opens: 0, doneAt: null, closedAt: null, timedOut: false };
        const finish = () => {
          clearTimeout(timer);
          resolve(out);
        };
        const timer = setTimeout(() => {
          out.timedOut = true;
          es.close();
          finish();
        }, timeoutMs);
        es.onopen = () => out.opens++;
        es.onmessage = (m) => {
          out.events.push({ id: m.lastEventId, data: m.data });
          (window.__ids ??= []).push(m.lastEventId); // for a test that acts once an event is in
          if (m.data === '[DONE]') {
            out.doneAt = performance.now();
            if (closeOnDone) {
              es.close();
              finish();
            }
          }
        };
        es.onerror = () => {
          out.errors.push(es.readyState);
          if (es.readyState === EventSource.CLOSED) {
            out.closedAt = performance.now();
            finish();
          }
        };
      }),
    { url, closeOnDone, timeoutMs },
  );
}

async function pageOn(origin) {
  const page = await browser.context.newPage();
  await page.goto(`${origin}/`); // same origin as the gateway: no CORS involved
  return page;
}

test('native EventSource attaches mid-answer via the resume URL and gets exactly the rest', async () => {
  const first = await openAnswer(relay, { tokens: 40, delay_ms: 20 }, { stopAfter: 6 });
  assert.equal(first.status, 200);
  const page = await pageOn(relay.url);
  try {
    const seen = await collectInPage(page, `${first.resumeUrl}&last_event_id=${first.sid}.6`);
    assert.equal(seen.timedOut, false, `still open after ${seen.events.length} events`);
    const full = await waitFinished(relay, first.sid);
    assert.deepEqual(
      seen.events.map((e) => e.id),
      eventIds(first.sid, 7, full.events.length),
    );
    assert.deepEqual(
      seen.events.map((e) => e.data),
      full.events.slice(6).map((e) => e.data),
    );
    // One stream, then the reconnect after [DONE] got 204: CONNECTING, then CLOSED.
    assert.equal(seen.opens, 1);
    assert.deepEqual(seen.errors, [0, 2]);
    // the lines of the attach, the reconnect and waitFinished's replay (written by telex's log thread)
    const gets = await waitFor(() => {
      const g = relay.serve.logs.filter((l) => l.msg === 'request' && l.path === `/v1/streams/${first.sid}`);
      return g.length >= 3 && g;
    }, { message: 'the three GET log lines' });
    assert.deepEqual(
      gets.map((l) => l.status).slice(0, 2),
      [200, 204],
    );
  } finally {
    await page.close();
  }
});

// A TCP proxy in front of the gateway that, once, cuts the connection carrying an event stream
// right after the HTTP/1.1 chunk that holds the event with id `cutAfterId`: it forwards the
// bytes up to the end of that chunk and not one more (what follows is held back), and destroys
// both sides when the test calls cut() — once the page has the last event forwarded: Chromium
// drops body data it has received but not yet handed to the page when the connection fails
// right behind it (then it reconnects without Last-Event-ID and replays everything). One
// chunk may hold several events — more often on a loaded machine, and a replay of a finished
// answer comes in one piece — so `cutAtId()` tells the id of the last event forwarded, which is
// where the browser must resume. Records every request head.
function startCuttingProxy(target, cutAfterId) {
  const heads = [];
  let cut = false;
  let cutAtId = null;
  let cutNow = null; // destroys the held connection
  let reached; // resolves when the cut point was forwarded
  const atCutPoint = new Promise((resolve) => (reached = resolve));
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
    client.on('data', (d) => {
      const text = d.toString('latin1');
      if (/^(GET|POST|DELETE) /.test(text)) heads.push(text.slice(0, text.indexOf('\r\n\r\n')));
      upstream.write(d);
    });
    let seen = ''; // everything this connection received so far (latin1: one char per byte)
    let cutHere = false;
    upstream.on('data', (d) => {
      if (cutHere) return; // this connection is being cut: not one byte more
      if (cut) {
        client.write(d);
        return;
      }
      const before = seen.length;
      seen += d.toString('latin1');
      const at = seen.indexOf(`id: ${cutAfterId}\n`);
      const end = at < 0 ? -1 : seen.indexOf('\n\n', at); // the event's end
      const chunkEnd = end < 0 ? -1 : seen.indexOf('\r\n', end); // its chunk's (events hold no CR)
      if (chunkEnd < 0) {
        client.write(d);
        return;
      }
      cut = cutHere = true;
      const forwarded = seen.slice(0, chunkEnd + 2);
      cutAtId = [...forwarded.matchAll(/^id: (\S+)$/gm)].at(-1)[1];
      client.write(d.subarray(0, chunkEnd + 2 - before));
      cutNow = () => {
        client.destroy();
        upstream.destroy();
      };
      reached(cutAtId);
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        heads,
        wasCut: () => cut,
        cutAtId: () => cutAtId,
        atCutPoint, // -> the id of the last event forwarded before the cut
        cut: () => cutNow?.(),
        close: () =>
          new Promise((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

test('a connection cut mid-answer: Chromium reconnects with Last-Event-ID, every event exactly once', async () => {
  const first = await openAnswer(relay, { tokens: 60, delay_ms: 25 }, { stopAfter: 1 });
  const proxy = await startCuttingProxy(relay.serve, `${first.sid}.15`);
  const page = await pageOn(proxy.url);
  try {
    const collecting = collectInPage(page, first.resumeUrl, { closeOnDone: true });
    // cut once the page has the last event the proxy let through
    const lastForwarded = await proxy.atCutPoint;
    await page.waitForFunction((id) => window.__ids?.includes(id), lastForwarded, { timeout: 20000 * SLACK });
    proxy.cut();
    const seen = await collecting;
    assert.ok(proxy.wasCut(), 'the proxy cut the stream');
    assert.equal(seen.timedOut, false, `${seen.events.length} events`);
    const full = await waitFinished(relay, first.sid);
    assert.deepEqual(
      seen.events.map((e) => e.id),
      eventIds(first.sid, 1, 63),
      'ids 1..63, none missing, none twice',
    );
    assert.deepEqual(
      seen.events.map((e) => e.data),
      full.events.map((e) => e.data),
    );
    assert.equal(seen.opens, 2, 'opened, cut, reopened');
    const streamHeads = proxy.heads.filter((h) => h.startsWith(`GET /v1/streams/${first.sid}`));
    assert.equal(streamHeads.length, 2);
    assert.doesNotMatch(streamHeads[0], /last-event-id/i);
    // it resumed after the last event it got: the cut event, or one after it in the same chunk
    const lastGot = proxy.cutAtId();
    assert.ok(Number(lastGot.split('.')[1]) >= 15, lastGot);
    assert.match(streamHeads[1], new RegExp(`^last-event-id: ${lastGot.replace('.', '\\.')}\\r?$`, 'im'), streamHeads[1]);
  } finally {
    await page.close();
    await proxy.close();
  }
});

test('an unknown stream: 204, CLOSED, no reconnect', async () => {
  const page = await pageOn(relay.url);
  try {
    const seen = await collectInPage(page, '/v1/streams/st_AAAAAAAAAAAAAAAAAAAAAA?token=x', { timeoutMs: 5000 * SLACK });
    assert.equal(seen.timedOut, false);
    assert.equal(seen.opens, 0);
    assert.deepEqual(seen.errors, [2]);
    assert.equal(seen.events.length, 0);
  } finally {
    await page.close();
  }
});
