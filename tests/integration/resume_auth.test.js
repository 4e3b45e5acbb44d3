// tests/integration/resume_auth.test.js — who may resume a stream, with API keys in the store.
//
// Keys alice and bob exist (created with `telex keys create` before the start). A stream that
// alice starts is owned by her key:
//  - GET /v1/streams/{id} with alice's key → 200; with the resume token (no key at all, as an
//    EventSource sends it, or with bob's key) → 200;
//  - with bob's key, with no key and no token, with a wrong token or the token of another
//    stream → exactly what an unknown stream gets (204 to event-stream clients, else 404
//    stream_not_found): ids cannot be probed;
//  - POST /v1/chat/completions with Last-Event-ID: alice resumes; bob gets 404 and generates
//    nothing; DELETE: bob 404, the token holder may cancel;
//  - with auth.allow_anonymous, an anonymous stream is reachable with its id alone.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { SYNC_TIMEOUT_MS, TELEX_BIN } from './lib/proc.js';
import { SANITIZER_ENV, lastSeq, msgs, startRelay, tmpDir } from './lib/relay.js';
import { openAnswer, request, resumeConfig, resumeGet, withoutRetry } from './lib/resume.js';

function createKey(dbPath, name) {
  const r = spawnSync(TELEX_BIN, ['keys', 'create', '--name', name], {
    env: { ...process.env, TELEX_DB: dbPath, ...SANITIZER_ENV },
    encoding: 'utf8',
    timeout: SYNC_TIMEOUT_MS,
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

const bearer = (key) => ({ authorization: `Bearer ${key}` });

let relay;
let alice;
let bob;
before(async () => {
  const dbPath = path.join(tmpDir(), 'telex.db');
  alice = createKey(dbPath, 'alice');
  bob = createKey(dbPath, 'bob');
  relay = await startRelay({ env: { TELEX_DB: dbPath }, config: resumeConfig({ store: { path: dbPath } }) });
});
after(async () => {
  if (relay) await relay.stop();
});

// Asserts that `opts` on stream sid is treated like an unknown stream.
async function assertLooksUnknown(sid, opts, what) {
  const sse = await resumeGet(relay, sid, opts);
  assert.equal(sse.status, 204, `${what} (event-stream): ${sse.status} ${sse.text.slice(0, 200)}`);
  const json = await resumeGet(relay, sid, { ...opts, accept: null });
  assert.equal(json.status, 404, `${what} (JSON): ${json.status}`);
  assert.equal(JSON.parse(json.text).error.code, 'stream_not_found');
  const unknown = await resumeGet(relay, 'st_AAAAAAAAAAAAAAAAAAAAAA', { ...opts, accept: null });
  assert.equal(json.text, unknown.text, `${what}: the same body as an unknown stream`);
}

describe('a stream started with a key', () => {
  let a; // alice's answer, finished
  let other; // another stream of alice's, for its token
  before(async () => {
    a = await openAnswer(relay, { tokens: 5 }, { headers: bearer(alice) });
    other = await openAnswer(relay, { tokens: 1 }, { headers: bearer(alice) });
    assert.equal(a.status, 200, a.text);
  });

  test('the same key resumes without a token', async () => {
    const r = await resumeGet(relay, a.sid, { headers: bearer(alice), lastEventId: `${a.sid}.2` });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(withoutRetry(r.events), withoutRetry(a.events.slice(2)));
  });

  test('the resume token works with no key (EventSource) and with another key', async () => {
    for (const headers of [{}, bearer(bob)]) {
      const r = await request(`${relay.url}${a.resumeUrl}`, { headers: { accept: 'text/event-stream', ...headers } });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.events, a.events);
    }
  });

  test('another key, no key, a wrong or another stream\'s token: like an unknown stream', async () => {
    await assertLooksUnknown(a.sid, { headers: bearer(bob) }, "bob's key");
    await assertLooksUnknown(a.sid, {}, 'no key, no token');
    await assertLooksUnknown(a.sid, { query: `token=${'A'.repeat(43)}` }, 'a wrong token');
    await assertLooksUnknown(a.sid, { query: `token=${other.token}` }, "another stream's token");
    await assertLooksUnknown(a.sid, { query: `token=${a.token.slice(0, 42)}` }, 'a truncated token');
  });

  test('POST with Last-Event-ID: alice resumes, bob gets 404 and nothing is generated', async () => {
    const body = { model: 'gpt-relay', messages: msgs(), stream: true };
    const since = await lastSeq(relay.mock);
    const mine = await request(`${relay.url}/v1/chat/completions`, {
      body,
      headers: { ...bearer(alice), 'last-event-id': `${a.sid}.3` },
    });
    assert.equal(mine.status, 200);
    assert.deepEqual(withoutRetry(mine.events), withoutRetry(a.events.slice(3)));
    const theirs = await request(`${relay.url}/v1/chat/completions`, {
      body,
      headers: { ...bearer(bob), 'last-event-id': `${a.sid}.3` },
    });
    assert.equal(theirs.status, 404);
    assert.equal(JSON.parse(theirs.text).error.code, 'stream_not_found');
    assert.equal(await lastSeq(relay.mock), since);
  });

  test('DELETE: bob 404; the token holder cancels', async () => {
    const live = await openAnswer(relay, { tokens: 200, delay_ms: 20 }, { headers: bearer(alice), stopAfter: 2 });
    const bobs = await request(`${relay.url}/v1/streams/${live.sid}`, { method: 'DELETE', headers: bearer(bob) });
    assert.equal(bobs.status, 404);
    const del = await request(`${relay.url}${live.resumeUrl}`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    assert.equal(JSON.parse(del.text).status, 'cancelled');
  });

  test('a POST without a key is 401 (keys exist), so no stream starts', async () => {
    const r = await openAnswer(relay, { tokens: 1 });
    assert.equal(r.status, 401);
    assert.equal(r.sid, null);
  });
});

describe('auth.allow_anonymous with keys present', () => {
  let anon;
  before(async () => {
    anon = await startRelay({
      mock: relay.mock,
      env: { TELEX_DB: relay.config.store.path },
      config: resumeConfig({ store: { path: relay.config.store.path }, auth: { allow_anonymous: true } }),
    });
  });
  after(async () => {
    if (anon) await anon.stop();
  });

  test('an anonymous stream is reachable with its id alone; a keyed one is not', async () => {
    const mine = await openAnswer(anon, { tokens: 3 });
    assert.equal(mine.status, 200);
    const r = await resumeGet(anon, mine.sid);
    assert.equal(r.status, 200);
    assert.deepEqual(r.events, mine.events);
    const keyed = await openAnswer(anon, { tokens: 3 }, { headers: bearer(alice) });
    assert.equal((await resumeGet(anon, keyed.sid, { accept: null })).status, 404);
    assert.equal((await resumeGet(anon, keyed.sid, { headers: bearer(alice) })).status, 200);
  });
});
