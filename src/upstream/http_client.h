/*
 * upstream/http_client.h — outgoing HTTP/1.1 and HTTP/2 requests on a worker's uv loop.
 *
 * A lean streaming client built for one job: POST a request to a provider and
 * hand the response body to the caller piece by piece, as it arrives, with as
 * little work and memory per call as possible. It runs on the worker's libuv
 * loop through h2o's socket layer (plain TCP, or TLS with certificate and host
 * name verification against the system's trust store; SSL_CERT_FILE and
 * SSL_CERT_DIR are honoured), parses the response head and the chunked (or
 * Content-Length, or read-until-close) body itself, and keeps idle keep-alive
 * connections per origin for the next call.
 *
 * A call reports, in order: on_response once the final response head is in
 * (status, Content-Type, Retry-After), then on_body for each piece of the body
 * as it arrives (pointers into the read buffer, valid during the call), then
 * on_complete exactly once — unless the call was cancelled, after which no
 * callback runs.
 *
 * Back-pressure: telex_http_call_pause stops reading from the upstream socket
 * at once — bytes of the current read not yet delivered wait in the buffer —
 * so TCP flow control slows the sender; telex_http_call_resume delivers what
 * waits, synchronously, and reads on. Callbacks may pause, resume and cancel
 * their own call.
 *
 * Connection reuse: a connection goes back to its origin's idle list when its
 * response ended cleanly (framing complete, no stray bytes, no
 * `Connection: close`, request fully written) — also when the call was
 * cancelled from inside a callback if the end of the response was already in
 * the same read (the relay cancels at `data: [DONE]`, which normally arrives
 * with the terminating chunk). Idle connections are watched: one the server
 * closes is dropped at once. If a reused connection fails before a single
 * response byte arrives (the server closed it while the request was on its
 * way), the request is sent once more on a new connection — the same rule as
 * curl's and browsers'. A request the server has not answered at all cannot
 * have been processed by a correct HTTP/1.1 server that closed the idle
 * connection; docs/providers.md says what that means for billing.
 *
 * HTTP/2 (telex_http2_mode_t, per request; http2_session.c on libnghttp2):
 * calls to one origin share connections, as many streams on each as the
 * server's SETTINGS_MAX_CONCURRENT_STREAMS allows, then more connections.
 * The callbacks and their order are the same. Pause holds the stream's
 * DATA (at most its flow-control window, TELEX_HTTP2_STREAM_WINDOW) and
 * gives the window back only as resume delivers it, so a paused call stops
 * its own stream and never the connection; cancel (and drain) reset the
 * stream (RST_STREAM) and keep the connection. A stream the server refused
 * unprocessed (REFUSED_STREAM, or above a GOAWAY's last stream id) is sent
 * once more on another connection; a connection that breaks or a GOAWAY
 * fails only the streams that had not ended. https negotiates the protocol
 * with ALPN; plain http with mode ON speaks HTTP/2 at once (prior knowledge).
 */
#ifndef TELEX_UPSTREAM_HTTP_CLIENT_H
#define TELEX_UPSTREAM_HTTP_CLIENT_H

#include <stddef.h>
#include <uv.h>

typedef struct telex_http_client telex_http_client_t;
typedef struct telex_http_call telex_http_call_t;

typedef struct telex_http_call_handlers {
    void (*on_response)(void *user, long status, const char *content_type, const char *retry_after);
    void (*on_body)(void *user, const char *data, size_t len);
    /* error is NULL on success, else a short human-readable reason;
     * timed_out tells a connect timeout apart from other failures. */
    void (*on_complete)(void *user, const char *error, int timed_out);
} telex_http_call_handlers_t;

/* AUTO: HTTP/2 on https when the server chooses it in ALPN (else HTTP/1.1),
 * HTTP/1.1 on plain http. ON: HTTP/2 only (ALPN h2 on https, prior knowledge
 * on http). OFF: HTTP/1.1 only. */
typedef enum telex_http2_mode {
    TELEX_HTTP2_AUTO = 0,
    TELEX_HTTP2_ON,
    TELEX_HTTP2_OFF,
} telex_http2_mode_t;

