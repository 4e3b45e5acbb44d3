/*
 * test_json_scan.c — the allocation-free chunk scanner agrees with jansson
 * on what is a valid JSON object, and extracts the relay's facts; its memo
 * of the chunks' shared head never changes an answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "util/json_scan.h"

static int scan(const char *s, telex_json_facts_t *f)
{
    return telex_json_scan_object(s, strlen(s), f);
}

static void test_facts_of_real_chunks(void **state)
{
    telex_json_facts_t f;
    assert_int_equal(scan("{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{"
                          "\"content\":\"Hello\"},\"finish_reason\":null}],\"usage\":null}",
                          &f),
                     0);
    assert_false(f.top_error);
    assert_false(f.top_usage);
    assert_false(f.finish);
    assert_int_equal(f.completion_bytes, 5);
    assert_int_equal(f.choices_at, 54); /* its '[' */
    assert_int_equal(scan("{\"id\":\"x\"}", &f), 0);
    assert_int_equal(f.choices_at, 0);
    assert_int_equal(scan("{\"choices\":null}", &f), 0);
    assert_int_equal(f.choices_at, 0);
    assert_int_equal(scan("{\"x\":{\"choices\":[]}, \"choices\" : [ ]}", &f), 0); /* top level only */
    assert_int_equal(f.choices_at, 33);

    assert_int_equal(scan("{\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}", &f), 0);
    assert_true(f.finish);
    assert_int_equal(scan("{\"choices\":[],\"usage\":{\"prompt_tokens\":3}}", &f), 0);
    assert_true(f.top_usage);
    assert_int_equal(scan("{\"error\":{\"message\":\"boom\"}}", &f), 0);
    assert_true(f.top_error);
    assert_int_equal(scan("{\"error\":null,\"usage\":null}", &f), 0);
    assert_false(f.top_error);
    assert_false(f.top_usage);
    /* only top-level error/usage count; finish_reason anywhere */
    assert_int_equal(scan("{\"x\":{\"error\":1,\"usage\":{}},\"y\":[{\"finish_reason\":\"length\"}]}", &f), 0);
    assert_false(f.top_error);
    assert_false(f.top_usage);
    assert_true(f.finish);
    /* reasoning, refusal, tool-call arguments */
    assert_int_equal(scan("{\"choices\":[{\"delta\":{\"reasoning_content\":\"abc\",\"refusal\":\"no\",\"tool_calls\":"
                          "[{\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]}}]}",
                          &f),
                     0);
    assert_int_equal(f.reasoning_bytes, 3);
    assert_int_equal(f.completion_bytes, 2 + 9); /* raw bytes between the quotes: {\"a\":1} */
    /* line breaks: only whitespace can hold them (escaped ones are not) */
    assert_int_equal(scan("{\"a\":\"x\\ny\\r\"}", &f), 0);
    assert_false(f.line_breaks);
    assert_int_equal(scan(" {\"a\" :\t1 } ", &f), 0);
    assert_false(f.line_breaks);
    assert_int_equal(scan("{\"a\":\n1}", &f), 0);
    assert_true(f.line_breaks);
    assert_int_equal(scan("{\"a\":1}\r", &f), 0);
    assert_true(f.line_breaks);
    assert_int_equal(scan("\n{}", &f), 0);
    assert_true(f.line_breaks);
}

/* The cut of a top-level "usage":null leaves exactly the object without
 * that member (jansson's view), whatever its position and spacing. */
static void test_null_usage_cut(void **state)
{
    static const char *cases[] = {
        "{\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}",
        "{\"usage\":null,\"id\":\"c\"}",
        "{\"usage\":null}",
        "{ \"usage\" : null }",
        "{\"a\":1,\"usage\":null,\"b\":2}",
        "{\"a\":1 , \"usage\" :null , \"b\":[1,{\"usage\":null}]}",
        "{ \"usage\":null ,\n \"b\":{\"c\":null}}",
        "{\"x\":{\"usage\":null},\"usage\":null}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *s = cases[i];
        telex_json_facts_t f;
        assert_int_equal(scan(s, &f), 0);
        assert_true(f.null_usage_to > f.null_usage_from);
        char cut[256];
        size_t n = strlen(s), k = f.null_usage_from;
        memcpy(cut, s, k);
        memcpy(cut + k, s + f.null_usage_to, n - f.null_usage_to);
        cut[k + n - f.null_usage_to] = '\0';
        json_t *want = json_loads(s, 0, NULL), *got = json_loads(cut, 0, NULL);
        assert_non_null(got);
        json_object_del(want, "usage");
        if (!json_equal(want, got))
            fail_msg("case %zu: the cut gave %s", i, cut);
        json_decref(want);
        json_decref(got);
        telex_json_facts_t g;
        assert_int_equal(scan(cut, &g), 0);
        assert_int_equal(g.null_usage_to, 0); /* nothing left to cut */
    }
    static const char *none[] = {
        "{\"usage\":{\"prompt_tokens\":1}}", "{\"x\":{\"usage\":null}}", "{\"usage\":0}", "{\"usage\":\"null\"}",
        "{\"choices\":[{\"usage\":null}]}",
    };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        telex_json_facts_t f;
        assert_int_equal(scan(none[i], &f), 0);
        assert_int_equal(f.null_usage_to, 0);
    }
}

static void test_rejects_what_is_not_one_object(void **state)
{
    static const char *bad[] = {
        "", "[]", "\"s\"", "1", "null", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{,}", "{\"a\":1}{}",
        "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":-}", "{\"a\":tru}", "{\"a\":nul}",
        "{\"a\":\"\\x\"}", "{\"a\":\"\\u12g4\"}", "{\"a\":\"tab\there\"}", "{a:1}", "{\"a\":[1,]}", "{\"a\":[1 2]}",
        "{\"a\":\"\xff\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":1} x", "{'a':1}",
    };
    telex_json_facts_t f;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (scan(bad[i], &f) != -1)
            fail_msg("accepted %s", bad[i]);
    }
    static const char *good[] = {
        "{}", " {\"a\" : [ ] } ", "{\"a\":[{},[],\"\",0,-0.5e+3,true,false,null]}", "{\"\\u00e9\":\"\xc3\xa9\xe2\x82\xac\"}",
        "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}", "{\"emoji\":\"\xf0\x9f\x8e\x89\"}",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (scan(good[i], &f) != 0)
            fail_msg("refused %s at %zu", good[i], f.error_at);
    }
}

