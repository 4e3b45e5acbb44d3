/*
 * stream/sender.h — writes a streamed response through h2o with
 * back-pressure and no batching delay.
 *
 * Bytes appended while no write is in flight go to the socket at once.
 * While h2o is still writing (it holds our buffer until it calls proceed),
 * appended bytes collect in a second buffer and leave together on the next
 * proceed. The owner learns from telex_sender_backlog() how much is waiting
 * and pauses its producer above a high-water mark, so a slow reader can
 * never make telex buffer without bound.
 */
#ifndef TELEX_STREAM_SENDER_H
#define TELEX_STREAM_SENDER_H

#include <h2o.h>

#include "util/buf.h"

typedef struct telex_sender {
    h2o_req_t *req;     /* NULL once the request is gone */
    telex_buf_t pending;  /* appended, not yet handed to h2o */
    telex_buf_t inflight; /* handed to h2o, valid until proceed */
    int writing;          /* h2o holds `inflight` */
    int closing;          /* 0, or H2O_SEND_STATE_FINAL / _ERROR + 1 once closed */
    int closed;           /* the final state was sent */
    int started;          /* the headers went out with a first write */
    size_t bytes_sent;
} telex_sender_t;

/* Starts on a request whose response was started with h2o_start_response.
 * limit bounds what may wait in `pending` (appends past it fail). */
void telex_sender_init(telex_sender_t *s, h2o_req_t *req, size_t limit);
void telex_sender_dispose(telex_sender_t *s);

/* Queues bytes and writes them now if nothing is in flight. Returns -1 when
 * the backlog limit is hit or the sender is closed. */
int telex_sender_append(telex_sender_t *s, const char *bytes, size_t len);

/* Encodes one SSE event straight into the pending buffer (no extra copy),
 * then writes as telex_sender_append does. Returns -1 on a full backlog,
 * a closed sender or an id/type the encoder rejects. */
struct telex_sse_out_event;
int telex_sender_append_event(telex_sender_t *s, const struct telex_sse_out_event *event);

/* Sends the headers (and anything pending) now, if nothing is in flight. */
void telex_sender_flush(telex_sender_t *s);

/* Ends the response after what is pending: normally, or abruptly (error). */
void telex_sender_close(telex_sender_t *s, int error);

/* h2o's proceed: the previous write completed. */
void telex_sender_on_proceed(telex_sender_t *s);

static inline size_t telex_sender_backlog(const telex_sender_t *s)
{
    return s->pending.len + (s->writing ? s->inflight.len : 0);
}

#endif
