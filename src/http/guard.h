/*
 * http/guard.h — the connection guard: what telex decides about a client
 * connection before h2o has read a request's body.
 *
 * h2o 2.2 parses an HTTP/1 request head and then reads the whole body into
 * the socket's input buffer before it calls any handler; a handler cannot see
 * a request whose body is still arriving. The guard sits on the socket's
 * read path instead (every libuv read of an accepted connection passes
 * through it, see guard.c for how) and looks at the request head whose body
 * h2o is about to read:
 *
 *   - request smuggling: both Content-Length and Transfer-Encoding, or two
 *     different Content-Lengths → 400 and close (RFC 9112 §6.3);
 *   - the application's verdict on the head (options.on_head: e.g. 401 for a
 *     body without a valid key, 413 for a Content-Length over the limit);
 *   - the global budget of request bodies in flight (all connections of all
 *     workers together): a body that does not fit → 503 + Retry-After;
 *   - per client address: open connections (checked at accept: over the
 *     limit the connection is closed at once) and unfinished requests (a
 *     partial head or a body still arriving; over the limit → 429 and close);
 *   - the header timeout: a connection that has not sent a complete request
 *     head this long after it was accepted or after its previous response is
 *     closed (h2o's own timeout, set to the longer body timeout, still bounds
 *     head + body).
 *
 * On cleartext connections the head is looked at before h2o sees the read;
 * over TLS, after h2o has decrypted it. A refused request gets a complete
 * JSON response with Connection: close and the connection is closed; its
 * body is never read. When h2o has completed the body in the same read (a
 * small request over TLS), the request reaches the handler as usual and
 * telex_guard_on_dispatch runs the smuggling check.
 *
 * HTTP/2: h2o's socket read callback of an h2 connection is wrapped too;
 * the complete frames are counted before h2o consumes them (DATA adds to its
 * stream's pending body; END_STREAM or RST_STREAM ends it), so h2 bodies
 * being received count against the same global budget, and a connection
 * that would overflow it is closed. What the guard cannot do for h2 is
 * decide on a stream's headers before its body: they are HPACK-compressed
 * (stateful, decoded only by h2o) and h2o 2.2 keeps streams in private
 * structures (its http2_internal.h needs a khash.h that is not installed).
 * docs/architecture.md has the reasoning.
 */
#ifndef TELEX_HTTP_GUARD_H
#define TELEX_HTTP_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <h2o.h>
#include <uv.h>

typedef struct telex_worker telex_worker_t;

typedef struct telex_head_header {
    const char *name; /* as sent (any case) */
    size_t name_len;
    const char *value;
    size_t value_len;
} telex_head_header_t;

/* A request head whose body h2o has not finished reading. */
typedef struct telex_head {
    h2o_iovec_t method;
    h2o_iovec_t path;
    const telex_head_header_t *headers;
    size_t n_headers;
    size_t content_length; /* SIZE_MAX = chunked */
    size_t body_received;  /* body bytes buffered so far */
    bool over_budget;      /* the bodies-in-flight budget cannot take this body */
} telex_head_t;

/* The application's answer for a refused head. */
typedef struct telex_head_verdict {
    int status; /* 0 = go on reading the body */
    unsigned retry_after; /* seconds; 0 = no Retry-After */
    char body[1024];      /* JSON, NUL-terminated */
} telex_head_verdict_t;

/* The value of header `name` (lower-case) in head, or an empty iovec. */
h2o_iovec_t telex_head_header(const telex_head_t *head, const char *name);

typedef struct telex_guard_options {
    uint64_t max_body_bytes;       /* a chunked body past this asks on_head again */
    uint64_t max_bodies_bytes;     /* all bodies in flight together; 0 = no budget */
    uint64_t max_conns_per_client; /* 0 = no limit */
    uint64_t max_unfinished_per_client;
    uint64_t header_timeout_ms;    /* 0 = none (h2o's timeout alone) */
    /* Called on the worker's thread; fills *v and returns v->status. */
    int (*on_head)(telex_worker_t *worker, const telex_head_t *head, telex_head_verdict_t *v);
} telex_guard_options_t;

typedef struct telex_guard_conn telex_guard_conn_t;

/* Once, before any worker starts. */
void telex_guard_init(const telex_guard_options_t *options);

/* A record for a connection about to be accepted: its first member is the
 * uv_tcp_t to init, accept and hand to h2o_uv_socket_create; free() it if
 * it is never admitted. Never NULL. */
telex_guard_conn_t *telex_guard_new(telex_worker_t *worker);
/* After uv_accept: takes a connection slot of the client's address and
 * registers the stream. Returns 0, or -1 when the client has too many
 * connections (close the handle; its close callback frees the record). */
int telex_guard_admit(telex_guard_conn_t *c, int tls);
/* After h2o_accept returned for it. */
void telex_guard_accepted(telex_guard_conn_t *c);
/* From the uv close callback of an admitted connection's handle; frees c. */
void telex_guard_closed(telex_guard_conn_t *c);

/* Called by the server before the handler runs for req. Returns 0 to go
 * on, or non-zero when the guard has answered the request itself (400 for
 * a smuggling attempt; the connection closes after the response). */
int telex_guard_on_dispatch(h2o_req_t *req);

/* The worker's periodic check (header timeouts); call about once a second. */
void telex_guard_sweep(telex_worker_t *worker, uint64_t now_ms);

/* Bytes of request bodies counted in the budget right now (all workers). */
uint64_t telex_guard_bodies_bytes(void);
/* Connections closed or requests refused by the guard, for metrics. */
uint64_t telex_guard_refused(void);

#endif