static void test_depth_is_bounded(void **state)
{
    char deep[400];
    size_t n = 0;
    deep[n++] = '{';
    deep[n++] = '"';
    deep[n++] = 'a';
    deep[n++] = '"';
    deep[n++] = ':';
    for (int i = 0; i < 100; i++)
        deep[n++] = '[';
    for (int i = 0; i < 100; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    telex_json_facts_t f;
    assert_int_equal(telex_json_scan_object(deep, n, &f), -1);
}

/* One random edit of buf[0..n) at `at` (n > 0), chosen by rng's bits:
 * replace, insert (room permitting) or delete a byte. Returns the new length. */
static const char edit_alphabet[] = "{}[]\",:0123456789-.eEtrufalsn \\\n\xc3\xa9";
static size_t edit_at(char *buf, size_t n, size_t cap, size_t at, uint64_t rng)
{
    int op = (int)((rng >> 20) % 3);
    char ch = edit_alphabet[(rng >> 40) % (sizeof(edit_alphabet) - 1)];
    if (op == 0) {
        buf[at] = ch;
    } else if (op == 1 && n + 1 < cap) {
        memmove(buf + at + 1, buf + at, n - at);
        buf[at] = ch;
        n++;
    } else if (n > 1) {
        memmove(buf + at, buf + at + 1, n - at - 1);
        n--;
    }
    return n;
}

/* Random corruptions of real chunks: valid for the scanner exactly when
 * jansson loads a JSON object (inputs avoid \u escapes and long numbers,
 * where jansson is stricter about NUL, surrogates and integer range). */
static void test_agrees_with_jansson_on_corruptions(void **state)
{
    static const char *seeds[] = {
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":17,\"model\":\"m\",\"choices\":[{"
        "\"index\":0,\"delta\":{\"content\":\" w\\n\"},\"finish_reason\":null}],\"usage\":null}",
        "{\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3,\"total_tokens\":5,\"x\":[true,false,"
        "null,-1.5e3]}}",
    };
    uint64_t rng = 42;
    char buf[512];
    int agreed = 0;
    for (int iter = 0; iter < 20000; iter++) {
        const char *seed = seeds[iter % 2];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int edits = 1 + (int)((rng >> 33) % 3);
        for (int e = 0; e < edits; e++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            n = edit_at(buf, n, sizeof(buf), (size_t)((rng >> 33) % n), rng);
        }
        if (memmem(buf, n, "\\u", 2) != NULL)
            continue;
        telex_json_facts_t f;
        int mine = telex_json_scan_object(buf, n, &f) == 0;
        json_t *j = json_loadb(buf, n, 0, NULL);
        int theirs = j != NULL && json_is_object(j);
        if (theirs && mine) {
            json_t *usage = json_object_get(j, "usage");
            assert_int_equal(f.top_usage, usage != NULL && !json_is_null(usage));
        }
        json_decref(j);
        if (mine != theirs)
            fail_msg("disagree (scanner %d, jansson %d) on: %.*s", mine, theirs, (int)n, buf);
        agreed++;
    }
    assert_true(agreed > 10000);
}

/* ------------------------------------------------------------ strings, byte by byte */

/* The string rules one byte at a time, as the scanner applied them before it
 * skipped runs of plain bytes: from the opening quote at b[open], 0 with
 * *stop at the closing quote, or -1 with *stop at the offending byte (a
 * control byte, the backslash of a bad escape, the first byte of a bad
 * UTF-8 sequence) or at n. */
static int ref_string(const unsigned char *b, size_t n, size_t open, size_t *stop)
{
    size_t i = open + 1;
    while (i < n) {
        unsigned char ch = b[i];
        if (ch == '"') {
            *stop = i;
            return 0;
        }
        if (ch < 0x20)
            break;
        if (ch == '\\') {
            if (n - i < 2)
                break;
            unsigned char e = b[i + 1];
            if (e == 'u') {
                if (n - i < 6 || !strchr("0123456789abcdefABCDEF", b[i + 2]) || !b[i + 2] ||
                    !strchr("0123456789abcdefABCDEF", b[i + 3]) || !b[i + 3] ||
                    !strchr("0123456789abcdefABCDEF", b[i + 4]) || !b[i + 4] ||
                    !strchr("0123456789abcdefABCDEF", b[i + 5]) || !b[i + 5])
                    break;
                i += 6;
            } else if (e != 0 && strchr("\"\\/bfnrt", e) != NULL) {
                i += 2;
            } else {
                break;
            }
        } else if (ch < 0x80) {
            i++;
        } else {
            /* one scalar value in UTF-8, shortest form, not a surrogate */
            size_t len = ch >= 0xC2 && ch <= 0xDF ? 2 : ch >= 0xE0 && ch <= 0xEF ? 3 : ch >= 0xF0 && ch <= 0xF4 ? 4 : 0;
            if (len == 0 || n - i < len)
                break;
            uint32_t cp = ch & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
            size_t k;
            for (k = 1; k < len && (b[i + k] & 0xC0) == 0x80; k++)
                cp = (cp << 6) | (b[i + k] & 0x3F);
            uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
            if (k < len || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                break;
            i += len;
        }
    }
    *stop = i;
    return -1;
}

typedef struct {
    const char *bytes;
    size_t len; /* 0: strlen */
} snippet_t;

/* What can meet the fast loop inside a string: escapes, raw control bytes,
 * good and bad UTF-8. No raw quote (the string would end early). */
static const snippet_t snippets[] = {
    {"", 0}, {"\\n", 0}, {"\\\"", 0}, {"\\\\", 0}, {"\\/", 0}, {"\\b\\f\\r\\t", 0}, {"\\u00e9", 0}, {"\\uABCD", 0},
    {"\x7f", 0}, {"\xc2\x80", 0}, {"\xc3\xa9", 0}, {"\xdf\xbf", 0}, {"\xe2\x82\xac", 0}, {"\xef\xbf\xbf", 0},
    {"\xf0\x9f\x8e\x89", 0}, {"\xf4\x8f\xbf\xbf", 0}, {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x8e\x89", 0},
    /* bad */
    {"\0", 1}, {"\x01", 0}, {"\x1f", 0}, {"\n", 0}, {"\t", 0}, {"\r", 0}, {"\\x", 0}, {"\\u12g4", 0}, {"\\u", 0},
    {"\\u12", 0}, {"\\u123", 0}, {"\\", 0}, {"\\\0", 2}, {"\\\x01", 0}, {"\xff", 0}, {"\x80", 0}, {"\xbf", 0},
    {"\xc0\xaf", 0}, {"\xc1\xbf", 0}, {"\xc2", 0}, {"\xc3\x28", 0}, {"\xe2\x82", 0}, {"\xe2\x28\xa1", 0},
    {"\xe0\x80\x80", 0}, {"\xe0\x9f\xbf", 0}, {"\xed\xa0\x80", 0}, {"\xed\xbf\xbf", 0}, {"\xf0\x8f\xbf\xbf", 0},
    {"\xf4\x90\x80\x80", 0}, {"\xf5\x80\x80\x80", 0}, {"\xf8\x88\x80\x80\x80", 0}, {"\xf0\x9f\x8e", 0},
    {"\xf0\x9f\x8e\x41", 0},
};

/* Filler: plain bytes, none of them a hex digit (so a short \u stays bad). */
static const char filler[] = "xyz-_. QWXYZ!#$%&'()*+,:;<=>?@[]^`{|}~";

/* Lays out `lead` spaces, then {"content":"<string>"} (role 0) or
 * {"<string>":1} (role 1), then `trail` spaces; or, when `cut`, only up to
 * and including the string's body (no closing quote). The string is
 * filler[0..at) + snippet + filler[at..len). Scans a copy of exactly that
 * size (ASan sees any read past it) and checks the verdict, the error
 * offset and the byte count against ref_string. */
static void check_string_case(size_t lead, int role, size_t len, size_t at, const snippet_t *sn, int cut, size_t trail)
{
    static unsigned char doc[16384];
    size_t n = 0;
    memset(doc, ' ', lead);
    n += lead;
    const char *head = role == 0 ? "{\"content\":\"" : "{\"";
    memcpy(doc + n, head, strlen(head));
    n += strlen(head);
    size_t open = n - 1, body = n;
    size_t snlen = sn->len ? sn->len : strlen(sn->bytes);
    for (size_t i = 0; i < at; i++)
        doc[n++] = (unsigned char)filler[i % (sizeof(filler) - 1)];
    memcpy(doc + n, sn->bytes, snlen);
    n += snlen;
    for (size_t i = at; i < len; i++)
        doc[n++] = (unsigned char)filler[i % (sizeof(filler) - 1)];
    size_t close = n;
    if (!cut) {
        const char *tail = role == 0 ? "\"}" : "\":1}";
        memcpy(doc + n, tail, strlen(tail));
        n += strlen(tail);
        memset(doc + n, ' ', trail);
        n += trail;
    }
    assert_true(n <= sizeof(doc));
    char *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, doc, n);

    size_t stop;
    int ref = ref_string(doc, n, open, &stop);
    /* Nothing in the snippets ends the string early: when the reference
     * finds a closing quote it is ours, and the document is whole. */
    if (ref == 0)
        assert_int_equal(stop, close);
    telex_json_facts_t f;
    int rc = telex_json_scan_object(copy, n, &f);
    if (rc != ref || (rc != 0 && f.error_at != stop) || (rc == 0 && role == 0 && f.completion_bytes != close - body))
        fail_msg("snippet %zu at %zu of %zu (lead %zu, role %d, cut %d, trail %zu): scanner %d at %zu, expected %d "
                 "at %zu",
                 (size_t)(sn - snippets), at, len, lead, role, cut, trail, rc, rc ? f.error_at : 0, ref,
                 ref ? stop : 0);
    if (!cut && trail == 0 && lead == 0) {
        /* and jansson agrees on what is valid */
        json_t *j = json_loadb(copy, n, 0, NULL);
        if ((j != NULL) != (rc == 0))
            fail_msg("jansson %s snippet %zu at %zu of %zu, role %d", j ? "accepts" : "refuses",
                     (size_t)(sn - snippets), at, len, role);
        json_decref(j);
    }
    free(copy);
}

/* Every snippet at every position of strings up to 48 bytes, with 0 to 17
 * bytes after the object (so the 16- and 8-byte steps and the byte-wise
 * tail each meet every case), as a value and as a key, whole or cut. */
static void test_strings_at_every_position(void **state)
{
    size_t nsn = sizeof(snippets) / sizeof(snippets[0]);
    for (size_t s = 0; s < nsn; s++)
        for (size_t len = 0; len <= 48; len++)
            for (size_t at = 0; at <= len; at++) {
                for (size_t trail = 0; trail <= 17; trail++)
                    check_string_case(0, 0, len, at, &snippets[s], 0, trail);
                for (size_t lead = 1; lead < 4; lead++)
                    check_string_case(lead, 0, len, at, &snippets[s], 0, 0);
                check_string_case(0, 1, len, at, &snippets[s], 0, 0);
                check_string_case(0, 1, len, at, &snippets[s], 0, 5);
                check_string_case(0, 0, len, at, &snippets[s], 1, 0);
                check_string_case(0, 1, len, at, &snippets[s], 1, 0);
            }
}

/* Long strings: the snippet near the start, around 8/16-byte steps, and
 * near the end. */
/* Runs of digits are skipped eight bytes at a time: every byte after runs
 * of 1..24 digits, at every alignment, ends the number where a byte-wise
 * scan ends it. */
static void test_digit_runs(void **state)
{
    char buf[96];
    for (int keylen = 1; keylen <= 8; keylen++)
        for (int k = 1; k <= 24; k++)
            for (int b = 0; b < 256; b++) {
                size_t n = 0;
                buf[n++] = '{';
                buf[n++] = '"';
                for (int i = 0; i < keylen; i++)
                    buf[n++] = 'k';
                buf[n++] = '"';
                buf[n++] = ':';
                size_t start = n;
                for (int i = 0; i < k; i++)
                    buf[n++] = (char)('1' + (i * 7) % 9);
                buf[n++] = (char)b;
                buf[n++] = '}';
                telex_json_facts_t f;
                int rc = telex_json_scan_object(buf, n, &f);
                int digit = b >= '0' && b <= '9', ws = b == ' ' || b == '\t' || b == '\n' || b == '\r';
                if (digit || ws) {
                    if (rc != 0)
                        fail_msg("key %d, %d digits, then 0x%02x: refused at %zu", keylen, k, b, f.error_at);
                    continue;
                }
                size_t at = b == '.' || b == 'e' || b == 'E' ? start : b == ',' || b == '}' ? start + (size_t)k + 1 : start + (size_t)k;
                if (rc == 0 || f.error_at != at)
                    fail_msg("key %d, %d digits, then 0x%02x: rc %d at %zu, want the error at %zu", keylen, k, b, rc,
                             f.error_at, at);
            }
}

static void test_long_strings(void **state)
{
    static const size_t lens[] = {63, 64, 65, 255, 256, 1000, 4095, 4096, 4097, 12000};
    size_t nsn = sizeof(snippets) / sizeof(snippets[0]);
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
        size_t len = lens[l];
        for (size_t s = 0; s < nsn; s++) {
            for (size_t at = 0; at <= len; at++) {
                if (at > 40 && at + 40 < len && at % 97 != 0)
                    continue;
                check_string_case(0, 0, len, at, &snippets[s], 0, at % 18);
                check_string_case(0, 0, len, at, &snippets[s], 1, 0);
            }
        }
    }
}

/* Random strings, dense in bytes that stop the fast loop, inside a real
 * chunk: the scanner, the byte-by-byte reference and jansson agree. */
static void test_random_strings(void **state)
{
    static const unsigned char alphabet[] = {'a', 'b', ' ', 'Z', '~', 0x7f, '\\', '\\', 'n', 'u', '0', 'e', '"', 0x01,
                                             0x1f, 0x00, 0x80, 0xbf, 0xc2, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xed, 0xa0,
                                             0xf0, 0x9f, 0x8e, 0x89, 0xf4, 0x90, 0xff, '/', 't', 'D', '8'};
    static const char head[] = "{\"id\":\"chatcmpl-1\",\"choices\":[{\"delta\":{\"content\":\"";
    static const char tail[] = "\"},\"finish_reason\":null}]}";
    uint64_t rng = 99;
    unsigned char buf[512];
    int good = 0;
    for (int iter = 0; iter < 100000; iter++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t len = (size_t)(rng >> 33) % 120;
        int density = 1 + (int)((rng >> 20) % 16); /* one special byte in `density` */
        size_t n = sizeof(head) - 1;
        memcpy(buf, head, n);
        size_t open = n - 1;
        for (size_t i = 0; i < len; i++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            if ((int)((rng >> 40) % (unsigned)density) != 0)
                buf[n++] = (unsigned char)filler[(rng >> 20) % (sizeof(filler) - 1)];
            else
                buf[n++] = alphabet[(rng >> 33) % sizeof(alphabet)];
        }
        size_t close = n;
        memcpy(buf + n, tail, sizeof(tail) - 1);
        n += sizeof(tail) - 1;
        n -= (size_t)(rng >> 50) % 3 == 0 ? (size_t)(rng >> 52) % (n - open) : 0; /* sometimes cut short */
        char *copy = malloc(n);
        assert_non_null(copy);
        memcpy(copy, buf, n);
        size_t stop;
        int ref = ref_string(buf, n, open, &stop);
        telex_json_facts_t f;
        int rc = telex_json_scan_object(copy, n, &f);
        json_t *j = json_loadb(copy, n, 0, NULL);
        if (ref != 0) {
            /* the string is bad: the scanner stops where the reference does */
            if (rc != -1 || f.error_at != stop)
                fail_msg("iteration %d: scanner %d at %zu, reference fails at %zu", iter, rc, f.error_at, stop);
        } else if (stop == close && n == close + sizeof(tail) - 1) {
            if (rc != 0 || f.completion_bytes != close - open - 1)
                fail_msg("iteration %d: scanner %d (error at %zu), expected success", iter, rc, f.error_at);
            good++;
        }
        /* in every case, valid exactly when jansson says so (unless \u escapes, where jansson is stricter) */
        if (memmem(copy, n, "\\u", 2) == NULL && (j != NULL) != (rc == 0))
            fail_msg("iteration %d: scanner %d, jansson %s", iter, rc, j ? "accepts" : "refuses");
        json_decref(j);
        free(copy);
    }
    assert_true(good > 1000);
}


/* ------------------------------------------------------------ the memo */

/* The memo's scan must give exactly what the plain scan gives. */
static void check_same(const char *s, size_t n, telex_json_memo_t *memo, const char *what)
{
    telex_json_facts_t plain, memoed;
    int a = telex_json_scan_object(s, n, &plain);
    int b = telex_json_scan_object_memo(s, n, &memoed, memo);
    if (a != b || plain.top_error != memoed.top_error || plain.top_usage != memoed.top_usage ||
        plain.finish != memoed.finish || plain.completion_bytes != memoed.completion_bytes ||
        plain.reasoning_bytes != memoed.reasoning_bytes || plain.line_breaks != memoed.line_breaks ||
        (a == 0 && (plain.null_usage_from != memoed.null_usage_from || plain.null_usage_to != memoed.null_usage_to)) ||
        (a != 0 && plain.error_at != memoed.error_at) || plain.finish_odd != memoed.finish_odd ||
        plain.n_finishes != memoed.n_finishes ||
        memcmp(plain.finish_index, memoed.finish_index, sizeof(plain.finish_index[0]) * (size_t)plain.n_finishes) != 0 ||
        (a == 0 && memoed.choices_at != 0 && memoed.choices_at != plain.choices_at))
        fail_msg("%s: plain %d (at %zu, completion %llu) vs memo %d (at %zu, completion %llu) on %.*s", what, a,
                 plain.error_at, (unsigned long long)plain.completion_bytes, b, memoed.error_at,
                 (unsigned long long)memoed.completion_bytes, (int)n, s);
}

#define CHUNK_HEAD "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":17,\"model\":\"m\","
static const char *stream_chunks[] = {
    CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},"
               "\"finish_reason\":null}]}",
    CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}",
    CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\\"w\\\"\"},\"finish_reason\":null}]}",
    CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\xc3\xa9\"},\"finish_reason\":null}],\"t\":1}",
    CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":42},\"finish_reason\":null}]}",
    CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}",
    CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}]}", /* bad: ] closes an object */
    CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":", /* cut right at the memo's end */
    CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"y\"},\"finish_reason\":null}]}",
    CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"think\"},\"finish_reason\":null}]}",
    CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"more\"},\"finish_reason\":null}]}",
    CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
               "\"{\\\"a\\\"\"}}]},\"finish_reason\":null}]}",
    CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
               "\":1}\"}}]},\"finish_reason\":null}]}",
    CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}",
    CHUNK_HEAD "\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}",
    "{\"error\":{\"message\":\"overloaded\",\"content\":\"x\"}}",
    "{\"error\":{\"message\":\"overloaded\",\"content\":\"y\"},\"usage\":null}",
    "  {\"content\":\"lead\"}  ",
    "  {\"content\":\"lead2\"}",
    "{\"a\":\n1,\"content\":\"x\"}",
    "{\"a\":\n1,\"content\":\"y\"}",
    "{\"a\":\n1,\"content\":\"z\"\r\n}",
    CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"z\"},\"finish_reason\":null}],\"usage\":null}",
    "{\"usage\":null,\"choices\":[{\"delta\":{\"content\":\"u\"}}]}",
};

