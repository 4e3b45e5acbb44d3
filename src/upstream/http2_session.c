/*
 * upstream/http2_session.c — HTTP/2 to providers: sessions on libnghttp2
 * over the client's h2o sockets (http_client.h has the contract,
 * http_client_internal.h the shared state and the call's states).
 *
 * libnghttp2 does the framing, HPACK, flow control bookkeeping and the
 * protocol's rules; this file feeds it the socket's bytes (mem_recv), writes
 * what it produces (mem_send, one write in flight per connection), and maps
 * its streams to calls. A session is born on a connection that a call opened
 * (prior knowledge on http, ALPN h2 on https); it takes streams only once the
 * server's first SETTINGS frame told how many it allows, then takes calls
 * from its origin's waiting list up to SETTINGS_MAX_CONCURRENT_STREAMS. When
 * calls wait beyond what the sessions being opened are expected to carry
 * (ASSUMED_STREAMS each until their SETTINGS say otherwise), one more waiting
 * call opens one more connection.
 *
 * Flow control: nghttp2's automatic WINDOW_UPDATE is off. The connection's
 * window is given back as soon as DATA arrives (nothing holds it), a stream's
 * only once the call took the bytes: a paused call's DATA is held (at most
 * its window, TELEX_HTTP2_STREAM_WINDOW) and the server stops sending on
 * that stream alone. Streams, once submitted, carry their call as nghttp2's
 * stream user data; a cancelled call clears it, so nothing reaches a freed
 * call.
 */
#include "upstream/http_client_internal.h"
#include "util/alloc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <h2o/linklist.h>
#include <h2o/memory.h>
#include <nghttp2/nghttp2.h>

#define ASSUMED_STREAMS 100           /* per connection, until the server's SETTINGS are in */
#define CONNECTION_WINDOW (16u << 20) /* the connection's receive window: bytes in flight, never held */
/* An idle session is closed after this long (or the client's idle timeout if
 * shorter): below common servers' HTTP/2 idle timeouts (h2o: 10 s), so that
 * telex closes first rather than start a stream as the server closes. */
#define SESSION_IDLE_MS 5000

struct h2_session {
    h2o_linklist_t link; /* in origin->sessions */
    conn_t *conn;
    origin_t *origin;
    telex_http_client_t *client;
    nghttp2_session *ng;
    h2o_linklist_t streams; /* of telex_http_call_t.slink: calls with a stream here, the newest first */
    size_t n_streams;
    uint32_t limit; /* the server's SETTINGS_MAX_CONCURRENT_STREAMS */
    uint64_t idle_since;
    char *wbuf; /* what mem_send produced, being written */
    size_t wlen, wcap;
    unsigned ready : 1;   /* the server's first SETTINGS arrived */
    unsigned goaway : 1;  /* no new streams: GOAWAY received, or stream ids used up */
    unsigned in_recv : 1; /* mem_recv on the stack: sending waits for it */
    unsigned writing : 1;
    unsigned closing : 1;
    unsigned was_idle : 1; /* carried no stream at some point since it was ready */
    uint32_t goaway_sent; /* the error code of a GOAWAY telex sent (nghttp2 found a protocol error) */
};

static int flush(h2_session_t *s);
static void session_close(h2_session_t *s, const char *error);
static void ensure_connects(origin_t *o);

static telex_http_call_t *call_of(h2o_linklist_t *l)
{
    return H2O_STRUCT_FROM_MEMBER(telex_http_call_t, slink, l);
}

static h2_session_t *session_of(h2o_linklist_t *l)
{
    return H2O_STRUCT_FROM_MEMBER(h2_session_t, link, l);
}

/* The origin's oldest (first) or newest (last) waiting call; NULL when none wait. */
static telex_http_call_t *first_waiting(origin_t *o)
{
    return h2o_linklist_is_empty(&o->waiting) ? NULL : call_of(o->waiting.next);
}

static telex_http_call_t *last_waiting(origin_t *o)
{
    return h2o_linklist_is_empty(&o->waiting) ? NULL : call_of(o->waiting.prev);
}

/* ------------------------------------------------------------ requests */

