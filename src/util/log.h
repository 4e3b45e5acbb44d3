/*
 * util/log.h — one JSON object per line on stderr.
 *
 * Every line has "time" (RFC 3339, UTC, milliseconds), "level" and "msg".
 * Logging never blocks the caller: lines are queued (1 MiB at most) for one
 * writer thread, so a stderr nobody drains (a full pipe) cannot freeze an
 * event loop; a line that does not fit in the queue is dropped and counted,
 * and a "log lines dropped" warning with the count follows once stderr
 * takes bytes again. Lines never interleave (one writer, whole lines).
 * At exit the queue is flushed for at most 2 s. Nothing secret may be passed in: callers log model
 * names, statuses and counts, never keys or Authorization headers.
 * TELEX_LOG=quiet silences "info" lines (per-request lines); "notice" lines
 * (listening, shutting down, stopped), warnings and errors still print.
 */
#ifndef TELEX_UTIL_LOG_H
#define TELEX_UTIL_LOG_H

#include <stdint.h>

#include <jansson.h>

/* `fields` is a printf format producing zero or more JSON members
 * ("\"key\":value,..." without braces) or NULL; strings placed in it must be
 * safe (numbers, fixed words) — use telex_log_json for user-controlled text. */
void telex_log_event(const char *level, const char *msg, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));

/* Whether lines of this level are written (TELEX_LOG=quiet drops "info"):
 * a caller can skip building a line nobody will read. */
int telex_log_wants(const char *level);

/* Adds "time" (and keeps the caller's members), writes one line, and
 * releases the caller's reference to obj. */
void telex_log_json(json_t *obj);

/* Waits until every queued line is written, at most timeout_ms. 0 when
 * done, -1 when lines are still waiting. */
int telex_log_flush(int timeout_ms);

/* Lines dropped so far because the queue was full. */
uint64_t telex_log_dropped(void);

#endif
