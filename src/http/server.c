/*
 * http/server.c — worker threads, TLS, graceful shutdown. See server.h for
 * the contract; the listening sockets (SO_REUSEPORT among the workers, never
 * shared with another process) are http/listen.c.
 */
#include "http/server.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "http/listen.h"
#include "http/quiet_epoll.h"
#include "util/alloc.h"
#include "util/log.h"

#define LISTEN_BACKLOG 4096
#define SHUTDOWN_POLL_MS 50
/* The first input buffer of this thread's sockets (h2o's default is 8 KiB).
 * A client connection keeps its request in it while the answer streams, so
 * it is held for the stream's whole life; 4 KiB is the least h2o reads into
 * (it reserves 4 KiB per read) and holds any ordinary request head. Buffers
 * grow when more is needed (big bodies, TLS records). The upstream client's
 * sockets use it too; their buffer is released whenever it is empty. */
#define SOCKET_INPUT_BUFFER 4096

typedef struct telex_server {
    const telex_server_options_t *options;
    h2o_globalconf_t globalconf;
    h2o_hostconf_t *hostconf;
    SSL_CTX *ssl_ctx;
    telex_worker_t *workers;
    int *listen_fds;
    atomic_int running_workers;
    atomic_int idle_workers; /* shutting down, and found idle at their last poll */
} telex_server_t;

typedef struct {
    h2o_handler_t super;
    telex_server_t *server;
} app_handler_t;

static atomic_size_t open_connections;

/* What telex_server_run leaves to the kernel at exit (see there). */
static void *volatile abandoned[3];

size_t telex_server_connections(void)
{
    return atomic_load(&open_connections);
}

telex_worker_t *telex_worker_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(telex_worker_t, ctx, req->conn->ctx);
}

int telex_client_has_gone(h2o_req_t *req)
{
    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return 0;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL)
        return 1;
    struct pollfd p = {.fd = h2o_socket_get_fd(sock), .events = POLLRDHUP};
    if (p.fd < 0)
        return 0;
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    app_handler_t *handler = (app_handler_t *)self;
    if (telex_guard_on_dispatch(req) != 0)
        return 0; /* answered: a smuggling attempt */
    return handler->server->options->on_request(telex_worker_of(req), req);
}

/* ------------------------------------------------------------ accepting */

static void on_connection_closed(uv_handle_t *handle)
{
    telex_guard_closed((telex_guard_conn_t *)handle);
    atomic_fetch_sub(&open_connections, 1);
}

static void on_close_free(uv_handle_t *handle)
{
    free(handle);
}

static void on_accept(uv_stream_t *listener, int status)
{
    telex_worker_t *w = listener->data;
    if (status != 0)
        return;
    telex_guard_conn_t *record = telex_guard_new(w);
    uv_tcp_t *conn = (uv_tcp_t *)record; /* its first member */
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, on_close_free);
        return;
    }
    size_t max = w->options->max_connections;
    if (w->shutting_down || (max != 0 && atomic_load(&open_connections) >= max)) {
        uv_close((uv_handle_t *)conn, on_close_free);
        return;
    }
    atomic_fetch_add(&open_connections, 1);
    if (telex_guard_admit(record, w->accept_ctx.ssl_ctx != NULL) != 0) {
        /* too many connections from this client address */
        uv_close((uv_handle_t *)conn, on_connection_closed);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, on_connection_closed);
    h2o_accept(&w->accept_ctx, sock);
    telex_guard_accepted(record);
}

static void on_guard_timer(uv_timer_t *timer)
{
    telex_worker_t *w = timer->data;
    telex_guard_sweep(w, uv_now(&w->loop));
}

/* ------------------------------------------------------------- shutdown */

/* A worker's loop ends when every worker is idle (or at the hard deadline):
 * one that stopped as soon as it was idle itself would leave its kept-alive
 * connections unanswered — a request on one hung until another worker's
 * last answer ended and the process exited — where they now get their 503
 * shutting_down (or a close) at once. */
