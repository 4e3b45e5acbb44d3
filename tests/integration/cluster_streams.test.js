// tests/integration/cluster_streams.test.js — cluster mode (issue 19): streams across nodes.
//
// A real redis-server and two or three real telex nodes sharing it (lib/cluster.js), one mock
// upstream. A stream produced on node A is resumed, followed and cancelled through node B:
//   - resume on another node, exact: drop after k events on A, resume on B by Last-Event-ID
//     header, ?token=&last_event_id=, POST retry with Last-Event-ID, and ?after=N for a client
//     that got no ids; kept + resumed == the full answer (ids and data);
//   - subscribers on two nodes get byte-identical responses (raw bytes compared);
//   - an unknown stream id on B answers as on a single node (204 / 404);
//   - DELETE on B stops the upstream call on A (the mock journal sees its client go);
//   - kill -9 of the producer: a reader on B gets every event produced before, then an
//     error event (node_lost) within a bounded time, never [DONE], never a hang;
//   - Redis killed and restarted mid-stream: the producer's own client is served throughout
//     (local-only), /metrics says Redis is down, and the reader on B still gets the whole
//     answer byte for byte once Redis is back;
//   - a stream id handed out before Redis knows the stream is still resumable on every node:
//     50 fresh streams resumed on B the moment their first event arrives from A, 10 with a slow
//     first event resumed from the start as soon as the headers arrive, each continued exactly;
//     10 background Responses retrieved on B at once; the producer's Redis held (a relay): the
//     id and first event reach the client anyway, B asked at once waits for the registration
//     and serves the exact stream; an id nobody issued: 404 within the bounded wait; Redis stuck
//     (SIGSTOP): the response is not held, the registration is counted as failed and the
//     stream served local-only; kill -9 of a producer whose provider went silent after its
//     first event: node_lost on B, bounded;
//   - start-up refusals: rediss://, a bad URL, no TELEX_RESUME_SECRET.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import OpenAI from 'openai';

import { LATE_MS, startServe, stopProcess, waitFor } from './lib/proc.js';
import { msgs, waitEntry, lastSeq } from './lib/relay.js';
import { assertExact, openAnswer, request, resumeGet, waitFinished } from './lib/resume.js';
import {
  SECRET,
  metricsText,
  redisCalls,
  redisCommand,
  startCluster,
  startNode,
  startRedis,
  startRedisProxy,
  waitRedisUp,
} from './lib/cluster.js';

const N = 43; // role, 40 content chunks, finish, [DONE]
const MOCK = { tokens: 40, delay_ms: 15 };

