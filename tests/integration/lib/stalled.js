// tests/integration/lib/stalled.js — clients that never read, for
// memory_stalled.test.js and bench/stalled_bench.mjs.
//
// Exports:
//   rssOf(pid)                       -> number             VmRSS of a process, bytes (/proc/PID/status)
//   postUnread(url, body)            -> Promise<Response>  POST body (a JSON string) to url + '/v1/chat/completions'
//                                                          on a connection of its own; resolves with the response
//                                                          paused, nothing of its body read
//   readBody(res)                    -> Promise<Buffer>    resumes a response and collects its body to the end
//   waitProvidersPaused(mock, since, { tokens, count, timeoutMs, message })
//                                    -> Promise<entries>   waits until the mock's journal since seq `since` has
//                                                          `count` answers of `tokens` chunks and the chunks they
//                                                          sent did not move between two looks 500 ms apart (every
//                                                          provider held by back-pressure); resolves with those
//                                                          entries
import fs from 'node:fs';
import http from 'node:http';

import { waitFor } from './proc.js';
import { entriesSince } from './relay.js';

export const rssOf = (pid) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]) * 1024;
};

export const postUnread = (url, body) =>
  new Promise((resolve, reject) => {
    const req = http.request(`${url}/v1/chat/completions`, {
      method: 'POST',
      agent: false, // a connection of its own, closed at the end: the reader detaches then
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    req.on('response', (res) => {
      res.pause();
      resolve(res);
    });
    req.on('error', reject);
    req.end(body);
  });

export const readBody = (res) =>
  new Promise((resolve, reject) => {
    const parts = [];
    res.on('data', (d) => parts.push(d));
    res.on('end', () => resolve(Buffer.concat(parts)));
    res.on('error', reject);
    res.resume();
  });

export async function waitProvidersPaused(mock, since, { tokens, count, timeoutMs, message }) {
  let prev = -1;
  return waitFor(
    async () => {
      const es = (await entriesSince(mock, since)).filter((e) => e.body?.mock?.tokens === tokens);
      if (es.length < count) return false;
      const sent = es.reduce((n, e) => n + e.content_events, 0);
      const still = sent === prev;
      prev = sent;
      return still && es;
    },
    { intervalMs: 500, timeoutMs, message },
  );
}
