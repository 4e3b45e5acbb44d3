/*
 * store/ledger.c — the write-behind ledger: a queue of fixed-size blocks
 * filled by event loops, drained by one writer thread. See ledger.h.
 *
 * Only the writer removes rows, and only after they are committed (or
 * safely in the spill file): it copies the oldest rows out under the lock,
 * writes them without it, then drops them from the queue. A failed
 * transaction therefore leaves the queue as it was, and the next attempt
 * writes the same rows again. While the database fails or is too slow and
 * spill_after rows wait, the spiller thread takes the rows after the
 * writer's batch off the queue (a copy under the lock) and appends them to
 * the spill file (store/spill.h); when a write succeeds again the writer
 * replays the file first. The tick callback has its own thread.
 */
#include "store/ledger.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/spill.h"
#include "util/alloc.h"
#include "util/log.h"

#define BLOCK_ROWS 256
#define FREE_BLOCKS_KEPT 16
#define STOP_ATTEMPTS 5

typedef struct block {
    struct block *next;
    size_t head, tail; /* rows [head, tail) are queued */
    telex_usage_record_t rows[BLOCK_ROWS];
} block_t;

struct telex_ledger {
    telex_store_t *store;
    telex_ledger_options_t opt;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;    /* the writer: rows, flush, stop */
    pthread_cond_t written; /* flushers: progress */
    block_t *first, *last;
    block_t *free_blocks;
    size_t n_free;
    uint64_t pending;
    uint64_t appended_seq; /* rows ever queued */
    uint64_t written_seq;  /* rows ever removed (committed or given up) */
    uint64_t dropped;
    uint64_t failed_batches;
    uint64_t flush_wanted; /* a flusher waits for written_seq >= this */
    bool stopping;
    bool failing; /* the last batch failed */
    telex_usage_record_t *batch;
    /* the spill file (NULL: none), used by the writer (replay, and at
     * stop) and the spiller thread under spill_lock (taken after lock is
     * released, never while holding it); spill_pending mirrors its count
     * under lock for stats/flush */
    telex_spill_t *spill;
    pthread_mutex_t spill_lock;
    pthread_t spiller;
    bool has_spiller, spiller_done;
    pthread_cond_t spill_wake;
    size_t inflight;        /* rows the writer copied and is writing now */
    double busy_since;      /* when the writer's current database call began; 0 = idle */
    uint64_t detached;      /* rows taken off the queue by the spiller, not yet in the file */
    uint64_t committed;     /* rows committed to the database (from the queue or the file) */
    size_t spill_after;     /* failing and this many rows queued: spill them */
    uint64_t spill_pending; /* rows in the spill file not yet written */
    uint64_t spilled_total; /* rows ever spilled */
    bool spill_failing;
    /* the tick runs on its own thread: a slow batch never delays it */
    pthread_t ticker;
    bool has_ticker;
    pthread_cond_t tick_wake;
};

static void deadline_after(struct timespec *ts, double seconds)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    long long ns = ts->tv_nsec + (long long)(seconds * 1e9);
    ts->tv_sec += (time_t)(ns / 1000000000LL);
    ts->tv_nsec = (long)(ns % 1000000000LL);
}

static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void recycle(telex_ledger_t *l, block_t *b)
{
    if (l->n_free < FREE_BLOCKS_KEPT) {
        b->next = l->free_blocks;
        l->free_blocks = b;
        l->n_free++;
    } else {
        free(b);
    }
}

/* Takes every row after the first `keep` off the queue into out (room for
 * pending - keep rows), under the lock. The writer only removes rows from
 * the head, at most the `inflight` it copied, so keep = inflight leaves it
 * its rows. Returns the rows taken. */
