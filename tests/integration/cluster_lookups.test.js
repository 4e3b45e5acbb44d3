// tests/integration/cluster_lookups.test.js — cluster mode (issue 19): the wait for an unknown
// stream id's registration (cluster/mirror.c) is bounded per client (cluster/waits.c), and a
// shutdown during such a wait answers it and frees it.
//
// A node asked for a stream id Redis does not know asks again, 2, 4 … 64 ms apart, for up to
// 1 s (the registration may still be on its way): ~20 HGETALL per made-up id. A client address
// may have at most 8 such waits pending per worker; beyond that its request is answered at
// once as for an unknown stream (204 to an event stream), counted in
// telex_cluster_lookup_waits_refused_total. Cases:
//   - 100 made-up ids at once from one client: every one answered 204; at most 8 per worker
//     waited; Redis' command stats show the HGETALLs bounded (one per id + ~21 per wait,
//     where unbounded they are ~21 per id);
//   - while one client (127.0.0.1) keeps its waits full of made-up ids, an id handed out
//     before Redis knows its stream (the producer's Redis held by a relay) is resumed on B by
//     another client (127.0.0.2), which waits for the registration and gets the exact stream;
//     and the flooding client itself resumes such an id once its own made-up ids are over;
//   - SIGTERM during a pending wait: the waiting request is answered 503 shutting_down (and
//     logged: its access-log line), the node exits 0, and (ASan build) LeakSanitizer reports
//     nothing;
//   - a request for an id this node does not have, arriving while the node shuts down (on a
//     connection kept alive from before), is answered 503 shutting_down at once, and logged.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';

import { SANITIZED, waitFor } from './lib/proc.js';
import { connect, parseResponses } from './lib/raw_http.js';
import { msgs, stopChecked } from './lib/relay.js';
import { postChat } from './lib/sse.js';
import { assertExact, openAnswer, resumeGet, waitFinished } from './lib/resume.js';
import { metricsText, redisCalls, startCluster, startNode, startRedisProxy, waitRedisUp } from './lib/cluster.js';

const WAITS_PER_CLIENT = 8; // CLUSTER_WAITS_PER_CLIENT (src/cluster/cluster_internal.h)
const LOOKUPS_PER_WAIT = 22; // 0, 2, 6, 14, 30, 62, then every 64 ms up to 1000: 21 HGETALL, and one of slack
const SHORT = { tokens: 5, delay_ms: 5 }; // role, 5 chunks, finish, [DONE]

const madeUp = () => 'st_' + crypto.randomBytes(17).toString('base64url').slice(0, 22);

/** Redis MONITOR: counts the commands Redis runs whose text contains a string. */
async function monitor(redis) {
  const s = net.connect({ host: '127.0.0.1', port: redis.port });
  let text = '';
  s.on('data', (d) => (text += d));
  s.on('error', () => {});
  await new Promise((resolve) => s.on('connect', resolve));
  s.write('MONITOR\r\n');
  await waitFor(() => text.startsWith('+OK'), { intervalMs: 5, message: 'MONITOR' });
  return {
    count: (needle) => text.split('\n').filter((l) => l.includes(needle)).length,
    close: () => s.destroy(),
  };
}

const refusedCount = async (node) =>
  Number(/telex_cluster_lookup_waits_refused_total (\d+)/.exec(await metricsText(node))[1]);

