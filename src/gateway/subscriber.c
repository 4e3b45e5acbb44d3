/*
 * gateway/subscriber.c — a response that streams a shared log from a
 * position. See subscriber.h.
 */
#include "gateway/subscriber.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"
#include "http/chunked.h"
#include "http/respond.h"
#include "http/server.h"
#include "util/alloc.h"

#define MAX_VECS 32
_Static_assert(MAX_VECS <= TELEX_CHUNKED_MAX_BUFS, "a write's iovecs fit the chunk framer");
/* Without ids: whole events up to this many bytes per write (one event
 * alone when it is longer). Chromium cuts the first read at byte 4,096 of
 * the response, head included: the head (~0.4 KB) and one such write stay
 * below it (bench/findings.md "Chromium's fetch reader"). */
#define PLAIN_WRITE_MAX 3072
/* ... and after the first write (the one with the response head) up to
 * this many: Chromium cut none of 1,944 paced writes of whole events up to
 * 16 KiB once past the head (bench/findings.md), and a burst then costs a
 * write per upstream read or fewer. */
#define PLAIN_WRITE_LATER_MAX 16384
/* Events per write with ids: an id block and the event each, after the
 * opening retry: block. */
#define MAX_ID_EVENTS ((MAX_VECS - 1) / 2)
/* "id: " <stream id> "." <seq> "\n" and, for event 1, "retry: <ms>\n" */
#define ID_BLOCK_MAX (4 + TELEX_STREAM_ID_LEN + 1 + 20 + 1 + 7 + 20 + 1 + 1) /* and snprintf's NUL */

typedef struct subscriber {
    h2o_generator_t generator; /* first: h2o hands it back */
    telex_stream_sub_t sub;
    h2o_linklist_t link; /* in gw->subscribers while its request lives */
    gateway_worker_t *gw;
    h2o_req_t *req; /* NULL once h2o disposed of the request */
    telex_stream_t *stream;
    uint64_t pos;      /* next byte of the log to send */
    uint64_t sent_to;  /* where the write in flight ends */
    uint64_t next_seq; /* with ids: the event that starts at pos */
    uint64_t sent_seq; /* with ids: the event that starts at sent_to */
    telex_log_cursor_t cursor; /* the log segment the last read ended in */
    int started;
    int writing;
    int ended;          /* the final state was handed to h2o */
    int abort_on_proceed;
    int release_as_acked;
    int open; /* things that must end before free: keepalive timer, queued wakeup */
    uv_timer_t *keepalive; /* with TELEX_SUB_KEEPALIVE only */
    uint64_t last_write_ms; /* uv_now() of the last write of events: silence counts from here */
    uint64_t events_sent_ms; /* the same, but 0 until events were written (the sweep's skip) */
    size_t prefix_len; /* bytes of `prefix` still to send before the log's */
    char prefix[40];   /* "retry: N" for a response with ids that starts after event 1 */
    char *ids;         /* with ids: MAX_ID_EVENTS blocks of ID_BLOCK_MAX bytes (in the same allocation) */
    telex_chunked_t chunked; /* HTTP/1.1: the chunk framing, written here rather than by h2o (http/chunked.h) */
} subscriber_t;

static const char keepalive_comment[] = ": keepalive\n\n";

