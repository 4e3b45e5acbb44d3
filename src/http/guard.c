/*
 * http/guard.c — the connection guard (see guard.h for what it decides).
 *
 * How it sees every read: h2o starts reading a socket with
 * uv_read_start(stream, alloc, on_read), and libuv keeps that callback until
 * the next uv_read_stop / uv_read_start. telex defines uv_read_start itself:
 * the executable's symbol comes first in the dynamic linker's lookup, for
 * libh2o's calls too, and ours forwards to libuv's (dlsym RTLD_NEXT). For an
 * accepted client stream it remembers h2o's callback and installs
 * guard_on_read, which looks at the request head in the h2o socket's input
 * buffer — on cleartext before h2o's callback sees the new bytes (they are
 * already in the buffer, just not counted), over TLS after it (decryption
 * happens inside it) — and calls h2o's unless it refused the request. Streams
 * are recognised through a table indexed by file descriptor; every other
 * stream (the upstream client's) passes through untouched.
 *
 * The head is parsed with picohttpparser's phr_parse_request, the very parser
 * h2o uses (libh2o exports it; no header is installed, so its prototype is
 * declared here): the guard and h2o can never disagree on where the head
 * ends or what a header says.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "http/guard.h"

#include <dlfcn.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "http/respond.h"
#include "http/server.h"
#include "util/alloc.h"
#include "util/log.h"

/* picohttpparser (inside libh2o); struct phr_header has this layout. */
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
                      size_t *path_len, int *minor_version, telex_head_header_t *headers, size_t *num_headers,
                      size_t last_len);

enum { PH_HEAD, PH_BODY, PH_DISPATCHED, PH_REFUSING, PH_LINGER, PH_H2 };

/* After a refusal, what the client still sends is read and dropped this long
 * (or until it closes) before the connection closes: closing a socket with
 * unread input makes the kernel send a reset, and the client would lose the
 * answer it had not read yet. */
#define LINGER_MS 2000

#define CLIENT_BUCKETS 4096

typedef struct client {
    struct client *next;
    uint8_t key[16];
    uint32_t conns;
    uint32_t unfinished;
} client_t;

struct telex_guard_conn {
    uv_tcp_t tcp; /* first: h2o's socket wraps it, the close callback frees it */
    telex_worker_t *worker;
    int fd;       /* -1 = not in the table */
    int tls;
    void *h1conn; /* h2o's HTTP/1 connection (sock->data); another value = upgraded to h2 */
    uv_read_cb h2o_read;
    int phase;
    int unfinished; /* counted in the client's unfinished requests */
    size_t head_len;
    uint64_t reserved; /* bytes taken from the global budget */
    uint64_t since_ms; /* when the current head began to be awaited */
    uint64_t requests;
    unsigned read_starts; /* uv_read_start calls seen */
    client_t *client;
    char *reply; /* a refusal being written */
    h2o_linklist_t link; /* in worker->guard_conns once admitted (client set) */
    /* HTTP/2: the request bodies h2o is receiving, from the frames it reads */
    h2o_socket_cb h2_read; /* h2o's socket read callback, called from guard_h2_read */
    size_t h2_skip;        /* bytes at the start of the input already counted */
    struct h2_pending {
        uint32_t stream;
        uint64_t bytes;
    } *h2_streams;
    size_t h2_n, h2_cap;
};

static telex_guard_options_t opts;
static _Atomic(telex_guard_conn_t *) *table;
static size_t table_len;
static atomic_uint_fast64_t in_flight;
static atomic_uint_fast64_t refused;
static client_t *clients[CLIENT_BUCKETS];
static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;

uint64_t telex_guard_bodies_bytes(void)
{
    return atomic_load(&in_flight);
}

uint64_t telex_guard_refused(void)
{
    return atomic_load(&refused);
}

h2o_iovec_t telex_head_header(const telex_head_t *head, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < head->n_headers; i++)
        if (head->headers[i].name_len == n && strncasecmp(head->headers[i].name, name, n) == 0)
            return h2o_iovec_init(head->headers[i].value, head->headers[i].value_len);
    return h2o_iovec_init(NULL, 0);
}

