/*
 * parser.c — the incremental event-stream parser of libtelex.
 *
 * It implements the WHATWG HTML "event stream interpretation" (the
 * server-sent events section) byte for byte:
 *
 *   - One UTF-8 BOM (EF BB BF) is stripped from the very start of the stream,
 *     even when its bytes arrive in different feeds. Only one, only there.
 *   - Lines end at CRLF, LF or a lone CR. A CR that ends one feed and an LF
 *     that starts the next are one line end (`skip_lf` remembers the CR).
 *   - An empty line dispatches the event. A line starting with ':' is a
 *     comment. Otherwise the field name is everything before the first ':'
 *     (or the whole line when there is none) and the value everything after
 *     it, minus one leading space.
 *   - `data` appends value + LF to the data buffer; `event` sets the type
 *     buffer; `id` sets the last event id unless the value contains NUL;
 *     `retry` is reported when the value is ASCII digits only; every other
 *     field is ignored. Field names are case-sensitive.
 *   - Dispatch: an empty data buffer dispatches nothing (but the type buffer
 *     is still cleared); otherwise the final LF is removed and the event is
 *     reported with type (default "message"), data and last event id. An
 *     event the stream never ends with a blank line is never dispatched.
 *
 * The parser is byte oriented: data, types and ids are passed through as
 * bytes, valid UTF-8 or not. Checking encodings is the caller's business.
 *
 * Why it is fast and linear however the input is split:
 *
 *   - Line ends are found with memchr over bytes not scanned before; the
 *     positions of the next CR and the next LF in the current feed are
 *     cached, so no byte is looked at twice.
 *   - A line that is complete inside the caller's buffer is interpreted in
 *     place. Only a line cut by the end of a feed is copied into `line`, and
 *     completed by later feeds (appending, never rescanning).
 *   - The buffers (line, data, type, id) grow geometrically and are reused
 *     from event to event: the steady state allocates nothing.
 *   - In-place mode (telex_sse_parser_set_in_place): a `data:` line in the
 *     caller's buffer that would be the first in the data buffer is kept as
 *     a pointer (`pend`); the blank line right after it reports it from
 *     there, any other line copies it first (copy_pending), and so does the
 *     end of the scan, so it never outlives the bytes it points into.
 *
 * Limits: each line, and the sum of the data, type and id buffers, is at
 * most `max` bytes. Crossing it fails the parser (TELEX_SSE_ETOOBIG) until
 * telex_sse_parser_reset. The checks give the same verdict at the same line
 * whatever the feed boundaries are.
 *
 * Strict mode (telex_sse_parser_set_strict): a line that is not blank, a
 * comment or a known field fails the parser with TELEX_SSE_EFIELD. The name
 * is decided by a line's first 6 bytes at most (strict_refuses), so a line
 * kept across feeds is judged as soon as those arrive (keep_partial_line),
 * a complete one where it is interpreted; both judge before the size limit
 * does, which keeps the verdict independent of the feed boundaries. The
 * common "data:" line costs nothing more: interpret_line's fast path knows
 * it already.
 *
 * Stopping: when a callback returns non-zero the feed returns
 * TELEX_SSE_ESTOPPED right after the line that triggered it. The rest of
 * that feed is kept in `held` and interpreted first by the next feed (a feed
 * of zero bytes just drains it), so no byte is lost or reordered. How far the
 * held bytes were already searched for CR and LF is remembered too, so
 * stopping at every event stays linear.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "telex/sse.h"

/* A growable byte buffer. */
struct buf {
    char *p;
    size_t len;
    size_t cap;
};

