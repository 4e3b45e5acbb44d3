/*
 * store/ledger.c — the write-behind ledger: a queue of fixed-size blocks
 * filled by event loops, drained by one writer thread. See ledger.h.
 *
 * Only the writer removes rows, and only after they are committed (or
 * safely in the spill file): it copies the oldest rows out under the lock,
 * writes them without it, then drops them from the queue. A failed
 * transaction therefore leaves the queue as it was, and the next attempt
 * writes the same rows again. While the database fails and spill_after
 * rows wait, the writer moves the queue to the spill file (store/spill.h);
 * when a write succeeds again it replays the file first, oldest first.
 * The tick callback has its own thread.
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
    /* the spill file (NULL: none); only the writer thread touches it,
     * spill_pending mirrors its count under the lock for stats/flush */
    telex_spill_t *spill;
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
            if (l->n_free < FREE_BLOCKS_KEPT) {
                b->next = l->free_blocks;
                l->free_blocks = b;
                l->n_free++;
            } else {
                free(b);
            }
        }
    }
}

/* One write attempt of the oldest rows. Returns rows written, or -1. */
static long write_some(telex_ledger_t *l)
{
    size_t n = peek(l, l->batch, l->opt.batch_max);
    if (n == 0)
        return 0;
    pthread_mutex_unlock(&l->lock);
    char err[512];
    int rc = telex_store_ledger_append(l->store, l->batch, n, err, sizeof err);
    pthread_mutex_lock(&l->lock);
    if (rc < 0) {
        l->failed_batches++;
        if (!l->failing) {
            /* the store's message names the database and what failed (never a key) */
            json_t *line = json_pack("{s:s,s:s,s:I,s:s}", "level", "warn", "msg", "ledger write failed; will retry",
                                     "rows", (json_int_t)n, "error", err);
            if (line != NULL)
                telex_log_json(line);
        }
        l->failing = true;
        return -1;
    }
    if (l->failing)
        telex_log_event("info", "ledger writes recovered", "\"rows\":%zu", n);
    l->failing = false;
    pop(l, n);
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
        int rc = telex_spill_append(l->spill, l->batch, n, err, sizeof err);
        pthread_mutex_lock(&l->lock);
        if (rc < 0) {
            if (!l->spill_failing) {
                json_t *line = json_pack("{s:s,s:s,s:I,s:s}", "level", "error", "msg",
                                         "cannot spill ledger rows to the local file", "rows", (json_int_t)l->pending,
                                         "error", err);
                if (line != NULL)
                    telex_log_json(line);
            }
            l->spill_failing = true;
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
    pthread_mutex_unlock(&l->lock);
    char err[512] = "";
    long done = -1;
    size_t n = telex_spill_peek(l->spill, l->batch, l->opt.batch_max, err, sizeof err);
    int rc = n > 0 ? telex_store_ledger_append(l->store, l->batch, n, err, sizeof err) : -EIO;
    if (rc == 0 && telex_spill_consume(l->spill, n, err, sizeof err) == 0)
        done = (long)n;
    uint64_t left = telex_spill_pending(l->spill);
    pthread_mutex_lock(&l->lock);
    if (done < 0) {
        l->failed_batches++;
        if (!l->failing) {
            json_t *line = json_pack("{s:s,s:s,s:I,s:s}", "level", "warn", "msg",
                                     "writing spilled ledger rows failed; will retry", "rows", (json_int_t)left,
                                     "error", err);
            if (line != NULL)
                telex_log_json(line);
        }
        l->failing = true;
        return -1;
    }
    l->failing = false;
    l->spill_pending = left;
    if (left == 0)
        telex_log_event("info", "spilled ledger rows written; the spill file is empty", NULL);
    pthread_cond_broadcast(&l->written);
    return done;
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
        /* The database is failing: past the bound, rows go to the file. */
        if (l->failing && l->spill != NULL && l->pending >= l->spill_after)
            spill_queue(l);
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
    telex_ledger_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        goto oom;
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
        if (src < 0) {
            free(l);
            return src;
        }
        l->spill_pending = telex_spill_pending(l->spill);
        if (l->spill_pending > 0)
            telex_log_event("notice", "ledger rows from an earlier run wait in the spill file; writing them",
                            "\"rows\":%llu", (unsigned long long)l->spill_pending);
    }
    if ((l->batch = malloc(l->opt.batch_max * sizeof(*l->batch))) == NULL) {
        telex_spill_close(l->spill);
        free(l);
        goto oom;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->wake, &ca);
    pthread_cond_init(&l->written, &ca);
    pthread_cond_init(&l->tick_wake, &ca);
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
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        telex_spill_close(l->spill);
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
oom:
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "out of memory");
    return -ENOMEM;
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
        block_t *b = l->last;
        if (b == NULL || b->tail == BLOCK_ROWS) {
            if (l->free_blocks != NULL) {
                b = l->free_blocks;
                l->free_blocks = b->next;
                l->n_free--;
            } else {
                b = malloc(sizeof(*b));
            }
            if (b == NULL) {
                rc = -ENOMEM;
            } else {
                b->next = NULL;
                b->head = b->tail = 0;
                if (l->last != NULL)
                    l->last->next = b;
                else
                    l->first = b;
                l->last = b;
            }
        }
        if (rc == 0) {
            b->rows[b->tail++] = *row;
            l->pending++;
            l->appended_seq++;
            if (l->pending == l->opt.batch_max || (l->failing && l->pending == l->spill_after))
                pthread_cond_signal(&l->wake);
        }
    }
    bool first_drop = false;
    if (rc == -ENOSPC || rc == -ENOMEM)
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
    while (l->written_seq < target || l->spill_pending > 0) {
        if (pthread_cond_timedwait(&l->written, &l->lock, &ts) == ETIMEDOUT) {
            rc = l->written_seq < target || l->spill_pending > 0 ? -EIO : 0;
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
    out->written = l->written_seq;
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
    pthread_mutex_unlock(&l->lock);
    if (l->has_ticker)
        pthread_join(l->ticker, NULL);
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
    pthread_cond_destroy(&l->tick_wake);
    pthread_cond_destroy(&l->wake);
    pthread_cond_destroy(&l->written);
    pthread_mutex_destroy(&l->lock);
    free(l->batch);
    free(l);
    return lost;
}
