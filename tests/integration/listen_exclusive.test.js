// tests/integration/listen_exclusive.test.js — a port belongs to one telex process.
// Its worker threads share it (SO_REUSEPORT among themselves), but a second `telex serve`
// or `telex mock` on a port another process listens on — another telex, or any other
// server — exits 69 with one line that says so, instead of silently splitting the
// connections with the first. Restarting on the port of a run that just stopped works,
// even while that run's connections sit in TIME_WAIT.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';

import { startProcess, startServe, stopProcess } from './lib/proc.js';
import { SANITIZER_ENV, sanitizerReports, stopChecked } from './lib/relay.js';

const IN_USE = /^telex (serve|mock): cannot listen on 127\.0\.0\.1:(\d+): address already in use by another process/m;
const opts = { env: SANITIZER_ENV };

const running = [];
after(async () => {
  for (const p of running) await stopProcess(p);
});

// Starts `telex args...` expecting it to fail: resolves with its exit and stderr, or, if it
// logs `listening` instead, stops it and resolves with {started: true}.
async function failsToStart(args) {
  const p = await startProcess(args, { ...opts, waitReady: false });
  running.push(p);
  const first = await Promise.race([p.exited, p.waitForLog((l) => l.msg === 'listening').catch(() => p.exited)]);
  if (first.msg === 'listening') {
    await stopProcess(p);
    return { exit: { started: true }, stderr: p.stderr(), report: null };
  }
  return { exit: first, stderr: p.stderr(), report: sanitizerReports(p) };
}

function assertRefused({ exit, stderr, report }, port) {
  assert.equal(report, null);
  assert.deepEqual(exit, { code: 69, signal: null }, stderr);
  const m = IN_USE.exec(stderr);
  assert.ok(m, stderr);
  assert.equal(Number(m[2]), port);
  assert.equal(stderr.split('\n').filter((l) => /cannot listen/.test(l)).length, 1, stderr);
  assert.ok(!/"msg":"listening"/.test(stderr), stderr);
}

async function healthy(url) {
  const r = await fetch(`${url}/healthz`);
  return r.status === 200 && (await r.json()).status === 'ok';
}

test('a second telex on the port of a running one exits 69; the first keeps serving', async () => {
  const first = await startServe(['--workers', '3'], opts);
  running.push(first);
  assert.equal(first.logs.find((l) => l.msg === 'listening').workers, 3);
  const listen = `127.0.0.1:${first.port}`;
  assertRefused(await failsToStart(['serve', '--listen', listen, '--workers', '2']), first.port);
  assertRefused(await failsToStart(['mock', '--listen', listen]), first.port);
  // Every connection still reaches the first one (none lands on a half-started second).
  for (let i = 0; i < 20; i++) assert.ok(await healthy(first.url));
  await stopChecked(first);
});

test('a port held by another program (a node server on 127.0.0.1) makes telex exit 69', async () => {
  const server = net.createServer((s) => s.destroy());
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  try {
    const { port } = server.address();
    assertRefused(await failsToStart(['serve', '--listen', `127.0.0.1:${port}`]), port);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

// Local ports in TIME_WAIT (state 06) in the kernel's IPv4 table.
function timeWaitPorts() {
  const ports = new Set();
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[3] === '06') ports.add(parseInt(f[1].split(':')[1], 16));
  }
  return ports;
}

test('telex restarts on the port of a run that just stopped, its connections in TIME_WAIT', async () => {
  const first = await startServe([], opts);
  running.push(first);
  // A kept-alive connection that telex closes first at shutdown leaves its side in TIME_WAIT.
  const sock = net.connect(first.port, '127.0.0.1');
  const closed = new Promise((resolve) => sock.on('close', resolve));
  const answered = new Promise((resolve) => sock.once('data', resolve));
  sock.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  assert.match(String(await answered), /^HTTP\/1\.1 200/);
  await stopChecked(first);
  await closed;
  assert.ok(timeWaitPorts().has(first.port), 'the first run left a connection in TIME_WAIT');

  const second = await startProcess(['serve', '--listen', `127.0.0.1:${first.port}`], opts);
  running.push(second);
  assert.equal(second.port, first.port);
  assert.ok(await healthy(second.url));
  await stopChecked(second);
});