static int reserved_h2(const char *name, size_t len)
{
    static const char *const names[] = {"host", "connection", "transfer-encoding", "keep-alive",
                                        "proxy-connection", "upgrade", "te", "content-length"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == len && strncasecmp(name, names[i], len) == 0)
            return 1;
    return 0;
}

int h2_prepare(telex_http_call_t *call, const char *method, const char *path, size_t path_len,
               const char *const *headers, const char *body, size_t body_len)
{
    origin_t *o = call->origin;
    if (path_len == 0) {
        path = "/";
        path_len = 1;
    }
    char clen[24];
    int clen_len = snprintf(clen, sizeof(clen), "%zu", body_len);
    size_t n = 4 + (body != NULL), text = strlen(method) + path_len + strlen(o->authority) + 5 + (size_t)clen_len;
    for (const char *const *h = headers; h != NULL && *h != NULL; h++) {
        if (strpbrk(*h, "\r\n") != NULL || strchr(*h, ':') == NULL)
            return -1;
        n++;
        text += strlen(*h);
    }
    char *block = telex_xmalloc(n * sizeof(nghttp2_nv) + text + body_len + 1);
    nghttp2_nv *nv = (nghttp2_nv *)block;
    char *t = block + n * sizeof(nghttp2_nv);
    size_t k = 0;
#define ADD(n_, v_, vl_)                                                                                               \
    do {                                                                                                               \
        nv[k].name = (uint8_t *)(n_);                                                                                  \
        nv[k].namelen = strlen(n_);                                                                                    \
        memcpy(t, (v_), (vl_));                                                                                        \
        nv[k].value = (uint8_t *)t;                                                                                    \
        nv[k].valuelen = (vl_);                                                                                        \
        nv[k].flags = NGHTTP2_NV_FLAG_NONE;                                                                            \
        t += (vl_);                                                                                                    \
        k++;                                                                                                           \
    } while (0)
    ADD(":method", method, strlen(method));
    ADD(":scheme", o->tls ? "https" : "http", strlen(o->tls ? "https" : "http"));
    ADD(":authority", o->authority, strlen(o->authority));
    ADD(":path", path, path_len);
    if (body != NULL)
        ADD("content-length", clen, (size_t)clen_len);
#undef ADD
    for (const char *const *h = headers; h != NULL && *h != NULL; h++) {
        const char *colon = strchr(*h, ':');
        size_t name_len = (size_t)(colon - *h);
        if (name_len == 0 || reserved_h2(*h, name_len))
            continue;
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vlen = strlen(v);
        for (size_t i = 0; i < name_len; i++) /* HTTP/2 field names are lower case */
            t[i] = (char)tolower((unsigned char)(*h)[i]);
        nv[k].name = (uint8_t *)t;
        nv[k].namelen = name_len;
        t += name_len;
        memcpy(t, v, vlen);
        nv[k].value = (uint8_t *)t;
        nv[k].valuelen = vlen;
        nv[k].flags = NGHTTP2_NV_FLAG_NONE;
        t += vlen;
        k++;
    }
    if (body != NULL)
        memcpy(t, body, body_len);
    call->h2_head = block;
    call->h2_n_head = k;
    call->h2_body = body != NULL ? t : NULL;
    call->h2_body_len = body != NULL ? body_len : 0;
    return 0;
}

void h2_call_free_request(telex_http_call_t *call)
{
    free(call->h2_head);
    call->h2_head = NULL;
    call->h2_body = NULL;
}