struct telex_sse_parser {
    telex_sse_callbacks_t cb;
    void *user;
    size_t max;        /* max_event_size */
    struct buf line;   /* a line cut by the end of a feed, waiting for its end */
    struct buf data;   /* the data buffer: each data value followed by LF */
    struct buf type;   /* the event type buffer (NUL-terminated when allocated) */
    struct buf id;     /* the last event id buffer (NUL-terminated when allocated) */
    struct buf held;   /* bytes not yet interpreted when a callback stopped a feed */
    size_t held_off;   /* held.p[held_off..held.len) is still to be interpreted */
    size_t held_no_lf; /* the first held_no_lf of those bytes are known to hold no LF */
    size_t held_no_cr; /* ... and the first held_no_cr no CR (so no byte is searched twice) */
    int failed;        /* 0, or the error that failed the parser */
    unsigned bom_seen; /* how many bytes of a leading BOM have been matched */
    unsigned char at_start; /* still deciding whether the stream starts with a BOM */
    unsigned char skip_lf;  /* the last byte was a CR: an LF right after it is its pair */
    unsigned char strict;   /* unknown fields fail the parser (TELEX_SSE_EFIELD) */
    unsigned char in_place; /* an event's one data line may be reported where it lies */
    const char *pend;       /* in_place: that data line's value, not copied yet (NULL: none) */
    size_t pend_len;
};

static const unsigned char utf8_bom[3] = {0xEF, 0xBB, 0xBF};

/* ----------------------------------------------------------- buffers */

/* Makes room for `need` bytes in b. Growth doubles, but never beyond `clamp`
 * unless `need` itself is larger (so bounded buffers stay bounded). */
static int buf_reserve(struct buf *b, size_t need, size_t clamp) {
    if (need <= b->cap) return TELEX_SSE_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > clamp && need <= clamp) cap = clamp;
    char *p = realloc(b->p, cap);
    if (p == NULL) return TELEX_SSE_ENOMEM;
    b->p = p;
    b->cap = cap;
    return TELEX_SSE_OK;
}

/* The cap for the bounded buffers: max bytes plus a NUL terminator. */
static size_t bounded(const telex_sse_parser_t *p) {
    return p->max == SIZE_MAX ? SIZE_MAX : p->max + 1;
}

/* Replaces the contents of b with value[0..len) plus a NUL terminator. */
static int buf_set_string(telex_sse_parser_t *p, struct buf *b, const char *value, size_t len) {
    int rc = buf_reserve(b, len + 1, bounded(p));
    if (rc) return rc;
    memcpy(b->p, value, len);
    b->p[len] = '\0';
    b->len = len;
    return TELEX_SSE_OK;
}

/* ------------------------------------------------------ interpretation */

/* The longest field name the standard knows ("event", "retry"), plus one:
 * a line's first STRICT_PROBE bytes decide whether it is a known field. */
#define STRICT_PROBE 6

static int known_field(const char *name, size_t len) {
    switch (len) {
    case 2: return memcmp(name, "id", 2) == 0;
    case 4: return memcmp(name, "data", 4) == 0;
    case 5: return memcmp(name, "event", 5) == 0 || memcmp(name, "retry", 5) == 0;
    default: return 0;
    }
}

/* Strict mode's rule on a line's first bytes line[0..len) (the whole line
 * when `complete`): 1 when they show it is not blank, a comment or a known
 * field; 0 when it is one, or when they do not tell yet. */
static int strict_refuses(const char *line, size_t len, int complete) {
    if (len == 0 || line[0] == ':') return 0;
    const char *colon = memchr(line, ':', len < STRICT_PROBE ? len : STRICT_PROBE);
    if (colon != NULL) return !known_field(line, (size_t)(colon - line));
    if (len >= STRICT_PROBE) return 1; /* a name longer than any known one */
    return complete ? !known_field(line, len) : 0;
}

