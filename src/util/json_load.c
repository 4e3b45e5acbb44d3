/*
 * util/json_load.c — builds jansson trees from text util/json_scan.c has
 * validated. See json_load.h.
 *
 * The build walks bytes known to be one well-formed JSON object (nesting at
 * most TELEX_JSON_SCAN_MAX_DEPTH, so the recursion is bounded), so it checks
 * nothing the scanner checked. It only looks for what jansson treats
 * differently from the grammar (json_load.h) and then gives up: `bail`
 * frees what was built and json_loadb parses the text itself.
 *
 * Strings without escapes are handed to jansson where they lie; escaped
 * ones are decoded into `tmp`, one buffer of the input's size used as a
 * stack: a decoded key stays there while its value is built. A decoded
 * string is never longer than its text, and the keys pending on one path
 * of the tree are distinct parts of the text, so n bytes always suffice.
 */
#include "util/json_load.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "util/alloc.h"
#include "util/hex.h"
#include "util/json_scan.h"

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
    size_t flags;
    char *tmp; /* n bytes, allocated at the first escaped string */
    size_t tmp_used;
    size_t tmp_cap;
    int bail; /* the text holds something only json_loadb may decide */
} builder_t;

static json_t *build_value(builder_t *b);

static inline void skip_space(builder_t *b)
{
    while (*b->p == ' ' || *b->p == '\n' || *b->p == '\r' || *b->p == '\t')
        b->p++;
}

/* The first '"' or '\\' at or after p (a valid string has its closing quote
 * before end, so one is always found). */
static inline const unsigned char *find_quote_or_backslash(const unsigned char *p, const unsigned char *end)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned mask =
            (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)));
        if (mask != 0)
            return p + __builtin_ctz(mask);
        p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\\')
        p++;
    return p;
}

const char *telex_json_quote_or_backslash(const char *p, const char *end)
{
    return (const char *)find_quote_or_backslash((const unsigned char *)p, (const unsigned char *)end);
}

static unsigned hex4(const unsigned char *p)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        v = (v << 4) | (unsigned)telex_hexval((char)p[i]); /* the scanner checked the four digits */
    }
    return v;
}

static char *put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* Decodes the string whose contents start at s, with its first quote or
 * backslash at q, into o (see telex_json_unescape). */
static size_t unescape_from(const unsigned char *s, const unsigned char *q, const unsigned char *end, char *start,
                            const unsigned char **after)
{
    char *o = start;
    for (;;) {
        memcpy(o, s, (size_t)(q - s));
        o += q - s;
        if (*q == '"')
            break;
        unsigned char e = q[1];
        s = q + 2;
        switch (e) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp = hex4(q + 2);
            s = q + 6;
            if (cp == 0)
                return SIZE_MAX; /* jansson: "\u0000 is not allowed" */
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return SIZE_MAX; /* a low surrogate first */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (s[0] != '\\' || s[1] != 'u')
                    return SIZE_MAX;
                unsigned lo = hex4(s + 2);
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return SIZE_MAX;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                s += 6;
            }
            o = put_utf8(o, cp);
            break;
        }
        default: *o++ = (char)e; break; /* '"', '\\', '/': the scanner allowed no other */
        }
        q = find_quote_or_backslash(s, end);
    }
    *after = q + 1;
    return (size_t)(o - start);
}

size_t telex_json_unescape(const char *s, const char *end, char *out, const char **after)
{
    const unsigned char *a;
    const unsigned char *from = (const unsigned char *)s, *e = (const unsigned char *)end;
    size_t n = unescape_from(from, find_quote_or_backslash(from, e), e, out, &a);
    *after = (const char *)a;
    return n;
}

/* The string at b->p (its opening quote): *out and *len are its decoded bytes.
 * Returns 0 when they are the text itself, 1 when they were decoded on top
 * of tmp (past tmp_used, which the caller may advance to keep them), -1
 * when the string must go to json_loadb (\u0000, an unpaired surrogate) or
 * tmp cannot be had. */
static int string_at(builder_t *b, const char **out, size_t *len)
{
    const unsigned char *s = b->p + 1;
    const unsigned char *q = find_quote_or_backslash(s, b->end);
    if (*q == '"') {
        *out = (const char *)s;
        *len = (size_t)(q - s);
        b->p = q + 1;
        return 0;
    }
    if (b->tmp == NULL)
        b->tmp = telex_xmalloc(b->tmp_cap);
    char *start = b->tmp + b->tmp_used;
    size_t n = unescape_from(s, q, b->end, start, &b->p);
    if (n == SIZE_MAX)
        return -1;
    *out = start;
    *len = n;
    return 1;
}

