/*
 * util/json_dump.c — compact JSON text from jansson trees. See json_dump.h.
 *
 * jansson's rules, which this follows byte for byte: members in the
 * object's iteration order (insertion order in jansson 2.14, with or
 * without JSON_PRESERVE_ORDER); "," and ":" with no spaces; integers as
 * %lld; strings escape '"', '\\' and the control bytes (\b \f \n \r \t, the
 * rest as \u00XX in upper-case hex) and nothing else, and a string that is
 * not valid UTF-8 fails the whole dump.
 */
#include "util/json_dump.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/utf8.h"

#define MAX_DEPTH 512

typedef struct {
    telex_buf_t b; /* the text so far, NUL-terminated (util/buf.h) */
    size_t flags;
    int fallback; /* give the whole tree to json_dumps */
} out_t;

static int put(out_t *o, const char *s, size_t n)
{
    return telex_buf_append(&o->b, s, n);
}

/* A byte that can be copied into a JSON string as is: 0x20..0x7F other
 * than '"' and '\\'. */
static inline int plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

#define BYTES_ONES UINT64_C(0x0101010101010101)
#define BYTES_HIGHS UINT64_C(0x8080808080808080)

/* SWAR over 8 bytes: a mask with the high bit set in every byte of w that
 * is not plain (high bit set, below 0x20, '"' or '\\'). Bytes above the
 * lowest flagged one may be flagged wrongly (borrows), so only "is it zero"
 * and "which byte is the lowest flagged" are meaningful. */
static inline uint64_t word_special_mask(uint64_t w)
{
    uint64_t below_space = (w - BYTES_ONES * 0x20) & ~w;
    uint64_t q = w ^ (BYTES_ONES * '"');
    uint64_t is_quote = (q - BYTES_ONES) & ~q;
    uint64_t b = w ^ (BYTES_ONES * '\\');
    uint64_t is_backslash = (b - BYTES_ONES) & ~b;
    return (w | below_space | is_quote | is_backslash) & BYTES_HIGHS;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define WORD_FIRST_SPECIAL(mask) ((size_t)__builtin_ctzll(mask) / 8) /* index of the lowest flagged byte */
#else
#define WORD_FIRST_SPECIAL(mask) ((void)(mask), (size_t)0) /* big endian: go byte by byte */
#endif

size_t telex_json_escape(char *dst, const char *str, size_t n, size_t *pos, size_t stop, int flags)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)str;
    char *d = dst;
    size_t i = *pos;
    if (stop > n)
        stop = n;
    while (i < stop) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            uint64_t special = word_special_mask(w);
            size_t run = special ? WORD_FIRST_SPECIAL(special) : 8;
            memcpy(d, &w, 8); /* the bytes after `run` are overwritten below */
            d += run;
            i += run;
            if (run == 8)
                continue;
        }
        unsigned char c = s[i];
        if (plain(c)) {
            *d++ = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            ptrdiff_t len = telex_utf8_check(s + i, s + n);
            if (len > 0) {
                memcpy(d, s + i, (size_t)len);
                d += len;
                i += (size_t)len;
            } else if (flags & TELEX_JSON_ESCAPE_REPLACE) {
                memcpy(d, "\xEF\xBF\xBD", 3); /* U+FFFD */
                d += 3;
                i += (size_t)-len;
            } else {
                *pos = i;
                return TELEX_JSON_ESCAPE_BAD_UTF8;
            }
            continue;
        }
        d[0] = '\\';
        switch (c) {
        case '"': d[1] = '"'; d += 2; break;
        case '\\': d[1] = '\\'; d += 2; break;
        case '\b': d[1] = 'b'; d += 2; break;
        case '\f': d[1] = 'f'; d += 2; break;
        case '\n': d[1] = 'n'; d += 2; break;
        case '\r': d[1] = 'r'; d += 2; break;
        case '\t': d[1] = 't'; d += 2; break;
        default:
            memcpy(d + 1, "u00", 3);
            d[4] = hex[c >> 4];
            d[5] = hex[c & 15];
            d += 6;
        }
        i++;
    }
    *pos = i;
    return (size_t)(d - dst);
}

