/*
 * tests/unit/test_text.c — the text toolkit in src/util/: the JSON string
 * escaper (util/json_dump.h) in both modes and in steps, the UTF-8 check
 * (util/utf8.h) with its maximal invalid subparts, hex digits (util/hex.h).
 * The escaper's output buffers are allocated at exactly the documented
 * bound, so an ASan build catches a write past it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/hex.h"
#include "util/json_dump.h"
#include "util/utf8.h"

/* Escapes s[0..n) at once into a buffer of exactly 6 * n bytes. */
static char *escape_all(const char *s, size_t n, int flags, size_t *len)
{
    char *out = malloc(6 * n + 1);
    assert_non_null(out);
    size_t pos = 0;
    *len = telex_json_escape(out, s, n, &pos, n, flags);
    if (*len != TELEX_JSON_ESCAPE_BAD_UTF8) {
        assert_int_equal(pos, n);
        out[*len] = '\0';
    }
    return out;
}

static void expect_escape(const char *s, size_t n, int flags, const char *want)
{
    size_t len;
    char *got = escape_all(s, n, flags, &len);
    assert_int_not_equal(len, TELEX_JSON_ESCAPE_BAD_UTF8);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(got, want, len);
    free(got);
}

static void test_escape(void **state)
{
    (void)state;
    expect_escape("", 0, 0, "");
    expect_escape("plain text, long enough for a word or two", 41, 0, "plain text, long enough for a word or two");
    expect_escape("\"\\\b\f\n\r\t", 7, 0, "\\\"\\\\\\b\\f\\n\\r\\t");
    expect_escape("\x01\x1f\x7f\0x", 5, 0, "\\u0001\\u001F\x7f\\u0000x"); /* jansson: upper-case hex, 0x7F as is */
    expect_escape("h\xc3\xa9llo \xe6\x97\xa5 \xf0\x9f\x98\x80!", 16, 0, "h\xc3\xa9llo \xe6\x97\xa5 \xf0\x9f\x98\x80!");
    /* a special byte at each place of an 8-byte word */
    for (size_t at = 0; at < 16; at++) {
        char in[17], want[32];
        memset(in, 'a', 16);
        in[at] = '"';
        memcpy(want, in, at);
        want[at] = '\\';
        memcpy(want + at + 1, in + at, 16 - at);
        want[17] = '\0';
        expect_escape(in, 16, 0, want);
    }
}

static void test_escape_invalid_utf8(void **state)
{
    (void)state;
    /* strict: stops at the first bad byte and says where */
    const char bad[] = "abcdefghij\xff tail";
    char out[6 * sizeof bad];
    size_t pos = 0;
    assert_int_equal(telex_json_escape(out, bad, sizeof bad - 1, &pos, sizeof bad - 1, 0), TELEX_JSON_ESCAPE_BAD_UTF8);
    assert_int_equal(pos, 10);
    /* replace: one U+FFFD per maximal subpart, as TextDecoder does */
    const char in[] = "a\xff" "b\xc0\xaf" "c\xed\xa0\x80" "d\xe2\x82" "e\xf4\x90\x80\x80\x80\xbf\xf0\x9f\x98";
    expect_escape(in, sizeof in - 1, TELEX_JSON_ESCAPE_REPLACE,
                  "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                  "d\xef\xbf\xbd" "e\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                  "\xef\xbf\xbd");
}

static void test_escape_in_steps(void **state)
{
    (void)state;
    /* a pseudo-random mix of plain bytes, specials and UTF-8, escaped in
     * steps of every size from 1 to 40 into buffers of exactly
     * TELEX_JSON_ESCAPE_BOUND(step): the same bytes as at once */
    static const char *const pieces[] = {"a", "token ", "\"", "\\", "\n", "\x01", "\xc3\xa9", "\xf0\x9f\x98\x80",
                                         "\xff", "0123456789"};
    char in[2000];
    size_t n = 0;
    uint64_t x = 88172645463325252ULL;
    while (n + 10 < sizeof in) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const char *p = pieces[x % (sizeof pieces / sizeof pieces[0])];
        memcpy(in + n, p, strlen(p));
        n += strlen(p);
    }
    size_t want_len;
    char *want = escape_all(in, n, TELEX_JSON_ESCAPE_REPLACE, &want_len);
    for (size_t step = 1; step <= 40; step++) {
        char *got = malloc(want_len + 1);
        size_t got_len = 0, pos = 0;
        while (pos < n) {
            char *dst = malloc(TELEX_JSON_ESCAPE_BOUND(step));
            size_t w = telex_json_escape(dst, in, n, &pos, pos + step, TELEX_JSON_ESCAPE_REPLACE);
            assert_true(got_len + w <= want_len);
            memcpy(got + got_len, dst, w);
            got_len += w;
            free(dst);
        }
        assert_int_equal(got_len, want_len);
        assert_memory_equal(got, want, want_len);
        free(got);
    }
    free(want);
}

static void test_utf8_check(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        ptrdiff_t want;
    } cases[] = {
        {"\xc3\xa9", 2}, {"\xe2\x82\xac", 3}, {"\xf0\x9f\x98\x80", 4}, {"\xf4\x8f\xbf\xbf", 4}, /* U+10FFFF */
        {"\xed\x9f\xbf", 3},                                                               /* U+D7FF */
        {"\x80", -1}, {"\xc0\xaf", -1}, {"\xc1\xbf", -1}, {"\xf5\x80\x80\x80", -1}, {"\xff", -1},
        {"\xe0\x80\x80", -1},     /* overlong */
        {"\xed\xa0\x80", -1},     /* surrogate */
        {"\xf4\x90\x80\x80", -1}, /* above U+10FFFF */
        {"\xe2\x82", -2},         /* cut short */
        {"\xe2\x82x", -2},
        {"\xf0\x9f\x98", -3},
        {"\xc3", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const unsigned char *p = (const unsigned char *)cases[i].s;
        ptrdiff_t got = telex_utf8_check(p, p + strlen(cases[i].s));
        if (got != cases[i].want)
            fail_msg("case %zu: want %td, got %td", i, cases[i].want, got);
        assert_int_equal(telex_utf8_seq_len(p, p + strlen(cases[i].s)), got > 0 ? (size_t)got : 0);
    }
}

static void test_hexval(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        int want = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        assert_int_equal(telex_hexval((char)c), want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_escape_invalid_utf8),
        cmocka_unit_test(test_escape_in_steps),
        cmocka_unit_test(test_utf8_check),
        cmocka_unit_test(test_hexval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