static json_t *number_at(builder_t *b)
{
    const unsigned char *start = b->p, *p = start;
    int neg = *p == '-';
    if (neg)
        p++;
    uint64_t v = 0;
    int overflow = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            overflow = 1;
        v = v * 10 + d;
    }
    if (*p != '.' && *p != 'e' && *p != 'E') {
        b->p = p;
        /* jansson: "too big integer" / "too big negative integer" */
        if (overflow || v > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX)) {
            b->bail = 1;
            return NULL;
        }
        json_int_t i = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(json_int_t)v) : (json_int_t)v;
        return json_integer(i);
    }
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        for (; *p >= '0' && *p <= '9'; p++)
            ;
    }
    b->p = p;
    char text[64];
    size_t len = (size_t)(p - start);
    if (len >= sizeof(text)) {
        b->bail = 1; /* rare: let jansson convert it */
        return NULL;
    }
    memcpy(text, start, len);
    text[len] = '\0';
    errno = 0;
    double d = strtod(text, NULL);
    if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE) {
        b->bail = 1; /* jansson: "real number overflow" */
        return NULL;
    }
    return json_real(d);
}

static json_t *object_at(builder_t *b)
{
    json_t *obj = json_object();
    if (obj == NULL)
        return NULL;
    b->p++; /* '{' */
    skip_space(b);
    if (*b->p == '}') {
        b->p++;
        return obj;
    }
    for (;;) {
        const char *key;
        size_t klen, mark = b->tmp_used;
        int decoded = string_at(b, &key, &klen);
        if (decoded < 0)
            goto fail;
        if (decoded)
            b->tmp_used += klen; /* keep the decoded key while the value is built */
        skip_space(b);
        b->p++; /* ':' */
        skip_space(b);
        json_t *value = build_value(b);
        if (value == NULL)
            goto fail;
        if ((b->flags & JSON_REJECT_DUPLICATES) && json_object_getn(obj, key, klen) != NULL) {
            json_decref(value);
            goto fail; /* jansson: "duplicate object key" */
        }
        if (json_object_setn_new_nocheck(obj, key, klen, value) != 0)
            goto fail;
        b->tmp_used = mark;
        skip_space(b);
        if (*b->p++ == '}')
            return obj;
        skip_space(b); /* after ',' */
    }
fail:
    b->bail = 1;
    json_decref(obj);
    return NULL;
}

static json_t *array_at(builder_t *b)
{
    json_t *arr = json_array();
    if (arr == NULL)
        return NULL;
    b->p++; /* '[' */
    skip_space(b);
    if (*b->p == ']') {
        b->p++;
        return arr;
    }
    for (;;) {
        json_t *value = build_value(b);
        if (value == NULL || json_array_append_new(arr, value) != 0) {
            b->bail = 1;
            json_decref(arr);
            return NULL;
        }
        skip_space(b);
        if (*b->p++ == ']')
            return arr;
        skip_space(b); /* after ',' */
    }
}

static json_t *build_value(builder_t *b)
{
    switch (*b->p) {
    case '{':
        return object_at(b);
    case '[':
        return array_at(b);
    case '"': {
        const char *s;
        size_t len;
        if (string_at(b, &s, &len) < 0) {
            b->bail = 1;
            return NULL;
        }
        return json_stringn_nocheck(s, len);
    }
    case 't':
        b->p += 4;
        return json_true();
    case 'f':
        b->p += 5;
        return json_false();
    case 'n':
        b->p += 4;
        return json_null();
    default:
        return number_at(b);
    }
}

json_t *telex_json_loadb(const char *s, size_t n, size_t flags, json_error_t *err)
{
    telex_json_facts_t facts;
    if (s == NULL || (flags & ~(size_t)JSON_REJECT_DUPLICATES) != 0 || telex_json_scan_object(s, n, &facts) != 0)
        return json_loadb(s, n, flags, err);
    builder_t b = {(const unsigned char *)s, (const unsigned char *)s + n, flags, NULL, 0, n, 0};
    skip_space(&b);
    json_t *root = object_at(&b);
    free(b.tmp);
    if (root == NULL)
        return json_loadb(s, n, flags, err);
    if (err != NULL) {
        /* as json_loadb leaves it on success */
        memset(err, 0, sizeof(*err));
        err->line = err->column = -1;
        snprintf(err->source, sizeof(err->source), "%s", "<buffer>");
    }
    return root;
}
