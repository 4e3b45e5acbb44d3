/*
 * telex.js — the telex client. One ES module, no dependencies; runs in browsers, Web Workers,
 * Node 20+ and other fetch-based runtimes (it never touches `document` or `window`).
 *
 *   createParser({ onEvent, onRetry, onComment })   a byte-oriented WHATWG event-stream parser
 *   fetchEventSource(url, options)                  SSE over fetch: any method, headers, body;
 *                                                   reconnects with Last-Event-ID; option names
 *                                                   of @microsoft/fetch-event-source
 *   streamChat({ baseUrl, apiKey, body, signal })   text deltas of a chat completion, resumed
 *                                                   transparently when the connection drops
 *   cancelStream({ baseUrl, apiKey, streamId })     DELETE /v1/streams/{id}
 *   TelexError, TelexHTTPError, TelexStreamError, TelexConnectionError
 *
 * The parser follows the "event stream interpretation" of the WHATWG HTML standard exactly:
 * streaming UTF-8 decoding (invalid bytes become U+FFFD), one leading BOM stripped, lines ended
 * by CRLF, LF or a lone CR (also when the CR and LF arrive in different chunks), `data` lines
 * joined with LF, an event with an empty data buffer not dispatched, the last event id kept
 * from event to event (ids containing NUL ignored), `retry` taken only when it is all ASCII
 * digits, and an event the stream never ends with a blank line never dispatched.
 *
 * Docs and examples: docs/client.md. Types: telex.d.ts.
 */

/* ------------------------------------------------------------------ errors */

