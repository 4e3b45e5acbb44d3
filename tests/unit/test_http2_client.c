/*
 * test_http2_client.c — the upstream client's HTTP/2 (http2_session.c)
 * against an HTTP/2 server built on libnghttp2 in this process, on the same
 * uv loop, over real loopback sockets (h2c, prior knowledge): streams
 * multiplexed on one connection, RST_STREAM on cancel with the connection
 * kept, per-stream flow control with a paused reader (the other stream runs
 * on, the paused one stops at its window and resumes in order), GOAWAY mid-
 * stream (streams at or below its last id end normally, those above are sent
 * again on a new connection), a connection lost mid-stream (only unfinished
 * streams fail; a stream on a reused idle session that the server drops
 * unanswered is sent again), a server allowing 2 streams (more connections, never more
 * streams than allowed), one lowering its limit mid-connection, a server that
 * does not speak HTTP/2, and the request's header fields (POST with a body, GET without).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>
#include <uv.h>

#include "upstream/http_client.h"

/* ------------------------------------------------------------ the server */

#define MAX_STREAMS 64

typedef struct sstream {
    int32_t id;
    char path[64];
    char auth[64];
    char method[8];
    int content_length; /* a content-length field came */
    char body[256];
    size_t body_len;
    char *out; /* response body queued, not yet taken by nghttp2 */
    size_t out_len, out_off;
    int end; /* end the stream once out is sent */
    int responded;
    int deferred;
    uint32_t closed_code;
    int closed;
} sstream_t;

typedef struct sconn {
    uv_tcp_t tcp;
    nghttp2_session *ng;
    int index; /* in accept order */
    int open_streams, max_open;
    int closing;
} sconn_t;

static uv_loop_t loop;
static uv_tcp_t listener;
static int port;
static int accepted;
static sconn_t *conns[16];
static sstream_t streams[MAX_STREAMS];
static int n_streams;
static uint32_t server_max_streams; /* 0: no limit sent */
static int close_on_request;        /* the next request's connection is closed unanswered */
static int answer_at_once;          /* respond with the whole "/whole" answer as soon as a request is in */
static int raw_http1;               /* the listener answers like an HTTP/1.1 server */

static void on_srv_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void srv_flush(sconn_t *c)
{
    if (c->closing)
        return;
    const uint8_t *data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(c->ng, &data)) > 0) {
        uv_write_t *req = malloc(sizeof(*req) + (size_t)n);
        memcpy(req + 1, data, (size_t)n);
        uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned)n);
        uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_srv_written);
    }
}

static ssize_t srv_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                        nghttp2_data_source *src, void *user)
{
    (void)ng;
    (void)id;
    (void)user;
    sstream_t *s = src->ptr;
    size_t left = s->out_len - s->out_off;
    if (left == 0) {
        if (s->end) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        }
        s->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = left < length ? left : length;
    memcpy(buf, s->out + s->out_off, n);
    s->out_off += n;
    if (s->out_off == s->out_len && s->end)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static sconn_t *conn_of_stream(const sstream_t *s);
static void srv_close(sconn_t *c);

/* Queues body bytes on a stream (the head goes out with the first); end: the last. */
static void srv_send(sstream_t *s, const char *text, size_t len, int end)
{
    sconn_t *c = conn_of_stream(s);
    s->out = realloc(s->out, s->out_len + len + 1);
    memcpy(s->out + s->out_len, text, len);
    s->out_len += len;
    s->end = end;
    if (!s->responded) {
        s->responded = 1;
        nghttp2_nv hdrs[] = {
            {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)"content-type", (uint8_t *)"text/event-stream", 12, 17, NGHTTP2_NV_FLAG_NONE},
        };
        nghttp2_data_provider dp = {.source.ptr = s, .read_callback = srv_read};
        assert_int_equal(nghttp2_submit_response(c->ng, s->id, hdrs, 2, &dp), 0);
    } else if (s->deferred) {
        s->deferred = 0;
        nghttp2_session_resume_data(c->ng, s->id);
    }
    srv_flush(c);
}

