/*
 * store/spill.h — a local file of ledger rows the database could not take
 * yet (PostgreSQL down or slow, an SQLite disk full or locked), written by
 * the ledger writer (store/ledger.c) and replayed by it when the database
 * is back, also after a restart of telex.
 *
 * Layout: a 32-byte header ("TLXSPIL1", the record size, the rows
 * replayed, the rows appended), then fixed-size telex_usage_record_t
 * records. An append is synced, then the header's count (synced again):
 * rows count only once the header says so, and a torn append (a crash
 * mid-way) is not data. 8 MiB (or spill_max_bytes if smaller) stay
 * allocated, so that rows can still be spilled when the disk fills up —
 * SQLite's disk is often the same one. The file is locked (flock) for
 * as long as it is open: two telex processes never share one. A file
 * written by a build with another record layout is refused, never misread.
 *
 * Replay: peek the oldest rows, write them to the database, then consume
 * them (the header's count is updated and synced; when everything is
 * replayed the file is truncated to its header). A crash between the
 * database commit and consume replays that batch again on the next start:
 * at most one batch (batch_max rows) can be counted twice; none is lost.
 *
 * Not thread-safe: one thread (the ledger writer) uses a spill.
 */
#ifndef TELEX_STORE_SPILL_H
#define TELEX_STORE_SPILL_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct telex_spill telex_spill_t;

/* Opens or creates the file (parent directories 0700). max_bytes bounds
 * the file (0 = 1 GiB). Returns 0 or a negative errno with one line. */
int telex_spill_open(telex_spill_t **out, const char *path, uint64_t max_bytes, char *err, size_t errlen);
void telex_spill_close(telex_spill_t *spill);
const char *telex_spill_path(const telex_spill_t *spill);

/* Rows in the file not yet replayed. */
uint64_t telex_spill_pending(const telex_spill_t *spill);

/* Appends n rows and syncs. -ENOSPC: the bound would be passed (nothing
 * written); -EIO: the write failed (nothing counted). */
int telex_spill_append(telex_spill_t *spill, const telex_usage_record_t *rows, size_t n, char *err, size_t errlen);

/* Copies up to max of the oldest rows not yet replayed into out; returns
 * how many (0 if none, or on a read error, with a message in err). */
size_t telex_spill_peek(telex_spill_t *spill, telex_usage_record_t *out, size_t max, char *err, size_t errlen);

/* Marks the n rows peeked last as replayed. Returns 0 or -EIO. */
int telex_spill_consume(telex_spill_t *spill, size_t n, char *err, size_t errlen);

#endif
