// tests/soak/soak.mjs — `make soak`: a long run of 1,000 concurrent streams with drops,
// resumes, cancels, stalled readers and upstream faults, against a real `telex mock` and
// `telex serve` on loopback (started here, stopped by PID). Not part of `make test`.
//
// Every SOAK_SAMPLE_SECONDS it samples the gateway's RSS (/proc/PID/status), its open
// descriptors (/proc/PID/fd) and the gauges telex_active_streams and telex_stream_log_bytes
// (/metrics). It fails (exit 1) when
//   - RSS or the descriptor count grows without bound: the largest sample of the last third
//     of the run exceeds the largest of the first third by more than the tolerance
//     (RSS: 20 % + 32 MiB; descriptors: 10 % + 32);
//   - the logs' gauge ever exceeds resume.max_total_bytes + streams × 512 KiB (what each
//     stream may hold beyond the budget, docs/memory.md) ;
//   - after the load stops, telex_active_streams does not return to 0 and the descriptor
//     count to its baseline (+ 8) within resume.grace_seconds + 30 s, or the log gauge to 0
//     within resume.retention_seconds + 30 s;
//   - a stream ends without [DONE] or an error event where the scenario promised one, or
//     the gateway dies or writes a sanitizer report.
//
// Environment: TELEX_BIN (build/telex), SOAK_SECONDS (300), SOAK_STREAMS (1000),
// SOAK_SAMPLE_SECONDS (5), SOAK_OUT (a CSV of the samples: t,rss_bytes,fds,active,log_bytes,
// done_streams), SOAK_TOTAL_BYTES (resume.max_total_bytes, default 64 MiB: small enough
// that the budget is exercised).
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startRelay } from '../integration/lib/relay.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
process.env.TELEX_BIN ??= path.join(ROOT, 'build/telex');
const SECONDS = Number(process.env.SOAK_SECONDS ?? 300);
const STREAMS = Number(process.env.SOAK_STREAMS ?? 1000);
const SAMPLE = Number(process.env.SOAK_SAMPLE_SECONDS ?? 5);
const TOTAL = Number(process.env.SOAK_TOTAL_BYTES ?? 64 * 1024 * 1024);
const GRACE = 3;
const RETENTION = 20;
const OUT = process.env.SOAK_OUT ?? null;
const MiB = 1024 * 1024;

const log = (...a) => console.log(new Date().toISOString(), ...a);
let rnd = 0x2545f491;
const rand = () => {
  rnd ^= rnd << 13;
  rnd ^= rnd >>> 17;
  rnd ^= rnd << 5;
  return (rnd >>> 0) / 2 ** 32;
};
const pick = (a) => a[Math.floor(rand() * a.length)];
const between = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

const relay = await startRelay({
  config: {
    workers: 2,
    resume: { enabled: true, grace_seconds: GRACE, retention_seconds: RETENTION, max_total_bytes: TOTAL },
    streaming: { idle_timeout_seconds: 10, keepalive_seconds: 30 },
    // every client here is 127.0.0.1: the per-address limits (1,024 connections, 256 half-sent
    // requests by default, docs/security.md) would close the connections past them at accept
    // (the soak's 1,000 streams, their resumes and the /metrics sampler are ~1,100 connections)
    limits: {
      max_connections: 20000,
      max_concurrent_streams: 20000,
      max_connections_per_client: 20000,
      max_unfinished_requests_per_client: 20000,
    },
  },
  mockArgs: ['--workers', '2'],
  env: { TELEX_LOG: 'quiet' }, // no line per request: an hour of them is GBs
});
const pid = relay.serve.pid;
// Kept-alive connections: a run opens hundreds of thousands of requests, and a new
// connection each would leave the machine's ephemeral ports in TIME_WAIT.
// Idle ones are closed after 4 s, before h2o closes them (10 s), and a request that fails on
// a reused connection before any answer is sent again once on a new one (the usual race of
// keep-alive: the server closed the idle connection as the request went out).
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256, timeout: 4000 });