/** Base class of every error telex.js throws on purpose. */
export class TelexError extends Error {
  constructor(message, { status, type, code, param, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'TelexError';
    this.status = status ?? null;
    this.type = type ?? null;
    this.code = code ?? null;
    this.param = param ?? null;
  }
}

/** The server answered with an HTTP error (or with something that is not an event stream). */
export class TelexHTTPError extends TelexError {
  constructor(message, { status, type, code, param, retryAfter, body } = {}) {
    super(message, { status, type, code, param });
    this.name = 'TelexHTTPError';
    /** Seconds from the Retry-After header, or null. */
    this.retryAfter = retryAfter ?? null;
    /** The parsed JSON error body, or the body text, or null. */
    this.body = body ?? null;
  }
}

/** The stream itself reported an error (`data: {"error": {...}}`) after it had started. */
export class TelexStreamError extends TelexError {
  constructor(error = {}) {
    const message = typeof error.message === 'string' && error.message ? error.message : 'The stream reported an error.';
    super(message, { type: error.type, code: error.code, param: error.param });
    this.name = 'TelexStreamError';
    this.error = error;
  }
}

/** The connection failed, broke off, or ended before the answer was complete. */
export class TelexConnectionError extends TelexError {
  constructor(message, options = {}) {
    super(message, options);
    this.name = 'TelexConnectionError';
  }
}

/* ------------------------------------------------------------------ parser */

const CR = 13;
const LF = 10;
const BOM = 0xfeff;
const DIGITS = /^[0-9]+$/;

/**
 * Creates an incremental event-stream parser.
 *
 * callbacks.onEvent({ type, data, lastEventId })  one dispatched event
 * callbacks.onRetry(ms)                           a valid `retry:` field
 * callbacks.onComment(text)                       a comment line (text after the ':', as is)
 * callbacks.lastEventId                           initial last event id (default '')
 *
 * feed(chunk): chunk is a Uint8Array / ArrayBuffer (decoded as streaming UTF-8), or a string
 * (already decoded; do not mix the two in one stream). reset(): the next feed starts a new
 * stream (new connection): the partial line, pending event and decoder state are dropped, a BOM
 * is stripped again; the last event id is kept, as EventSource keeps it across reconnections.
 * `lastEventId` is the id of the last dispatched point of the stream (set at every blank line).
 *
 * If a callback throws, feed() throws the same error; the lines after the one being handled
 * stay buffered and are handled by the next feed().
 */
export function createParser(callbacks = {}) {
  const { onEvent, onRetry, onComment } = callbacks;
  let decoder = new TextDecoder('utf-8');
  let started = false; // some text of this stream has been seen (for the BOM of string input)
  let parts = []; // decoded text not yet handled: the pieces of a partial line (or more, after a callback threw)
  let skipLF = false; // the previous chunk ended with CR: an LF starting the next one is part of it
  let unhandled = false; // a callback threw during the last feed; parts may hold complete lines
  let data = '';
  let eventType = '';
  let lastEventId = typeof callbacks.lastEventId === 'string' ? callbacks.lastEventId : '';
  let idBuffer = lastEventId;

  function dispatch() {
    lastEventId = idBuffer;
    if (data === '') {
      eventType = '';
      return;
    }
    const event = { type: eventType || 'message', data: data.slice(0, -1), lastEventId };
    data = '';
    eventType = '';
    if (onEvent) onEvent(event);
  }

  function line(text) {
    if (text.length === 0) return dispatch();
    const colon = text.indexOf(':');
    if (colon === 0) {
      if (onComment) onComment(text.slice(1));
      return;
    }
    let field = text;
    let value = '';
    if (colon > 0) {
      field = text.slice(0, colon);
      value = text.charCodeAt(colon + 1) === 32 ? text.slice(colon + 2) : text.slice(colon + 1);
    }
    switch (field) {
      case 'data':
        data += value + '\n';
        break;
      case 'event':
        eventType = value;
        break;
      case 'id':
        if (!value.includes('\0')) idBuffer = value;
        break;
      case 'retry':
        if (DIGITS.test(value)) {
          const ms = Number(value);
          if (Number.isSafeInteger(ms) && onRetry) onRetry(ms);
        }
        break;
      default: // every other field is ignored
    }
  }

  function feed(chunk) {
    let text;
    if (typeof chunk === 'string') {
      text = chunk;
      if (!started && text.length > 0) {
        started = true;
        if (text.charCodeAt(0) === BOM) text = text.slice(1);
      }
    } else {
      const bytes = chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk);
      text = decoder.decode(bytes, { stream: true });
    }
    if (text.length === 0 && !unhandled) return;
    started = true;
    if (skipLF && text.length > 0) {
      skipLF = false;
      if (text.charCodeAt(0) === LF) text = text.slice(1);
    }
    // The unfinished line so far is kept as its pieces and joined once, when its end arrives:
    // appending every piece to one string and searching that string again made a long line fed
    // in small pieces cost the square of its length. Only the new text is searched.
    let head = false; // parts hold the start of the first line in text
    if (parts.length > 0) {
      if (unhandled) {
        text = parts.join('') + text; // after a callback threw: whole lines may be waiting
        parts = [];
      } else {
        head = true;
      }
    }
    unhandled = false;
    let pos = 0;
    let complete = true;
    let cr = text.indexOf('\r');
    let lf = text.indexOf('\n');
    try {
      for (;;) {
        if (cr !== -1 && cr < pos) cr = text.indexOf('\r', pos);
        if (lf !== -1 && lf < pos) lf = text.indexOf('\n', pos);
        let end;
        if (cr === -1) end = lf;
        else if (lf === -1) end = cr;
        else end = cr < lf ? cr : lf;
        if (end === -1) break;
        let lineText = text.slice(pos, end);
        if (head) {
          parts.push(lineText);
          lineText = parts.join('');
          parts = [];
          head = false;
        }
        pos = end + 1;
        if (text.charCodeAt(end) === CR) {
          if (pos === text.length) skipLF = true;
          else if (text.charCodeAt(pos) === LF) pos++;
        }
        complete = false;
        line(lineText);
        complete = true;
      }
    } finally {
      if (!complete) unhandled = true; // a callback threw: the rest may still hold whole lines
      if (pos < text.length) parts.push(pos === 0 ? text : text.slice(pos));
    }
  }

  function reset() {
    decoder = new TextDecoder('utf-8');
    started = false;
    parts = [];
    skipLF = false;
    unhandled = false;
    data = '';
    eventType = '';
    idBuffer = lastEventId;
  }

  return {
    feed,
    reset,
    get lastEventId() {
      return lastEventId;
    },
  };
}

/* -------------------------------------------------------- fetchEventSource */

const DEFAULT_RETRY_MS = 1000;
const DEFAULT_MAX_RETRY_MS = 30000;
const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const EVENT_STREAM = /^text\/event-stream(\s*;|\s*$)/i;

function abortReason(signal) {
  if (signal && signal.reason !== undefined) return signal.reason;
  return makeAbortError();
}

function makeAbortError() {
  if (typeof DOMException === 'function') return new DOMException('The operation was aborted.', 'AbortError');
  const err = new Error('The operation was aborted.');
  err.name = 'AbortError';
  return err;
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal && signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      if (signal) signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (signal) signal.addEventListener('abort', done, { once: true });
  });
}