describe('the wait for an unknown id is bounded per client', () => {
  let c;
  let B;
  let workers;
  let proxy;
  before(async () => {
    c = await startCluster({ nodes: 2, config: { resume: { grace_seconds: 30 } } });
    B = c.nodes[1];
    workers = c.config.workers;
  });
  after(async () => {
    if (c) await c.stop();
    if (proxy) await proxy.close();
  });

  test('100 made-up ids from one client: at most 8 waits per worker, the lookups bounded', async () => {
    const M = 100;
    const lookups0 = await redisCalls(c.redis, 'hgetall');
    const refused0 = await refusedCount(B);
    const replies = await Promise.all(
      Array.from({ length: M }, async () => {
        const sid = madeUp();
        const r = await resumeGet(B, sid, { lastEventId: `${sid}.1`, timeoutMs: 30000 });
        return { r, sid };
      }),
    );
    const lookups = (await redisCalls(c.redis, 'hgetall')) - lookups0;
    const refused = (await refusedCount(B)) - refused0;
    for (const { r } of replies) assert.equal(r.status, 204, r.text); // unknown, as on one node
    const waited = M - refused;
    console.log(
      `# ${M} made-up ids from one client, ${workers} workers: ${waited} waited, ${refused} answered at once, ` +
        `${lookups} HGETALL (unbounded: ~${M * 21})`,
    );
    assert.ok(waited >= 1, 'some requests waited for a registration');
    assert.ok(waited <= WAITS_PER_CLIENT * workers, `${waited} waits pending at once from one client`);
    assert.ok(lookups >= M, `every id was looked up (${lookups})`);
    assert.ok(lookups <= M + waited * LOOKUPS_PER_WAIT, `${lookups} HGETALL for ${M} ids, ${waited} waits`);
    // the ones not waiting were answered without the 1 s wait: the gateway's own time for each
    // (its access log's duration_ms, not the client's clock, which a loaded machine stretches)
    const lines = await Promise.all(
      replies.map(({ sid }) => B.waitForLog((l) => l.msg === 'request' && l.path === `/v1/streams/${sid}`)),
    );
    const quick = lines.filter((l) => l.duration_ms < 500).length;
    const slow = lines.filter((l) => l.duration_ms >= 950).length; // a wait lasts 1 s
    assert.ok(quick >= refused, `${quick} answered within 500 ms, ${refused} refused a wait`);
    assert.ok(slow <= waited, `${slow} took a wait's second, ${waited} waited`);
  });

  test("a client's flood of made-up ids: another client's id handed out before Redis knew it still resumes, and so does the flooder's once its flood is over", async () => {
    // P talks to Redis through a relay that can hold what P sends: its registration reaches
    // Redis only once released, while B's lookups go straight through
    proxy = await startRedisProxy(c.redis);
    const P = await startNode(c, { env: { TELEX_REDIS_URL: proxy.url } }); // stopped (checked) with the others
    await waitRedisUp(P);

    // 127.0.0.1 keeps 3 × the per-worker bound of made-up ids pending on B until told to stop
    const mon = await monitor(c.redis);
    let flooding = true;
    const flood = [];
    const refused0 = await refusedCount(B);
    const floodOne = async () => {
      while (flooding) {
        const sid = madeUp();
        const r = await resumeGet(B, sid, { lastEventId: `${sid}.1`, timeoutMs: 30000 });
        assert.equal(r.status, 204, r.text);
      }
    };
    for (let i = 0; i < 3 * WAITS_PER_CLIENT * workers; i++) flood.push(floodOne());
    try {
      // every worker of B has the flooder's waits full: refusals are being counted
      await waitFor(async () => (await refusedCount(B)) - refused0 >= WAITS_PER_CLIENT * workers, {
        message: 'the flooding client refused further waits',
      });

      const heldResume = async (localAddress, what) => {
        proxy.hold();
        let released = false;
        try {
          let onB;
          const first = await openAnswer({ url: P.url }, SHORT, {
            messages: msgs(what),
            stopAfter: 1,
            onEvent: (e, all) => {
              if (all.length === 1)
                onB = resumeGet(B, e.id.split('.')[0], { lastEventId: e.id, timeoutMs: 30000, localAddress });
            },
          });
          assert.equal(first.status, 200);
          assert.ok(onB, 'the first event (with its id) reached the client while Redis had nothing');
          // B looked the id up, found nothing, and asked again (it waits): then let P's
          // registration through
          const meta = `"HGETALL" "telex:s:${first.sid}:m"`;
          await waitFor(() => mon.count(meta) >= 2, { intervalMs: 5, message: `${what}: B's repeated lookup` });
          proxy.release();
          released = true;
          const r = await onB;
          assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
          assert.ok(r.complete, `the resumed response ended (${r.error})`);
          assert.equal(r.events.at(-1).data, '[DONE]');
          const full = await waitFinished({ url: P.url }, first.sid);
          assertExact([first.events.slice(0, 1), r.events], full.events, first.sid, what);
        } finally {
          if (!released) proxy.release();
        }
      };

      // another client, while the flooder's waits are full
      const refusedBefore = await refusedCount(B);
      await heldResume('127.0.0.2', 'another client during the flood');
      assert.ok((await refusedCount(B)) > refusedBefore, 'the flood was being refused meanwhile');

      flooding = false;
      await Promise.all(flood);
      // the flooder's waits are over: it may wait again
      await heldResume('127.0.0.1', 'the flooder after its flood');
    } finally {
      flooding = false;
      await Promise.allSettled(flood);
      mon.close();
    }
  });
});