static ssize_t read_body(nghttp2_session *ng, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *source, void *user)
{
    (void)source;
    (void)user;
    telex_http_call_t *call = nghttp2_session_get_stream_user_data(ng, stream_id);
    if (call == NULL || call->h2_body == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is being reset */
    size_t left = call->h2_body_len - call->body_sent;
    size_t n = left < length ? left : length;
    memcpy(buf, call->h2_body + call->body_sent, n);
    call->body_sent += n;
    if (call->body_sent == call->h2_body_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        call->body_done = 1;
        if (call->head_in)
            h2_call_free_request(call);
    }
    return (ssize_t)n;
}

/* ------------------------------------------------------------ placing calls */

int h2_origin_wants(const origin_t *o)
{
    switch (o->http2) {
    case TELEX_HTTP2_ON:
        return 1;
    case TELEX_HTTP2_OFF:
        return 0;
    default:
        return o->tls && o->h2_known != 0;
    }
}

static uint64_t idle_ms(const telex_http_client_t *client)
{
    return client->idle_timeout_ms < SESSION_IDLE_MS ? client->idle_timeout_ms : SESSION_IDLE_MS;
}

static void wait_unlink(telex_http_call_t *call)
{
    origin_t *o = call->origin;
    h2o_linklist_unlink(&call->slink);
    call->listed = 0;
    o->n_waiting--;
}

static void wait_link(telex_http_call_t *call, int front)
{
    origin_t *o = call->origin;
    h2o_linklist_insert(front ? o->waiting.next : &o->waiting, &call->slink);
    call->listed = 1;
    o->n_waiting++;
}

static void stream_unlink(telex_http_call_t *call)
{
    h2_session_t *s = call->sess;
    h2o_linklist_unlink(&call->slink);
    call->sess = NULL;
    call->stream_id = 0;
    if (--s->n_streams == 0) {
        s->was_idle = 1;
        s->idle_since = uv_now(s->client->loop);
        client_arm_timer(s->client, s->idle_since + idle_ms(s->client));
    }
}

static h2_session_t *session_with_room(origin_t *o)
{
    for (h2o_linklist_t *l = o->sessions.next; l != &o->sessions; l = l->next) {
        h2_session_t *s = session_of(l);
        if (s->ready && !s->goaway && !s->closing && s->n_streams < s->limit)
            return s;
    }
    return NULL;
}

/* Starts the call's stream on s (room checked by the caller). */
static void submit(h2_session_t *s, telex_http_call_t *call)
{
    if (call->listed)
        wait_unlink(call);
    call_timer_stop(call);
    free(call->request); /* HTTP/1.1's text, if it was prepared too */
    call->request = NULL;
    call_set_state(call, CALL_EXCHANGE);
    call->body_sent = 0;
    call->body_done = 0;
    nghttp2_data_provider dp = {.source.ptr = NULL, .read_callback = read_body};
    int32_t id = nghttp2_submit_request(s->ng, NULL, (const nghttp2_nv *)call->h2_head, call->h2_n_head,
                                        call->h2_body != NULL ? &dp : NULL, call);
    if (id < 0) {
        if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) { /* this connection is used up: another one */
            s->goaway = 1;
            call_set_state(call, CALL_H2_WAITING);
            call_timer_start(call, uv_now(s->client->loop) + (uint64_t)call->connect_timeout_ms);
            h2_place(call);
            return;
        }
        call_set_errorf(call, "cannot start an HTTP/2 stream to %s: %s", call->origin->authority,
                        nghttp2_strerror(id));
        call_set_state(call, CALL_FAIL_PENDING);
        call_timer_start(call, uv_now(s->client->loop));
        return;
    }
    call->sess = s;
    call->stream_id = id;
    call->reused = s->was_idle;
    h2o_linklist_insert(s->streams.next, &call->slink); /* first */
    s->n_streams++;
    s->client->stats.h2_streams++;
    flush(s);
}

/* Waiting calls into sessions with room, then more connections if needed. */
static void take_waiting(origin_t *o)
{
    h2_session_t *s;
    while (!h2o_linklist_is_empty(&o->waiting) && (s = session_with_room(o)) != NULL)
        submit(s, first_waiting(o));
    ensure_connects(o);
}

void h2_place(telex_http_call_t *call)
{
    origin_t *o = call->origin;
    h2_session_t *s = session_with_room(o);
    if (s != NULL && h2o_linklist_is_empty(&o->waiting)) {
        submit(s, call);
        return;
    }
    if (call->state != CALL_H2_WAITING)
        call_set_state(call, CALL_H2_WAITING);
    wait_link(call, 0);
    take_waiting(o);
}

/* One more connection per ASSUMED_STREAMS waiting calls beyond what the
 * connections being opened will carry; the oldest waiting call opens it. */
