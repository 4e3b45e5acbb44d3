// bench/body_flood.mjs — memory under the "bodies before authentication" attack (issue 18,
// item 1), side by side in one run.
//
// usage: node bench/body_flood.mjs [--conns N] [--bytes B] BIN [BIN...]
//
// For each telex binary: starts `telex serve` with one API key in a fresh store (so requests
// need a key), opens N keyless connections that each declare a 2 MB body and send B bytes of
// it (default 300 × 1 MiB), then closes them. Prints one JSON line per binary with the
// gateway's RSS before, at the peak (sampled every 50 ms) and 2.5 s after the connections
// closed, and how many connections got a 4xx answer; then the peak ratios against the first
// binary. Loopback only; every process is stopped by PID.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const args = process.argv.slice(2);
let conns = 300;
let bytes = 1 << 20;
const bins = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--conns') conns = Number(args[++i]);
  else if (args[i] === '--bytes') bytes = Number(args[++i]);
  else bins.push(args[i]);
}
if (bins.length === 0) {
  console.error('usage: node bench/body_flood.mjs [--conns N] [--bytes B] BIN [BIN...]');
  process.exit(64);
}

const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startServe(bin, dir) {
  const env = { ...process.env, TELEX_DB: path.join(dir, 'telex.db'), TELEX_LOG: '' };
  const k = spawnSync(bin, ['keys', 'create', '--name', 'bench'], { env, encoding: 'utf8' });
  if (k.status !== 0) throw new Error(`keys create: ${k.stderr}`);
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--workers', '2'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let text = '';
  const url = await new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      text += d;
      const m = /"msg":"listening".*?"url":"(http:\/\/[^"]+?)\/?"/.exec(text);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`telex exited ${code}: ${text}`)));
  });
  return { child, url };
}

async function attack(url, pid) {
  const u = new URL(url);
  const before = rss(pid);
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, rss(pid))), 50);
  const chunk = Buffer.alloc(64 * 1024, 'x');
  const socks = [];
  let answered = 0;
  await Promise.all(
    Array.from(
      { length: conns },
      () =>
        new Promise((resolve) => {
          const s = net.connect(Number(u.port), u.hostname, () => {
            s.write(
              'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
                'Content-Length: 2000000\r\n\r\n',
            );
            let sent = 0;
            const more = () => {
              while (sent < bytes) {
                sent += chunk.length;
                if (!s.write(chunk)) return void s.once('drain', more);
              }
              resolve();
            };
            more();
          });
          s.on('data', (d) => /^HTTP\/1\.1 4/.test(d.toString('latin1')) && answered++);
          s.on('error', resolve);
          s.on('close', resolve);
          socks.push(s);
        }),
    ),
  );
  await sleep(1500); // what was sent has been read (or refused)
  peak = Math.max(peak, rss(pid));
  for (const s of socks) s.destroy();
  await sleep(2500); // two heap-trim sweeps
  const after = rss(pid);
  clearInterval(timer);
  return { before_kib: before, peak_kib: peak, after_close_kib: after, answered_4xx: answered };
}

const results = [];
for (const bin of bins) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'telex-body-flood-'));
  const { child, url } = await startServe(bin, dir);
  try {
    const r = { bin, conns, bytes, ...(await attack(url, child.pid)) };
    results.push(r);
    console.log(JSON.stringify(r));
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
const base = results[0].peak_kib - results[0].before_kib;
for (const r of results.slice(1))
  console.log(`${r.bin}: peak growth ${r.peak_kib - r.before_kib} KiB = ${((r.peak_kib - r.before_kib) / base).toFixed(4)}x of ${results[0].bin}'s ${base} KiB`);