void telex_guard_init(const telex_guard_options_t *options)
{
    opts = *options;
    if (table != NULL)
        return;
    /* The guard sees reads only if libh2o's calls to uv_read_start reach
     * ours (a dynamically linked libuv; the executable's symbol first). */
    if (dlsym(RTLD_DEFAULT, "uv_read_start") != (void *)uv_read_start)
        telex_log_event("error", "connection guard inactive",
                        "\"why\":\"uv_read_start does not resolve to telex's wrapper (libuv linked statically?): "
                        "request heads are not checked before their bodies are read\"");
    struct rlimit rl;
    size_t n = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > n)
        n = rl.rlim_cur;
    if (n > (1u << 22))
        n = 1u << 22;
    /* untouched pages of the table are never resident */
    table = telex_xcalloc(n, sizeof(*table));
    table_len = n;
}

/* ------------------------------------------------------------ budget */

static int budget_take(uint64_t n)
{
    if (opts.max_bodies_bytes == 0) {
        atomic_fetch_add(&in_flight, n);
        return 0;
    }
    uint_fast64_t cur = atomic_load(&in_flight);
    do {
        if (cur + n > opts.max_bodies_bytes)
            return -1;
    } while (!atomic_compare_exchange_weak(&in_flight, &cur, cur + n));
    return 0;
}

static void budget_release(telex_guard_conn_t *c)
{
    if (c->reserved != 0)
        atomic_fetch_sub(&in_flight, c->reserved);
    c->reserved = 0;
}

/* ------------------------------------------------------------ clients */

static void client_key(const struct sockaddr_storage *a, uint8_t key[16])
{
    memset(key, 0, 16);
    if (a->ss_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)a)->sin_addr, 4);
    } else if (a->ss_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(b, mapped, 12) == 0)
            memcpy(key, b, 16); /* an IPv4 client on a dual-stack socket */
        else
            memcpy(key, b, 8); /* one IPv6 client = one /64 */
    }
}

static size_t client_bucket(const uint8_t key[16])
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return (size_t)(h % CLIENT_BUCKETS);
}

/* Takes a connection slot of the client; NULL when it has too many. */
static client_t *client_enter(const uint8_t key[16])
{
    pthread_mutex_lock(&clients_lock);
    client_t **b = &clients[client_bucket(key)], *cl;
    for (cl = *b; cl != NULL; cl = cl->next)
        if (memcmp(cl->key, key, 16) == 0)
            break;
    if (cl == NULL) {
        cl = telex_xcalloc(1, sizeof(*cl));
        memcpy(cl->key, key, 16);
        cl->next = *b;
        *b = cl;
    }
    if (opts.max_conns_per_client != 0 && cl->conns >= opts.max_conns_per_client)
        cl = NULL;
    else
        cl->conns++;
    pthread_mutex_unlock(&clients_lock);
    return cl;
}

static void client_leave(client_t *cl)
{
    pthread_mutex_lock(&clients_lock);
    cl->conns--;
    if (cl->conns == 0 && cl->unfinished == 0) {
        client_t **p = &clients[client_bucket(cl->key)];
        while (*p != cl)
            p = &(*p)->next;
        *p = cl->next;
        free(cl);
    }
    pthread_mutex_unlock(&clients_lock);
}

/* Marks c's request unfinished (or not). Returns -1 when the client has too
 * many unfinished requests already. */
static int set_unfinished(telex_guard_conn_t *c, int on)
{
    if (c->client == NULL || c->unfinished == on)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&clients_lock);
    if (on && opts.max_unfinished_per_client != 0 && c->client->unfinished >= opts.max_unfinished_per_client) {
        rc = -1;
    } else {
        c->client->unfinished += on ? 1 : -1;
        c->unfinished = on;
    }
    pthread_mutex_unlock(&clients_lock);
    return rc;
}

/* ------------------------------------------------------------ refusing */

typedef int (*read_start_fn)(uv_stream_t *, uv_alloc_cb, uv_read_cb);
static read_start_fn real_read_start;
static pthread_once_t real_once = PTHREAD_ONCE_INIT;

static void find_real_read_start(void)
{
    real_read_start = (read_start_fn)dlsym(RTLD_NEXT, "uv_read_start");
}


