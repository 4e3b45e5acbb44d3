/*
 * stream/log.h — the append-only log of one streamed answer.
 *
 * The producer (the worker running the upstream call) appends encoded SSE
 * events; every subscriber (the original client, resumers, a second tab) is
 * only a byte position into the log and sends from there. Bytes are stored
 * in segments that are never moved or reallocated, so a subscriber can hand
 * pointers into the log straight to the socket writer, and a slow reader
 * costs no memory beyond the log itself.
 *
 * A read finds its start from a cursor (the segment where that reader's
 * previous read ended, see telex_log_cursor_t) rather than from the oldest
 * segment, so it costs the same however much history the log keeps.
 *
 * Positions are byte offsets from the start of the stream (they keep
 * counting when old segments are dropped). Event n (1-based) ends at
 * telex_log_event_end(n); resuming after event n means sending from there.
 *
 * Memory is bounded: appends beyond `max_bytes` of retained bytes fail with
 * -ENOSPC until the owner drops segments every subscriber has passed
 * (telex_log_release_before). Dropped events can no longer be resumed from.
 * Segments start small (512 bytes) and grow with what the log retains (up
 * to 8 KiB, or one larger event), so a log whose reader keeps up and
 * releases what it wrote holds about 512 bytes. Freed segments of those
 * standard sizes are kept in a per-thread cache (at most 256 KiB per size)
 * for the next append on that thread; telex_log_cache_drop() empties
 * the calling thread's cache, which happens by itself when a thread exits.
 *
 * Thread safety: a shared log's functions may be called from any thread; a
 * mutex guards the metadata (never held across I/O). Segment bytes below the
 * end position never change, so readers may use them without the lock as
 * long as they hold a reference and have not released past them. A log
 * created with shared = 0 takes no lock at all: only one thread may ever
 * touch it (a stream nobody can resume, read by the one client on the
 * producer's own worker; that saves ~8 lock operations per event).
 */
#ifndef TELEX_STREAM_LOG_H
#define TELEX_STREAM_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct telex_log telex_log_t;

/* max_bytes: most bytes retained at once (0 = unlimited); shared: whether
 * more than one thread will use the log (see above). */
telex_log_t *telex_log_new(size_t max_bytes, int shared);
void telex_log_free(telex_log_t *log);

/* Frees the calling thread's cache of free segments (see above); for a
 * thread that will not exit before the process does (tests, main). */
void telex_log_cache_drop(void);
/* Bytes of free segments in the calling thread's cache. */
size_t telex_log_cache_bytes(void);

/* Appends one whole event (never split across segments). Returns its
 * sequence number (>= 1), -ENOSPC past max_bytes or -EPIPE after
 * telex_log_finish. */
int64_t telex_log_append(telex_log_t *log, const char *bytes, size_t len);

/* The same for an event given in pieces (written one after the other into
 * the segment: the caller needs no buffer to assemble it in). */
typedef struct telex_log_piece {
    const char *bytes;
    size_t len;
} telex_log_piece_t;
int64_t telex_log_appendv(telex_log_t *log, const telex_log_piece_t *pieces, size_t n);

/* Marks the end of the stream: nothing more will be appended. */
void telex_log_finish(telex_log_t *log);
int telex_log_finished(telex_log_t *log);

/* Position just past the last appended byte; events appended so far. */
uint64_t telex_log_end(telex_log_t *log);
uint64_t telex_log_events(telex_log_t *log);
/* Oldest retained position (0 until something is released). */
uint64_t telex_log_start(telex_log_t *log);
/* Bytes of segments all logs of the process hold together (headers
 * included, thread caches not): for a process-wide budget. */
size_t telex_log_total_bytes(void);

/* Bytes currently retained. */
size_t telex_log_retained(telex_log_t *log);
/* Bytes of memory the log holds (segments, their headers, the event table,
 * itself; not malloc's own overhead). */
size_t telex_log_allocated(telex_log_t *log);

/* Where to send from to resume after event `seq` (0 = from the start).
 * Returns 0, -ENOENT if that event was dropped, -ERANGE if it does not
 * exist yet. */
int telex_log_position_after(telex_log_t *log, uint64_t seq, uint64_t *pos);

/* Fills up to max iovecs with the bytes from `from` to the end, and stores
 * the position they reach in *to. Returns the number of iovecs (0 when
 * nothing is new), or -ENOENT if `from` was dropped. */
int telex_log_read(telex_log_t *log, uint64_t from, struct iovec *vecs, int max, uint64_t *to);

/* The same, one iovec per event (an event is never split across segments):
 * `from` must be where event `seq` starts (0 and 1 for the first event, or
 * the position telex_log_position_after(seq - 1) gave). Fills at most max
 * events and stores the position they reach in *to. Returns the number of
 * events (0 when nothing is new), or -ENOENT if event seq was dropped. For
 * a reader that writes something of its own before each event (an id). */
int telex_log_read_events(telex_log_t *log, uint64_t from, uint64_t seq, struct iovec *vecs, int max, uint64_t *to);

/* A reader's memory of the segment its last read ended in, so that its next
 * read starts there instead of walking the log from its oldest segment
 * (which made every read cost O(retained segments): quadratic in a long
 * answer kept for resume). Zero-initialise it; it belongs to one reader
 * (one position) of one log, is only touched inside the log's calls (under the lock of
 * a shared log), and stays safe when the segment it names is dropped (by
 * telex_log_release_before, e.g. under the global history budget): such a
 * cursor is recognised by its serial number and never dereferenced, and
 * the read walks from the oldest segment once. Reads without a cursor
 * (the two calls above) use one kept in the log, which serves a single
 * reader well and several at different positions correctly. */
typedef struct telex_log_cursor {
    void *segment;
    uint64_t serial; /* 0: none */
} telex_log_cursor_t;

/* telex_log_read_events reading from and updating *cursor (NULL: the log's
 * own). Same arguments and results. */
int telex_log_read_events_at(telex_log_t *log, telex_log_cursor_t *cursor, uint64_t from, uint64_t seq,
                             struct iovec *vecs, int max, uint64_t *to);

/* telex_log_read_events_at that also stops before the event that would
 * take the iovecs' total past max_bytes (the first event is always taken,
 * however long): whole events up to a write size. */
int telex_log_read_events_upto(telex_log_t *log, telex_log_cursor_t *cursor, uint64_t from, uint64_t seq,
                               struct iovec *vecs, int max, size_t max_bytes, uint64_t *to);

/* Segments the calling thread's reads have stepped past to reach their
 * start position, in all (for tests: a read from a cursor steps past at
 * most the segments appended since that reader's last read). */
size_t telex_log_segments_walked(void);

/* Drops whole segments that end at or before pos. */
void telex_log_release_before(telex_log_t *log, uint64_t pos);

#endif