static void ensure_connects(origin_t *o)
{
    telex_http_call_t *call = first_waiting(o);
    if (call == NULL || call->client->freeing)
        return;
    while ((call = first_waiting(o)) != NULL &&
           o->n_waiting > (o->h2_connecting + o->h2_presettings) * ASSUMED_STREAMS) {
        wait_unlink(call);
        call_connect_new(call); /* H2_WAITING → CONNECTING, counted in h2_connecting */
    }
}

void h2_connect_failed(origin_t *o, const char *error, int timed_out)
{
    telex_http_call_t *call = first_waiting(o);
    if (call == NULL || call->client->freeing)
        return;
    if (error != NULL) {
        /* the calls the remaining connections will not carry get the same failure */
        while ((call = last_waiting(o)) != NULL &&
               o->n_waiting > (o->h2_connecting + o->h2_presettings) * ASSUMED_STREAMS) {
            wait_unlink(call);
            call_set_errorf(call, "%s", error);
            call_fail(call, timed_out);
        }
        return;
    }
    ensure_connects(o);
}

void h2_origin_fell_back(origin_t *o)
{
    telex_http_call_t *call;
    while ((call = first_waiting(o)) != NULL) {
        wait_unlink(call);
        call->want_h2 = 0;
        h2_call_free_request(call);
        if (call->request == NULL) {
            call_set_errorf(call, "%s no longer chooses HTTP/2 in ALPN", o->authority);
            call_fail(call, 0);
            continue;
        }
        call_start_http1(call); /* keeps its deadline only if it connects: a fresh one then */
    }
}

void h2_call_detach(telex_http_call_t *call, int reset)
{
    if (call->listed)
        wait_unlink(call);
    h2_session_t *s = call->sess;
    if (s == NULL)
        return;
    int32_t id = call->stream_id;
    stream_unlink(call);
    nghttp2_session_set_stream_user_data(s->ng, id, NULL);
    nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, id, reset ? NGHTTP2_CANCEL : NGHTTP2_NO_ERROR);
    s->client->stats.h2_resets++;
    flush(s);
}

/* ------------------------------------------------------------ nghttp2's callbacks */

static void deliver(telex_http_call_t *call, const char *data, size_t len)
{
    call->in_callback = 1;
    call->handlers.on_body(call->user, data, len);
    call->in_callback = 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    (void)user;
    telex_http_call_t *call = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (call != NULL && !call->head_in) { /* a 1xx head or the final one */
        call->response.status = 0;
        call->response.content_type[0] = '\0';
        call->response.retry_after[0] = '\0';
    }
    return 0;
}

static void copy_value(char *dst, size_t size, const uint8_t *value, size_t len)
{
    if (len >= size)
        len = size - 1; /* cut, as the HTTP/1.1 parser does */
    memcpy(dst, value, len);
    dst[len] = '\0';
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
    (void)flags;
    (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    telex_http_call_t *call = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (call == NULL || call->head_in)
        return 0; /* trailers: nothing telex uses */
    telex_http1_response_t *r = &call->response;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        r->status = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            r->status = r->status * 10 + (value[i] - '0'); /* nghttp2 checked: three digits */
    } else if (namelen == 12 && memcmp(name, "content-type", 12) == 0) {
        copy_value(r->content_type, sizeof(r->content_type), value, valuelen);
    } else if (namelen == 11 && memcmp(name, "retry-after", 11) == 0) {
        copy_value(r->retry_after, sizeof(r->retry_after), value, valuelen);
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    h2_session_t *s = user;
    switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK)
            return 0;
        s->limit = nghttp2_session_get_remote_settings(ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        if (!s->ready) {
            s->ready = 1;
            s->origin->h2_presettings--;
        }
        take_waiting(s->origin);
        return 0;
    case NGHTTP2_GOAWAY:
        s->goaway = 1; /* streams above its last id are closed REFUSED_STREAM: placed again */
        return 0;
    case NGHTTP2_HEADERS: {
        telex_http_call_t *call = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
        if (call == NULL || call->head_in || call->response.status < 200)
            return 0;
        call->head_in = 1;
        call->got_bytes = 1;
        if (call->body_done)
            h2_call_free_request(call);
        call->in_callback = 1;
        call->handlers.on_response(call->user, call->response.status, call->response.content_type,
                                   call->response.retry_after);
        call->in_callback = 0;
        if (call->state == CALL_CANCELLED)
            call_free(call); /* detached already: nothing of nghttp2 points at it */
        return 0;
    }
    default:
        return 0;
    }
}

