/*
 * stream/log.c — segmented append-only event log. See log.h.
 *
 * Segments form a singly linked list from the oldest retained one to the
 * one being filled, and each is filled up to `len`; bytes below `len` are
 * immutable. Sizes grow geometrically with what the log retains: a new
 * segment is a SEGMENT_MIN, 2x, 4x ... SEGMENT_MAX allocation, the smallest
 * that holds the retained bytes plus the new event (or exactly the one
 * event that is larger). So a log that keeps its history (resume) grows 0.5,
 * 1, 2, 4, 8, 8 ... KiB, while a log whose reader keeps up (resume off: bytes
 * are released as soon as they are written) stays at one 512-byte segment
 * (one or two ordinary chunks), reused from its start whenever the reader
 * has passed all of it; a larger segment that was passed entirely is freed
 * instead (into the thread's segment cache, below), so a burst does not
 * leave a big segment behind. The event table holds, for every retained
 * event, the position where it ends, so resuming after event n is a lookup.
 *
 * Finding the segment that holds a read's start position: a read starts
 * from a cursor (the reader's own, or the log's `hint` for readers without
 * one) that names the segment the previous read ended in, and walks on
 * from there — O(1) per read at any length of history, where a walk from
 * the head cost O(segments) per event. A cursor holds a pointer and the
 * segment's serial number; serials of the retained segments are always
 * head->serial ... tail->serial without gaps (segments are added at the
 * tail and dropped from the head), so a cursor whose serial is in that
 * range points at a live segment, and one outside it (its segment was
 * dropped, its memory perhaps reused by another segment) is never
 * dereferenced: the walk starts from the head instead.
 */
#include "stream/log.h"
#include "util/alloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct segment {
    struct segment *next;
    uint64_t serial; /* 1, 2, 3 ... in the order the log added them */
    uint64_t start;  /* position of data[0] */
    size_t len;
    size_t cap;
    char data[];
} segment_t;

/* Allocation sizes of a segment, header included. */
#define SEGMENT_MIN 512
#define SEGMENT_MAX 8192
/* Entries of the first event table (doubles as needed). */
#define EVENTS_MIN 16

/* Free segments of the standard sizes (SEGMENT_MIN ... SEGMENT_MAX) are
 * kept per thread for the next log that needs one. A stream that gets
 * several events in one read grows its log 0.5, 1, 2 ... KiB and frees those
 * segments once the reader has passed them: flat out, that malloc/free per
 * read was a tenth of telex's user time, and with hundreds of streams
 * bursting on a worker the cache must hold hundreds of segments to help.
 * Each class keeps at most CACHE_BYTES_PER_CLASS (so 1.25 MiB per thread at
 * most); the rest goes back to malloc. A thread's cache is freed when it
 * exits, and the gateway empties it when a worker has no streams left and
 * before it trims the heap after a burst. */
#define CACHE_CLASSES 5 /* 512, 1024, 2048, 4096, 8192 */
#define CACHE_BYTES_PER_CLASS (256 * 1024)

typedef struct {
    segment_t *free[CACHE_CLASSES];
    unsigned count[CACHE_CLASSES];
    int registered; /* the exit destructor knows this thread's cache */
} segment_cache_t;

static __thread segment_cache_t cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_drop(void *arg)
{
    segment_cache_t *c = arg;
    for (int k = 0; k < CACHE_CLASSES; k++) {
        while (c->free[k] != NULL) {
            segment_t *s = c->free[k];
            c->free[k] = s->next;
            free(s);
        }
        c->count[k] = 0;
    }
    c->registered = 0;
}

static void cache_key_create(void)
{
    (void)pthread_key_create(&cache_key, cache_drop);
}

/* The cache class of an allocation of `bytes` (header included), or -1. */
static int cache_class(size_t bytes)
{
    int k = 0;
    for (size_t size = SEGMENT_MIN; size <= SEGMENT_MAX; size *= 2, k++)
        if (bytes == size)
            return k;
    return -1;
}

/* Bytes of segments held by all logs of the process (headers included; not
 * the thread caches): what the gateway's global budget is checked against. */
static _Atomic size_t total_bytes;

size_t telex_log_total_bytes(void)
{
    return atomic_load_explicit(&total_bytes, memory_order_relaxed);
}

static segment_t *segment_alloc(size_t cap)
{
    int k = cache_class(sizeof(segment_t) + cap);
    segment_t *s;
    if (k >= 0 && cache.free[k] != NULL) {
        s = cache.free[k];
        cache.free[k] = s->next;
        cache.count[k]--;
    } else {
        s = telex_xmalloc(sizeof(segment_t) + cap);
    }
    atomic_fetch_add_explicit(&total_bytes, sizeof(segment_t) + cap, memory_order_relaxed);
    return s;
}