/* Dispatches the event being built (the blank-line rule). */
static int dispatch(telex_sse_parser_t *p) {
    telex_sse_event_t ev;
    if (p->pend != NULL) { /* in place: the one data line, where it lies */
        ev.data = p->pend;
        ev.data_len = p->pend_len;
        p->pend = NULL;
    } else if (p->data.len == 0) {
        p->type.len = 0;
        return TELEX_SSE_OK;
    } else {
        /* The data buffer always ends with the LF its last line added. */
        p->data.len--;
        p->data.p[p->data.len] = '\0';
        ev.data = p->data.p;
        ev.data_len = p->data.len;
    }
    ev.type = p->type.len ? p->type.p : "message";
    ev.type_len = p->type.len ? p->type.len : 7;
    ev.id = p->id.len ? p->id.p : "";
    ev.id_len = p->id.len;

    int stop = p->cb.on_event ? p->cb.on_event(p->user, &ev) : 0;
    p->data.len = 0;
    p->type.len = 0;
    return stop ? TELEX_SSE_ESTOPPED : TELEX_SSE_OK;
}

/* Reports a comment. Text that lives in the caller's buffer is copied into
 * the (then empty) line buffer so the callback gets a NUL-terminated string. */
static int comment(telex_sse_parser_t *p, const char *text, size_t len, int in_place) {
    if (p->cb.on_comment == NULL) return TELEX_SSE_OK;
    if (in_place) {
        int rc = buf_reserve(&p->line, len + 1, bounded(p));
        if (rc) return rc;
        memcpy(p->line.p, text, len);
        p->line.p[len] = '\0';
        text = p->line.p;
    }
    return p->cb.on_comment(p->user, text, len) ? TELEX_SSE_ESTOPPED : TELEX_SSE_OK;
}

static int field_data(telex_sse_parser_t *p, const char *value, size_t len) {
    size_t used = p->data.len + p->type.len + p->id.len; /* always <= max */
    if (len >= p->max - used) return TELEX_SSE_ETOOBIG; /* needs len + 1 more */
    int rc = buf_reserve(&p->data, p->data.len + len + 1, bounded(p));
    if (rc) return rc;
    memcpy(p->data.p + p->data.len, value, len);
    p->data.len += len;
    p->data.p[p->data.len++] = '\n';
    return TELEX_SSE_OK;
}

/* In place: a data line that may be the event's only one is kept where it
 * lies (the limit checked as field_data would); a blank line next reports
 * it from there, anything else first copies it as field_data would have. */
static int borrow_data(telex_sse_parser_t *p, const char *value, size_t len) {
    if (len >= p->max - p->type.len - p->id.len) return TELEX_SSE_ETOOBIG; /* (data.len is 0) */
    p->pend = value;
    p->pend_len = len;
    return TELEX_SSE_OK;
}

static int copy_pending(telex_sse_parser_t *p) {
    const char *value = p->pend;
    p->pend = NULL;
    return field_data(p, value, p->pend_len);
}

static int field_event(telex_sse_parser_t *p, const char *value, size_t len) {
    if (len > p->max - p->data.len - p->id.len) return TELEX_SSE_ETOOBIG;
    return buf_set_string(p, &p->type, value, len);
}

static int field_id(telex_sse_parser_t *p, const char *value, size_t len) {
    if (memchr(value, '\0', len) != NULL) return TELEX_SSE_OK; /* the spec ignores it */
    if (len > p->max - p->data.len - p->type.len) return TELEX_SSE_ETOOBIG;
    return buf_set_string(p, &p->id, value, len);
}

static int field_retry(telex_sse_parser_t *p, const char *value, size_t len) {
    if (len == 0) return TELEX_SSE_OK;
    uint64_t ms = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned digit = (unsigned char)value[i] - '0';
        if (digit > 9) return TELEX_SSE_OK;                        /* not digits only */
        if (ms > (UINT64_MAX - digit) / 10) return TELEX_SSE_OK; /* does not fit */
        ms = ms * 10 + digit;
    }
    if (p->cb.on_retry == NULL) return TELEX_SSE_OK;
    return p->cb.on_retry(p->user, ms) ? TELEX_SSE_ESTOPPED : TELEX_SSE_OK;
}

