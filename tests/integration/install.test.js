// tests/integration/install.test.js — `make install PREFIX=DIR` gives a libtelex that a program
// builds against with pkg-config: the telex.pc it writes names DIR (not the /usr/local of
// configure time), and docs/sse.md's example program, compiled and run with the commands
// written there, prints what docs/sse.md says. The commands are taken from the doc itself
// (only `make` is pointed at this tree with -C, and HOME is a temp directory).
//
// Skipped for the sanitized binary: its libtelex needs the sanitizer runtime to link.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { SANITIZED, TELEX_BIN } from './lib/proc.js';
import { tmpDir } from './lib/relay.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUILD = path.resolve(path.dirname(TELEX_BIN));

// The fenced blocks of docs/sse.md's section on building against libtelex: [c, sh, output].
function docBlocks() {
  const doc = fs.readFileSync(path.join(ROOT, 'docs/sse.md'), 'utf8');
  const start = doc.indexOf('## Building a program against libtelex');
  assert.ok(start >= 0, 'docs/sse.md has the section');
  const section = doc.slice(start, doc.indexOf('\n## ', start + 3));
  return [...section.matchAll(/```(\w*)\n([^]*?)```/g)].map((m) => ({ lang: m[1], text: m[2] }));
}

function sh(script, cwd, env) {
  // A make run inside `make test` must not look for the outer make's jobserver.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(MAKEFLAGS|MFLAGS|MAKELEVEL)$/.test(k)));
  // (bounded: a hung child would block this process, where --test-timeout cannot fire;
  // generous: `make install` may have to build libtelex first)
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', script], { cwd, env: { ...base, ...env }, encoding: 'utf8', timeout: 900000 });
  if (r.error) throw r.error;
  return r;
}

test('make install PREFIX=DIR: telex.pc names DIR; docs/sse.md\'s example builds with pkg-config and runs', { skip: SANITIZED && 'sanitized build' }, () => {
  const [c, commands, output] = docBlocks();
  assert.equal(c.lang, 'c');
  assert.equal(commands.lang, 'sh');
  const home = tmpDir('telex-install-');
  const work = path.join(home, 'work');
  fs.mkdirSync(work);
  fs.writeFileSync(path.join(work, 'sse_demo.c'), c.text);
  const script = commands.text.replace(/^make (.*)$/m, `make -s -C '${ROOT}' $1 >&2`);
  assert.notEqual(script, commands.text, 'the doc installs with make');
  const r = sh(script, work, { HOME: home, BUILD, PKG_CONFIG_PATH: '' });
  assert.equal(r.status, 0, `${script}\n${r.stderr}`);
  assert.equal(r.stdout, output.text);

  const prefix = path.join(home, '.local');
  const pc = fs.readFileSync(path.join(prefix, 'lib/pkgconfig/telex.pc'), 'utf8');
  assert.match(pc, new RegExp(`^prefix=${prefix}$`, 'm'));
  assert.ok(!pc.includes('/usr/local'), pc);
  for (const f of ['include/telex/sse.h', 'lib/libtelex.a', 'lib/libtelex.so', 'bin/telex']) {
    assert.ok(fs.existsSync(path.join(prefix, f)), f);
  }
  // DESTDIR stages the files elsewhere; the .pc still names the real prefix.
  const stage = path.join(home, 'stage');
  const d = sh(`cmake --install '${BUILD}' --prefix /opt/telex-test >/dev/null`, work, { DESTDIR: stage });
  assert.equal(d.status, 0, d.stderr);
  const staged = fs.readFileSync(path.join(stage, 'opt/telex-test/lib/pkgconfig/telex.pc'), 'utf8');
  assert.match(staged, /^prefix=\/opt\/telex-test$/m);
});