const rssOf = () => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
const fdsOf = () => fs.readdirSync(`/proc/${pid}/fd`).length;
// A fresh connection each time (a kept-alive one may be closed by the server just as it is
// reused); a failed look is retried, three failures end the run.
const metricsText = () =>
  new Promise((resolve, reject) => {
    const req = http.get(`${relay.url}/metrics`, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics: ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.setTimeout(30000, () => req.destroy(new Error('/metrics: no answer within 30 s')));
    req.on('error', reject);
  });
async function gauges() {
  let text;
  for (let attempt = 1; ; attempt++) {
    try {
      text = await metricsText();
      break;
    } catch (e) {
      if (attempt === 3) throw e;
      log(`soak: /metrics failed (${e.message}), again`);
    }
  }
  const g = (name) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return { active: g('telex_active_streams'), logBytes: g('telex_stream_log_bytes') };
}

// One HTTP exchange read as an event stream. how: { readEvents (stop after N events),
// stallMs (read nothing this long, then drop), cancelAfter (events, then DELETE) }.
// Resolves { status, sid, lastId, events, ended: 'done'|'error'|'eof'|'dropped'|'failed' }.
async function exchange(method, url, body, headers, how = {}) {
  const r = await exchangeOnce(method, url, body, headers, how);
  if (r.ended === 'failed' && r.status === 0 && r.reused) return exchangeOnce(method, url, body, headers, how, false);
  return r;
}

function exchangeOnce(method, url, body, headers, how = {}, reuse = true) {
  return new Promise((resolve) => {
    const out = { status: 0, sid: null, lastId: null, events: 0, ended: 'failed' };
    const req = http.request(url, {
      method,
      agent: reuse ? agent : false,
      headers: { accept: 'text/event-stream', ...headers },
    });
    const timer = setTimeout(() => {
      out.ended = 'timeout';
      req.destroy();
    }, 120000);
    const finish = (ended) => {
      if (out.ended !== 'failed' && out.ended !== 'timeout') return;
      if (out.ended === 'failed') out.ended = ended;
      clearTimeout(timer);
      resolve(out);
    };
    req.on('error', (e) => {
      out.error = e.code ?? e.message;
      out.reused = req.reusedSocket;
      finish('failed');
    });
    req.on('response', (res) => {
      out.status = res.statusCode;
      out.sid = res.headers['x-telex-stream-id'] ?? null;
      if (how.stallMs !== undefined) {
        res.pause();
        setTimeout(() => {
          req.destroy();
          finish('dropped');
        }, how.stallMs);
        return;
      }
      let tail = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        tail += d;
        let i;
        while ((i = tail.indexOf('\n\n')) >= 0) {
          const ev = tail.slice(0, i);
          tail = tail.slice(i + 2);
          const id = /^id: (.*)$/m.exec(ev);
          if (id) out.lastId = id[1];
          const data = /^data: (.*)$/m.exec(ev)?.[1];
          if (data === undefined) continue;
          out.events++;
          if (data === '[DONE]') out.last = 'done';
          else if (data.startsWith('{"error"')) out.last = 'error';
          if (how.readEvents !== undefined && out.events >= how.readEvents) {
            req.destroy();
            finish('dropped');
            return;
          }
          if (how.cancelAfter !== undefined && out.events === how.cancelAfter && out.sid) {
            fetch(`${relay.url}/v1/streams/${out.sid}`, { method: 'DELETE' }).catch(() => {});
          }
        }
      });
      res.on('end', () => finish(out.last ?? 'eof'));
      res.on('error', () => finish('failed'));
      res.on('close', () => finish(out.last ?? 'eof'));
    });
    req.end(body);
  });
}

const faults = [
  {},
  {},
  {},
  { cut_after: 5 },
  { error_after: 5 },
  { stall_after: 3, stall_ms: 500 },
  { malformed_after: 4 },
  { invalid_json_after: 4 },
  { status: 500 },
  { status: 429, retry_after: 1 },
  { no_done: true },
];
const counts = { streams: 0, done: 0, error: 0, eof: 0, dropped: 0, failed: 0, timeout: 0, resumed: 0, broken: 0 };
const problems = [];
const problem = (text) => {
  if (problems.length < 20) {
    problems.push(text);
    log('soak: broken stream:', text);
  }
};

async function oneStream() {
  const mock = { tokens: between(50, 300), delay_ms: between(20, 80), ...pick(faults) };
  const body = JSON.stringify({ model: 'gpt-relay', messages: [{ role: 'user', content: 'soak' }], stream: true, mock });
  const headers = { 'content-type': 'application/json', 'x-telex-event-ids': '1' };
  const scenario = pick(['read', 'read', 'drop_resume', 'drop_resume', 'cancel', 'stall', 'drop']);
  const how =
    scenario === 'drop_resume' || scenario === 'drop'
      ? { readEvents: between(1, 10) }
      : scenario === 'cancel'
        ? { cancelAfter: between(1, 10) }
        : scenario === 'stall'
          ? { stallMs: between(500, 5000) }
          : {};
  const r = await exchange('POST', `${relay.url}/v1/chat/completions`, body, headers, how);
  counts.streams++;
  counts[r.ended] = (counts[r.ended] ?? 0) + 1;
  if (r.ended === 'failed' || r.ended === 'timeout') {
    counts.broken++;
    problem(`${scenario} ${JSON.stringify(mock)}: ${r.ended} (status ${r.status}, ${r.error ?? ''})`);
  }
  if (scenario === 'drop_resume' && r.sid && r.status === 200) {
    const rr = await exchange('GET', `${relay.url}/v1/streams/${r.sid}`, undefined, r.lastId ? { 'last-event-id': r.lastId } : {});
    counts.resumed++;
    // a resume within the grace ends with [DONE] or an error event (abandoned, a fault)
    if (rr.status === 200 && rr.ended !== 'done' && rr.ended !== 'error') {
      counts.broken++;
      problem(`resume ${JSON.stringify(mock)}: ${rr.ended} (status ${rr.status}, ${rr.error ?? ''})`);
    }
  }
}