static size_t detach_tail(telex_ledger_t *l, size_t keep, telex_usage_record_t *out)
{
    size_t seen = 0, n = 0;
    block_t *prev = NULL, *b = l->first;
    while (b != NULL && seen + (b->tail - b->head) <= keep) {
        seen += b->tail - b->head;
        prev = b;
        b = b->next;
    }
    if (b == NULL)
        return 0;
    size_t skip = keep - seen; /* rows of b that stay */
    size_t from = b->head + skip;
    for (block_t *x = b; x != NULL;) {
        size_t k = x->tail - from;
        memcpy(out + n, x->rows + from, k * sizeof(*out));
        n += k;
        block_t *next = x->next;
        if (x != b)
            recycle(l, x);
        x = next;
        if (x != NULL)
            from = x->head;
    }
    b->tail = b->head + skip;
    b->next = NULL;
    if (skip == 0) {
        if (prev != NULL)
            prev->next = NULL;
        else
            l->first = NULL;
        l->last = prev;
        recycle(l, b);
    } else {
        l->last = b;
    }
    l->pending -= n;
    return n;
}

/* Adds one row at the tail (under the lock), taking a kept block or a new
 * one when the last is full. */
static void push(telex_ledger_t *l, const telex_usage_record_t *row)
{
    block_t *b = l->last;
    if (b == NULL || b->tail == BLOCK_ROWS) {
        if (l->free_blocks != NULL) {
            b = l->free_blocks;
            l->free_blocks = b->next;
            l->n_free--;
        } else {
            b = telex_xmalloc(sizeof(*b));
        }
        b->next = NULL;
        b->head = b->tail = 0;
        if (l->last != NULL)
            l->last->next = b;
        else
            l->first = b;
        l->last = b;
    }
    b->rows[b->tail++] = *row;
    l->pending++;
}

/* Puts rows back at the tail (under the lock), whatever max_pending says:
 * they were accepted before. */
static void requeue(telex_ledger_t *l, const telex_usage_record_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        push(l, &rows[i]);
}

/* Copies up to max of the oldest rows into out (under the lock). */
static size_t peek(telex_ledger_t *l, telex_usage_record_t *out, size_t max)
{
    size_t n = 0;
    for (block_t *b = l->first; b != NULL && n < max; b = b->next) {
        size_t k = b->tail - b->head;
        if (k > max - n)
            k = max - n;
        memcpy(out + n, b->rows + b->head, k * sizeof(*out));
        n += k;
    }
    return n;
}

/* Removes the n oldest rows (under the lock). */
static void pop(telex_ledger_t *l, size_t n)
{
    while (n > 0 && l->first != NULL) {
        block_t *b = l->first;
        size_t k = b->tail - b->head;
        if (k > n)
            k = n;
        b->head += k;
        n -= k;
        l->pending -= k;
        l->written_seq += k;
        if (b->head == b->tail) { /* drained: appenders start a new block */
            l->first = b->next;
            if (l->first == NULL)
                l->last = NULL;
            recycle(l, b);
        }
    }
}

/* One log line about rows the ledger could not write or spill. */
static void log_rows(const char *level, const char *msg, uint64_t rows, const char *err)
{
    json_t *line = json_pack("{s:s,s:s,s:I,s:s}", "level", level, "msg", msg, "rows", (json_int_t)rows, "error", err);
    if (line != NULL)
        telex_log_json(line);
}

/* A database write failed (under the lock): counted, and said once while
 * writes keep failing (the store's message names the database and what
 * failed, never a key). Returns -1. */
static long write_failed(telex_ledger_t *l, const char *msg, uint64_t rows, const char *err)
{
    l->failed_batches++;
    if (!l->failing)
        log_rows("warn", msg, rows, err);
    l->failing = true;
    return -1;
}

/* Appending to the spill file failed (under the lock): said once while
 * it keeps failing. */
static void spill_failed(telex_ledger_t *l, uint64_t rows, const char *err)
{
    if (!l->spill_failing)
        log_rows("error", "cannot spill ledger rows to the local file", rows, err);
    l->spill_failing = true;
}

/* One write attempt of the oldest rows. Returns rows written, or -1. */
static long write_some(telex_ledger_t *l)
{
    size_t n = peek(l, l->batch, l->opt.batch_max);
    if (n == 0)
        return 0;
    l->inflight = n;
    l->busy_since = mono_seconds();
    pthread_mutex_unlock(&l->lock);
    char err[512];
    int rc = telex_store_ledger_append(l->store, l->batch, n, err, sizeof err);
    pthread_mutex_lock(&l->lock);
    l->inflight = 0;
    l->busy_since = 0;
    if (rc < 0)
        return write_failed(l, "ledger write failed; will retry", n, err);
    if (l->failing)
        telex_log_event("info", "ledger writes recovered", "\"rows\":%zu", n);
    l->failing = false;
    pop(l, n);
    l->committed += n;
    pthread_cond_broadcast(&l->written);
    return (long)n;
}

