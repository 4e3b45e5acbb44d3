// tests/integration/lib/postgres.js — a throwaway PostgreSQL 15 for tests: initdb in a
// temp directory owned by the unprivileged `postgres` user (the server refuses root),
// listening on 127.0.0.1 at a free port with trust authentication. stop() and start()
// stop it by PID and start it again on the same data and port (to test an outage);
// destroy() stops it and removes the directory. skipReason() says why it cannot run.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { SLACK, SYNC_TIMEOUT_MS, freePort, waitFor } from './proc.js';

const PGBIN = process.env.PGBIN ?? '/usr/lib/postgresql/15/bin';
const isRoot = process.getuid?.() === 0;

function pgUser() {
  const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8', timeout: SYNC_TIMEOUT_MS });
  if (r.status !== 0) return null;
  const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8', timeout: SYNC_TIMEOUT_MS });
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

export function skipReason() {
  if (!fs.existsSync(path.join(PGBIN, 'postgres'))) return `${PGBIN}/postgres not found (scripts/bootstrap test installs postgresql)`;
  if (isRoot && !pgUser()) return 'running as root needs the postgres user (Debian postgresql package)';
  return null;
}

// Spawn options that drop to the postgres user when we are root.
function asPg(user) {
  return isRoot ? { uid: user.uid, gid: user.gid } : {};
}

function pgReady(port) {
  return spawnSync('pg_isready', ['-q', '-h', '127.0.0.1', '-p', String(port)], { timeout: SYNC_TIMEOUT_MS }).status === 0;
}

export async function startPostgres() {
  const user = isRoot ? pgUser() : null;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'telex-pg-'));
  if (isRoot) fs.chownSync(dir, user.uid, user.gid);
  const data = path.join(dir, 'data');
  const init = spawnSync(path.join(PGBIN, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8'], {
    ...asPg(user),
    encoding: 'utf8',
    timeout: SYNC_TIMEOUT_MS,
  });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}${init.stdout}`);
  const port = await freePort();
  const pg = {
    dir,
    port,
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    child: null,
    exited: null,
    async start() {
      const log = fs.openSync(path.join(dir, 'postgres.log'), 'a');
      this.child = spawn(
        path.join(PGBIN, 'postgres'),
        ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=200'],
        { ...asPg(user), stdio: ['ignore', log, log] },
      );
      fs.closeSync(log);
      const child = this.child;
      this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
      await waitFor(() => pgReady(port) || child.exitCode !== null, { timeoutMs: 30000 * SLACK, intervalMs: 50, message: 'postgres to accept connections' });
      if (child.exitCode !== null) throw new Error(`postgres exited: ${fs.readFileSync(path.join(dir, 'postgres.log'), 'utf8').slice(-2000)}`);
    },
    // Fast shutdown (SIGINT) by PID, waiting for the exit.
    async stop() {
      const child = this.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      process.kill(child.pid, 'SIGINT');
      const timer = setTimeout(() => {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, 20000);
      await this.exited;
      clearTimeout(timer);
    },
    // psql with one statement; returns stdout (unaligned, tuples only).
    sql(statement, db = 'postgres') {
      const r = spawnSync('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', db, '-Atc', statement], { encoding: 'utf8', timeout: SYNC_TIMEOUT_MS });
      if (r.status !== 0) throw new Error(`psql: ${r.stderr}`);
      return r.stdout.trim();
    },
    async createDatabase(name) {
      this.sql(`CREATE DATABASE ${name}`);
      return `postgresql://postgres@127.0.0.1:${port}/${name}`;
    },
    async destroy() {
      await this.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await pg.start();
  return pg;
}