static void srv_send_text(sstream_t *s, const char *text, int end)
{
    srv_send(s, text, strlen(text), end);
}

static sconn_t *stream_conn[MAX_STREAMS];

static sconn_t *conn_of_stream(const sstream_t *s)
{
    return stream_conn[s - streams];
}

static int srv_on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    sconn_t *c = user;
    if (f->hd.type != NGHTTP2_HEADERS || n_streams >= MAX_STREAMS)
        return 0;
    if (close_on_request) {
        close_on_request = 0;
        srv_close(c); /* like a server closing an idle connection as the request arrives */
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    sstream_t *s = &streams[n_streams];
    memset(s, 0, sizeof(*s));
    s->id = f->hd.stream_id;
    stream_conn[n_streams] = c;
    n_streams++;
    nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, s);
    if (++c->open_streams > c->max_open)
        c->max_open = c->open_streams;
    return 0;
}

static int srv_on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                         const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
    (void)flags;
    (void)user;
    sstream_t *s = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (s == NULL)
        return 0;
    if (namelen == 5 && memcmp(name, ":path", 5) == 0)
        snprintf(s->path, sizeof(s->path), "%.*s", (int)valuelen, value);
    if (namelen == 13 && memcmp(name, "authorization", 13) == 0)
        snprintf(s->auth, sizeof(s->auth), "%.*s", (int)valuelen, value);
    if (namelen == 7 && memcmp(name, ":method", 7) == 0)
        snprintf(s->method, sizeof(s->method), "%.*s", (int)valuelen, value);
    if (namelen == 14 && memcmp(name, "content-length", 14) == 0)
        s->content_length = 1;
    return 0;
}

static int srv_on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
    (void)flags;
    (void)user;
    sstream_t *s = nghttp2_session_get_stream_user_data(ng, id);
    if (s != NULL && s->body_len + len < sizeof(s->body)) {
        memcpy(s->body + s->body_len, data, len);
        s->body_len += len;
    }
    return 0;
}

static int srv_on_frame(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    (void)user;
    sstream_t *s = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (s != NULL && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) && answer_at_once && strcmp(s->path, "/whole") == 0)
        srv_send_text(s, "data: {\"x\":1}\n\ndata: [DONE]\n\n", 1);
    return 0;
}

static int srv_on_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    sconn_t *c = user;
    sstream_t *s = nghttp2_session_get_stream_user_data(ng, id);
    c->open_streams--;
    if (s != NULL) {
        s->closed = 1;
        s->closed_code = code;
    }
    return 0;
}

static void srv_on_closed(uv_handle_t *h)
{
    sconn_t *c = (sconn_t *)h;
    if (c->ng != NULL)
        nghttp2_session_del(c->ng);
    for (int i = 0; i < accepted && i < 16; i++)
        if (conns[i] == c)
            conns[i] = NULL;
    free(c);
}

static void srv_close(sconn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, srv_on_closed);
}

static void srv_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(size);
    buf->len = size;
}

static void srv_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    sconn_t *c = (sconn_t *)st;
    if (n < 0) {
        free(buf->base);
        srv_close(c);
        return;
    }
    if (raw_http1 && n > 0) {
        static const char reply[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        uv_write_t *req = malloc(sizeof(*req));
        uv_buf_t b = uv_buf_init((char *)reply, sizeof(reply) - 1);
        uv_write(req, st, &b, 1, on_srv_written);
        free(buf->base);
        srv_close(c);
        return;
    }
    if (n > 0 && c->ng != NULL) {
        ssize_t rv = nghttp2_session_mem_recv(c->ng, (const uint8_t *)buf->base, (size_t)n);
        if (rv < 0)
            srv_close(c);
        else
            srv_flush(c);
    }
    free(buf->base);
}