/* Interprets one complete line (without its line end). `in_place` says the
 * bytes live in the caller's buffer rather than in p->line. */
static int interpret_line(telex_sse_parser_t *p, const char *line, size_t len, int in_place) {
    if (len == 0) return dispatch(p);
    if (p->pend != NULL) { /* not the blank line: the kept data line is copied first */
        int rc = copy_pending(p);
        if (rc) return rc;
    }
    if (line[0] == ':') return comment(p, line + 1, len - 1, in_place);
    if (len >= 5 && memcmp(line, "data:", 5) == 0) { /* nearly every line: no search for the colon */
        size_t skip = len > 5 && line[5] == ' ' ? 6 : 5;
        if (in_place && p->in_place && p->data.len == 0) return borrow_data(p, line + skip, len - skip);
        return field_data(p, line + skip, len - skip);
    }

    const char *colon = memchr(line, ':', len);
    size_t name_len = colon ? (size_t)(colon - line) : len;
    const char *value = line + len;
    size_t value_len = 0;
    if (colon) {
        value = colon + 1;
        value_len = len - name_len - 1;
        if (value_len && value[0] == ' ') value++, value_len--;
    }

    switch (name_len) {
    case 4:
        if (memcmp(line, "data", 4) == 0) return field_data(p, value, value_len);
        break;
    case 5:
        if (memcmp(line, "event", 5) == 0) return field_event(p, value, value_len);
        if (memcmp(line, "retry", 5) == 0) return field_retry(p, value, value_len);
        break;
    case 2:
        if (memcmp(line, "id", 2) == 0) return field_id(p, value, value_len);
        break;
    }
    /* any other field is ignored; strict mode refuses it */
    return p->strict ? TELEX_SSE_EFIELD : TELEX_SSE_OK;
}

/* Keeps the start of a line whose end has not arrived yet. In strict mode
 * its first bytes are judged as they arrive, before the size limit. */
static int keep_partial_line(telex_sse_parser_t *p, const char *bytes, size_t len) {
    if (p->strict && p->line.len < STRICT_PROBE) {
        char probe[STRICT_PROBE];
        size_t had = p->line.len, more = len < STRICT_PROBE - had ? len : STRICT_PROBE - had;
        if (had) memcpy(probe, p->line.p, had);
        memcpy(probe + had, bytes, more);
        if (strict_refuses(probe, had + more, 0)) return TELEX_SSE_EFIELD;
    }
    if (len > p->max - p->line.len) return TELEX_SSE_ETOOBIG;
    int rc = buf_reserve(&p->line, p->line.len + len + 1, bounded(p));
    if (rc) return rc;
    memcpy(p->line.p + p->line.len, bytes, len);
    p->line.len += len;
    return TELEX_SSE_OK;
}

/* Completes the kept line with its last bytes and interprets it. */
static int complete_partial_line(telex_sse_parser_t *p, const char *bytes, size_t len) {
    int rc = keep_partial_line(p, bytes, len);
    if (rc) return rc;
    size_t line_len = p->line.len;
    p->line.p[line_len] = '\0';
    p->line.len = 0;
    return interpret_line(p, p->line.p, line_len, 0);
}

static const char *find_byte(const char *from, const char *end, char c) {
    const char *hit = memchr(from, c, (size_t)(end - from));
    return hit ? hit : end;
}

/* Interprets bytes[0..len). Stores in *consumed how many bytes were used:
 * all of them, except when a callback stops the feed (TELEX_SSE_ESTOPPED),
 * when it is the bytes up to and including the stopping line's end.
 * *no_lf and *no_cr say how many leading bytes are known to hold no LF / CR;
 * on return they describe the bytes after the consumed ones. */
