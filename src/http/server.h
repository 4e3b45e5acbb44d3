/*
 * http/server.h — h2o on libuv, one event loop per worker thread.
 *
 * telex_server_run() starts N worker threads. Each has its own uv loop, its
 * own h2o context and its own listening socket bound with SO_REUSEPORT to the
 * same address, so the kernel spreads connections over the workers and no
 * lock is shared on the accept path. The address must be free of every
 * other process (http/listen.h): a port held by anyone else fails the start. HTTP/1.1 (keep-alive), HTTP/2 over
 * cleartext with prior knowledge, and TLS with ALPN h2 when a certificate is
 * configured.
 *
 * Every request goes to options.on_request, called on the worker's thread.
 * The application keeps per-worker state through worker_init/worker_dispose.
 *
 * The main thread waits for SIGINT/SIGTERM, then every worker stops
 * accepting and calls options.on_shutdown; the workers end their loops once
 * options.is_idle says every one of them has nothing in flight (until then
 * an idle one still answers requests on its open connections), or after
 * the hard deadline of shutdown_grace + 2 s, and telex_server_run returns.
 */
#ifndef TELEX_HTTP_SERVER_H
#define TELEX_HTTP_SERVER_H

#include <stdatomic.h>
#include <stddef.h>
#include <sys/socket.h>

#include <h2o.h>
#include <uv.h>

#include "http/guard.h"

typedef struct telex_worker telex_worker_t;

typedef struct telex_server_options {
    struct sockaddr_storage listen_addr;
    socklen_t listen_addrlen;
    int workers;                 /* >= 1 */
    const char *tls_cert;        /* PEM paths; both or neither */
    const char *tls_key;
    size_t max_request_body;     /* h2o's hard cap on a buffered request body */
    size_t max_connections;      /* across all workers; 0 = unlimited */
    uint64_t body_timeout_ms;    /* h2o's request timeout (head + body; idle keep-alive); 0 = h2o's 10 s */
    telex_guard_options_t guard; /* http/guard.h: limits before a body is read */
    double shutdown_grace;       /* seconds */
    const char *name;            /* for log lines: "serve" / "mock" */

    /* Called for every request on the worker's thread. Must respond
     * (h2o_send_inline, h2o_start_response...). */
    int (*on_request)(telex_worker_t *worker, h2o_req_t *req);
    /* Per-worker application state. */
    int (*worker_init)(telex_worker_t *worker);
    /* On the worker's own thread, just before its loop starts. */
    void (*worker_start)(telex_worker_t *worker);
    void (*worker_dispose)(telex_worker_t *worker);
    /* Graceful shutdown began on this worker (accepting has stopped). */
    void (*on_shutdown)(telex_worker_t *worker);
    /* Returns non-zero when the worker has nothing left in flight. */
    int (*is_idle)(telex_worker_t *worker);
    void *app; /* shared application state, read-only after start */
} telex_server_options_t;

struct telex_worker {
    int index;
    uv_loop_t loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    uv_timer_t shutdown_timer;
    uv_async_t shutdown_async;
    int shutting_down;
    int shutdown_idle; /* found idle at the last shutdown poll (counted in the server's idle_workers) */
    uint64_t shutdown_started_ms;
    const telex_server_options_t *options;
    struct telex_server *server;
    void *app_worker; /* set by worker_init */
    uv_timer_t guard_timer;              /* telex_guard_sweep, once a second */
    h2o_linklist_t guard_conns;          /* this worker's open connections, the newest first (guard.c) */
    size_t connections;                  /* open on this worker (the heap trim counts them) */
    uv_prepare_t quiet_epoll;            /* http/quiet_epoll.h: no epoll_ctl that changes nothing */
};

/* Runs until SIGINT/SIGTERM and a graceful drain. Returns 0, or -1 with one
 * line on stderr when it could not start (the address is in use by another
 * process or cannot be bound, bad TLS files). */
int telex_server_run(const telex_server_options_t *options);

/* The worker that is handling `req`. */
telex_worker_t *telex_worker_of(h2o_req_t *req);

/* Non-zero when the client of an HTTP/1 request has closed its side of the
 * connection (h2o does not read while a response is generated, so a silent
 * response would never notice). For HTTP/2 returns 0: h2o reports resets. */
int telex_client_has_gone(h2o_req_t *req);

/* Connections currently open on all workers. */
size_t telex_server_connections(void);

#endif