function parseRetryAfter(value) {
  if (!value) return null;
  if (/^\s*\d+\s*$/.test(value)) return Number(value);
  const when = Date.parse(value);
  return Number.isNaN(when) ? null : Math.max(0, Math.ceil((when - Date.now()) / 1000));
}

/**
 * Builds a TelexHTTPError from a response that is not the expected event stream: the OpenAI
 * error body's message, type, code and param when it has one.
 */
export async function responseError(response) {
  const status = response.status;
  const contentType = response.headers.get('content-type') || '';
  let text = '';
  try {
    text = await response.text();
  } catch {
    /* the body broke off; the status is still worth reporting */
  }
  let body = text || null;
  let info = {};
  try {
    body = JSON.parse(text);
    const e = body && typeof body === 'object' ? body.error : null;
    if (e && typeof e === 'object') info = e;
    else if (typeof e === 'string') info = { message: e };
  } catch {
    /* not JSON */
  }
  let message = typeof info.message === 'string' && info.message ? info.message : '';
  if (!message) {
    if (status >= 200 && status < 300) message = `Expected an event stream (text/event-stream), got ${contentType || 'no content type'} with status ${status}.`;
    else message = `HTTP ${status}${response.statusText ? ' ' + response.statusText : ''}`;
  }
  return new TelexHTTPError(message, {
    status,
    type: info.type,
    code: info.code,
    param: info.param,
    retryAfter: parseRetryAfter(response.headers.get('retry-after')),
    body,
  });
}

/** The default onopen: accept only 200 with Content-Type text/event-stream. */
async function defaultOnOpen(response) {
  if (response.status === 200 && EVENT_STREAM.test(response.headers.get('content-type') || '')) return;
  throw await responseError(response);
}

/** What happens on an error when no onerror is given: retry what may succeed later. */
function defaultOnError(err) {
  if (err instanceof TelexConnectionError) return undefined;
  if (err instanceof TelexHTTPError && RETRYABLE_STATUS.has(err.status)) {
    return err.retryAfter != null ? err.retryAfter * 1000 : undefined;
  }
  throw err;
}

function backoff(base, failures, max) {
  if (failures <= 1) return base;
  const grown = Math.min(base * 2 ** (failures - 1), Math.max(max, base));
  return Math.round(grown * (0.8 + Math.random() * 0.4));
}

function toHeaders(init) {
  const headers = new Headers(init || undefined);
  if (!headers.has('accept')) headers.set('accept', 'text/event-stream');
  return headers;
}

/*
 * The engine behind fetchEventSource and streamChat. request(lastEventId, attempt) returns
 * { input, init } for each connection attempt, so a caller can switch URL on reconnection.
 */
async function runEventSource(request, options) {
  const {
    signal,
    onopen = defaultOnOpen,
    onmessage,
    onerror,
    onclose,
    onretry,
    fetch: fetchFn = (...args) => globalThis.fetch(...args),
    retryInterval = DEFAULT_RETRY_MS,
    maxRetryInterval = DEFAULT_MAX_RETRY_MS,
    maxRetries = Infinity,
  } = options;
  let retry = retryInterval;
  let failures = 0;
  const parser = createParser({
    lastEventId: options.lastEventId,
    onEvent(ev) {
      failures = 0;
      if (onmessage) {
        // Both spellings: the WHATWG MessageEvent's and @microsoft/fetch-event-source's.
        onmessage({
          type: ev.type,
          data: ev.data,
          lastEventId: ev.lastEventId,
          event: ev.type,
          id: ev.lastEventId,
          retry: undefined,
        });
      }
    },
    onRetry(ms) {
      retry = ms;
      if (onretry) onretry(ms);
    },
  });

  for (let attempt = 0; ; attempt++) {
    if (signal && signal.aborted) return;
    const controller = new AbortController();
    const forwardAbort = () => controller.abort(abortReason(signal));
    if (signal) signal.addEventListener('abort', forwardAbort, { once: true });
    let reader = null;
    try {
      const { input, init = {} } = request(parser.lastEventId, attempt);
      const headers = toHeaders(init.headers);
      if (parser.lastEventId !== '') headers.set('last-event-id', parser.lastEventId);
      else headers.delete('last-event-id');
      let response;
      try {
        response = await fetchFn(input, { ...init, headers, signal: controller.signal });
      } catch (err) {
        if (signal && signal.aborted) return;
        throw new TelexConnectionError(`Could not connect: ${err && err.message ? err.message : err}`, { cause: err });
      }
      if (response.status === 204) return; // the server says: nothing more, do not reconnect
      await onopen(response);
      parser.reset();
      if (response.body) {
        reader = response.body.getReader();
        for (;;) {
          let chunk;
          try {
            chunk = await reader.read();
          } catch (err) {
            if (signal && signal.aborted) return;
            throw new TelexConnectionError(`The connection broke off: ${err && err.message ? err.message : err}`, { cause: err });
          }
          if (chunk.done) break;
          parser.feed(chunk.value);
        }
        reader = null;
      }
      if (onclose) await onclose();
      return;
    } catch (err) {
      if (signal && signal.aborted) return;
      failures++;
      let delay = await (onerror ? onerror(err) : defaultOnError(err));
      if (failures > maxRetries) throw err;
      if (typeof delay !== 'number' || !(delay >= 0)) delay = backoff(retry, failures, maxRetryInterval);
      await sleep(delay, signal);
    } finally {
      if (signal) signal.removeEventListener('abort', forwardAbort);
      if (reader) reader.cancel().catch(() => {});
      controller.abort();
    }
  }
}

