// Type declarations for telex.js — the telex client (browsers, Web Workers, Node 20+).
// Documentation and examples: docs/client.md.

/* ------------------------------------------------------------------ errors */

export interface TelexErrorOptions {
  status?: number;
  type?: string;
  code?: string;
  param?: string;
  cause?: unknown;
}

/** Base class of every error telex.js throws on purpose. */
export class TelexError extends Error {
  constructor(message: string, options?: TelexErrorOptions);
  /** HTTP status when there is one (or 204 for a stream that could not be resumed), else null. */
  status: number | null;
  /** OpenAI-style error `type`, e.g. "invalid_request_error", "upstream_error". */
  type: string | null;
  /** OpenAI-style error `code`, e.g. "model_not_found", "cut", "cancelled". */
  code: string | null;
  param: string | null;
}

/** The server answered with an HTTP error, or with something that is not an event stream. */
export class TelexHTTPError extends TelexError {
  constructor(message: string, options?: TelexErrorOptions & { retryAfter?: number | null; body?: unknown });
  status: number;
  /** Seconds from the Retry-After header, or null. */
  retryAfter: number | null;
  /** The parsed JSON error body, or the body text, or null. */
  body: unknown;
}

/** The body of an SSE error event: `data: {"error": {...}}`. */
export interface StreamErrorObject {
  message?: string;
  type?: string;
  code?: string;
  param?: string | null;
  [key: string]: unknown;
}

/** The stream reported an error (`data: {"error": {...}}`) after it had started. */
export class TelexStreamError extends TelexError {
  constructor(error?: StreamErrorObject);
  error: StreamErrorObject;
}

/** The connection failed, broke off, or ended before the answer was complete (and could not be resumed). */
export class TelexConnectionError extends TelexError {
  constructor(message: string, options?: TelexErrorOptions);
}

/** Builds a TelexHTTPError from a response that is not the expected event stream. */
export function responseError(response: Response): Promise<TelexHTTPError>;

/* ------------------------------------------------------------------ parser */

/** One dispatched server-sent event, as a browser's EventSource would report it. */
export interface ParsedEvent {
  /** The `event:` field, or "message". */
  type: string;
  /** The `data:` lines joined with "\n". */
  data: string;
  /** The last event id at the time of dispatch (persists from event to event). */
  lastEventId: string;
}

export interface ParserCallbacks {
  onEvent?: (event: ParsedEvent) => void;
  /** A `retry:` field made of ASCII digits only. */
  onRetry?: (ms: number) => void;
  /** A comment line: the text after the ':' as is (e.g. " keepalive"). */
  onComment?: (text: string) => void;
  /** The initial last event id (default ""). */
  lastEventId?: string;
}

export interface EventStreamParser {
  /**
   * Feeds bytes (decoded as streaming UTF-8, a leading BOM stripped once) or already-decoded
   * text. Do not mix the two in one stream.
   */
  feed(chunk: Uint8Array | ArrayBuffer | string): void;
  /** Starts a new stream (a new connection); keeps the last event id. */
  reset(): void;
  /** The last event id committed by a blank line. */
  readonly lastEventId: string;
}

/** A byte-oriented, spec-exact WHATWG event-stream parser. */
export function createParser(callbacks?: ParserCallbacks): EventStreamParser;

/* -------------------------------------------------------- fetchEventSource */

/** What onmessage receives: the WHATWG names plus those of @microsoft/fetch-event-source. */
export interface EventSourceMessage {
  type: string;
  data: string;
  lastEventId: string;
  /** Same as `type` (the name @microsoft/fetch-event-source uses). */
  event: string;
  /** Same as `lastEventId`. */
  id: string;
  retry?: number;
}

export interface FetchEventSourceInit extends Omit<RequestInit, 'signal'> {
  signal?: AbortSignal | null;
  /** Called with each response; throw to reject it. Default: 200 + text/event-stream, else a TelexHTTPError. */
  onopen?: (response: Response) => void | Promise<void>;
  onmessage?: (message: EventSourceMessage) => void;
  /** The server ended the stream. Throw to treat the end as an error (and reconnect). */
  onclose?: () => void | Promise<void>;
  /**
   * An error happened (network, HTTP, a callback threw). Return a delay in ms to reconnect after
   * it, nothing to reconnect after the usual delay, or throw to stop (the promise rejects).
   * Default: reconnect on connection errors and HTTP 408/429/5xx, throw on anything else.
   */
  onerror?: (error: unknown) => number | null | undefined | void | Promise<number | null | undefined | void>;
  /** A `retry:` field arrived. */
  onretry?: (ms: number) => void;
  /** Accepted for compatibility with @microsoft/fetch-event-source and ignored. */
  openWhenHidden?: boolean;
  /** The fetch to use (default: globalThis.fetch). */
  fetch?: typeof fetch;
  /** Last-Event-ID to send on the first request (default: none). */
  lastEventId?: string;
  /** ms before the first reconnection (default 1000); the server's `retry:` replaces it. */
  retryInterval?: number;
  /** Cap of the exponential backoff (default 30000 ms). */
  maxRetryInterval?: number;
  /** Consecutive failed attempts before giving up (default Infinity); an event resets the count. */
  maxRetries?: number;
}

