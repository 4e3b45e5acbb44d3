/*
 * test_sse_strict.c — libtelex's strict mode (telex_sse_parser_set_strict),
 * which telex's provider client uses to refuse a body that is not an event
 * stream (upstream/sse_upstream.c).
 *
 * The reference is the line check telex ran before its parser until strict
 * mode replaced it (ref_check below, that check's one-byte-at-a-time loop
 * verbatim on a state of its own): it names the offset of the first byte that
 * shows a line is not a known field, a comment or blank. The strict parser
 * must, for every split of the stream into feeds, report exactly what a
 * lenient parser reports when fed the bytes before that offset, and then
 * TELEX_SSE_EFIELD from the very feed that holds the offset — not earlier,
 * not later, and before any size limit the bytes after it would cross.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "telex/sse.h"

/* ------------------------------------------------------------ the reference */

enum { LINE_START, LINE_NAME, LINE_REST };

static int known_field(const char *name, size_t len)
{
    return (len == 4 && memcmp(name, "data", 4) == 0) || (len == 5 && memcmp(name, "event", 5) == 0) ||
           (len == 2 && memcmp(name, "id", 2) == 0) || (len == 5 && memcmp(name, "retry", 5) == 0);
}

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

/* What a parser reported: its events, and the feed that failed it. */
typedef struct {
    char text[1 << 16];
    size_t len;
    size_t failed_feed; /* SIZE_MAX: none */
    int rc;
} transcript_t;

static int on_event(void *user, const telex_sse_event_t *ev)
{
    transcript_t *t = user;
    int n = snprintf(t->text + t->len, sizeof(t->text) - t->len, "[%.*s|%zu|", (int)ev->type_len, ev->type,
                     ev->data_len);
    assert_true(n > 0 && (size_t)n < sizeof(t->text) - t->len);
    t->len += (size_t)n;
    assert_true(ev->data_len + 1 < sizeof(t->text) - t->len);
    memcpy(t->text + t->len, ev->data, ev->data_len);
    t->len += ev->data_len;
    t->text[t->len++] = ']';
    return 0;
}

/* Feeds s[0..n) cut at the given offsets (ascending, within [0, n]) to a
 * parser (strict or not), each feed in a buffer of its own size (ASan sees a
 * read past it), up to `stop_at` bytes; stops at the first failing feed. */
static void run(transcript_t *t, size_t max, int strict, const char *s, size_t n, const size_t *cuts, size_t ncuts,
                size_t stop_at)
{
    telex_sse_callbacks_t cb = {.on_event = on_event};
    telex_sse_parser_t *p = telex_sse_parser_new(max, &cb, t);
    assert_non_null(p);
    assert_int_equal(telex_sse_parser_set_strict(p, strict), 0);
    t->len = 0;
    t->failed_feed = SIZE_MAX;
    t->rc = 0;
    size_t from = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t to = k < ncuts ? cuts[k] : n;
        if (to > stop_at)
            to = stop_at < from ? from : stop_at;
        char *feed = malloc(to > from ? to - from : 1);
        assert_non_null(feed);
        memcpy(feed, s + from, to - from);
        int rc = telex_sse_parser_feed(p, feed, to - from);
        free(feed);
        if (rc != 0) {
            t->failed_feed = k;
            t->rc = rc;
            break;
        }
        from = to;
    }
    telex_sse_parser_free(p);
}

/* The offset of the first bad byte by the reference rules, or ALL_GOOD. */
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

/* The index of the feed that holds byte `at`. */
static size_t feed_of(size_t at, const size_t *cuts, size_t ncuts)
{
    size_t k = 0;
    while (k < ncuts && cuts[k] <= at)
        k++;
    return k;
}

/* The strict parser against the model: a lenient parser fed the bytes before
 * the reference's bad byte, then EFIELD in the feed that holds that byte.
 * Returns the reference's offset. */
