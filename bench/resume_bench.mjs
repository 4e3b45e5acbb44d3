// bench/resume_bench.mjs — what resumable streams cost: the gateway's memory per active
// stream with resume on and off, and the time to replay a 1,000-event answer.
//
//   TELEX_BIN=build/telex node bench/resume_bench.mjs [--streams 200,1000] [--tokens 1000]
//                                                     [--replays 30] [--quick]
//
// Memory: for each of resume on / off and each stream count N, a fresh `telex serve`
// (2 workers) in front of a fresh `telex mock`. N clients (loopback, one connection each)
// POST at once; the mock streams the role chunk and `tokens` content chunks as fast as it
// can, then stalls (stall_after), so every answer stays open with all its events generated
// and read by its client. Then VmRSS of the telex process (/proc/PID/status) is read and
// compared with its VmRSS before (after a warm-up of 20 streams). Reported: RSS growth / N,
// and the slope between the two N (which cancels fixed costs such as allocator arenas).
//
// Replay: one gateway with resume on; a 1,000-event answer is generated and finished, then
// GET /v1/streams/{id} is sent `replays` times (keep-alive connection, sequentially) and
// timed from sending the request to the last byte of [DONE]; also from event 500
// (Last-Event-ID) and, for comparison, the same answer generated live at full speed.
//
// Prints one JSON line per measurement on stdout; progress on stderr.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const QUICK = args.includes('--quick');
const STREAMS = opt('streams', QUICK ? '20,50' : '200,1000').split(',').map(Number);
const TOKENS = Number(opt('tokens', QUICK ? 100 : 1000));
const REPLAYS = Number(opt('replays', QUICK ? 5 : 30));
const BIN = process.env.TELEX_BIN ?? 'build/telex';
const log = (...a) => console.error('resume_bench:', ...a);
const out = (o) => console.log(JSON.stringify(o));

const procs = new Set();
process.on('exit', () => {
  for (const p of procs) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

function start(argv, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    procs.add(child);
    let buf = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const j = JSON.parse(line);
          if (j.msg === 'listening') resolve({ child, pid: child.pid, url: `http://${j.address}` });
        } catch {
          /* not JSON */
        }
      }
    });
    child.on('exit', (code) => reject(new Error(`${argv[0]} exited with ${code}`)));
  });
}

function stop(p) {
  return new Promise((resolve) => {
    if (p.child.exitCode !== null) return resolve();
    p.child.removeAllListeners('exit');
    p.child.on('exit', () => {
      procs.delete(p.child);
      resolve();
    });
    process.kill(p.pid, 'SIGTERM');
    setTimeout(() => {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, 5000).unref();
  });
}

const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function gateway(mockUrl, resume) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'telex-resume-bench-'));
  const cfg = {
    workers: 2,
    providers: [{ name: 'mock', kind: 'openai', base_url: `${mockUrl}/v1`, api_key: 'bench' }],
    models: [{ name: 'bench', providers: [{ provider: 'mock', model: 'bench' }] }],
    streaming: { keepalive_seconds: 600, idle_timeout_seconds: 600, commit_timeout_seconds: 30 },
    limits: { max_concurrent_streams: 100000, max_connections: 100000 },
    resume: { enabled: resume, grace_seconds: 0, retention_seconds: 600 },
    store: { path: path.join(dir, 'telex.db') },
  };
  fs.writeFileSync(path.join(dir, 'telex.yaml'), JSON.stringify(cfg));
  const g = await start(['serve', '--listen', '127.0.0.1:0', '--config', path.join(dir, 'telex.yaml')], {
    TELEX_DB: path.join(dir, 'telex.db'),
  });
  g.dir = dir;
  return g;
}

// Opens one streamed answer and resolves once `events` events (counted by their blank line)
// have arrived. Returns {req, bytes, events} ; the connection stays open.
// (With body null: GET /v1/streams/{sid} instead, a second subscriber.)
function openStream(url, body, events, sid = null) {
  return new Promise((resolve, reject) => {
    const req = body
      ? http.request(`${url}/v1/chat/completions`, {
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json' },
        })
      : http.request(`${url}/v1/streams/${sid}`, { agent: false, headers: { accept: 'text/event-stream' } });
    const st = { req, bytes: 0, events: 0, sid: null };
    let prevNl = false;
    req.on('error', reject);
    req.on('response', (res) => {
      if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
      st.sid = res.headers['x-telex-stream-id'];
      res.on('data', (d) => {
        st.bytes += d.length;
        for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) {
          if ((i > 0 && d[i - 1] === 10) || (i === 0 && prevNl)) st.events++;
        }
        prevNl = d[d.length - 1] === 10;
        if (st.events === events) resolve(st);
      });
      res.on('error', () => {});
    });
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

async function holdStreams(url, n, tokens, second = false) {
  const body = {
    model: 'bench',
    messages: [{ role: 'user', content: 'memory' }],
    stream: true,
    mock: { tokens, delay_ms: 0, stall_after: tokens, stall_ms: 600000 },
  };
  const all = [];
  for (let i = 0; i < n; i += 100) {
    // open in waves of 100 so the mock and the loopback are not flooded by connects
    all.push(...(await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => openStream(url, body, tokens + 1)))));
  }
  if (second) {
    // a second subscriber on every answer (a second tab), attached from the first event
    for (let i = 0; i < n; i += 100)
      all.push(...(await Promise.all(all.slice(i, Math.min(i + 100, n)).map((s) => openStream(url, null, tokens + 1, s.sid)))));
  }
  return all;
}

