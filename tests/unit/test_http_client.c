/*
 * test_http_client.c — the upstream HTTP/1.1 client against a scripted
 * server on the same uv loop: response framings (chunked with extensions and
 * trailers, Content-Length, read-until-close, 1xx heads, LF-only lines, one
 * byte per read), malformed responses, the request it writes, connection
 * reuse (a call cancelled at `data: [DONE]` leaves its connection; one
 * cancelled mid-body closes it; the idle limit; a server closing an idle
 * connection; one re-send when a reused connection dies unanswered), pause
 * and resume, no callback after a cancel, connect errors and timeouts, and
 * TLS with certificate and host name verification.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <uv.h>

#include <h2o/socket.h>

#include "upstream/http_client.h"

/* ------------------------------------------------------------ the server */

typedef struct {
    uv_tcp_t tcp;
    h2o_socket_t *tls; /* TLS connections: the h2o socket over tcp */
    char buf[8192];
    size_t len;
    int requests;
    /* one byte at a time */
    uv_timer_t drip;
    char *drip_text;
    size_t drip_len, drip_off;
} server_conn_t;

static uv_loop_t loop;
static uv_tcp_t listener;
static int port;
static int accepted;
static int closed_by_client; /* connections the client closed */
static char last_request[8192];
static SSL_CTX *server_tls; /* non-NULL: the listener speaks TLS */

static void on_conn_closed(uv_handle_t *h)
{
    server_conn_t *c = (server_conn_t *)h; /* tcp is the first member; h2o owns h->data on TLS connections */
    free(c->drip_text);
    free(c);
}

static void close_conn(server_conn_t *c)
{
    if (c->tls != NULL) {
        h2o_socket_t *s = c->tls;
        c->tls = NULL;
        h2o_socket_close(s);
    } else if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    }
    /* after the tcp: libuv finishes closes newest first, so the timer's ends before c is freed */
    if (c->drip.data == c && !uv_is_closing((uv_handle_t *)&c->drip))
        uv_close((uv_handle_t *)&c->drip, NULL);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void on_tls_written(h2o_socket_t *sock, const char *err)
{
    (void)err;
    server_conn_t *c = sock->data;
    free(c->drip_text);
    c->drip_text = NULL;
}

static void send_bytes(server_conn_t *c, const char *text, size_t n)
{
    if (c->tls != NULL) {
        free(c->drip_text);
        c->drip_text = malloc(n);
        memcpy(c->drip_text, text, n);
        h2o_iovec_t b = h2o_iovec_init(c->drip_text, n);
        h2o_socket_write(c->tls, &b, 1, on_tls_written);
        return;
    }
    uv_write_t *req = malloc(sizeof(*req) + n);
    char *copy = (char *)(req + 1);
    memcpy(copy, text, n);
    uv_buf_t b = uv_buf_init(copy, (unsigned)n);
    uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
}

static void send_text(server_conn_t *c, const char *text)
{
    send_bytes(c, text, strlen(text));
}

static void on_drip(uv_timer_t *t)
{
    server_conn_t *c = t->data;
    if (c->drip_off >= c->drip_len) {
        uv_timer_stop(t); /* closed with the connection; a reused one drips again */
        return;
    }
    send_bytes(c, c->drip_text + c->drip_off, 1);
    c->drip_off++;
}

static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
static const char event[] = "data: {\"x\":1}\n\n";
static const char done[] = "data: [DONE]\n\n";

static void whole_answer(char *out, size_t cap)
{
    snprintf(out, cap, "%s%zx\r\n%s\r\n%zx\r\n%s\r\n0\r\n\r\n", head, strlen(event), event, strlen(done), done);
}

