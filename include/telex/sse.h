/*
 * telex/sse.h — the Server-Sent Events wire format (libtelex).
 *
 * Two halves, both pure (no I/O, no global state, thread-compatible):
 *
 *  - An incremental parser that follows the WHATWG HTML "event stream
 *    interpretation" exactly. Feed it byte chunks of any size (one byte at a
 *    time works); it reports dispatched events, valid `retry` values and
 *    comments through callbacks, in stream order. The parser owns a few
 *    growable buffers that are reused from event to event, so the steady
 *    state allocates nothing. Every buffer is bounded by `max_event_size`;
 *    exceeding it is a reported error (TELEX_SSE_ETOOBIG), never unbounded
 *    growth. Total work is linear in the input size however it is split.
 *
 *  - An encoder that writes events and comments into caller-provided
 *    buffers. Data containing CR, LF or CRLF is split into several `data:`
 *    lines (so it parses back to the same text with LF line breaks); ids
 *    and event types containing CR, LF or NUL are rejected.
 *
 * Strings passed to callbacks are (pointer, length) pairs that stay valid
 * only for the duration of the callback. They are also NUL-terminated for
 * convenience (an event's data not always in in-place mode, see
 * telex_sse_parser_set_in_place), but may contain NUL bytes themselves
 * (data may).
 *
 * The parser is byte oriented: it never decodes or validates UTF-8. Data,
 * types, ids and comments are passed through as the bytes that arrived, so
 * a caller that needs valid UTF-8 must check (or replace) it itself.
 * See docs/sse.md for the rules, limits and how the code is fuzzed.
 */
#ifndef TELEX_SSE_H
#define TELEX_SSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes: every function returns 0 on success or one of these. */
#define TELEX_SSE_OK 0
#define TELEX_SSE_ENOMEM (-1)   /* an allocation failed */
#define TELEX_SSE_ETOOBIG (-2)  /* an event (or a line) exceeded max_event_size */
#define TELEX_SSE_ESTOPPED (-3) /* a callback returned non-zero */
#define TELEX_SSE_EINVAL (-4)   /* bad argument (e.g. CR/LF/NUL in an id or type) */
#define TELEX_SSE_ENOSPC (-5)   /* output buffer too small */
#define TELEX_SSE_EFIELD (-6)   /* strict mode: a line that is not a field, a comment or blank */

#define TELEX_SSE_DEFAULT_MAX_EVENT_SIZE (1024 * 1024)

/* Returns a static, human-readable description of an error code. */
const char *telex_sse_strerror(int err);

/* ---------------------------------------------------------------- parser */

/* A dispatched event. `type` is "message" when the stream set none.
 * `id` is the parser's last-event-id buffer at dispatch time (it persists
 * across events until an `id` field changes it). */
typedef struct telex_sse_event {
    const char *type;
    size_t type_len;
    const char *data;
    size_t data_len;
    const char *id;
    size_t id_len;
} telex_sse_event_t;

/* Callbacks; any may be NULL. A non-zero return from on_event / on_retry /
 * on_comment stops the current feed, which then returns TELEX_SSE_ESTOPPED;
 * the parser stays usable (feeding again continues after the stopping line).
 * The bytes of the stopped feed after that line are kept by the parser and
 * interpreted first by the next feed; feeding 0 bytes just drains them (it
 * returns 0 once they are all interpreted). */
typedef struct telex_sse_callbacks {
    int (*on_event)(void *user, const telex_sse_event_t *event);
    /* A `retry` field whose value is ASCII digits only (and fits in 64 bits). */
    int (*on_retry)(void *user, uint64_t milliseconds);
    /* A line starting with ':'; text is what follows the colon, unmodified. */
    int (*on_comment)(void *user, const char *text, size_t len);
} telex_sse_callbacks_t;

typedef struct telex_sse_parser telex_sse_parser_t;

/* Creates a parser. max_event_size 0 means TELEX_SSE_DEFAULT_MAX_EVENT_SIZE.
 * The limit applies to the sum of an event's data (counting the LF after each
 * data line), type and id buffers, and to any single line (without its line
 * end; a line fails as soon as its first max_event_size + 1 bytes arrive, so
 * the verdict never depends on how the input is split). callbacks is copied.
 * Returns NULL when out of memory. */
telex_sse_parser_t *telex_sse_parser_new(size_t max_event_size, const telex_sse_callbacks_t *callbacks,
                                         void *user);
void telex_sse_parser_free(telex_sse_parser_t *parser);

