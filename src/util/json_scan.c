/*
 * util/json_scan.c — a validating, allocation-free JSON scanner. See
 * json_scan.h.
 *
 * An explicit stack of open containers replaces recursion. For every object
 * member the key is compared (raw bytes: the keys of interest have no
 * escapes) to the handful the relay cares about, and the kind of the value
 * that follows decides what is recorded. Inside strings, where most of the
 * bytes are, runs of bytes that need no check are skipped 16 (SSE2) or 8 at
 * a time (skip_plain); only quotes, backslashes, control bytes and UTF-8
 * sequences are looked at one by one.
 *
 * The memo (scan_object with a memo) is the only allocation: the state is
 * the cursor, the container stack, the pending key and the facts so far, so
 * saving it at a member's value (memo_keep) and restoring it for a chunk
 * with the same leading bytes resumes the very scan a full pass would make.
 * What follows (the tail) changes the state the same way whatever its
 * string values and numbers hold, as long as they are valid: only their
 * lengths count (the text), and they move where a "usage":null cut is. So
 * a scan from the prefix on records those holes (tail_rec_t) and
 * keeps the tail at the end (tail_keep), and a chunk with the memo's
 * prefix is first compared with that tail (tail_matches).
 */
#include "util/json_scan.h"

#include "util/alloc.h"
#include "util/hex.h"
#include "util/utf8.h"

#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
    const unsigned char *start;
    unsigned char esc; /* the last string had an escape (set, never cleared, by scan_string) */
    unsigned char odd; /* set, never cleared: a string or number jansson would refuse (see u_escape, scan_number) */
} cursor_t;

enum { KEY_OTHER, KEY_ERROR, KEY_USAGE, KEY_FINISH, KEY_COMPLETION, KEY_REASONING, KEY_CHOICES, KEY_INDEX };

/* Whitespace is rare in compact JSON, and every whitespace byte is <= ' ':
 * one compare settles the common case. */
static inline void skip_ws(cursor_t *c, telex_json_facts_t *f)
{
    while (c->p < c->end && *c->p <= ' ') {
        unsigned char ch = *c->p;
        if (ch == '\n' || ch == '\r')
            f->line_breaks = 1;
        else if (ch != ' ' && ch != '\t')
            return;
        c->p++;
    }
}

static inline int is_digit(unsigned char ch)
{
    return (unsigned char)(ch - '0') < 10;
}

/* The bytes a string's fast loop stops at: the closing quote, a backslash,
 * control bytes (never allowed raw) and bytes >= 0x80 (the start of a UTF-8
 * sequence to validate). The rest, 0x20..0x7F but '"' and '\\', is taken
 * as is. */
#define ROW(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
static const unsigned char string_stop[256] = {
    ROW(1), ROW(1),                                                 /* 0x00-0x1F: control */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,                 /* 0x22 '"' */
    ROW(0), ROW(0),                                                 /* 0x30-0x4F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,                 /* 0x5C '\\' */
    ROW(0), ROW(0),                                                 /* 0x60-0x7F */
    ROW(1), ROW(1), ROW(1), ROW(1), ROW(1), ROW(1), ROW(1), ROW(1), /* 0x80-0xFF */
};
#undef ROW

/* The first byte in [p, end) that string_stop marks, or end. Never reads
 * at or past end.
 *
 * SSE2 (always there on x86-64): 16 bytes per step; a signed compare with
 * 0x20 catches the control bytes and, as negative numbers, those >= 0x80.
 * Elsewhere, 8 bytes per step in a 64-bit word: a byte's high bit is set in
 * m when it is < 0x20 (x - 0x20 wraps), '"' or '\\' (that byte of q or b is
 * 0, so - 1 wraps) or >= 0x80 (x's own high bit, which also covers every
 * other way the differences can set it). A plain byte neither sets its high
 * bit nor borrows from the next, so the lowest marked byte is the first stop
 * (little-endian: the lowest-addressed byte is the least significant). The
 * last bytes go through the table. */
