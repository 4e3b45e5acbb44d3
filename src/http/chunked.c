/*
 * http/chunked.c — HTTP/1.1 chunked framing written by a streaming response
 * itself. See chunked.h.
 */
#include "http/chunked.h"

#include <assert.h>
#include <string.h>

int telex_chunked_take(telex_chunked_t *c, h2o_req_t *req)
{
    c->on = 0;
    /* The conditions under which h2o 2.2's filter chunks (on_setup_ostream
     * in lib/handler/chunked.c); every other response is left to h2o. */
    if (req->version != 0x101 || req->res.content_length != SIZE_MAX || req->res.status != 200)
        return 0;
    if (h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD")))
        return 0;
    if (h2o_find_header(&req->res.headers, H2O_TOKEN_TRANSFER_ENCODING, -1) != -1)
        return 0;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_TRANSFER_ENCODING, NULL, H2O_STRLIT("chunked"));
    req->bytes_counted_by_ostream = 1;
    c->on = 1;
    return 1;
}

/* "<v in lowercase hex>\r\n", written from the end of buf (20 bytes). */
static h2o_iovec_t size_line(char *buf, size_t v)
{
    static const char hex[] = "0123456789abcdef";
    char *p = buf + 18;
    p[0] = '\r';
    p[1] = '\n';
    do {
        *--p = hex[v & 15];
        v >>= 4;
    } while (v != 0);
    return h2o_iovec_init(p, (size_t)(buf + 20 - p));
}

size_t telex_chunked_frame(telex_chunked_t *c, const h2o_iovec_t *bufs, size_t n, h2o_send_state_t state,
                           h2o_iovec_t *out, size_t *body_bytes)
{
    size_t size = 0, cnt = 0;
    for (size_t i = 0; i < n; i++)
        size += bufs[i].len;
    *body_bytes = size;
    if (size != 0) {
        out[cnt++] = size_line(c->size_line, size);
        memcpy(out + cnt, bufs, sizeof(*bufs) * n);
        cnt += n;
        if (state != H2O_SEND_STATE_ERROR)
            out[cnt++] = state == H2O_SEND_STATE_FINAL ? h2o_iovec_init(H2O_STRLIT("\r\n0\r\n\r\n"))
                                                       : h2o_iovec_init(H2O_STRLIT("\r\n"));
    } else if (state == H2O_SEND_STATE_FINAL) {
        out[cnt++] = h2o_iovec_init(H2O_STRLIT("0\r\n\r\n"));
    }
    if (state == H2O_SEND_STATE_ERROR)
        out[cnt++] = h2o_iovec_init(H2O_STRLIT("\r\n1\r\n"));
    return cnt;
}

void telex_chunked_send(telex_chunked_t *c, h2o_req_t *req, h2o_iovec_t *bufs, size_t n, h2o_send_state_t state)
{
    if (!c->on) {
        h2o_send(req, bufs, n, state);
        return;
    }
    h2o_iovec_t out[TELEX_CHUNKED_MAX_BUFS + 2];
    assert(n <= TELEX_CHUNKED_MAX_BUFS);
    size_t body;
    size_t cnt = telex_chunked_frame(c, bufs, n, state, out, &body);
    req->bytes_sent += body;
    h2o_send(req, out, cnt, state); /* may dispose of req */
}
