/*
 * upstream/http_client.c — a lean streaming HTTP client: origins, calls,
 * connecting, and HTTP/1.1. HTTP/2 sessions are in http2_session.c; the
 * shared state and the call's states are in http_client_internal.h.
 *
 * Why not libcurl (which telex used first; bench/findings.md has the
 * profiles): a relayed event cost a curl_multi_socket_action dispatch, a
 * zero-timeout poll() that curl 7.88 makes after every read to ask whether
 * more is pending, and ~25 KB of per-call state (the easy handle, its 16 KB
 * receive buffer, connection and header structures); finding an idle
 * connection walked every connection to the host. Here a call is one small
 * struct, a connection an h2o socket whose input buffer is given back as soon
 * as it is empty, an idle connection is popped from a list, and a read is
 * one read(2) handed to the parser and the caller without copying.
 *
 * Shape: origins (scheme, host, port, HTTP/2 mode) own an idle list, their
 * HTTP/2 sessions and a small address cache; connections (conn_t) wrap a
 * uv_tcp_t in an h2o socket once connected (TLS via h2o's OpenSSL layer);
 * an HTTP/1.1 call owns at most one connection at a time. A call's deadline
 * (connecting, a failure to report from the loop, draining) is a uv timer of
 * its own, allocated only while it runs — libuv's timer heap orders them —
 * and one uv timer per client expires idle connections and sessions. The
 * HTTP/1.1 response is parsed by upstream/http1_response.c, straight from
 * the socket's input buffer.
 */
#include "upstream/http_client_internal.h"
#include "util/alloc.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <h2o/linklist.h>
#include <h2o/memory.h>
#include <h2o/socket.h>
#include <h2o/url.h>

#define DNS_TTL_MS 60000     /* a resolved name is reused this long */
#define DEFAULT_CONNECT_TIMEOUT_MS 10000

static void on_read(h2o_socket_t *sock, const char *err);

/* ------------------------------------------------------------ states */

/* The transitions of http_client_internal.h's diagram; bit `to` of row `from`. */
#define T(s) (1u << (s))
static const unsigned allowed[] __attribute__((unused)) = {
    [CALL_CONNECTING] = T(CALL_EXCHANGE) | T(CALL_H2_WAITING) | T(CALL_FAIL_PENDING) | T(CALL_CANCELLED) |
                        T(CALL_CONNECTING),
    [CALL_H2_WAITING] = T(CALL_EXCHANGE) | T(CALL_CONNECTING) | T(CALL_FAIL_PENDING) | T(CALL_CANCELLED),
    [CALL_EXCHANGE] = T(CALL_CONNECTING) | T(CALL_H2_WAITING) | T(CALL_FAIL_PENDING) | T(CALL_DRAINING) |
                      T(CALL_CANCELLED),
    [CALL_FAIL_PENDING] = T(CALL_CANCELLED),
    [CALL_DRAINING] = 0,
    [CALL_CANCELLED] = 0,
};
#undef T

void call_set_state(telex_http_call_t *call, call_state_t to)
{
    assert((allowed[call->state] & (1u << to)) != 0 && "illegal telex_http_call_t state transition");
    call->state = to;
}

/* ------------------------------------------------------------ connections */

static void maybe_free_client(telex_http_client_t *client)
{
    if (!client->freeing || !client->timer_closed || client->n_conns > 0 || client->n_timers > 0)
        return;
    origin_t *o = client->origins;
    while (o != NULL) {
        origin_t *next = o->next;
        free(o->host);
        free(o->authority);
        if (o->ssl_ctx != NULL)
            SSL_CTX_free(o->ssl_ctx);
        free(o);
        o = next;
    }
    free(client);
}

static void on_conn_closed(uv_handle_t *handle)
{
    conn_t *conn = (conn_t *)handle; /* tcp is the first member */
    telex_http_client_t *client = conn->client;
    free(conn);
    client->n_conns--;
    maybe_free_client(client);
}

static void idle_unlink(conn_t *conn)
{
    origin_t *o = conn->origin;
    h2o_linklist_unlink(&conn->idle_link);
    conn->idle = 0;
    o->n_idle--;
    conn->client->stats.idle--;
}

void conn_close(conn_t *conn)
{
    if (conn->closing)
        return;
    conn->closing = 1;
    if (conn->idle)
        idle_unlink(conn);
    conn->call = NULL;
    if (conn->sock != NULL)
        h2o_socket_close(conn->sock); /* on_conn_closed frees conn */
    else
        uv_close((uv_handle_t *)&conn->tcp, on_conn_closed);
}

/* The socket's input buffer back to h2o's recycler when it is empty: an idle
 * or quiet connection then holds no buffer at all. */