static void srv_on_connection(uv_stream_t *server, int status)
{
    assert_int_equal(status, 0);
    sconn_t *c = calloc(1, sizeof(*c));
    uv_tcp_init(&loop, &c->tcp);
    assert_int_equal(uv_accept(server, (uv_stream_t *)&c->tcp), 0);
    c->index = accepted;
    if (accepted < 16)
        conns[accepted] = c;
    accepted++;
    if (!raw_http1) {
        nghttp2_session_callbacks *cbs;
        nghttp2_session_callbacks_new(&cbs);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, srv_on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cbs, srv_on_header);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, srv_on_data);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, srv_on_frame);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, srv_on_close);
        nghttp2_session_server_new(&c->ng, cbs, c);
        nghttp2_session_callbacks_del(cbs);
        nghttp2_settings_entry iv[1] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, server_max_streams}};
        nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, server_max_streams ? 1 : 0);
        srv_flush(c);
    }
    uv_read_start((uv_stream_t *)&c->tcp, srv_alloc, srv_on_read);
}

/* ------------------------------------------------------------ the client side */

typedef struct probe {
    telex_http_call_t *call;
    long status;
    char content_type[64];
    char body[400000];
    size_t len;
    int completed;
    char error[256];
    int pause_at_first; /* pauses itself on its first body piece */
} probe_t;

static void p_on_response(void *user, long status, const char *ct, const char *ra)
{
    (void)ra;
    probe_t *p = user;
    p->status = status;
    snprintf(p->content_type, sizeof(p->content_type), "%s", ct);
}

static void p_on_body(void *user, const char *data, size_t len)
{
    probe_t *p = user;
    assert_true(p->len + len <= sizeof(p->body));
    memcpy(p->body + p->len, data, len);
    p->len += len;
    if (p->pause_at_first) {
        p->pause_at_first = 0;
        telex_http_call_pause(p->call);
    }
}

static void p_on_complete(void *user, const char *error, int timed_out)
{
    (void)timed_out;
    probe_t *p = user;
    p->completed = 1;
    p->call = NULL;
    snprintf(p->error, sizeof(p->error), "%s", error ? error : "");
}

static const telex_http_call_handlers_t handlers = {p_on_response, p_on_body, p_on_complete};

static int use_get; /* start() sends a GET (no body) */

static telex_http_call_t *start(telex_http_client_t *client, probe_t *p, const char *path, telex_http2_mode_t mode)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    static const char *const hdrs[] = {"Content-Type: application/json", "Authorization: Bearer k-123", NULL};
    telex_http_request_t req = {
        .url = url, .headers = hdrs, .body = "{\"q\":1}", .body_len = 7, .connect_timeout_ms = 5000, .http2 = mode};
    if (use_get) {
        req.body = NULL;
        req.body_len = 0;
    }
    memset(p, 0, offsetof(probe_t, body));
    p->len = 0;
    p->completed = 0;
    p->error[0] = '\0';
    p->call = telex_http_call_start(client, &req, &handlers, p);
    assert_non_null(p->call);
    return p->call;
}

/* Runs the loop until cond() holds; fails the test after 10 s. */
static int timed_out;
static void on_guard(uv_timer_t *t)
{
    (void)t;
    timed_out = 1;
}

static void run_until(int (*cond)(void *), void *arg)
{
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    timed_out = 0;
    uv_timer_start(&guard, on_guard, 10000, 0);
    while (!cond(arg) && !timed_out)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_false(timed_out);
}

static int n_requests_at_least(void *arg)
{
    return n_streams >= *(int *)arg;
}

static int all_completed(void *arg)
{
    probe_t **ps = arg;
    for (; *ps != NULL; ps++)
        if (!(*ps)->completed)
            return 0;
    return 1;
}

static int completed(void *arg)
{
    return ((probe_t *)arg)->completed;
}

static int closed_stream(void *arg)
{
    return ((sstream_t *)arg)->closed;
}