describe('shutdown during a wait for an unknown id', () => {
  let c;
  before(async () => {
    c = await startCluster({ nodes: 1 });
  });
  after(async () => {
    if (c) await c.stop();
  });

  test('SIGTERM while a request waits for a registration: answered 503 shutting_down, clean exit, nothing leaked', async () => {
    const X = c.nodes[0]; // c.stop() leaves it alone once it exited
    const sid = madeUp();
    const meta = `"HGETALL" "telex:s:${sid}:m"`;
    const mon = await monitor(c.redis);
    const pending = resumeGet(X, sid, { lastEventId: `${sid}.1`, timeoutMs: 30000 });
    // X looked the id up, found nothing and asked again: its next retry timer is pending
    await waitFor(() => mon.count(meta) >= 2, { intervalMs: 2, message: 'the repeated lookup' });
    const exiting = stopChecked(X); // SIGTERM; throws on a sanitizer report or a non-zero exit
    const r = await pending;
    const exit = await exiting;
    assert.equal(exit.code, 0);
    assert.equal(r.status, 503, r.text);
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(JSON.parse(r.text).error.code, 'shutting_down');
    // in the access log like every answer
    const line = await X.waitForLog((l) => l.msg === 'request' && l.path === `/v1/streams/${sid}`);
    assert.equal(line.method, 'GET');
    assert.equal(line.status, 503);
    assert.equal(line.outcome, 'rejected');
    assert.equal(line.bytes, Buffer.byteLength(r.text));
    if (SANITIZED) assert.doesNotMatch(X.stderr(), /LeakSanitizer|AddressSanitizer/);
    // X's wait was cut short by the shutdown, not run to its end (~21 lookups)
    const lookups = mon.count(meta);
    mon.close();
    assert.ok(lookups < 15, `${lookups} HGETALL: the wait ended at the shutdown`);
  });
});

describe('a request for an unknown id while the node shuts down', () => {
  let c;
  before(async () => {
    // a long grace: the node stays up while its one answer runs
    c = await startCluster({ nodes: 1, config: { streaming: { shutdown_grace_seconds: 30 } } });
  });
  after(async () => {
    if (c) await c.stop();
  });

  // a new connection to X is refused (every worker closed its listener: each has begun its shutdown)
  async function refused(X) {
    try {
      await (await fetch(`${X.url}/healthz`, { signal: AbortSignal.timeout(2000) })).text();
      return false;
    } catch (e) {
      return /ECONNREFUSED/.test(String(e.cause?.code ?? e.cause?.message ?? e));
    }
  }

  test('answered 503 shutting_down (no wait for Redis begun: that would end 204), and logged', async () => {
    const X = c.nodes[0];
    // connections kept alive from before the shutdown: several, so that some are on the worker
    // that has no answer running (the kernel spreads them over the two); that worker, idle,
    // must still answer them until the whole node ends
    const raws = [];
    for (let i = 0; i < 8; i++) {
      const conn = await connect(X.url);
      await conn.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor(() => parseResponses(conn.data()).length === 1, { message: 'the first answer' });
      raws.push(conn);
    }
    const raw = raws[0];
    // an answer that keeps X running through the shutdown
    let started;
    const running = new Promise((resolve) => (started = resolve));
    const long = postChat(X.url, { model: 'gpt-relay', messages: msgs('keep X up'), stream: true, mock: { tokens: 80, delay_ms: 25 } }, {
      onEvent: () => started(),
    });
    await running;
    const exiting = stopChecked(X); // SIGTERM; throws on a sanitizer report or a non-zero exit
    await waitFor(() => refused(X), { message: 'new connections refused after SIGTERM' });
    const sid = madeUp();
    for (const conn of raws)
      await conn.write(`GET /v1/streams/${sid} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: ${sid}.1\r\n\r\n`);
    // each is answered while the running answer still runs (it lasts ~2 s; a worker that had
    // stopped would leave its connections unanswered until the node exits after it)
    await waitFor(() => raws.every((conn) => parseResponses(conn.data()).length === 2), {
      intervalMs: 5,
      message: 'an answer on every kept-alive connection',
    });
    for (const conn of raws) conn.destroy();
    const r = parseResponses(raw.data())[1];
    for (const conn of raws) assert.equal(parseResponses(conn.data())[1].status, 503);
    assert.equal(r.status, 503, r.body);
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(r.json().error.code, 'shutting_down');
    const line = await X.waitForLog((l) => l.msg === 'request' && l.path === `/v1/streams/${sid}`);
    assert.equal(line.method, 'GET');
    assert.equal(line.status, 503);
    assert.equal(line.outcome, 'rejected');
    assert.equal(line.bytes, Buffer.byteLength(r.body));
    const answer = await long;
    assert.equal(answer.events.at(-1).data, '[DONE]', 'the running answer finished');
    assert.equal((await exiting).code, 0);
  });
});
