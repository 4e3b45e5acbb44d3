// tests/integration/build_setup.test.js — each make target sets up only what it needs.
// `make run` (and `make install`) bootstrap the compiler and the libraries telex links, and
// build without the unit tests; `make test` installs the test tools (cmocka, chromium, Node.js,
// `npm ci`) and builds the tests. Checked without touching the machine: scripts/bootstrap runs
// against stand-in dpkg-query / apt-get / npm that only record what they were asked; CMake
// configures against a pkg-config directory without cmocka and libcurl; make -n shows what
// the targets would run.
//
// Runs once (skipped for the sanitized binary: nothing here depends on it).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { SANITIZED } from './lib/proc.js';
import { tmpDir } from './lib/relay.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const skip = SANITIZED && 'runs with the plain build only';

function run(cmd, args, opts = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(MAKEFLAGS|MFLAGS|MAKELEVEL)$/.test(k)));
  // (bounded: a hung child would block this process, where --test-timeout cannot fire;
  // generous: CMake configures on a machine that may be busy)
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 600000, ...opts, env: { ...env, ...(opts.env ?? {}) } });
  if (r.error) throw r.error;
  return r;
}

// Runs a copy of scripts/bootstrap MODE on a machine where nothing is installed, as far as
// it can tell; returns {packages, npm} it would have installed / run.
function bootstrap(mode) {
  const dir = tmpDir('telex-bootstrap-');
  const bin = path.join(dir, 'bin');
  const repo = path.join(dir, 'repo');
  const log = path.join(dir, 'log');
  fs.mkdirSync(bin);
  fs.mkdirSync(path.join(repo, 'scripts'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'scripts/bootstrap'), path.join(repo, 'scripts/bootstrap'));
  fs.writeFileSync(path.join(repo, 'package-lock.json'), '{}');
  const stub = (name, body) => fs.writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  stub('dpkg-query', 'exit 1'); // nothing is installed
  stub('apt-get', `echo "apt-get $*" >> '${log}'`);
  stub('npm', `echo "npm $*" >> '${log}'`);
  stub('node', 'exit 0');
  stub('id', 'echo 0');
  const r = run('bash', [path.join(repo, 'scripts/bootstrap'), ...(mode ? [mode] : [])], {
    env: { PATH: `${bin}:${process.env.PATH}` },
  });
  assert.equal(r.status, 0, r.stderr);
  const lines = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : [];
  const install = lines.find((l) => l.startsWith('apt-get install'));
  return {
    packages: new Set(install ? install.split(' ').filter((w) => !w.startsWith('-')).slice(2) : []),
    npm: lines.some((l) => l.startsWith('npm ci')),
  };
}

const GATEWAY = ['gcc', 'make', 'cmake', 'pkg-config', 'libh2o-dev', 'libuv1-dev', 'libjansson-dev', 'libyaml-dev',
  'libsqlite3-dev', 'libpq-dev', 'libssl-dev', 'libnghttp2-dev', 'libhiredis-dev'];
const TESTS = ['libcmocka-dev', 'libcurl4-openssl-dev', 'curl', 'chromium', 'postgresql', 'redis-server', 'nginx'];
const OTHERS = ['clang', 'libclang-rt-14-dev', 'gnuplot-nox', 'nghttp2-client'];

describe('scripts/bootstrap', { skip }, () => {
  test('run: the compiler and the gateway\'s libraries, nothing for tests, no npm', () => {
    const { packages, npm } = bootstrap('run');
    assert.deepEqual([...packages].sort(), [...GATEWAY].sort());
    assert.equal(npm, false);
  });

  test('test: also cmocka, libcurl, curl, chromium and npm ci; no fuzz or bench tools', () => {
    const { packages, npm } = bootstrap('test');
    for (const p of [...GATEWAY, ...TESTS]) assert.ok(packages.has(p), p);
    for (const p of OTHERS) assert.ok(!packages.has(p), p);
    assert.equal(npm, true);
  });

  test('no mode: everything; an unknown mode is refused', () => {
    const { packages, npm } = bootstrap();
    for (const p of [...GATEWAY, ...TESTS, ...OTHERS]) assert.ok(packages.has(p), p);
    assert.equal(npm, true);
    const r = run('bash', [path.join(ROOT, 'scripts/bootstrap'), 'everything']);
    assert.equal(r.status, 64);
    assert.match(r.stderr, /unknown mode 'everything'/);
  });
});

describe('make targets', { skip }, () => {
  const dry = (target) => run('make', ['-n', '-C', ROOT, target, 'BUILD=/nonexistent-telex-build']);

  test('make run and make install bootstrap `run` and build only the gateway and libtelex, without tests', () => {
    for (const target of ['run', 'install']) {
      const r = dry(target);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^scripts\/bootstrap run$/m);
      assert.doesNotMatch(r.stdout, /bootstrap (test|all)|npm/);
      assert.match(r.stdout, /-DTELEX_TESTS=OFF/);
      assert.match(r.stdout, /cmake --build \S+ -j \d+ --target telex telex_static telex_shared/);
    }
  });

  test('make test bootstraps `test` and builds with the unit tests', () => {
    const r = dry('test');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^scripts\/bootstrap test$/m);
    assert.match(r.stdout, /-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTELEX_TESTS=ON/);
  });
});

describe('CMake without cmocka and libcurl', { skip }, () => {
  // A pkg-config directory with every .pc of this machine except cmocka's and libcurl's.
  function pcDirWithout(...names) {
    const dir = tmpDir('telex-pc-');
    const paths = run('pkg-config', ['--variable', 'pc_path', 'pkg-config']).stdout.trim().split(':');
    for (const p of paths) {
      if (!fs.existsSync(p)) continue;
      for (const f of fs.readdirSync(p)) {
        if (!f.endsWith('.pc') || names.includes(f) || fs.existsSync(path.join(dir, f))) continue;
        fs.symlinkSync(path.join(p, f), path.join(dir, f));
      }
    }
    return dir;
  }

  test('configures the gateway (TELEX_TESTS=OFF or AUTO); ON says what is missing', () => {
    const env = { PKG_CONFIG_LIBDIR: pcDirWithout('cmocka.pc', 'libcurl.pc'), PKG_CONFIG_PATH: '' };
    const configure = (mode) => run('cmake', ['-S', ROOT, '-B', tmpDir('telex-cmake-'), `-DTELEX_TESTS=${mode}`], { env });
    let r = configure('OFF');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    r = configure('AUTO');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /unit tests not built: cmocka or libcurl is missing/);
    r = configure('ON');
    assert.notEqual(r.status, 0);
    assert.match(r.stdout + r.stderr, /cmocka/);
  });
});
