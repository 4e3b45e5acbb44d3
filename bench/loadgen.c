/*
 * bench/loadgen.c — a streaming load generator for SSE chat endpoints.
 *
 * Opens C concurrent HTTP/1.1 streaming POSTs (started at a target rate),
 * reads each answer as an event stream with libtelex's parser, and records:
 *   - per-event latency: receive time (CLOCK_MONOTONIC) minus the chunk's
 *     "mock_sent_ns" (the send stamp `telex mock` adds with mock.stamp), also
 *     split into each answer's first stamped event and the later ones;
 *   - time to first byte (request written -> first response byte), connect time;
 *   - completions (a 2xx event stream that ended cleanly after `data: [DONE]`)
 *     and errors by kind.
 * Optionally it samples the RSS and CPU time of process trees (--pids) while
 * it runs, so a script can relate a gateway's cost to the load it carried.
 *
 * The HTTP client is deliberately small: one request at a time per
 * connection (keep-alive reuse, no pipelining), chunked transfer decoding,
 * Content-Length and close-delimited bodies. One libuv loop, one thread;
 * per-stream state is a few hundred bytes, so 10,000+ streams are cheap.
 * To a loopback target, more than 10,000 streams are spread over source
 * addresses 127.0.0.1, .2, ... (--source-ips; see SOURCE_PORTS_PER_IP).
 *
 * Output: a human summary on stderr, one JSON object on stdout.
 * "Steady window" figures use only events received while every stream of the
 * first wave was open (from the moment the last of them got its first byte,
 * or the end of the ramp, to the first completion or the end of the run).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include <telex/sse.h>

/* ------------------------------------------------------------ options */

typedef struct {
    const char *url;
    char host[256];
    char port[16];
    char path[1024];
    int concurrency;
    long requests; /* 0 = as many as fit in --duration */
    double rate;   /* new streams per second; 0 = all at once */
    double duration;
    double warmup;
    char *headers; /* extra request header lines, each ending in CRLF */
    size_t headers_len;
    char *body;
    size_t body_len;
    const char *label;
    int pids[64];
    int n_pids;
    double sample_ms;
    int source_ips; /* -1: automatic (see SOURCE_PORTS_PER_IP) */
} options_t;

/* ------------------------------------------------------------ state */

enum { ST_FREE, ST_CONNECTING, ST_HEADERS, ST_BODY };
enum { BM_CHUNKED, BM_LENGTH, BM_CLOSE };
enum { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER };

enum {
    E_CONNECT,
    E_STATUS,
    E_NOT_SSE,
    E_RESET,
    E_EOF,
    E_EOF_HEAD, /* closed by the server before the response head was complete (often before any byte) */
    E_NO_DONE,
    E_PROTOCOL,
    E_SSE,
    E_COUNT
};
static const char *const error_names[E_COUNT] = {"connect",      "http_status",        "not_event_stream",
                                                 "reset",        "eof_mid_body",       "eof_before_response",
                                                 "no_done",      "protocol",           "sse_parse"};

typedef struct {
    uint64_t recv_ns;
    int64_t lat_ns;
    int first; /* the stream's first stamped event */
} sample_t;

typedef struct {
    uint64_t *v;
    size_t n, cap;
} u64vec_t;

typedef struct conn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    int index;
    int state;
    int open;       /* tcp handle initialised, not yet closed */
    int in_request; /* a request is outstanding on it */
    uint64_t t_connect;
    uint64_t t_req;
    uint64_t t_first;
    int status;
    int keep_alive;
    int is_sse;
    int first_wave;
    char *hbuf;
    size_t hlen, hcap;
    int body_mode;
    uint64_t remaining;
    int chunk_state;
    char line[80];
    size_t line_len;
    telex_sse_parser_t *parser;
    int saw_done;
    int sse_failed;
    int stamped_seen; /* the answer's first stamped event arrived */
} conn_t;

typedef struct {
    uint64_t rss_base_kb, rss_peak_kb;
    u64vec_t rss_window; /* samples (kB) inside the steady window */
    uint64_t cpu_ticks_start, cpu_ticks_end;
    uint64_t cpu_ticks_window_start, cpu_ticks_window_end;
    int window_started, window_ended;
} proc_stats_t;

static options_t opt;
static uv_loop_t *loop;
static conn_t *conns;
static char *request_buf;
static size_t request_len;
static struct sockaddr_storage target_addr;
/* Source addresses for a loopback target. connect(2) takes its ephemeral
 * port from the even half of net.ipv4.ip_local_port_range first (~14,000 of
 * the default 28,232), and once those are used up every connect scans them
 * all before trying an odd one: measured here, connects 14,000 to 19,000 to
 * one address cost 1-4 ms each, blocking this loop for seconds (so the
 * server's header timeout closed connections whose request was not sent yet,
 * and every later event was read late). Each address of 127.0.0.0/8 has its
 * own ports: streams are spread over 127.0.0.1, .2, ... at most this many
 * each (IP_BIND_ADDRESS_NO_PORT: the port is still chosen at connect). */
#define SOURCE_PORTS_PER_IP 10000
#define MAX_SOURCE_IPS 64
static struct sockaddr_in source_addr[MAX_SOURCE_IPS];
static int n_source_addrs;

static uint64_t t_start, t_stop, t_ramp_end, t_steady_start, t_steady_end;
static uint64_t t_last_completion;
static int stopping;
static long issued, completed, completed_after_warmup, unfinished, errors[E_COUNT];
static long status_counts[600];
static int started_streams; /* first-wave streams started */
static long wrong_content_type;   /* 2xx answers without Content-Type: text/event-stream */
static int first_wave_headers;
static uint64_t events_total, events_after_warmup, stamped_total;
static uint64_t now_ns; /* receive time of the bytes being processed */
static size_t live_conns;

