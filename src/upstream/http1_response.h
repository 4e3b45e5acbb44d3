/*
 * upstream/http1_response.h — an incremental parser for one HTTP/1.1
 * response, as the upstream client (http_client.c) reads it.
 *
 * Contract:
 *  - State: a zeroed telex_http1_response_t (or telex_http1_response_init)
 *    expects a response head. It holds no pointers into the input and owns
 *    no memory.
 *  - Feeding: telex_http1_response_parse(r, p, n, &used, cb, user) consumes a
 *    prefix p[0..used) of the bytes received so far. The caller keeps the
 *    rest and passes it again, at the front, followed by whatever arrived
 *    since (a socket's input buffer: consume `used`, append, call again). The
 *    parser relies on this: it remembers how far it has already searched an
 *    incomplete head.
 *  - Heads: 1xx heads are skipped (101 is an error: the client never asks to
 *    switch protocols; a status below 100 is one too); on_head runs once,
 *    for the final head (status >= 200), after status, content_type,
 *    retry_after, keep_alive and framing are set.
 *  - Body: on_body gets the body bytes, de-chunked, as pointers into p (valid
 *    during the call), never empty. The data of the chunks that follow one
 *    another in one feed comes in one call: the parser moves it together
 *    over the chunk framing between (p is written to, only in the bytes it
 *    consumes). Framing: Transfer-Encoding whose last
 *    coding is chunked (extensions and trailers skipped; at most 15 hex
 *    digits of chunk size); any other Transfer-Encoding, or neither it nor
 *    Content-Length, reads until the connection closes (not keep-alive);
 *    else Content-Length (at most 18 digits, repeated values must agree).
 *    1xx, 204 and 304 have no body. Lines may end in LF alone.
 *  - keep_alive: HTTP/1.1 by default, HTTP/1.0 not; `Connection: close` or
 *    `keep-alive` tokens decide otherwise (close wins).
 *  - Stopping: a callback returns 0 to go on, anything else to stop: parse
 *    then returns PAUSED at once (DONE instead if the response ended right
 *    there) and *used covers what was consumed, including the bytes just
 *    delivered. Calling parse again with the rest goes on.
 *  - Results: MORE — all that could be consumed was, the response is not
 *    over (a read-until-close body, see telex_http1_response_ends_at_close,
 *    ends when the connection does); PAUSED — a callback stopped it; DONE —
 *    the response ended at p[*used], bytes after it are not consumed (they
 *    are not part of this response); ERROR — r->error says why (a static
 *    string). After DONE or ERROR, parse returns the same again and
 *    consumes nothing.
 *  - Limits: a head (each 1xx head, and the final one) of at most
 *    TELEX_HTTP1_MAX_HEAD bytes; more is an error even before its end is
 *    seen.
 */
#ifndef TELEX_UPSTREAM_HTTP1_RESPONSE_H
#define TELEX_UPSTREAM_HTTP1_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#define TELEX_HTTP1_MAX_HEAD 65536

typedef enum {
    TELEX_HTTP1_MORE,
    TELEX_HTTP1_PAUSED,
    TELEX_HTTP1_DONE,
    TELEX_HTTP1_ERROR,
} telex_http1_result_t;

typedef enum {
    TELEX_HTTP1_HEAD, /* reading a head (1xx or final) */
    TELEX_HTTP1_BODY, /* the final head is in */
    TELEX_HTTP1_END,  /* DONE was returned */
    TELEX_HTTP1_FAILED,
} telex_http1_phase_t;

typedef enum {
    TELEX_HTTP1_NO_BODY,
    TELEX_HTTP1_LENGTH,
    TELEX_HTTP1_CHUNKED,
    TELEX_HTTP1_UNTIL_CLOSE,
} telex_http1_framing_t;

typedef struct telex_http1_response {
    telex_http1_phase_t phase;
    /* the last head parsed: the final one from on_head on */
    int status;
    int keep_alive;
    telex_http1_framing_t framing;
    char content_type[64]; /* "" when absent; longer values are cut (media type and a charset fit) */
    char retry_after[32];
    const char *error; /* after ERROR */
    /* internal */
    int cstate;          /* chunked: where in the chunk syntax */
    int size_digits;     /* chunked: hex digits of the size so far */
    uint64_t remaining;  /* body bytes (LENGTH) or chunk bytes left */
    size_t head_scanned; /* bytes of an incomplete head already searched for its end */
} telex_http1_response_t;

typedef struct telex_http1_response_callbacks {
    int (*on_head)(void *user, const telex_http1_response_t *r); /* may be NULL */
    int (*on_body)(void *user, const char *data, size_t len);    /* may be NULL */
} telex_http1_response_callbacks_t;

void telex_http1_response_init(telex_http1_response_t *r);

telex_http1_result_t telex_http1_response_parse(telex_http1_response_t *r, char *p, size_t n, size_t *used,
                                                const telex_http1_response_callbacks_t *cb, void *user);

/* The body is being read and ends when the connection closes (a close then
 * completes the response; in any other phase or framing it cuts it short). */
static inline int telex_http1_response_ends_at_close(const telex_http1_response_t *r)
{
    return r->phase == TELEX_HTTP1_BODY && r->framing == TELEX_HTTP1_UNTIL_CLOSE;
}

#endif