static void hold(telex_http_call_t *call, const uint8_t *data, size_t len)
{
    if (call->held_len + len > call->held_cap) {
        size_t cap = call->held_cap ? call->held_cap : 4096;
        while (cap < call->held_len + len)
            cap *= 2;
        call->held = telex_xrealloc(call->held, cap);
        call->held_cap = cap;
    }
    memcpy(call->held + call->held_len, data, len);
    call->held_len += len;
}

static int on_data_chunk_recv(nghttp2_session *ng, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                              void *user)
{
    (void)flags;
    (void)user;
    nghttp2_session_consume_connection(ng, len); /* the connection's window: never held */
    telex_http_call_t *call = nghttp2_session_get_stream_user_data(ng, stream_id);
    if (call == NULL || len == 0)
        return 0;
    if (call->paused || call->held_len > 0) {
        /* its window comes back on resume; more than the window is the server's fault */
        if (call->held_len + len > (size_t)TELEX_HTTP2_STREAM_WINDOW)
            nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_FLOW_CONTROL_ERROR);
        else
            hold(call, data, len);
        return 0;
    }
    deliver(call, (const char *)data, len);
    if (call->state == CALL_CANCELLED) {
        call_free(call);
        return 0;
    }
    if (call->sess != NULL)
        nghttp2_session_consume_stream(ng, stream_id, len);
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    (void)ng;
    h2_session_t *s = user;
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR)
        s->goaway_sent = frame->goaway.error_code;
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t stream_id, uint32_t error_code, void *user)
{
    h2_session_t *s = user;
    telex_http_call_t *call = nghttp2_session_get_stream_user_data(ng, stream_id);
    if (call == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(ng, stream_id, NULL);
    stream_unlink(call);
    if (error_code == NGHTTP2_NO_ERROR && call->head_in) {
        if (call->held_len > 0 || call->paused) {
            call->h2_ended = 1; /* finished by resume, after what it holds */
            return 0;
        }
        call_finish(call, NULL, 0);
        return 0;
    }
    if (error_code == NGHTTP2_REFUSED_STREAM && !call->got_bytes && !call->retried) {
        /* not processed (RFC 9113 §8.7): safe to send again, on another connection */
        call->retried = 1;
        s->client->stats.h2_refused++;
        call_set_state(call, CALL_H2_WAITING);
        call_timer_start(call, uv_now(s->client->loop) + (uint64_t)call->connect_timeout_ms);
        h2_place(call);
        return 0;
    }
    if (error_code == NGHTTP2_NO_ERROR)
        call_set_errorf(call, "%s ended the HTTP/2 stream without a response", call->origin->authority);
    else
        call_set_errorf(call, "%s reset the HTTP/2 stream (%s)%s", call->origin->authority,
                        nghttp2_http2_strerror(error_code), s->goaway ? " after GOAWAY" : "");
    call_fail(call, 0);
    return 0;
}

/* ------------------------------------------------------------ the connection */

static void on_written(h2o_socket_t *sock, const char *err)
{
    conn_t *conn = sock->data;
    if (conn->closing)
        return;
    h2_session_t *s = conn->h2;
    s->writing = 0;
    s->wlen = 0;
    if (s->wcap > 16384) { /* a burst's buffer is not kept by a quiet connection */
        free(s->wbuf);
        s->wbuf = NULL;
        s->wcap = 0;
    }
    if (err != NULL) {
        char msg[160];
        snprintf(msg, sizeof(msg), "sending to %s failed: %s", s->origin->authority, err);
        session_close(s, msg);
        return;
    }
    flush(s);
}

/* What nghttp2 wants to send, out in one write; the next waits for it.
 * -1 when the session closed (and was freed) instead. */
static int flush(h2_session_t *s)
{
    if (s->in_recv || s->writing || s->closing)
        return 0;
    const uint8_t *data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(s->ng, &data)) > 0) {
        if (s->wlen + (size_t)n > s->wcap) {
            size_t cap = s->wcap ? s->wcap : 16384;
            while (cap < s->wlen + (size_t)n)
                cap *= 2;
            s->wbuf = telex_xrealloc(s->wbuf, cap);
            s->wcap = cap;
        }
        memcpy(s->wbuf + s->wlen, data, (size_t)n);
        s->wlen += (size_t)n;
        if (s->wlen >= 65536)
            break; /* write this much, then the rest */
    }
    if (n < 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "HTTP/2 to %s failed: %s", s->origin->authority, nghttp2_strerror((int)n));
        session_close(s, msg);
        return -1;
    }
    if (s->wlen > 0) {
        s->writing = 1;
        h2o_iovec_t buf = h2o_iovec_init(s->wbuf, s->wlen);
        h2o_socket_write(s->conn->sock, &buf, 1, on_written);
        return 0;
    }
    if ((!nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng)) || (s->goaway && s->n_streams == 0)) {
        session_close(s, NULL); /* GOAWAY and nothing left on it */
        return -1;
    }
    return 0;
}