static int scan(telex_sse_parser_t *p, const char *bytes, size_t len, size_t *consumed, size_t *no_lf,
                size_t *no_cr) {
    *consumed = 0;
    if (len == 0) return TELEX_SSE_OK; /* (bytes may be NULL then) */

    const char *pos = bytes, *end = bytes + len;
    int rc = TELEX_SSE_OK;

    if (p->skip_lf) {
        p->skip_lf = 0;
        if (*pos == '\n') pos++;
    }
    /* The next LF and CR at or after pos (end if none), each found once. */
    const char *lf = find_byte(bytes + (*no_lf < len ? *no_lf : len), end, '\n');
    const char *cr = find_byte(bytes + (*no_cr < len ? *no_cr : len), end, '\r');
    while (pos < end) {
        if (lf < pos) lf = *pos == '\n' ? pos : find_byte(pos, end, '\n'); /* a blank line: no call */
        if (cr < pos) cr = find_byte(pos, end, '\r');
        const char *eol = lf < cr ? lf : cr;
        if (eol == end) { /* the line goes on in the next feed */
            rc = keep_partial_line(p, pos, (size_t)(end - pos));
            pos = end;
            break;
        }
        const char *next = eol + 1;
        if (*eol == '\r') {
            if (next == end) p->skip_lf = 1;
            else if (*next == '\n') next++;
        }
        size_t line_len = (size_t)(eol - pos);
        if (p->line.len) rc = complete_partial_line(p, pos, line_len);
        else if (line_len > p->max) rc = p->strict && strict_refuses(pos, line_len, 1) ? TELEX_SSE_EFIELD : TELEX_SSE_ETOOBIG;
        else rc = interpret_line(p, pos, line_len, 1);
        pos = next;
        if (rc) break;
    }
    if (p->pend != NULL) {
        /* a kept data line must not outlive the bytes it lies in; after a
         * failure the parser is failed and it is just dropped */
        if (rc == TELEX_SSE_OK || rc == TELEX_SSE_ESTOPPED) {
            int crc = copy_pending(p);
            if (crc) rc = crc;
        }
        p->pend = NULL;
    }
    *consumed = (size_t)(pos - bytes);
    *no_lf = lf > pos ? (size_t)(lf - pos) : 0;
    *no_cr = cr > pos ? (size_t)(cr - pos) : 0;
    return rc;
}

/* --------------------------------------------------------- public API */

telex_sse_parser_t *telex_sse_parser_new(size_t max_event_size, const telex_sse_callbacks_t *callbacks,
                                         void *user) {
    telex_sse_parser_t *p = calloc(1, sizeof(*p));
    if (p == NULL) return NULL;
    if (callbacks) p->cb = *callbacks;
    p->user = user;
    p->max = max_event_size ? max_event_size : TELEX_SSE_DEFAULT_MAX_EVENT_SIZE;
    p->at_start = 1;
    return p;
}

void telex_sse_parser_free(telex_sse_parser_t *parser) {
    if (parser == NULL) return;
    free(parser->line.p);
    free(parser->data.p);
    free(parser->type.p);
    free(parser->id.p);
    free(parser->held.p);
    free(parser);
}

void telex_sse_parser_reset(telex_sse_parser_t *p) {
    p->line.len = p->data.len = p->type.len = p->id.len = 0;
    p->pend = NULL;
    p->held.len = p->held_off = p->held_no_lf = p->held_no_cr = 0;
    p->failed = 0;
    p->bom_seen = 0;
    p->at_start = 1;
    p->skip_lf = 0;
}

int telex_sse_parser_set_last_event_id(telex_sse_parser_t *p, const char *id, size_t len) {
    if (p->failed) return p->failed;
    if (len && id == NULL) return TELEX_SSE_EINVAL;
    if (len && memchr(id, '\0', len) != NULL) return TELEX_SSE_EINVAL;
    if (len > p->max - p->data.len - p->type.len) return TELEX_SSE_ETOOBIG;
    if (len == 0) {
        p->id.len = 0;
        return TELEX_SSE_OK;
    }
    return buf_set_string(p, &p->id, id, len);
}