static void on_shutdown_poll(uv_timer_t *timer)
{
    telex_worker_t *w = timer->data;
    uint64_t elapsed = uv_now(&w->loop) - w->shutdown_started_ms;
    uint64_t hard_limit = (uint64_t)(w->options->shutdown_grace * 1000) + 2000;
    int idle = w->options->is_idle == NULL || w->options->is_idle(w);
    if (idle != w->shutdown_idle) {
        w->shutdown_idle = idle;
        atomic_fetch_add(&w->server->idle_workers, idle ? 1 : -1);
    }
    if (atomic_load(&w->server->idle_workers) >= w->options->workers || elapsed >= hard_limit)
        uv_stop(&w->loop);
}

static void on_shutdown_requested(uv_async_t *async)
{
    telex_worker_t *w = async->data;
    if (w->shutting_down)
        return;
    w->shutting_down = 1;
    w->shutdown_started_ms = uv_now(&w->loop);
    uv_close((uv_handle_t *)&w->listener, NULL);
    h2o_context_request_shutdown(&w->ctx);
    if (w->options->on_shutdown != NULL)
        w->options->on_shutdown(w);
    uv_timer_start(&w->shutdown_timer, on_shutdown_poll, SHUTDOWN_POLL_MS, SHUTDOWN_POLL_MS);
}

/* --------------------------------------------------------------- worker */

