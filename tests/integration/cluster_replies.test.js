// tests/integration/cluster_replies.test.js — the tap's appends go to Redis unanswered (issue 19,
// CPU per event): each batch of XADDs travels between CLIENT REPLY OFF and ON, so Redis answers
// once per batch instead of once per event (cluster/rconn.c, telex_rconn_cmd_quiet).
//   - with a Redis that honours CLIENT REPLY: a stream's every event and its end reach Redis
//     (exactly one XADD each), the batches are wrapped (CLIENT REPLY calls counted by Redis), and
//     another node serves the stream byte for byte;
//   - with a Redis user that may not run CLIENT (an ACL, as a proxy or a locked-down user would):
//     the node says so once, connects again without it, and every event still reaches Redis and
//     another node (each XADD answered as before).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { msgs } from './lib/relay.js';
import { assertExact, openAnswer, resumeGet, waitFinished } from './lib/resume.js';
import { redisCalls, redisCommand, startCluster, startNode, waitRedisUp } from './lib/cluster.js';

const N = 43; // role, 40 content chunks, finish, [DONE]
const MOCK = { tokens: 40, delay_ms: 5 };

/** Redis' count of CLIENT REPLY calls, and of those refused (ACL). */
async function clientReply(redis) {
  const text = await redisCommand(redis, 'INFO commandstats');
  const m = /cmdstat_client\|reply:calls=(\d+),.*rejected_calls=(\d+)/.exec(text);
  return m ? { calls: Number(m[1]), rejected: Number(m[2]) } : { calls: 0, rejected: 0 };
}

async function streamedThenResumed(producer, reader, redis, label) {
  const xadds = await redisCalls(redis, 'xadd');
  const first = await openAnswer({ url: producer.url }, MOCK, { messages: msgs(label), stopAfter: 1 });
  assert.equal(first.status, 200);
  const full = await waitFinished({ url: producer.url }, first.sid);
  assert.equal(full.events.length, N);
  // the whole answer from the other node, through Redis
  const r = await resumeGet(reader, first.sid, { lastEventId: `${first.sid}.1`, timeoutMs: 30000 });
  assert.equal(r.status, 200, r.text);
  assert.ok(r.complete, `the resumed response ended (${r.error})`);
  assertExact([first.events.slice(0, 1), r.events], full.events, first.sid, label);
  // one XADD per event and one for the end: nothing lost, nothing sent twice
  assert.equal((await redisCalls(redis, 'xadd')) - xadds, N + 1);
}

describe('appends answered once per batch', () => {
  let c;
  before(async () => {
    c = await startCluster({ nodes: 2 });
  });
  after(async () => {
    if (c) await c.stop();
  });

  test('a Redis that honours CLIENT REPLY: every event reaches it, the batches wrapped', async () => {
    const [A, B] = c.nodes;
    const before = await clientReply(c.redis);
    await streamedThenResumed(A, B, c.redis, 'quiet appends');
    const now = await clientReply(c.redis);
    // at least one batch (OFF and ON: two calls), none refused
    assert.ok(now.calls - before.calls >= 2, JSON.stringify({ before, now }));
    assert.equal(now.rejected, 0);
  });

  test('a Redis user that may not run CLIENT: said once, every event still reaches Redis', async () => {
    const [A, B] = c.nodes;
    assert.equal(await redisCommand(c.redis, 'ACL SETUSER noclient on >noclient-pw ~* &* +@all -client'), 'OK');
    const P = await startNode(c, { env: { TELEX_REDIS_URL: `redis://noclient:noclient-pw@127.0.0.1:${c.redis.port}` } });
    await waitRedisUp(P);
    await P.waitForLog((l) => l.msg === 'redis refused CLIENT REPLY: every append is answered');
    const refused = (await clientReply(c.redis)).rejected;
    assert.ok(refused >= 1, 'the probe was refused by the ACL');
    await streamedThenResumed(P, B, c.redis, 'answered appends');
    await streamedThenResumed(P, A, c.redis, 'answered appends, again');
    // the refusal is remembered: the connection made again after it sent no probe, and no batch
    // is wrapped (a wrapped batch would be refused, counted here)
    assert.equal((await clientReply(c.redis)).rejected, refused);
    assert.equal(P.logs.filter((l) => l.msg === 'redis refused CLIENT REPLY: every append is answered').length, 1);
  });
});
