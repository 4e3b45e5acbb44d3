// tests/integration/lib/sse.js — read Server-Sent Events the way a real client does,
// with the time each event arrived.
//
// collectSSE() sends a request with fetch (Node's undici), reads the body as it
// arrives, decodes UTF-8 like a browser (TextDecoder, U+FFFD for bad bytes), and
// parses it with the `eventsource-parser` npm package (WHATWG event stream rules).
// A body that breaks off (connection cut) is recorded in `error`, not thrown, so
// tests can assert on what arrived before the cut.
//
// Exports:
//   collectSSE(url, opts?)     -> Promise<Result>  POST/GET a URL and collect its events
//   postChat(baseUrl, body, opts?) -> Promise<Result>  POST body as JSON to baseUrl + '/v1/chat/completions'
//   readSSE(response, opts?)   -> Promise<Result>  collect from a fetch Response already in hand
//   parseSSEText(text)         -> Array<{type, data, id}>  parse a whole event stream (e.g. curl output)
//   chunksOf(events)           -> Array<object>    JSON.parse of every event's data except "[DONE]" (throws on bad JSON)
//   contentOf(events)          -> string           concatenated choices[0].delta.content of the chunks
//   gapsOf(events)             -> Array<number>    ms between consecutive events' arrival times
//
// Result: {
//   status, headers (a Headers), events: [{type, data, id, t}], comments: [string],
//   parseErrors: [{type, field, value, line}], raw (Buffer of every body byte),
//   error (the Error that ended the body early, or null), aborted (true when stopAfter ended it),
//   t0 (performance.now() at send), headersAt / endAt (ms after t0)
// }
// Event `t` is ms after t0 (performance.now clock) when the bytes completing it arrived;
// type is 'message' when the stream set none; id is '' when none.
import { createParser } from 'eventsource-parser';

function newResult(t0) {
  return {
    status: 0,
    headers: new Headers(),
    events: [],
    comments: [],
    parseErrors: [],
    raw: Buffer.alloc(0),
    error: null,
    aborted: false,
    t0,
    headersAt: null,
    endAt: null,
  };
}

// Reads response.body to the end (or until stopAfter(event, events) returns true, or with
// stopOnComment at the first comment, which aborts via opts.controller).
// opts: { t0, controller, stopAfter, stopOnComment, onEvent(event), onComment(text), timeoutMs }
export async function readSSE(response, opts = {}) {
  const t0 = opts.t0 ?? performance.now();
  const result = newResult(t0);
  result.status = response.status;
  result.headers = response.headers;
  result.headersAt = performance.now() - t0;
  const rawParts = [];
  let stop = false;
  let lastId = '';
  const parser = createParser({
    onEvent(ev) {
      if (ev.id !== undefined) lastId = ev.id;
      const event = { type: ev.event ?? 'message', data: ev.data, id: lastId, t: performance.now() - t0 };
      result.events.push(event);
      if (opts.onEvent) opts.onEvent(event);
      if (!stop && opts.stopAfter && opts.stopAfter(event, result.events)) stop = true;
    },
    onComment(text) {
      result.comments.push(text);
      if (opts.onComment) opts.onComment(text);
      if (opts.stopOnComment) stop = true;
    },
    onError(err) {
      result.parseErrors.push({ type: err.type, field: err.field, value: err.value, line: err.line });
    },
  });
  const decoder = new TextDecoder('utf-8');
  let timer;
  if (opts.timeoutMs && opts.controller) {
    timer = setTimeout(() => {
      result.error = new Error(`timed out after ${opts.timeoutMs} ms`);
      opts.controller.abort();
    }, opts.timeoutMs);
  }
  if (response.body) {
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          parser.feed(decoder.decode());
          break;
        }
        rawParts.push(Buffer.from(value));
        parser.feed(decoder.decode(value, { stream: true }));
        if (stop) {
          result.aborted = true;
          if (opts.controller) opts.controller.abort();
          else await reader.cancel();
          break;
        }
      }
    } catch (err) {
      if (!result.aborted && !result.error) result.error = err;
    }
  }
  clearTimeout(timer);
  result.raw = Buffer.concat(rawParts);
  result.endAt = performance.now() - t0;
  return result;
}

// Sends a request and collects the event stream.
// opts: { method (default POST when body is given, else GET), body (object -> JSON, or string),
//         headers, stopAfter(event, events) -> bool, onEvent(event), onComment(text),
//         signal (an AbortSignal: the client leaves when it aborts; the Result has aborted true),
//         timeoutMs (default 60000) }
// When fetch itself fails (e.g. the connection closed before any response), the Result has
// status 0 and `error` set.
export async function collectSSE(url, opts = {}) {
  const controller = new AbortController();
  const headers = { accept: 'text/event-stream', ...(opts.headers ?? {}) };
  let body = opts.body;
  if (body !== undefined && typeof body !== 'string') {
    body = JSON.stringify(body);
    headers['content-type'] ??= 'application/json';
  }
  const t0 = performance.now();
  const timeoutMs = opts.timeoutMs ?? 60000;
  let response;
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let leftOnPurpose = false;
  if (opts.signal) {
    const leave = () => {
      leftOnPurpose = true;
      controller.abort();
    };
    if (opts.signal.aborted) leave();
    else opts.signal.addEventListener('abort', leave, { once: true });
  }
  try {
    response = await fetch(url, {
      method: opts.method ?? (body !== undefined ? 'POST' : 'GET'),
      headers,
      body,
      signal: controller.signal,
    });
  } catch (err) {
    clearTimeout(timer);
    const r = newResult(t0);
    r.error = err;
    r.aborted = leftOnPurpose;
    r.endAt = performance.now() - t0;
    return r;
  }
  clearTimeout(timer);
  const r = await readSSE(response, { ...opts, t0, controller, timeoutMs });
  if (leftOnPurpose && !r.aborted) {
    r.aborted = true;
    r.error = null;
  }
  return r;
}

export const postChat = (baseUrl, body, opts = {}) =>
  collectSSE(`${baseUrl}/v1/chat/completions`, { ...opts, body });

// Parses a complete event stream held in a string.
export function parseSSEText(text) {
  const events = [];
  let lastId = '';
  const parser = createParser({
    onEvent(ev) {
      if (ev.id !== undefined) lastId = ev.id;
      events.push({ type: ev.event ?? 'message', data: ev.data, id: lastId });
    },
  });
  parser.feed(text);
  return events;
}

export const chunksOf = (events) => events.filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data));

export const contentOf = (events) =>
  chunksOf(events)
    .map((c) => c.choices?.[0]?.delta?.content ?? '')
    .join('');

export const gapsOf = (events) => events.slice(1).map((e, i) => e.t - events[i].t);