static telex_guard_conn_t *conn_of_fd(int fd)
{
    if (table == NULL || fd < 0 || (size_t)fd >= table_len)
        return NULL;
    return atomic_load(&table[fd]);
}

static telex_guard_conn_t *conn_of_stream(uv_stream_t *stream)
{
    uv_os_fd_t fd;
    if (table == NULL || uv_fileno((uv_handle_t *)stream, &fd) != 0)
        return NULL;
    telex_guard_conn_t *c = conn_of_fd(fd);
    return (void *)c == (void *)stream ? c : NULL;
}

/* Is h2o reading a request on c, and writing nothing? (It stops reading to
 * dispatch a request or to answer one itself: 400, 413, 417, 100 Continue;
 * then the connection is h2o's business.) */
static int h2o_is_reading(telex_guard_conn_t *c)
{
    h2o_socket_t *sock = c->tcp.data;
    return c->h2o_read != NULL && !uv_is_closing((uv_handle_t *)&c->tcp) && sock != NULL && sock->_cb.read != NULL &&
           sock->_cb.write == NULL;
}

/* Makes h2o close the connection: its read callback gets end-of-file. Only
 * while h2o_is_reading (else nothing happens; a later sweep tries again). */
static void close_now(telex_guard_conn_t *c)
{
    if (!h2o_is_reading(c))
        return;
    c->phase = PH_REFUSING;
    uv_buf_t none = uv_buf_init(NULL, 0);
    c->h2o_read((uv_stream_t *)&c->tcp, UV_EOF, &none);
}

static void drain_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    (void)suggested;
    static __thread char sink[65536];
    *buf = uv_buf_init(sink, sizeof sink);
}

static void drain_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread >= 0)
        return; /* dropped */
    uv_read_stop(stream);
    close_now((telex_guard_conn_t *)stream);
}

static void on_refusal_written(h2o_socket_t *sock, const char *err)
{
    telex_guard_conn_t *c = conn_of_fd(h2o_socket_get_fd(sock));
    if (c == NULL || c->tcp.data != sock)
        return;
    free(c->reply);
    c->reply = NULL;
    if (err == NULL && c->fd >= 0 && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        shutdown(c->fd, SHUT_WR); /* the answer is complete: FIN after it */
        c->phase = PH_LINGER;
        c->since_ms = uv_now(c->tcp.loop);
        pthread_once(&real_once, find_real_read_start);
        if (real_read_start != NULL && real_read_start((uv_stream_t *)&c->tcp, drain_alloc, drain_read) == 0)
            return;
    }
    close_now(c);
}

/* Answers the request h2o is reading with `status` and closes the
 * connection; the body is never read. */
static void refuse(telex_guard_conn_t *c, int status, unsigned retry_after, const char *body)
{
    h2o_socket_t *sock = c->tcp.data;
    budget_release(c);
    set_unfinished(c, 0);
    atomic_fetch_add(&refused, 1);
    if (!h2o_is_reading(c))
        return; /* not reachable: inspect checks first */
    c->phase = PH_REFUSING;
    uv_read_stop((uv_stream_t *)&c->tcp);
    char ra[40] = "";
    if (retry_after > 0)
        snprintf(ra, sizeof ra, "Retry-After: %u\r\n", retry_after);
    size_t blen = strlen(body);
    size_t cap = blen + 256;
    c->reply = telex_xmalloc(cap);
    int n = snprintf(c->reply, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n%s",
                     status, telex_reason(status), blen, ra, body);
    h2o_iovec_t buf = h2o_iovec_init(c->reply, (size_t)n);
    h2o_socket_write(sock, &buf, 1, on_refusal_written);
}

static void refuse_plain(telex_guard_conn_t *c, int status, unsigned retry_after, const char *code,
                         const char *message)
{
    const char *type = status >= 500 ? "server_error" : status == 429 ? "rate_limit_error" : "invalid_request_error";
    char *body = telex_error_body(0, status, type, code, NULL, message); /* never NULL: no param, code a literal */
    refuse(c, status, retry_after, body);
    free(body);
}

/* ------------------------------------------------------------ heads */

typedef struct {
    telex_head_t head;
    telex_head_header_t headers[H2O_MAX_HEADERS];
    int smuggling;      /* CL + TE, or Content-Lengths that differ */
    int h2o_answers;    /* h2o refuses it itself (bad CL, unknown TE, over its cap) */
    int has_body;       /* chunked, a Content-Length above 0, or ambiguous framing */
} parsed_t;