static void wait_requests(int n)
{
    run_until(n_requests_at_least, &n);
}

static void setup_server(void)
{
    uv_loop_init(&loop);
    uv_tcp_init(&loop, &listener);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&listener, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&listener, 128, srv_on_connection), 0);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_getsockname(&listener, (struct sockaddr *)&ss, &len);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    accepted = 0;
    n_streams = 0;
    memset(conns, 0, sizeof(conns));
    server_max_streams = 0;
    close_on_request = 0;
    answer_at_once = 0;
    raw_http1 = 0;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, h->type == UV_TCP && h != (uv_handle_t *)&listener ? srv_on_closed : NULL);
}

static void teardown_server(telex_http_client_t *client)
{
    telex_http_client_free(client);
    for (int i = 0; i < 200; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    for (int i = 0; i < accepted && i < 16; i++)
        if (conns[i] != NULL)
            srv_close(conns[i]);
    uv_close((uv_handle_t *)&listener, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_walk(&loop, walk_close, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    for (int i = 0; i < n_streams; i++)
        free(streams[i].out);
}

/* ------------------------------------------------------------ fixture */

/* A fresh server (setup_server) and a client of it. */
static telex_http_client_t *setup_client(void)
{
    setup_server();
    return telex_http_client_new(&loop);
}

/* Starts n HTTP/2 calls to path in p[0..n); all (n + 1 long) lists them,
 * NULL-terminated, for all_completed. */
static void start_n(telex_http_client_t *client, probe_t *p, probe_t **all, int n, const char *path)
{
    for (int i = 0; i < n; i++) {
        start(client, &p[i], path, TELEX_HTTP2_ON);
        all[i] = &p[i];
    }
    all[n] = NULL;
}

/* Starts two HTTP/2 calls the server leaves open, and waits until it has both. */
static void start_two_open(telex_http_client_t *client, probe_t *a, probe_t *b)
{
    start(client, a, "/open", TELEX_HTTP2_ON);
    start(client, b, "/open", TELEX_HTTP2_ON);
    wait_requests(2);
}

/* One more call, answered at once, succeeds; the server accepted
 * want_accepted connections in all. */
static void check_next_call(telex_http_client_t *client, probe_t *c, int want_accepted)
{
    answer_at_once = 1;
    start(client, c, "/whole", TELEX_HTTP2_ON);
    run_until(completed, c);
    assert_string_equal(c->error, "");
    assert_int_equal(accepted, want_accepted);
}

/* ------------------------------------------------------------ tests */

static void test_multiplexed(void **state)
{
    (void)state;
    telex_http_client_t *client = setup_client();
    answer_at_once = 1;
    static probe_t p[20];
    probe_t *all[21];
    start_n(client, p, all, 20, "/whole");
    run_until(all_completed, all);
    for (int i = 0; i < 20; i++) {
        assert_string_equal(p[i].error, "");
        assert_int_equal(p[i].status, 200);
        assert_string_equal(p[i].content_type, "text/event-stream");
        assert_int_equal(p[i].len, strlen("data: {\"x\":1}\n\ndata: [DONE]\n\n"));
    }
    assert_int_equal(accepted, 1); /* 20 streams, one connection */
    assert_int_equal(conns[0]->max_open >= 2, 1);
    /* the request: header fields lower-cased, the body */
    assert_string_equal(streams[0].auth, "Bearer k-123");
    assert_int_equal(streams[0].body_len, 7);
    assert_memory_equal(streams[0].body, "{\"q\":1}", 7);
    assert_string_equal(streams[0].method, "POST");
    assert_true(streams[0].content_length);
    /* a GET (as GET /models is sent): no body, no content-length */
    use_get = 1;
    start(client, &p[0], "/whole", TELEX_HTTP2_ON);
    use_get = 0;
    run_until(completed, &p[0]);
    assert_string_equal(p[0].error, "");
    assert_string_equal(streams[20].method, "GET");
    assert_false(streams[20].content_length);
    assert_int_equal(streams[20].body_len, 0);
    /* a later call takes the same connection */
    start(client, &p[0], "/whole", TELEX_HTTP2_ON);
    run_until(completed, &p[0]);
    assert_string_equal(p[0].error, "");
    assert_int_equal(accepted, 1);
    telex_http_client_stats_t st;
    telex_http_client_get_stats(client, &st);
    assert_int_equal(st.h2_sessions, 1);
    assert_int_equal(st.h2_streams, 22);
    assert_int_equal(st.h2_open, 1);
    teardown_server(client);
}

typedef struct want {
    probe_t *p;
    size_t n;
} want_t;

static int has_bytes(void *arg)
{
    want_t *w = arg;
    return w->p->len >= w->n;
}

static void wait_bytes(probe_t *p, size_t n)
{
    want_t w = {p, n};
    run_until(has_bytes, &w);
}

static void test_cancel_resets_stream(void **state)
{
    (void)state;
    telex_http_client_t *client = setup_client();
    static probe_t a, b, c;
    start_two_open(client, &a, &b);
    srv_send_text(&streams[0], "data: 1\n\n", 0);
    srv_send_text(&streams[1], "data: 1\n\n", 0);
    wait_bytes(&a, 9);
    wait_bytes(&b, 9);
    telex_http_call_cancel(a.call);
    run_until(closed_stream, &streams[0]);
    assert_int_equal(streams[0].closed_code, NGHTTP2_CANCEL); /* RST_STREAM CANCEL */
    assert_false(streams[1].closed);
    srv_send_text(&streams[1], "data: [DONE]\n\n", 1);
    run_until(completed, &b);
    assert_string_equal(b.error, "");
    assert_int_equal(b.len, 9 + 14);
    assert_false(a.completed); /* no callback after a cancel */
    check_next_call(client, &c, 1); /* the connection stayed: the next call is a stream on it */
    telex_http_client_stats_t st;
    telex_http_client_get_stats(client, &st);
    assert_int_equal(st.h2_resets, 1);
    teardown_server(client);
}

#define BIG 300000

static void fill(char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)('a' + i % 23);
}

typedef struct stalled {
    sconn_t **conn;
    sstream_t *s;
    probe_t *other;
} stalled_t;

static int window_shut_and_other_done(void *arg)
{
    stalled_t *w = arg;
    return w->other->completed && nghttp2_session_get_stream_remote_window_size((*w->conn)->ng, w->s->id) == 0;
}

static void test_flow_control_paused_stream(void **state)
{
    (void)state;
    telex_http_client_t *client = setup_client();
    static probe_t a, b, c;
    static char big[BIG];
    fill(big, BIG);
    start(client, &a, "/big", TELEX_HTTP2_ON);
    a.pause_at_first = 1;
    start(client, &b, "/big", TELEX_HTTP2_ON);
    start(client, &c, "/small", TELEX_HTTP2_ON);
    c.pause_at_first = 1;
    wait_requests(3);
    srv_send(&streams[0], big, BIG, 1);
    srv_send(&streams[1], big, BIG, 1);
    srv_send(&streams[2], big, 100, 0);
    wait_bytes(&c, 1);
    srv_send(&streams[2], big + 100, 900, 1); /* ends while c is paused */
    /* b, on the same connection, runs to its end while a's window is shut */
    stalled_t w = {&conns[0], &streams[0], &b};
    run_until(window_shut_and_other_done, &w);
    assert_string_equal(b.error, "");
    assert_int_equal(b.len, BIG);
    assert_memory_equal(b.body, big, BIG);
    assert_true(a.len < BIG);
    assert_false(a.completed);
    assert_int_equal(accepted, 1);
    /* c's stream ended while it was paused: nothing more until resume */
    run_until(closed_stream, &streams[2]);
    assert_false(c.completed);
    assert_true(c.len < 1000);
    telex_http_call_resume(c.call);
    assert_true(c.completed); /* what it held, then the end, from resume itself */
    assert_int_equal(c.len, 1000);
    assert_memory_equal(c.body, big, 1000);
    /* resumed, a gets everything in order */
    telex_http_call_resume(a.call);
    run_until(completed, &a);
    assert_string_equal(a.error, "");
    assert_int_equal(a.len, BIG);
    assert_memory_equal(a.body, big, BIG);
    teardown_server(client);
}

static void test_goaway_mid_stream(void **state)
{
    (void)state;
    telex_http_client_t *client = setup_client();
    static probe_t p[3];
    probe_t *all[4];
    start_n(client, p, all, 3, "/whole");
    wait_requests(3);
    srv_send_text(&streams[0], "data: 1\n\n", 0);
    wait_bytes(&p[0], 9);
    /* the server stops taking streams after the first: the others were not processed */
    nghttp2_submit_goaway(conns[0]->ng, NGHTTP2_FLAG_NONE, streams[0].id, NGHTTP2_NO_ERROR, NULL, 0);
    srv_flush(conns[0]);
    answer_at_once = 1; /* the streams sent again are answered at once */
    wait_requests(5);
    srv_send_text(&streams[0], "data: [DONE]\n\n", 1);
    run_until(all_completed, all);
    for (int i = 0; i < 3; i++)
        assert_string_equal(p[i].error, "");
    assert_int_equal(p[0].len, 9 + 14);
    assert_int_equal(accepted, 2);
    telex_http_client_stats_t st;
    telex_http_client_get_stats(client, &st);
    assert_int_equal(st.h2_refused, 2);
    assert_int_equal(st.h2_sessions, 2);
    teardown_server(client);
}

static void test_connection_lost(void **state)
{
    (void)state;
    telex_http_client_t *client = setup_client();
    static probe_t a, b, c;
    start_two_open(client, &a, &b);
    srv_send_text(&streams[0], "data: [DONE]\n\n", 1);
    srv_send_text(&streams[1], "data: 1\n\n", 0);
    run_until(completed, &a);
    wait_bytes(&b, 9);
    srv_close(conns[0]);
    run_until(completed, &b);
    assert_string_equal(a.error, ""); /* finished before: untouched */
    assert_non_null(strstr(b.error, "closed the HTTP/2 connection before the response ended"));
    check_next_call(client, &c, 2); /* on a new connection */
    teardown_server(client);
}

static void test_reused_session_closed_unanswered(void **state)
{
    (void)state;
    telex_http_client_t *client = setup_client();
    answer_at_once = 1;
    static probe_t a, b;
    start(client, &a, "/whole", TELEX_HTTP2_ON);
    run_until(completed, &a);
    assert_string_equal(a.error, "");
    /* the session is idle now; the server drops it as the next stream arrives */
    close_on_request = 1;
    start(client, &b, "/whole", TELEX_HTTP2_ON);
    run_until(completed, &b);
    assert_string_equal(b.error, ""); /* sent once more, on a new connection */
    assert_int_equal(accepted, 2);
    telex_http_client_stats_t st;
    telex_http_client_get_stats(client, &st);
    assert_int_equal(st.retries, 1);
    teardown_server(client);
}

static void test_server_allows_two_streams(void **state)
{
    (void)state;
    telex_http_client_t *client = setup_client();
    server_max_streams = 2;
    static probe_t p[5];
    probe_t *all[6];
    start_n(client, p, all, 5, "/open");
    wait_requests(5);
    assert_int_equal(accepted, 3);
    for (int i = 0; i < 3; i++)
        assert_true(conns[i]->max_open <= 2);
    for (int i = 0; i < 5; i++)
        srv_send_text(&streams[i], "data: [DONE]\n\n", 1);
    run_until(all_completed, all);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(p[i].error, "");
        assert_int_equal(p[i].len, 14);
    }
    telex_http_client_stats_t st;
    telex_http_client_get_stats(client, &st);
    assert_int_equal(st.h2_refused, 0);
    teardown_server(client);
}

static int acked(void *arg)
{
    (void)arg;
    return nghttp2_session_get_local_settings(conns[0]->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) == 1;
}

static void test_server_lowers_limit(void **state)
{
    (void)state;
    telex_http_client_t *client = setup_client();
    static probe_t p[4];
    probe_t *all[5] = {&p[0], &p[1], &p[2], &p[3], NULL};
    start_two_open(client, &p[0], &p[1]);
    nghttp2_settings_entry iv[1] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1}};
    nghttp2_submit_settings(conns[0]->ng, NGHTTP2_FLAG_NONE, iv, 1);
    srv_flush(conns[0]);
    run_until(acked, NULL); /* the client has the new limit */
    start(client, &p[2], "/open", TELEX_HTTP2_ON);
    start(client, &p[3], "/open", TELEX_HTTP2_ON);
    wait_requests(4);
    assert_int_equal(accepted, 2); /* the first connection is over its new limit: a second one */
    assert_int_equal(conns[0]->max_open, 2);
    for (int i = 0; i < 4; i++)
        srv_send_text(&streams[i], "data: [DONE]\n\n", 1);
    run_until(all_completed, all);
    for (int i = 0; i < 4; i++)
        assert_string_equal(p[i].error, "");
    teardown_server(client);
}

