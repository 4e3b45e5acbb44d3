/*
 * http/chunked.h — HTTP/1.1 chunked framing written by a streaming response
 * itself instead of h2o's chunked filter.
 *
 * h2o 2.2's filter (lib/handler/chunked.c) formats every chunk's size line
 * with sprintf, ~700 user-space instructions per write, more than a tenth
 * of a relayed event's (bench/findings.md, "chunk framing"). The filter
 * steps aside when the handler already set a transfer-encoding header, and
 * h2o's HTTP/1 writer then sends the body bytes as given: a response that
 * takes the framing over writes the very bytes the filter would have
 * written, with a size line made by hand.
 *
 * Contract:
 *  - telex_chunked_take, called after the status is set and before
 *    h2o_start_response, takes the framing over exactly when h2o's filter
 *    would have chunked the response (HTTP/1.1, status 200, no
 *    content-length, not HEAD, no transfer-encoding yet): it adds
 *    `transfer-encoding: chunked` as the filter does (the last header) and
 *    counts body bytes in req->bytes_sent itself, as the filter does
 *    (framing excluded). Otherwise (HTTP/2, HTTP/1.0, ...) nothing changes.
 *  - Every h2o_send of that response then goes through telex_chunked_send,
 *    one write in flight at a time (h2o's own rule for a generator): the
 *    size line lives in the telex_chunked_t until the next send.
 *  - telex_chunked_frame is the framing alone, byte for byte the filter's:
 *    "<size in lowercase hex>\r\n" <data> and "\r\n" (a final write:
 *    "\r\n0\r\n\r\n"); an empty final write "0\r\n\r\n"; an error ends in
 *    the broken chunk "\r\n1\r\n" (after the data, without its CRLF) that
 *    tells the client the body was cut; an empty write stays empty.
 */
#ifndef TELEX_HTTP_CHUNKED_H
#define TELEX_HTTP_CHUNKED_H

#include <h2o.h>

#define TELEX_CHUNKED_MAX_BUFS 32

typedef struct telex_chunked {
    int on;             /* this response's framing is ours */
    char size_line[20]; /* up to 16 hex digits and CRLF */
} telex_chunked_t;

/* Returns 1 when the framing was taken over, 0 when h2o keeps it. */
int telex_chunked_take(telex_chunked_t *c, h2o_req_t *req);

/* Frames bufs[0..n) into out (room for n + 2); returns the count of out
 * and sets *body_bytes to the data's length. */
size_t telex_chunked_frame(telex_chunked_t *c, const h2o_iovec_t *bufs, size_t n, h2o_send_state_t state,
                           h2o_iovec_t *out, size_t *body_bytes);

/* h2o_send, framed when c->on; n <= TELEX_CHUNKED_MAX_BUFS. */
void telex_chunked_send(telex_chunked_t *c, h2o_req_t *req, h2o_iovec_t *bufs, size_t n, h2o_send_state_t state);

#endif
