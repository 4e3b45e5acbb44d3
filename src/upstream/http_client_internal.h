/*
 * upstream/http_client_internal.h — the HTTP client's shared state, for its
 * two halves only: http_client.c (origins, calls, connecting, HTTP/1.1) and
 * http2_session.c (HTTP/2 sessions on libnghttp2). Nothing else includes it.
 *
 * A call's life is one explicit state (call_state_t); every change goes
 * through call_set_state, which asserts in debug builds that the change is
 * one of the transitions listed below. What is not life cycle — whether the
 * caller paused, whether a write is in flight, whether a callback frame is
 * on the stack — stays in small flags next to it.
 *
 *   CONNECTING ──► EXCHANGE ──► (freed: on_complete, or cancel outside a callback)
 *      │  ▲  │         │  │ └──► CANCELLED ──► (freed when the callback returns)
 *      │  │  │         │  └────► DRAINING  ──► (freed: response ended, or limits)
 *      │  │  ▼         ▼
 *      │  │ H2_WAITING ◄── EXCHANGE (HTTP/2 stream refused unprocessed: placed again)
 *      │  └─ EXCHANGE (HTTP/1.1: a reused connection died unanswered: sent again)
 *      (and EXCHANGE ──► H2_WAITING when a reused HTTP/2 session died before the stream's answer)
 *      └──► FAIL_PENDING ──► (freed from the loop)
 *
 *   CONNECTING   resolving, connecting, TLS handshake on a connection of its own
 *                (an HTTP/2 call opens the connection that becomes a session)
 *   H2_WAITING   an HTTP/2 call waiting for room in a session of its origin
 *                (one still connecting, or all full); its connect deadline runs
 *   EXCHANGE     request sent or being sent; the response read (an HTTP/1.1
 *                connection of its own, or a stream of an HTTP/2 session)
 *   FAIL_PENDING a failure found synchronously, reported from the loop
 *   DRAINING     the caller has its answer: the HTTP/1.1 response is read to
 *                its end, discarding, so the connection can be kept
 *   CANCELLED    cancelled from inside one of its callbacks: freed as soon
 *                as the callback frame unwinds
 * H2_WAITING and CONNECTING go back and forth when a waiting call is picked
 * to open one more connection, or a connection negotiated HTTP/1.1 instead.
 */
#ifndef TELEX_UPSTREAM_HTTP_CLIENT_INTERNAL_H
#define TELEX_UPSTREAM_HTTP_CLIENT_INTERNAL_H

#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>
#include <uv.h>

#include <h2o/linklist.h>
#include <h2o/socket.h>

#include "upstream/http1_response.h"
#include "upstream/http_client.h"

#define MAX_ADDRS 4 /* addresses tried per connection, in resolver order */

typedef struct origin origin_t;
typedef struct conn conn_t;
typedef struct h2_session h2_session_t;

typedef enum call_state {
    CALL_CONNECTING,
    CALL_H2_WAITING,
    CALL_EXCHANGE,
    CALL_FAIL_PENDING,
    CALL_DRAINING,
    CALL_CANCELLED,
} call_state_t;

struct conn {
    uv_tcp_t tcp;       /* owned by sock once connected */
    uv_connect_t creq;
    h2o_socket_t *sock; /* NULL while connecting */
    telex_http_client_t *client;
    origin_t *origin;
    telex_http_call_t *call; /* HTTP/1.1: the call using it; NULL when idle. Connecting: the call opening it */
    h2_session_t *h2;        /* an HTTP/2 session runs on it */
    h2o_linklist_t idle_link; /* in origin->idle, most recent first */
    uint64_t idle_since;
    int idle;
    int closing;
};

