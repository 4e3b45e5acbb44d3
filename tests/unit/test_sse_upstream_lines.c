/*
 * test_sse_upstream_lines.c — the strict event-stream line check of
 * upstream/sse_upstream.c (check_lines, static: the file is included here).
 *
 * check_lines skips the rest of a field line with memchr and takes a
 * "data:" line start in one step; these tests hold it to the one-byte-at-a-
 * time rules it replaced (ref_check below, the previous loop verbatim on a
 * state of its own): the same offset of the first bad byte, however the
 * stream is split into feeds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "upstream/sse_upstream.c"

/* ------------------------------------------------------------ the reference */

typedef struct {
    int line_state;
    int after_cr;
    size_t stream_bytes;
    size_t bom_matched;
    size_t name_len;
    char name[8];
} ref_t;

static size_t ref_check(ref_t *u, const char *data, size_t len)
{
    static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};
    for (size_t i = 0; i < len; i++, u->stream_bytes++) {
        unsigned char ch = (unsigned char)data[i];
        if (u->stream_bytes < 3 && u->bom_matched == u->stream_bytes) {
            if (ch == bom[u->stream_bytes]) {
                u->bom_matched++;
                continue;
            }
            if (u->bom_matched > 0)
                return i;
        }
        int eol = ch == '\r' || ch == '\n';
        if (u->after_cr && ch == '\n') {
            u->after_cr = 0;
            continue;
        }
        u->after_cr = ch == '\r';
        switch (u->line_state) {
        case LINE_START:
            if (eol)
                break;
            if (ch == ':') {
                u->line_state = LINE_REST;
                break;
            }
            u->line_state = LINE_NAME;
            u->name_len = 0;
            /* fall through */
        case LINE_NAME:
            if (eol || ch == ':') {
                if (!known_field(u->name, u->name_len))
                    return i;
                u->line_state = eol ? LINE_START : LINE_REST;
                u->name_len = 0;
            } else if (u->name_len == 5) {
                return i;
            } else {
                u->name[u->name_len++] = (char)ch;
            }
            break;
        default:
            if (eol)
                u->line_state = LINE_START;
        }
    }
    return len;
}

/* ------------------------------------------------------------ helpers */

#define ALL_GOOD SIZE_MAX

/* Feeds s[0..n) cut at the given offsets (ascending, within [0, n]); returns
 * the absolute offset of the first bad byte, or ALL_GOOD. Like on_body, no
 * feed follows a bad one. */
static size_t feed_new(const char *s, size_t n, const size_t *cuts, size_t ncuts)
{
    telex_sse_upstream_t *u = calloc(1, sizeof(*u));
    assert_non_null(u);
    size_t from = 0, result = ALL_GOOD;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t to = k < ncuts ? cuts[k] : n;
        /* each feed in a buffer of its own size: ASan sees a read past it */
        char *feed = malloc(to > from ? to - from : 1);
        assert_non_null(feed);
        memcpy(feed, s + from, to - from);
        size_t good = check_lines(u, feed, to - from);
        free(feed);
        assert_true(good <= to - from);
        if (good < to - from) {
            result = from + good;
            break;
        }
        from = to;
    }
    free(u);
    return result;
}

static size_t feed_ref(const char *s, size_t n, const size_t *cuts, size_t ncuts)
{
    ref_t r = {0};
    size_t from = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t to = k < ncuts ? cuts[k] : n;
        size_t good = ref_check(&r, s + from, to - from);
        if (good < to - from)
            return from + good;
        from = to;
    }
    return ALL_GOOD;
}

/* One feed, every split in two, every split in three around the bad byte or
 * the end, and one byte per feed: all give `expect`, as the reference does. */