/* Answers one complete request according to its path. */
static void answer(server_conn_t *c, const char *req, size_t req_len)
{
    char path[64] = "";
    sscanf(req, "%*s %63[^? ]", path);
    snprintf(last_request, sizeof last_request, "%.*s", (int)req_len, req);
    c->requests++;
    char out[1024];
    if (strcmp(path, "/whole") == 0) {
        whole_answer(out, sizeof out);
        send_text(c, out);
    } else if (strcmp(path, "/open") == 0) {
        snprintf(out, sizeof out, "%s%zx\r\n%s\r\n", head, strlen(event), event);
        send_text(c, out);
    } else if (strcmp(path, "/three") == 0) {
        /* (the extension ends the parser's run of chunks: event1 is
         * delivered alone, and a pause there holds the rest) */
        snprintf(out, sizeof out, "%s6\r\nevent1\r\n6;x=y\r\nevent2\r\n6\r\nevent3\r\n0\r\n\r\n", head);
        send_text(c, out);
    } else if (strcmp(path, "/length") == 0) {
        send_text(c, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 7\r\n"
                     "Content-Length: 11\r\n\r\n{\"error\":1}");
    } else if (strcmp(path, "/until-close") == 0) {
        send_text(c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it");
        close_conn(c);
    } else if (strcmp(path, "/early") == 0) {
        send_text(c, "HTTP/1.1 103 Early Hints\nLink: </x>\n\nHTTP/1.1 200 OK\ncontent-type: text/event-stream\n"
                     "transfer-encoding: gzip, chunked\n\n3;name=value\nabc\n0\nx-trailer: 1\n\n");
    } else if (strcmp(path, "/bytewise") == 0) {
        whole_answer(out, sizeof out);
        free(c->drip_text);
        c->drip_text = strdup(out);
        c->drip_len = strlen(out);
        c->drip_off = 0;
        if (c->drip.data != c) {
            uv_timer_init(&loop, &c->drip);
            c->drip.data = c;
        }
        uv_timer_start(&c->drip, on_drip, 1, 1);
    } else if (strcmp(path, "/badchunk") == 0) {
        snprintf(out, sizeof out, "%szz\r\n", head);
        send_text(c, out);
    } else if (strcmp(path, "/badstatus") == 0) {
        send_text(c, "HTTP/2 200\r\n\r\n");
    } else if (strcmp(path, "/bighead") == 0) {
        size_t n = 70000;
        char *big = malloc(n + 64);
        int k = snprintf(big, 64, "HTTP/1.1 200 OK\r\nX-Big: ");
        memset(big + k, 'a', n - (size_t)k);
        memcpy(big + n, "\r\n", 2);
        send_bytes(c, big, n + 2);
        free(big);
    } else if (strcmp(path, "/drop-reused") == 0) {
        if (c->requests > 1) { /* a reused connection: close it unanswered */
            close_conn(c);
            return;
        }
        whole_answer(out, sizeof out);
        send_text(c, out);
    } else if (strcmp(path, "/drop") == 0) {
        close_conn(c);
    } else if (strcmp(path, "/close-after") == 0) {
        send_text(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
    } else if (strcmp(path, "/echo") == 0) {
        snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", req_len);
        send_text(c, out);
        send_bytes(c, req, req_len);
    } else {
        send_text(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
}

/* Feeds bytes read; answers every complete request in c->buf. */
static void take_bytes(server_conn_t *c, const char *data, size_t n)
{
    if (c->len + n >= sizeof(c->buf))
        n = sizeof(c->buf) - c->len - 1;
    memcpy(c->buf + c->len, data, n);
    c->len += n;
    c->buf[c->len] = '\0';
    for (;;) {
        char *end = strstr(c->buf, "\r\n\r\n");
        if (end == NULL)
            return;
        const char *cl = strcasestr(c->buf, "content-length:");
        size_t body = cl != NULL && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
        size_t total = (size_t)(end + 4 - c->buf) + body;
        if (c->len < total)
            return;
        char req[8192];
        memcpy(req, c->buf, total);
        req[total] = '\0';
        memmove(c->buf, c->buf + total, c->len - total);
        c->len -= total;
        c->buf[c->len] = '\0';
        answer(c, req, total);
        if (uv_is_closing((uv_handle_t *)&c->tcp) || (server_tls != NULL && c->tls == NULL))
            return;
    }
}

static void srv_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = suggested;
}

static void srv_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    server_conn_t *c = s->data;
    if (n < 0) {
        closed_by_client++;
        close_conn(c);
    } else if (n > 0) {
        take_bytes(c, buf->base, (size_t)n);
    }
    free(buf->base);
}

static void tls_closed(uv_handle_t *h)
{
    on_conn_closed(h);
}

static void tls_read(h2o_socket_t *sock, const char *err)
{
    server_conn_t *c = sock->data;
    if (err != NULL) {
        closed_by_client++;
        close_conn(c);
        return;
    }
    take_bytes(c, sock->input->bytes, sock->input->size);
    if (c->tls != NULL)
        h2o_buffer_consume(&sock->input, sock->input->size);
}

static void tls_handshaken(h2o_socket_t *sock, const char *err)
{
    server_conn_t *c = sock->data;
    if (err != NULL) {
        close_conn(c);
        return;
    }
    h2o_socket_read_start(sock, tls_read);
    if (sock->input->size > 0) /* the request came with the handshake's last flight */
        tls_read(sock, NULL);
}

static void on_accept(uv_stream_t *l, int status)
{
    assert_int_equal(status, 0);
    server_conn_t *c = calloc(1, sizeof(*c));
    uv_tcp_init(&loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    uv_tcp_nodelay(&c->tcp, 1);
    accepted++;
    if (server_tls != NULL) {
        c->tls = h2o_uv_socket_create((uv_stream_t *)&c->tcp, tls_closed);
        c->tls->data = c;
        h2o_socket_ssl_handshake(c->tls, server_tls, NULL, tls_handshaken);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, srv_alloc, srv_read);
}

/* ------------------------------------------------------------ a client call */

typedef struct {
    telex_http_call_t *call;
    int responses, bodies, completes, after_cancel;
    long status;
    char content_type[128], retry_after[32];
    char body[4096];
    size_t body_len;
    char error[256];
    int timed_out;
    int cancelled;
    int cancel_at_done;  /* cancel once the body so far holds [DONE] */
    int drain_at_done;   /* telex_http_call_drain once the body so far holds [DONE] */
    int drain_at_first;  /* telex_http_call_drain at the first body bytes */
    int cancel_at_first; /* cancel at the first body bytes */
    int pause_at_first;  /* pause at the first body bytes */
    int finished;
} probe_t;

static void p_response(void *user, long status, const char *ct, const char *ra)
{
    probe_t *p = user;
    p->status = status;
    snprintf(p->content_type, sizeof p->content_type, "%s", ct);
    snprintf(p->retry_after, sizeof p->retry_after, "%s", ra);
    p->after_cancel += p->cancelled;
    p->responses++;
}

static void p_body(void *user, const char *data, size_t len)
{
    probe_t *p = user;
    p->after_cancel += p->cancelled;
    p->bodies++;
    if (p->body_len + len < sizeof(p->body)) {
        memcpy(p->body + p->body_len, data, len);
        p->body_len += len;
        p->body[p->body_len] = '\0';
    }
    if ((p->drain_at_done && strstr(p->body, "[DONE]") != NULL) || p->drain_at_first) {
        p->cancelled = 1;
        p->finished = 1;
        telex_http_call_drain(p->call);
    } else if ((p->cancel_at_done && strstr(p->body, "[DONE]") != NULL) || p->cancel_at_first) {
        p->cancelled = 1;
        p->finished = 1;
        telex_http_call_cancel(p->call);
    } else if (p->pause_at_first && p->bodies == 1) {
        telex_http_call_pause(p->call);
    }
}

static void p_complete(void *user, const char *error, int timed_out)
{
    probe_t *p = user;
    snprintf(p->error, sizeof p->error, "%s", error ? error : "");
    p->timed_out = timed_out;
    p->after_cancel += p->cancelled;
    p->completes++;
    p->finished = 1;
}

static const telex_http_call_handlers_t handlers = {p_response, p_body, p_complete};

static void start_url(telex_http_client_t *client, const char *url, probe_t *p, long connect_timeout_ms)
{
    static const char *const hdrs[] = {"Content-Type: application/json", "Authorization: Bearer k", NULL};
    telex_http_request_t req = {
        .url = url, .headers = hdrs, .body = "{}", .body_len = 2, .connect_timeout_ms = connect_timeout_ms};
    p->call = telex_http_call_start(client, &req, &handlers, p);
    assert_non_null(p->call);
}

static void start_call(telex_http_client_t *client, const char *path, probe_t *p)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    start_url(client, url, p, 2000);
}

/* Runs the loop one iteration at a time until cond holds, at most
 * RUN_UNTIL_MOST iterations (each waits for an event, so a condition that
 * never comes true ends in the assert after it, not a hang); evaluates to
 * cond. */
#define RUN_UNTIL_MOST 5000
#define run_until(cond)                                                                                                \
    ({                                                                                                                 \
        for (int run_i_ = 0; run_i_ < RUN_UNTIL_MOST && !(cond); run_i_++)                                             \
            uv_run(&loop, UV_RUN_ONCE);                                                                                \
        (cond);                                                                                                        \
    })

static void settle(void)
{
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
}

static void wait_for(probe_t *p)
{
    assert_true(run_until(p->finished));
    settle();
}

static void run_call(telex_http_client_t *client, const char *path, probe_t *p)
{
    start_call(client, path, p);
    wait_for(p);
}

static int listen_on_loopback(uv_tcp_t *l, int backlog, uv_connection_cb cb)
{
    uv_tcp_init(&loop, l);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(l, (struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)l, backlog, cb), 0);
    struct sockaddr_in bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(l, (struct sockaddr *)&bound, &len);
    return ntohs(bound.sin_port);
}

static int setup(void **state)
{
    (void)state;
    uv_loop_init(&loop);
    port = listen_on_loopback(&listener, 64, on_accept);
    accepted = 0;
    closed_by_client = 0;
    last_request[0] = '\0';
    return 0;
}

/* The server's handles: the listener and the connections (their data is
 * the server_conn_t); the client's own handles are closed by the client. */
static void close_server(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    if (h == (uv_handle_t *)&listener) {
        uv_close(h, NULL);
    } else if (h->type == UV_TCP && h->data != NULL && h == (uv_handle_t *)&((server_conn_t *)h->data)->tcp) {
        close_conn(h->data);
    }
}

static int teardown(void **state)
{
    (void)state;
    uv_walk(&loop, close_server, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

/* ------------------------------------------------------------ framing */

static void test_chunked_event_stream(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    probe_t p = {0};
    run_call(client, "/whole", &p);
    assert_int_equal(p.status, 200);
    assert_string_equal(p.content_type, "text/event-stream");
    assert_string_equal(p.body, "data: {\"x\":1}\n\ndata: [DONE]\n\n");
    assert_int_equal(p.completes, 1);
    assert_string_equal(p.error, "");
    telex_http_client_free(client);
}

static void test_one_byte_per_read(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    probe_t p = {0};
    run_call(client, "/bytewise", &p);
    assert_string_equal(p.body, "data: {\"x\":1}\n\ndata: [DONE]\n\n");
    assert_int_equal(p.completes, 1);
    assert_string_equal(p.error, "");
    /* the connection ended cleanly, so it is reused */
    probe_t q = {0};
    run_call(client, "/whole", &q);
    assert_int_equal(accepted, 1);
    telex_http_client_free(client);
}

static void test_content_length_and_headers(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    probe_t p = {0};
    run_call(client, "/length", &p);
    assert_int_equal(p.status, 429);
    assert_string_equal(p.content_type, "application/json");
    assert_string_equal(p.retry_after, "7");
    assert_string_equal(p.body, "{\"error\":1}");
    assert_int_equal(p.completes, 1);
    probe_t q = {0};
    run_call(client, "/whole", &q);
    assert_int_equal(accepted, 1);
    telex_http_client_free(client);
}

static void test_body_until_close(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    probe_t p = {0};
    run_call(client, "/until-close", &p);
    assert_int_equal(p.status, 200);
    assert_string_equal(p.body, "all of it");
    assert_string_equal(p.error, "");
    assert_int_equal(p.completes, 1);
    telex_http_client_stats_t st;
    telex_http_client_get_stats(client, &st);
    assert_int_equal(st.idle, 0);
    telex_http_client_free(client);
}

static void test_early_hints_lf_lines_extensions_trailers(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    probe_t p = {0};
    run_call(client, "/early", &p);
    assert_int_equal(p.responses, 1);
    assert_int_equal(p.status, 200);
    assert_string_equal(p.content_type, "text/event-stream");
    assert_string_equal(p.body, "abc");
    assert_string_equal(p.error, "");
    telex_http_client_free(client);
}

static void expect_error(const char *path, const char *fragment)
{
    telex_http_client_t *client = telex_http_client_new(&loop);
    probe_t p = {0};
    run_call(client, path, &p);
    assert_int_equal(p.completes, 1);
    if (strstr(p.error, fragment) == NULL)
        fail_msg("%s: error '%s' lacks '%s'", path, p.error, fragment);
    assert_int_equal(p.timed_out, 0);
    telex_http_client_free(client);
}

static void test_malformed_responses(void **state)
{
    (void)state;
    expect_error("/badchunk", "malformed chunked body");
    expect_error("/badstatus", "HTTP/1.x status line");
    expect_error("/bighead", "larger than 64 KiB");
    expect_error("/drop", "without answering");
}

static void test_request_as_written(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    probe_t p = {0};
    run_call(client, "/echo?q=1", &p);
    char expect[512];
    snprintf(expect, sizeof expect,
             "POST /echo?q=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
             "Authorization: Bearer k\r\nContent-Length: 2\r\n\r\n{}",
             port);
    assert_string_equal(p.body, expect);
    telex_http_client_free(client);
}

/* Headers the client writes itself are dropped from the caller's (any case);
 * a body's length written in full; a request without a body is a GET. */
static void test_request_headers_as_written(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    static const char *const hdrs[] = {"HOST: evil", "content-length: 1", "Connection: close", "transfer-Encoding: x",
                                       "Content-Type: text/plain", "Hostname: kept", "Connectionless: kept",
                                       "TE: trailers", "X-Empty:", NULL};
    char body[1234];
    memset(body, 'b', sizeof body);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", port);
    probe_t p = {0};
    telex_http_request_t req = {.url = url, .headers = hdrs, .body = body, .body_len = sizeof body};
    p.call = telex_http_call_start(client, &req, &handlers, &p);
    assert_non_null(p.call);
    wait_for(&p);
    char expect[2048];
    int n = snprintf(expect, sizeof expect,
                     "POST /echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: text/plain\r\nHostname: kept\r\n"
                     "Connectionless: kept\r\nTE: trailers\r\nX-Empty:\r\nContent-Length: 1234\r\n\r\n",
                     port);
    assert_int_equal(strlen(p.body), (size_t)n + sizeof body);
    assert_memory_equal(p.body, expect, (size_t)n);
    telex_http_request_t get = {.url = url, .headers = hdrs + 4};
    probe_t q = {0};
    q.call = telex_http_call_start(client, &get, &handlers, &q);
    assert_non_null(q.call);
    wait_for(&q);
    snprintf(expect, sizeof expect,
             "GET /echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: text/plain\r\nHostname: kept\r\n"
             "Connectionless: kept\r\nTE: trailers\r\nX-Empty:\r\n\r\n",
             port);
    assert_string_equal(q.body, expect);
    telex_http_client_free(client);
}

static void test_requests_that_cannot_be_sent(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    probe_t p = {0};
    static const char *const bad_header[] = {"X-A: 1\r\nX-Injected: 2", NULL};
    telex_http_request_t req = {.url = "http://127.0.0.1:1/", .headers = bad_header, .body = "{}", .body_len = 2};
    assert_null(telex_http_call_start(client, &req, &handlers, &p));
    telex_http_request_t ftp = {.url = "ftp://127.0.0.1/x"};
    assert_null(telex_http_call_start(client, &ftp, &handlers, &p));
    telex_http_request_t junk = {.url = "not a url"};
    assert_null(telex_http_call_start(client, &junk, &handlers, &p));
    telex_http_client_free(client);
}

/* ------------------------------------------------------------ reuse */

static void test_cancel_at_done_keeps_the_connection(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    for (int i = 0; i < 3; i++) {
        probe_t p = {.cancel_at_done = 1};
        run_call(client, "/whole", &p);
        assert_int_equal(p.responses, 1);
        assert_true(p.bodies >= 1);
        assert_int_equal(p.completes, 0); /* cancelled: no on_complete */
        assert_int_equal(p.after_cancel, 0);
    }
    assert_int_equal(accepted, 1); /* three answers, one connection */
    telex_http_client_stats_t st;
    telex_http_client_get_stats(client, &st);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.reuses, 2);
    telex_http_client_free(client);
}

static void test_cancel_before_the_end_closes_the_connection(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    probe_t p = {.cancel_at_first = 1};
    run_call(client, "/open", &p); /* the body never ends: must not be reused */
    assert_int_equal(p.bodies, 1);
    assert_int_equal(p.completes, 0);
    assert_int_equal(p.after_cancel, 0);
    probe_t q = {.cancel_at_done = 1};
    run_call(client, "/whole", &q);
    assert_int_equal(q.after_cancel, 0);
    assert_int_equal(accepted, 2);
    settle();
    assert_int_equal(closed_by_client, 1);
    telex_http_client_free(client);
}

/* [DONE] comes in one read and the terminating chunk in later ones (the
 * server drips a byte per ms): a cancel closes the connection, a drain reads
 * the end of the response and keeps it. */
static void test_drain_at_done_keeps_the_connection_when_the_end_comes_later(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    for (int i = 0; i < 3; i++) {
        probe_t p = {.drain_at_done = 1};
        run_call(client, "/bytewise", &p);
        assert_int_equal(p.completes, 0);
        assert_int_equal(p.after_cancel, 0);
        /* the rest of the framing ("\r\n0\r\n\r\n") drips in over a few ms */
        telex_http_client_stats_t st;
        run_until((telex_http_client_get_stats(client, &st), st.idle == 1));
        assert_int_equal(st.idle, 1);
    }
    telex_http_client_stats_t st;
    telex_http_client_get_stats(client, &st);
    assert_int_equal(accepted, 1);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.reuses, 2);
    assert_int_equal(st.drained, 3);
    assert_int_equal(closed_by_client, 0);
    /* a cancel at the same point closes instead */
    probe_t q = {.cancel_at_done = 1};
    run_call(client, "/bytewise", &q);
    settle();
    assert_int_equal(closed_by_client, 1);
    telex_http_client_free(client);
}

/* A drained response that never ends is closed after TELEX_HTTP_DRAIN_MS. */
static void test_drain_gives_up_on_a_response_that_does_not_end(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    probe_t p = {0};
    start_call(client, "/open", &p);
    run_until(p.bodies > 0);
    assert_int_equal(p.bodies, 1);
    uint64_t t0 = uv_now(&loop);
    p.cancelled = 1;
    telex_http_call_drain(p.call); /* outside a callback: a cancel */
    settle();
    assert_int_equal(closed_by_client, 1);
    probe_t q = {.drain_at_first = 1};
    start_call(client, "/open", &q);
    run_until(closed_by_client >= 2);
    assert_int_equal(closed_by_client, 2);
    assert_true(uv_now(&loop) - t0 >= TELEX_HTTP_DRAIN_MS);
    assert_int_equal(q.after_cancel + q.completes, 0);
    telex_http_client_stats_t st;
    telex_http_client_get_stats(client, &st);
    assert_int_equal(st.drained, 0);
    assert_int_equal(st.idle, 0);
    telex_http_client_free(client);
}

static void test_cancel_outside_callbacks(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    probe_t p = {0};
    start_call(client, "/open", &p);
    run_until(p.bodies > 0);
    assert_int_equal(p.bodies, 1);
    p.cancelled = 1;
    telex_http_call_cancel(p.call);
    settle();
    assert_int_equal(p.after_cancel, 0);
    assert_int_equal(closed_by_client, 1);
    /* cancelled before it even connected */
    probe_t q = {0};
    start_call(client, "/whole", &q);
    q.cancelled = 1;
    telex_http_call_cancel(q.call);
    settle();
    assert_int_equal(q.after_cancel + q.responses + q.completes, 0);
    telex_http_client_free(client);
}

static void test_idle_limit(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    telex_http_client_set_idle_limit(client, 0);
    for (int i = 0; i < 3; i++) {
        probe_t p = {0};
        run_call(client, "/whole", &p);
        assert_int_equal(p.completes, 1);
    }
    assert_int_equal(accepted, 3);
    settle();
    assert_int_equal(closed_by_client, 3);
    telex_http_client_free(client);
}

/* An origin with more calls in flight than the idle limit keeps as many
 * connections as it has calls (they are about to be needed again). */
static void test_idle_limit_follows_the_calls_in_flight(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    telex_http_client_set_idle_limit(client, 1);
    probe_t p[3] = {{0}};
    for (int i = 0; i < 3; i++)
        start_call(client, "/whole", &p[i]);
    for (int i = 0; i < 3; i++)
        wait_for(&p[i]);
    assert_int_equal(accepted, 3);
    telex_http_client_stats_t st;
    telex_http_client_get_stats(client, &st);
    /* the first two ended with 3 and 2 calls live: kept; the last with 1 and 2 idle: closed */
    assert_int_equal(st.idle, 2);
    assert_int_equal(closed_by_client, 1);
    telex_http_client_free(client);
}

static void test_connection_close_is_honoured(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    probe_t p = {0};
    run_call(client, "/close-after", &p);
    assert_string_equal(p.body, "ok");
    probe_t q = {0};
    run_call(client, "/whole", &q);
    assert_int_equal(accepted, 2);
    telex_http_client_free(client);
}

static void test_idle_connection_closed_by_the_server_is_dropped(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    probe_t p = {0};
    run_call(client, "/whole", &p);
    /* the server closes its side of the idle connection */
    uv_walk(&loop, close_server, NULL); /* also closes the listener: reopen it */
    settle();
    telex_http_client_stats_t st;
    telex_http_client_get_stats(client, &st);
    assert_int_equal(st.idle, 0);
    port = listen_on_loopback(&listener, 64, on_accept);
    probe_t q = {0};
    run_call(client, "/whole", &q);
    assert_int_equal(q.completes, 1);
    assert_string_equal(q.error, "");
    telex_http_client_get_stats(client, &st);
    assert_int_equal(st.retries, 0);
    telex_http_client_free(client);
}

static void test_reused_connection_dying_unanswered_is_retried_once(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    probe_t p = {0};
    run_call(client, "/drop-reused", &p); /* first request on the connection: answered */
    assert_int_equal(p.completes, 1);
    probe_t q = {0};
    run_call(client, "/drop-reused", &q); /* reused: dropped, sent again on a new connection */
    assert_int_equal(q.completes, 1);
    assert_string_equal(q.error, "");
    assert_string_equal(q.body, "data: {\"x\":1}\n\ndata: [DONE]\n\n");
    telex_http_client_stats_t st;
    telex_http_client_get_stats(client, &st);
    assert_int_equal(st.retries, 1);
    assert_int_equal(accepted, 2);
    telex_http_client_free(client);
    /* a fresh connection that dies unanswered is not retried */
    client = telex_http_client_new(&loop);
    probe_t r = {0};
    run_call(client, "/drop", &r);
    assert_true(strstr(r.error, "without answering") != NULL);
    telex_http_client_get_stats(client, &st);
    assert_int_equal(st.retries, 0);
    telex_http_client_free(client);
}

/* ------------------------------------------------------------ back-pressure */

static void test_pause_holds_the_rest_until_resume(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    probe_t p = {.pause_at_first = 1};
    start_call(client, "/three", &p);
    run_until(p.bodies > 0);
    settle();
    assert_int_equal(p.bodies, 1);
    assert_string_equal(p.body, "event1");
    assert_int_equal(p.completes, 0);
    telex_http_call_resume(p.call); /* what waited is delivered at once */
    assert_string_equal(p.body, "event1event2event3");
    wait_for(&p);
    assert_int_equal(p.completes, 1);
    telex_http_client_free(client);
}

/* ------------------------------------------------------------ connecting */

static void test_connection_refused(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    uv_tcp_t spare;
    int spare_port = listen_on_loopback(&spare, 1, on_accept);
    uv_close((uv_handle_t *)&spare, NULL); /* a port nobody listens on now */
    settle();
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", spare_port);
    probe_t p = {0};
    start_url(client, url, &p, 2000);
    wait_for(&p);
    assert_true(strstr(p.error, "cannot connect") != NULL);
    assert_int_equal(p.timed_out, 0);
    telex_http_client_free(client);
}

static void on_never_accept(uv_stream_t *l, int status)
{
    (void)l;
    (void)status;
}

static void test_connect_timeout(void **state)
{
    (void)state;
    /* a listener whose accept queue is full: further SYNs are dropped */
    uv_tcp_t full;
    int full_port = listen_on_loopback(&full, 0, on_never_accept);
    int fds[8];
    for (int i = 0; i < 8; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in a;
        uv_ip4_addr("127.0.0.1", full_port, &a);
        connect(fds[i], (struct sockaddr *)&a, sizeof a);
    }
    telex_http_client_t *client = telex_http_client_new(&loop);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", full_port);
    probe_t p = {0};
    start_url(client, url, &p, 200);
    wait_for(&p);
    for (int i = 0; i < 8; i++)
        close(fds[i]);
    uv_close((uv_handle_t *)&full, NULL);
    if (!p.timed_out)
        skip(); /* this kernel accepted anyway; nothing to learn */
    assert_true(strstr(p.error, "timed out after 200 ms") != NULL);
    telex_http_client_free(client);
}

static void test_name_resolution(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    char url[64];
    snprintf(url, sizeof url, "http://localhost:%d/whole", port); /* ::1 first, perhaps: then 127.0.0.1 */
    probe_t p = {0};
    start_url(client, url, &p, 2000);
    wait_for(&p);
    assert_string_equal(p.error, "");
    assert_int_equal(p.completes, 1);
    probe_t q = {0};
    start_url(client, "http://no-such-host.invalid/", &q, 2000);
    wait_for(&q);
    assert_true(strstr(q.error, "cannot resolve no-such-host.invalid") != NULL);
    telex_http_client_free(client);
}

/* ------------------------------------------------------------ TLS */

static char cert_path[64];

/* A self-signed certificate for `name`, written to cert_path; the key and
 * certificate go into the server's context. */
static SSL_CTX *make_server_tls(const char *name)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    char san[128];
    snprintf(san, sizeof san, "DNS:%s", name);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    snprintf(cert_path, sizeof cert_path, "/tmp/telex-test-cert-%d.pem", (int)getpid());
    FILE *f = fopen(cert_path, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
    X509_free(x);
    EVP_PKEY_free(key);
    return ctx;
}

static void tls_round(const char *cert_name, int trust, const char *expect_error)
{
    server_tls = make_server_tls(cert_name);
    if (trust)
        setenv("SSL_CERT_FILE", cert_path, 1);
    else
        unsetenv("SSL_CERT_FILE");
    telex_http_client_t *client = telex_http_client_new(&loop); /* reads the trust store at its first https call */
    char url[64];
    snprintf(url, sizeof url, "https://localhost:%d/whole", port);
    for (int i = 0; i < (expect_error ? 1 : 2); i++) {
        probe_t p = {0};
        start_url(client, url, &p, 2000);
        wait_for(&p);
        if (expect_error == NULL) {
            assert_string_equal(p.error, "");
            assert_string_equal(p.body, "data: {\"x\":1}\n\ndata: [DONE]\n\n");
        } else if (strstr(p.error, expect_error) == NULL) {
            fail_msg("TLS error '%s' lacks '%s'", p.error, expect_error);
        }
    }
    if (expect_error == NULL)
        assert_int_equal(accepted, 1); /* the TLS connection was reused */
    telex_http_client_free(client);
    settle();
    unsetenv("SSL_CERT_FILE");
    unlink(cert_path);
    SSL_CTX_free(server_tls);
    server_tls = NULL;
}

static void test_tls_verified(void **state)
{
    (void)state;
    tls_round("localhost", 1, NULL);
}

static void test_tls_untrusted_certificate(void **state)
{
    (void)state;
    tls_round("localhost", 0, "TLS handshake with localhost");
}

static void test_tls_wrong_host_name(void **state)
{
    (void)state;
    tls_round("example.test", 1, "TLS handshake with localhost");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chunked_event_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_byte_per_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_length_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_until_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_early_hints_lf_lines_extensions_trailers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_responses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_as_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_headers_as_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_that_cannot_be_sent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_at_done_keeps_the_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_before_the_end_closes_the_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_at_done_keeps_the_connection_when_the_end_comes_later, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_drain_gives_up_on_a_response_that_does_not_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_outside_callbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_limit_follows_the_calls_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_close_is_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_connection_closed_by_the_server_is_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reused_connection_dying_unanswered_is_retried_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_holds_the_rest_until_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_resolution, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_verified, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_untrusted_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_wrong_host_name, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