static size_t parse_size(const char *s, size_t n)
{
    if (n == 0 || n > 19)
        return SIZE_MAX;
    size_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return SIZE_MAX;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    return v;
}

/* Parses the head at the start of buf. Returns its length, -2 when
 * incomplete, -1 when it is not a valid HTTP/1 head. */
static int parse_head(const char *buf, size_t len, parsed_t *p)
{
    memset(&p->head, 0, sizeof p->head);
    p->smuggling = p->h2o_answers = p->has_body = 0;
    if (len > H2O_MAX_REQLEN)
        len = H2O_MAX_REQLEN;
    int minor;
    size_t nh = H2O_MAX_HEADERS;
    const char *m, *path;
    size_t mlen, plen;
    int r = phr_parse_request(buf, len, &m, &mlen, &path, &plen, &minor, p->headers, &nh, 0);
    if (r < 0)
        return r;
    p->head.method = h2o_iovec_init(m, mlen);
    p->head.path = h2o_iovec_init(path, plen);
    p->head.headers = p->headers;
    p->head.n_headers = nh;
    size_t cl = SIZE_MAX;
    int n_cl = 0, te = 0;
    for (size_t i = 0; i < nh; i++) {
        const telex_head_header_t *h = &p->headers[i];
        if (h->name_len == 14 && strncasecmp(h->name, "content-length", 14) == 0) {
            size_t v = parse_size(h->value, h->value_len);
            if (v == SIZE_MAX)
                p->h2o_answers = 1;
            if (n_cl > 0 && v != cl)
                p->smuggling = 1;
            cl = v;
            n_cl++;
        } else if (h->name_len == 17 && strncasecmp(h->name, "transfer-encoding", 17) == 0) {
            if (te || !(h->value_len == 7 && strncasecmp(h->value, "chunked", 7) == 0))
                p->h2o_answers = 1;
            te = 1;
        }
    }
    if (te && n_cl > 0)
        p->smuggling = 1;
    p->has_body = te || (n_cl > 0 && cl != 0 && cl != SIZE_MAX) || p->smuggling;
    p->head.content_length = te ? SIZE_MAX : cl;
    return r;
}

/* ------------------------------------------------------------ the read path */

static void set_h2(telex_guard_conn_t *c)
{
    budget_release(c);
    set_unfinished(c, 0);
    c->phase = PH_H2;
}

/* ---- HTTP/2: what h2o buffers, counted from the frames ------------------
 *
 * h2o's HTTP/2 read callback consumes every complete frame in the socket's
 * input. Wrapped (guard_h2_read), the complete frames are counted before it
 * does: DATA adds to its stream's pending body, END_STREAM or RST_STREAM ends
 * it. The sum is this connection's share of the bodies-in-flight budget; a
 * connection that would go over it is closed (h2o 2.2 gives no way to answer
 * a stream before its body is complete). The frames of the read that
 * started the connection are processed by h2o before the wrapper exists and
 * are not counted (at most one read). */

static struct h2_pending *h2_stream(telex_guard_conn_t *c, uint32_t id, int create)
{
    for (size_t i = 0; i < c->h2_n; i++)
        if (c->h2_streams[i].stream == id)
            return &c->h2_streams[i];
    if (!create)
        return NULL;
    if (c->h2_n == c->h2_cap) {
        size_t cap = c->h2_cap ? c->h2_cap * 2 : 8;
        c->h2_streams = telex_xrealloc(c->h2_streams, cap * sizeof(*c->h2_streams));
        c->h2_cap = cap;
    }
    c->h2_streams[c->h2_n] = (struct h2_pending){.stream = id, .bytes = 0};
    return &c->h2_streams[c->h2_n++];
}

static void h2_end(telex_guard_conn_t *c, uint32_t id, uint64_t *total)
{
    struct h2_pending *p = h2_stream(c, id, 0);
    if (p == NULL)
        return;
    *total -= p->bytes;
    *p = c->h2_streams[--c->h2_n];
}

