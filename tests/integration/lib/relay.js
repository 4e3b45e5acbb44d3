// tests/integration/lib/relay.js — a real `telex mock` behind a real `telex serve`,
// for the relay suites (tests/integration/relay_*.test.js).
//
// startRelay() starts a mock on a free port, writes a telex.yaml into a temp dir
// whose providers point at it, starts `telex serve --config` on a free port, and
// returns both. The config is written as JSON, which is YAML (flow style).
//
// Exports:
//   SLACK, LATE_MS                 timing tolerance (from proc.js: 3 under ASan, else 1; the
//                                  margin a busy machine may add to a promised deadline)
//   API_KEY                        the key configured for provider "mock" (must never leak)
//   msgs(text), chatBody(mock, extra)  request bodies (model gpt-relay, stream true)
//   baseConfig(mockUrl, patch?)    the default config object (see below); patch is merged
//   startRelay(opts?)              -> { mock, serve, dir, config, url, stop() }
//       opts: { config(mockUrl) -> object | patch object, serveArgs, mockArgs, env, mock (reuse) }
//   startGateway(config, opts?)    -> serve Proc for a config object (temp file)
//   stopChecked(proc)              SIGTERM; throws unless exit 0 and no sanitizer report
//   sanitizerReports(proc)         the ASan/UBSan/LSan report in its stderr, or null
//   journal(mock, since?)          -> {total, requests} of GET /mock/requests
//   lastSeq(mock)                  -> the mock's request counter
//   entriesSince(mock, since)      -> the requests the mock saw since that counter
//   waitEntry(mock, since, pred, opts?) -> the first entry since `since` matching pred
//   requestLogs(serve)             -> the serve's `request` log lines so far
//   logBarrier(serve)              -> resolves once every line the serve logged before the call is
//                                  in serve.logs (lines reach stderr through telex's log writer
//                                  thread, a moment after the response): before asserting that a
//                                  line is absent, that there are exactly N, or that no key leaked.
//                                  It asks for an unknown path (404) and waits for that request's
//                                  own `request` line, queued after them all; a test that counts
//                                  request lines afterwards must leave that one out.
//   curl(args, opts?)              -> Promise<{code, out, err}> (curl -sS ...args)
//   startStub(handler)             -> a node:http upstream on 127.0.0.1 {url, requests, close()}
//   tmpDir(prefix)                 -> a fresh temp directory (removed at exit)
//   UPSTREAM_HTTP2, useHttp2(config, mockUrl)  TELEX_UPSTREAM_HTTP2=1: providers at the mock use http2: on
//
// Models in baseConfig (all with the mock as upstream):
//   gpt-relay     → mock, upstream name "upstream-relay"
//   gpt-fallback  → dead port 127.0.0.1:1, then mock ("upstream-fallback")
//   gpt-twice     → mock ("first-try"), then mock again ("second-try")
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { LATE_MS, SANITIZED, SLACK, atFileEnd, startMock, startServe, stopProcess, waitFor } from './proc.js';

export { LATE_MS, SLACK };
export const API_KEY = 'sk-relay-test-SECRET-0123456789';
export const DEAD_KEY = 'sk-dead-test-SECRET-9876543210';

export const msgs = (text = 'hello relay') => [{ role: 'user', content: text }];
export const chatBody = (mock = {}, extra = {}) => ({
  model: 'gpt-relay',
  messages: msgs(),
  stream: true,
  mock,
  ...extra,
});

