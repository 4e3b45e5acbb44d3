/*
 * encoder.c — writes server-sent events and comments (libtelex).
 *
 * An event is written as
 *
 *     event: <type>\n        (only when a type is given)
 *     id: <id>\n             (only when an id is given)
 *     retry: <ms>\n          (only when retry >= 0)
 *     data: <line>\n         (one per line of data; "data:\n" for an empty line)
 *     \n                     (the blank line that dispatches it)
 *
 * Data is cut into lines at CRLF, CR and LF, so a parser gets it back with
 * LF line breaks. "data: " always carries one space before a non-empty
 * value: the parser strips exactly one, so values that start with a space
 * survive. Types and ids cannot be split that way, so CR, LF or NUL in them
 * is an error (TELEX_SSE_EINVAL; an id with NUL would be ignored by parsers).
 *
 * A comment is ": <line>\n" per line of text (":\n" for an empty line).
 *
 * Sizes are computed exactly before anything is written: when the buffer is
 * too small the functions return TELEX_SSE_ENOSPC and write nothing.
 */
#include <stdint.h>
#include <string.h>

#include "telex/sse.h"

/* a + b, saturating at SIZE_MAX (which no buffer can hold). */
static size_t add_size(size_t a, size_t b) {
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The first CR or LF in [from, end), or end: one pass over the bytes (16 at
 * a time with SSE2), since most data has no line break at all. */
static const char *find_break(const char *from, const char *end) {
    const char *p = from;
#if defined(__SSE2__)
    const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned mask = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
        if (mask != 0) return p + __builtin_ctz(mask);
        p += 16;
    }
#endif
    while (p < end && *p != '\r' && *p != '\n') p++;
    return p;
}

/* Calls back once per line of text[0..len): lines end at CRLF, CR or LF,
 * and text always has at least one (maybe empty) line. first_break is
 * find_break(text, text + len), which the caller has already found. */
typedef void (*line_fn)(void *ctx, const char *line, size_t len);

static void for_each_line(const char *text, size_t len, const char *first_break, line_fn fn, void *ctx) {
    const char *pos = text, *end = text + len, *eol = first_break;
    for (;;) {
        fn(ctx, pos, (size_t)(eol - pos));
        if (eol == end) return;
        pos = eol + 1;
        if (*eol == '\r' && pos < end && *pos == '\n') pos++;
        /* A break at the very end is followed by one more, empty, line. */
        eol = find_break(pos, end);
    }
}

/* Measuring or writing "<prefix>: <line>\n" / "<prefix>\n" lines. */
struct lines {
    const char *prefix; /* "data:" or ":" */
    size_t prefix_len;
    char *out;          /* NULL: only measure */
    size_t size;
};

static void put_line(void *ctx, const char *line, size_t len) {
    struct lines *l = ctx;
    size_t n = l->prefix_len + (len ? 1 + len : 0) + 1;
    if (l->out) {
        memcpy(l->out, l->prefix, l->prefix_len);
        char *o = l->out + l->prefix_len;
        if (len) {
            *o++ = ' ';
            memcpy(o, line, len);
            o += len;
        }
        *o = '\n';
        l->out += n;
    }
    l->size = add_size(l->size, n);
}

static size_t lines_size(const char *prefix, const char *text, size_t len, const char *first_break) {
    struct lines l = {prefix, strlen(prefix), NULL, 0};
    if (first_break == text + len) { /* one line: no callback, no scan */
        put_line(&l, text, len);
        return l.size;
    }
    for_each_line(text, len, first_break, put_line, &l);
    return l.size;
}

static char *write_lines(char *out, const char *prefix, const char *text, size_t len, const char *first_break) {
    struct lines l = {prefix, strlen(prefix), out, 0};
    for_each_line(text, len, first_break, put_line, &l);
    return l.out;
}

static int digits_u64(uint64_t v) {
    int n = 1;
    while (v >= 10) v /= 10, n++;
    return n;
}

/* A type or id is valid when it is present and free of CR, LF and NUL. */
static int valid_token(const char *s, size_t len) {
    if (len == 0) return 1;
    if (s == NULL) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\r' || c == '\n' || c == '\0') return 0;
    }
    return 1;
}

/* The size of everything but the data lines. */
static size_t fields_size(const telex_sse_out_event_t *ev) {
    size_t size = 1; /* the blank line */
    if (ev->type_len) size = add_size(size, add_size(sizeof("event: \n") - 1, ev->type_len));
    if (ev->id_len) size = add_size(size, add_size(sizeof("id: \n") - 1, ev->id_len));
    if (ev->retry >= 0) size = add_size(size, sizeof("retry: \n") - 1 + (size_t)digits_u64((uint64_t)ev->retry));
    return size;
}

size_t telex_sse_encoded_size(const telex_sse_out_event_t *ev) {
    const char *data = ev->data ? ev->data : "";
    size_t len = ev->data ? ev->data_len : 0;
    return add_size(fields_size(ev), lines_size("data:", data, len, find_break(data, data + len)));
}

int telex_sse_encode_event(char *buf, size_t cap, const telex_sse_out_event_t *ev, size_t *written) {
    if (written) *written = 0;
    if (ev == NULL) return TELEX_SSE_EINVAL;
    if (!valid_token(ev->type, ev->type_len) || !valid_token(ev->id, ev->id_len)) return TELEX_SSE_EINVAL;
    if (ev->data_len && ev->data == NULL) return TELEX_SSE_EINVAL;

    /* The data is scanned for line breaks once, for the size and the
     * writing both. */
    const char *data = ev->data ? ev->data : "";
    const char *first_break = find_break(data, data + ev->data_len);
    size_t size = add_size(fields_size(ev), lines_size("data:", data, ev->data_len, first_break));
    if (buf == NULL || size > cap) return TELEX_SSE_ENOSPC;

    char *o = buf;
    if (ev->type_len) {
        memcpy(o, "event: ", 7), o += 7;
        memcpy(o, ev->type, ev->type_len), o += ev->type_len;
        *o++ = '\n';
    }
    if (ev->id_len) {
        memcpy(o, "id: ", 4), o += 4;
        memcpy(o, ev->id, ev->id_len), o += ev->id_len;
        *o++ = '\n';
    }
    if (ev->retry >= 0) {
        uint64_t v = (uint64_t)ev->retry;
        int n = digits_u64(v);
        memcpy(o, "retry: ", 7), o += 7;
        for (int i = n - 1; i >= 0; i--) o[i] = (char)('0' + v % 10), v /= 10;
        o += n;
        *o++ = '\n';
    }
    o = write_lines(o, "data:", data, ev->data_len, first_break);
    *o++ = '\n';
    if (written) *written = (size_t)(o - buf);
    return TELEX_SSE_OK;
}

size_t telex_sse_encoded_comment_size(size_t len) {
    /* Each line costs ": " + "\n" on top of its bytes, and there is at most
     * one line more than there are line-break bytes: 3 + 3 * len bounds it. */
    return add_size(3, len > SIZE_MAX / 3 ? SIZE_MAX : 3 * len);
}

int telex_sse_encode_comment(char *buf, size_t cap, const char *text, size_t len, size_t *written) {
    if (written) *written = 0;
    if (len && text == NULL) return TELEX_SSE_EINVAL;
    if (text == NULL) text = "";
    const char *first_break = find_break(text, text + len);
    size_t size = lines_size(":", text, len, first_break);
    if (buf == NULL || size > cap) return TELEX_SSE_ENOSPC;
    char *o = write_lines(buf, ":", text, len, first_break);
    if (written) *written = (size_t)(o - buf);
    return TELEX_SSE_OK;
}