static void segment_free(segment_t *s)
{
    size_t bytes = sizeof(*s) + s->cap;
    atomic_fetch_sub_explicit(&total_bytes, bytes, memory_order_relaxed);
    int k = cache_class(bytes);
    if (k < 0 || (cache.count[k] + 1) * bytes > CACHE_BYTES_PER_CLASS) {
        free(s);
        return;
    }
    if (!cache.registered) {
        pthread_once(&cache_once, cache_key_create);
        if (pthread_setspecific(cache_key, &cache) != 0) {
            free(s);
            return;
        }
        cache.registered = 1;
    }
    s->next = cache.free[k];
    cache.free[k] = s;
    cache.count[k]++;
}

void telex_log_cache_drop(void)
{
    cache_drop(&cache);
}

size_t telex_log_cache_bytes(void)
{
    size_t bytes = 0;
    for (int k = 0; k < CACHE_CLASSES; k++)
        bytes += (size_t)cache.count[k] * ((size_t)SEGMENT_MIN << k);
    return bytes;
}

/* The fields an append touches come first, and the log is allocated on a
 * cache-line boundary, so they fill two lines (a read's others are in the
 * third): at a model's pace each event of a stream finds its log cold (the
 * events of hundreds of other streams came between), and each line touched
 * is a miss (bench/findings.md, "cold cache lines"). For the same reason an
 * append finds where to write and how much room is left here (tail_at,
 * tail_room) rather than in the tail segment's header, and a read takes the
 * tail's serial from here. */
struct telex_log {
    pthread_mutex_t lock; /* used only when shared */
    int shared;
    int finished; /* set after the last append: a reader that sees it sees the final end */
    segment_t *tail; /* being filled */
    /* end, retained and finished are written under the lock with release
     * stores and read without it (acquire loads: telex_log_end & co.): the
     * producer's back-pressure checks and every write of a subscriber read
     * them, and a lock pair each was most of a shared log's lock traffic */
    uint64_t end;
    /* (second line) */
    size_t tail_room; /* tail->cap - tail->len (0 when there is no tail) */
    char *tail_at;    /* tail->data + tail->len: where the next append writes */
    size_t retained;
    size_t max_bytes;
    uint64_t *event_end; /* event_end[i] = end of event first_event + i */
    size_t n_events;     /* retained entries in event_end */
    size_t events_cap;
    uint64_t total_events;
    /* (a read's other fields) */
    uint64_t first_event; /* seq of event_end[0] */
    uint64_t start; /* oldest retained position: head->start (end when there is no segment) */
    segment_t *head; /* oldest retained */
    uint64_t tail_serial; /* tail->serial (0 when there is no tail) */
    uint64_t next_serial;
    telex_log_cursor_t hint; /* for reads without a cursor of their own */
    size_t segment_bytes; /* allocated for segments, headers included */
};

#define PUBLISH(field, value) __atomic_store_n(&(field), (value), __ATOMIC_RELEASE)

static inline void lock(telex_log_t *log)
{
    if (log->shared)
        pthread_mutex_lock(&log->lock);
}

static inline void unlock(telex_log_t *log)
{
    if (log->shared)
        pthread_mutex_unlock(&log->lock);
}

_Static_assert(offsetof(struct telex_log, total_events) + sizeof(uint64_t) <= 128,
               "an append's fields fit two cache lines");

#define LOG_ALIGN 64
#define LOG_ALLOC_SIZE ((sizeof(telex_log_t) + LOG_ALIGN - 1) / LOG_ALIGN * LOG_ALIGN)

telex_log_t *telex_log_new(size_t max_bytes, int shared)
{
    telex_log_t *log = aligned_alloc(LOG_ALIGN, LOG_ALLOC_SIZE);
    if (log == NULL)
        telex_out_of_memory(LOG_ALLOC_SIZE);
    memset(log, 0, sizeof(*log));
    pthread_mutex_init(&log->lock, NULL);
    log->shared = shared;
    log->max_bytes = max_bytes;
    log->first_event = 1;
    return log;
}

void telex_log_free(telex_log_t *log)
{
    if (log == NULL)
        return;
    segment_t *s = log->head;
    while (s != NULL) {
        segment_t *next = s->next;
        segment_free(s);
        s = next;
    }
    free(log->event_end);
    pthread_mutex_destroy(&log->lock);
    free(log);
}