static void check_every_split(const char *s, size_t n, size_t expect)
{
    size_t got = feed_new(s, n, NULL, 0);
    if (got != expect)
        fail_msg("one feed of \"%.*s\": %zu, expected %zu", (int)n, s, got, expect);
    assert_int_equal(feed_ref(s, n, NULL, 0), expect);
    for (size_t a = 1; a < n; a++) {
        size_t cut[1] = {a};
        got = feed_new(s, n, cut, 1);
        if (got != expect)
            fail_msg("\"%.*s\" cut at %zu: %zu, expected %zu", (int)n, s, a, got, expect);
        for (size_t b = a + 1; b < n && b < a + 4; b++) {
            size_t cuts[2] = {a, b};
            assert_int_equal(feed_new(s, n, cuts, 2), expect);
        }
    }
    if (n > 1) {
        size_t *cuts = malloc((n - 1) * sizeof(*cuts));
        assert_non_null(cuts);
        for (size_t i = 0; i + 1 < n; i++)
            cuts[i] = i + 1;
        assert_int_equal(feed_new(s, n, cuts, n - 1), expect);
        assert_int_equal(feed_ref(s, n, cuts, n - 1), expect);
        free(cuts);
    }
}

#define CHECK(lit, expect) check_every_split(lit, sizeof(lit) - 1, expect)

/* ------------------------------------------------------------ tests */

static void test_good_streams(void **state)
{
    CHECK("", ALL_GOOD);
    CHECK("data: {\"a\":1}\n\n", ALL_GOOD);
    CHECK("data: {\"a\":1}\r\n\r\n", ALL_GOOD);
    CHECK("data: {\"a\":1}\r\rdata: x\r\r", ALL_GOOD);
    CHECK("data:x\ndata:y\n\ndata: [DONE]\n\n", ALL_GOOD);
    CHECK("event: message_start\ndata: {}\n\nevent: ping\ndata: {}\n\n", ALL_GOOD);
    CHECK("id: 7\nretry: 1000\nevent\ndata\nid\nretry\n\n", ALL_GOOD);
    CHECK(": keep-alive\n\n:\n:data\r\n", ALL_GOOD);
    CHECK("\n\n\r\n\r\r\n\n", ALL_GOOD);
    CHECK("\xEF\xBB\xBF" "data: x\n\n", ALL_GOOD);
    CHECK("\xEF\xBB\xBF", ALL_GOOD);
    CHECK("\xEF\xBB\xBF\n", ALL_GOOD);
    CHECK("\xEF\xBB\xBF:x\n", ALL_GOOD);
    /* anything but CR and LF after the colon, including NUL, a BOM, ':' */
    CHECK("data: \0\x01\xff\xEF\xBB\xBF::: data: foo: \n\n", ALL_GOOD);
    CHECK("data:data:data:\n", ALL_GOOD);
    /* a line still open at the end of the stream so far */
    CHECK("data: no end yet", ALL_GOOD);
    CHECK("dat", ALL_GOOD);
    CHECK("xyz", ALL_GOOD);
    CHECK("retry", ALL_GOOD);
    CHECK("data: x\r", ALL_GOOD);
}

static void test_bad_streams(void **state)
{
    CHECK("foo: x\n", 3);
    CHECK("data: x\nfoo: y\n", 11);
    CHECK("data: x\r\nfoo\r\n", 12);
    CHECK("data: x\rfoo\n", 11);
    CHECK("datax: 1\n", 5);
    CHECK("dataxy", 5);
    CHECK("retry2: 1\n", 5);
    CHECK("Data: x\n", 4);
    CHECK(" data: x\n", 5);
    CHECK("data : x\n", 5);
    CHECK("dat\n", 3);
    CHECK("data: x\n\nevent: e\nevnt: y\n", 22);
    CHECK("\n\nx\n", 3);
    CHECK("\r\n\r\nidx:", 7);
    CHECK("data: [DONE]\n\nHTTP/1.1 200 OK\r\n", 19);
    /* a byte order mark only at the very start, and only whole */
    CHECK("\xEF\xBB" "data: x\n", 2);
    CHECK("\xEF" "data: x\n", 1);
    CHECK("\xEF\xBB\xEF", 2);
    CHECK("\xBB\xBF" "data\n", 5);
    CHECK("data: x\n\xEF\xBB\xBF" "data: y\n", 13);
    CHECK("\xEF\xBB\xBF\xEF\xBB\xBF" "data\n", 8);
    CHECK("\0data\n", 5);
}

/* Lines as providers send them, and long ones, with the data value's end
 * at every position relative to the feeds. */