static void on_sock_read(h2o_socket_t *sock, const char *err)
{
    conn_t *conn = sock->data;
    if (conn->closing)
        return;
    h2_on_read(conn, err);
}

void h2_on_read(conn_t *conn, const char *err)
{
    h2_session_t *s = conn->h2;
    h2o_socket_t *sock = conn->sock;
    char msg[192];
    if (err != NULL) {
        snprintf(msg, sizeof(msg), "%s closed the HTTP/2 connection%s", s->origin->authority,
                 s->n_streams > 0 ? " before the response ended" : "");
        session_close(s, msg);
        return;
    }
    s->in_recv = 1;
    ssize_t rv = nghttp2_session_mem_recv(s->ng, (const uint8_t *)sock->input->bytes, sock->input->size);
    s->in_recv = 0;
    if (rv < 0) {
        snprintf(msg, sizeof(msg), "HTTP/2 protocol error from %s: %s", s->origin->authority,
                 nghttp2_strerror((int)rv));
        session_close(s, msg);
        return;
    }
    h2o_buffer_consume(&sock->input, (size_t)rv);
    conn_release_input(sock);
    origin_t *o = s->origin;
    if (flush(s) == 0 && !h2o_linklist_is_empty(&o->waiting))
        take_waiting(o);
}

/* ------------------------------------------------------------ sessions */

void h2_session_start(conn_t *conn, telex_http_call_t *call)
{
    origin_t *o = call->origin;
    telex_http_client_t *client = call->client;
    /* the call that opened the connection waits with the others for the server's SETTINGS */
    call->opening = 0;
    o->h2_connecting--;
    call_set_state(call, CALL_H2_WAITING);
    wait_link(call, 1);

    h2_session_t *s = telex_xcalloc(1, sizeof(*s));
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    /* nghttp2 allocates with its own malloc and returns NGHTTP2_ERR_NOMEM:
     * that stays an error, the connection's calls fail with it */
    int ok = nghttp2_session_callbacks_new(&cbs) == 0 && nghttp2_option_new(&opt) == 0;
    if (ok) {
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
        nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
        nghttp2_option_set_no_auto_window_update(opt, 1);
        nghttp2_option_set_peer_max_concurrent_streams(opt, ASSUMED_STREAMS);
        ok = nghttp2_session_client_new2(&s->ng, cbs, s, opt) == 0;
    }
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    if (ok) {
        nghttp2_settings_entry settings[] = {
            {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
            {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, TELEX_HTTP2_STREAM_WINDOW},
        };
        ok = nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, settings, 2) == 0 &&
             nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, CONNECTION_WINDOW) == 0;
    }
    if (!ok) {
        if (s->ng != NULL)
            nghttp2_session_del(s->ng);
        free(s);
        conn_close(conn);
        h2_connect_failed(o, "out of memory for an HTTP/2 session", 0);
        return;
    }
    s->conn = conn;
    s->origin = o;
    s->client = client;
    s->limit = ASSUMED_STREAMS;
    s->idle_since = uv_now(client->loop);
    h2o_linklist_init_anchor(&s->streams);
    h2o_linklist_insert(o->sessions.next, &s->link); /* first */
    o->h2_presettings++;
    client->stats.h2_sessions++;
    client->stats.h2_open++;
    conn->h2 = s;
    conn->call = NULL;
    conn->sock->data = conn;
    h2o_socket_read_start(conn->sock, on_sock_read);
    flush(s); /* the preface and our SETTINGS */
}