static void test_not_http2(void **state)
{
    (void)state;
    telex_http_client_t *client = setup_client();
    raw_http1 = 1;
    static probe_t p[3];
    probe_t *all[4];
    start_n(client, p, all, 3, "/whole");
    run_until(all_completed, all);
    for (int i = 0; i < 3; i++) {
        if (strstr(p[i].error, "HTTP/2") == NULL)
            fail_msg("call %d: %s (accepted %d)", i, p[i].error, accepted);
    }
    assert_int_equal(accepted, 1); /* one failed connection fails the calls waiting for it */
    teardown_server(client);
}

static void test_connect_refused(void **state)
{
    (void)state;
    telex_http_client_t *client = setup_client();
    uv_close((uv_handle_t *)&listener, NULL); /* nobody listens on port now */
    uv_run(&loop, UV_RUN_NOWAIT);
    static probe_t p[3];
    probe_t *all[4];
    start_n(client, p, all, 3, "/whole");
    run_until(all_completed, all);
    for (int i = 0; i < 3; i++)
        assert_non_null(strstr(p[i].error, "cannot connect"));
    telex_http_client_free(client);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_off_and_auto_use_http1_on_plain_http(void **state)
{
    (void)state;
    telex_http_client_t *client = setup_client();
    raw_http1 = 1; /* answers 400 over HTTP/1.1 */
    static probe_t a, b;
    start(client, &a, "/whole", TELEX_HTTP2_AUTO);
    start(client, &b, "/whole", TELEX_HTTP2_OFF);
    probe_t *all[3] = {&a, &b, NULL};
    run_until(all_completed, all);
    assert_int_equal(a.status, 400);
    assert_int_equal(b.status, 400);
    telex_http_client_stats_t st;
    telex_http_client_get_stats(client, &st);
    assert_int_equal(st.h2_sessions, 0);
    teardown_server(client);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multiplexed),
        cmocka_unit_test(test_cancel_resets_stream),
        cmocka_unit_test(test_flow_control_paused_stream),
        cmocka_unit_test(test_goaway_mid_stream),
        cmocka_unit_test(test_connection_lost),
        cmocka_unit_test(test_reused_session_closed_unanswered),
        cmocka_unit_test(test_server_allows_two_streams),
        cmocka_unit_test(test_server_lowers_limit),
        cmocka_unit_test(test_not_http2),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_off_and_auto_use_http1_on_plain_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
