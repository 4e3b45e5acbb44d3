/*
 * store/ledger.h — the write-behind usage ledger: event loops hand rows to
 * it without waiting; one writer thread batches them into the store
 * (SQLite or PostgreSQL).
 *
 * telex_ledger_append copies a row into an in-memory queue under a mutex
 * held only for the copy (no I/O, no waiting on the writer), so it is safe
 * on any event loop thread. The writer thread wakes every
 * flush_interval_seconds (or as soon as batch_max rows wait) and writes up
 * to batch_max rows per transaction. A batch that fails (the database
 * stayed locked or is down, the disk is full) stays queued and is retried.
 *
 * With a spill file (spill_path), a spiller thread moves the queued rows
 * (all but the batch being written) to the file (store/spill.h) once
 * max_pending / 10 wait while the database fails or is too slow (one write
 * has taken a second, or one is under way while half the queue is used);
 * the writer writes them to the database when it takes writes again —
 * also after a restart: rows found in the file at start are written first.
 * Rows are only dropped — counted, and logged — when more than max_pending
 * wait in memory (no spill file, or arrivals outrun the spill file) or the
 * spill file cannot take them (full: spill_max_bytes, or its own disk
 * failing).
 *
 * telex_ledger_stop writes everything still queued (retrying a failing
 * batch a few times; with a spill file, spilling at once what the database
 * does not take) before it returns: graceful shutdown loses nothing.
 *
 * An optional tick callback runs every tick_seconds on a thread of its own
 * (a slow ledger batch never delays it) — the services use it to notice
 * key and preset changes made by other processes and nodes. It may use the
 * store.
 */
#ifndef TELEX_STORE_LEDGER_H
#define TELEX_STORE_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct telex_ledger telex_ledger_t;

typedef struct telex_ledger_options {
    double flush_interval_seconds; /* 0 = default 0.25 */
    size_t batch_max;              /* rows per transaction; 0 = default 1024 */
    size_t max_pending;            /* queue bound; 0 = default 100000 */
    double tick_seconds;           /* 0 = default 1 (when on_tick is set) */
    void (*on_tick)(void *arg);    /* NULL = none */
    void *tick_arg;
    const char *spill_path;        /* NULL = no spill file */
    /* The path is telex's default (not configured): when another process
     * holds it, take the first free of spill_path.1 … .15 instead, so nodes
     * sharing one database file each get their own spill file. */
    bool spill_path_default;
    uint64_t spill_max_bytes;      /* 0 = 1 GiB */
} telex_ledger_options_t;

typedef struct telex_ledger_stats {
    uint64_t appended;       /* rows accepted by telex_ledger_append */
    uint64_t written;        /* rows committed to the database */
    uint64_t dropped;        /* rows refused: queue full */
    uint64_t failed_batches; /* transactions that failed (and were retried) */
    uint64_t pending;        /* rows waiting in memory */
    uint64_t spilled;        /* rows waiting in the spill file */
    uint64_t spilled_total;  /* rows ever moved to the spill file */
} telex_ledger_stats_t;

/* Starts the writer thread on an open store (which must outlive it).
 * Returns 0, or -EAGAIN with a message, or the spill file's
 * error (-EBUSY: another process has it; -EINVAL: not a spill file of this
 * build; -EIO). */
int telex_ledger_start(telex_ledger_t **out, telex_store_t *store, const telex_ledger_options_t *options,
                       char *err, size_t errlen);

/* Queues a copy of *row; never blocks on I/O. Returns 0, -ENOSPC when the
 * queue is full (the row is dropped and counted), or -ESHUTDOWN after telex_ledger_stop began. */
int telex_ledger_append(telex_ledger_t *ledger, const telex_usage_record_t *row);

/* Waits until every row appended before the call is committed (and the
 * spill file is empty). Returns 0,
 * or -EIO if the writer could not write them within timeout_seconds. Never
 * call on an event loop thread. */
int telex_ledger_flush(telex_ledger_t *ledger, double timeout_seconds);

void telex_ledger_stats(telex_ledger_t *ledger, telex_ledger_stats_t *out);

/* Writes what is queued, stops the thread, frees the ledger. Returns the
 * number of rows that could not be written (0 normally; each is logged).
 * NULL is a no-op. */
uint64_t telex_ledger_stop(telex_ledger_t *ledger);

#endif