int telex_sse_parser_set_in_place(telex_sse_parser_t *p, int in_place) {
    p->in_place = in_place != 0;
    return TELEX_SSE_OK;
}

int telex_sse_parser_set_strict(telex_sse_parser_t *p, int strict) {
    if (strict && p->max < STRICT_PROBE) return TELEX_SSE_EINVAL;
    p->strict = strict != 0;
    return TELEX_SSE_OK;
}

static int fail(telex_sse_parser_t *p, int rc) {
    if (rc == TELEX_SSE_ETOOBIG || rc == TELEX_SSE_ENOMEM || rc == TELEX_SSE_EFIELD) p->failed = rc;
    return rc;
}

/* Appends bytes to the held (stopped) input. The consumed front is dropped
 * once it is at least half of the buffer, so holding stays linear. */
static int hold(telex_sse_parser_t *p, const char *bytes, size_t len) {
    if (len == 0) return TELEX_SSE_OK;
    struct buf *h = &p->held;
    if (p->held_off && p->held_off >= h->len - p->held_off) {
        memmove(h->p, h->p + p->held_off, h->len - p->held_off);
        h->len -= p->held_off;
        p->held_off = 0;
    }
    if (len > SIZE_MAX - h->len) return TELEX_SSE_ENOMEM;
    int rc = buf_reserve(h, h->len + len, SIZE_MAX);
    if (rc) return rc;
    memcpy(h->p + h->len, bytes, len);
    h->len += len;
    return TELEX_SSE_OK;
}

int telex_sse_parser_feed(telex_sse_parser_t *p, const void *bytes, size_t len) {
    const char *in = bytes;
    size_t consumed, no_lf = 0, no_cr = 0;
    int rc;

    if (p->failed) return p->failed;
    if (len && in == NULL) return TELEX_SSE_EINVAL;

    /* First what a stopping callback left over from earlier feeds. */
    if (p->held_off < p->held.len) {
        rc = scan(p, p->held.p + p->held_off, p->held.len - p->held_off, &consumed, &p->held_no_lf,
                  &p->held_no_cr);
        p->held_off += consumed;
        if (p->held_off == p->held.len) p->held.len = p->held_off = p->held_no_lf = p->held_no_cr = 0;
        if (rc == TELEX_SSE_ESTOPPED) {
            int hrc = hold(p, in, len);
            return hrc ? fail(p, hrc) : rc;
        }
        if (rc) return fail(p, rc);
    }

    /* Then the BOM, which may arrive a byte at a time. */
    if (p->at_start) {
        while (len && p->bom_seen < 3 && (unsigned char)*in == utf8_bom[p->bom_seen]) {
            p->bom_seen++;
            in++;
            len--;
        }
        if (p->bom_seen < 3 && len == 0) return TELEX_SSE_OK; /* undecided yet */
        p->at_start = 0;
        if (p->bom_seen < 3 && p->bom_seen > 0) {
            /* Strict: a line that starts with EF is no field or comment;
             * refused at the byte that showed it is not a BOM either. */
            if (p->strict) return fail(p, TELEX_SSE_EFIELD);
            /* Not a BOM after all: its first bytes are ordinary line bytes
             * (they contain no line end, so no callback can run). */
            rc = scan(p, (const char *)utf8_bom, p->bom_seen, &consumed, &no_lf, &no_cr);
            if (rc) return fail(p, rc);
        }
    }

    if (len == 0) return TELEX_SSE_OK;
    no_lf = no_cr = 0;
    rc = scan(p, in, len, &consumed, &no_lf, &no_cr);
    if (rc == TELEX_SSE_ESTOPPED) {
        int hrc = hold(p, in + consumed, len - consumed);
        p->held_no_lf = no_lf;
        p->held_no_cr = no_cr;
        return hrc ? fail(p, hrc) : rc;
    }
    return fail(p, rc);
}
