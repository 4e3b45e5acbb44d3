// tests/integration/lib/proc.js — start and stop real telex processes in tests.
//
// Every telex server logs one JSON line per event on stderr; when it is ready it
// logs {"msg":"listening","address":"HOST:PORT","url":...}. startProcess() spawns
// a command, collects its stderr as parsed log lines, and resolves once that
// line appears (so `--listen 127.0.0.1:0` gives a free port with no race).
// stderr goes to a temp file that is read from here, not to a pipe: telex writes its
// log lines with blocking write(2) on the worker threads, and a test process too busy
// to read a pipe (hundreds of streams on a loaded machine) would stall telex itself.
// stopProcess() ends it by PID (SIGTERM, then SIGKILL after a timeout). Any
// process still running when the test process exits is killed by PID.
//
// Exports:
//   TELEX_BIN                                   path of the binary ($TELEX_BIN or build/telex)
//   SANITIZED                                   true when $TELEX_SANITIZED is set (ASan build: be lenient on timing)
//   SLACK                                       timing tolerance multiplier: 3 under ASan, else 1
//   LATE_MS                                     how late a busy machine may make a promised deadline (below)
//   SYNC_TIMEOUT_MS                             `timeout` for spawnSync/execFileSync in tests: a synchronous
//                                               child that hangs blocks the test process, and --test-timeout
//                                               cannot fire (120 s, 3x under ASan)
//   startProcess(args, opts?) -> Promise<Proc>  spawn TELEX_BIN args, wait for "listening"
//   startMock(args?, opts?)   -> Promise<Proc>  `telex mock --listen 127.0.0.1:0 ...args`
//   startServe(args?, opts?)  -> Promise<Proc>  `telex serve --listen 127.0.0.1:0 ...args`
//   stopProcess(proc, opts?)  -> Promise<{code, signal}>
//   freePort(host?)           -> Promise<number> a port that was free a moment ago
//   waitFor(fn, opts?)        -> Promise<value>  poll fn() until it returns a truthy value
//   within(promise, ms, what) -> Promise<value>  the promise's value, or a rejection after ms
//   sleep(ms)                 -> Promise<void>
//   atFileEnd(fn)             -> remove()        fn closes a leftover if the file does not exit (below)
//
// Timing in tests (docs/testing.md, "Timing"): wait for the event itself (a log line, the
// mock's journal, a response, an exit, waitFor on a condition), never for a fixed time. A
// deadline that telex promises ("within one second") is asserted as `< promise + LATE_MS`,
// and the test arranges that the wrong behaviour (never, at a timeout of 10 s or more) would
// take clearly longer than that, so the assertion keeps its meaning on a loaded machine.
//
// Proc: { child, pid, address, host, port, url, logs, stderr(), waitForLog(pred, opts?), exited }
//   url      'http://127.0.0.1:PORT' (no trailing slash; IPv6 hosts in brackets)
//   logs     every stderr line so far: parsed JSON objects, or {raw: line} for other text
//   exited   a Promise of {code, signal} that settles when the process ends
import { spawn } from 'node:child_process';
import net from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const dbDirs = [];
process.on('exit', () => {
  for (const d of dbDirs) fs.rmSync(d, { recursive: true, force: true });
});
let logDir = null;
let logCount = 0;
function freshLogFile() {
  if (logDir === null) {
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'telex-stderr-'));
    dbDirs.push(logDir);
  }
  return path.join(logDir, `${++logCount}.log`);
}
function freshDbPath() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'telex-db-'));
  dbDirs.push(d);
  return path.join(d, 'telex.db');
}