static void test_memo_agrees_on_a_stream(void **state)
{
    telex_json_memo_t memo = {0};
    size_t n = sizeof(stream_chunks) / sizeof(stream_chunks[0]);
    /* in order, then every pair in both orders (each primes the other) */
    for (size_t i = 0; i < n; i++)
        check_same(stream_chunks[i], strlen(stream_chunks[i]), &memo, "in order");
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            check_same(stream_chunks[i], strlen(stream_chunks[i]), &memo, "first of a pair");
            check_same(stream_chunks[j], strlen(stream_chunks[j]), &memo, "second of a pair");
            check_same(stream_chunks[j], strlen(stream_chunks[j]), &memo, "again");
        }
    telex_json_memo_clear(&memo);
    assert_null(memo.prefix);
    assert_int_equal(memo.len, 0);
}

/* The memo is used: after one content chunk, the next scan of a chunk with
 * the same head starts after it (a corrupted head is found by comparing,
 * not scanning — the result is the same). */
static void test_memo_keeps_the_head(void **state)
{
    telex_json_memo_t memo = {0};
    telex_json_facts_t f;
    const char *c1 = stream_chunks[1];
    assert_int_equal(telex_json_scan_object_memo(c1, strlen(c1), &f, &memo), 0);
    const char *at = strstr(c1, "\"content\":");
    assert_non_null(at);
    assert_int_equal(memo.len, (size_t)(at - c1) + strlen("\"content\":"));
    assert_int_equal(memo.depth, 4); /* { [ { { */
    /* a chunk without any content key leaves the memo as it was */
    const char *fin = stream_chunks[13];
    assert_int_equal(telex_json_scan_object_memo(fin, strlen(fin), &f, &memo), 0);
    assert_true(f.finish);
    assert_int_equal(memo.len, (size_t)(at - c1) + strlen("\"content\":"));
    /* too deep to keep: nothing kept */
    char deep[200] = "{\"a\":";
    for (int i = 0; i < TELEX_JSON_MEMO_MAX_DEPTH + 1; i++)
        strcat(deep, "[");
    strcat(deep, "{\"content\":\"x\"}");
    for (int i = 0; i < TELEX_JSON_MEMO_MAX_DEPTH + 1; i++)
        strcat(deep, "]");
    strcat(deep, "}");
    assert_int_equal(telex_json_scan_object_memo(deep, strlen(deep), &f, &memo), 0);
    assert_int_equal(memo.len, 0);
    /* too long to keep */
    char *longkey = malloc(TELEX_JSON_MEMO_MAX_PREFIX + 64);
    assert_non_null(longkey);
    strcpy(longkey, "{\"");
    memset(longkey + 2, 'k', TELEX_JSON_MEMO_MAX_PREFIX);
    strcpy(longkey + 2 + TELEX_JSON_MEMO_MAX_PREFIX, "\":1,\"content\":\"x\"}");
    assert_int_equal(telex_json_scan_object_memo(longkey, strlen(longkey), &f, &memo), 0);
    assert_int_equal(memo.len, 0);
    free(longkey);
    telex_json_memo_clear(&memo);
}