/* Feeds the next bytes of the stream (bytes may be NULL when len is 0).
 * Returns 0, TELEX_SSE_ESTOPPED, TELEX_SSE_ETOOBIG, TELEX_SSE_ENOMEM or (strict
 * mode) TELEX_SSE_EFIELD (TELEX_SSE_EINVAL for NULL bytes with len > 0). After
 * ETOOBIG, ENOMEM or EFIELD the parser is failed: further feeds return the same error until
 * telex_sse_parser_reset. Events before the failing line were reported. */
int telex_sse_parser_feed(telex_sse_parser_t *parser, const void *bytes, size_t len);

/* Forgets all state (pending line, event buffers, last event id, BOM state,
 * failure), as for a brand-new connection. Keeps allocated buffers, the
 * limit and strict mode. */
void telex_sse_parser_reset(telex_sse_parser_t *parser);

/* Strict mode (off by default; kept by telex_sse_parser_reset): a line that
 * is not a blank line, a comment or one of the four fields the standard
 * knows (data, event, id, retry; the standard ignores any other) fails the
 * parser with TELEX_SSE_EFIELD, like ETOOBIG: every event before that line
 * was reported. For a program that must tell an event stream from something
 * else sent as one (an error page, a JSON body). The line is refused as soon
 * as its first bytes show it — the field name ends at ':' or at the line's
 * end, and no known name is longer than 5 bytes, so at most 6 bytes — and
 * that verdict comes before the size limit's, so neither depends on how the
 * input is split. Returns 0, or TELEX_SSE_EINVAL when the parser's
 * max_event_size is below 6 (a line could then fail the limit before its
 * name is known). */
int telex_sse_parser_set_strict(telex_sse_parser_t *parser, int strict);

/* In-place data (off by default; kept by telex_sse_parser_reset): an event
 * whose data is one `data:` line that arrived whole within one feed, blank
 * line included, is reported pointing into the bytes that feed passed (or
 * into the parser's copy of held bytes) instead of a copy — the common
 * shape of a streamed model answer. Its data is then NOT NUL-terminated
 * (data[data_len] is the line's end); every other string, and every other
 * event's data, still is. For callers that use the lengths; saves one copy
 * of every such event. Returns 0. */
int telex_sse_parser_set_in_place(telex_sse_parser_t *parser, int in_place);

/* Sets the last-event-id buffer, e.g. when a client reconnects. Returns 0;
 * TELEX_SSE_EINVAL if id contains NUL (a stream could not set it either);
 * TELEX_SSE_ETOOBIG if it does not fit max_event_size together with the
 * event being built; or the error of a failed parser. len 0 clears it. */
int telex_sse_parser_set_last_event_id(telex_sse_parser_t *parser, const char *id, size_t len);

/* --------------------------------------------------------------- encoder */

/* An event to encode. NULL / 0-length type and id are omitted; retry < 0 is
 * omitted. data may be NULL only when data_len is 0 (then one empty `data:`
 * line is written, so the event still dispatches with empty data). */
typedef struct telex_sse_out_event {
    const char *type;
    size_t type_len;
    const char *id;
    size_t id_len;
    int64_t retry;
    const char *data;
    size_t data_len;
} telex_sse_out_event_t;

/* The exact number of bytes telex_sse_encode_event writes for `event` (so
 * also an upper bound); it scans data for line breaks. SIZE_MAX on overflow. */
size_t telex_sse_encoded_size(const telex_sse_out_event_t *event);

/* Writes `event` (ending with the blank line that dispatches it) into
 * buf[0..cap). On success stores the byte count in *written (may be NULL)
 * and returns 0; TELEX_SSE_EINVAL if type or id contain CR, LF or NUL (or a
 * pointer is NULL with a non-zero length); TELEX_SSE_ENOSPC if cap is too
 * small. On error nothing is written and *written is 0. Each data line is
 * written as "data: " + line ("data:" when empty): a parser strips exactly
 * that one space, so data starting with spaces round-trips. */
int telex_sse_encode_event(char *buf, size_t cap, const telex_sse_out_event_t *event, size_t *written);

/* Writes a comment (": text\n", or ":\n" for empty text); text with line
 * breaks (CRLF, CR, LF) becomes one comment line per line. Note that a parser
 * reports the text after ':' unmodified, i.e. with the leading space. Same
 * return values as telex_sse_encode_event (EINVAL only for NULL text with
 * len > 0). */
int telex_sse_encode_comment(char *buf, size_t cap, const char *text, size_t len, size_t *written);

/* Upper bound for telex_sse_encode_comment's output (3 * len + 3). */
size_t telex_sse_encoded_comment_size(size_t len);

#ifdef __cplusplus
}
#endif
#endif