static void test_long_lines(void **state)
{
    static char s[3 * 4096];
    for (size_t vlen = 0; vlen < 300; vlen += 7) {
        for (int ending = 0; ending < 3; ending++) {
            const char *eol = ending == 0 ? "\n" : ending == 1 ? "\r" : "\r\n";
            size_t n = 0;
            n += (size_t)sprintf(s + n, "data: ");
            for (size_t i = 0; i < vlen; i++)
                s[n++] = (char)('a' + i % 26);
            n += (size_t)sprintf(s + n, "%s%s", eol, eol);
            n += (size_t)sprintf(s + n, "data:%s%s%s", "{}", eol, eol);
            check_every_split(s, n, ALL_GOOD);
            n += (size_t)sprintf(s + n, "bogus: 1%s", eol);
            check_every_split(s, n, n - 8 - strlen(eol) + 5);
        }
    }
    /* a line of 4 KB with a CR far from an LF, feeds of many sizes */
    size_t n = 0;
    n += (size_t)sprintf(s + n, "data: ");
    while (n < 4000)
        s[n++] = 'x';
    s[n++] = '\r';
    n += (size_t)sprintf(s + n, "data: y\n\n");
    while (n < 8000)
        s[n++] = 'z'; /* a line of z: bad at its sixth byte */
    size_t expect = 4000 + 1 + 9 + 5;
    for (size_t step = 1; step < 700; step += 37) {
        size_t cuts[8192], k = 0;
        for (size_t at = step; at < n; at += step)
            cuts[k++] = at;
        assert_int_equal(feed_new(s, n, cuts, k), expect);
        assert_int_equal(feed_ref(s, n, cuts, k), expect);
    }
}

/* Random streams from pieces that matter to the rules, split at random:
 * the new check and the reference agree on every one. */
static void test_agrees_with_reference(void **state)
{
    static const char *pieces[] = {
        "data", "data:", "data: ", "event", "event:", "id", "id:", "retry", "retry:", ":", " ", "\r", "\n", "\r\n",
        "x",    "dat",   "da",     "ev",    "datax", "\xEF",  "\xBB", "\xBF", "\xEF\xBB\xBF", "\0", "{\"a\":1}",
        "0123456789abcdefghijklmnopqrstuvwxyz0123456789", "\r\r", "\n\n", "\r\n\r\n",
    };
    size_t npieces = sizeof(pieces) / sizeof(pieces[0]);
    uint64_t rng = 12345;
#define NEXT() (rng = rng * 6364136223846793005ULL + 1442695040888963407ULL, (size_t)(rng >> 33))
    static char s[2048];
    size_t cuts[64];
    int bad = 0, good = 0;
    for (int iter = 0; iter < 200000; iter++) {
        size_t n = 0, count = 1 + NEXT() % 24;
        for (size_t k = 0; k < count; k++) {
            /* mostly known-good lines, so that streams get long before a bad byte */
            const char *p;
            size_t plen;
            if (NEXT() % 3 == 0) {
                p = pieces[NEXT() % npieces];
                plen = (p[0] == '\0') ? 1 : strlen(p);
            } else {
                static const char *lines[] = {"data: {\"x\":\"yz\"}\n", "\n", "event: e\r\n", ": c\r", "data:\n"};
                p = lines[NEXT() % 5];
                plen = strlen(p);
            }
            if (n + plen > sizeof(s))
                break;
            memcpy(s + n, p, plen);
            n += plen;
        }
        size_t ncuts = n > 1 ? NEXT() % 6 : 0;
        for (size_t k = 0; k < ncuts; k++)
            cuts[k] = 1 + NEXT() % (n - 1);
        /* ascending, duplicates allowed (an empty feed) */
        for (size_t a = 1; a < ncuts; a++)
            for (size_t b = a; b > 0 && cuts[b - 1] > cuts[b]; b--) {
                size_t t = cuts[b];
                cuts[b] = cuts[b - 1];
                cuts[b - 1] = t;
            }
        size_t mine = feed_new(s, n, cuts, ncuts), theirs = feed_ref(s, n, cuts, ncuts);
        if (mine != theirs)
            fail_msg("disagree (new %zu, reference %zu) at iteration %d on %zu bytes", mine, theirs,
                     iter, n);
        if (theirs == ALL_GOOD)
            good++;
        else
            bad++;
    }
#undef NEXT
    assert_true(good > 20000);
    assert_true(bad > 20000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_streams),
        cmocka_unit_test(test_bad_streams),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_agrees_with_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
