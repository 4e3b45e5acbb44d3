// tests/integration/lib/cluster.js — a real redis-server and two or three real telex nodes
// sharing it (cluster mode), with one `telex mock` as their upstream, for the
// tests/integration/cluster_*.test.js suites.
//
// Exports:
//   REDIS_BIN                         redis-server ($REDIS_SERVER or Debian's /usr/bin/redis-server)
//   SECRET                            the TELEX_RESUME_SECRET every node shares
//   startRedis(port?)                 -> {port, url, proc, stop(), kill()}: redis-server on 127.0.0.1 (a free
//                                        port unless given), no persistence; resolves once it accepts connections
//   startCluster(opts?)               -> {mock, redis, nodes: [serve Proc], config, stop()}
//       opts: { nodes (2), config (patch over baseConfig + resumeConfig), env (more env for every node),
//               dbPath (one SQLite file for every node; default one each), redis (reuse one) }
//   startNode(cluster, opts?)         -> one more node like the others (opts.env)
//   waitRedisUp(node)                 -> resolves when the node's /metrics says telex_cluster_redis_up 1
//   startRedisProxy(redis)            -> {url, hold(), release(), close()}: a TCP relay to redis on 127.0.0.1;
//                                        hold() keeps what its clients send (in order) until release(), even
//                                        from a client that closed meanwhile (as bytes in flight on a slow
//                                        network: Redis gets them, then the close)
//   redisCommand(redis, line)         -> the reply to one inline command (number, string or null)
//   redisCalls(redis, command)        -> how many times redis ran command (INFO commandstats)
import { spawn } from 'node:child_process';
import net from 'node:net';

import { freePort, stopProcess, waitFor, SLACK } from './proc.js';
import { baseConfig, startGateway, stopChecked, tmpDir } from './relay.js';
import { startMock } from './proc.js';
import { resumeConfig } from './resume.js';

export const REDIS_BIN = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';
export const SECRET = 'cluster-test-secret-0123456789abcdef';
// /metrics needs a token while keys exist (issue 18): every node gets this one.
export const METRICS_TOKEN = 'cluster-metrics-token-0123456789';

/** The text of a node's GET /metrics. */
export async function metricsText(node) {
  return (await fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
}

const live = new Set();
process.on('exit', () => {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

export async function startRedis(port) {
  port = port ?? (await freePort());
  const dir = tmpDir('telex-redis-');
  const child = spawn(
    REDIS_BIN,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  live.add(child.pid);
  let out = '';
  const exited = new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      live.delete(child.pid);
      resolve({ code, signal });
    }),
  );
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${out}`)), 10000 * SLACK);
    child.stdout.on('data', (d) => {
      out += d;
      if (/Ready to accept connections/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', () => reject(new Error(`redis-server exited:\n${out}`)));
  });
  child.stdout.resume();
  child.stderr.resume();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

function nodeEnv(cluster, extra = {}) {
  const env = { TELEX_REDIS_URL: cluster.redis.url, TELEX_RESUME_SECRET: SECRET, ...(cluster.env ?? {}), ...extra };
  if (cluster.dbPath) env.TELEX_DB = cluster.dbPath;
  return env;
}

export async function startNode(cluster, opts = {}) {
  const node = await startGateway(cluster.config, { env: nodeEnv(cluster, opts.env) });
  cluster.nodes.push(node);
  return node;
}

export async function waitRedisUp(node) {
  await waitFor(
    async () => {
      return /telex_cluster_redis_up 1/.test(await metricsText(node));
    },
    { message: 'the node connected to redis' },
  );
}

export async function startCluster(opts = {}) {
  const mock = await startMock([]);
  const redis = opts.redis ?? (await startRedis());
  const config = baseConfig(mock.url, resumeConfig({ metrics: { token: METRICS_TOKEN }, ...(opts.config ?? {}) }));
  const cluster = { mock, redis, config, nodes: [], env: opts.env, dbPath: opts.dbPath };
  try {
    for (let i = 0; i < (opts.nodes ?? 2); i++) await startNode(cluster);
    for (const n of cluster.nodes) await waitRedisUp(n);
  } catch (e) {
    for (const n of cluster.nodes) await stopProcess(n);
    await stopProcess(mock);
    if (!opts.redis) await redis.stop();
    throw e;
  }
  cluster.stop = async () => {
    const errors = [];
    for (const n of cluster.nodes) {
      if (n.child.exitCode !== null || n.child.signalCode !== null) continue; // killed by the test
      try {
        await stopChecked(n);
      } catch (e) {
        errors.push(e);
      }
    }
    await stopProcess(mock);
    if (!opts.redis) await cluster.redis.stop(); // (a test may have restarted it: the current one)
    if (errors.length) throw errors[0];
  };
  return cluster;
}

/** A TCP relay in front of redis whose client-to-redis direction can be held (a node's Redis
 * "slow" for that node alone): while held, what the node writes is kept in order and sent on
 * release(). */
export async function startRedisProxy(redis) {
  let held = false;
  const waiting = []; // [upstream socket, chunk] while held
  const closing = new Set(); // upstream sockets whose client left while what it sent was held
  const sockets = new Set();
  const server = net.createServer((down) => {
    const up = net.connect({ host: '127.0.0.1', port: redis.port });
    sockets.add(down).add(up);
    down.on('data', (d) => (held ? waiting.push([up, d]) : up.write(d)));
    up.on('data', (d) => !down.destroyed && down.write(d));
    const close = () => {
      down.destroy();
      sockets.delete(down);
      if (!up.destroyed && waiting.some(([u]) => u === up)) {
        closing.add(up); // Redis still gets what the client sent, then the close (release())
        return;
      }
      up.destroy();
      sockets.delete(up);
    };
    down.on('error', close).on('close', close);
    up.on('error', close).on('close', close);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;
  return {
    url: `redis://127.0.0.1:${port}`,
    hold() {
      held = true;
    },
    release() {
      held = false;
      for (const [up, d] of waiting.splice(0)) if (!up.destroyed) up.write(d);
      for (const up of closing) up.end();
      closing.clear();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** One inline command to redis (no spaces inside arguments); resolves with its reply: a
 * number (integer reply), a string (bulk or status reply), or null. */
export async function redisCommand(redis, line) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: redis.port });
    let out = '';
    const done = (v) => {
      s.destroy();
      resolve(v);
    };
    s.on('data', (d) => {
      out += d;
      let m;
      if ((m = /^:(-?\d+)\r\n/.exec(out))) done(Number(m[1]));
      else if ((m = /^\+(.*)\r\n/.exec(out))) done(m[1]);
      else if (/^\$-1\r\n/.test(out)) done(null);
      else if ((m = /^-(.*)\r\n/.exec(out))) reject(new Error(m[1]));
      else if ((m = /^\$(\d+)\r\n/.exec(out))) {
        const body = Buffer.from(out).subarray(m[0].length);
        if (body.length >= Number(m[1]) + 2) done(body.subarray(0, Number(m[1])).toString());
      }
    });
    s.on('error', reject);
    s.write(`${line}\r\n`);
  });
}

/** How many times redis ran `command` (lower case), from INFO commandstats. */
export async function redisCalls(redis, command) {
  const text = await redisCommand(redis, 'INFO commandstats');
  const m = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(text);
  return m ? Number(m[1]) : 0;
}