static void remember_event(telex_log_t *log, uint64_t end)
{
    if (log->n_events == log->events_cap) {
        size_t cap = log->events_cap ? log->events_cap * 2 : EVENTS_MIN;
        log->event_end = telex_xrealloc(log->event_end, cap * sizeof(*log->event_end));
        log->events_cap = cap;
    }
    log->event_end[log->n_events++] = end;
}

/* Room in the smallest segment allocation (SEGMENT_MIN, doubling up to
 * SEGMENT_MAX) that holds `want` bytes. */
static size_t segment_cap(size_t want)
{
    size_t alloc = SEGMENT_MIN;
    while (alloc - sizeof(segment_t) < want && alloc < SEGMENT_MAX)
        alloc *= 2;
    return alloc - sizeof(segment_t);
}

int64_t telex_log_appendv(telex_log_t *log, const telex_log_piece_t *pieces, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += pieces[i].len;
    int64_t rc;
    lock(log);
    if (log->finished) {
        rc = -EPIPE;
        goto out;
    }
    if (log->max_bytes != 0 && log->retained + len > log->max_bytes) {
        rc = -ENOSPC;
        goto out;
    }
    segment_t *t = log->tail;
    if (t == NULL || log->tail_room < len) {
        size_t cap = segment_cap(log->retained + len);
        if (cap < len)
            cap = len;
        segment_t *s = segment_alloc(cap);
        log->segment_bytes += sizeof(*s) + cap;
        s->next = NULL;
        s->serial = ++log->next_serial;
        s->start = log->end;
        s->len = 0;
        s->cap = cap;
        if (t != NULL)
            t->next = s;
        else
            log->head = s;
        log->tail = t = s;
        log->tail_room = cap;
        log->tail_at = s->data;
        log->tail_serial = s->serial;
    }
    remember_event(log, log->end + len);
    char *to = log->tail_at; /* (not from the segment's header: a cold line at a model's pace) */
    for (size_t i = 0; i < n; i++) {
        memcpy(to, pieces[i].bytes, pieces[i].len);
        to += pieces[i].len;
    }
    log->tail_at = to;
    t->len += len;
    log->tail_room -= len;
    PUBLISH(log->end, log->end + len);
    PUBLISH(log->retained, log->retained + len);
    rc = (int64_t)++log->total_events;
out:
    unlock(log);
    return rc;
}

int64_t telex_log_append(telex_log_t *log, const char *bytes, size_t len)
{
    telex_log_piece_t piece = {bytes, len};
    return telex_log_appendv(log, &piece, 1);
}

void telex_log_finish(telex_log_t *log)
{
    lock(log);
    PUBLISH(log->finished, 1);
    unlock(log);
}

#define LOCKED_GETTER(type, name, expr)                                                                                \
    type name(telex_log_t *log)                                                                                        \
    {                                                                                                                  \
        lock(log);                                                                                                     \
        type v = (expr);                                                                                               \
        unlock(log);                                                                                                   \
        return v;                                                                                                      \
    }

int telex_log_finished(telex_log_t *log)
{
    return __atomic_load_n(&log->finished, __ATOMIC_ACQUIRE);
}

uint64_t telex_log_end(telex_log_t *log)
{
    return __atomic_load_n(&log->end, __ATOMIC_ACQUIRE);
}

size_t telex_log_retained(telex_log_t *log)
{
    return __atomic_load_n(&log->retained, __ATOMIC_ACQUIRE);
}

LOCKED_GETTER(uint64_t, telex_log_events, log->total_events)
LOCKED_GETTER(uint64_t, telex_log_start, log->start)
LOCKED_GETTER(size_t, telex_log_allocated, sizeof(*log) + log->segment_bytes + log->events_cap * sizeof(uint64_t))

int telex_log_position_after(telex_log_t *log, uint64_t seq, uint64_t *pos)
{
    int rc = 0;
    lock(log);
    if (seq > log->total_events) {
        rc = -ERANGE;
    } else if (seq == 0) {
        if (log->start != 0)
            rc = -ENOENT;
        else
            *pos = 0;
    } else if (seq < log->first_event) {
        rc = -ENOENT; /* event seq + 1, at least, is gone */
    } else {
        *pos = log->event_end[seq - log->first_event];
    }
    unlock(log);
    return rc;
}

static __thread size_t walked; /* telex_log_segments_walked */

size_t telex_log_segments_walked(void)
{
    return walked;
}

/* The segment to start a read at `pos` from: the cursor's when it is still
 * retained and does not start past pos, else the head. Called locked. */
static segment_t *walk_start(telex_log_t *log, const telex_log_cursor_t *c, uint64_t pos)
{
    segment_t *h = log->head;
    if (h != NULL && c->serial >= h->serial && c->serial <= log->tail_serial) {
        segment_t *s = c->segment;
        if (s->start <= pos)
            return s;
    }
    return h;
}

