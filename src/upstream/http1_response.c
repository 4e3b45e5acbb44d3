/*
 * upstream/http1_response.c — an incremental HTTP/1.1 response parser. See
 * http1_response.h.
 *
 * The head is parsed once it is complete (its blank line found), in one go;
 * the body is a byte-wise state machine for chunked framing and a counter
 * (or nothing) for the others. Nothing is copied but the few header values
 * kept in the struct.
 */
#include "http1_response.h" /* a sibling, not "upstream/...": the fuzz target compiles this file on its own */

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/hex.h"

enum chunk_state { C_SIZE, C_EXT, C_SIZE_LF, C_DATA, C_DATA_CR, C_DATA_LF, C_TRAILER_START, C_TRAILER_LF, C_TRAILER };

void telex_http1_response_init(telex_http1_response_t *r)
{
    memset(r, 0, sizeof(*r));
}

static int set_error(telex_http1_response_t *r, const char *msg)
{
    r->error = msg;
    r->phase = TELEX_HTTP1_FAILED;
    return -1;
}

static void copy_value(char *dst, size_t cap, const char *v, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

/* Is token (case-insensitive) one of the comma-separated items of v? */
static int has_token(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
            return 1;
    }
    return 0;
}

/* The last comma-separated coding of a Transfer-Encoding value is chunked. */
static int ends_chunked(const char *v, size_t n)
{
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n >= 7 && strncasecmp(v + n - 7, "chunked", 7) == 0 && (n == 7 || v[n - 8] == ',' || v[n - 8] == ' ');
}

/* Parses one complete head p[0..len) (its blank line included). */
static int parse_head(telex_http1_response_t *r, const char *p, size_t len)
{
    if (len < 13 || memcmp(p, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)p[7]) || p[8] != ' ' ||
        !isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) || !isdigit((unsigned char)p[11]) ||
        (p[12] != ' ' && p[12] != '\r' && p[12] != '\n'))
        return set_error(r, "the provider did not answer with an HTTP/1.x status line");
    int minor = p[7] - '0';
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (r->status < 100) /* not a status: 0xx would otherwise pass for an interim 1xx and be skipped */
        return set_error(r, "the provider did not answer with an HTTP/1.x status line");
    r->content_type[0] = '\0';
    r->retry_after[0] = '\0';
    int keep_alive = minor >= 1;
    int te = 0, chunked = 0;
    int64_t length = -1;
    const char *end = p + len;
    const char *line = (const char *)memchr(p, '\n', len) + 1;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *le = nl;
        if (le > line && le[-1] == '\r')
            le--;
        if (le == line)
            break; /* the blank line */
        const char *colon = memchr(line, ':', (size_t)(le - line));
        if (colon == NULL || colon == line)
            return set_error(r, "the provider sent a malformed response header");
        size_t name_len = (size_t)(colon - line);
        const char *v = colon + 1;
        const char *ve = le;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t vn = (size_t)(ve - v);
        if (name_len == 12 && strncasecmp(line, "content-type", 12) == 0) {
            copy_value(r->content_type, sizeof(r->content_type), v, vn);
        } else if (name_len == 11 && strncasecmp(line, "retry-after", 11) == 0) {
            copy_value(r->retry_after, sizeof(r->retry_after), v, vn);
        } else if (name_len == 14 && strncasecmp(line, "content-length", 14) == 0) {
            int64_t n = 0;
            if (vn == 0 || vn > 18)
                return set_error(r, "the provider sent an invalid Content-Length");
            for (size_t i = 0; i < vn; i++) {
                if (!isdigit((unsigned char)v[i]))
                    return set_error(r, "the provider sent an invalid Content-Length");
                n = n * 10 + (v[i] - '0');
            }
            if (length >= 0 && length != n)
                return set_error(r, "the provider sent conflicting Content-Length headers");
            length = n;
        } else if (name_len == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
            te = 1;
            chunked = ends_chunked(v, vn);
        } else if (name_len == 10 && strncasecmp(line, "connection", 10) == 0) {
            if (has_token(v, vn, "close"))
                keep_alive = 0;
            else if (has_token(v, vn, "keep-alive"))
                keep_alive = 1;
        }
        line = nl + 1;
    }
    r->keep_alive = keep_alive;
    r->remaining = 0;
    if (r->status < 200 || r->status == 204 || r->status == 304) {
        r->framing = TELEX_HTTP1_NO_BODY;
    } else if (te) {
        r->framing = chunked ? TELEX_HTTP1_CHUNKED : TELEX_HTTP1_UNTIL_CLOSE;
        if (!chunked)
            r->keep_alive = 0;
    } else if (length >= 0) {
        r->framing = length > 0 ? TELEX_HTTP1_LENGTH : TELEX_HTTP1_NO_BODY;
        r->remaining = (uint64_t)length;
    } else {
        r->framing = TELEX_HTTP1_UNTIL_CLOSE;
        r->keep_alive = 0;
    }
    r->cstate = C_SIZE;
    r->size_digits = 0;
    return 0;
}

