/*
 * test_http_client.c — upstream connections: a call cancelled from its own
 * body callback once the answer is complete (what the relay does at
 * `data: [DONE]`) leaves its connection to the next call; a call cancelled
 * before its response is complete closes its connection; no callback runs
 * after a cancel; above the reuse limit (calls in flight), new calls open
 * fresh connections.
 *
 * A tiny HTTP/1.1 server on the same uv loop counts accepted connections and
 * answers every request with a chunked event stream. "/whole" sends the
 * answer and the terminating chunk in one write; "/open" sends the first
 * event and then nothing (the body stays open).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <uv.h>

#include "upstream/http_client.h"

/* ------------------------------------------------------------ the server */

typedef struct {
    uv_tcp_t tcp;
    char buf[4096];
    size_t len;
} server_conn_t;

static uv_loop_t loop;
static uv_tcp_t listener;
static int port;
static int accepted;
static int closed_by_client; /* connections the client closed */

static void on_conn_closed(uv_handle_t *h)
{
    free(h);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void send_text(server_conn_t *c, const char *text)
{
    uv_write_t *req = malloc(sizeof(*req) + strlen(text));
    char *copy = (char *)(req + 1);
    memcpy(copy, text, strlen(text));
    uv_buf_t b = uv_buf_init(copy, (unsigned)strlen(text));
    uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
}

static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
static const char event[] = "data: {\"x\":1}\n\n";
static const char done[] = "data: [DONE]\n\n";

static void srv_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    server_conn_t *c = h->data;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - c->len - 1));
}

static void srv_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    server_conn_t *c = s->data;
    if (n < 0) {
        closed_by_client++;
        uv_close((uv_handle_t *)s, on_conn_closed);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    /* one request: headers, then a Content-Length body */
    char *end = strstr(c->buf, "\r\n\r\n");
    if (end == NULL)
        return;
    const char *cl = strcasestr(c->buf, "content-length:");
    size_t body = cl != NULL ? strtoul(cl + 15, NULL, 10) : 0;
    size_t total = (size_t)(end + 4 - c->buf) + body;
    if (c->len < total)
        return;
    int whole = strncmp(c->buf, "POST /whole", 11) == 0;
    memmove(c->buf, c->buf + total, c->len - total);
    c->len -= total;
    char answer[512];
    if (whole)
        snprintf(answer, sizeof answer, "%s%zx\r\n%s\r\n%zx\r\n%s\r\n0\r\n\r\n", head, strlen(event), event,
                 strlen(done), done);
    else
        snprintf(answer, sizeof answer, "%s%zx\r\n%s\r\n", head, strlen(event), event);
    send_text(c, answer);
}

static void on_accept(uv_stream_t *l, int status)
{
    assert_int_equal(status, 0);
    server_conn_t *c = calloc(1, sizeof(*c));
    uv_tcp_init(&loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    accepted++;
    uv_read_start((uv_stream_t *)&c->tcp, srv_alloc, srv_read);
}

/* ------------------------------------------------------------ a client call */

typedef struct {
    telex_http_call_t *call;
    int responses, bodies, completes, after_cancel;
    int cancelled;
    int cancel_at_done; /* cancel when the body holds [DONE] */
    int cancel_at_first; /* cancel at the first body bytes */
    int finished;
} probe_t;

static void p_response(void *user, long status, const char *ct, const char *ra)
{
    (void)ct;
    (void)ra;
    probe_t *p = user;
    assert_int_equal(status, 200);
    p->after_cancel += p->cancelled;
    p->responses++;
}

static void p_body(void *user, const char *data, size_t len)
{
    probe_t *p = user;
    p->after_cancel += p->cancelled;
    p->bodies++;
    if ((p->cancel_at_done && memmem(data, len, "[DONE]", 6) != NULL) || p->cancel_at_first) {
        p->cancelled = 1;
        p->finished = 1;
        telex_http_call_cancel(p->call);
    }
}

static void p_complete(void *user, const char *error, int timed_out)
{
    (void)error;
    (void)timed_out;
    probe_t *p = user;
    p->after_cancel += p->cancelled;
    p->completes++;
    p->finished = 1;
}

static const telex_http_call_handlers_t handlers = {p_response, p_body, p_complete};

static void start_call(telex_http_client_t *client, const char *path, probe_t *p)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    telex_http_request_t req = {.url = url, .body = "{}", .body_len = 2, .connect_timeout_ms = 2000};
    p->call = telex_http_call_start(client, &req, &handlers, p);
    assert_non_null(p->call);
}

static void run_call(telex_http_client_t *client, const char *path, probe_t *p)
{
    start_call(client, path, p);
    for (int i = 0; i < 2000 && !p->finished; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(p->finished);
    /* let curl and the server settle (closes, frees) */
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
}

static int setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    uv_loop_init(&loop);
    uv_tcp_init(&loop, &listener);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(&listener, (struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&listener, 64, on_accept), 0);
    struct sockaddr_in bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&listener, (struct sockaddr *)&bound, &len);
    port = ntohs(bound.sin_port);
    accepted = 0;
    closed_by_client = 0;
    return 0;
}

/* The server's handles: the listener and the connections (their data is
 * the server_conn_t); the client's own handles are closed by the client. */
static void close_server(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    if (h == (uv_handle_t *)&listener)
        uv_close(h, NULL);
    else if (h->type == UV_TCP && h->data != NULL && h == (uv_handle_t *)&((server_conn_t *)h->data)->tcp)
        uv_close(h, on_conn_closed);
}

static int teardown(void **state)
{
    (void)state;
    uv_walk(&loop, close_server, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}

/* ------------------------------------------------------------ tests */

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
    telex_http_client_free(client);
}

static void test_completed_calls_reuse_the_connection(void **state)
{
    (void)state;
    telex_http_client_t *client = telex_http_client_new(&loop);
    for (int i = 0; i < 2; i++) {
        probe_t p = {0};
        run_call(client, "/whole", &p);
        assert_int_equal(p.completes, 1);
    }
    assert_int_equal(accepted, 1);
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
    telex_http_client_free(client);
}

/* One call stays open while others come and go. */
static void reuse_with_one_open_call(size_t limit, int expect_accepted, int expect_closed)
{
    telex_http_client_t *client = telex_http_client_new(&loop);
    telex_http_client_set_reuse_limit(client, limit);
    probe_t open = {0};
    start_call(client, "/open", &open);
    for (int i = 0; i < 200 && open.bodies == 0; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(open.bodies, 1);
    for (int i = 0; i < 3; i++) {
        probe_t p = {.cancel_at_done = 1};
        run_call(client, "/whole", &p);
        assert_int_equal(p.after_cancel, 0);
    }
    assert_int_equal(accepted, expect_accepted);
    for (int i = 0; i < 50; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(closed_by_client, expect_closed);
    telex_http_call_cancel(open.call);
    telex_http_client_free(client);
}

static void test_below_the_reuse_limit_calls_reuse(void **state)
{
    (void)state;
    reuse_with_one_open_call(TELEX_HTTP_REUSE_LIMIT, 2, 0); /* the open call's, and one for the other three */
}

static void test_above_the_reuse_limit_calls_connect_afresh(void **state)
{
    (void)state;
    /* one call always in flight: every other call connects, and closes its connection when done */
    reuse_with_one_open_call(1, 4, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cancel_at_done_keeps_the_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_completed_calls_reuse_the_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_before_the_end_closes_the_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_below_the_reuse_limit_calls_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_above_the_reuse_limit_calls_connect_afresh, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