struct origin {
    origin_t *next;
    int tls;
    uint16_t port;
    telex_http2_mode_t http2; /* part of the origin's key */
    int numeric;      /* the host is an IP literal: no resolution */
    char *host;       /* for resolution, SNI and certificate checks */
    char *authority;  /* the Host header, :authority */
    SSL_CTX *ssl_ctx; /* https: verifies the chain and this origin's host name; ALPN */
    /* HTTP/1.1 */
    h2o_linklist_t idle; /* of conn_t.idle_link: the newest first, the oldest last */
    size_t n_idle;
    size_t n_calls; /* live calls to this origin */
    /* HTTP/2: -1 not known yet, 0 the server chose HTTP/1.1 (ALPN), 1 HTTP/2 */
    int h2_known;
    h2o_linklist_t sessions; /* of h2_session_t's link: connected sessions, the newest first */
    h2o_linklist_t waiting;  /* of telex_http_call_t.slink: CALL_H2_WAITING, oldest first */
    size_t n_waiting;
    size_t h2_connecting; /* calls opening a connection for HTTP/2 (their `opening` bit) */
    size_t h2_presettings; /* sessions connected, the server's SETTINGS not in yet */
    /* addresses */
    struct sockaddr_storage addrs[MAX_ADDRS];
    socklen_t addrlens[MAX_ADDRS];
    int n_addrs;
    uint64_t resolved_at;
};

typedef struct resolve {
    uv_getaddrinfo_t req;
    telex_http_call_t *call; /* NULL once the call no longer waits */
} resolve_t;

struct telex_http_client {
    uv_loop_t *loop;
    origin_t *origins;
    h2o_linklist_t calls;     /* of telex_http_call_t.link: every live call, the newest first */
    uv_timer_t timer;         /* idle connections and sessions */
    uint64_t timer_at;        /* when the timer fires; 0 when stopped */
    size_t idle_limit;
    uint64_t idle_timeout_ms;
    size_t n_conns;   /* allocated, not yet freed */
    size_t n_timers;  /* per-call timers not yet closed */
    int freeing;
    int timer_closed;
    telex_http_client_stats_t stats;
    void (*after_read)(void); /* telex_http_client_set_after_read */
};

struct telex_http_call {
    telex_http_client_t *client;
    h2o_linklist_t link;  /* in client->calls */
    h2o_linklist_t slink; /* in the origin's waiting list (listed), or its session's streams (sess) */
    telex_http_call_handlers_t handlers;
    void *user;
    origin_t *origin;
    conn_t *conn;       /* HTTP/1.1 exchange; or the connection this call is opening */
    h2_session_t *sess; /* HTTP/2 exchange: the session carrying its stream */
    int32_t stream_id;
    resolve_t *resolve;
    uv_timer_t *timer; /* the deadline of CONNECTING, H2_WAITING, FAIL_PENDING, DRAINING; NULL when none */
    /* HTTP/1.1: the whole request text, kept until a response byte arrives
     * and the write is done (for one re-send). */
    char *request;
    size_t request_len;
    /* HTTP/2: the request's header fields (nghttp2_nv[]), their text and the
     * body, one block; kept until the response head (for one re-send). */
    void *h2_head;
    size_t h2_n_head;
    const char *h2_body;
    size_t h2_body_len, body_sent;
    long connect_timeout_ms;
    int addr_index;
    call_state_t state;
    /* not life cycle: */
    unsigned want_h2 : 1;     /* to be carried on HTTP/2 (the origin's mode, or ALPN) */
    unsigned writing : 1;     /* HTTP/1.1: the request write is in flight */
    unsigned reused : 1;      /* on a kept connection (HTTP/1.1), on a session that had been idle (HTTP/2) */
    unsigned retried : 1;     /* sent once more already */
    unsigned got_bytes : 1;   /* a response byte arrived */
    unsigned in_callback : 1; /* one of its callbacks is on the stack */
    unsigned processing : 1;  /* HTTP/1.1: process() is on the stack */
    unsigned paused : 1;      /* the caller paused it */
    unsigned h2_ended : 1;    /* HTTP/2: the stream ended cleanly while bytes were held for a pause */
    unsigned listed : 1;      /* HTTP/2: on the origin's waiting list (slink) */
    unsigned opening : 1;     /* HTTP/2: opening a connection for its origin's sessions (origin->h2_connecting) */
    unsigned head_in : 1;     /* HTTP/2: the final response head arrived */
    unsigned body_done : 1;   /* HTTP/2: the whole body went to nghttp2 */
    char *held; /* HTTP/2: DATA received while paused, delivered on resume (bounded by the stream window) */
    size_t held_len, held_cap;
    size_t drained; /* bytes discarded while draining */
    char *error;    /* why it failed (set_error), allocated only then: calls live as long as answers */
    telex_http1_response_t response; /* HTTP/1.1: the parser's state; both: the final head */
};