#define RETURN(result, at)                                                                                             \
    do {                                                                                                               \
        *used = (at);                                                                                                  \
        return (result);                                                                                               \
    } while (0)
/* Hands on the next min(n, r->remaining) bytes of body at p (Content-Length
 * bodies and chunk data alike); returns how many, counted off r->remaining. */
static size_t counted_body(telex_http1_response_t *r, const char *p, size_t n,
                           const telex_http1_response_callbacks_t *cb, void *user, int *stop)
{
    size_t take = n < r->remaining ? n : (size_t)r->remaining;
    if (cb->on_body != NULL)
        *stop = cb->on_body(user, p, take);
    r->remaining -= take;
    return take;
}

#define FAIL(msg, at)                                                                                                  \
    do {                                                                                                               \
        set_error(r, msg);                                                                                             \
        RETURN(TELEX_HTTP1_ERROR, at);                                                                                 \
    } while (0)
#define END(at)                                                                                                        \
    do {                                                                                                               \
        r->phase = TELEX_HTTP1_END;                                                                                    \
        RETURN(TELEX_HTTP1_DONE, at);                                                                                  \
    } while (0)

telex_http1_result_t telex_http1_response_parse(telex_http1_response_t *r, char *p, size_t n, size_t *used,
                                                const telex_http1_response_callbacks_t *cb, void *user)
{
    size_t i = 0;
    int stop = 0; /* a callback asked to stop */
    /* Chunk data not handed on yet: p[run_at, run_at + run_len). The data of
     * chunks that follow it in this feed is moved down to its end (over the
     * consumed framing between them), so a provider that sends each event
     * as its own chunk costs one on_body call per read, not per event. */
    size_t run_at = 0, run_len = 0;
    if (r->phase == TELEX_HTTP1_END)
        RETURN(TELEX_HTTP1_DONE, 0);
    if (r->phase == TELEX_HTTP1_FAILED)
        RETURN(TELEX_HTTP1_ERROR, 0);

    while (r->phase == TELEX_HTTP1_HEAD) {
        /* find the blank line that ends the head */
        size_t s = r->head_scanned;
        const char *end = NULL;
        while (s < n - i) {
            const char *nl = memchr(p + i + s, '\n', n - i - s);
            if (nl == NULL) {
                s = n - i;
                break;
            }
            size_t at = (size_t)(nl - (p + i));
            /* the line that ends at `at` is empty if it is "\n" or "\r\n" at a line start */
            if ((at >= 1 && p[i + at - 1] == '\n') || (at >= 2 && p[i + at - 1] == '\r' && p[i + at - 2] == '\n')) {
                end = nl + 1;
                break;
            }
            s = at + 1;
        }
        if (end == NULL) {
            /* What is here holds no end; the next search starts after it. (A
             * newline found then is checked against the bytes before it,
             * which the caller passes again.) Going back to the start of the
             * last line instead made a head arriving in small reads cost
             * quadratic time. */
            r->head_scanned = n - i;
            if (n - i > TELEX_HTTP1_MAX_HEAD)
                FAIL("the provider's response head is larger than 64 KiB", i);
            RETURN(TELEX_HTTP1_MORE, i);
        }
        size_t head_len = (size_t)(end - (p + i));
        if (head_len > TELEX_HTTP1_MAX_HEAD)
            FAIL("the provider's response head is larger than 64 KiB", i);
        if (parse_head(r, p + i, head_len) != 0)
            RETURN(TELEX_HTTP1_ERROR, i);
        i += head_len;
        r->head_scanned = 0;
        if (r->status == 101)
            FAIL("the provider switched protocols", i);
        if (r->status < 200)
            continue; /* 100 Continue, 103 Early Hints: the final head follows */
        r->phase = TELEX_HTTP1_BODY;
        if (cb->on_head != NULL)
            stop = cb->on_head(user, r);
        if (r->framing == TELEX_HTTP1_NO_BODY)
            END(i);
        if (stop)
            RETURN(TELEX_HTTP1_PAUSED, i);
    }

    while (i < n) {
        switch (r->framing) {
        case TELEX_HTTP1_UNTIL_CLOSE:
            if (cb->on_body != NULL)
                stop = cb->on_body(user, p + i, n - i);
            i = n;
            break;
        case TELEX_HTTP1_LENGTH:
            i += counted_body(r, p + i, n - i, cb, user, &stop);
            if (r->remaining == 0)
                END(i);
            break;
        case TELEX_HTTP1_NO_BODY:
            END(i);
        case TELEX_HTTP1_CHUNKED: {
            char c = p[i];
            switch (r->cstate) {
            case C_SIZE: {
                if (r->size_digits == 0) {
                    /* The common case in one step: "<hex size>\r\n" whole in
                     * this read (a provider's event per chunk, one per read
                     * at a model's pace). Anything else goes byte by byte. */
                    size_t j = i, digits = 0;
                    uint64_t size = 0;
                    int v;
                    for (; j < n && digits < 15 && (v = telex_hexval(p[j])) >= 0; j++, digits++)
                        size = size * 16 + (uint64_t)v;
                    if (digits > 0 && j + 1 < n && p[j] == '\r' && p[j + 1] == '\n') {
                        r->remaining = size;
                        r->cstate = size == 0 ? C_TRAILER_START : C_DATA;
                        i = j + 2;
                        break;
                    }
                }
                int v = telex_hexval(c);
                if (v >= 0) {
                    if (++r->size_digits > 15)
                        FAIL("the provider sent a chunk size that is too large", i);
                    r->remaining = r->remaining * 16 + (uint64_t)v;
                    i++;
                    break;
                }
                if (r->size_digits == 0 || (c != ';' && c != ' ' && c != '\t' && c != '\r' && c != '\n'))
                    FAIL("the provider sent a malformed chunked body", i);
                r->cstate = c == '\r' ? C_SIZE_LF : c == '\n' ? C_DATA : C_EXT;
                i++;
                if (r->cstate == C_DATA && r->remaining == 0)
                    r->cstate = C_TRAILER_START;
                break;
            }
            case C_EXT: {
                const char *nl = memchr(p + i, '\n', n - i);
                if (nl == NULL) {
                    i = n;
                    break;
                }
                i = (size_t)(nl - p) + 1;
                r->cstate = r->remaining == 0 ? C_TRAILER_START : C_DATA;
                break;
            }
            case C_SIZE_LF:
                if (c != '\n')
                    FAIL("the provider sent a malformed chunked body", i);
                i++;
                r->cstate = r->remaining == 0 ? C_TRAILER_START : C_DATA;
                break;
            case C_DATA: {
                size_t take = n - i < r->remaining ? n - i : (size_t)r->remaining;
                if (run_len == 0)
                    run_at = i;
                else if (run_at + run_len != i)
                    memmove(p + run_at + run_len, p + i, take);
                run_len += take;
                i += take;
                r->remaining -= take;
                if (r->remaining == 0)
                    r->cstate = C_DATA_CR;
                break;
            }
            case C_DATA_CR:
            case C_DATA_LF:
                if (r->cstate == C_DATA_CR && c == '\r') {
                    /* The common case in one step: "\r\n<hex size>\r\n" whole in
                     * this read. Anything else goes byte by byte below (the
                     * result is the same either way; the fuzzer checks it). */
                    size_t j = i + 1, digits = 0;
                    uint64_t size = 0;
                    if (j < n && p[j] == '\n') {
                        int v;
                        for (j++; j < n && digits < 15 && (v = telex_hexval(p[j])) >= 0; j++, digits++)
                            size = size * 16 + (uint64_t)v;
                        if (digits > 0 && size > 0 && j + 1 < n && p[j] == '\r' && p[j + 1] == '\n') {
                            r->remaining = size;
                            r->size_digits = 0;
                            r->cstate = C_DATA; /* its data joins the run */
                            i = j + 2;
                            break;
                        }
                    }
                }
                /* Anything else ends the run first: it is handed on here,
                 * right after its last byte, as if it were delivered alone. */
                if (run_len != 0) {
                    if (cb->on_body != NULL)
                        stop = cb->on_body(user, p + run_at, run_len);
                    run_len = 0;
                    if (stop)
                        RETURN(TELEX_HTTP1_PAUSED, i);
                }
                if (c == '\r' && r->cstate == C_DATA_CR && i + 1 < n && p[i + 1] == '\n') {
                    r->cstate = C_SIZE; /* "\r\n" at once (the end of a read) */
                    r->size_digits = 0;
                    r->remaining = 0;
                    i += 2;
                    break;
                }
                if (c == '\r' && r->cstate == C_DATA_CR) {
                    r->cstate = C_DATA_LF;
                } else if (c == '\n') {
                    r->cstate = C_SIZE;
                    r->size_digits = 0;
                    r->remaining = 0;
                } else {
                    FAIL("the provider sent a malformed chunked body", i);
                }
                i++;
                break;
            case C_TRAILER_START:
                i++;
                if (c == '\n')
                    END(i);
                r->cstate = c == '\r' ? C_TRAILER_LF : C_TRAILER;
                break;
            case C_TRAILER_LF:
                if (c != '\n') {
                    r->cstate = C_TRAILER; /* a trailer line that starts with CR: skip it */
                    break;
                }
                END(i + 1);
            case C_TRAILER: {
                const char *nl = memchr(p + i, '\n', n - i);
                if (nl == NULL) {
                    i = n;
                    break;
                }
                i = (size_t)(nl - p) + 1;
                r->cstate = C_TRAILER_START;
                break;
            }
            }
            break;
        }
        }
        if (stop)
            RETURN(TELEX_HTTP1_PAUSED, i);
    }
    if (run_len != 0 && cb->on_body != NULL && cb->on_body(user, p + run_at, run_len))
        RETURN(TELEX_HTTP1_PAUSED, i);
    RETURN(TELEX_HTTP1_MORE, i);
}