/**
 * Server-sent events over fetch, with the options of @microsoft/fetch-event-source:
 *
 *   method, headers, body, credentials, ... (any RequestInit), signal, fetch
 *   onopen(response)   may throw to reject the response; default: status 200 and
 *                      Content-Type text/event-stream, else a TelexHTTPError
 *   onmessage(msg)     msg = { type, data, lastEventId, event, id }
 *   onclose()          the server ended the stream; throw to treat it as an error (and retry)
 *   onerror(err)       return a delay in ms to retry, nothing to retry after the usual delay,
 *                      throw to stop (the promise rejects with what it throws). Default: retry
 *                      connection errors and HTTP 408/429/5xx (Retry-After honoured), throw others
 *   openWhenHidden     accepted and ignored: telex never closes a stream for a hidden page
 *
 * telex additions: lastEventId (initial), retryInterval (ms before the first retry, default
 * 1000, replaced by the server's `retry:`), maxRetryInterval (backoff cap, default 30000),
 * maxRetries (consecutive failed attempts, default Infinity), onretry(ms).
 *
 * Reconnections send `Last-Event-ID`. A 204 response ends it all without error. Resolves when
 * the stream ends (after onclose) or when `signal` aborts (also when it is aborted already:
 * then nothing is fetched); rejects with what onopen/onmessage/onerror throw.
 */
export function fetchEventSource(input, options = {}) {
  const {
    signal,
    onopen,
    onmessage,
    onclose,
    onerror,
    onretry,
    openWhenHidden, // eslint-disable-line no-unused-vars
    fetch,
    lastEventId,
    retryInterval,
    maxRetryInterval,
    maxRetries,
    ...init
  } = options;
  return runEventSource(() => ({ input, init }), {
    signal,
    onopen,
    onmessage,
    onclose,
    onerror,
    onretry,
    fetch,
    lastEventId,
    retryInterval,
    maxRetryInterval,
    maxRetries,
  });
}

/* -------------------------------------------------------------- streamChat */

function joinUrl(base, path) {
  return String(base || '').replace(/\/+$/, '') + path;
}