static void *worker_main(void *arg)
{
    telex_worker_t *w = arg;
    h2o_socket_buffer_prototype._initial_buf.capacity = SOCKET_INPUT_BUFFER;
    if (w->options->worker_start != NULL)
        w->options->worker_start(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (w->options->worker_dispose != NULL)
        w->options->worker_dispose(w);
    atomic_fetch_sub(&w->server->running_workers, 1);
    return NULL;
}

static int worker_setup(telex_server_t *s, telex_worker_t *w, int index, int fd)
{
    w->index = index;
    w->options = s->options;
    w->server = s;
    h2o_linklist_init_anchor(&w->guard_conns);
    if (uv_loop_init(&w->loop) != 0)
        return -1;
    h2o_context_init(&w->ctx, &w->loop, &s->globalconf);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = s->globalconf.hosts;
    w->accept_ctx.ssl_ctx = s->ssl_ctx;
    uv_tcp_init(&w->loop, &w->listener);
    w->listener.data = w;
    if (uv_tcp_open(&w->listener, fd) != 0 || uv_listen((uv_stream_t *)&w->listener, LISTEN_BACKLOG, on_accept) != 0)
        return -1;
    uv_timer_init(&w->loop, &w->shutdown_timer);
    w->shutdown_timer.data = w;
    uv_timer_init(&w->loop, &w->guard_timer);
    w->guard_timer.data = w;
    uv_timer_start(&w->guard_timer, on_guard_timer, 1000, 1000);
    uv_unref((uv_handle_t *)&w->guard_timer);
    uv_async_init(&w->loop, &w->shutdown_async, on_shutdown_requested);
    w->shutdown_async.data = w;
    telex_quiet_epoll_start(&w->loop, &w->quiet_epoll);
    if (s->options->worker_init != NULL && s->options->worker_init(w) != 0)
        return -1;
    return 0;
}

static SSL_CTX *create_ssl_ctx(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        fprintf(stderr, "telex: cannot load TLS certificate %s\n", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        fprintf(stderr, "telex: cannot load TLS key %s (or it does not match the certificate)\n", key);
        goto fail;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static void format_addr(const struct sockaddr_storage *a, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)a;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(out, outlen, "%s:%d", host, port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(out, outlen, "[%s]:%d", host, port);
    }
}

int telex_server_run(const telex_server_options_t *options)
{
    /* On the heap, not the stack: what the workers' loops still hold at
     * exit stays reachable from `abandoned` (see the end). */
    telex_server_t *s = telex_xcalloc(1, sizeof(*s));
    s->options = options;
    int n = options->workers > 0 ? options->workers : 1;

    signal(SIGPIPE, SIG_IGN);
    if (options->tls_cert != NULL && options->tls_key != NULL) {
        if ((s->ssl_ctx = create_ssl_ctx(options->tls_cert, options->tls_key)) == NULL) {
            free(s);
            return -1;
        }
    }

    h2o_config_init(&s->globalconf);
    s->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("telex"));
    s->globalconf.max_request_entity_size = options->max_request_body;
    if (options->body_timeout_ms != 0)
        s->globalconf.http1.req_timeout = options->body_timeout_ms;
    telex_guard_init(&options->guard);
    s->hostconf = h2o_config_register_host(&s->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(s->hostconf, "/", 0);
    app_handler_t *handler = (app_handler_t *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->server = s;

    /* Bind every listener before starting any thread, so a bad address
     * fails at once with a clear message. */
    struct sockaddr_storage addr = options->listen_addr;
    s->listen_fds = telex_xcalloc((size_t)n, sizeof(int));
    s->workers = telex_xcalloc((size_t)n, sizeof(telex_worker_t));
    char err[256];
    if (telex_listen_open(&addr, options->listen_addrlen, n, s->listen_fds, err, sizeof(err)) != 0) {
        char where[80];
        format_addr(&options->listen_addr, where, sizeof(where));
        fprintf(stderr, "telex %s: cannot listen on %s: %s\n", options->name, where, err);
        goto fail_before_listening;
    }

    /* Workers must not take SIGINT/SIGTERM: the main thread waits for them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    for (int i = 0; i < n; i++) {
        if (worker_setup(s, &s->workers[i], i, s->listen_fds[i]) != 0) {
            fprintf(stderr, "telex: cannot start worker %d\n", i);
            return -1;
        }
    }
    pthread_t *threads = telex_xcalloc((size_t)n, sizeof(pthread_t));
    atomic_store(&s->running_workers, n);
    for (int i = 0; i < n; i++)
        pthread_create(&threads[i], NULL, worker_main, &s->workers[i]);

    char where[80];
    format_addr(&addr, where, sizeof(where));
    telex_log_event("notice", "listening", "\"name\":\"%s\",\"address\":\"%s\",\"url\":\"%s://%s/\",\"workers\":%d",
                    options->name, where, s->ssl_ctx ? "https" : "http", where, n);

    int shutdown_sent = 0;
    while (atomic_load(&s->running_workers) > 0) {
        struct timespec tick = {0, 100 * 1000 * 1000};
        int sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig <= 0)
            continue;
        if (shutdown_sent) {
            telex_log_event("warn", "second signal, exiting now", "\"signal\":%d", sig);
            telex_log_flush(500);
            _exit(130);
        }
        shutdown_sent = 1;
        telex_log_event("notice", "shutting down", "\"signal\":%d,\"grace_seconds\":%g", sig, options->shutdown_grace);
        for (int i = 0; i < n; i++)
            uv_async_send(&s->workers[i].shutdown_async);
    }
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    telex_log_event("notice", "stopped", "\"name\":\"%s\"", options->name);
    free(threads);
    /* Loops still hold h2o's idle connections; the process is about to exit,
     * so they are left to the kernel rather than torn down one by one. They
     * stay reachable from here, so LeakSanitizer reports only what really
     * leaked (lost pointers), not this deliberate hand-over at exit. */
    abandoned[0] = s->workers;
    abandoned[1] = s->listen_fds;
    abandoned[2] = s; /* h2o's configuration (globalconf) lives in it */
    return 0;
fail_before_listening:
    free(s->listen_fds);
    free(s->workers);
    h2o_config_dispose(&s->globalconf);
    if (s->ssl_ctx != NULL)
        SSL_CTX_free(s->ssl_ctx);
    free(s);
    return -1;
}