/* Counts the complete frames in buf[c->h2_skip, len). Returns the offset
 * after the last complete frame; *total is the connection's pending body. */
static size_t h2_count(telex_guard_conn_t *c, const uint8_t *buf, size_t len, uint64_t *total)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    size_t at = c->h2_skip <= len ? c->h2_skip : len;
    if (at == 0 && len >= sizeof preface - 1 && memcmp(buf, preface, sizeof preface - 1) == 0)
        at = sizeof preface - 1;
    while (len - at >= 9) {
        size_t flen = ((size_t)buf[at] << 16) | ((size_t)buf[at + 1] << 8) | buf[at + 2];
        if (len - at - 9 < flen)
            break;
        uint8_t type = buf[at + 3], flags = buf[at + 4];
        uint32_t id = (((uint32_t)buf[at + 5] & 0x7f) << 24) | ((uint32_t)buf[at + 6] << 16) |
                      ((uint32_t)buf[at + 7] << 8) | buf[at + 8];
        if (type == 0x0 /* DATA */ && id != 0) {
            if (flags & 0x1) { /* END_STREAM: the body is complete, the handler takes over */
                h2_end(c, id, total);
            } else {
                struct h2_pending *p = h2_stream(c, id, 1);
                p->bytes += flen;
                *total += flen;
            }
        } else if (type == 0x3 /* RST_STREAM */) {
            h2_end(c, id, total);
        }
        at += 9 + flen;
    }
    return at;
}

static void guard_h2_read(h2o_socket_t *sock, const char *err)
{
    telex_guard_conn_t *c = conn_of_fd(h2o_socket_get_fd(sock));
    if (c == NULL || c->tcp.data != sock || c->h2_read == NULL)
        return; /* cannot happen: installed only with h2_read set */
    h2o_socket_cb h2o_cb = c->h2_read;
    if (err != NULL) {
        h2o_cb(sock, err);
        return;
    }
    size_t before = sock->input->size;
    uint64_t total = c->reserved;
    size_t counted = h2_count(c, (const uint8_t *)sock->input->bytes, before, &total);
    if (total > c->reserved) {
        if (budget_take(total - c->reserved) != 0) {
            atomic_fetch_add(&refused, 1);
            h2o_cb(sock, h2o_socket_error_closed); /* over the budget: h2o closes the connection */
            return;
        }
    } else if (total < c->reserved) {
        atomic_fetch_sub(&in_flight, c->reserved - total);
    }
    c->reserved = total;
    h2o_cb(sock, NULL);
    /* h2o consumed whole frames from the start; what it left of the
     * counted ones is skipped next time */
    size_t consumed = before - (sock->input != NULL ? sock->input->size : 0);
    c->h2_skip = counted > consumed ? counted - consumed : 0;
}

/* Called when h2o (re)starts reading an HTTP/2 connection: wraps its
 * socket read callback. */
static void h2_wrap(telex_guard_conn_t *c)
{
    h2o_socket_t *sock = c->tcp.data;
    if (sock == NULL || sock->_cb.read == NULL || sock->_cb.read == guard_h2_read)
        return;
    c->h2_read = sock->_cb.read;
    sock->_cb.read = guard_h2_read;
}

/* Looks at the first `avail` bytes of the socket's input (a request head
 * and what came of its body). Returns 1 when it refused the request. */