void conn_release_input(h2o_socket_t *sock)
{
    if (sock->input->size == 0 && sock->input->bytes != NULL) {
        h2o_buffer_dispose(&sock->input);
        h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
    }
}

static void conn_park(conn_t *conn)
{
    telex_http_client_t *client = conn->client;
    origin_t *o = conn->origin;
    conn->call = NULL;
    size_t keep = client->idle_limit; /* 0: no reuse at all */
    if (keep > 0 && o->n_calls > keep)
        keep = o->n_calls; /* a busy origin keeps what its load will ask for again */
    if (client->freeing || o->n_idle >= keep || conn->sock == NULL) {
        conn_close(conn);
        return;
    }
    conn_release_input(conn->sock);
    conn->idle = 1;
    conn->idle_since = uv_now(client->loop);
    h2o_linklist_insert(o->idle.next, &conn->idle_link); /* first */
    o->n_idle++;
    client->stats.idle++;
    conn->sock->data = conn;
    h2o_socket_read_start(conn->sock, on_read); /* a close by the server is seen at once */
    client_arm_timer(client, conn->idle_since + client->idle_timeout_ms);
}

/* ------------------------------------------------------------ calls: life cycle */

/* Sets the call's error message (formatted, at most 191 bytes kept). */
void call_set_errorf(telex_http_call_t *call, const char *fmt, ...)
{
    char text[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    free(call->error);
    call->error = telex_xstrdup(text);
}

const char *call_error(const telex_http_call_t *call)
{
    return call->error != NULL ? call->error : "the call to the provider failed";
}

static void on_call_timer_closed(uv_handle_t *h)
{
    telex_http_client_t *client = h->data;
    free(h);
    client->n_timers--;
    maybe_free_client(client);
}

void call_timer_stop(telex_http_call_t *call)
{
    if (call->timer == NULL)
        return;
    call->timer->data = call->client;
    uv_close((uv_handle_t *)call->timer, on_call_timer_closed);
    call->timer = NULL;
}

void call_free(telex_http_call_t *call)
{
    origin_t *o = call->origin;
    call_timer_stop(call);
    if (call->resolve != NULL)
        call->resolve->call = NULL;
    int opening_h2 = call->opening;
    if (opening_h2) {
        call->opening = 0;
        o->h2_connecting--;
    }
    h2_call_detach(call, 1); /* its stream reset, or off the waiting list */
    if (call->conn != NULL) {
        conn_close(call->conn);
        call->conn = NULL;
    }
    h2o_linklist_unlink(&call->link);
    o->n_calls--;
    h2_call_free_request(call);
    free(call->request);
    free(call->held);
    free(call->error);
    free(call);
    if (opening_h2) /* the calls waiting for its connection need another */
        h2_connect_failed(o, NULL, 0);
}

/* Reports the end of a call (error NULL: success) unless it was cancelled,
 * then frees it. The connection, if any, is parked or closed by the caller
 * beforehand (a connection still attached is closed). */
void call_finish(telex_http_call_t *call, const char *error, int timed_out)
{
    if (!call_cancelled(call)) {
        call->in_callback = 1; /* a cancel from on_complete must not free twice */
        call->handlers.on_complete(call->user, error, timed_out);
    }
    call_free(call);
}

void call_fail(telex_http_call_t *call, int timed_out)
{
    if (call->conn != NULL) {
        conn_close(call->conn);
        call->conn = NULL;
    }
    origin_t *o = call->origin;
    int opening_h2 = call->opening;
    char *copy = opening_h2 ? telex_xstrdup(call_error(call)) : NULL;
    if (opening_h2) {
        o->h2_connecting--;
        call->opening = 0; /* call_free must not count it again */
    }
    call_finish(call, call_error(call), timed_out);
    if (opening_h2) /* the same failure for every call that waited for this connection */
        h2_connect_failed(o, copy, timed_out);
    free(copy);
}

static void on_call_timer(uv_timer_t *timer)
{
    telex_http_call_t *call = timer->data;
    call_timer_stop(call);
    switch (call->state) {
    case CALL_DRAINING:
        call_free(call); /* the response did not end in time: close */
        return;
    case CALL_FAIL_PENDING:
        call_fail(call, 0);
        return;
    case CALL_CONNECTING:
    case CALL_H2_WAITING:
        call_set_errorf(call, "connecting to %s timed out after %ld ms", call->origin->authority,
                        call->connect_timeout_ms);
        if (call->state == CALL_H2_WAITING)
            h2_call_detach(call, 0);
        call_fail(call, 1);
        return;
    default:
        return;
    }
}

void call_timer_start(telex_http_call_t *call, uint64_t at)
{
    telex_http_client_t *client = call->client;
    if (call->timer == NULL) {
        call->timer = telex_xmalloc(sizeof(*call->timer));
        uv_timer_init(client->loop, call->timer);
        client->n_timers++;
    }
    call->timer->data = call;
    uint64_t now = uv_now(client->loop);
    uv_timer_start(call->timer, on_call_timer, at > now ? at - now : 0, 0);
}

/* Reported from the loop, never from inside telex_http_call_start. */
static void fail_later(telex_http_call_t *call)
{
    call_set_state(call, CALL_FAIL_PENDING); /* an opening call stays counted: its failure fails the waiting ones */
    call_timer_start(call, uv_now(call->client->loop));
}

/* A connection broke. A reused one that broke before any response byte was
 * most likely closed by the server as the request went out: send it again,
 * once, on a new connection. */
static void conn_failed(telex_http_call_t *call)
{
    if (call->reused && !call->got_bytes && !call->retried && call->state == CALL_EXCHANGE) {
        conn_close(call->conn);
        call->conn = NULL;
        call->retried = 1;
        call->reused = 0;
        call->writing = 0;
        call->client->stats.retries++;
        call_connect_new(call);
        return;
    }
    call_fail(call, 0);
}

/* ------------------------------------------------------------ the idle timer */

/* The origin's longest idle connection (the list's last), NULL when none. */
static conn_t *oldest_idle(origin_t *o)
{
    return h2o_linklist_is_empty(&o->idle) ? NULL : H2O_STRUCT_FROM_MEMBER(conn_t, idle_link, o->idle.prev);
}

static void on_timer(uv_timer_t *timer)
{
    telex_http_client_t *client = timer->data;
    client->timer_at = 0;
    uint64_t now = uv_now(client->loop);
    uint64_t next = h2_sweep_idle(client, now);
    for (origin_t *o = client->origins; o != NULL; o = o->next) {
        conn_t *oldest;
        while ((oldest = oldest_idle(o)) != NULL && oldest->idle_since + client->idle_timeout_ms <= now)
            conn_close(oldest);
        if (oldest != NULL) {
            uint64_t at = oldest->idle_since + client->idle_timeout_ms;
            if (next == 0 || at < next)
                next = at;
        }
    }
    if (next != 0)
        client_arm_timer(client, next);
}

void client_arm_timer(telex_http_client_t *client, uint64_t at)
{
    if (client->freeing)
        return;
    if (client->timer_at != 0 && client->timer_at <= at)
        return;
    uint64_t now = uv_now(client->loop);
    client->timer_at = at > 0 ? at : 1;
    uv_timer_start(&client->timer, on_timer, at > now ? at - now : 0, 0);
}

/* ------------------------------------------------------------ HTTP/1.1 response parsing */

static int set_error(telex_http_call_t *call, const char *msg)
{
    call_set_errorf(call, "%s", msg);
    return -1;
}

static void deliver(telex_http_call_t *call, const char *data, size_t len)
{
    if (call_cancelled(call) || len == 0)
        return;
    call->in_callback = 1;
    call->handlers.on_body(call->user, data, len);
    call->in_callback = 0;
}

/* The parser stops when the call is paused; a cancelled call is parsed on
 * (nothing delivered) to see whether its response ends in this read. */
#define STOPPED(call) ((call)->paused && !call_cancelled(call))

static int on_parsed_head(void *user, const telex_http1_response_t *r)
{
    telex_http_call_t *call = user;
    if (!call_cancelled(call)) {
        call->in_callback = 1;
        call->handlers.on_response(call->user, r->status, r->content_type, r->retry_after);
        call->in_callback = 0;
    }
    return STOPPED(call);
}

static int on_parsed_body(void *user, const char *data, size_t len)
{
    telex_http_call_t *call = user;
    deliver(call, data, len);
    return STOPPED(call);
}

static const telex_http1_response_callbacks_t parse_callbacks = {on_parsed_head, on_parsed_body};

/* A drained call whose response has not ended yet: whether to read on
 * (framing that ends by itself, limits not reached). The first time, it
 * starts the drain deadline. */
static int keep_draining(telex_http_call_t *call, size_t used)
{
    if (call->state != CALL_DRAINING || call->writing || !call->response.keep_alive ||
        call->response.phase != TELEX_HTTP1_BODY || telex_http1_response_ends_at_close(&call->response))
        return 0;
    if (call->timer == NULL) {
        call_timer_start(call, uv_now(call->client->loop) + TELEX_HTTP_DRAIN_MS);
        return call->timer != NULL;
    }
    call->drained += used;
    return call->drained <= TELEX_HTTP_DRAIN_BYTES;
}

/* Parses and delivers what the connection's input holds. */
static void process(telex_http_call_t *call)
{
    conn_t *conn = call->conn;
    h2o_socket_t *sock = conn->sock;
    size_t used = 0;
    call->processing = 1;
    telex_http1_result_t r = telex_http1_response_parse(&call->response, sock->input->bytes, sock->input->size, &used,
                                                         &parse_callbacks, call);
    call->processing = 0;
    if (used > 0)
        h2o_buffer_consume(&sock->input, used);
    size_t left = sock->input->size;
    conn_release_input(sock);
    switch (r) {
    case TELEX_HTTP1_DONE:
        call->conn = NULL;
        if (left == 0 && call->response.keep_alive && !call->writing) {
            if (call->state == CALL_DRAINING && call->timer != NULL) /* a drain started in an earlier read */
                call->client->stats.drained++;
            conn_park(conn);
        } else {
            conn_close(conn);
        }
        call_finish(call, NULL, 0);
        return;
    case TELEX_HTTP1_ERROR:
        set_error(call, call->response.error);
        call_fail(call, 0);
        return;
    case TELEX_HTTP1_PAUSED:
        h2o_socket_read_stop(sock);
        return;
    case TELEX_HTTP1_MORE:
        if (call_cancelled(call) && !keep_draining(call, used))
            call_free(call); /* cancelled in a callback and the response did not end here: close */
        return;
    }
}

/* The provider connection's read callback: the read, then the client's
 * after_read hook (telex_http_client_set_after_read). */
static void read_now(h2o_socket_t *sock, const char *err);

static void on_read(h2o_socket_t *sock, const char *err)
{
    telex_http_client_t *client = ((conn_t *)sock->data)->client; /* outlives the read */
    read_now(sock, err);
    if (client->after_read != NULL)
        client->after_read();
}

static void read_now(h2o_socket_t *sock, const char *err)
{
    conn_t *conn = sock->data;
    if (conn->closing)
        return;
    if (conn->h2 != NULL) {
        h2_on_read(conn, err);
        return;
    }
    telex_http_call_t *call = conn->call;
    if (call == NULL) {
        conn_close(conn); /* idle: the server closed it, or sent something unasked */
        return;
    }
    if (err != NULL) {
        if (telex_http1_response_ends_at_close(&call->response)) {
            call->conn = NULL;
            conn_close(conn);
            call_finish(call, NULL, 0); /* the body ends with the connection */
            return;
        }
        if (call->response.phase == TELEX_HTTP1_HEAD)
            call_set_errorf(call, "%s closed the connection %s", call->origin->authority,
                            call->got_bytes ? "in the middle of the response head" : "without answering");
        else
            call_set_errorf(call, "%s closed the connection before the response ended", call->origin->authority);
        conn_failed(call);
        return;
    }
    if (!call->got_bytes && sock->input->size > 0) {
        call->got_bytes = 1;
        if (!call->writing) {
            free(call->request);
            call->request = NULL;
        }
    }
    process(call);
}

/* ------------------------------------------------------------ HTTP/1.1 sending */

static void on_written(h2o_socket_t *sock, const char *err)
{
    conn_t *conn = sock->data;
    if (conn->closing)
        return;
    telex_http_call_t *call = conn->call;
    if (call == NULL)
        return;
    call->writing = 0;
    if (err != NULL) {
        call_set_errorf(call, "sending the request to %s failed: %s", call->origin->authority, err);
        conn_failed(call);
        return;
    }
    if (call->got_bytes) {
        free(call->request);
        call->request = NULL;
    }
}

static void send_request(telex_http_call_t *call)
{
    conn_t *conn = call->conn;
    call_timer_stop(call);
    call_set_state(call, CALL_EXCHANGE);
    telex_http1_response_init(&call->response);
    call->writing = 1;
    conn->sock->data = conn;
    h2o_iovec_t buf = h2o_iovec_init(call->request, call->request_len);
    h2o_socket_write(conn->sock, &buf, 1, on_written);
    if (!call->paused)
        h2o_socket_read_start(conn->sock, on_read);
}

/* The connection is up (TLS done): HTTP/2 or HTTP/1.1 on it. */
static void connected(telex_http_call_t *call)
{
    origin_t *o = call->origin;
    if (!call->want_h2) {
        send_request(call);
        return;
    }
    if (o->tls) {
        h2o_iovec_t alpn = h2o_socket_ssl_get_selected_protocol(call->conn->sock);
        int h2 = alpn.len == 2 && memcmp(alpn.base, "h2", 2) == 0;
        if (!h2 && o->http2 == TELEX_HTTP2_ON) {
            call_set_errorf(call, "%s did not choose HTTP/2 in ALPN (the provider's http2 is on)", o->authority);
            call_fail(call, 0); /* and every call waiting for this connection */
            return;
        }
        if (!h2) {
            o->h2_connecting--;
            call->opening = 0;
            call->want_h2 = 0;
            h2_call_free_request(call);
            o->h2_known = 0;
            h2_origin_fell_back(o);
            if (call->request == NULL) { /* prepared for HTTP/2 only: it had been chosen before */
                call_set_errorf(call, "%s no longer chooses HTTP/2 in ALPN", o->authority);
                call_fail(call, 0);
                return;
            }
            send_request(call); /* this connection speaks HTTP/1.1: the call goes first */
            return;
        }
        o->h2_known = 1;
    }
    conn_t *conn = call->conn;
    call->conn = NULL;
    conn->call = NULL;
    h2_session_start(conn, call);
}

static void on_handshake(h2o_socket_t *sock, const char *err)
{
    conn_t *conn = sock->data;
    if (conn->closing)
        return;
    telex_http_call_t *call = conn->call;
    if (call == NULL) {
        conn_close(conn);
        return;
    }
    if (err != NULL) {
        call_set_errorf(call, "TLS handshake with %s failed: %s%s", call->origin->authority, err,
                        call->origin->http2 == TELEX_HTTP2_ON ? " (http2 is on: only h2 was offered in ALPN)" : "");
        call_fail(call, 0);
        return;
    }
    connected(call);
}

static void try_address(telex_http_call_t *call);

static void on_connected(uv_connect_t *req, int status)
{
    conn_t *conn = req->data;
    if (status == UV_ECANCELED || conn->closing)
        return;
    telex_http_call_t *call = conn->call;
    if (status < 0) {
        call_set_errorf(call, "cannot connect to %s: %s", call->origin->authority, uv_strerror(status));
        conn_close(conn);
        call->conn = NULL;
        call->addr_index++;
        if (call->addr_index < call->origin->n_addrs)
            try_address(call);
        else
            call_fail(call, 0);
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    conn->client->stats.connects++;
    if ((conn->sock = h2o_uv_socket_create((uv_stream_t *)&conn->tcp, on_conn_closed)) == NULL) {
        set_error(call, "out of memory");
        call_fail(call, 0);
        return;
    }
    conn->sock->data = conn;
    if (call->origin->tls) {
        h2o_socket_ssl_handshake(conn->sock, call->origin->ssl_ctx, call->origin->host, on_handshake);
        return;
    }
    connected(call);
}
static void try_address(telex_http_call_t *call)
{
    telex_http_client_t *client = call->client;
    origin_t *o = call->origin;
    conn_t *conn = telex_xcalloc(1, sizeof(*conn));
    if (uv_tcp_init(client->loop, &conn->tcp) != 0) {
        free(conn);
        set_error(call, "cannot create a socket");
        fail_later(call);
        return;
    }
    client->n_conns++;
    conn->client = client;
    conn->origin = o;
    conn->call = call;
    conn->creq.data = conn;
    call->conn = conn;
    int rc = uv_tcp_connect(&conn->creq, &conn->tcp, (const struct sockaddr *)&o->addrs[call->addr_index],
                            on_connected);
    if (rc != 0) {
        call_set_errorf(call, "cannot connect to %s: %s", o->authority, uv_strerror(rc));
        conn_close(conn);
        call->conn = NULL;
        fail_later(call);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    resolve_t *r = (resolve_t *)req;
    telex_http_call_t *call = r->call;
    free(r);
    if (call == NULL) {
        if (res != NULL)
            uv_freeaddrinfo(res);
        return;
    }
    call->resolve = NULL;
    origin_t *o = call->origin;
    if (status == 0) {
        o->n_addrs = 0;
        for (struct addrinfo *a = res; a != NULL && o->n_addrs < MAX_ADDRS; a = a->ai_next) {
            if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) || a->ai_addrlen > sizeof(o->addrs[0]))
                continue;
            memcpy(&o->addrs[o->n_addrs], a->ai_addr, a->ai_addrlen);
            o->addrlens[o->n_addrs] = (socklen_t)a->ai_addrlen;
            o->n_addrs++;
        }
        o->resolved_at = uv_now(call->client->loop);
    }
    if (res != NULL)
        uv_freeaddrinfo(res);
    if (status != 0 || o->n_addrs == 0) {
        call_set_errorf(call, "cannot resolve %s: %s", o->host,
                 status != 0 ? uv_strerror(status) : "no IPv4 or IPv6 address");
        call_fail(call, 0);
        return;
    }
    call->addr_index = 0;
    try_address(call);
}

/* A new connection for call: resolve (or use the cached addresses), connect,
 * handshake, send. The connect deadline covers all of it. */
void call_connect_new(telex_http_call_t *call)
{
    telex_http_client_t *client = call->client;
    origin_t *o = call->origin;
    call_set_state(call, CALL_CONNECTING);
    if (call->want_h2 && !call->opening) {
        call->opening = 1;
        o->h2_connecting++;
    }
    call->addr_index = 0;
    uint64_t now = uv_now(client->loop);
    call_timer_start(call, now + (uint64_t)call->connect_timeout_ms);
    if (o->numeric || (o->n_addrs > 0 && now - o->resolved_at < DNS_TTL_MS)) {
        try_address(call);
        return;
    }
    resolve_t *r = telex_xcalloc(1, sizeof(*r));
    r->call = call;
    char port[8];
    snprintf(port, sizeof(port), "%u", o->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    int rc = uv_getaddrinfo(client->loop, &r->req, on_resolved, o->host, port, &hints);
    if (rc != 0) {
        free(r);
        call_set_errorf(call, "cannot resolve %s: %s", o->host, uv_strerror(rc));
        fail_later(call);
        return;
    }
    call->resolve = r;
}

/* ------------------------------------------------------------ origins */

static origin_t *find_origin(telex_http_client_t *client, int tls, const char *host, size_t host_len, uint16_t port,
                             const char *authority, size_t authority_len, telex_http2_mode_t http2)
{
    for (origin_t *o = client->origins; o != NULL; o = o->next)
        if (o->tls == tls && o->port == port && o->http2 == http2 && strlen(o->host) == host_len && memcmp(o->host, host, host_len) == 0 &&
            strlen(o->authority) == authority_len && memcmp(o->authority, authority, authority_len) == 0)
            return o;
    origin_t *o = telex_xcalloc(1, sizeof(*o));
    o->host = telex_xstrndup(host, host_len);
    o->authority = telex_xstrndup(authority, authority_len);
    o->tls = tls;
    o->port = port;
    o->http2 = http2;
    o->h2_known = -1;
    h2o_linklist_init_anchor(&o->idle);
    h2o_linklist_init_anchor(&o->sessions);
    h2o_linklist_init_anchor(&o->waiting);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&o->addrs[0];
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&o->addrs[0];
    if (inet_pton(AF_INET, o->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        o->addrlens[0] = sizeof(*v4);
        o->n_addrs = 1;
        o->numeric = 1;
    } else if (inet_pton(AF_INET6, o->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        o->addrlens[0] = sizeof(*v6);
        o->n_addrs = 1;
        o->numeric = 1;
    }
    o->next = client->origins;
    client->origins = o;
    return o;
}

/* One context per https origin: h2o 2.2 checks the chain (SSL_VERIFY_PEER)
 * but not that the certificate names the host, so OpenSSL is told the
 * expected name (or IP address) and fails the handshake otherwise. */
static int origin_tls(origin_t *o)
{
    if (o->ssl_ctx != NULL)
        return 0;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return -1;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_default_verify_paths(ctx); /* the system's store; SSL_CERT_FILE / SSL_CERT_DIR */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = o->numeric ? X509_VERIFY_PARAM_set1_ip_asc(param, o->host) : X509_VERIFY_PARAM_set1_host(param, o->host, 0);
    /* ALPN: h2 first when HTTP/2 may be used; only h2 when it must */
    static const unsigned char alpn_auto[] = "\x02h2\x08http/1.1", alpn_on[] = "\x02h2";
    if (ok == 1 && o->http2 == TELEX_HTTP2_AUTO)
        ok = SSL_CTX_set_alpn_protos(ctx, alpn_auto, sizeof(alpn_auto) - 1) == 0;
    else if (ok == 1 && o->http2 == TELEX_HTTP2_ON)
        ok = SSL_CTX_set_alpn_protos(ctx, alpn_on, sizeof(alpn_on) - 1) == 0;
    if (ok != 1) {
        SSL_CTX_free(ctx);
        return -1;
    }
    o->ssl_ctx = ctx;
    return 0;
}

/* ------------------------------------------------------------ the API */

telex_http_client_t *telex_http_client_new(uv_loop_t *loop)
{
    telex_http_client_t *client = telex_xcalloc(1, sizeof(*client));
    client->loop = loop;
    client->idle_limit = TELEX_HTTP_IDLE_LIMIT;
    client->idle_timeout_ms = TELEX_HTTP_IDLE_TIMEOUT_MS;
    h2o_linklist_init_anchor(&client->calls);
    uv_timer_init(loop, &client->timer);
    client->timer.data = client;
    uv_unref((uv_handle_t *)&client->timer); /* idle connections alone do not keep a loop running (calls' own timers do) */
    return client;
}

void telex_http_client_set_after_read(telex_http_client_t *client, void (*after_read)(void))
{
    client->after_read = after_read;
}

void telex_http_client_set_idle_limit(telex_http_client_t *client, size_t connections)
{
    client->idle_limit = connections;
}

void telex_http_client_set_idle_timeout(telex_http_client_t *client, long ms)
{
    client->idle_timeout_ms = ms > 0 ? (uint64_t)ms : 1;
}

void telex_http_client_get_stats(const telex_http_client_t *client, telex_http_client_stats_t *out)
{
    *out = client->stats;
}

static void on_timer_closed(uv_handle_t *handle)
{
    telex_http_client_t *client = handle->data;
    client->timer_closed = 1;
    maybe_free_client(client);
}

void telex_http_client_free(telex_http_client_t *client)
{
    if (client == NULL)
        return;
    client->freeing = 1;
    while (!h2o_linklist_is_empty(&client->calls))
        call_free(H2O_STRUCT_FROM_MEMBER(telex_http_call_t, link, client->calls.next)); /* nothing reported */
    for (origin_t *o = client->origins; o != NULL; o = o->next) {
        while (!h2o_linklist_is_empty(&o->idle))
            conn_close(H2O_STRUCT_FROM_MEMBER(conn_t, idle_link, o->idle.next));
        h2_close_all(o);
    }
    uv_timer_stop(&client->timer);
    uv_close((uv_handle_t *)&client->timer, on_timer_closed);
}

/* Does h start with lower (lower-case ASCII, no NUL), ignoring ASCII case? */
static int has_prefix_ci(const char *h, const char *lower, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)h[i]; /* a NUL in h differs from lower[i] first */
        if ((ch >= 'A' && ch <= 'Z' ? ch + 32 : ch) != (unsigned char)lower[i])
            return 0;
    }
    return 1;
}

/* Header names the client writes itself (framing and routing). */
static int reserved_header(const char *h)
{
#define NAME(lit) has_prefix_ci(h, lit, sizeof(lit) - 1)
    switch (h[0] | 0x20) {
    case 'h':
        return NAME("host:");
    case 'c':
        return NAME("content-length:") || NAME("connection:");
    case 't':
        return NAME("transfer-encoding:");
    default:
        return 0;
    }
#undef NAME
}

static char *put(char *p, const void *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* The HTTP/1.1 request text; NULL for a header that is not one "Name: value" line. */
static char *build_request(const h2o_url_t *url, const telex_http_request_t *request, size_t *out_len)
{
    size_t len = 128 + url->path.len + url->authority.len + request->body_len;
    for (const char *const *h = request->headers; h != NULL && *h != NULL; h++) {
        if (strpbrk(*h, "\r\n") != NULL || strchr(*h, ':') == NULL)
            return NULL;
        len += strlen(*h) + 2;
    }
    char *buf = telex_xmalloc(len);
    char *p = buf;
    if (request->body != NULL)
        p = put(p, "POST ", 5);
    else
        p = put(p, "GET ", 4);
    if (url->path.len > 0)
        p = put(p, url->path.base, url->path.len);
    else
        *p++ = '/';
    p = put(p, " HTTP/1.1\r\nHost: ", 17);
    p = put(p, url->authority.base, url->authority.len);
    p = put(p, "\r\n", 2);
    for (const char *const *h = request->headers; h != NULL && *h != NULL; h++) {
        if (reserved_header(*h))
            continue;
        p = put(p, *h, strlen(*h));
        p = put(p, "\r\n", 2);
    }
    if (request->body != NULL) {
        char digits[24];
        size_t nd = 0, v = request->body_len;
        do {
            digits[sizeof(digits) - ++nd] = (char)('0' + v % 10);
            v /= 10;
        } while (v != 0);
        p = put(p, "Content-Length: ", 16);
        p = put(p, digits + sizeof(digits) - nd, nd);
        p = put(p, "\r\n", 2);
    }
    p = put(p, "\r\n", 2);
    if (request->body != NULL)
        p = put(p, request->body, request->body_len);
    *out_len = (size_t)(p - buf);
    return buf;
}

telex_http_call_t *telex_http_call_start(telex_http_client_t *client, const telex_http_request_t *request,
                                         const telex_http_call_handlers_t *handlers, void *user)
{
    if (client->freeing || request->url == NULL)
        return NULL;
    h2o_url_t url;
    if (h2o_url_parse(request->url, strlen(request->url), &url) != 0)
        return NULL;
    int tls = url.scheme == &H2O_URL_SCHEME_HTTPS;
    if (!tls && url.scheme != &H2O_URL_SCHEME_HTTP)
        return NULL;
    const char *host = url.host.base;
    size_t host_len = url.host.len;
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    }
    if (host_len == 0)
        return NULL;
    telex_http2_mode_t mode = request->http2;
    if (mode != TELEX_HTTP2_ON && mode != TELEX_HTTP2_OFF)
        mode = TELEX_HTTP2_AUTO;
    telex_http_call_t *call = telex_xcalloc(1, sizeof(*call));
    origin_t *o = find_origin(client, tls, host, host_len, h2o_url_get_port(&url), url.authority.base,
                              url.authority.len, mode);
    if (tls && origin_tls(o) != 0) {
        free(call);
        return NULL;
    }
    call->origin = o;
    call->want_h2 = h2_origin_wants(o);
    /* HTTP/1.1's request text unless HTTP/2 is certain; HTTP/2's fields unless HTTP/1.1 is */
    int h1_possible = !call->want_h2 || (mode == TELEX_HTTP2_AUTO && o->h2_known < 0);
    const char *method = request->body != NULL ? "POST" : "GET";
    if ((h1_possible && (call->request = build_request(&url, request, &call->request_len)) == NULL) ||
        (call->want_h2 && h2_prepare(call, method, url.path.base, url.path.len, request->headers, request->body,
                                     request->body_len) != 0)) {
        h2_call_free_request(call);
        free(call->request);
        free(call);
        return NULL;
    }
    call->client = client;
    call->handlers = *handlers;
    call->user = user;
    call->state = CALL_CONNECTING;
    call->connect_timeout_ms = request->connect_timeout_ms > 0 ? request->connect_timeout_ms
                                                               : DEFAULT_CONNECT_TIMEOUT_MS;
    h2o_linklist_insert(client->calls.next, &call->link); /* first */
    o->n_calls++;
    if (call->want_h2) {
        call_timer_start(call, uv_now(client->loop) + (uint64_t)call->connect_timeout_ms);
        h2_place(call);
    } else {
        call_start_http1(call);
    }
    return call;
}

void call_start_http1(telex_http_call_t *call)
{
    origin_t *o = call->origin;
    if (!h2o_linklist_is_empty(&o->idle)) {
        conn_t *conn = H2O_STRUCT_FROM_MEMBER(conn_t, idle_link, o->idle.next); /* the most recent */
        idle_unlink(conn);
        conn->call = call;
        call->conn = conn;
        call->reused = 1;
        call->client->stats.reuses++;
        send_request(call);
    } else {
        call_connect_new(call);
    }
}

static int reading_h1(const telex_http_call_t *call)
{
    return call->sess == NULL && call->state == CALL_EXCHANGE && call->conn != NULL && call->conn->sock != NULL;
}

void telex_http_call_pause(telex_http_call_t *call)
{
    if (call->paused || call_cancelled(call))
        return;
    call->paused = 1;
    if (call->sess != NULL)
        h2_call_pause(call);
    else if (reading_h1(call))
        h2o_socket_read_stop(call->conn->sock);
}

void telex_http_call_resume(telex_http_call_t *call)
{
    if (!call->paused || call_cancelled(call))
        return;
    call->paused = 0;
    if (call->sess != NULL || call->h2_ended) {
        h2_call_resume(call);
        return;
    }
    if (!reading_h1(call))
        return; /* send_request starts reading */
    h2o_socket_read_start(call->conn->sock, on_read);
    if (!call->processing && call->conn->sock->input->size > 0)
        process(call); /* what waited in the buffer, now */
}

void telex_http_call_drain(telex_http_call_t *call)
{
    if (call == NULL || call_cancelled(call))
        return;
    if ((call->in_callback || call->processing) && call->state == CALL_EXCHANGE && call->sess == NULL) {
        call_set_state(call, CALL_DRAINING); /* process() reads on to the end of the response */
        return;
    }
    if (call->sess != NULL) {
        h2_call_detach(call, 0); /* the answer is in: RST_STREAM NO_ERROR, the connection stays */
        call->client->stats.drained++;
    }
    telex_http_call_cancel(call);
}

void telex_http_call_cancel(telex_http_call_t *call)
{
    if (call == NULL || call_cancelled(call))
        return;
    if (call->in_callback || call->processing) {
        if (call->sess != NULL)
            h2_call_detach(call, 1); /* RST_STREAM CANCEL now: nothing more is read for it */
        call_set_state(call, CALL_CANCELLED); /* freed when the callback returns */
        return;
    }
    call_free(call); /* from any state: freed now, nothing reported */
}