async function memory() {
  for (const [resume, second] of [
    [true, false],
    [false, false],
    [true, true],
  ]) {
    const rows = [];
    for (const n of second ? [STREAMS[0]] : STREAMS) {
      const mock = await start(['mock', '--listen', '127.0.0.1:0', '--workers', '2', '--journal', '0']);
      const gw = await gateway(mock.url, resume);
      // warm-up: allocator arenas, h2o pools, curl handles on both workers
      const warm = await holdStreams(gw.url, 20, tokens());
      for (const s of warm) s.req.destroy();
      await sleep(1500);
      const before = rssKiB(gw.pid);
      const t0 = performance.now();
      const streams = await holdStreams(gw.url, n, TOKENS, second);
      const opened = performance.now() - t0;
      await sleep(500);
      const after = rssKiB(gw.pid);
      const bytes = streams.slice(0, n).reduce((a, s) => a + s.bytes, 0) / n;
      const row = {
        bench: 'resume_memory',
        resume,
        subscribers: second ? 2 : 1,
        streams: n,
        tokens: TOKENS,
        rss_before_kib: before,
        rss_after_kib: after,
        kib_per_stream: (after - before) / n,
        wire_bytes_per_stream: Math.round(bytes),
        open_ms: Math.round(opened),
      };
      out(row);
      rows.push(row);
      log(`resume ${resume ? 'on ' : 'off'} ${n} streams${second ? ' x 2 subscribers' : ''}: +${((after - before) / 1024).toFixed(1)} MiB, ${row.kib_per_stream.toFixed(1)} KiB/stream`);
      for (const s of streams) s.req.destroy();
      await stop(gw);
      await stop(mock);
      fs.rmSync(gw.dir, { recursive: true, force: true });
    }
    if (rows.length >= 2) {
      const [a, b] = [rows[0], rows.at(-1)];
      out({
        bench: 'resume_memory_slope',
        resume,
        from: a.streams,
        to: b.streams,
        kib_per_stream: (b.rss_after_kib - b.rss_before_kib - (a.rss_after_kib - a.rss_before_kib)) / (b.streams - a.streams),
      });
    }
  }
}
const tokens = () => Math.min(TOKENS, 100);

function timedGet(agent, url, headers) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let first = null;
    let bytes = 0;
    const req = http.get(url, { agent, headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
      res.on('data', (d) => {
        if (first === null) first = performance.now() - t0;
        bytes += d.length;
      });
      res.on('end', () => resolve({ ms: performance.now() - t0, first, bytes }));
    });
    req.on('error', reject);
  });
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function replay() {
  const mock = await start(['mock', '--listen', '127.0.0.1:0', '--workers', '1', '--journal', '0']);
  const gw = await gateway(mock.url, true);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  // the answer, generated live at full speed (for comparison), then finished and kept
  const live = [];
  let sid = null;
  for (let i = 0; i < Math.min(REPLAYS, 10); i++) {
    const t0 = performance.now();
    const r = await new Promise((resolve, reject) => {
      const req = http.request(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      });
      req.on('response', (res) => {
        let bytes = 0;
        res.on('data', (d) => (bytes += d.length));
        res.on('end', () => resolve({ sid: res.headers['x-telex-stream-id'], bytes }));
      });
      req.on('error', reject);
      req.end(
        JSON.stringify({
          model: 'bench',
          messages: [{ role: 'user', content: 'replay' }],
          stream: true,
          mock: { tokens: TOKENS - 3, delay_ms: 0 },
        }),
      );
    });
    live.push(performance.now() - t0);
    sid = r.sid;
  }
  const events = TOKENS; // role + (TOKENS - 3) content + finish + [DONE]
  for (const [what, headers] of [
    ['all', {}],
    ['from_half', { 'last-event-id': `${sid}.${events / 2}` }],
  ]) {
    const times = [];
    let bytes = 0;
    let first = [];
    for (let i = 0; i < 3; i++) await timedGet(agent, `${gw.url}/v1/streams/${sid}`, headers); // warm
    for (let i = 0; i < REPLAYS; i++) {
      const r = await timedGet(agent, `${gw.url}/v1/streams/${sid}`, headers);
      times.push(r.ms);
      first.push(r.first);
      bytes = r.bytes;
    }
    out({
      bench: 'resume_replay',
      from: what,
      events: what === 'all' ? events : events / 2,
      bytes,
      runs: REPLAYS,
      median_ms: pct(times, 50),
      p90_ms: pct(times, 90),
      first_byte_median_ms: pct(first, 50),
    });
    log(`replay ${what}: median ${pct(times, 50).toFixed(2)} ms (${bytes} bytes)`);
  }
  // new connection per replay (what a reconnecting client pays)
  const fresh = [];
  for (let i = 0; i < REPLAYS; i++) fresh.push((await timedGet(false, `${gw.url}/v1/streams/${sid}`, {})).ms);
  out({ bench: 'resume_replay', from: 'all_new_connection', events, runs: REPLAYS, median_ms: pct(fresh, 50), p90_ms: pct(fresh, 90) });
  out({ bench: 'resume_live', events, runs: live.length, median_ms: pct(live, 50) });
  agent.destroy();
  await stop(gw);
  await stop(mock);
  fs.rmSync(gw.dir, { recursive: true, force: true });
}

const t0 = performance.now();
await memory();
await replay();
log(`done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
process.exit(0);