static size_t check_split(size_t max, const char *s, size_t n, const size_t *cuts, size_t ncuts)
{
    static transcript_t strict, model;
    size_t bad = feed_ref(s, n, cuts, ncuts);
    run(&model, max, 0, s, n, cuts, ncuts, bad == ALL_GOOD ? n : bad);
    if (model.failed_feed == SIZE_MAX && bad != ALL_GOOD) {
        model.failed_feed = feed_of(bad, cuts, ncuts);
        model.rc = TELEX_SSE_EFIELD;
    }
    run(&strict, max, 1, s, n, cuts, ncuts, n);
    if (strict.rc != model.rc || strict.failed_feed != model.failed_feed || strict.len != model.len ||
        memcmp(strict.text, model.text, model.len) != 0)
        fail_msg("\"%.*s\" (%zu feeds, max %zu): strict rc %d in feed %zd, %zu bytes of events; expected rc %d in "
                 "feed %zd, %zu bytes",
                 (int)n, s, ncuts + 1, max, strict.rc, (ssize_t)strict.failed_feed, strict.len, model.rc,
                 (ssize_t)model.failed_feed, model.len);
    return bad;
}

/* One feed, every split in two, every split in three around it, and one byte
 * per feed: the strict parser follows the model, and the reference finds
 * its bad byte at `expect` (so the literals below document the rules). */
static void check_every_split(const char *s, size_t n, size_t expect)
{
    size_t got = check_split(0, s, n, NULL, 0);
    if (got != expect)
        fail_msg("\"%.*s\": the reference says %zu, expected %zu", (int)n, s, got, expect);
    for (size_t a = 1; a < n; a++) {
        size_t cut[1] = {a};
        assert_int_equal(check_split(0, s, n, cut, 1), expect);
        for (size_t b = a + 1; b < n && b < a + 4; b++) {
            size_t cuts[2] = {a, b};
            assert_int_equal(check_split(0, s, n, cuts, 2), expect);
        }
    }
    if (n > 1) {
        size_t *cuts = malloc((n - 1) * sizeof(*cuts));
        assert_non_null(cuts);
        for (size_t i = 0; i + 1 < n; i++)
            cuts[i] = i + 1;
        assert_int_equal(check_split(0, s, n, cuts, n - 1), expect);
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
        assert_int_equal(check_split(0, s, n, cuts, k), expect);
        assert_int_equal(check_split(4096, s, n, cuts, k), expect);
    }
}

/* Random streams from pieces that matter to the rules, split at random,
 * with limits from 6 bytes up: the strict parser follows the model on
 * every one. */
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
        /* small limits too: the name's verdict comes before the size limit's */
        static const size_t maxes[] = {0, 6, 7, 12, 40};
        size_t theirs = check_split(maxes[iter % 5], s, n, cuts, ncuts);
        if (theirs == ALL_GOOD)
            good++;
        else
            bad++;
    }
#undef NEXT
    assert_true(good > 20000);
    assert_true(bad > 20000);
}

/* Strict mode needs a limit of at least 6 bytes; reset keeps it. */
static void test_set_strict(void **state)
{
    telex_sse_callbacks_t cb = {0};
    telex_sse_parser_t *p = telex_sse_parser_new(5, &cb, NULL);
    assert_non_null(p);
    assert_int_equal(telex_sse_parser_set_strict(p, 1), TELEX_SSE_EINVAL);
    assert_int_equal(telex_sse_parser_set_strict(p, 0), 0);
    assert_int_equal(telex_sse_parser_feed(p, "foo\n", 4), 0); /* lenient: ignored */
    telex_sse_parser_free(p);
    p = telex_sse_parser_new(6, &cb, NULL);
    assert_int_equal(telex_sse_parser_set_strict(p, 1), 0);
    assert_int_equal(telex_sse_parser_feed(p, "foo:", 4), TELEX_SSE_EFIELD);
    assert_int_equal(telex_sse_parser_feed(p, "\n", 1), TELEX_SSE_EFIELD); /* failed until reset */
    telex_sse_parser_reset(p);
    assert_int_equal(telex_sse_parser_feed(p, "id: 1\n", 6), 0);
    assert_int_equal(telex_sse_parser_feed(p, "x\n", 2), TELEX_SSE_EFIELD); /* still strict */
    assert_string_equal(telex_sse_strerror(TELEX_SSE_EFIELD),
                        "a line that is not an event-stream field, comment or blank line (strict mode)");
    telex_sse_parser_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_strict),
        cmocka_unit_test(test_good_streams),
        cmocka_unit_test(test_bad_streams),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_agrees_with_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