static sample_t *samples;
static size_t n_samples, cap_samples;
static u64vec_t ttfb, connect_times, durations, loop_lag;

static uv_timer_t ramp_timer, stop_timer, sample_timer, lag_timer;
/* This client's own loop lag: how late a 50 ms timer fires. A client that
 * falls seconds behind (too many events for its core) delays its requests and
 * its reads, and the figures then measure it, not the server. */
#define LAG_TICK_MS 50
static uint64_t lag_prev_ns;
static proc_stats_t proc;

static char read_buf[256 * 1024];

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const char *arg)
{
    fprintf(stderr, "loadgen: %s%s\n", what, arg);
    exit(2);
}

static void vec_push(u64vec_t *v, uint64_t x)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 1024;
        v->v = realloc(v->v, v->cap * sizeof(*v->v));
        if (v->v == NULL)
            die("out of memory", "");
    }
    v->v[v->n++] = x;
}

static void sample_push(uint64_t recv, int64_t lat, int first)
{
    if (n_samples == cap_samples) {
        cap_samples = cap_samples ? cap_samples * 2 : 65536;
        samples = realloc(samples, cap_samples * sizeof(*samples));
        if (samples == NULL)
            die("out of memory", "");
    }
    samples[n_samples].recv_ns = recv;
    samples[n_samples].lat_ns = lat;
    samples[n_samples].first = first;
    n_samples++;
}

/* ------------------------------------------------------------ /proc sampling */

/* Sums VmRSS (kB) and utime+stime (ticks) over the trees rooted at opt.pids. */
static void proc_read(uint64_t *rss_kb, uint64_t *ticks)
{
    *rss_kb = 0;
    *ticks = 0;
    if (opt.n_pids == 0)
        return;
    /* Map every process to its parent, then keep descendants of the roots. */
    int pids[8192], ppids[8192], n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL && n < 8192) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        char path[300], buf[1024];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        char *rp = strrchr(buf, ')');
        if (rp == NULL)
            continue;
        char state;
        int ppid;
        if (sscanf(rp + 2, "%c %d", &state, &ppid) != 2)
            continue;
        pids[n] = atoi(e->d_name);
        ppids[n] = ppid;
        n++;
    }
    if (d != NULL)
        closedir(d);
    char in_tree[8192] = {0};
    for (int i = 0; i < n; i++)
        for (int r = 0; r < opt.n_pids; r++)
            if (pids[i] == opt.pids[r])
                in_tree[i] = 1;
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < n; i++) {
            if (in_tree[i])
                continue;
            for (int j = 0; j < n; j++)
                if (in_tree[j] && ppids[i] == pids[j]) {
                    in_tree[i] = 1;
                    changed = 1;
                    break;
                }
        }
    }
    for (int i = 0; i < n; i++) {
        if (!in_tree[i])
            continue;
        char path[64], buf[4096];
        snprintf(path, sizeof path, "/proc/%d/stat", pids[i]);
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            size_t len = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[len] = '\0';
            char *rp = strrchr(buf, ')');
            unsigned long long ut = 0, st = 0;
            /* fields after ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
            if (rp != NULL &&
                sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
                *ticks += ut + st;
        }
        snprintf(path, sizeof path, "/proc/%d/status", pids[i]);
        f = fopen(path, "r");
        if (f != NULL) {
            char line[256];
            while (fgets(line, sizeof line, f) != NULL)
                if (strncmp(line, "VmRSS:", 6) == 0) {
                    *rss_kb += strtoull(line + 6, NULL, 10);
                    break;
                }
            fclose(f);
        }
    }
}

static void on_sample(uv_timer_t *t)
{
    (void)t;
    uint64_t rss, ticks;
    proc_read(&rss, &ticks);
    if (rss > proc.rss_peak_kb)
        proc.rss_peak_kb = rss;
    if (t_steady_start != 0 && !proc.window_started) {
        proc.window_started = 1;
        proc.cpu_ticks_window_start = ticks;
    }
    if (t_steady_start != 0 && t_steady_end == 0)
        vec_push(&proc.rss_window, rss);
    if (t_steady_end != 0 && proc.window_started && !proc.window_ended) {
        proc.window_ended = 1;
        proc.cpu_ticks_window_end = ticks;
    }
}

/* ------------------------------------------------------------ requests */

static void conn_start(conn_t *c);
static void send_request(conn_t *c);
static void maybe_finish(void);

static int more_requests_allowed(void)
{
    if (stopping)
        return 0;
    if (opt.requests == 0)
        return 1;
    return issued < opt.requests;
}

static void mark_steady_end(uint64_t t)
{
    if (t_steady_end == 0 && t_steady_start != 0)
        t_steady_end = t;
}

static void on_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    c->open = 0;
    c->state = ST_FREE;
    live_conns--;
    if (more_requests_allowed() && !stopping) {
        conn_start(c); /* a replacement for a connection that ended */
        return;
    }
    maybe_finish();
}