describe('resume and follow across nodes', () => {
  let c;
  let A;
  let B;
  before(async () => {
    c = await startCluster({ nodes: 2, config: { resume: { grace_seconds: 30 } } });
    [A, B] = c.nodes;
  });
  after(async () => {
    if (c) await c.stop();
  });

  const HOW = {
    header: (r, k) => resumeGet(B, r.sid, k > 0 ? { lastEventId: `${r.sid}.${k}` } : {}),
    query: (r, k) =>
      request(`${B.url}${r.resumeUrl}&last_event_id=${r.sid}.${k}`, { headers: { accept: 'text/event-stream' } }),
    post: (r, k, body) =>
      request(`${B.url}/v1/chat/completions`, {
        body,
        headers: { accept: 'text/event-stream', 'last-event-id': `${r.sid}.${k}` },
      }),
    after: (r, k) => request(`${B.url}${r.resumeUrl}&after=${k}`, { headers: { accept: 'text/event-stream' } }),
  };

  for (const how of Object.keys(HOW)) {
    for (const k of [1, 21, N - 1]) {
      test(`${how}: dropped on A after ${k}, resumed on B`, async () => {
        const plain = how === 'after';
        const messages = msgs(`cluster ${how} ${k}`);
        const body = { model: 'gpt-relay', messages, stream: true, mock: MOCK };
        const first = await openAnswer({ url: A.url }, MOCK, { messages, stopAfter: k, eventIds: !plain });
        assert.equal(first.status, 200);
        const since = await lastSeq(c.mock);
        const resumed = await HOW[how](first, k, body);
        assert.equal(resumed.status, 200, resumed.text);
        assert.equal(resumed.headers['x-telex-stream-id'], first.sid);
        assert.ok(resumed.complete, `the resumed response ended cleanly (${resumed.error})`);
        assert.equal(resumed.events.at(-1).data, '[DONE]');
        assert.equal(await lastSeq(c.mock), since, 'a resume never asks the provider again');
        const full = await waitFinished({ url: A.url }, first.sid);
        assert.equal(full.events.length, N);
        const kept = plain ? full.events.slice(0, k) : first.events.slice(0, k);
        if (plain)
          assert.deepEqual(
            first.events.slice(0, k).map((e) => e.data),
            kept.map((e) => e.data),
          );
        assertExact([kept, resumed.events], full.events, first.sid, `${how} after ${k}`);
      });
    }
  }

  test('subscribers on two nodes get byte-identical responses', async () => {
    const first = await openAnswer({ url: A.url }, { tokens: 60, delay_ms: 20 }, { stopAfter: 2 });
    const [onA, onB] = await Promise.all([resumeGet(A, first.sid), resumeGet(B, first.sid)]);
    assert.equal(onA.status, 200);
    assert.equal(onB.status, 200, onB.text);
    assert.ok(onA.complete && onB.complete);
    assert.equal(onA.events.length, 63);
    assert.ok(onB.raw.equals(onA.raw), 'the same bytes on both nodes');
    // and a reader on B that came after the end replays the same bytes again
    const late = await resumeGet(B, first.sid);
    assert.ok(late.raw.equals(onA.raw), 'a replay on B after the end: the same bytes');
  });

  test('an unknown stream on B answers as on a single node', async () => {
    const sid = 'st_AAAAAAAAAAAAAAAAAAAAAA';
    const sse = await resumeGet(B, sid);
    assert.equal(sse.status, 204);
    const json = await resumeGet(B, sid, { accept: 'application/json' });
    assert.equal(json.status, 404);
    assert.match(json.text, /stream_not_found/);
  });

  test('DELETE on B stops the upstream call on A', async () => {
    const since = await lastSeq(c.mock);
    // the client leaves after 3 events; the answer goes on (grace 30 s) until B's DELETE
    const first = await openAnswer({ url: A.url }, { tokens: 2000, delay_ms: 20 }, {
      messages: msgs('cancel me from B'),
      stopAfter: 3,
    });
    assert.equal(first.status, 200);
    await waitEntry(c.mock, since, (e) => e.outcome === 'in_progress');
    const del = await request(`${B.url}/v1/streams/${first.sid}`, { method: 'DELETE' });
    assert.equal(del.status, 200, del.text);
    assert.equal(JSON.parse(del.text).status, 'cancelled');
    // the upstream call on A was stopped (well before the 30 s grace or the 40 s answer)
    const gone = await waitEntry(c.mock, since, (e) => e.client_gone === true);
    assert.ok(gone.content_events < 2000);
    const replay = await waitFinished({ url: A.url }, first.sid);
    const last = JSON.parse(replay.events.at(-1).data);
    assert.equal(last.error.code, 'cancelled');
    assert.ok(!replay.events.some((e) => e.data === '[DONE]'), 'no [DONE] after a cancel');
    // B's view of it ends the same way, byte for byte
    const onB = await resumeGet(B, first.sid);
    assert.ok(onB.raw.equals(replay.raw));
  });
});