static void maybe_free(subscriber_t *s)
{
    if (--s->open > 0)
        return;
    telex_stream_unref(s->stream);
    free(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    subscriber_t *s = h->data;
    free(h);
    maybe_free(s);
}

static void on_wakeup_retired(telex_wakeup_t *w)
{
    maybe_free(H2O_STRUCT_FROM_MEMBER(subscriber_t, sub.wake, w));
}

static void note_write(subscriber_t *s);

static void stop_keepalive(subscriber_t *s)
{
    if (s->keepalive != NULL)
        uv_timer_stop(s->keepalive);
}

static void send_final(subscriber_t *s, h2o_send_state_t state)
{
    s->ended = 1;
    stop_keepalive(s);
    telex_chunked_send(&s->chunked, s->req, NULL, 0, state);
}

/* Writes the id block of event seq into out; returns its length. */
static size_t format_id_block(subscriber_t *s, uint64_t seq, char *out)
{
    char digits[20];
    size_t nd = 0;
    for (uint64_t v = seq; nd == 0 || v != 0; v /= 10)
        digits[nd++] = (char)('0' + v % 10);
    char *o = out;
    memcpy(o, "id: ", 4), o += 4;
    memcpy(o, s->stream->id, TELEX_STREAM_ID_LEN), o += TELEX_STREAM_ID_LEN;
    *o++ = '.';
    while (nd > 0)
        *o++ = digits[--nd];
    *o++ = '\n';
    if (seq == 1)
        o += snprintf(o, 7 + 20 + 2, "retry: %llu\n", (unsigned long long)s->gw->gateway->config->resume.retry_ms);
    return (size_t)(o - out);
}

/* The next write's events from pos, as iovecs after vecs[nvecs]: without
 * ids the pending whole events up to PLAIN_WRITE_MAX bytes (see
 * subscriber.h), with ids every pending one (up to MAX_ID_EVENTS) behind its
 * id block. Returns the new nvecs, or -1 when pos was dropped (cannot happen
 * while attached: acked bytes are kept). */
static int gather(subscriber_t *s, h2o_iovec_t *vecs, size_t nvecs, uint64_t *to)
{
    telex_log_t *log = s->stream->log;
    if (s->ids == NULL) {
        struct iovec ev[MAX_VECS];
        int n = telex_log_read_events_upto(log, &s->cursor, s->pos, s->next_seq, ev, (int)(MAX_VECS - nvecs),
                                           s->started ? PLAIN_WRITE_LATER_MAX : PLAIN_WRITE_MAX, to);
        for (int i = 0; i < n; i++)
            vecs[nvecs++] = h2o_iovec_init(ev[i].iov_base, ev[i].iov_len);
        if (n > 0)
            s->sent_seq = s->next_seq + (uint64_t)n;
        return n < 0 ? -1 : (int)nvecs;
    }
    struct iovec ev[MAX_ID_EVENTS];
    int n = telex_log_read_events_at(log, &s->cursor, s->pos, s->next_seq, ev, MAX_ID_EVENTS, to);
    for (int i = 0; i < n; i++) {
        char *block = s->ids + (size_t)i * ID_BLOCK_MAX;
        vecs[nvecs++] = h2o_iovec_init(block, format_id_block(s, s->next_seq + (uint64_t)i, block));
        vecs[nvecs++] = h2o_iovec_init(ev[i].iov_base, ev[i].iov_len);
    }
    if (n > 0)
        s->sent_seq = s->next_seq + (uint64_t)n;
    return n < 0 ? -1 : (int)nvecs;
}

/* Hands the next write's events from pos to h2o (after the prefix, the
 * first time); proceed brings the next. */
static void pump(subscriber_t *s)
{
    if (s->req == NULL || s->writing || s->ended)
        return;
    telex_log_t *log = s->stream->log;
    /* Nothing new (the pump after each write, at a model's pace): seen
     * without the log's lock. Finished is read first, as below; an event
     * appended after the end was read wakes this subscriber again. */
    if (s->started && s->prefix_len == 0 && !telex_log_finished(log) && s->pos == telex_log_end(log))
        return;
    h2o_iovec_t vecs[MAX_VECS];
    size_t nvecs = 0;
    if (s->prefix_len > 0)
        vecs[nvecs++] = h2o_iovec_init(s->prefix, s->prefix_len);
    uint64_t to;
    int total = gather(s, vecs, nvecs, &to);
    if (total < 0) {
        send_final(s, H2O_SEND_STATE_ERROR);
        return;
    }
    if ((size_t)total == nvecs) { /* no event yet */
        if (telex_log_finished(log) && s->pos == telex_log_end(log)) {
            send_final(s, H2O_SEND_STATE_FINAL);
        } else if (!s->started) {
            /* Nothing to send yet: push the headers (and the prefix) out now. */
            s->started = 1;
            s->writing = 1;
            s->sent_to = s->pos;
            s->sent_seq = s->next_seq;
            s->prefix_len = 0;
            telex_chunked_send(&s->chunked, s->req, vecs, nvecs, H2O_SEND_STATE_IN_PROGRESS);
        }
        return;
    }
    s->prefix_len = 0;
    /* finished first: an end read before it may miss an event the producer
     * (on another worker, for a resumer there) appends just before
     * finishing, and that event would never be sent */
    int final = telex_log_finished(log) && to == telex_log_end(log);
    s->started = 1;
    s->sent_to = to;
    if (final) {
        s->ended = 1;
        stop_keepalive(s);
    } else {
        s->writing = 1;
        note_write(s);
    }
    telex_chunked_send(&s->chunked, s->req, vecs, (size_t)total, final ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void on_wake(telex_wakeup_t *w)
{
    pump(H2O_STRUCT_FROM_MEMBER(subscriber_t, sub.wake, w));
}

static uint64_t keepalive_ms(subscriber_t *s)
{
    return (uint64_t)(s->gw->gateway->config->streaming.keepalive_seconds * 1000);
}

static void on_keepalive(uv_timer_t *timer)
{
    subscriber_t *s = timer->data;
    /* Writes since the timer was armed moved the silence's start (lazily):
     * wait for the rest of it, then keep the period from there. */
    uint64_t period = keepalive_ms(s), quiet = uv_now(timer->loop) - s->last_write_ms;
    if (quiet < period) {
        uv_timer_start(timer, on_keepalive, period - quiet, period);
        return;
    }
    if (s->req == NULL || s->writing || s->ended)
        return;
    s->writing = 1;
    s->sent_to = s->pos;
    s->sent_seq = s->next_seq;
    h2o_iovec_t buf = h2o_iovec_init(keepalive_comment, sizeof(keepalive_comment) - 1);
    telex_chunked_send(&s->chunked, s->req, &buf, 1, H2O_SEND_STATE_IN_PROGRESS);
}

/* Events were written: the next keep-alive comes after keepalive_seconds
 * of silence from now. Lazy, as this runs for every write: the repeating
 * timer keeps running (no timer-heap update per event) and on_keepalive
 * re-arms it for the remainder when it fires early. */
static void note_write(subscriber_t *s)
{
    s->last_write_ms = s->events_sent_ms = uv_now(&s->gw->worker->loop);
}

static void start_keepalive(subscriber_t *s)
{
    uint64_t ms = keepalive_ms(s);
    s->last_write_ms = uv_now(&s->gw->worker->loop);
    if (s->keepalive != NULL && ms > 0)
        uv_timer_start(s->keepalive, on_keepalive, ms, ms);
}

static void on_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    subscriber_t *s = (subscriber_t *)generator;
    s->writing = 0;
    s->pos = s->sent_to;
    s->next_seq = s->sent_seq;
    atomic_store(&s->sub.acked, s->pos);
    if (s->release_as_acked)
        telex_log_release_before(s->stream->log, s->pos);
    if (atomic_load(&s->stream->wants_acks))
        telex_stream_poke_producer(s->stream);
    if (s->abort_on_proceed) {
        send_final(s, H2O_SEND_STATE_ERROR);
        return;
    }
    pump(s);
}

static void on_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    subscriber_t *s = (subscriber_t *)generator;
    s->ended = 1;
}

static void on_req_disposed(void *p)
{
    subscriber_t *s = *(subscriber_t **)p;
    if (s == NULL)
        return; /* it never started (its position was dropped) */
    gateway_worker_t *gw = s->gw;
    s->req = NULL;
    telex_stream_detach(s->stream, &s->sub);
    h2o_linklist_unlink(&s->link);
    gw->n_subscribers--;
    if (s->keepalive != NULL) {
        uv_timer_stop(s->keepalive);
        uv_close((uv_handle_t *)s->keepalive, on_timer_closed);
    }
    if (telex_wakeup_retire(&s->sub.wake) == 0)
        maybe_free(s); /* no wakeup in flight: drop its share now */
}

int telex_subscriber_start(gateway_worker_t *gw, h2o_req_t *req, telex_stream_t *stream, uint64_t from,
                           uint64_t after, int flags, const char *const *extra_headers)
{
    int with_ids = (flags & TELEX_SUB_EVENT_IDS) != 0, with_keepalive = (flags & TELEX_SUB_KEEPALIVE) != 0;
    size_t ids_bytes = with_ids ? (size_t)MAX_ID_EVENTS * ID_BLOCK_MAX : 0;
    subscriber_t *s = telex_xcalloc(1, sizeof(*s) + ids_bytes);
    uv_timer_t *timer = with_keepalive ? telex_xmalloc(sizeof(*timer)) : NULL;
    subscriber_t **link = h2o_mem_alloc_shared(&req->pool, sizeof(*link), on_req_disposed); /* aborts on OOM */
    s->gw = gw;
    s->req = req;
    s->stream = stream;
    s->pos = from;
    s->next_seq = after + 1;
    s->release_as_acked = (flags & TELEX_SUB_RELEASE_AS_ACKED) != 0;
    if (with_ids)
        s->ids = (char *)(s + 1);
    atomic_init(&s->sub.acked, from);
    /* From here on the producer may wake us (on this thread, after this
     * handler returns: never inline) and keeps every byte from `from` on. */
    telex_wakeup_init(&s->sub.wake, gw->waker, on_wake, on_wakeup_retired);
    if (telex_stream_attach_from(stream, &s->sub, from) != 0) {
        *link = NULL;
        free(s);
        free(timer);
        return -ENOENT;
    }
    *link = s;
    telex_stream_ref(stream);
    s->open = with_keepalive ? 2 : 1; /* the keepalive timer, and the wakeup */
    if (with_ids && after > 0) {
        /* Only event 1 carries retry:; a client that attaches after it (an
         * EventSource on the resume URL) learns it from a field of its own.
         * A block without data dispatches no event (WHATWG: "If the data
         * buffer is an empty string ... return"). */
        int len = snprintf(s->prefix, sizeof(s->prefix), "retry: %llu\n\n",
                           (unsigned long long)gw->gateway->config->resume.retry_ms);
        s->prefix_len = len > 0 && (size_t)len < sizeof(s->prefix) ? (size_t)len : 0;
    }
    if (timer != NULL) {
        s->keepalive = timer;
        uv_timer_init(&gw->worker->loop, timer);
        timer->data = s;
    }

    req->res.status = 200;
    req->res.reason = "OK";
    telex_add_header(req, "content-type", "text/event-stream; charset=utf-8");
    telex_add_header(req, "cache-control", "no-cache");
    telex_add_header(req, "x-accel-buffering", "no");
    for (const char *const *h = extra_headers; h != NULL && h[0] != NULL; h += 2)
        telex_add_header(req, h[0], h[1]);
    telex_chunked_take(&s->chunked, req); /* after the last header: h2o's filter adds it there too */
    s->generator.proceed = on_proceed;
    s->generator.stop = on_stop;
    h2o_start_response(req, &s->generator);

    h2o_linklist_insert(gw->subscribers.next, &s->link); /* first */
    gw->n_subscribers++;
    start_keepalive(s);
    /* The first pump runs from the wakeup, after this iteration's I/O
     * callbacks, not now: a chat commits at its first event just before
     * appending it, and pumping here would write the response head alone
     * and the event in a second write (one more system call per answer). */
    telex_wakeup_send(&s->sub.wake);
    return 0;
}

void telex_subscribers_sweep(gateway_worker_t *gw)
{
    /* Only responses that wrote no events since the last sweep are probed
     * (one poll(2) each): a client that left an active stream fails the next
     * write anyway, and probing every stream, every sweep, stalls the worker
     * in proportion to its streams (bench/findings.md has the measured
     * cost). A response that has sent only its head (committed while the
     * first token is awaited) is probed. */
    uint64_t now = uv_now(&gw->worker->loop);
    h2o_linklist_t *next;
    for (h2o_linklist_t *l = gw->subscribers.next; l != &gw->subscribers; l = next) {
        next = l->next; /* ending the response may dispose of s at once */
        subscriber_t *s = H2O_STRUCT_FROM_MEMBER(subscriber_t, link, l);
        if (s->req == NULL || s->ended || now - s->events_sent_ms < TELEX_SWEEP_MS || !telex_client_has_gone(s->req))
            continue;
        if (s->writing)
            s->abort_on_proceed = 1;
        else
            send_final(s, H2O_SEND_STATE_ERROR);
    }
}