static inline const unsigned char *skip_plain(const unsigned char *p, const unsigned char *end)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                 _mm_cmplt_epi8(v, space));
        unsigned mask = (unsigned)_mm_movemask_epi8(m);
        if (mask != 0)
            return p + __builtin_ctz(mask);
        p += 16;
    }
#endif
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    while (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
        uint64_t m = ((x - ones * 0x20) | (q - ones) | (b - ones) | x) & highs;
        if (m != 0)
            return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    while (p < end && !string_stop[*p])
        p++;
    return p;
}

/* The valid \uXXXX escape at p: the bytes it takes, 12 for a high
 * surrogate's followed by a low one's (a pair), else 6; *odd set when
 * jansson refuses it (the whole chunk then has no tree): \u0000, or a
 * surrogate not in such a pair. */
static int u_escape(const unsigned char *p, const unsigned char *end, unsigned char *odd)
{
    int v = (telex_hexval((char)p[2]) << 12) | (telex_hexval((char)p[3]) << 8) | (telex_hexval((char)p[4]) << 4) |
            telex_hexval((char)p[5]);
    if (v != 0 && (v < 0xD800 || v > 0xDFFF))
        return 6;
    if (v == 0 || v >= 0xDC00 || end - p < 12 || p[6] != '\\' || p[7] != 'u') {
        *odd = 1;
        return 6;
    }
    int a = telex_hexval((char)p[8]), b = telex_hexval((char)p[9]), c = telex_hexval((char)p[10]),
        d = telex_hexval((char)p[11]);
    if (a < 0 || b < 0 || c < 0 || d < 0 || ((a << 12) | (b << 8) | (c << 4) | d) < 0xDC00 ||
        ((a << 12) | (b << 8) | (c << 4) | d) > 0xDFFF) {
        *odd = 1; /* (with a bad escape after it the string is refused anyway) */
        return 6;
    }
    return 12;
}

#if defined(__GNUC__)
#define HOT_INLINE inline __attribute__((always_inline))
#else
#define HOT_INLINE inline
#endif

/* A string starting at '"'; on success *len is its raw byte length between
 * the quotes. On failure c->p is at the offending byte: a control byte, the
 * backslash of a bad escape, the first byte of a bad UTF-8 sequence, or the
 * end. Runs of plain bytes are skipped by skip_plain; only the bytes it
 * stops at are looked at one by one. (Inlined: most strings are short keys,
 * and the call was a tenth of the scan.) */
static HOT_INLINE int scan_string(cursor_t *c, const unsigned char **body, size_t *len)
{
    const unsigned char *s = c->p + 1; /* after the opening quote */
    const unsigned char *p = s, *end = c->end;
    for (;;) {
        p = skip_plain(p, end);
        if (p == end)
            break;
        unsigned char ch = *p;
        if (ch == '"') {
            *body = s;
            *len = (size_t)(p - s);
            c->p = p + 1;
            return 0;
        }
        if (ch < 0x20)
            break;
        if (ch == '\\') {
            if (end - p < 2)
                break;
            unsigned char e = p[1];
            c->esc = 1;
            if (e == 'u') {
                if (end - p < 6 || telex_hexval((char)p[2]) < 0 || telex_hexval((char)p[3]) < 0 ||
                    telex_hexval((char)p[4]) < 0 || telex_hexval((char)p[5]) < 0)
                    break;
                p += u_escape(p, end, &c->odd);
            } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
                       e == 't') {
                p += 2;
            } else {
                break;
            }
        } else {
            size_t n = telex_utf8_seq_len(p, end);
            if (n == 0)
                break;
            p += n;
        }
    }
    c->p = p;
    return -1;
}

/* The first byte in [p, end) that is not an ASCII digit, or end. Eight
 * bytes at a time where the platform allows it (timestamps and token
 * counts are long runs of digits): with y a byte's low seven bits, y + 0x46
 * sets the high bit when y > '9' and y + 0x50 when y >= '0' (neither
 * carries into the next byte: y <= 0x7F), and a byte >= 0x80 has its own. */