/* Input bytes escaped per step into the output buffer, which grows by at
 * most TELEX_JSON_ESCAPE_BOUND(ESCAPE_STEP) at a time. */
#define ESCAPE_STEP 4096

/* 0; -2 the string is not UTF-8 (out of memory ends the process: util/alloc.h). */
static int put_string(out_t *o, const char *str, size_t len)
{
    if (put(o, "\"", 1) != 0)
        return -1;
    size_t pos = 0;
    while (pos < len) {
        size_t left = len - pos, step = left < ESCAPE_STEP ? left : ESCAPE_STEP;
        if (telex_buf_reserve(&o->b, step == left ? 6 * step : TELEX_JSON_ESCAPE_BOUND(step)) != 0)
            return -1;
        size_t n = telex_json_escape(o->b.data + o->b.len, str, len, &pos, pos + step, 0);
        if (n == TELEX_JSON_ESCAPE_BAD_UTF8)
            return -2; /* not UTF-8 */
        o->b.len += n;
    }
    return put(o, "\"", 1);
}

static int put_integer(out_t *o, json_int_t v)
{
    char text[24];
    char *e = text + sizeof(text), *p = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    return put(o, p, (size_t)(e - p));
}

static int put_real(out_t *o, const json_t *real)
{
    /* jansson's own digits: the one real dumped alone */
    char *text = json_dumps(real, JSON_ENCODE_ANY | (o->flags & JSON_REAL_PRECISION(31)));
    if (text == NULL)
        return -1;
    int rc = put(o, text, strlen(text));
    free(text);
    return rc;
}

static int put_value(out_t *o, const json_t *j, int depth)
{
    switch (json_typeof(j)) {
    case JSON_NULL:
        return put(o, "null", 4);
    case JSON_TRUE:
        return put(o, "true", 4);
    case JSON_FALSE:
        return put(o, "false", 5);
    case JSON_INTEGER:
        return put_integer(o, json_integer_value(j));
    case JSON_REAL:
        return put_real(o, j);
    case JSON_STRING:
        return put_string(o, json_string_value(j), json_string_length(j)) == 0 ? 0 : -1; /* jansson fails, too */
    case JSON_ARRAY: {
        if (depth == MAX_DEPTH) {
            o->fallback = 1;
            return -1;
        }
        size_t n = json_array_size(j);
        if (put(o, "[", 1) != 0)
            return -1;
        for (size_t i = 0; i < n; i++) {
            if ((i > 0 && put(o, ",", 1) != 0) || put_value(o, json_array_get(j, i), depth + 1) != 0)
                return -1;
        }
        return put(o, "]", 1);
    }
    case JSON_OBJECT: {
        if (depth == MAX_DEPTH) {
            o->fallback = 1;
            return -1;
        }
        if (put(o, "{", 1) != 0)
            return -1;
        int first = 1;
        for (void *it = json_object_iter((json_t *)j); it != NULL; it = json_object_iter_next((json_t *)j, it)) {
            if (!first && put(o, ",", 1) != 0)
                return -1;
            first = 0;
            int rc = put_string(o, json_object_iter_key(it), json_object_iter_key_len(it));
            if (rc == -2)
                o->fallback = 1; /* jansson writes a broken key and goes on: its bytes, then */
            if (rc != 0 || put(o, ":", 1) != 0 || put_value(o, json_object_iter_value(it), depth + 1) != 0)
                return -1;
        }
        return put(o, "}", 1);
    }
    }
    return -1;
}

char *telex_json_dumps(const json_t *json, size_t flags)
{
    size_t allowed = JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(31);
    if (!(flags & JSON_COMPACT) || (flags & ~allowed) != 0 || !(json_is_object(json) || json_is_array(json)))
        return json_dumps(json, flags);
    out_t o = {{NULL, 0, 0, 0}, flags, 0};
    if (put_value(&o, json, 0) != 0) {
        telex_buf_free(&o.b);
        return o.fallback ? json_dumps(json, flags) : NULL;
    }
    return o.b.data;
}
