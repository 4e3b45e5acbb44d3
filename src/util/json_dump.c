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

/* Bytes a string can carry as they are: 0x20..0x7F except '"' and '\\'. */
static inline int plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* 0; -1 out of memory; -2 the string is not UTF-8. */
static int put_string(out_t *o, const char *str, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)str, *end = s + len;
    if (put(o, "\"", 1) != 0)
        return -1;
    while (s < end) {
        const unsigned char *run = s;
        while (s < end && plain(*s))
            s++;
        while (s < end && *s >= 0x80) {
            size_t n = telex_utf8_seq_len(s, end);
            if (n == 0)
                return -2; /* not UTF-8 */
            s += n;
            while (s < end && plain(*s))
                s++;
        }
        if (s > run && put(o, (const char *)run, (size_t)(s - run)) != 0)
            return -1;
        if (s == end)
            break;
        char esc[6] = {'\\', 0, '0', '0', 0, 0};
        size_t n = 2;
        switch (*s) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[4] = hex[*s >> 4];
            esc[5] = hex[*s & 15];
            n = 6;
        }
        if (put(o, esc, n) != 0)
            return -1;
        s++;
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