export const TELEX_BIN = process.env.TELEX_BIN ?? 'build/telex';
export const SANITIZED = Boolean(process.env.TELEX_SANITIZED);
// Timing tolerance multiplier: ASan makes telex several times slower.
export const SLACK = SANITIZED ? 3 : 1;
// What a busy 2-core machine (a parallel build, a second test run, Chromium) may add to a
// deadline: timers and sweeps firing late, processes waiting for a CPU. Generous on purpose:
// a test that needs a tighter bound is measuring speed, which is `make bench`'s business.
export const LATE_MS = 2000 * SLACK;
// A spawnSync that hangs would freeze the whole test file (no timer runs, not even
// --test-timeout's): every synchronous child in tests gets this much, then is killed.
export const SYNC_TIMEOUT_MS = 120000 * SLACK;

const live = new Set();
function killLive() {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}
process.on('exit', killLive);

// A test that fails before it stops what it started (a telex process, a stub server)
// leaves a handle that keeps its file's process alive, and `node --test` then waits for
// that file forever (CI's 90 minutes ran out that way once). So, under `node --test`,
// once its tests are done a file gets LEAK_GRACE_MS (its own after hooks included) to
// exit by itself; if it has not, it names what is still open, kills the processes it
// started, and exits 1: the file fails by name instead of hanging. (The timer is
// unref'd: a file that exits normally never waits for it.) atFileEnd(fn) adds a closer
// for such leftovers.
const LEAK_GRACE_MS = 120000;
const closers = new Set();
export function atFileEnd(fn) {
  closers.add(fn);
  return () => closers.delete(fn);
}
if (process.env.NODE_TEST_CONTEXT) {
  const { after } = await import('node:test');
  after(() => {
    setTimeout(() => {
      const open = process
        ._getActiveHandles()
        .map((h) => h?.constructor?.name ?? typeof h)
        .join(', ');
      process.stderr.write(`test file still running ${LEAK_GRACE_MS} ms after its tests ended; open: ${open}; processes: ${[...live].join(' ') || 'none'}\n`);
      for (const fn of closers) {
        try {
          fn();
        } catch {
          /* closing anyway */
        }
      }
      killLive();
      process.exit(1);
    }, LEAK_GRACE_MS).unref();
  });
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls fn (sync or async) every intervalMs until it returns a truthy value,
// which is returned; rejects with `message` (or the last error fn threw) after timeoutMs
// (generous by default: it only bounds how long a failing test takes).
export async function waitFor(fn, { timeoutMs = 10000 * SLACK, intervalMs = 25, message = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const err = new Error(`timed out after ${timeoutMs} ms waiting for ${message}`);
      if (lastError) err.cause = lastError;
      throw err;
    }
    await sleep(intervalMs);
  }
}