static int inspect(telex_guard_conn_t *c, size_t avail)
{
    h2o_socket_t *sock = c->tcp.data;
    if (c->phase != PH_HEAD && c->phase != PH_BODY)
        return 0;
    if (!h2o_is_reading(c))
        return 0; /* h2o has dispatched the request or answers it itself */
    if (c->h1conn == NULL) { /* TLS: the protocol is known once application data flows */
        if (avail == 0)
            return 0;
        h2o_iovec_t alpn = h2o_socket_ssl_get_selected_protocol(sock);
        if (alpn.len == 2 && memcmp(alpn.base, "h2", 2) == 0) {
            set_h2(c);
            return 0;
        }
        c->h1conn = sock->data;
    } else if (sock->data != c->h1conn) {
        set_h2(c); /* Upgrade: h2c */
        return 0;
    }
    if (avail == 0)
        return 0;
    if (set_unfinished(c, 1) != 0) {
        refuse_plain(c, 429, 1, "too_many_unfinished_requests",
                     "This client address has too many unfinished requests; finish or close some first.");
        return 1;
    }
    parsed_t p;
    int r = parse_head(sock->input->bytes, avail, &p);
    if (r < 0)
        return 0; /* incomplete; or invalid and h2o answers 400 itself */
    if (!p.has_body || p.h2o_answers)
        return 0;
    if (p.smuggling) {
        refuse_plain(c, 400, 0, "ambiguous_request_length",
                     "The request has both Content-Length and Transfer-Encoding, or two different "
                     "Content-Lengths (RFC 9112 section 6.3).");
        return 1;
    }
    size_t body = avail - (size_t)r;
    p.head.body_received = body;
    int ask = 0;
    if (c->phase == PH_HEAD) {
        c->phase = PH_BODY;
        c->head_len = (size_t)r;
        uint64_t want = p.head.content_length != SIZE_MAX ? p.head.content_length : body;
        if (budget_take(want) == 0)
            c->reserved = want;
        else
            p.head.over_budget = true;
        ask = 1;
    } else if (body > c->reserved) { /* a chunked body grows */
        if (budget_take(body - c->reserved) == 0)
            c->reserved = body;
        else
            p.head.over_budget = true;
        ask = p.head.over_budget || body > opts.max_body_bytes;
    }
    telex_head_verdict_t v = {0};
    if (ask && opts.on_head != NULL && opts.on_head(c->worker, &p.head, &v) != 0) {
        refuse(c, v.status, v.retry_after, v.body);
        return 1;
    }
    if (p.head.over_budget) {
        refuse_plain(c, 503, 1, "overloaded", "The gateway is receiving too many request bodies; retry shortly.");
        return 1;
    }
    return 0;
}

static void guard_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    telex_guard_conn_t *c = (telex_guard_conn_t *)stream;
    if (nread > 0 && c->phase == PH_HEAD && !c->tls && c->requests == 0) {
        /* h2c with prior knowledge: the preface, as h2o checks it */
        h2o_socket_t *sock = stream->data;
        static const char preface[] = "PRI * HTTP/2";
        size_t have = sock->input->size + (size_t)nread;
        if (have >= sizeof preface - 1 && memcmp(sock->input->bytes, preface, sizeof preface - 1) == 0)
            c->phase = PH_H2;
    }
    h2o_socket_t *sock = stream->data;
    if (nread > 0 && !c->tls && c->phase == PH_HEAD && buf->base == sock->input->bytes + sock->input->size) {
        /* cleartext: decide on a complete head before h2o sees it, so h2o's
         * own answers (a plain 413 over its cap) never come first */
        if (inspect(c, sock->input->size + (size_t)nread))
            return; /* refused: h2o never sees these bytes */
    }
    c->h2o_read(stream, nread, buf);
    if (nread < 0 || uv_is_closing((uv_handle_t *)stream))
        return;
    inspect(c, ((h2o_socket_t *)stream->data)->input->size);
}

/* libuv's uv_read_start, seen first by everyone (see the top of the file). */
int uv_read_start(uv_stream_t *stream, uv_alloc_cb alloc_cb, uv_read_cb read_cb)
{
    pthread_once(&real_once, find_real_read_start);
    if (real_read_start == NULL)
        return UV_ENOSYS;
    telex_guard_conn_t *c = read_cb != guard_on_read ? conn_of_stream(stream) : NULL;
    if (c != NULL) {
        c->h2o_read = read_cb;
        if (c->phase != PH_H2 && c->tls && c->h1conn == NULL && c->read_starts++ > 0) {
            /* Not the first start: that one begins the TLS handshake, before
             * h2o has created the SSL object (asking it for ALPN would crash) */
            h2o_socket_t *sock = stream->data;
            h2o_iovec_t alpn = sock != NULL && sock->ssl != NULL ? h2o_socket_ssl_get_selected_protocol(sock)
                                                                 : h2o_iovec_init(NULL, 0);
            if (alpn.len == 2 && memcmp(alpn.base, "h2", 2) == 0)
                set_h2(c); /* the handshake chose h2: h2o starts reading HTTP/2 now */
        }
        if (c->phase == PH_H2)
            h2_wrap(c);
        if (c->phase == PH_DISPATCHED) { /* the previous response is done: a new head */
            c->phase = PH_HEAD;
            c->since_ms = uv_now(stream->loop);
        }
        if (c->phase == PH_REFUSING || c->phase == PH_LINGER)
            return 0;
        read_cb = guard_on_read;
    }
    return real_read_start(stream, alloc_cb, read_cb);
}