describe('the Responses API across nodes', () => {
  let c;
  before(async () => {
    c = await startCluster({ nodes: 2 });
  });
  after(async () => {
    if (c) await c.stop();
  });

  const collect = async (stream) => {
    const events = [];
    for await (const ev of stream) events.push(ev);
    return events;
  };

  test('created on A, retrieved with starting_after and as an object on B', async () => {
    const [A, B] = c.nodes;
    const onA = new OpenAI({ baseURL: `${A.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const onB = new OpenAI({ baseURL: `${B.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const mock = { tokens: 30, delay_ms: 15 };
    const first = await onA.responses.create({ model: 'gpt-relay', input: 'across nodes', stream: true, mock });
    const got = [];
    for await (const ev of first) {
      got.push(ev);
      if (got.length === 9) break; // the client leaves mid-answer
    }
    const id = got[0].response.id;
    const rest = await collect(await onB.responses.retrieve(id, { stream: true, starting_after: got.at(-1).sequence_number }));
    const all = [...got, ...rest];
    assert.deepEqual(all.map((e) => e.sequence_number), all.map((_, i) => i), 'no gap, nothing twice');
    assert.equal(all.at(-1).type, 'response.completed');
    const whole = await collect(await onA.responses.retrieve(id, { stream: true }));
    assert.deepEqual(all, whole, 'the part kept on A and the part resumed on B are the whole answer');
    const objA = await onA.responses.retrieve(id);
    const objB = await onB.responses.retrieve(id);
    assert.equal(objB.status, 'completed');
    assert.deepEqual(objB, objA, 'the same Response object on both nodes');
  });
});

describe('losing the producer or Redis', () => {
  let c;
  before(async () => {
    c = await startCluster({ nodes: 3 });
  });
  after(async () => {
    if (c) await c.stop();
  });

  test('kill -9 of the producer: the reader on another node gets what was produced, then node_lost', async () => {
    const [A, B] = c.nodes;
    const first = await openAnswer({ url: A.url }, { tokens: 2000, delay_ms: 20 }, {
      messages: msgs('producer dies'),
      stopAfter: 1,
    });
    let killedAt = 0;
    const onB = resumeGet(B, first.sid, {
      timeoutMs: 60000,
      onEvent: (e, all) => {
        if (all.length === 20) {
          killedAt = performance.now();
          process.kill(A.pid, 'SIGKILL');
        }
      },
    });
    const r = await onB;
    const endedAfter = performance.now() - killedAt;
    assert.ok(killedAt > 0, 'the producer was killed mid-answer');
    assert.equal(r.status, 200);
    assert.ok(r.complete, `the reader's response ended (${r.error})`);
    const ids = r.events.map((e) => e.id);
    ids.forEach((id, i) => assert.equal(id, `${first.sid}.${i + 1}`, 'consecutive ids, nothing missing'));
    assert.ok(r.events.length > 20, 'every event B had before the loss, and more that came through Redis');
    const last = JSON.parse(r.events.at(-1).data);
    assert.equal(last.error.code, 'node_lost');
    assert.ok(!r.events.some((e) => e.data === '[DONE]'), 'never a fake [DONE]');
    for (const e of r.events.slice(1, -1)) assert.equal(JSON.parse(e.data).object, 'chat.completion.chunk');
    // heartbeat TTL 2 s + a check every second
    assert.ok(endedAfter < 3000 + LATE_MS, `ended ${endedAfter.toFixed(0)} ms after the kill`);
  });

  test('Redis killed and restarted mid-stream: served locally meanwhile, the reader elsewhere gets it all', async () => {
    const [, B, C] = c.nodes;
    const first = await openAnswer({ url: B.url }, { tokens: 150, delay_ms: 20 }, {
      messages: msgs('redis dies'),
      stopAfter: 1,
    });
    // one client on the producer, one on another node, both from the start
    let killed = false;
    let down;
    const redisDown = new Promise((resolve) => (down = resolve));
    const local = resumeGet(B, first.sid, { timeoutMs: 60000 });
    const remote = resumeGet(C, first.sid, {
      timeoutMs: 60000,
      onEvent: (e, all) => {
        if (all.length === 30 && !killed) {
          killed = true;
          c.redis.kill().then(down);
        }
      },
    });
    await redisDown;
    await waitFor(async () => /telex_cluster_redis_up 0/.test(await metricsText(B)), {
      message: '/metrics shows Redis down',
    });
    const restarted = await startRedis(c.redis.port);
    c.redis = restarted;
    const [l, r] = await Promise.all([local, remote]);
    assert.equal(l.status, 200);
    assert.ok(l.complete);
    assert.equal(l.events.at(-1).data, '[DONE]', 'the producer served its own client throughout');
    assert.equal(r.status, 200);
    assert.ok(r.complete, `the remote reader ended (${r.error})`);
    assert.ok(r.raw.equals(l.raw), 'the reader on the other node got the same bytes');
    // the outage and the recovery are logged (lines reach stderr through the log thread)
    await B.waitForLog((x) => x.msg === 'redis unavailable');
    await B.waitForLog((x) => x.msg === 'redis connected');
  });
});

describe('stopping the producer', () => {
  let c;
  before(async () => {
    c = await startCluster({ nodes: 2 });
  });
  after(async () => {
    if (c) await c.stop();
  });

  test('SIGTERM of the producer: a reader on another node gets its shutting_down event, not node_lost', async () => {
    const [A, B] = c.nodes;
    const first = await openAnswer({ url: A.url }, { tokens: 2000, delay_ms: 20 }, {
      messages: msgs('producer stops'),
      stopAfter: 1,
    });
    let stopping;
    const r = resumeGet(B, first.sid, {
      timeoutMs: 60000,
      onEvent: (e, all) => {
        if (all.length === 10) stopping = stopProcess(A);
      },
    });
    const got = await r;
    assert.ok(stopping, `the reader on B ended before its 10th event: status ${got.status}, ${got.events?.length} events, last ${JSON.stringify(got.events?.at(-1))}`);
    const exit = await stopping;
    assert.equal(exit.code, 0);
    assert.ok(got.complete);
    const last = JSON.parse(got.events.at(-1).data);
    assert.equal(last.error.code, 'shutting_down', 'the producer\'s own last event reached the other node');
    got.events.forEach((e, i) => assert.equal(e.id, `${first.sid}.${i + 1}`));
  });
});

describe('a stream id handed out before Redis knows the stream is resumable on every node', () => {
  // The producer registers the stream in Redis when it creates it and hands the id out with
  // its first event without waiting for Redis's answer; a node asked for an id Redis does not
  // know yet asks again for up to the call timeout (cluster/mirror.c).
  let c;
  let A;
  let B;
  before(async () => {
    c = await startCluster({
      nodes: 2,
      // idle_timeout 30 s: the provider that goes silent (last test) is not cut before the kill
      config: { resume: { grace_seconds: 30 }, streaming: { idle_timeout_seconds: 30 } },
    });
    [A, B] = c.nodes;
  });
  let proxy;
  after(async () => {
    if (c) await c.stop();
    if (proxy) await proxy.close();
  });

  const SHORT = { tokens: 5, delay_ms: 5 }; // role, 5 chunks, finish, [DONE]

  test('resumed on B the moment its first event arrives from A: 50 fresh streams, each continued exactly', async () => {
    const failures = [];
    for (let i = 0; i < 50; i++) {
      let resumed;
      const first = await openAnswer({ url: A.url }, SHORT, {
        messages: msgs(`race ${i}`),
        stopAfter: 1,
        onEvent: (e, all) => {
          // no await between A's first event and B's request
          if (all.length === 1) resumed = resumeGet(B, e.id.split('.')[0], { lastEventId: e.id, timeoutMs: 30000 });
        },
      });
      assert.equal(first.status, 200);
      assert.ok(resumed, 'the first event had an id');
      const r = await resumed;
      if (r.status !== 200 || !r.complete || r.events.at(-1)?.data !== '[DONE]') {
        failures.push(`#${i}: status ${r.status}, ${r.events.length} events`);
        continue;
      }
      const full = await waitFinished({ url: A.url }, first.sid);
      assert.equal(full.events.length, 8);
      assertExact([first.events.slice(0, 1), r.events], full.events, first.sid, `race ${i}`);
    }
    assert.deepEqual(failures, [], `${failures.length} of 50 resumes on B failed`);
  });

  test('a slow first event (ttft 400 ms): resumed on B from the start as soon as the headers arrive, 10 streams', async () => {
    const failures = [];
    for (let i = 0; i < 10; i++) {
      const first = await openAnswer({ url: A.url }, { ...SHORT, ttft_ms: 400 }, {
        messages: msgs(`slow first ${i}`),
        stopOnHeaders: true,
      });
      assert.equal(first.status, 200);
      assert.ok(first.sid);
      const r = await resumeGet(B, first.sid, { timeoutMs: 30000 });
      if (r.status !== 200 || !r.complete) {
        failures.push(`#${i}: status ${r.status}, ${r.events.length} events`);
        continue;
      }
      const full = await waitFinished({ url: A.url }, first.sid);
      assert.equal(full.events.length, 8);
      assertExact([r.events], full.events, first.sid, `slow first ${i}`);
    }
    assert.deepEqual(failures, [], `${failures.length} of 10 resumes on B failed`);
  });

  test('a background Response created on A is retrievable on B at once, 10 times', async () => {
    const onA = new OpenAI({ baseURL: `${A.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const onB = new OpenAI({ baseURL: `${B.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    for (let i = 0; i < 10; i++) {
      const created = await onA.responses.create({ model: 'gpt-relay', input: `bg ${i}`, background: true, mock: SHORT });
      assert.equal(created.status, 'in_progress');
      assert.deepEqual(created.output, [], 'the object as it stood at commit');
      const early = await onB.responses.retrieve(created.id); // no wait between the two
      assert.equal(early.id, created.id);
      let done;
      await waitFor(async () => (done = await onB.responses.retrieve(created.id)).status === 'completed', {
        message: `background response ${i} completed on B`,
      });
      assert.deepEqual(done, await onA.responses.retrieve(created.id), 'the same Response object on both nodes');
    }
  });

  test('kill -9 of a producer whose provider went silent after its first event: node_lost on B, no hang', async () => {
    const before = Number(/telex_cluster_mirrors_total (\d+)/.exec(await metricsText(B))[1]);
    // the opening events, then nothing: B is asked the moment the client has the stream id and
    // its first event, so B's mirror is typically built from the registration alone
    let onB;
    const first = await openAnswer({ url: A.url }, { tokens: 5, delay_ms: 600000 }, {
      messages: msgs('silent after one event'),
      stopAfter: 1,
      onEvent: (e, all) => {
        if (all.length === 1) onB = resumeGet(B, e.id.split('.')[0], { timeoutMs: 60000 });
      },
    });
    assert.equal(first.status, 200);
    const sid = first.sid;
    assert.ok(onB);
    await waitFor(async () => Number(/telex_cluster_mirrors_total (\d+)/.exec(await metricsText(B))[1]) > before, {
      message: 'B mirrored the stream',
    });
    // the client has its first event before A appended it to Redis (2 ms batches): the kill
    // comes once Redis has what the client has (role and first token)
    await waitFor(async () => (await redisCommand(c.redis, `XLEN telex:s:${sid}:e`)) >= 2, {
      intervalMs: 5,
      message: 'the opening events in Redis',
    });
    const killedAt = performance.now();
    process.kill(A.pid, 'SIGKILL');
    const r = await onB;
    const endedAfter = performance.now() - killedAt;
    await A.exited;
    assert.equal(r.status, 200, r.text);
    assert.ok(r.complete, `the reader's response ended (${r.error})`);
    // the role chunk and the first token (the mock's delay comes after it), then the loss
    assert.ok(r.events.length >= 2, JSON.stringify(r.events));
    r.events.forEach((e, i) => assert.equal(e.id, `${sid}.${i + 1}`, 'consecutive ids, nothing missing'));
    assert.equal(r.events[0].data, first.events[0].data);
    for (const e of r.events.slice(0, -1)) assert.equal(JSON.parse(e.data).object, 'chat.completion.chunk');
    assert.equal(JSON.parse(r.events.at(-1).data).error.code, 'node_lost');
    assert.ok(!r.events.some((e) => e.data === '[DONE]'), 'never a fake [DONE]');
    assert.ok(endedAfter < 3000 + LATE_MS, `ended ${endedAfter.toFixed(0)} ms after the kill`);
  });

  test("the producer's Redis held: the id reaches the client first, B asked at once serves the exact stream", async () => {
    // P talks to Redis through a relay that can hold what P sends: its registration (and
    // every event) reaches Redis only once released, while B's lookups go straight through
    proxy = await startRedisProxy(c.redis);
    const P = await startNode(c, { env: { TELEX_REDIS_URL: proxy.url } }); // stopped (checked) with the others
    await waitRedisUp(P);
    for (let i = 0; i < 3; i++) {
      proxy.hold();
      let released = false;
      let onB;
      try {
        const first = await openAnswer({ url: P.url }, SHORT, {
          messages: msgs(`held registration ${i}`),
          stopAfter: 1,
          onEvent: (e, all) => {
            if (all.length === 1) onB = resumeGet(B, e.id.split('.')[0], { lastEventId: e.id, timeoutMs: 30000 });
          },
        });
        assert.equal(first.status, 200);
        assert.ok(onB, 'the first event (with its id) reached the client while Redis had nothing');
        // B looked the id up, found nothing, and asked again: then let P's registration through
        // (well within P's 1 s call timeout)
        const before = await redisCalls(c.redis, 'hgetall');
        await waitFor(async () => (await redisCalls(c.redis, 'hgetall')) >= before + 2, {
          intervalMs: 5,
          message: "B's repeated lookup",
        });
        proxy.release();
        released = true;
        const r = await onB;
        assert.equal(r.status, 200, r.text);
        assert.ok(r.complete, `the resumed response ended (${r.error})`);
        assert.equal(r.events.at(-1).data, '[DONE]');
        const full = await waitFinished({ url: P.url }, first.sid);
        assert.equal(full.events.length, 8);
        assertExact([first.events.slice(0, 1), r.events], full.events, first.sid, `held registration ${i}`);
      } finally {
        if (!released) proxy.release();
      }
    }
  });

  test('an id no node issued: unknown on B (204 to an event stream) once the bounded wait for its registration is over', async () => {
    const sid = 'st_' + 'A'.repeat(22);
    const t0 = performance.now();
    const r = await resumeGet(B, sid, { lastEventId: `${sid}.1`, timeoutMs: 30000 });
    const took = performance.now() - t0;
    assert.equal(r.status, 204, r.text); // as on one node: EventSource stops reconnecting
    // the wait is the Redis call timeout (1 s)
    assert.ok(took >= 900, `answered after the wait, ${took.toFixed(0)} ms`);
    assert.ok(took < 1000 + 500 + LATE_MS, `answered in ${took.toFixed(0)} ms`);
  });

  // last: A is gone (killed above), B produces; Redis is not needed afterwards
  test('Redis stuck (SIGSTOP): the response is not held; the registration is counted as failed, served local-only', async () => {
    const failed = async () => Number(/telex_cluster_registrations_failed_total (\d+)/.exec(await metricsText(B))[1]);
    const before = await failed();
    process.kill(c.redis.pid, 'SIGSTOP');
    let r;
    let took;
    let failedThen;
    try {
      const t0 = performance.now();
      r = await openAnswer({ url: B.url }, SHORT, { messages: msgs('redis stuck') });
      took = performance.now() - t0;
      failedThen = await failed();
      // Redis stays stopped until the registration's call timed out (a late reply would count as acknowledged)
      await waitFor(async () => (await failed()) > before, {
        message: 'the registration counted in telex_cluster_registrations_failed_total',
      });
    } finally {
      process.kill(c.redis.pid, 'SIGCONT');
    }
    assert.equal(r.status, 200);
    assert.ok(r.complete, `the answer ended (${r.error})`);
    assert.equal(r.events.length, 8);
    assert.equal(r.events.at(-1).data, '[DONE]');
    // the answer (~50 ms) did not wait for Redis: its registration is counted as failed only
    // when the call timeout (1 s) is over, after the answer
    assert.equal(failedThen, before, `answered in ${took.toFixed(0)} ms, before the registration timed out`);
  });
});

describe('start-up', () => {
  const refuse = async (env, pattern) => {
    const p = await startServe([], { env, waitReady: false });
    const exit = await p.exited;
    assert.notEqual(exit.code, 0);
    assert.match(p.stderr(), pattern);
  };
  test('rediss:// is refused: no TLS in Debian 12 hiredis', () =>
    refuse({ TELEX_REDIS_URL: 'rediss://127.0.0.1:6380', TELEX_RESUME_SECRET: SECRET }, /rediss:\/\/ \(TLS\) is not supported/));
  test('a bad URL is refused', () =>
    refuse({ TELEX_REDIS_URL: 'http://127.0.0.1:6379', TELEX_RESUME_SECRET: SECRET }, /expected redis:\/\//));
  test('cluster mode without TELEX_RESUME_SECRET is refused', () =>
    refuse({ TELEX_REDIS_URL: 'redis://127.0.0.1:6379', TELEX_RESUME_SECRET: '' }, /needs TELEX_RESUME_SECRET/));
  test('Redis down at start: the node starts and serves locally', async () => {
    const port = await (await import('./lib/proc.js')).freePort();
    const p = await startServe([], { env: { TELEX_REDIS_URL: `redis://127.0.0.1:${port}`, TELEX_RESUME_SECRET: SECRET } });
    try {
      const r = await request(`${p.url}/v1/chat/completions`, {
        body: { model: 'demo', messages: msgs('local'), stream: true },
        headers: { accept: 'text/event-stream' },
      });
      assert.equal(r.status, 200);
      assert.equal(r.events.at(-1).data, '[DONE]');
      assert.match(await metricsText(p), /telex_cluster_redis_up 0/);
    } finally {
      const { stopProcess } = await import('./lib/proc.js');
      await stopProcess(p);
    }
  });
});