// Resolves with the promise's value, or rejects when it has not settled after ms
// ("resolves at once" in a test: the alternative is never, or a timeout far longer than ms).
export function within(promise, ms, what = 'the promise') {
  let timer;
  const late = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

// Spawns TELEX_BIN (or opts.bin) with args and resolves when it logs "listening".
// opts: { bin, env (merged over process.env, minus TELEX_LOG=quiet), timeoutMs (default 10000 / 30000 sanitized),
//         readyMsg (default 'listening'), waitReady (default true) }
export function startProcess(args, opts = {}) {
  const bin = opts.bin ?? TELEX_BIN;
  const timeoutMs = opts.timeoutMs ?? (SANITIZED ? 30000 : 10000);
  const readyMsg = opts.readyMsg ?? 'listening';
  // TELEX_LOG=quiet would silence the "listening" line this waits for.
  const env = { ...process.env };
  if (env.TELEX_LOG === 'quiet') delete env.TELEX_LOG;
  // Every process gets its own key/usage database unless the test names one,
  // so no test (and no developer's own ~/.local/state/telex) leaks into another.
  if (env.TELEX_DB === undefined && opts.env?.TELEX_DB === undefined) env.TELEX_DB = freshDbPath();
  // stderr: a file (see the top), read with positional reads as it grows
  const fd = fs.openSync(freshLogFile(), 'a+');
  let child;
  try {
    child = spawn(bin, args, {
      env: { ...env, ...(opts.env ?? {}) },
      stdio: ['ignore', 'pipe', fd],
    });
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  const logs = [];
  const waiters = [];
  let text = '';
  let partial = '';
  let readAt = 0;
  let open = true;
  const decoder = new StringDecoder('utf8');
  const chunk = Buffer.alloc(65536);
  // Reads what the process wrote since the last look; every complete line becomes a log entry.
  function drain() {
    if (!open) return;
    for (;;) {
      const n = fs.readSync(fd, chunk, 0, chunk.length, readAt);
      if (n <= 0) break;
      readAt += n;
      feed(decoder.write(chunk.subarray(0, n)));
    }
  }
  const poller = setInterval(drain, 10);
  poller.unref();
  child.stdout.resume();
  function feed(data) {
    text += data;
    partial += data;
    let nl;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        entry = { raw: line };
      }
      logs.push(entry);
      for (const w of [...waiters]) w.check(entry);
    }
  }
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      live.delete(child.pid);
      drain(); // everything it wrote is in the file by now
      clearInterval(poller);
      open = false;
      fs.closeSync(fd);
      resolve({ code, signal });
      for (const w of [...waiters]) w.exit(code, signal);
    });
  });
  child.on('error', () => {
    if (!open) return;
    clearInterval(poller);
    open = false;
    fs.closeSync(fd);
  });
  if (child.pid !== undefined) live.add(child.pid);

  const proc = {
    child,
    pid: child.pid,
    // (both read what the process wrote up to now first)
    get logs() {
      drain();
      return logs;
    },
    exited,
    stderr: () => {
      drain();
      return text;
    },
    // Resolves with the first log line (past or future) for which pred(line) is true.
    waitForLog(pred, { timeoutMs: t = timeoutMs } = {}) {
      drain();
      const found = logs.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = {
          check(entry) {
            if (pred(entry)) done(null, entry);
          },
          exit(code, signal) {
            done(new Error(`${bin} ${args.join(' ')} exited (code ${code}, signal ${signal}) first:\n${text}`));
          },
        };
        const timer = setTimeout(() => done(new Error(`no matching log line after ${t} ms:\n${text}`)), t);
        function done(err, entry) {
          clearTimeout(timer);
          const i = waiters.indexOf(w);
          if (i >= 0) waiters.splice(i, 1);
          if (err) reject(err);
          else resolve(entry);
        }
        waiters.push(w);
      });
    },
  };

  return new Promise((resolve, reject) => {
    child.on('error', (err) => reject(new Error(`cannot start ${bin}: ${err.message}`)));
    if (opts.waitReady === false) {
      resolve(proc);
      return;
    }
    proc
      .waitForLog((l) => l.msg === readyMsg)
      .then((line) => {
        if (line.address) {
          const m = /^(.*):(\d+)$/.exec(line.address);
          proc.address = line.address;
          proc.host = m[1].replace(/^\[(.*)\]$/, '$1');
          proc.port = Number(m[2]);
          proc.url = `http://${m[1]}:${m[2]}`;
        }
        resolve(proc);
      })
      .catch((err) => {
        if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
        reject(err);
      });
  });
}

export const startMock = (args = [], opts = {}) => startProcess(['mock', '--listen', '127.0.0.1:0', ...args], opts);
export const startServe = (args = [], opts = {}) => startProcess(['serve', '--listen', '127.0.0.1:0', ...args], opts);

// Stops a process by PID: `signal` (default SIGTERM), then SIGKILL after timeoutMs.
export async function stopProcess(proc, { signal = 'SIGTERM', timeoutMs = SANITIZED ? 15000 : 5000 } = {}) {
  if (!proc || !proc.child) return { code: null, signal: null };
  const { child } = proc;
  if (child.exitCode !== null || child.signalCode !== null) return proc.exited;
  try {
    process.kill(child.pid, signal);
  } catch {
    return proc.exited;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, timeoutMs);
  const r = await proc.exited;
  clearTimeout(timer);
  return r;
}

// A TCP port on `host` that was free when asked (for configs that need a port up front;
// prefer `--listen 127.0.0.1:0` and the listening line, which cannot race).
export function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}
