// bench/soak_report.mjs — turns a `make soak` run (tests/soak/soak.mjs with SOAK_OUT=CSV,
// and its printed log) into the markdown section bench/soak.md, which bench/run.sh copies
// into docs/benchmarks.md (an hour-long run is not repeated by every `make bench`).
//
//   node bench/soak_report.mjs SAMPLES.csv SOAK.log > bench/soak.md
//
// The curve is the samples every ~5 minutes (and the last), plus the run's summary line.
import fs from 'node:fs';

const [csvFile, logFile] = process.argv.slice(2);
if (!csvFile || !logFile) {
  console.error('usage: soak_report.mjs SAMPLES.csv SOAK.log');
  process.exit(64);
}
const rows = fs
  .readFileSync(csvFile, 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((l) => l.split(',').map(Number))
  .map(([t, rss, fds, active, logBytes, streams]) => ({ t, rss, fds, active, logBytes, streams }));
const logText = fs.readFileSync(logFile, 'utf8');
const summaryLine = /soak: summary (\{.*\})/.exec(logText);
const summary = summaryLine ? JSON.parse(summaryLine[1]) : null;
const verdict = /soak: passed/.test(logText) ? 'passed' : /soak: FAIL/.test(logText) ? 'failed' : 'unfinished';
const fails = [...logText.matchAll(/soak: FAIL (.*)/g)].map((m) => m[1]);
const started = /^(\S+) soak: (\d+) streams for (\d+) s/m.exec(logText);

const MiB = 1024 * 1024;
const curve = [];
let next = 0;
for (const r of rows) {
  if (r.t >= next) {
    curve.push(r);
    next = r.t - (r.t % 300) + 300;
  }
}
if (rows.length && curve.at(-1) !== rows.at(-1)) curve.push(rows.at(-1));

const out = [];
out.push('## Soak');
out.push('');
out.push(
  `\`make soak\` (tests/soak/soak.mjs): ${started ? started[2] : '?'} client loops for ${started ? started[3] : '?'} s` +
    `${started ? ` (started ${started[1].slice(0, 16).replace('T', ' ')} UTC)` : ''}, each opening one streamed answer after another`,
);
out.push('with drops, drops and resumes, cancels (DELETE), stalled readers and upstream faults (cut, error');
out.push('event, stall, malformed line, invalid JSON, 500, 429, no `[DONE]`), `resume.max_total_bytes` 64 MiB');
out.push('(so the budget is reached and enforced), retention 20 s, grace 3 s. The gateway ran at `nice 10`');
out.push('on 2 cores shared with five other sessions\' builds, tests and fuzzers (load average 10–20).');
out.push('');
out.push('| t | RSS | descriptors | active streams | stream logs | streams so far |');
out.push('|---:|---:|---:|---:|---:|---:|');
for (const r of curve)
  out.push(
    `| ${Math.round(r.t)} s | ${(r.rss / MiB).toFixed(1)} MiB | ${r.fds} | ${r.active} | ${(r.logBytes / MiB).toFixed(1)} MiB | ${r.streams} |`,
  );
out.push('');
if (summary) {
  const c = summary.counts;
  out.push(
    `Verdict: **${verdict}**. RSS: largest sample of the first third ${(summary.rss_first_third_max / MiB).toFixed(1)} MiB, ` +
      `of the last third ${(summary.rss_last_third_max / MiB).toFixed(1)} MiB (allowed: 20 % + 32 MiB more); descriptors ` +
      `${summary.fds_first_third_max} → ${summary.fds_last_third_max} (10 % + 32); stream logs at most ` +
      `${(summary.log_bytes_max / MiB).toFixed(1)} MiB. After the load (last row): descriptors ${rows.at(-1).fds} ` +
      `(baseline ${summary.fds_baseline}), active streams ${rows.at(-1).active}, stream logs ${rows.at(-1).logBytes} bytes, ` +
      `RSS ${(summary.rss_after / MiB).toFixed(1)} MiB.`,
  );
  out.push(
    `Streams: ${c.streams} (ended with [DONE] ${c.done}, with an error event ${c.error}, other ends ${c.eof}, ` +
      `dropped by the client ${c.dropped}, resumed ${c.resumed}); client-side failures before any answer: ${c.broken}.`,
  );
  for (const f of fails) out.push(`Failed check: ${f}`);
} else {
  out.push(`Verdict: **${verdict}** (no summary line: the run did not finish).`);
}
out.push('');
process.stdout.write(out.join('\n'));
