/*
 * stream/sender.c — double-buffered writes through h2o. See sender.h.
 */
#include "stream/sender.h"

#include <telex/sse.h>

void telex_sender_init(telex_sender_t *s, h2o_req_t *req, size_t limit)
{
    memset(s, 0, sizeof(*s));
    s->req = req;
    s->pending.limit = limit;
}

void telex_sender_dispose(telex_sender_t *s)
{
    telex_buf_free(&s->pending);
    telex_buf_free(&s->inflight);
    s->req = NULL;
}

static void write_now(telex_sender_t *s, int force)
{
    if (s->req == NULL || s->writing || s->closed)
        return;
    /* An empty in-progress send is only useful to push the headers out; once
     * they are out h2o's HTTP/1 writer would take it for the end. */
    if (s->pending.len == 0 && !s->closing && (s->started || !force))
        return;
    s->started = 1;
    /* Swap: what was pending goes out; the old inflight buffer is reused. */
    telex_buf_t tmp = s->inflight;
    s->inflight = s->pending;
    s->pending = tmp;
    s->pending.len = 0;
    s->pending.limit = s->inflight.limit;
    h2o_iovec_t buf = h2o_iovec_init(s->inflight.data, s->inflight.len);
    h2o_send_state_t state = H2O_SEND_STATE_IN_PROGRESS;
    if (s->closing)
        state = s->closing - 1;
    s->bytes_sent += s->inflight.len;
    if (state != H2O_SEND_STATE_IN_PROGRESS)
        s->closed = 1;
    else
        s->writing = 1;
    h2o_send(s->req, &buf, buf.len ? 1 : 0, state);
}

int telex_sender_append(telex_sender_t *s, const char *bytes, size_t len)
{
    if (s->closing || s->closed)
        return -1;
    if (telex_buf_append(&s->pending, bytes, len) != 0)
        return -1;
    write_now(s, 0);
    return 0;
}

int telex_sender_append_event(telex_sender_t *s, const telex_sse_out_event_t *event)
{
    if (s->closing || s->closed)
        return -1;
    size_t need = telex_sse_encoded_size(event);
    if (telex_buf_reserve(&s->pending, need) != 0)
        return -1;
    size_t written = 0;
    if (telex_sse_encode_event(s->pending.data + s->pending.len, need + 1, event, &written) != 0)
        return -1;
    s->pending.len += written;
    s->pending.data[s->pending.len] = '\0';
    write_now(s, 0);
    return 0;
}

void telex_sender_flush(telex_sender_t *s)
{
    write_now(s, 1);
}

void telex_sender_close(telex_sender_t *s, int error)
{
    if (s->closing || s->closed)
        return;
    s->closing = (error ? H2O_SEND_STATE_ERROR : H2O_SEND_STATE_FINAL) + 1;
    write_now(s, 1);
}

void telex_sender_on_proceed(telex_sender_t *s)
{
    s->writing = 0;
    write_now(s, 0);
}