/* The tail: a chunk with the memo's prefix and its tail but for the
 * contents of string values is not scanned (the memo keeps the tail it
 * had), and its facts are the plain scan's — text counted from its own
 * strings, a "usage":null cut moved by their lengths. A bad string where
 * the tail has one is found as the plain scan finds it. */
#define TAIL_HEAD CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":"
static void test_memo_keeps_the_tail(void **state)
{
    telex_json_memo_t memo = {0};
    telex_json_facts_t f;
    const char *a = TAIL_HEAD "\"Hel\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,"
                              "\"obfuscation\":\"abc\"}";
    check_same(a, strlen(a), &memo, "first");
    check_same(a, strlen(a), &memo, "first, again");
    assert_int_equal(memo.len, strlen(TAIL_HEAD));
    assert_int_equal(memo.tail_len, strlen(a) - strlen(TAIL_HEAD));
    assert_int_equal(memo.n_holes, 2);     /* "Hel", "abc" */
    assert_int_equal(memo.usage_holes, 1); /* the cut is after "Hel", before "abc" */
    char kept[512];
    memcpy(kept, memo.prefix, memo.len + memo.tail_len);
    size_t kept_len = memo.len + memo.tail_len;
    const char *same_shape[] = {
        TAIL_HEAD "\"lo, w\\u00e9rld \\\"x\\\"\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,"
                  "\"obfuscation\":\"q\"}",
        TAIL_HEAD "\"\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"\"}",
        TAIL_HEAD "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"},\"logprobs\":null,\"finish_reason\":null}],"
                  "\"usage\":null,\"obfuscation\":\"0123456789abcdef0123456789\"}",
    };
    for (size_t i = 0; i < sizeof(same_shape) / sizeof(same_shape[0]); i++) {
        check_same(same_shape[i], strlen(same_shape[i]), &memo, "same shape");
        assert_int_equal(memo.len + memo.tail_len, kept_len);
        assert_memory_equal(memo.prefix, kept, kept_len); /* taken from the tail, not scanned */
        assert_int_equal(telex_json_scan_object_memo(same_shape[i], strlen(same_shape[i]), &f, &memo), 0);
        assert_true(f.null_usage_to > f.null_usage_from);
        assert_memory_equal(same_shape[i] + f.null_usage_from, ",\"usage\":null", strlen(",\"usage\":null"));
    }
    /* bad strings where the tail has its strings: the plain scan's error, at the same byte */
    const char *bad[] = {
        TAIL_HEAD "\"a\x01\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"q\"}",
        TAIL_HEAD "\"a\xc3\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"q\"}",
        TAIL_HEAD "\"a\\x\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"q\"}",
        TAIL_HEAD "\"a\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"q\\u12\"}",
        TAIL_HEAD "\"a\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"q",
        TAIL_HEAD "\"a\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"q\"}}",
        TAIL_HEAD "\"a\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"q\"",
        TAIL_HEAD "\"a\"},\"logprobs\":nul,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"q\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        check_same(bad[i], strlen(bad[i]), &memo, "bad string in the tail");
        assert_int_equal(memo.len + memo.tail_len, kept_len); /* a bad chunk leaves the tail */
    }
    /* other bytes outside the strings: scanned, and the tail is theirs */
    const char *other = TAIL_HEAD "\"x\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}";
    check_same(other, strlen(other), &memo, "another tail");
    assert_true(memo.tail_len != 0);
    assert_memory_equal(memo.prefix + memo.len, other + memo.len, memo.tail_len);
    assert_int_equal(memo.n_holes, 2); /* "x", "stop" */
    assert_int_equal(memo.usage_holes, 2);
    /* numbers are holes too (the mock's per-chunk timestamp) */
    const char *n1 = TAIL_HEAD "\"a\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"sent_ns\":1234}";
    const char *n2 = TAIL_HEAD "\"bcd\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"sent_ns\":-5.5e+3}";
    const char *n3 = TAIL_HEAD "\"bcd\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"sent_ns\":1.}";
    const char *n4 = TAIL_HEAD "\"bcd\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"sent_ns\":12x}";
    check_same(n1, strlen(n1), &memo, "a number in the tail");
    assert_int_equal(memo.n_holes, 2);
    check_same(n2, strlen(n2), &memo, "another number");
    assert_memory_equal(memo.prefix + memo.len, n1 + memo.len, memo.tail_len); /* from the tail */
    check_same(n3, strlen(n3), &memo, "a bad number");
    check_same(n4, strlen(n4), &memo, "a number, then a stray byte");
    assert_memory_equal(memo.prefix + memo.len, n1 + memo.len, memo.tail_len);
    /* a usage:null cut in the prefix (first member) stays where it is */
    const char *u1 = "{\"usage\":null,\"choices\":[{\"delta\":{\"content\":\"u\"}}],\"o\":\"abc\"}";
    const char *u2 = "{\"usage\":null,\"choices\":[{\"delta\":{\"content\":\"longer\"}}],\"o\":\"\"}";
    check_same(u1, strlen(u1), &memo, "cut in the prefix");
    assert_int_equal(memo.usage_holes, 0xFF);
    check_same(u2, strlen(u2), &memo, "cut in the prefix, from the tail");
    assert_memory_equal(memo.prefix + memo.len, u1 + memo.len, memo.tail_len);
    /* more strings than the memo keeps: no tail, same answers */
    char many[512] = TAIL_HEAD "\"a\"}";
    for (int i = 0; i < TELEX_JSON_MEMO_MAX_HOLES; i++)
        strcat(many, ",\"s\":\"v\"");
    strcat(many, "}]}");
    check_same(many, strlen(many), &memo, "many strings");
    check_same(many, strlen(many), &memo, "many strings, again");
    assert_int_equal(memo.tail_len, 0);
    telex_json_memo_clear(&memo);
}