static void conn_close(conn_t *c)
{
    if (!c->open || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void first_wave_settled(conn_t *c)
{
    if (c->first_wave && ++first_wave_headers == opt.concurrency && t_steady_start == 0 && t_ramp_end != 0)
        t_steady_start = now_ns > t_ramp_end ? now_ns : t_ramp_end;
}

/* A failed stream does not end the steady window (the others are still
 * open); it only stops counting towards "every stream has started". */
static void request_failed(conn_t *c, int kind)
{
    if (c->in_request) {
        c->in_request = 0;
        errors[kind]++;
        if (c->first_wave && c->t_first == 0)
            first_wave_settled(c);
        c->first_wave = 0;
    }
    conn_close(c);
}

static void request_done(conn_t *c)
{
    uint64_t now = now_ns;
    c->in_request = 0;
    if (!c->saw_done) {
        errors[E_NO_DONE]++;
    } else if (c->sse_failed) {
        errors[E_SSE]++;
    } else {
        completed++;
        if (now >= t_start + (uint64_t)(opt.warmup * 1e9))
            completed_after_warmup++;
        t_last_completion = now;
        vec_push(&durations, now - c->t_req);
    }
    if (c->first_wave)
        mark_steady_end(now);
    c->first_wave = 0;
    if (c->keep_alive && more_requests_allowed()) {
        issued++;
        send_request(c);
        return;
    }
    conn_close(c);
}

static int on_sse_event(void *user, const telex_sse_event_t *ev)
{
    conn_t *c = user;
    events_total++;
    if (now_ns >= t_start + (uint64_t)(opt.warmup * 1e9))
        events_after_warmup++;
    if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
        c->saw_done = 1;
        return 0;
    }
    static const char key[] = "\"mock_sent_ns\":";
    const char *p = memmem(ev->data, ev->data_len, key, sizeof key - 1);
    if (p != NULL) {
        p += sizeof key - 1;
        const char *end = ev->data + ev->data_len;
        while (p < end && *p == ' ')
            p++;
        uint64_t stamp = 0;
        while (p < end && *p >= '0' && *p <= '9')
            stamp = stamp * 10 + (uint64_t)(*p++ - '0');
        if (stamp != 0) {
            stamped_total++;
            sample_push(now_ns, (int64_t)(now_ns - stamp), !c->stamped_seen);
            c->stamped_seen = 1;
        }
    }
    return 0;
}

static const telex_sse_callbacks_t sse_callbacks = {on_sse_event, NULL, NULL};

static void on_write(uv_write_t *req, int status)
{
    conn_t *c = req->data;
    if (status < 0 && c->in_request)
        request_failed(c, E_RESET);
}

static void send_request(conn_t *c)
{
    c->state = ST_HEADERS;
    c->in_request = 1;
    c->hlen = 0;
    c->status = 0;
    c->saw_done = 0;
    c->sse_failed = 0;
    c->stamped_seen = 0;
    c->t_first = 0;
    c->is_sse = 0;
    telex_sse_parser_reset(c->parser);
    c->t_req = mono_ns();
    uv_buf_t b = uv_buf_init(request_buf, (unsigned)request_len);
    c->write_req.data = c;
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc != 0)
        request_failed(c, E_RESET);
}

/* Body bytes of the current response, after transfer decoding. */
static void body_bytes(conn_t *c, const char *p, size_t n)
{
    if (n == 0 || !c->in_request)
        return;
    if (!c->sse_failed) {
        int rc = telex_sse_parser_feed(c->parser, p, n);
        if (rc != 0)
            c->sse_failed = 1;
    }
}

