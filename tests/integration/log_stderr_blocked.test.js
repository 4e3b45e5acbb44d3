// tests/integration/log_stderr_blocked.test.js — a gateway whose stderr nobody reads (a full
// pipe) keeps serving (issue 18): logging never blocks a worker. Log lines queue for a writer
// thread (1 MiB at most); what does not fit is dropped and counted, and a "log lines dropped"
// warning with the count follows once stderr is read again.
//
// Before the fix each log line was a blocking write(2) on stderr: once the pipe (64 KiB) and
// node's own read buffer were full, the worker that logged froze, and every request on it
// hung.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';

import { SLACK, TELEX_BIN, freePort, waitFor } from './lib/proc.js';
import { tmpDir } from './lib/relay.js';

// each 404 logs a ~330-byte request line: this many are ~1.6 MB of log, more than the pipe,
// node's buffer and telex's queue together
const REQUESTS = 5000;
const LONG = 'x'.repeat(100);

let child;
let port;
let exited;
before(async () => {
  port = await freePort();
  const dir = tmpDir('telex-log-');
  child = spawn(TELEX_BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--workers', '1'], {
    env: { ...process.env, TELEX_DB: path.join(dir, 'telex.db'), TELEX_LOG: '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.stderr.pause(); // nobody reads: once node's buffer is full the pipe fills
  await waitFor(
    async () => {
      try {
        return (await fetch(`http://127.0.0.1:${port}/v1/models`)).status === 200;
      } catch {
        return false;
      }
    },
    { timeoutMs: 10000 * SLACK, message: 'telex serve to listen' },
  );
});
after(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await exited;
  }
});

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const get = (p) =>
  new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.setTimeout(10000 * SLACK, () => req.destroy(new Error(`no answer to ${p} within 10 s: a blocked worker`)));
    req.on('error', reject);
  });

test('a stderr nobody reads does not block the workers; dropped lines are counted', async () => {
  for (let i = 0; i < REQUESTS; i++) assert.equal(await get(`/nothere-${i}-${LONG}`), 404);
  // a streamed answer (the built-in demo model) still arrives whole
  const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hi' }], stream: true, max_tokens: 5 }),
  });
  assert.equal(r.status, 200);
  assert.match(await r.text(), /data: \[DONE\]\n\n$/);

  // read stderr now: whole JSON lines, the first ones in order, and the count of the dropped
  const parts = [];
  child.stderr.on('data', (d) => parts.push(d));
  child.stderr.resume();
  child.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 0, signal: null });
  await new Promise((resolve) => (child.stderr.readableEnded ? resolve() : child.stderr.on('end', resolve)));
  const lines = Buffer.concat(parts).toString().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const requests = lines.filter((l) => l.msg === 'request');
  const drops = lines.filter((l) => l.msg === 'log lines dropped: stderr was not being read');
  assert.ok(drops.length >= 1, 'a "log lines dropped" warning');
  const dropped = drops.reduce((n, l) => n + l.dropped, 0);
  assert.equal(drops.at(-1).dropped_total, dropped);
  // every 404's line was either written or counted as dropped; beyond those, only the
  // stream's request line, "shutting down" and "stopped" may have been dropped too
  const notFound = requests.filter((l) => l.status === 404).length;
  assert.ok(dropped > 0 && notFound < REQUESTS, `${notFound} written, ${dropped} dropped`);
  assert.ok(
    notFound + dropped >= REQUESTS && notFound + dropped <= REQUESTS + 3,
    `${notFound} written + ${dropped} dropped, for ${REQUESTS}`,
  );
  const paths = requests.filter((l) => l.status === 404).map((l) => Number(l.path.split('-')[1]));
  assert.deepEqual(paths, [...paths].sort((a, b) => a - b), 'written in order');
});