/* The receive window of one HTTP/2 stream: what a paused call may hold. */
#define TELEX_HTTP2_STREAM_WINDOW 65535

typedef struct telex_http_request {
    const char *url;                /* http:// or https:// */
    const char *const *headers;     /* NULL-terminated "Name: value" strings */
    const char *body;               /* POST body (copied), or NULL for GET */
    size_t body_len;
    long connect_timeout_ms;        /* name resolution + TCP + TLS; <= 0: 10 s */
    telex_http2_mode_t http2;
} telex_http_request_t;

/* Never NULL (out of memory ends the process). */
telex_http_client_t *telex_http_client_new(uv_loop_t *loop);

/* Called at the end of every read callback of a provider connection, once
 * nothing of the connection is in use any more (NULL: nothing). The gateway
 * runs there what the read woke (stream/wakeup.h: its events' readers write
 * them out before the next socket's read is handled). */
void telex_http_client_set_after_read(telex_http_client_t *client, void (*after_read)(void));

/* Idle keep-alive connections kept per origin (scheme, host, port): at most
 * this many, or as many as the origin has calls in flight if that is more (a
 * busy origin keeps what its load will ask for again; an idle one expires
 * after the idle timeout). A connection beyond that is closed instead.
 * 0 disables reuse. Default below. */
#define TELEX_HTTP_IDLE_LIMIT 256
void telex_http_client_set_idle_limit(telex_http_client_t *client, size_t connections);
/* How long an idle connection is kept (milliseconds; default below: shorter
 * than the keep-alive timeouts of common servers, so telex closes first). */
#define TELEX_HTTP_IDLE_TIMEOUT_MS 20000
void telex_http_client_set_idle_timeout(telex_http_client_t *client, long ms);

/* Cancels every call still running, closes every connection, then frees the
 * client once its handles are closed (the loop must run a little longer). */
void telex_http_client_free(telex_http_client_t *client);

/* Starts a call; returns NULL when the request cannot be sent (a URL that
 * is not http(s), a header with CR or LF in it, no TLS context for the
 * origin). Out of memory ends the process (util/alloc.h). */
telex_http_call_t *telex_http_call_start(telex_http_client_t *client, const telex_http_request_t *request,
                                         const telex_http_call_handlers_t *handlers, void *user);
void telex_http_call_pause(telex_http_call_t *call);
void telex_http_call_resume(telex_http_call_t *call);
/* Stops the call: no callback runs after this. Outside the call's callbacks
 * the call is freed at once and its connection closed (unless its response
 * had already ended). From inside one of them, the rest of the current read
 * is still parsed (not delivered) so a response that ends there leaves its
 * connection for reuse; then the call is freed. */
void telex_http_call_cancel(telex_http_call_t *call);
/* Like cancel, for a caller that has the whole answer (the relay at
 * `data: [DONE]`) while the response's framing has not ended yet (its
 * terminating chunk comes in a later read): no callback runs again, but the
 * connection reads on, discarding, to the end of the response — at most
 * TELEX_HTTP_DRAIN_BYTES more within TELEX_HTTP_DRAIN_MS — and is then kept
 * for reuse; past either limit it is closed. Outside the call's callbacks it
 * is the same as cancel. Never use it to abandon an answer: closing the
 * connection is what tells a provider to stop generating. */
#define TELEX_HTTP_DRAIN_BYTES 65536
#define TELEX_HTTP_DRAIN_MS 1000
void telex_http_call_drain(telex_http_call_t *call);

/* Counters for tests and benchmarks: connections opened, reused, requests
 * sent again, connections kept by draining (telex_http_call_drain); HTTP/2
 * sessions opened, streams started, streams reset by telex (cancel, drain),
 * streams placed again after the server refused them. */
typedef struct telex_http_client_stats {
    unsigned long long connects;
    unsigned long long reuses;
    unsigned long long retries;
    unsigned long long drained;
    size_t idle;
    unsigned long long h2_sessions;
    unsigned long long h2_streams;
    unsigned long long h2_resets;
    unsigned long long h2_refused;
    size_t h2_open; /* sessions open now */
} telex_http_client_stats_t;
void telex_http_client_get_stats(const telex_http_client_t *client, telex_http_client_stats_t *out);

#endif