/* Random edits anywhere in a chunk (in the shared head, at the memo's edge,
 * in the text, after it) scanned right after an unedited chunk primed the
 * memo: the memo's answer is the plain scan's, every time. */
static void test_memo_agrees_on_corruptions(void **state)
{
    uint64_t rng = 7;
    char buf[512];
    for (int iter = 0; iter < 40000; iter++) {
        telex_json_memo_t memo = {0};
        size_t pick = 1 + (size_t)iter % 4; /* content chunks 1..4 */
        const char *seed = stream_chunks[pick];
        size_t n = strlen(seed);
        check_same(stream_chunks[1], strlen(stream_chunks[1]), &memo, "prime");
        memcpy(buf, seed, n);
        const char *edge = strstr(seed, "\"content\":") + strlen("\"content\":");
        size_t edge_at = (size_t)(edge - seed);
        int edits = 1 + (int)((rng >> 33) % 2);
        for (int e = 0; e < edits; e++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            /* half the edits near the memo's edge */
            size_t at = (rng >> 60) & 1 ? edge_at - 3 + (size_t)((rng >> 33) % 7) : (size_t)((rng >> 33) % n);
            if (at >= n)
                at = n - 1;
            n = edit_at(buf, n, sizeof(buf), at, rng);
        }
        char *copy = malloc(n);
        assert_non_null(copy);
        memcpy(copy, buf, n);
        check_same(copy, n, &memo, "edited");
        check_same(copy, n, &memo, "edited, again");
        /* and a clean chunk after it still agrees (whatever the edit left in the memo) */
        check_same(stream_chunks[2], strlen(stream_chunks[2]), &memo, "clean after edited");
        free(copy);
        telex_json_memo_clear(&memo);
    }
}

