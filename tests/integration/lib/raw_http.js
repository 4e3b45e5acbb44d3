// tests/integration/lib/raw_http.js — raw HTTP/1.1 over node:net, for requests no HTTP
// client would send (smuggling attempts, bodies that never finish, floods of slow
// connections).
//
// Exports:
//   connect(url, opts?) -> Promise<Raw>  a TCP connection to url's host:port
//                                        (opts.localAddress: the source address, e.g. '127.0.0.2')
//   Raw: { socket, write(text|Buffer) -> Promise<boolean> (false once the server has closed or reset),
//          response() -> Promise<Response|null>  the first complete response, or null when the
//                                                connection ended without one,
//          closed -> Promise<void>  settles when the server has closed (or reset) the connection,
//          data() -> Buffer  every byte received so far,
//          destroy() }
//   Response: { status, headers (lower-case names), body (string), json() }
//   parseResponses(buf) -> Response[]  every complete response in buf (Content-Length framed)
import net from 'node:net';

export function parseResponses(buf) {
  const out = [];
  let at = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const head = buf.subarray(at, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
    if (!m) break;
    const headers = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const len = headers['content-length'] !== undefined ? Number(headers['content-length']) : 0;
    if (buf.length < end + 4 + len) break;
    const body = buf.subarray(end + 4, end + 4 + len).toString('utf8');
    out.push({ status: Number(m[1]), headers, body, json: () => JSON.parse(body) });
    at = end + 4 + len;
  }
  return out;
}

export function connect(url, opts = {}) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: u.hostname, port: Number(u.port), localAddress: opts.localAddress });
    const chunks = [];
    let ended = false;
    let settleClosed;
    const closed = new Promise((r) => (settleClosed = r));
    const waiters = [];
    const check = () => {
      const buf = Buffer.concat(chunks);
      const rs = parseResponses(buf);
      for (const w of waiters.splice(0)) {
        if (rs.length > 0) w(rs[0]);
        else if (ended) w(null);
        else waiters.push(w);
      }
    };
    socket.on('data', (d) => {
      chunks.push(d);
      check();
    });
    const finish = () => {
      ended = true;
      check();
      settleClosed();
    };
    socket.on('end', finish);
    socket.on('close', finish);
    socket.on('error', () => {}); // a reset is an ending like any other here
    socket.once('connect', () =>
      resolve({
        socket,
        closed,
        data: () => Buffer.concat(chunks),
        write: (text) =>
          new Promise((r) => {
            if (ended || socket.destroyed) return r(false);
            socket.write(text, (err) => r(!err));
          }),
        response: () =>
          new Promise((r) => {
            waiters.push(r);
            check();
          }),
        destroy: () => socket.destroy(),
      }),
    );
    socket.once('error', reject);
  });
}