/**
 * Server-sent events over fetch (any method, headers and body). Reconnects with Last-Event-ID;
 * a 204 response ends it without error. Resolves when the stream ends or `signal` aborts.
 */
export function fetchEventSource(input: RequestInfo | URL, init?: FetchEventSourceInit): Promise<void>;

/* -------------------------------------------------------------- streamChat */

export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool' | 'function' | (string & {});
  content: string | unknown[] | null;
  [key: string]: unknown;
}

/** An OpenAI chat completion request (`stream` and `stream_options.include_usage` are set for you). */
export interface ChatRequestBody {
  model?: string;
  messages?: ChatMessage[];
  max_tokens?: number;
  temperature?: number;
  /** Preset variables, with `model: "preset:NAME"`. */
  variables?: Record<string, string | number | boolean>;
  /** For `preset`: the text that fills {{content}}. */
  content?: string;
  [key: string]: unknown;
}

export interface ChatUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
  /** The cost in US dollars, when the gateway knows the model's prices. */
  cost_usd?: number;
  [key: string]: unknown;
}

export interface ChatResult {
  text: string;
  usage: ChatUsage | null;
  finishReason: string | null;
  model: string | null;
  id: string | null;
  streamId: string | null;
  /** How many times the stream was resumed. */
  resumes: number;
}

export interface StreamChatOptions {
  /** The gateway, e.g. "http://127.0.0.1:8080" (default "": same origin). */
  baseUrl?: string;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  body?: ChatRequestBody;
  /** POST /v1/presets/{preset} instead of /v1/chat/completions. */
  preset?: string;
  /** Attach to a running stream (GET /v1/streams/{id}) instead of starting one. */
  streamId?: string;
  /** Attach through this resume URL (from X-Telex-Resume-Url). */
  resumeUrl?: string;
  /** Resume after this event id (default: from the first event). */
  lastEventId?: string;
  signal?: AbortSignal;
  headers?: HeadersInit;
  fetch?: typeof fetch;
  /** Consecutive failed resumes before giving up (default 5). */
  maxRetries?: number;
  /** ms before the first resume when the server sent no `retry:` (default 1000). */
  retryInterval?: number;
  /** Backoff cap (default 10000 ms). */
  maxRetryInterval?: number;
  /** The gateway named the stream (X-Telex-Stream-Id): keep it to reattach later. */
  onStreamId?: (streamId: string, resumeUrl: string | null) => void;
}

/** A streamed chat answer: an async iterable of text deltas. */
export interface ChatStream extends AsyncIterable<string> {
  /** The whole answer so far. */
  readonly text: string;
  readonly usage: ChatUsage | null;
  readonly finishReason: string | null;
  readonly model: string | null;
  readonly id: string | null;
  readonly streamId: string | null;
  readonly resumeUrl: string | null;
  readonly lastEventId: string;
  readonly resumes: number;
  /** Resolves with the final result; rejects like the iterator. */
  readonly done: Promise<ChatResult>;
  /** Aborts; with a known stream id also DELETEs it on the server. Resolves true if the server accepted. */
  cancel(): Promise<boolean>;
  [Symbol.asyncIterator](): AsyncIterator<string, undefined>;
}

/**
 * Streams a chat completion. Resumes transparently (Last-Event-ID) when the connection drops.
 * Throws TelexHTTPError, TelexStreamError, TelexConnectionError, or the signal's AbortError.
 */
export function streamChat(options?: StreamChatOptions): ChatStream;

export interface CancelStreamOptions {
  baseUrl?: string;
  apiKey?: string;
  streamId?: string | null;
  headers?: HeadersInit;
  fetch?: typeof fetch;
}

/** DELETE /v1/streams/{streamId}. Resolves true when the server accepted it. */
export function cancelStream(options: CancelStreamOptions): Promise<boolean>;

declare const telex: {
  createParser: typeof createParser;
  fetchEventSource: typeof fetchEventSource;
  streamChat: typeof streamChat;
  cancelStream: typeof cancelStream;
};
export default telex;