static inline const unsigned char *skip_digits(const unsigned char *p, const unsigned char *end)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    while (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        uint64_t y = x & ~highs;
        uint64_t other = (x | (y + ones * 0x46) | ~(y + ones * 0x50)) & highs;
        if (other != 0)
            return p + (__builtin_ctzll(other) >> 3);
        p += 8;
    }
#endif
    while (p < end && is_digit(*p))
        p++;
    return p;
}

/* A number; c->odd is set when its exponent has over 2 digits (a double
 * may not hold it: jansson refuses the chunk). The other numbers jansson
 * refuses are long: see long_number_odd. */
static int scan_number(cursor_t *c)
{
    const unsigned char *p = c->p, *e = c->end;
    if (p < e && *p == '-')
        p++;
    if (p >= e)
        return -1;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        p = skip_digits(p + 1, e);
    } else {
        return -1;
    }
    if (p < e && *p == '.') {
        p++;
        if (p >= e || !is_digit(*p))
            return -1;
        p = skip_digits(p, e);
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || !is_digit(*p))
            return -1;
        const unsigned char *digits = p;
        while (p < e && is_digit(*p))
            p++;
        if (p - digits > 2)
            c->odd = 1;
    }
    c->p = p;
    return 0;
}

/* Would jansson refuse the valid number [p, end) of over 18 characters (the
 * callers check that first)? An integer that long may be beyond json_int_t;
 * a real of over 200 characters may be beyond a double (with an exponent
 * of up to 2 digits, shorter ones are not). */
static int long_number_odd(const unsigned char *p, const unsigned char *end)
{
    if (end - p > 200)
        return 1;
    for (; p < end; p++)
        if (*p == '.' || *p == 'e' || *p == 'E')
            return 0; /* a real */
    return 1;
}

static int scan_literal(cursor_t *c, const char *word, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return -1;
    c->p += n;
    return 0;
}

static int key_kind(const unsigned char *k, size_t n)
{
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(k, lit, n) == 0)
    if (IS("content") || IS("refusal") || IS("arguments"))
        return KEY_COMPLETION;
    if (IS("reasoning") || IS("reasoning_content"))
        return KEY_REASONING;
    if (IS("finish_reason"))
        return KEY_FINISH;
    if (IS("error"))
        return KEY_ERROR;
    if (IS("usage"))
        return KEY_USAGE;
    if (IS("index"))
        return KEY_INDEX;
    if (IS("choices"))
        return KEY_CHOICES;
    return KEY_OTHER;
#undef IS
}

/* Keeps s[0..len) and the state after it in memo (see json_scan.h). */
static void memo_keep(telex_json_memo_t *memo, const unsigned char *s, size_t len, const telex_json_facts_t *f,
                      const char *stack, int depth, int key)
{
    memo->len = 0;
    memo->tail_len = 0; /* a tail belongs to the prefix before it */
    if (len > TELEX_JSON_MEMO_MAX_PREFIX || depth > TELEX_JSON_MEMO_MAX_DEPTH)
        return;
    if (memo->cap < len) {
        size_t cap = len; /* one memo serves one answer: its chunks' heads have one length */
        memo->prefix = telex_xrealloc(memo->prefix, cap);
        memo->cap = (uint32_t)cap;
    }
    memcpy(memo->prefix, s, len);
    memo->len = (uint32_t)len;
    memo->facts = *f;
    memo->depth = (uint8_t)depth;
    memo->key = (uint8_t)key;
    memcpy(memo->stack, stack, (size_t)depth);
}

void telex_json_memo_clear(telex_json_memo_t *memo)
{
    free(memo->prefix);
    memset(memo, 0, sizeof(*memo));
}

/* The holes (string values' contents, numbers) seen in a tail so far
 * (scan_object). */