static void remember(telex_log_cursor_t *c, segment_t *s)
{
    if (s != NULL) {
        c->segment = s;
        c->serial = s->serial;
    }
}

int telex_log_read(telex_log_t *log, uint64_t from, struct iovec *vecs, int max, uint64_t *to)
{
    int n = 0;
    lock(log);
    if (from < log->start) {
        unlock(log);
        return -ENOENT;
    }
    uint64_t pos = from;
    segment_t *last = NULL;
    size_t steps = 0;
    for (segment_t *s = walk_start(log, &log->hint, pos); s != NULL && n < max; s = s->next) {
        uint64_t seg_end = s->start + s->len;
        last = s;
        if (seg_end <= pos) {
            steps++;
            continue;
        }
        size_t off = (size_t)(pos - s->start);
        vecs[n].iov_base = s->data + off;
        vecs[n].iov_len = s->len - off;
        pos = seg_end;
        n++;
    }
    remember(&log->hint, last);
    walked += steps;
    *to = pos;
    unlock(log);
    return n;
}

int telex_log_read_events_at(telex_log_t *log, telex_log_cursor_t *cursor, uint64_t from, uint64_t seq,
                             struct iovec *vecs, int max, uint64_t *to)
{
    return telex_log_read_events_upto(log, cursor, from, seq, vecs, max, SIZE_MAX, to);
}

int telex_log_read_events_upto(telex_log_t *log, telex_log_cursor_t *cursor, uint64_t from, uint64_t seq,
                               struct iovec *vecs, int max, size_t max_bytes, uint64_t *to)
{
    int n = 0;
    size_t bytes = 0;
    lock(log);
    if (from < log->start || seq < log->first_event) {
        unlock(log);
        return -ENOENT;
    }
    if (cursor == NULL)
        cursor = &log->hint;
    uint64_t pos = from;
    segment_t *s = walk_start(log, cursor, pos);
    size_t steps = 0;
    for (uint64_t i = seq - log->first_event; i < log->n_events && n < max; i++) {
        while (s != NULL && s->start + s->len <= pos) {
            s = s->next;
            steps++;
        }
        if (s == NULL)
            break;
        uint64_t end = log->event_end[i];
        if (n > 0 && (bytes >= max_bytes || end - pos > max_bytes - bytes))
            break;
        bytes += (size_t)(end - pos);
        vecs[n].iov_base = s->data + (pos - s->start);
        vecs[n].iov_len = (size_t)(end - pos);
        pos = end;
        n++;
    }
    remember(cursor, s);
    walked += steps;
    *to = pos;
    unlock(log);
    return n;
}

int telex_log_read_events(telex_log_t *log, uint64_t from, uint64_t seq, struct iovec *vecs, int max, uint64_t *to)
{
    return telex_log_read_events_at(log, NULL, from, seq, vecs, max, to);
}

void telex_log_release_before(telex_log_t *log, uint64_t pos)
{
    lock(log);
    while (log->head != NULL && log->head->start + log->head->len <= pos && log->head != log->tail) {
        segment_t *s = log->head;
        log->head = s->next;
        log->start = s->next->start;
        PUBLISH(log->retained, log->retained - s->len);
        log->segment_bytes -= sizeof(*s) + s->cap;
        segment_free(s);
    }
    /* The segment being filled is dropped only when fully passed: a
     * smallest one is then reused from its beginning, a larger one freed
     * (the next append sizes a new one by what is retained then). */
    if (log->head != NULL && log->head == log->tail && log->head->start + log->head->len <= pos) {
        segment_t *s = log->head;
        PUBLISH(log->retained, log->retained - s->len);
        log->start = s->start + s->len;
        if (s->cap > segment_cap(0)) {
            log->segment_bytes -= sizeof(*s) + s->cap;
            segment_free(s);
            log->head = log->tail = NULL;
            log->tail_room = 0;
            log->tail_at = NULL;
            log->tail_serial = 0;
        } else {
            s->start = log->start;
            s->len = 0;
            log->tail_room = s->cap;
            log->tail_at = s->data;
        }
    }
    /* Forget the end positions of events that are now gone entirely. */
    size_t drop = 0;
    while (drop < log->n_events && log->event_end[drop] <= log->start)
        drop++;
    if (drop > 0) {
        /* keep the last dropped event's end: resuming right after it is still possible */
        drop--;
        memmove(log->event_end, log->event_end + drop, (log->n_events - drop) * sizeof(uint64_t));
        log->n_events -= drop;
        log->first_event += drop;
    }
    unlock(log);
}