const dirs = [];
process.on('exit', () => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
export function tmpDir(prefix = 'telex-relay-') {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(d);
  return d;
}

function merge(a, b) {
  if (b === undefined) return a;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object' || Array.isArray(a) || Array.isArray(b))
    return b;
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = merge(a[k], v);
  return out;
}

export function baseConfig(mockUrl, patch) {
  const cfg = {
    workers: 2,
    providers: [
      { name: 'mock', kind: 'openai', base_url: `${mockUrl}/v1`, api_key: API_KEY, timeout_seconds: 2 },
      { name: 'dead', kind: 'openai', base_url: 'http://127.0.0.1:1/v1', api_key: DEAD_KEY, timeout_seconds: 1 },
    ],
    models: [
      { name: 'gpt-relay', providers: [{ provider: 'mock', model: 'upstream-relay' }] },
      {
        name: 'gpt-fallback',
        providers: [
          { provider: 'dead', model: 'upstream-dead' },
          { provider: 'mock', model: 'upstream-fallback' },
        ],
      },
      {
        name: 'gpt-twice',
        providers: [
          { provider: 'mock', model: 'first-try' },
          { provider: 'mock', model: 'second-try' },
        ],
      },
    ],
    streaming: {
      keepalive_seconds: 0.3,
      commit_timeout_seconds: 0.5,
      idle_timeout_seconds: 1.5,
      shutdown_grace_seconds: 1,
    },
  };
  return merge(cfg, patch);
}

// Environment for telex processes: under ASan, h2o's per-thread chunk cache is not a leak.
export const SANITIZER_ENV = SANITIZED
  ? { LSAN_OPTIONS: `suppressions=${fileURLToPath(new URL('./lsan.supp', import.meta.url))}:print_suppressions=0` }
  : {};

// Sanitizer reports in a process's stderr (memory errors, UB, leaks at exit).
export function sanitizerReports(proc) {
  const text = proc.stderr();
  const m = /(ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer)[^\n]*/.exec(text);
  return m ? text.slice(Math.max(0, m.index - 200), m.index + 3000) : null;
}

// Stops a telex process with SIGTERM and throws unless it exited 0 with no sanitizer report.
export async function stopChecked(proc) {
  const exit = await stopProcess(proc);
  const report = sanitizerReports(proc);
  if (report) throw new Error(`telex: sanitizer report:\n${report}`);
  if (exit.code !== 0) throw new Error(`telex exited with ${JSON.stringify(exit)}:\n${proc.stderr().slice(-3000)}`);
  return exit;
}

export async function startGateway(config, opts = {}) {
  const dir = opts.dir ?? tmpDir();
  const file = path.join(dir, 'telex.yaml');
  fs.writeFileSync(file, JSON.stringify(config, null, 2) + '\n');
  const serve = await startServe(['--config', file, ...(opts.serveArgs ?? [])], {
    env: { TELEX_LOG: '', ...SANITIZER_ENV, ...(opts.env ?? {}) },
  });
  serve.configFile = file;
  return serve;
}

// TELEX_UPSTREAM_HTTP2=1: the providers that point at the mock (h2o, which speaks h2c) or at
// the dead port are configured with `http2: on` (HTTP/2 with prior knowledge), unless a test set
// http2 itself; stubs (node:http, HTTP/1.1 only) stay as they are. relay_http2_upstream.test.js
// runs the key relay suites this way.
export const UPSTREAM_HTTP2 = process.env.TELEX_UPSTREAM_HTTP2 === '1';
export function useHttp2(config, mockUrl) {
  for (const p of config.providers ?? [])
    if (p.http2 === undefined && typeof p.base_url === 'string' &&
        (p.base_url.startsWith(mockUrl) || p.base_url.startsWith('http://127.0.0.1:1/')))
      p.http2 = 'on';
  return config;
}

export async function startRelay(opts = {}) {
  const mock = opts.mock ?? (await startMock(opts.mockArgs ?? [], { env: SANITIZER_ENV }));
  const dir = tmpDir();
  const config = typeof opts.config === 'function' ? opts.config(mock.url) : baseConfig(mock.url, opts.config);
  if (UPSTREAM_HTTP2) useHttp2(config, mock.url);
  let serve;
  try {
    serve = await startGateway(config, { dir, serveArgs: opts.serveArgs, env: opts.env });
  } catch (e) {
    if (!opts.mock) await stopProcess(mock);
    throw e;
  }
  return {
    mock,
    serve,
    dir,
    config,
    url: serve.url,
    // Stops both; resolves with the serve's exit and asserts it was clean: exit 0,
    // no sanitizer report.
    async stop() {
      try {
        return await stopChecked(serve);
      } finally {
        if (!opts.mock) await stopProcess(mock);
      }
    },
  };
}

export async function journal(mock, since = 0) {
  const r = await fetch(`${mock.url}/mock/requests?since=${since}`);
  if (r.status !== 200) throw new Error(`GET /mock/requests: ${r.status}`);
  return r.json();
}
export const lastSeq = async (mock) => (await journal(mock)).total;
export const entriesSince = async (mock, since) => (await journal(mock, since)).requests;

export function waitEntry(mock, since, pred = () => true, opts = {}) {
  return waitFor(
    async () => (await entriesSince(mock, since)).find(pred),
    { timeoutMs: 10000 * SLACK, message: 'a matching /mock/requests entry', ...opts },
  );
}

export const requestLogs = (serve) => serve.logs.filter((l) => l.msg === 'request');

const BARRIER_PATH = `/log-barrier-${process.pid}-`;
let barriers = 0;
export async function logBarrier(serve) {
  const p = `${BARRIER_PATH}${++barriers}`;
  const r = await fetch(`${serve.url}${p}`);
  await r.arrayBuffer();
  return serve.waitForLog((l) => l.msg === 'request' && l.path === p);
}

export function curl(args, opts = {}) {
  return new Promise((resolve) => {
    const p = spawn('curl', ['-sS', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8');
    p.stderr.setEncoding('utf8');
    p.stdout.on('data', (d) => {
      out += d;
      if (opts.onData) opts.onData(d, p);
    });
    p.stderr.on('data', (d) => (err += d));
    p.on('error', (e) => resolve({ code: -1, out, err: String(e) }));
    p.on('exit', (code) => resolve({ code, out, err }));
  });
}

// A hand-written upstream for what the mock cannot do per route (the mock's faults
// follow the request body, which every route of a model shares). handler(req, res, body).
export function startStub(handler) {
  const requests = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      handler(req, res, body);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      const forget = atFileEnd(() => {
        for (const s of sockets) s.destroy();
        server.close();
      });
      resolve({
        url: `http://127.0.0.1:${port}`,
        port,
        requests,
        close: () =>
          new Promise((r) => {
            forget();
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}