static int parse_headers(conn_t *c, size_t head_len)
{
    char *h = c->hbuf;
    h[head_len - 1] = '\0';
    int minor = 1;
    if (sscanf(h, "HTTP/1.%d %d", &minor, &c->status) != 2)
        return -1;
    c->keep_alive = minor >= 1;
    c->body_mode = BM_CLOSE;
    int chunked = 0, has_length = 0;
    uint64_t length = 0;
    for (char *line = strstr(h, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
        line += 2;
        char *colon = strchr(line, ':');
        char *eol = strstr(line, "\r\n");
        if (colon == NULL || (eol != NULL && colon > eol))
            continue;
        size_t nlen = (size_t)(colon - line);
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vlen = eol != NULL ? (size_t)(eol - v) : strlen(v);
        char value[256];
        if (vlen >= sizeof value)
            vlen = sizeof value - 1;
        memcpy(value, v, vlen);
        value[vlen] = '\0';
        if (nlen == 17 && strncasecmp(line, "transfer-encoding", 17) == 0 && strcasestr(value, "chunked"))
            chunked = 1;
        else if (nlen == 14 && strncasecmp(line, "content-length", 14) == 0) {
            has_length = 1;
            length = strtoull(value, NULL, 10);
        } else if (nlen == 10 && strncasecmp(line, "connection", 10) == 0) {
            if (strcasestr(value, "close"))
                c->keep_alive = 0;
            else if (strcasestr(value, "keep-alive"))
                c->keep_alive = 1;
        } else if (nlen == 12 && strncasecmp(line, "content-type", 12) == 0 && strcasestr(value, "text/event-stream"))
            c->is_sse = 1;
    }
    if (chunked) {
        c->body_mode = BM_CHUNKED;
        c->chunk_state = CH_SIZE;
        c->line_len = 0;
    } else if (has_length) {
        c->body_mode = BM_LENGTH;
        c->remaining = length;
    } else {
        c->keep_alive = 0;
    }
    return 0;
}

/* Consumes bytes of a chunked body; returns bytes used, or -1 on a framing error. */
static long chunked_step(conn_t *c, const char *p, size_t n, int *done)
{
    size_t i = 0;
    while (i < n && !*done) {
        switch (c->chunk_state) {
        case CH_SIZE:
        case CH_DATA_END:
        case CH_TRAILER: {
            const char *nl = memchr(p + i, '\n', n - i);
            size_t take = nl != NULL ? (size_t)(nl - (p + i)) + 1 : n - i;
            if (c->line_len + take >= sizeof c->line)
                return -1;
            memcpy(c->line + c->line_len, p + i, take);
            c->line_len += take;
            i += take;
            if (nl == NULL)
                break;
            c->line[c->line_len] = '\0';
            size_t l = c->line_len;
            c->line_len = 0;
            if (c->chunk_state == CH_SIZE) {
                char *end;
                unsigned long long size = strtoull(c->line, &end, 16);
                if (end == c->line)
                    return -1;
                if (size == 0) {
                    c->chunk_state = CH_TRAILER;
                } else {
                    c->remaining = size;
                    c->chunk_state = CH_DATA;
                }
            } else if (c->chunk_state == CH_DATA_END) {
                if (!(l == 2 && c->line[0] == '\r') && l != 1)
                    return -1;
                c->chunk_state = CH_SIZE;
            } else { /* trailer section ends with an empty line */
                if ((l == 2 && c->line[0] == '\r') || l == 1)
                    *done = 1;
            }
            break;
        }
        case CH_DATA: {
            size_t take = n - i < c->remaining ? n - i : (size_t)c->remaining;
            body_bytes(c, p + i, take);
            i += take;
            c->remaining -= take;
            if (c->remaining == 0)
                c->chunk_state = CH_DATA_END;
            break;
        }
        }
    }
    return (long)i;
}

static void process(conn_t *c, const char *p, size_t n)
{
    while (n > 0 && c->in_request) {
        if (c->state == ST_HEADERS) {
            if (c->t_first == 0) {
                c->t_first = now_ns;
                vec_push(&ttfb, now_ns - c->t_req);
                first_wave_settled(c);
            }
            if (c->hlen + n + 1 > c->hcap) {
                size_t cap = c->hcap ? c->hcap * 2 : 2048;
                while (cap < c->hlen + n + 1)
                    cap *= 2;
                if (cap > 1 << 20) {
                    request_failed(c, E_PROTOCOL);
                    return;
                }
                c->hbuf = realloc(c->hbuf, cap);
                if (c->hbuf == NULL)
                    die("out of memory", "");
                c->hcap = cap;
            }
            size_t from = c->hlen > 3 ? c->hlen - 3 : 0;
            memcpy(c->hbuf + c->hlen, p, n);
            c->hlen += n;
            c->hbuf[c->hlen] = '\0';
            char *end = memmem(c->hbuf + from, c->hlen - from, "\r\n\r\n", 4);
            if (end == NULL)
                return;
            size_t head_len = (size_t)(end - c->hbuf) + 4;
            size_t rest = c->hlen - head_len;
            /* the body bytes that came with the headers */
            const char *body = p + (n - rest);
            if (parse_headers(c, head_len) != 0) {
                request_failed(c, E_PROTOCOL);
                return;
            }
            status_counts[c->status >= 100 && c->status < 600 ? c->status : 0]++;
            if (c->status < 200 || c->status >= 300) {
                request_failed(c, E_STATUS);
                return;
            }
            if (!c->is_sse)
                wrong_content_type++; /* parsed anyway: some gateways omit the header */
            c->state = ST_BODY;
            p = body;
            n = rest;
            if (c->body_mode == BM_LENGTH && c->remaining == 0) {
                request_done(c);
                return;
            }
            continue;
        }
        /* ST_BODY */
        if (c->body_mode == BM_CLOSE) {
            body_bytes(c, p, n);
            return;
        }
        if (c->body_mode == BM_LENGTH) {
            size_t take = n < c->remaining ? n : (size_t)c->remaining;
            body_bytes(c, p, take);
            c->remaining -= take;
            if (c->remaining == 0)
                request_done(c);
            return; /* anything after the body is unexpected: ignored */
        }
        int done = 0;
        long used = chunked_step(c, p, n, &done);
        if (used < 0) {
            request_failed(c, E_PROTOCOL);
            return;
        }
        if (done)
            request_done(c);
        return;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    now_ns = mono_ns();
    if (nread < 0) {
        if (c->in_request) {
            if (nread == UV_EOF && c->state == ST_BODY && c->body_mode == BM_CLOSE)
                request_done(c);
            else
                request_failed(c, nread != UV_EOF ? E_RESET : c->state == ST_BODY ? E_EOF : E_EOF_HEAD);
        }
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (!c->in_request) {
        conn_close(c); /* bytes nobody asked for */
        return;
    }
    process(c, buf->base, (size_t)nread);
}

static void on_connect(uv_connect_t *req, int status)
{
    conn_t *c = req->data;
    now_ns = mono_ns();
    if (status < 0) {
        errors[E_CONNECT]++;
        first_wave_settled(c);
        c->first_wave = 0;
        conn_close(c);
        return;
    }
    vec_push(&connect_times, now_ns - c->t_connect);
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    send_request(c);
}

static void conn_start(conn_t *c)
{
    if (!more_requests_allowed())
        return;
    if (c->parser == NULL && (c->parser = telex_sse_parser_new(0, &sse_callbacks, c)) == NULL)
        die("out of memory", "");
    if (n_source_addrs > 1 && uv_tcp_init_ex(loop, &c->tcp, AF_INET) == 0) {
        /* the socket exists now: the source address, the port left to connect */
        uv_os_fd_t fd;
        int on = 1;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on);
        uv_tcp_bind(&c->tcp, (const struct sockaddr *)&source_addr[c->index % n_source_addrs], 0);
    } else {
        uv_tcp_init(loop, &c->tcp); /* the socket is made at connect (a failure there is counted) */
    }
    c->tcp.data = c;
    c->open = 1;
    c->state = ST_CONNECTING;
    live_conns++;
    issued++; /* the request this connection is for */
    c->t_connect = mono_ns();
    c->connect_req.data = c;
    int rc = uv_tcp_connect(&c->connect_req, &c->tcp, (struct sockaddr *)&target_addr, on_connect);
    if (rc != 0) {
        errors[E_CONNECT]++;
        now_ns = mono_ns();
        first_wave_settled(c);
        c->first_wave = 0;
        conn_close(c);
    }
}

/* ------------------------------------------------------------ run control */

static void on_lag_tick(uv_timer_t *t)
{
    (void)t;
    uint64_t now = mono_ns(), due = lag_prev_ns + (uint64_t)LAG_TICK_MS * 1000000;
    vec_push(&loop_lag, now > due ? now - due : 0);
    lag_prev_ns = now;
}

static void on_ramp(uv_timer_t *t)
{
    uint64_t now = mono_ns();
    int due = opt.concurrency;
    if (opt.rate > 0) {
        double elapsed = (double)(now - t_start) / 1e9;
        double d = elapsed * opt.rate + 1;
        if (d < due)
            due = (int)d;
    }
    while (started_streams < due) {
        conn_t *c = &conns[started_streams++];
        c->first_wave = 1;
        conn_start(c);
    }
    if (started_streams >= opt.concurrency) {
        t_ramp_end = now;
        uv_timer_stop(t);
        if (first_wave_headers >= opt.concurrency && t_steady_start == 0)
            t_steady_start = now;
    }
}

static void stop_all(void)
{
    if (stopping)
        return;
    stopping = 1;
    t_stop = mono_ns();
    mark_steady_end(t_stop);
    on_sample(&sample_timer);
    for (int i = 0; i < opt.concurrency; i++) {
        conn_t *c = &conns[i];
        if (c->in_request) {
            c->in_request = 0;
            unfinished++;
        }
        if (c->open)
            conn_close(c);
    }
    uv_timer_stop(&ramp_timer);
    uv_timer_stop(&stop_timer);
    uv_timer_stop(&sample_timer);
    uv_timer_stop(&lag_timer);
    uv_close((uv_handle_t *)&lag_timer, NULL);
    uv_close((uv_handle_t *)&ramp_timer, NULL);
    uv_close((uv_handle_t *)&stop_timer, NULL);
    uv_close((uv_handle_t *)&sample_timer, NULL);
}

static void maybe_finish(void)
{
    if (stopping)
        return;
    if (started_streams < opt.concurrency)
        return;
    if (live_conns == 0 && !more_requests_allowed())
        stop_all();
    else if (live_conns == 0 && opt.requests != 0 && issued >= opt.requests)
        stop_all();
}

static void on_stop_timer(uv_timer_t *t)
{
    (void)t;
    stop_all();
}

/* ------------------------------------------------------------ report */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double pct_i64(const int64_t *v, size_t n, double p)
{
    if (n == 0)
        return -1;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i];
}

static double pct_u64(const uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return -1;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i];
}