function resolveUrl(base, url) {
  if (/^[a-z][a-z0-9+.-]*:/i.test(url)) return url;
  if (base && /^[a-z][a-z0-9+.-]*:/i.test(base)) return new URL(url, base.replace(/\/*$/, '/')).href;
  return url.startsWith('/') ? joinUrl(base, url) : url;
}

function authHeaders(apiKey, extra) {
  const headers = new Headers(extra || undefined);
  if (apiKey) headers.set('authorization', `Bearer ${apiKey}`);
  return headers;
}

/**
 * DELETE {baseUrl}/v1/streams/{streamId}: cancels a resumable stream on the server for every
 * subscriber. Resolves true when the server accepted it; false on any other answer or error.
 */
export async function cancelStream({ baseUrl = '', apiKey, streamId, headers, fetch: fetchFn } = {}) {
  if (!streamId) return false;
  const doFetch = fetchFn || ((...args) => globalThis.fetch(...args));
  try {
    const res = await doFetch(joinUrl(baseUrl, `/v1/streams/${encodeURIComponent(streamId)}`), {
      method: 'DELETE',
      headers: authHeaders(apiKey, headers),
      keepalive: true,
    });
    if (res.body) res.body.cancel().catch(() => {});
    return res.ok;
  } catch {
    return false;
  }
}

const COMPLETE = Symbol('complete');

class ChatStream {
  #options;
  #controller = new AbortController();
  #queue = [];
  #waiting = null;
  #ended = false;
  #error = null;
  #finished = false;
  #resolveDone;
  #rejectDone;
  #unlink = null;

  constructor(options) {
    this.#options = options;
    /** The whole answer so far. */
    this.text = '';
    /** The usage object of the final chunk ({prompt_tokens, completion_tokens, total_tokens, cost_usd?}) or null. */
    this.usage = null;
    this.finishReason = null;
    this.model = null;
    this.id = null;
    /** From X-Telex-Stream-Id / X-Telex-Resume-Url (or the options), once known. */
    this.streamId = options.streamId || null;
    this.resumeUrl = options.resumeUrl || null;
    /** The SSE id of the last event received. */
    this.lastEventId = options.lastEventId || '';
    /** How many times the stream was resumed after a broken connection. */
    this.resumes = 0;
    this.done = new Promise((resolve, reject) => {
      this.#resolveDone = resolve;
      this.#rejectDone = reject;
    });
    this.done.catch(() => {}); // the iterator reports errors too; do not warn twice
    const outer = options.signal;
    if (outer) {
      if (outer.aborted) this.#controller.abort(abortReason(outer));
      else {
        const forward = () => this.#controller.abort(abortReason(outer));
        outer.addEventListener('abort', forward, { once: true });
        this.#unlink = () => outer.removeEventListener('abort', forward);
      }
    }
    this.#run().then(
      () => this.#end(null),
      (err) => this.#end(err),
    );
  }

  /** Aborts the request. With a known stream id, also asks the server to cancel the stream. */
  async cancel() {
    this.#controller.abort();
    const o = this.#options;
    return cancelStream({ baseUrl: o.baseUrl, apiKey: o.apiKey, streamId: this.streamId, headers: o.headers, fetch: o.fetch });
  }

  [Symbol.asyncIterator]() {
    return {
      next: () => this.#next(),
      return: async () => {
        if (!this.#ended) this.#controller.abort();
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  #next() {
    if (this.#queue.length > 0) return Promise.resolve({ done: false, value: this.#queue.shift() });
    if (this.#ended) return this.#error ? Promise.reject(this.#error) : Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
    });
  }

  #push(delta) {
    if (this.#waiting) {
      const w = this.#waiting;
      this.#waiting = null;
      w.resolve({ done: false, value: delta });
    } else {
      this.#queue.push(delta);
    }
  }

  #end(err) {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#unlink) this.#unlink();
    this.#error = err;
    if (err) this.#rejectDone(err);
    else {
      this.#resolveDone({
        text: this.text,
        usage: this.usage,
        finishReason: this.finishReason,
        model: this.model,
        id: this.id,
        streamId: this.streamId,
        resumes: this.resumes,
      });
    }
    if (this.#waiting && this.#queue.length === 0) {
      const w = this.#waiting;
      this.#waiting = null;
      if (err) w.reject(err);
      else w.resolve({ done: true, value: undefined });
    }
  }

  #request(lastEventId, attempt) {
    const o = this.#options;
    const headers = authHeaders(o.apiKey, o.headers);
    if (attempt > 0) this.resumes++;
    if (this.resumeUrl) return { input: resolveUrl(o.baseUrl, this.resumeUrl), init: { method: 'GET', headers } };
    if (this.streamId) {
      return { input: joinUrl(o.baseUrl, `/v1/streams/${encodeURIComponent(this.streamId)}`), init: { method: 'GET', headers } };
    }
    // A first request, or a retry of it with Last-Event-ID (telex resumes such a POST).
    // X-Telex-Event-Ids: telex's framing (an id on every event), which resuming needs.
    headers.set('content-type', 'application/json');
    headers.set('x-telex-event-ids', '1');
    let path = '/v1/chat/completions';
    let body = { ...(o.body || {}) };
    if (o.preset) path = `/v1/presets/${encodeURIComponent(o.preset)}`;
    body.stream = true;
    body.stream_options = { include_usage: true, ...(body.stream_options || {}) };
    return { input: joinUrl(o.baseUrl, path), init: { method: 'POST', headers, body: JSON.stringify(body) } };
  }

  #resumable() {
    return Boolean(this.streamId || this.resumeUrl || this.lastEventId);
  }

  #onmessage(msg) {
    if (msg.lastEventId) this.lastEventId = msg.lastEventId;
    if (msg.data === '[DONE]') {
      this.#finished = true;
      return;
    }
    let chunk;
    try {
      chunk = JSON.parse(msg.data);
    } catch {
      return; // not a chat chunk (a future event kind); nothing to show
    }
    if (!chunk || typeof chunk !== 'object') return;
    if (chunk.error) {
      this.#finished = true;
      throw new TelexStreamError(typeof chunk.error === 'object' ? chunk.error : { message: String(chunk.error) });
    }
    if (chunk.id && !this.id) this.id = chunk.id;
    if (chunk.model && !this.model) this.model = chunk.model;
    if (chunk.usage && typeof chunk.usage === 'object') this.usage = chunk.usage;
    const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : null;
    if (!choice) return;
    if (choice.finish_reason) this.finishReason = choice.finish_reason;
    const delta = choice.delta && choice.delta.content;
    if (typeof delta === 'string' && delta.length > 0) {
      this.text += delta;
      this.#push(delta);
    }
  }

  async #run() {
    const signal = this.#controller.signal;
    if (signal.aborted) throw abortReason(signal);
    try {
      await this.#stream(signal);
    } catch (err) {
      if (err !== COMPLETE) throw err;
    }
    if (signal.aborted) throw abortReason(signal);
    if (!this.#finished) {
      // runEventSource ended on a 204: the gateway has no (more) stream for us.
      const attached = this.resumes > 0 || this.#options.streamId || this.#options.resumeUrl;
      throw new TelexConnectionError(
        attached
          ? 'The answer could not be resumed: the gateway no longer has this stream.'
          : 'The gateway answered 204 No Content instead of a stream.',
        { status: 204 },
      );
    }
  }

  #stream(signal) {
    const o = this.#options;
    return runEventSource((lastEventId, attempt) => this.#request(lastEventId, attempt), {
      signal,
      fetch: o.fetch,
      lastEventId: this.lastEventId,
      retryInterval: o.retryInterval ?? DEFAULT_RETRY_MS,
      maxRetries: o.maxRetries ?? 5,
      maxRetryInterval: o.maxRetryInterval ?? 10000,
      onopen: async (response) => {
        await defaultOnOpen(response);
        const id = response.headers.get('x-telex-stream-id');
        const resumeUrl = response.headers.get('x-telex-resume-url');
        if (id) this.streamId = id;
        if (resumeUrl) this.resumeUrl = resumeUrl;
        if ((id || resumeUrl) && o.onStreamId) o.onStreamId(this.streamId, this.resumeUrl);
      },
      onmessage: (msg) => this.#onmessage(msg),
      onclose: () => {
        if (!this.#finished) throw new TelexConnectionError('The stream ended before the answer was complete.');
      },
      onerror: (err) => {
        if (!(err instanceof TelexConnectionError)) throw err;
        if (this.#finished) throw COMPLETE; // [DONE] arrived; a break after it loses nothing
        if (!this.#resumable()) {
          throw this.text
            ? new TelexConnectionError(`${err.message} The gateway does not support resuming this answer.`, { cause: err })
            : err;
        }
        return undefined; // after the server's retry: interval, with backoff; maxRetries caps it
      },
    });
  }
}

/**
 * Streams a chat completion. Returns a ChatStream: an async iterable of text deltas, with
 * `text`, `usage` (incl. `cost_usd` when the gateway reports it), `finishReason`, `streamId`,
 * `done` (a promise of the final result) and `cancel()`.
 *
 * options: baseUrl (default '' = same origin), apiKey, body (the OpenAI request; `stream` and
 * `stream_options.include_usage` are set for you), preset (POST /v1/presets/{name} instead),
 * streamId / resumeUrl (attach to a running stream with GET instead of starting one),
 * lastEventId, signal, headers, fetch, maxRetries (resumes in a row without progress, default 5),
 * retryInterval, onStreamId(streamId, resumeUrl).
 *
 * Throws (from the iterator and `done`): TelexHTTPError for HTTP errors, TelexStreamError for an
 * error event in the stream, TelexConnectionError when the connection fails and cannot be
 * resumed, and the signal's reason (an AbortError) when aborted.
 */
export function streamChat(options = {}) {
  return new ChatStream(options);
}

export default { createParser, fetchEventSource, streamChat, cancelStream };