typedef struct {
    const unsigned char *from; /* where the tail begins (NULL: not recording) */
    int n;
    int usage_holes; /* holes before the tail's "usage":null cut (-1: none) */
    uint32_t hole_from[TELEX_JSON_MEMO_MAX_HOLES], hole_to[TELEX_JSON_MEMO_MAX_HOLES];
    uint8_t hole_key[TELEX_JSON_MEMO_MAX_HOLES];
} tail_rec_t;

#define HOLE_NUMBER 0xFF /* a hole's key when it holds a number */

/* Notes a string value's contents [from, to) (key: its key) or a number
 * (HOLE_NUMBER) in the tail being recorded. */
static inline void tail_hole(tail_rec_t *t, const unsigned char *from, const unsigned char *to, uint8_t key)
{
    if (t->from == NULL)
        return;
    if (t->n == TELEX_JSON_MEMO_MAX_HOLES) {
        t->from = NULL; /* too many to keep */
        return;
    }
    t->hole_from[t->n] = (uint32_t)(from - t->from);
    t->hole_to[t->n] = (uint32_t)(to - t->from);
    t->hole_key[t->n++] = key;
}

/* Keeps the tail [t->from, end) of a valid chunk whose first bytes are the
 * memo's prefix, and the facts at its end (see json_scan.h). */
static void tail_keep(telex_json_memo_t *memo, const unsigned char *start, const unsigned char *end,
                      const tail_rec_t *t, const telex_json_facts_t *f)
{
    memo->tail_len = 0;
    size_t len = (size_t)(end - t->from);
    if (memo->len == 0 || memo->len != (size_t)(t->from - start) || len == 0 || len > TELEX_JSON_MEMO_MAX_TAIL)
        return;
    if (memo->cap < memo->len + len) {
        memo->prefix = telex_xrealloc(memo->prefix, memo->len + len);
        memo->cap = (uint32_t)(memo->len + len);
    }
    memcpy(memo->prefix + memo->len, t->from, len);
    memo->tail_len = (uint16_t)len;
    memo->n_holes = (uint8_t)t->n;
    for (int i = 0; i < t->n; i++) {
        memo->hole_from[i] = (uint16_t)t->hole_from[i];
        memo->hole_to[i] = (uint16_t)t->hole_to[i];
        memo->hole_key[i] = t->hole_key[i];
    }
    memo->usage_holes = t->usage_holes < 0 ? 0xFF : (uint8_t)t->usage_holes;
    memo->tail_facts = *f;
}

/* a[0..n) == b[0..n), for the short runs between a tail's holes (a quote,
 * a brace) without a call; longer ones by memcmp. */
static inline int same_bytes(const unsigned char *a, const unsigned char *b, size_t n)
{
    if (n > 8)
        return memcmp(a, b, n) == 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* A chunk [start, end) that begins with the memo's prefix: 0 with *f set
 * when its tail is the memo's but for valid strings and numbers of its own
 * in the memo's holes; -1 when it is not (the chunk is then scanned, which
 * finds what differs). */