/* Percentiles of ns values, printed in ms as a JSON object. */
static void json_dist_i64(FILE *f, const char *name, int64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_i64);
    if (n == 0) {
        fprintf(f, "\"%s\":null", name);
        return;
    }
    fprintf(f, "\"%s\":{\"n\":%zu,\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,\"p999\":%.4f,\"max\":%.4f}", name, n,
            pct_i64(v, n, 0.5) / 1e6, pct_i64(v, n, 0.9) / 1e6, pct_i64(v, n, 0.99) / 1e6, pct_i64(v, n, 0.999) / 1e6,
            (double)v[n - 1] / 1e6);
}

static void json_dist_u64(FILE *f, const char *name, u64vec_t *vec)
{
    qsort(vec->v, vec->n, sizeof *vec->v, cmp_u64);
    size_t n = vec->n;
    if (n == 0) {
        fprintf(f, "\"%s\":null", name);
        return;
    }
    fprintf(f, "\"%s\":{\"n\":%zu,\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,\"max\":%.4f}", name, n,
            pct_u64(vec->v, n, 0.5) / 1e6, pct_u64(vec->v, n, 0.9) / 1e6, pct_u64(vec->v, n, 0.99) / 1e6,
            (double)vec->v[n - 1] / 1e6);
}

static void report(void)
{
    long ticks_per_s = sysconf(_SC_CLK_TCK);
    uint64_t end = t_stop ? t_stop : mono_ns();
    double elapsed = (double)(end - t_start) / 1e9;
    double span = t_last_completion > t_start ? (double)(t_last_completion - t_start) / 1e9 : elapsed;
    double rate_span = opt.requests == 0 ? elapsed - opt.warmup : span;
    long nerr = 0;
    for (int i = 0; i < E_COUNT; i++)
        nerr += errors[i];

    int64_t *all = malloc((n_samples + 1) * sizeof *all), *win = malloc((n_samples + 1) * sizeof *win);
    /* split by kind: each answer's first event (it carries the time to first
     * token the gateway adds) and every later one (the per-event relay) */
    int64_t *lat_first = malloc((n_samples + 1) * sizeof *lat_first), *lat_rest = malloc((n_samples + 1) * sizeof *lat_rest);
    size_t n_all = 0, n_win = 0, n_first = 0, n_rest = 0;
    uint64_t warm = t_start + (uint64_t)(opt.warmup * 1e9);
    for (size_t i = 0; i < n_samples; i++) {
        if (samples[i].recv_ns >= warm) {
            all[n_all++] = samples[i].lat_ns;
            if (samples[i].first)
                lat_first[n_first++] = samples[i].lat_ns;
            else
                lat_rest[n_rest++] = samples[i].lat_ns;
        }
        if (t_steady_start != 0 && samples[i].recv_ns >= t_steady_start && samples[i].recv_ns < t_steady_end)
            win[n_win++] = samples[i].lat_ns;
    }
    double window_s = t_steady_start != 0 && t_steady_end > t_steady_start
                          ? (double)(t_steady_end - t_steady_start) / 1e9
                          : 0;

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double self_cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                      ru.ru_stime.tv_usec / 1e6;

    FILE *f = stdout;
    fprintf(f, "{\"label\":\"%s\",\"url\":\"%s\",\"concurrency\":%d,\"requests\":%ld,\"rate\":%g,", opt.label,
            opt.url, opt.concurrency, opt.requests, opt.rate);
    fprintf(f, "\"elapsed_s\":%.3f,\"issued\":%ld,\"completed\":%ld,\"unfinished\":%ld,\"errors\":%ld,", elapsed,
            issued, completed, unfinished, nerr);
    fprintf(f, "\"error_kinds\":{");
    for (int i = 0, first = 1; i < E_COUNT; i++)
        if (errors[i]) {
            fprintf(f, "%s\"%s\":%ld", first ? "" : ",", error_names[i], errors[i]);
            first = 0;
        }
    fprintf(f, "},\"statuses\":{");
    for (int i = 0, first = 1; i < 600; i++)
        if (status_counts[i]) {
            fprintf(f, "%s\"%d\":%ld", first ? "" : ",", i, status_counts[i]);
            first = 0;
        }
    fprintf(f, "},");
    fprintf(f, "\"answers_per_s\":%.2f,\"events\":%llu,\"events_per_s\":%.1f,\"stamped\":%llu,",
            rate_span > 0 ? (double)(opt.requests == 0 ? completed_after_warmup : completed) / rate_span : 0,
            (unsigned long long)events_total, elapsed > 0 ? (double)events_total / elapsed : 0,
            (unsigned long long)stamped_total);
    fprintf(f, "\"steady_window_s\":%.3f,\"not_event_stream_content_type\":%ld,", window_s, wrong_content_type);
    json_dist_i64(f, "latency_ms", all, n_all);
    fputc(',', f);
    json_dist_i64(f, "latency_window_ms", win, n_win);
    fputc(',', f);
    json_dist_i64(f, "first_event_latency_ms", lat_first, n_first);
    fputc(',', f);
    json_dist_i64(f, "later_event_latency_ms", lat_rest, n_rest);
    fputc(',', f);
    json_dist_u64(f, "ttfb_ms", &ttfb);
    fputc(',', f);
    json_dist_u64(f, "connect_ms", &connect_times);
    fputc(',', f);
    json_dist_u64(f, "duration_ms", &durations);
    fputc(',', f);
    json_dist_u64(f, "loop_lag_ms", &loop_lag);
    if (opt.n_pids > 0) {
        u64vec_t *w = &proc.rss_window;
        qsort(w->v, w->n, sizeof *w->v, cmp_u64);
        double cpu_s = (double)(proc.cpu_ticks_end - proc.cpu_ticks_start) / (double)ticks_per_s;
        double cpu_w = proc.window_ended ? (double)(proc.cpu_ticks_window_end - proc.cpu_ticks_window_start) /
                                               (double)ticks_per_s
                                         : -1;
        fprintf(f,
                ",\"proc\":{\"rss_base_kb\":%llu,\"rss_peak_kb\":%llu,\"rss_window_kb\":%llu,\"rss_samples\":%zu,"
                "\"cpu_s\":%.2f,\"cpu_window_s\":%.2f,\"cpu_us_per_event\":%.2f}",
                (unsigned long long)proc.rss_base_kb, (unsigned long long)proc.rss_peak_kb,
                (unsigned long long)(w->n ? w->v[w->n / 2] : 0), w->n, cpu_s, cpu_w,
                events_total ? cpu_s * 1e6 / (double)events_total : -1);
    }
    fprintf(f, ",\"loadgen_cpu_s\":%.2f,\"source_ips\":%d}\n", self_cpu, n_source_addrs > 1 ? n_source_addrs : 1);
    fflush(f);

    fprintf(stderr,
            "%s: c=%d issued=%ld completed=%ld errors=%ld unfinished=%ld in %.2fs; %.1f answers/s, %.0f events/s\n",
            opt.label, opt.concurrency, issued, completed, nerr, unfinished, elapsed,
            rate_span > 0 ? (double)(opt.requests == 0 ? completed_after_warmup : completed) / rate_span : 0,
            elapsed > 0 ? (double)events_total / elapsed : 0);
    if (n_win > 0)
        fprintf(stderr, "  latency (steady %.2fs, %zu events) ms: p50 %.3f p90 %.3f p99 %.3f max %.3f\n", window_s,
                n_win, pct_i64(win, n_win, 0.5) / 1e6, pct_i64(win, n_win, 0.9) / 1e6,
                pct_i64(win, n_win, 0.99) / 1e6, (double)win[n_win - 1] / 1e6);
    if (n_all > 0)
        fprintf(stderr, "  latency (all, %zu events) ms: p50 %.3f p90 %.3f p99 %.3f max %.3f\n", n_all,
                pct_i64(all, n_all, 0.5) / 1e6, pct_i64(all, n_all, 0.9) / 1e6, pct_i64(all, n_all, 0.99) / 1e6,
                (double)all[n_all - 1] / 1e6);
    if (n_first > 0)
        fprintf(stderr, "  first event of each answer (%zu) ms: p50 %.3f p99 %.3f max %.3f\n", n_first,
                pct_i64(lat_first, n_first, 0.5) / 1e6, pct_i64(lat_first, n_first, 0.99) / 1e6,
                (double)lat_first[n_first - 1] / 1e6);
    if (n_rest > 0)
        fprintf(stderr, "  later events (%zu) ms: p50 %.3f p99 %.3f max %.3f\n", n_rest,
                pct_i64(lat_rest, n_rest, 0.5) / 1e6, pct_i64(lat_rest, n_rest, 0.99) / 1e6, (double)lat_rest[n_rest - 1] / 1e6);
    if (ttfb.n > 0)
        fprintf(stderr, "  ttfb ms: p50 %.3f p90 %.3f p99 %.3f max %.3f\n", pct_u64(ttfb.v, ttfb.n, 0.5) / 1e6,
                pct_u64(ttfb.v, ttfb.n, 0.9) / 1e6, pct_u64(ttfb.v, ttfb.n, 0.99) / 1e6,
                (double)ttfb.v[ttfb.n - 1] / 1e6);
    if (loop_lag.n > 0)
        fprintf(stderr, "  this client's loop lag ms: p50 %.3f p99 %.3f max %.3f\n",
                pct_u64(loop_lag.v, loop_lag.n, 0.5) / 1e6, pct_u64(loop_lag.v, loop_lag.n, 0.99) / 1e6,
                (double)loop_lag.v[loop_lag.n - 1] / 1e6);
    for (int i = 0; i < E_COUNT; i++)
        if (errors[i])
            fprintf(stderr, "  error %s: %ld\n", error_names[i], errors[i]);
    free(all);
    free(win);
    free(lat_first);
    free(lat_rest);
}