/* The choices a chunk finishes, as openai.c's tree walk finds them: each
 * element of "choices" with a non-null "finish_reason", by its integer
 * "index" or else its position. -1 when jansson refuses the chunk; -2 when
 * an index is not an integer or negative (the scan must then say odd). */
static int tree_finishes(const char *s, uint32_t *out, int cap)
{
    json_t *root = json_loads(s, 0, NULL);
    if (root == NULL)
        return -1;
    int n = 0;
    size_t i;
    json_t *choice;
    json_array_foreach(json_object_get(root, "choices"), i, choice)
    {
        json_t *fr = json_object_get(choice, "finish_reason");
        if (fr == NULL || json_is_null(fr))
            continue;
        json_t *jindex = json_object_get(choice, "index");
        if (jindex != NULL && (!json_is_integer(jindex) || json_integer_value(jindex) < 0)) {
            n = -2;
            break;
        }
        if (n == cap) {
            n = -2;
            break;
        }
        out[n++] = jindex != NULL ? (uint32_t)json_integer_value(jindex) : (uint32_t)i;
    }
    json_decref(root);
    return n;
}

typedef struct {
    const char *json;
    int odd;         /* the scan must say finish_odd */
    int n;           /* else: these finishes */
    uint32_t idx[4];
} finish_case_t;