static int tail_matches(const telex_json_memo_t *memo, const unsigned char *start, const unsigned char *end,
                        telex_json_facts_t *f)
{
    const unsigned char *t = (const unsigned char *)memo->prefix + memo->len;
    const unsigned char *p = start + memo->len;
    size_t at = 0; /* offset in the memo's tail */
    uint64_t completion = memo->facts.completion_bytes, reasoning = memo->facts.reasoning_bytes;
    ptrdiff_t shift = 0, usage_shift = 0;
    for (int i = 0; i < memo->n_holes; i++) {
        /* the bytes up to the hole: a string's opening quote included */
        size_t seg = memo->hole_from[i] - at;
        if ((size_t)(end - p) < seg || !same_bytes(p, t + at, seg))
            return -1;
        if (i == memo->usage_holes)
            usage_shift = shift;
        size_t len;
        if (memo->hole_key[i] == HOLE_NUMBER) {
            cursor_t c = {p + seg, end, start, 0, 0};
            if (scan_number(&c) != 0 || c.odd || (c.p - (p + seg) > 18 && long_number_odd(p + seg, c.p)))
                return -1;
            len = (size_t)(c.p - (p + seg));
            p = c.p;
            at = memo->hole_to[i];
        } else {
            cursor_t c = {p + seg - 1, end, start, 0, 0};
            const unsigned char *body;
            if (scan_string(&c, &body, &len) != 0 || c.odd)
                return -1; /* (an odd one's tail is never kept) */
            if (memo->hole_key[i] == KEY_COMPLETION)
                completion += len;
            else if (memo->hole_key[i] == KEY_REASONING)
                reasoning += len;
            p = c.p; /* after the closing quote */
            at = memo->hole_to[i] + 1u;
        }
        shift += (ptrdiff_t)len - (ptrdiff_t)(memo->hole_to[i] - memo->hole_from[i]);
    }
    if (memo->usage_holes == memo->n_holes)
        usage_shift = shift;
    size_t rest = memo->tail_len - at;
    if ((size_t)(end - p) != rest || !same_bytes(p, t + at, rest))
        return -1;
    *f = memo->tail_facts;
    if (f->choices_at >= memo->len)
        f->choices_at = 0; /* in the tail: moved by the holes before it (not kept) */
    f->completion_bytes = completion;
    f->reasoning_bytes = reasoning;
    if (memo->usage_holes != 0xFF) {
        f->null_usage_from = (size_t)((ptrdiff_t)f->null_usage_from + usage_shift);
        f->null_usage_to = (size_t)((ptrdiff_t)f->null_usage_to + usage_shift);
    }
    return 0;
}

/* The choice-level finishes (json_scan.h): depth 1 is the top-level
 * object, 2 the "choices" array, 3 a choice. */

/* A key "choices" or "index" at depth <= 3. */
static void note_choice_key(telex_json_facts_t *f, int key, int depth)
{
    if (key == KEY_CHOICES && depth == 1) {
        if (f->choices_seen)
            f->finish_odd = 1; /* which one counts is the parser's business */
        f->choices_seen = 1;
        f->in_choices = 0; /* until its value is an array */
    } else if (key == KEY_INDEX && depth == 3 && f->in_choices) {
        f->choice_index = -1; /* until its value is a plain integer (note_index) */
    }
}

/* A choice's "index" that is the number [p, end). */
static void note_index(telex_json_facts_t *f, const unsigned char *p, const unsigned char *end)
{
    uint32_t v = 0;
    f->choice_index = -1;
    if (end - p > 7)
        return;
    for (; p < end; p++) {
        if (!is_digit(*p))
            return; /* '-', a fraction, an exponent */
        v = v * 10 + (uint32_t)(*p - '0');
    }
    if (v < TELEX_JSON_MAX_INDEX)
        f->choice_index = (int32_t)v + 1;
}

/* The end of a choice with a non-null finish_reason. */
static void note_finish(telex_json_facts_t *f)
{
    if (f->choice_index < 0 || f->n_finishes == TELEX_JSON_MAX_FINISHES) {
        f->finish_odd = 1;
        return;
    }
    f->finish_index[f->n_finishes++] = f->choice_index == 0 ? f->choice_pos : (uint32_t)(f->choice_index - 1);
}