/* ------------------------------------------------------------ setup */

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen URL [options]\n"
            "  -c, --concurrency N   streams open at once (default 1)\n"
            "  -n, --requests N      total requests (default: the concurrency; 0 = until --duration)\n"
            "  -r, --rate R          new streams per second while ramping up (default 0: all at once)\n"
            "  -d, --duration S      hard time cap in seconds (default 60); streams still open are 'unfinished'\n"
            "  -w, --warmup S        with -n 0: count answers/events only after S seconds\n"
            "  -H, --header 'K: V'   extra request header (repeatable)\n"
            "  -b, --body FILE       request body (default: a small chat request, see --tokens)\n"
            "      --tokens N        mock.tokens in the default body\n"
            "      --delay-ms MS     mock.delay_ms in the default body\n"
            "      --ttft-ms MS      mock.ttft_ms in the default body\n"
            "      --no-mock         default body without a \"mock\" object\n"
            "      --model NAME      model of the default body (default gpt-4o-mini)\n"
            "  -p, --pids P,Q,...    sample RSS and CPU of these process trees\n"
            "  -l, --label NAME      name in the output\n"
            "      --source-ips N    to a 127.x target, connect from 127.0.0.1 .. 127.0.0.N (default: one\n"
            "                        per 10,000 streams: connect(2) slows down past ~14,000 ports per address)\n"
            "Prints a summary on stderr and one JSON line on stdout.\n");
    exit(2);
}