/* Fails every stream still on s (error NULL: there is none left), closes its
 * connection and frees it. Never called from inside mem_recv. */
static void session_close(h2_session_t *s, const char *error)
{
    if (s->closing)
        return;
    s->closing = 1;
    origin_t *o = s->origin;
    telex_http_client_t *client = s->client;
    char why[192];
    if (error == NULL && !s->ready) {
        snprintf(why, sizeof(why), "%s did not answer in HTTP/2 (no SETTINGS frame)", o->authority);
        error = why;
    } else if (error == NULL && s->goaway_sent != 0) {
        snprintf(why, sizeof(why), "HTTP/2 protocol error with %s (%s)", o->authority,
                 nghttp2_http2_strerror(s->goaway_sent));
        error = why;
    }
    h2o_linklist_unlink(&s->link);
    client->stats.h2_open--;
    int was_ready = s->ready;
    if (!was_ready)
        o->h2_presettings--;
    while (!h2o_linklist_is_empty(&s->streams)) {
        telex_http_call_t *call = call_of(s->streams.next);
        nghttp2_session_set_stream_user_data(s->ng, call->stream_id, NULL);
        stream_unlink(call);
        if (call->reused && !call->got_bytes && !call->retried && !client->freeing) {
            /* HTTP/1.1's rule: a kept connection that broke before any response
             * byte was most likely closed by the server as the stream went out */
            call->retried = 1;
            client->stats.retries++;
            call_set_state(call, CALL_H2_WAITING);
            call_timer_start(call, uv_now(client->loop) + (uint64_t)call->connect_timeout_ms);
            h2_place(call);
            continue;
        }
        call_set_errorf(call, "%s", error != NULL ? error : "the HTTP/2 connection closed");
        call_fail(call, 0);
    }
    s->conn->h2 = NULL;
    conn_close(s->conn);
    nghttp2_session_del(s->ng);
    free(s->wbuf);
    free(s);
    if (!client->freeing) {
        if (!was_ready && error != NULL)
            h2_connect_failed(o, error, 0); /* it never carried a stream: its waiting calls fail alike */
        else
            h2_connect_failed(o, NULL, 0); /* more connections if calls still wait */
    }
}

void h2_call_pause(telex_http_call_t *call)
{
    (void)call; /* its DATA is held from now on (on_data_chunk_recv) */
}

void h2_call_resume(telex_http_call_t *call)
{
    size_t len = call->held_len;
    if (len > 0) {
        call->held_len = 0;
        deliver(call, call->held, len);
        free(call->held);
        call->held = NULL;
        call->held_cap = 0;
        if (call->state == CALL_CANCELLED) {
            call_free(call);
            return;
        }
        if (call->sess != NULL) {
            nghttp2_session_consume_stream(call->sess->ng, call->stream_id, len);
            flush(call->sess);
        }
    }
    if (call->h2_ended && !call->paused && call->held_len == 0)
        call_finish(call, NULL, 0);
}

uint64_t h2_sweep_idle(telex_http_client_t *client, uint64_t now)
{
    uint64_t next = 0;
    for (origin_t *o = client->origins; o != NULL; o = o->next) {
        h2o_linklist_t *l = o->sessions.next;
        while (l != &o->sessions) {
            h2_session_t *s = session_of(l);
            l = l->next; /* session_close unlinks s */
            if (s->n_streams == 0 && s->ready && !s->in_recv) {
                uint64_t at = s->idle_since + idle_ms(client);
                if (at <= now)
                    session_close(s, NULL);
                else if (next == 0 || at < next)
                    next = at;
            }
        }
    }
    return next;
}

void h2_close_all(origin_t *o)
{
    while (!h2o_linklist_is_empty(&o->sessions))
        session_close(session_of(o->sessions.next), NULL);
}