/* Moves every queued row to the spill file (under the lock; the file
 * write happens without it). Returns rows moved, or -1. */
static long spill_queue(telex_ledger_t *l)
{
    long moved = 0;
    while (l->pending > 0) {
        size_t n = peek(l, l->batch, l->opt.batch_max);
        pthread_mutex_unlock(&l->lock);
        char err[512];
        pthread_mutex_lock(&l->spill_lock);
        int rc = telex_spill_append(l->spill, l->batch, n, err, sizeof err);
        pthread_mutex_unlock(&l->spill_lock);
        pthread_mutex_lock(&l->lock);
        if (rc < 0) {
            spill_failed(l, l->pending, err);
            return moved > 0 ? moved : -1;
        }
        if (l->spill_pending == 0 && moved == 0) {
            json_t *line = json_pack("{s:s,s:s,s:s}", "level", "warn", "msg",
                                     "the database cannot take ledger rows; spilling them to a local file until it can",
                                     "spill_path", telex_spill_path(l->spill));
            if (line != NULL)
                telex_log_json(line);
        }
        l->spill_failing = false;
        l->spill_pending += n;
        l->spilled_total += n;
        pop(l, n);
        moved += (long)n;
    }
    pthread_cond_broadcast(&l->written);
    return moved;
}

/* Writes one batch of spilled rows to the database. Returns rows
 * written, 0 when none wait, -1 on failure. */
static long replay_some(telex_ledger_t *l)
{
    if (l->spill == NULL || l->spill_pending == 0)
        return 0;
    l->busy_since = mono_seconds();
    pthread_mutex_unlock(&l->lock);
    char err[512] = "";
    long done = -1;
    pthread_mutex_lock(&l->spill_lock);
    size_t n = telex_spill_peek(l->spill, l->batch, l->opt.batch_max, err, sizeof err);
    pthread_mutex_unlock(&l->spill_lock);
    int rc = n > 0 ? telex_store_ledger_append(l->store, l->batch, n, err, sizeof err) : -EIO;
    pthread_mutex_lock(&l->spill_lock);
    /* rows appended meanwhile went after these: consume marks exactly these */
    if (rc == 0 && telex_spill_consume(l->spill, n, err, sizeof err) == 0)
        done = (long)n;
    uint64_t left = telex_spill_pending(l->spill);
    pthread_mutex_unlock(&l->spill_lock);
    pthread_mutex_lock(&l->lock);
    l->busy_since = 0;
    if (done < 0)
        return write_failed(l, "writing spilled ledger rows failed; will retry", left, err);
    l->failing = false;
    l->spill_pending = left;
    l->committed += (uint64_t)done;
    if (left == 0)
        telex_log_event("info", "spilled ledger rows written; the spill file is empty", NULL);
    pthread_cond_broadcast(&l->written);
    return done;
}

/* The spiller: while the database fails, or is too slow (the writer has
 * been in one call for a second — PostgreSQL may hold it up to
 * statement_timeout — or is in one while half the queue is used), and
 * spill_after rows wait beyond the writer's batch, it moves them to the
 * spill file — so a slow database never fills the queue. */
