// tests/timing_reporter.mjs — a node:test reporter that prints nothing until the run
// ends, then one short table: the time each test file took (slowest first, top 12),
// the run's total, and every failed test with its file. It runs beside the TAP
// reporter (see the Makefile), so the end of a long log says where the time went and
// what failed without scrolling back through thousands of TAP lines.
import path from 'node:path';

export default async function* timingReporter(source) {
  const perFile = new Map(); // file -> ms (sum of its top-level tests and suites)
  const failed = [];
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { data } = event;
    const file = data.file ? path.relative(process.cwd(), data.file) : '?';
    if (data.nesting === 0) perFile.set(file, (perFile.get(file) ?? 0) + (data.details?.duration_ms ?? 0));
    if (event.type === 'test:fail' && data.details?.error?.failureType !== 'subtestsFailed') {
      failed.push(`${file}: ${data.name}`);
    }
  }
  const rows = [...perFile].sort((a, b) => b[1] - a[1]);
  const total = rows.reduce((s, [, ms]) => s + ms, 0);
  let out = `\n# time per test file (slowest 12 of ${rows.length}; all files ${(total / 1000).toFixed(0)} s)\n`;
  for (const [file, ms] of rows.slice(0, 12)) out += `#   ${(ms / 1000).toFixed(1).padStart(7)} s  ${file}\n`;
  out += failed.length ? `# failed (${failed.length}):\n${failed.map((f) => `#   ${f}\n`).join('')}` : '# failed: none\n';
  yield out;
}