static void parse_url(const char *url)
{
    if (strncmp(url, "http://", 7) != 0)
        die("only http:// URLs: ", url);
    const char *h = url + 7;
    const char *slash = strchr(h, '/');
    const char *hostport_end = slash ? slash : h + strlen(h);
    snprintf(opt.path, sizeof opt.path, "%s", slash ? slash : "/");
    char hp[200];
    size_t n = (size_t)(hostport_end - h);
    if (n >= sizeof hp)
        die("bad URL ", url);
    memcpy(hp, h, n);
    hp[n] = '\0';
    char *colon = strrchr(hp, ':');
    if (colon != NULL && strchr(hp, ']') < colon) {
        *colon = '\0';
        snprintf(opt.port, sizeof opt.port, "%s", colon + 1);
    } else {
        snprintf(opt.port, sizeof opt.port, "80");
    }
    char *host = hp;
    if (host[0] == '[') {
        host++;
        host[strlen(host) - 1] = '\0';
    }
    snprintf(opt.host, sizeof opt.host, "%s", host);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(opt.host, opt.port, &hints, &res) != 0)
        die("cannot resolve ", opt.host);
    memcpy(&target_addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
}

/* The source addresses for a 127.x.x.x target (see SOURCE_PORTS_PER_IP). */
static void choose_sources(void)
{
    if (target_addr.ss_family != AF_INET ||
        (ntohl(((struct sockaddr_in *)&target_addr)->sin_addr.s_addr) >> 24) != 127)
        return;
    int n = opt.source_ips >= 0 ? opt.source_ips : (opt.concurrency + SOURCE_PORTS_PER_IP - 1) / SOURCE_PORTS_PER_IP;
    n_source_addrs = n < 1 ? 1 : n > MAX_SOURCE_IPS ? MAX_SOURCE_IPS : n;
    for (int i = 0; i < n_source_addrs; i++) {
        source_addr[i].sin_family = AF_INET;
        source_addr[i].sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)i);
    }
}