/* ---- http_client.c, for http2_session.c */
void call_set_state(telex_http_call_t *call, call_state_t to);
static inline int call_cancelled(const telex_http_call_t *call)
{
    return call->state == CALL_CANCELLED || call->state == CALL_DRAINING;
}
void call_set_errorf(telex_http_call_t *call, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reports the end (error NULL: success) unless cancelled, then frees the call. */
void call_finish(telex_http_call_t *call, const char *error, int timed_out);
/* Closes its connection if any, reports its error, frees it. */
void call_fail(telex_http_call_t *call, int timed_out);
const char *call_error(const telex_http_call_t *call);
void call_free(telex_http_call_t *call);
/* Opens a new connection for call (state CONNECTING, connect deadline armed). */
void call_connect_new(telex_http_call_t *call);
/* Starts (or restarts) the call's deadline timer: at is a uv_now() time. */
void call_timer_start(telex_http_call_t *call, uint64_t at);
void call_timer_stop(telex_http_call_t *call);
void client_arm_timer(telex_http_client_t *client, uint64_t at);
void conn_close(conn_t *conn);
void conn_release_input(h2o_socket_t *sock);
/* HTTP/1.1 on this call's own connection or an idle one (an origin whose
 * server chose HTTP/1.1 in ALPN). */
void call_start_http1(telex_http_call_t *call);

/* ---- http2_session.c */
/* Whether calls to this origin go over HTTP/2 (mode, scheme, what ALPN said). */
int h2_origin_wants(const origin_t *o);
/* Prepares the call's HTTP/2 request (header fields, body kept): 0, or -1
 * (a header that HTTP/2 cannot carry). */
int h2_prepare(telex_http_call_t *call, const char *method, const char *path, size_t path_len,
               const char *const *headers, const char *body, size_t body_len);
/* Puts the call on a session with room, or waits (H2_WAITING) for one,
 * opening more connections as needed. */
void h2_place(telex_http_call_t *call);
/* The connection this call opened is up (TLS done) and speaks HTTP/2: makes
 * it a session. */
void h2_session_start(conn_t *conn, telex_http_call_t *call);
/* The connection a call opened for HTTP/2 failed (or it was cancelled while
 * connecting): the origin's waiting calls get the same error, or another
 * connection is opened for them. error NULL: cancelled. */
void h2_connect_failed(origin_t *o, const char *error, int timed_out);
/* ALPN chose HTTP/1.1: the calls waiting for a session go HTTP/1.1. */
void h2_origin_fell_back(origin_t *o);
void h2_on_read(conn_t *conn, const char *err);
void h2_call_pause(telex_http_call_t *call);
void h2_call_resume(telex_http_call_t *call);
/* Resets the call's stream (code: NGHTTP2_CANCEL or NGHTTP2_NO_ERROR) and
 * detaches the call from its session or the waiting list. */
void h2_call_detach(telex_http_call_t *call, int reset);
void h2_call_free_request(telex_http_call_t *call);
/* Closes sessions idle since before `before`; returns when the next one expires (0: none). */
uint64_t h2_sweep_idle(telex_http_client_t *client, uint64_t now);
/* Client free: every session closed (their calls are gone already). */
void h2_close_all(origin_t *o);

#endif