/* The choice-level finishes the scan reports are the tree's; anything it
 * cannot say exactly (or that jansson refuses) is odd; a memo'd scan says
 * the same, also after each other chunk primed the memo. */
static void test_choice_finishes(void **state)
{
    static const finish_case_t cases[] = {
        {"{\"choices\":[{\"index\":1,\"delta\":{},\"finish_reason\":\"stop\"}]}", 0, 1, {1}},
        {"{\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"},{\"finish_reason\":\"length\"}]}", 0, 2, {0, 1}},
        {"{\"choices\":[{\"index\":2,\"finish_reason\":null},{\"index\":0,\"finish_reason\":\"stop\"}]}", 0, 1, {0}},
        {"{\"choices\":[{\"finish_reason\":\"stop\",\"finish_reason\":null}]}", 0, 0, {0}},
        {"{\"choices\":[{\"finish_reason\":null,\"finish_reason\":1}]}", 0, 1, {0}},
        {"{\"choices\":[{\"delta\":{\"finish_reason\":\"x\"},\"logprobs\":{\"finish_reason\":\"y\"}}]}", 0, 0, {0}},
        {"{\"x\":[{\"finish_reason\":\"stop\"}],\"choices\":[]}", 0, 0, {0}},
        {"{\"choices\":[],\"x\":[{\"finish_reason\":\"stop\"}]}", 0, 0, {0}},
        {"{\"choices\":{},\"x\":[{\"finish_reason\":\"stop\"}]}", 0, 0, {0}},
        {"{\"choices\":{\"finish_reason\":\"stop\"}}", 0, 0, {0}},
        {"{\"choices\":[[{\"finish_reason\":\"stop\"}],{\"finish_reason\":\"a\"},[],{}]}", 0, 1, {1}},
        {"{\"choices\":[{},[],{\"finish_reason\":true},{\"finish_reason\":false}]}", 0, 2, {2, 3}},
        {"{\"choices\":[{\"index\":1,\"index\":3,\"finish_reason\":\"stop\"}]}", 0, 1, {3}},
        {"{\"choices\":[{\"finish_reason\":{\"a\":1}},{\"finish_reason\":[]},{\"finish_reason\":{}}]}", 0, 3, {0, 1, 2}},
        {"{\"choices\":[{\"index\":999999,\"finish_reason\":\"stop\"}]}", 0, 1, {999999}},
        {"{\"a\":[[[{\"choices\":[{\"finish_reason\":\"stop\"}]}]]],\"choices\":[{\"index\":7}]}", 0, 0, {0}},
        {"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\ud83d\\ude00\"},\"finish_reason\":\"stop\"}]}", 0, 1, {0}},
        {"{\"created\":123456789012345678,\"choices\":[{\"finish_reason\":\"stop\",\"x\":1.5e99}]}", 0, 1, {0}},
        {"{\"choices\":[{\"index\":1000000,\"finish_reason\":\"stop\"}]}", 1, 0, {0}},
        {"{\"choices\":[{\"index\":\"1\",\"finish_reason\":\"stop\"}]}", 1, 0, {0}},
        {"{\"choices\":[{\"index\":null,\"finish_reason\":\"stop\"}]}", 1, 0, {0}},
        {"{\"choices\":[{\"index\":[],\"finish_reason\":\"stop\"}]}", 1, 0, {0}},
        {"{\"choices\":[{\"index\":1.0,\"finish_reason\":\"stop\"}]}", 1, 0, {0}},
        {"{\"choices\":[{\"index\":1e0,\"finish_reason\":\"stop\"}]}", 1, 0, {0}},
        {"{\"choices\":[{\"index\":-1,\"finish_reason\":\"stop\"}]}", 1, 0, {0}},
        {"{\"choices\":[{\"finish_reason\":\"stop\"}],\"choices\":[]}", 1, 0, {0}},
        {"{\"choices\":[],\"choices\":[{\"finish_reason\":\"stop\"}]}", 1, 0, {0}},
        {"{\"choices\":[{\"fin\\u0069sh_reason\":\"stop\"}]}", 1, 0, {0}},
        {"{\"choices\":[{\"\\u0069ndex\":1,\"finish_reason\":\"stop\"}]}", 1, 0, {0}},
        {"{\"ch\\u006fices\":[{\"finish_reason\":\"stop\"}]}", 1, 0, {0}},
        {"{\"choices\":[{\"finish_reason\":\"stop\",\"delta\":{\"content\":\"\\u0000\"}}]}", 1, 0, {0}},
        {"{\"choices\":[{\"finish_reason\":\"stop\",\"delta\":{\"content\":\"\\ud83d\"}}]}", 1, 0, {0}},
        {"{\"choices\":[{\"finish_reason\":\"stop\",\"delta\":{\"content\":\"\\ude00\\ud83d\"}}]}", 1, 0, {0}},
        {"{\"choices\":[{\"finish_reason\":\"stop\",\"delta\":{\"content\":\"\\ud83dx\"}}]}", 1, 0, {0}},
        {"{\"choices\":[{\"finish_reason\":\"stop\",\"delta\":{\"content\":\"\\ud83d\\u0041\"}}]}", 1, 0, {0}},
        {"{\"created\":12345678901234567890,\"choices\":[{\"finish_reason\":\"stop\"}]}", 1, 0, {0}},
        {"{\"choices\":[{\"finish_reason\":\"stop\"}],\"x\":1e400}", 1, 0, {0}},
        {"{\"choices\":[{\"finish_reason\":\"stop\"}],\"x\":-1.5E-400}", 1, 0, {0}},
        {"{\"choices\":[{\"finish_reason\":1},{\"finish_reason\":2},{\"finish_reason\":3},{\"finish_reason\":4}]}", 0,
         4, {0, 1, 2, 3}},
        {"{\"choices\":[{\"finish_reason\":1},{\"finish_reason\":2},{\"finish_reason\":3},{\"finish_reason\":4},"
         "{\"finish_reason\":5}]}",
         1, 0, {0}},
        {"{\"x\":-1234567890123456789012345678901234567890.5e-12,\"choices\":[{\"finish_reason\":\"s\"}]}", 0, 1, {0}},
        {"{\"choices\":[{\"finish_reason\":\"stop\"},{\"finish_reason\":\"stop\"},{\"finish_reason\":\"stop\"},"
         "{\"finish_reason\":\"stop\"},{\"finish_reason\":\"stop\"},{\"finish_reason\":\"stop\"},"
         "{\"finish_reason\":\"stop\"},{\"finish_reason\":\"stop\"},{\"finish_reason\":\"stop\"}]}",
         1, 0, {0}},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++) {
        const finish_case_t *t = &cases[i];
        telex_json_facts_t f;
        assert_int_equal(scan(t->json, &f), 0);
        uint32_t tree[TELEX_JSON_MAX_FINISHES];
        int nt = tree_finishes(t->json, tree, TELEX_JSON_MAX_FINISHES);
        if (f.finish_odd != t->odd)
            fail_msg("finish_odd %d on %s", f.finish_odd, t->json);
        if (t->odd)
            continue;
        if (nt != t->n || f.n_finishes != t->n)
            fail_msg("%d finishes (tree %d, expected %d) on %s", f.n_finishes, nt, t->n, t->json);
        for (int k = 0; k < t->n; k++) {
            assert_int_equal(f.finish_index[k], t->idx[k]);
            assert_int_equal(tree[k], t->idx[k]);
        }
    }
    /* what the tree walk cannot do, the scan says is odd */
    for (size_t i = 0; i < n; i++) {
        telex_json_facts_t f;
        uint32_t tree[TELEX_JSON_MAX_FINISHES];
        if (tree_finishes(cases[i].json, tree, TELEX_JSON_MAX_FINISHES) < 0) {
            assert_int_equal(scan(cases[i].json, &f), 0);
            assert_true(f.finish_odd);
        }
    }
    /* memo'd scans agree, primed by a content chunk and by each other */
    const char *content = TAIL_HEAD "\"x\"},\"logprobs\":null,\"finish_reason\":null}]}";
    const char *in_tail[] = {
        TAIL_HEAD "\"x\"},\"index\":1,\"finish_reason\":\"stop\"}]}",
        TAIL_HEAD "\"x\"},\"index\":2,\"finish_reason\":\"stop\"}]}",
        TAIL_HEAD "\"x\"},\"index\":12,\"finish_reason\":\"stop\"}]}",
        TAIL_HEAD "\"x\"},\"index\":-1,\"finish_reason\":\"stop\"}]}",
        TAIL_HEAD "\"yy\"},\"finish_reason\":\"length\"}]}",
        TAIL_HEAD "\"yy\\u0000\"},\"finish_reason\":\"length\"}]}",
        TAIL_HEAD "\"yy\"},\"finish_reason\":\"length\",\"n\":1e400}]}",
        TAIL_HEAD "\"yy\"},\"finish_reason\":\"length\",\"n\":1e40}]}",
        TAIL_HEAD "\"yy\"},\"finish_reason\":\"length\",\"n\":12345678901234567890}]}",
        TAIL_HEAD "\"yy\"},\"finish_reason\":\"length\",\"n\":123456789012345678}]}",
        TAIL_HEAD "\"z\"},\"finish_reason\":\"stop\"},{\"index\":1,\"delta\":{},\"finish_reason\":\"stop\"}]}",
        TAIL_HEAD "\"z\"},\"finish_reason\":\"stop\"},{\"index\":1,\"delta\":{},\"finish_reason\":null}]}",
        TAIL_HEAD "\"z\"},\"finish_reason\":\"stop\"}],\"choices\":[]}",
        "{\"choices\":[{\"index\":3,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}",
        "{\"choices\":[{\"index\":4,\"delta\":{\"content\":\"bb\"},\"finish_reason\":\"stop\"}]}",
        "{\"choices\":[{\"finish_reason\":\"stop\",\"delta\":{\"content\":\"a\"}}]}",
        "{\"choices\":[{\"finish_reason\":null,\"delta\":{\"content\":\"a\"}}]}",
    };
    size_t m = sizeof(in_tail) / sizeof(in_tail[0]);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < m; j++) {
            telex_json_memo_t memo = {0};
            check_same(content, strlen(content), &memo, "content");
            check_same(in_tail[i], strlen(in_tail[i]), &memo, "finish");
            check_same(in_tail[j], strlen(in_tail[j]), &memo, "another finish");
            check_same(in_tail[j], strlen(in_tail[j]), &memo, "again");
            check_same(in_tail[i], strlen(in_tail[i]), &memo, "the first again");
            telex_json_memo_clear(&memo);
        }
    for (size_t i = 0; i < m; i++) {
        telex_json_facts_t f;
        uint32_t tree[TELEX_JSON_MAX_FINISHES];
        assert_int_equal(scan(in_tail[i], &f), 0);
        int nt = tree_finishes(in_tail[i], tree, TELEX_JSON_MAX_FINISHES);
        if (nt < 0) {
            assert_true(f.finish_odd);
        } else if (!f.finish_odd) {
            assert_int_equal(f.n_finishes, nt);
            for (int k = 0; k < nt; k++)
                assert_int_equal(f.finish_index[k], tree[k]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_facts_of_real_chunks),
        cmocka_unit_test(test_null_usage_cut),
        cmocka_unit_test(test_rejects_what_is_not_one_object),
        cmocka_unit_test(test_depth_is_bounded),
        cmocka_unit_test(test_agrees_with_jansson_on_corruptions),
        cmocka_unit_test(test_strings_at_every_position),
        cmocka_unit_test(test_long_strings),
        cmocka_unit_test(test_digit_runs),
        cmocka_unit_test(test_random_strings),
        cmocka_unit_test(test_memo_agrees_on_a_stream),
        cmocka_unit_test(test_memo_keeps_the_head),
        cmocka_unit_test(test_memo_keeps_the_tail),
        cmocka_unit_test(test_memo_agrees_on_corruptions),
        cmocka_unit_test(test_choice_finishes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