/* ------------------------------------------------------------ life cycle */

telex_guard_conn_t *telex_guard_new(telex_worker_t *worker)
{
    telex_guard_conn_t *c = telex_xcalloc(1, sizeof(*c));
    c->worker = worker;
    c->fd = -1;
    return c;
}

int telex_guard_admit(telex_guard_conn_t *c, int tls)
{
    struct sockaddr_storage peer;
    int len = sizeof peer;
    uint8_t key[16];
    memset(&peer, 0, sizeof peer);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &len) != 0)
        return -1;
    client_key(&peer, key);
    if ((c->client = client_enter(key)) == NULL) {
        atomic_fetch_add(&refused, 1);
        return -1;
    }
    c->tls = tls;
    c->since_ms = uv_now(c->tcp.loop);
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 && fd >= 0 && (size_t)fd < table_len) {
        c->fd = fd;
        atomic_store(&table[fd], c);
    }
    telex_worker_t *w = c->worker;
    h2o_linklist_insert(w->guard_conns.next, &c->link); /* first */
    w->connections++;
    return 0;
}

void telex_guard_accepted(telex_guard_conn_t *c)
{
    if (!c->tls)
        c->h1conn = ((h2o_socket_t *)c->tcp.data)->data;
    static atomic_int warned;
    if (c->h2o_read == NULL && c->client != NULL && !atomic_exchange(&warned, 1))
        telex_log_event("error", "connection guard inactive",
                        "\"why\":\"h2o started reading a connection without telex's uv_read_start\"");
}

void telex_guard_closed(telex_guard_conn_t *c)
{
    if (c->fd >= 0) {
        telex_guard_conn_t *mine = c;
        atomic_compare_exchange_strong(&table[c->fd], &mine, NULL);
    }
    budget_release(c);
    if (c->client != NULL) {
        set_unfinished(c, 0);
        client_leave(c->client);
        h2o_linklist_unlink(&c->link);
        c->worker->connections--;
    }
    free(c->reply);
    free(c->h2_streams);
    free(c);
}

int telex_guard_on_dispatch(h2o_req_t *req)
{
    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return 0;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    telex_guard_conn_t *c = sock != NULL ? conn_of_fd(h2o_socket_get_fd(sock)) : NULL;
    if (c == NULL || c->tcp.data != sock)
        return 0;
    int inspected = c->phase == PH_BODY;
    budget_release(c);
    set_unfinished(c, 0);
    c->phase = PH_DISPATCHED;
    c->requests++;
    if (inspected)
        return 0;
    /* The body came with the head in one read: h2o went straight on to the
     * handler. The head is still at the start of the input buffer. */
    parsed_t p;
    if (parse_head(sock->input->bytes, sock->input->size, &p) > 0 && p.has_body && p.smuggling) {
        atomic_fetch_add(&refused, 1);
        req->http1_is_persistent = 0;
        telex_respond_error(req, 400, "invalid_request_error", "ambiguous_request_length", NULL,
                            "The request has both Content-Length and Transfer-Encoding, or two different "
                            "Content-Lengths (RFC 9112 section 6.3).");
        return 1;
    }
    return 0;
}

void telex_guard_sweep(telex_worker_t *w, uint64_t now_ms)
{
    for (h2o_linklist_t *l = w->guard_conns.next, *next; l != &w->guard_conns; l = next) {
        next = l->next;
        telex_guard_conn_t *c = H2O_STRUCT_FROM_MEMBER(telex_guard_conn_t, link, l);
        if (c->phase == PH_HEAD && opts.header_timeout_ms != 0 && now_ms - c->since_ms >= opts.header_timeout_ms) {
            atomic_fetch_add(&refused, 1);
            close_now(c);
        } else if (c->phase == PH_LINGER && now_ms - c->since_ms >= LINGER_MS) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            close_now(c);
        }
    }
}
