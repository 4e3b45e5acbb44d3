// tests/integration/cluster_nginx.test.js — cluster mode end to end behind a load balancer
// (issue 19): nginx round robin in front of two telex nodes sharing a redis-server, as
// docs/deployment.md sets it up. A client that only knows the balancer's address starts an
// answer, drops it, and resumes it several times; round robin sends consecutive requests to
// alternating nodes, so resumes land on the node that does not produce the answer as often
// as on the one that does. The pieces must concatenate to exactly the whole answer, and the
// whole answer replayed through the balancer must be the same bytes on every replay.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { freePort, SLACK, waitFor } from './lib/proc.js';
import { msgs, tmpDir } from './lib/relay.js';
import { assertExact, openAnswer, resumeGet } from './lib/resume.js';
import { metricsText, startCluster } from './lib/cluster.js';

const NGINX = process.env.NGINX_BIN ?? '/usr/sbin/nginx';

let c;
let lb;
let nginx;
before(async () => {
  c = await startCluster({ nodes: 2 });
  const port = await freePort();
  const dir = tmpDir('telex-nginx-');
  fs.mkdirSync(path.join(dir, 'tmp'));
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    `worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path ${dir}/tmp/body;
    proxy_temp_path ${dir}/tmp/proxy;
    fastcgi_temp_path ${dir}/tmp/fcgi;
    uwsgi_temp_path ${dir}/tmp/uwsgi;
    scgi_temp_path ${dir}/tmp/scgi;
    upstream telex { ${c.nodes.map((n) => `server ${n.address};`).join(' ')} }
    server {
        listen 127.0.0.1:${port};
        location / {
            proxy_pass http://telex;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_cache off;
            proxy_read_timeout 300s;
        }
    }
}
`,
  );
  nginx = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', 'stderr', '-g', 'daemon off;'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  nginx.stderr.on('data', (d) => (err += d));
  process.on('exit', () => nginx.exitCode === null && nginx.kill('SIGKILL'));
  lb = { url: `http://127.0.0.1:${port}` };
  await waitFor(async () => (await fetch(`${lb.url}/healthz`)).status === 200, {
    message: `nginx on ${port} (${err})`,
  });
});
after(async () => {
  if (nginx && nginx.exitCode === null) {
    nginx.kill('SIGTERM');
    await new Promise((r) => nginx.on('exit', r));
  }
  if (c) await c.stop();
});

test('through nginx round robin: drop and resume until the end, exact; replays identical', async () => {
  const first = await openAnswer(lb, { tokens: 60, delay_ms: 15 * SLACK }, { messages: msgs('through nginx'), stopAfter: 5 });
  assert.equal(first.status, 200);
  const pieces = [first.events.slice(0, 5)];
  let last = `${first.sid}.5`;
  let rounds = 0;
  for (; rounds < 40; rounds++) {
    const r = await resumeGet(lb, first.sid, { lastEventId: last, stopAfter: 7 });
    assert.equal(r.status, 200, r.text);
    pieces.push(r.events);
    if (r.events.length > 0) last = r.events.at(-1).id;
    if (r.complete || r.events.at(-1)?.data === '[DONE]') break; // (a stop right at [DONE] is not `complete`)
  }
  assert.ok(rounds >= 4, 'several resumes (both nodes served some)');
  const full = await resumeGet(lb, first.sid);
  const again = await resumeGet(lb, first.sid); // the other node, by round robin
  assert.equal(full.events.at(-1).data, '[DONE]');
  assertExact(pieces, full.events, first.sid, 'through nginx');
  assert.ok(again.raw.equals(full.raw), 'both nodes replay the same bytes');
  // both nodes answered resumes: the node without the answer built a mirror
  const mirrors = await Promise.all(
    c.nodes.map(async (n) => /telex_cluster_mirrors_total (\d+)/.exec(await metricsText(n))[1]),
  );
  assert.ok(mirrors.some((m) => Number(m) > 0), `a node mirrored the answer (${mirrors})`);
});