static void add_header(const char *h)
{
    size_t n = strlen(h);
    opt.headers = realloc(opt.headers, opt.headers_len + n + 3);
    memcpy(opt.headers + opt.headers_len, h, n);
    memcpy(opt.headers + opt.headers_len + n, "\r\n", 3);
    opt.headers_len += n + 2;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die("cannot open ", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b == NULL || fread(b, 1, (size_t)n, f) != (size_t)n)
        die("cannot read ", path);
    fclose(f);
    b[n] = '\0';
    *len = (size_t)n;
    return b;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"concurrency", 1, 0, 'c'}, {"requests", 1, 0, 'n'},
                                             {"rate", 1, 0, 'r'},        {"duration", 1, 0, 'd'},
                                             {"warmup", 1, 0, 'w'},      {"header", 1, 0, 'H'},
                                             {"body", 1, 0, 'b'},        {"tokens", 1, 0, 1},
                                             {"delay-ms", 1, 0, 2},      {"ttft-ms", 1, 0, 3},
                                             {"no-mock", 0, 0, 4},       {"model", 1, 0, 5},
                                             {"pids", 1, 0, 'p'},        {"label", 1, 0, 'l'},
                                             {"source-ips", 1, 0, 6},    {"help", 0, 0, 'h'},
                                             {0, 0, 0, 0}};
    long tokens = -1, delay_ms = -1, ttft_ms = -1;
    int no_mock = 0, have_n = 0;
    const char *body_file = NULL, *model = "gpt-4o-mini";
    opt.concurrency = 1;
    opt.duration = 60;
    opt.label = "loadgen";
    opt.sample_ms = 100;
    opt.source_ips = -1;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:n:r:d:w:H:b:p:l:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': opt.concurrency = atoi(optarg); break;
        case 'n': opt.requests = atol(optarg); have_n = 1; break;
        case 'r': opt.rate = atof(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 'H': add_header(optarg); break;
        case 'b': body_file = optarg; break;
        case 1: tokens = atol(optarg); break;
        case 2: delay_ms = atol(optarg); break;
        case 3: ttft_ms = atol(optarg); break;
        case 4: no_mock = 1; break;
        case 5: model = optarg; break;
        case 6: opt.source_ips = atoi(optarg); break;
        case 'p': {
            char *s = strdup(optarg), *save = NULL;
            for (char *t = strtok_r(s, ",", &save); t != NULL && opt.n_pids < 64; t = strtok_r(NULL, ",", &save))
                if (atoi(t) > 0)
                    opt.pids[opt.n_pids++] = atoi(t);
            free(s);
            break;
        }
        case 'l': opt.label = optarg; break;
        default: usage();
        }
    }
    if (optind != argc - 1 || opt.concurrency < 1)
        usage();
    opt.url = argv[optind];
    if (!have_n)
        opt.requests = opt.concurrency;
    if (opt.requests != 0 && opt.requests < opt.concurrency)
        opt.concurrency = (int)opt.requests;
    parse_url(opt.url);
    choose_sources();

    if (body_file != NULL) {
        opt.body = read_file(body_file, &opt.body_len);
    } else {
        char mock[256] = "";
        if (!no_mock) {
            int n = snprintf(mock, sizeof mock, ",\"mock\":{\"stamp\":true");
            if (tokens >= 0)
                n += snprintf(mock + n, sizeof mock - n, ",\"tokens\":%ld", tokens);
            if (delay_ms >= 0)
                n += snprintf(mock + n, sizeof mock - n, ",\"delay_ms\":%ld", delay_ms);
            if (ttft_ms >= 0)
                n += snprintf(mock + n, sizeof mock - n, ",\"ttft_ms\":%ld", ttft_ms);
            snprintf(mock + n, sizeof mock - n, "}");
        }
        char b[1024];
        int n = snprintf(b, sizeof b,
                         "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story.\"}],"
                         "\"stream\":true%s}",
                         model, mock);
        opt.body = strdup(b);
        opt.body_len = (size_t)n;
    }
    size_t cap = 1024 + opt.headers_len + opt.body_len + strlen(opt.path) + strlen(opt.host);
    request_buf = malloc(cap);
    request_len = (size_t)snprintf(request_buf, cap,
                                   "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                                   "Accept: text/event-stream\r\nContent-Length: %zu\r\n%.*s\r\n",
                                   opt.path, opt.host, opt.port, opt.body_len, (int)opt.headers_len,
                                   opt.headers ? opt.headers : "");
    memcpy(request_buf + request_len, opt.body, opt.body_len);
    request_len += opt.body_len;

    /* Room for every stream's socket. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    loop = uv_default_loop();
    conns = calloc((size_t)opt.concurrency, sizeof *conns);
    if (conns == NULL)
        die("out of memory", "");
    for (int i = 0; i < opt.concurrency; i++)
        conns[i].index = i;

    proc_read(&proc.rss_base_kb, &proc.cpu_ticks_start);
    t_start = mono_ns();
    uv_timer_init(loop, &ramp_timer);
    uv_timer_init(loop, &stop_timer);
    uv_timer_init(loop, &sample_timer);
    uv_timer_init(loop, &lag_timer);
    lag_prev_ns = t_start;
    uv_timer_start(&lag_timer, on_lag_tick, LAG_TICK_MS, LAG_TICK_MS);
    uv_timer_start(&stop_timer, on_stop_timer, (uint64_t)(opt.duration * 1000), 0);
    if (opt.n_pids > 0)
        uv_timer_start(&sample_timer, on_sample, (uint64_t)opt.sample_ms, (uint64_t)opt.sample_ms);
    uv_timer_start(&ramp_timer, on_ramp, 0, 1);
    uv_run(loop, UV_RUN_DEFAULT);
    uint64_t rss_end;
    proc_read(&rss_end, &proc.cpu_ticks_end);
    report();
    return 0;
}