let stopping = false;
const loops = [];
for (let i = 0; i < STREAMS; i++) {
  loops.push(
    (async () => {
      await new Promise((r) => setTimeout(r, rand() * 5000)); // spread the start
      while (!stopping) await oneStream();
    })(),
  );
}

const samples = [];
if (OUT) fs.writeFileSync(OUT, 't,rss_bytes,fds,active,log_bytes,streams\n');
const t0 = Date.now();
async function sample() {
  const g = await gauges();
  const s = { t: (Date.now() - t0) / 1000, rss: rssOf(), fds: fdsOf(), ...g, streams: counts.streams };
  samples.push(s);
  if (OUT) fs.appendFileSync(OUT, `${s.t.toFixed(1)},${s.rss},${s.fds},${s.active},${s.logBytes},${s.streams}\n`);
  return s;
}
const baseFds = fdsOf();
log(`soak: ${STREAMS} streams for ${SECONDS} s against pid ${pid} (fds ${baseFds}, rss ${(rssOf() / MiB).toFixed(1)} MiB)`);
while ((Date.now() - t0) / 1000 < SECONDS) {
  await new Promise((r) => setTimeout(r, SAMPLE * 1000));
  const s = await sample();
  log(
    `t=${s.t.toFixed(0)}s rss=${(s.rss / MiB).toFixed(1)}MiB fds=${s.fds} active=${s.active} logs=${(s.logBytes / MiB).toFixed(1)}MiB streams=${counts.streams} broken=${counts.broken}`,
  );
}
stopping = true;
log('soak: load stopping');
await Promise.all(loops);

const fail = [];
const third = Math.max(1, Math.floor(samples.length / 3));
const maxOf = (xs, k) => Math.max(...xs.map((s) => s[k]));
const first = samples.slice(0, third);
const last = samples.slice(samples.length - third);
const rssFirst = maxOf(first, 'rss');
const rssLast = maxOf(last, 'rss');
if (rssLast > rssFirst * 1.2 + 32 * MiB) fail.push(`RSS grew: first third max ${rssFirst}, last third max ${rssLast}`);
const fdFirst = maxOf(first, 'fds');
const fdLast = maxOf(last, 'fds');
if (fdLast > fdFirst * 1.1 + 32) fail.push(`descriptors grew: first third max ${fdFirst}, last third max ${fdLast}`);
const logMax = maxOf(samples, 'logBytes');
if (logMax > TOTAL + STREAMS * 512 * 1024) fail.push(`stream logs held ${logMax} bytes (budget ${TOTAL})`);

// after the load: the gauges return to their baseline
const settle = async (what, cond, seconds) => {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    const s = await sample();
    if (cond(s)) return s;
    if (Date.now() > until) {
      fail.push(`${what} did not return to baseline: ${JSON.stringify(s)}`);
      return s;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
};
await settle('active streams and descriptors', (s) => s.active === 0 && s.fds <= baseFds + 8, GRACE + 30);
await settle('stream logs', (s) => s.logBytes === 0, RETENTION + 30);
const summary = {
  seconds: SECONDS,
  streams: STREAMS,
  counts,
  rss_first_third_max: rssFirst,
  rss_last_third_max: rssLast,
  fds_first_third_max: fdFirst,
  fds_last_third_max: fdLast,
  fds_baseline: baseFds,
  log_bytes_max: logMax,
  rss_after: samples.at(-1).rss,
};
log('soak: summary', JSON.stringify(summary));
if (counts.broken > counts.streams / 100) fail.push(`${counts.broken} of ${counts.streams} streams broke: ${problems.join('; ')}`);
try {
  await relay.stop();
} catch (e) {
  fail.push(`the gateway did not stop cleanly: ${e.message}`);
}
if (fail.length) {
  for (const f of fail) log('soak: FAIL', f);
  process.exit(1);
}
log('soak: passed');
process.exit(0);