static void *spiller_main(void *arg)
{
    telex_ledger_t *l = arg;
    pthread_mutex_lock(&l->lock);
    while (!l->stopping) {
        /* a write stuck for a second, or one under way while half the queue
         * is used: the database does not keep up */
        bool stuck = l->busy_since > 0 &&
                     (mono_seconds() - l->busy_since >= 1.0 || l->pending >= l->opt.max_pending / 2);
        if (!(l->failing || stuck) || l->pending <= l->inflight || l->pending - l->inflight < l->spill_after) {
            struct timespec ts;
            deadline_after(&ts, 0.25);
            pthread_cond_timedwait(&l->spill_wake, &l->lock, &ts);
            continue; /* (stopping is checked by the loop) */
        }
        size_t k = l->pending - l->inflight;
        telex_usage_record_t *rows = telex_xmalloc(k * sizeof(*rows));
        k = detach_tail(l, l->inflight, rows);
        l->detached += k;
        bool first = l->spill_pending == 0;
        pthread_mutex_unlock(&l->lock);
        char err[512] = "";
        int rc = 0;
        size_t in_file = 0;
        pthread_mutex_lock(&l->spill_lock);
        while (in_file < k && rc == 0) {
            size_t chunk = k - in_file < l->opt.batch_max ? k - in_file : l->opt.batch_max;
            if ((rc = telex_spill_append(l->spill, rows + in_file, chunk, err, sizeof err)) == 0)
                in_file += chunk;
        }
        pthread_mutex_unlock(&l->spill_lock);
        if (rc == 0 && first) {
            json_t *line = json_pack("{s:s,s:s,s:s,s:s}", "level", "warn", "msg",
                                     "the database cannot take ledger rows; spilling them to a local file until it can",
                                     "why", stuck ? "writes are too slow" : "writes fail",
                                     "spill_path", telex_spill_path(l->spill));
            if (line != NULL)
                telex_log_json(line);
        }
        /* what is in the file counts as spilled (off the queue: counted
         * like written); on failure the rest goes back */
        pthread_mutex_lock(&l->lock);
        l->detached -= k;
        l->spill_pending += in_file;
        l->spilled_total += in_file;
        l->written_seq += in_file;
        if (rc != 0) {
            requeue(l, rows + in_file, k - in_file);
            spill_failed(l, k - in_file, err);
        } else {
            l->spill_failing = false;
        }
        free(rows);
        pthread_cond_broadcast(&l->written);
    }
    l->spiller_done = true;
    pthread_cond_broadcast(&l->written);
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

static void *ticker_main(void *arg)
{
    telex_ledger_t *l = arg;
    pthread_mutex_lock(&l->lock);
    while (!l->stopping) {
        struct timespec ts;
        deadline_after(&ts, l->opt.tick_seconds);
        while (!l->stopping && pthread_cond_timedwait(&l->tick_wake, &l->lock, &ts) != ETIMEDOUT) {
        }
        if (l->stopping)
            break;
        pthread_mutex_unlock(&l->lock);
        l->opt.on_tick(l->opt.tick_arg);
        pthread_mutex_lock(&l->lock);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

static void *writer_main(void *arg)
{
    telex_ledger_t *l = arg;
    pthread_mutex_lock(&l->lock);
    while (!l->stopping) {
        /* Spilled rows first (they are older), then the queue, batch by
         * batch; stop early on failure. */
        while (l->spill_pending > 0 && !l->stopping) {
            if (replay_some(l) < 0)
                break;
        }
        while (l->spill_pending == 0 && l->pending > 0 && !l->stopping) {
            if (write_some(l) < 0)
                break;
        }
        /* (past the bound while failing, the spiller thread moves rows to
         * the spill file) */
        if (l->stopping)
            break;
        if (l->pending >= l->opt.batch_max && !l->failing)
            continue;
        if (l->flush_wanted > l->written_seq && l->pending > 0 && !l->failing)
            continue;
        double wait = l->failing ? 1.0 : l->opt.flush_interval_seconds;
        struct timespec ts;
        deadline_after(&ts, wait);
        pthread_cond_timedwait(&l->wake, &l->lock, &ts);
        /* after the wait: flush whatever arrived (the interval has passed,
         * or enough rows are waiting, or someone asked) */
    }
    /* Stopping: write the rest, retrying a failing batch a few times; what
     * still cannot be written goes to the spill file. */
    int attempts = 0;
    while (l->has_spiller && !l->spiller_done) /* its rows are back or in the file */
        pthread_cond_wait(&l->written, &l->lock);
    l->failing = false;
    while ((l->pending > 0 || l->spill_pending > 0) && attempts < STOP_ATTEMPTS) {
        long r = l->spill_pending > 0 ? replay_some(l) : write_some(l);
        if (r < 0) {
            if (l->spill != NULL)
                break; /* the rows are safe in the file: no need to wait */
            attempts++;
            struct timespec ts;
            deadline_after(&ts, 0.5);
            pthread_cond_timedwait(&l->wake, &l->lock, &ts);
        }
    }
    if (l->pending > 0 && l->spill != NULL) {
        uint64_t before = l->pending;
        spill_queue(l);
        if (l->pending < before)
            telex_log_event("warn", "ledger rows spilled at shutdown; they are written at the next start",
                            "\"rows\":%llu", (unsigned long long)(before - l->pending));
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

int telex_ledger_start(telex_ledger_t **out, telex_store_t *store, const telex_ledger_options_t *options,
                       char *err, size_t errlen)
{
    *out = NULL;
    telex_ledger_t *l = telex_xcalloc(1, sizeof(*l));
    l->store = store;
    if (options != NULL)
        l->opt = *options;
    if (!(l->opt.flush_interval_seconds > 0))
        l->opt.flush_interval_seconds = 0.25;
    if (l->opt.batch_max == 0)
        l->opt.batch_max = 1024;
    if (l->opt.max_pending == 0)
        l->opt.max_pending = 100000;
    if (!(l->opt.tick_seconds > 0))
        l->opt.tick_seconds = 1;
    /* far below max_pending: the queue keeps room for what arrives while
     * the writer is spilling */
    l->spill_after = l->opt.max_pending / 10 > 0 ? l->opt.max_pending / 10 : 1;
    if (l->opt.spill_path != NULL) {
        int src = telex_spill_open(&l->spill, l->opt.spill_path, l->opt.spill_max_bytes, err, errlen);
        for (int slot = 1; src == -EBUSY && l->opt.spill_path_default && slot < 16; slot++) {
            char alt[4096];
            if (snprintf(alt, sizeof alt, "%s.%d", l->opt.spill_path, slot) >= (int)sizeof alt)
                break;
            src = telex_spill_open(&l->spill, alt, l->opt.spill_max_bytes, err, errlen);
        }
        if (src < 0) {
            free(l);
            return src;
        }
        l->spill_pending = telex_spill_pending(l->spill);
        if (l->spill_pending > 0)
            telex_log_event("notice", "ledger rows from an earlier run wait in the spill file; writing them",
                            "\"rows\":%llu", (unsigned long long)l->spill_pending);
    }
    l->batch = telex_xmalloc(l->opt.batch_max * sizeof(*l->batch));
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->wake, &ca);
    pthread_cond_init(&l->written, &ca);
    pthread_cond_init(&l->tick_wake, &ca);
    pthread_cond_init(&l->spill_wake, &ca);
    pthread_mutex_init(&l->spill_lock, NULL);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&l->lock, NULL);
    /* The writer never takes a signal: SIGINT/SIGTERM belong to the thread
     * that waits for them (http/server.c), whatever the order of start-up. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&l->thread, NULL, writer_main, l);
    if (rc == 0 && l->opt.on_tick != NULL) {
        rc = pthread_create(&l->ticker, NULL, ticker_main, l);
        if (rc != 0) {
            pthread_mutex_lock(&l->lock);
            l->stopping = true;
            pthread_cond_signal(&l->wake);
            pthread_mutex_unlock(&l->lock);
            pthread_join(l->thread, NULL);
        }
        l->has_ticker = rc == 0;
    }
    if (rc == 0 && l->spill != NULL) {
        rc = pthread_create(&l->spiller, NULL, spiller_main, l);
        if (rc != 0) {
            pthread_mutex_lock(&l->lock);
            l->stopping = true;
            pthread_cond_signal(&l->wake);
            pthread_cond_signal(&l->tick_wake);
            pthread_mutex_unlock(&l->lock);
            if (l->has_ticker)
                pthread_join(l->ticker, NULL);
            pthread_join(l->thread, NULL);
        }
        l->has_spiller = rc == 0;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        telex_spill_close(l->spill);
        pthread_cond_destroy(&l->spill_wake);
        pthread_mutex_destroy(&l->spill_lock);
        pthread_cond_destroy(&l->tick_wake);
        pthread_cond_destroy(&l->wake);
        pthread_cond_destroy(&l->written);
        pthread_mutex_destroy(&l->lock);
        free(l->batch);
        free(l);
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "cannot start the ledger writer thread: %s", strerror(rc));
        return -EAGAIN;
    }
    *out = l;
    return 0;
}

int telex_ledger_append(telex_ledger_t *l, const telex_usage_record_t *row)
{
    int rc = 0;
    pthread_mutex_lock(&l->lock);
    if (l->stopping) {
        rc = -ESHUTDOWN;
    } else if (l->pending >= l->opt.max_pending) {
        rc = -ENOSPC;
    } else {
        push(l, row);
        l->appended_seq++;
        if (l->pending == l->opt.batch_max)
            pthread_cond_signal(&l->wake);
        if ((l->pending == l->spill_after || l->pending == l->opt.max_pending / 2) && l->spill != NULL)
            pthread_cond_signal(&l->spill_wake);
    }
    bool first_drop = false;
    if (rc == -ENOSPC)
        first_drop = l->dropped++ == 0;
    pthread_mutex_unlock(&l->lock);
    if (first_drop)
        telex_log_event("error", "ledger queue full; usage rows are being dropped",
                        "\"max_pending\":%zu", l->opt.max_pending);
    return rc;
}

int telex_ledger_flush(telex_ledger_t *l, double timeout_seconds)
{
    struct timespec ts;
    deadline_after(&ts, timeout_seconds);
    pthread_mutex_lock(&l->lock);
    uint64_t target = l->appended_seq;
    if (target > l->flush_wanted)
        l->flush_wanted = target;
    pthread_cond_signal(&l->wake);
    int rc = 0;
    while (l->written_seq < target || l->spill_pending > 0 || l->detached > 0) {
        if (pthread_cond_timedwait(&l->written, &l->lock, &ts) == ETIMEDOUT) {
            rc = l->written_seq < target || l->spill_pending > 0 || l->detached > 0 ? -EIO : 0;
            break;
        }
    }
    pthread_mutex_unlock(&l->lock);
    return rc;
}

void telex_ledger_stats(telex_ledger_t *l, telex_ledger_stats_t *out)
{
    pthread_mutex_lock(&l->lock);
    out->appended = l->appended_seq;
    out->written = l->committed;
    out->dropped = l->dropped;
    out->failed_batches = l->failed_batches;
    out->pending = l->pending;
    out->spilled = l->spill_pending;
    out->spilled_total = l->spilled_total;
    pthread_mutex_unlock(&l->lock);
}

uint64_t telex_ledger_stop(telex_ledger_t *l)
{
    if (l == NULL)
        return 0;
    pthread_mutex_lock(&l->lock);
    l->stopping = true;
    pthread_cond_signal(&l->wake);
    pthread_cond_signal(&l->tick_wake);
    pthread_cond_signal(&l->spill_wake);
    pthread_mutex_unlock(&l->lock);
    if (l->has_ticker)
        pthread_join(l->ticker, NULL);
    if (l->has_spiller)
        pthread_join(l->spiller, NULL);
    pthread_join(l->thread, NULL);
    uint64_t lost = l->pending;
    if (lost > 0)
        telex_log_event("error", "ledger rows could not be written at shutdown", "\"rows\":%llu",
                        (unsigned long long)lost);
    while (l->first != NULL) {
        block_t *b = l->first;
        l->first = b->next;
        free(b);
    }
    while (l->free_blocks != NULL) {
        block_t *b = l->free_blocks;
        l->free_blocks = b->next;
        free(b);
    }
    telex_spill_close(l->spill);
    pthread_cond_destroy(&l->spill_wake);
    pthread_mutex_destroy(&l->spill_lock);
    pthread_cond_destroy(&l->tick_wake);
    pthread_cond_destroy(&l->wake);
    pthread_cond_destroy(&l->written);
    pthread_mutex_destroy(&l->lock);
    free(l->batch);
    free(l);
    return lost;
}