static int scan_object(const char *s, size_t n, telex_json_facts_t *f, telex_json_memo_t *memo)
{
    cursor_t c = {(const unsigned char *)s, (const unsigned char *)s + n, (const unsigned char *)s, 0, 0};
    char stack[TELEX_JSON_SCAN_MAX_DEPTH]; /* '{' or '[' */
    int depth = 0;
    int key = KEY_OTHER; /* the key of the value about to be read */
    const unsigned char *sep = NULL; /* the '{' or ',' before the current member */
    telex_json_memo_t *keep = memo; /* where the tail goes */
    tail_rec_t tail;
    tail.from = NULL;

    if (memo != NULL && memo->len != 0 && n >= memo->len && memcmp(s, memo->prefix, memo->len) == 0) {
        /* Same first bytes as the memo's chunk: same state after them. */
        if (memo->tail_len != 0 && tail_matches(memo, c.start, c.end, f) == 0)
            return 0; /* and the same tail but for its strings */
        tail.from = c.p + memo->len;
        tail.n = 0;
        tail.usage_holes = -1;
        *f = memo->facts;
        depth = memo->depth;
        key = memo->key;
        memcpy(stack, memo->stack, (size_t)depth);
        c.p += memo->len;
        memo = NULL; /* nothing new to keep */
    } else {
        memset(f, 0, sizeof(*f));
        skip_ws(&c, f);
        if (c.p >= c.end || *c.p != '{')
            goto fail;
    }
    /* The loop reads one value at a time; for containers it pushes and
     * continues with their first member. */
    for (;;) {
        /* --- a value --- */
        skip_ws(&c, f);
        if (c.p >= c.end)
            goto fail;
        unsigned char ch = *c.p;
        int value_is_null = 0;
        if (ch == '{' || ch == '[') {
            if (depth == TELEX_JSON_SCAN_MAX_DEPTH)
                goto fail;
            if (depth == 1 && key == KEY_ERROR)
                f->top_error = 1;
            if (depth == 1 && key == KEY_USAGE)
                f->top_usage = 1;
            if (depth == 1 && key == KEY_CHOICES && ch == '[') {
                f->in_choices = 1;
                f->choice_pos = 0;
                f->choices_at = (size_t)(c.p - c.start);
            } else if (f->in_choices && depth <= 3) {
                if (depth == 2) { /* a choice begins */
                    f->choice_finish = 0;
                    f->choice_index = 0;
                } else if (key == KEY_FINISH) {
                    f->choice_finish = 1; /* not null */
                }
            }
            stack[depth++] = (char)ch;
            sep = c.p;
            c.p++;
            skip_ws(&c, f);
            if (c.p < c.end && *c.p == (ch == '{' ? '}' : ']')) {
                c.p++;
                if (depth == 2)
                    f->in_choices = 0; /* "choices":[] ends here (or it was not open) */
                depth--;
                goto after_value;
            }
            if (ch == '{')
                goto member;
            key = KEY_OTHER;
            continue; /* the array's first element */
        } else if (ch == '"') {
            const unsigned char *body;
            size_t len;
            if (scan_string(&c, &body, &len) != 0)
                goto fail;
            if (key == KEY_COMPLETION)
                f->completion_bytes += len;
            else if (key == KEY_REASONING)
                f->reasoning_bytes += len;
            if (!c.odd) {
                tail_hole(&tail, body, body + len, (uint8_t)key);
            } else { /* rare: no tree for this chunk; its tail is not kept (tail_matches) */
                f->finish_odd = 1;
                tail.from = NULL;
                c.odd = 0;
            }
        } else if (ch == 't') {
            if (scan_literal(&c, "true", 4) != 0)
                goto fail;
        } else if (ch == 'f') {
            if (scan_literal(&c, "false", 5) != 0)
                goto fail;
        } else if (ch == 'n') {
            if (scan_literal(&c, "null", 4) != 0)
                goto fail;
            value_is_null = 1;
            if (key == KEY_FINISH && depth == 3 && f->in_choices)
                f->choice_finish = 0;
        } else {
            const unsigned char *number = c.p;
            if (scan_number(&c) != 0)
                goto fail;
            if (c.p - number > 18 && long_number_odd(number, c.p))
                c.odd = 1;
            if (c.odd) { /* as for strings */
                f->finish_odd = 1;
                tail.from = NULL;
                c.odd = 0;
            } else if (key == KEY_INDEX && depth == 3 && f->in_choices) {
                note_index(f, number, c.p); /* not a hole: the tail must have this very index */
            } else {
                tail_hole(&tail, number, c.p, HOLE_NUMBER);
            }
        }
        if (value_is_null && depth == 1 && key == KEY_USAGE && f->null_usage_to == 0) {
            /* after a comma: cut from it; first member: cut up to the comma after it */
            f->null_usage_from = (size_t)(sep - c.start) + (*sep == ',' ? 0 : 1);
            f->null_usage_to = (size_t)(c.p - c.start);
            f->null_usage_open = *sep != ',';
            if (tail.from != NULL && sep >= tail.from)
                tail.usage_holes = tail.n;
        } else if (!value_is_null) {
            if (key == KEY_FINISH) {
                f->finish = 1;
                if (depth == 3 && f->in_choices)
                    f->choice_finish = 1;
            }
            if (depth == 1 && key == KEY_ERROR)
                f->top_error = 1;
            if (depth == 1 && key == KEY_USAGE)
                f->top_usage = 1;
        }
    after_value:
        /* --- what follows a value: ',' or the end of containers --- */
        for (;;) {
            if (depth == 0) {
                skip_ws(&c, f);
                if (c.p != c.end)
                    goto fail;
                if (tail.from != NULL && (size_t)(c.end - tail.from) <= TELEX_JSON_MEMO_MAX_TAIL &&
                    tail.from - c.start <= TELEX_JSON_MEMO_MAX_PREFIX)
                    tail_keep(keep, c.start, c.end, &tail, f);
                return 0;
            }
            skip_ws(&c, f);
            if (c.p >= c.end)
                goto fail;
            char open = stack[depth - 1];
            if (depth == 1 && f->null_usage_open) {
                f->null_usage_open = 0;
                if (*c.p == ',')
                    f->null_usage_to = (size_t)(c.p + 1 - c.start);
            }
            if (*c.p == ',') {
                sep = c.p;
                c.p++;
                if (open == '{')
                    goto member;
                key = KEY_OTHER;
                if (depth == 2 && f->in_choices)
                    f->choice_pos++;
                break; /* next array element */
            }
            if (*c.p == (open == '{' ? '}' : ']')) {
                c.p++;
                if (depth <= 3 && f->in_choices) {
                    if (depth == 2)
                        f->in_choices = 0; /* the choices end */
                    else if (depth == 3 && f->choice_finish)
                        note_finish(f); /* a choice ends */
                }
                depth--;
                continue;
            }
            goto fail;
        }
        continue;
    member:
        /* --- "key": inside an object --- */
        skip_ws(&c, f);
        if (c.p >= c.end || *c.p != '"')
            goto fail;
        {
            const unsigned char *k;
            size_t klen;
            c.esc = 0;
            if (scan_string(&c, &k, &klen) != 0)
                goto fail;
            key = key_kind(k, klen);
            if (c.esc || c.odd) {
                /* rare: a key the parser reads otherwise ("\u0069ndex"),
                 * or one it refuses; a key is never a hole */
                f->finish_odd = 1;
                c.odd = 0;
            }
        }
        if (key >= KEY_CHOICES && depth <= 3)
            note_choice_key(f, key, depth);
        skip_ws(&c, f);
        if (c.p >= c.end || *c.p != ':')
            goto fail;
        c.p++;
        if (memo != NULL && (key == KEY_COMPLETION || key == KEY_REASONING)) {
            /* where a chunk's text begins: what comes before is kept */
            memo_keep(memo, c.start, (size_t)(c.p - c.start), f, stack, depth, key);
            memo = NULL;
            tail.from = c.p; /* its tail starts here */
            tail.n = 0;
            tail.usage_holes = -1;
        }
    }
fail:
    f->error_at = (size_t)(c.p - c.start);
    return -1;
}

int telex_json_scan_object(const char *s, size_t n, telex_json_facts_t *f)
{
    return scan_object(s, n, f, NULL);
}

int telex_json_scan_object_memo(const char *s, size_t n, telex_json_facts_t *f, telex_json_memo_t *memo)
{
    return scan_object(s, n, f, memo);
}
