/*
 * test_sse_parser.c — the libtelex parser against the WHATWG event-stream
 * rules, one test per rule.
 *
 * Every input goes through check(), which feeds it in one piece, split in
 * two at every byte boundary, one byte at a time (with and without empty
 * feeds in between), and with callbacks that stop the parser at every call,
 * and asserts that each way yields exactly the expected transcript. The
 * transcript is one line per callback:
 *
 *     E <type>|<data>|<id>     an event
 *     R <milliseconds>         a valid retry field
 *     C <text>                 a comment
 *     !toobig                  the feed failed (TELEX_SSE_ETOOBIG)
 *
 * with \n, \r, \0, \\, \| and \xHH escapes for bytes that would be ambiguous.
 *
 * check() does all of that twice: with the parser as it starts, and in
 * in-place mode (telex_sse_parser_set_in_place), which must give the same
 * transcripts; test_in_place checks which events it reports in place.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "telex/sse.h"

/* ------------------------------------------------------------ transcript */

struct rec {
    char *s;
    size_t len, cap;
    unsigned stop_every; /* a callback returns 1 on every n-th call; 0 never */
    unsigned calls;
};

static void rec_put(struct rec *r, const char *s, size_t n) {
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->len + n + 1) cap *= 2;
        r->s = realloc(r->s, cap);
        assert_non_null(r->s);
        r->cap = cap;
    }
    memcpy(r->s + r->len, s, n);
    r->len += n;
    r->s[r->len] = '\0';
}

static void rec_str(struct rec *r, const char *s) {
    rec_put(r, s, strlen(s));
}

static void rec_escaped(struct rec *r, const char *s, size_t n) {
    char tmp[8];
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '\n': rec_str(r, "\\n"); break;
        case '\r': rec_str(r, "\\r"); break;
        case '\0': rec_str(r, "\\0"); break;
        case '\\': rec_str(r, "\\\\"); break;
        case '|': rec_str(r, "\\|"); break;
        default:
            if (c < 0x20 || c >= 0x7f) {
                snprintf(tmp, sizeof(tmp), "\\x%02X", c);
                rec_str(r, tmp);
            } else {
                rec_put(r, (const char *)&c, 1);
            }
        }
    }
}

static int rec_stop(struct rec *r) {
    r->calls++;
    return r->stop_every && r->calls % r->stop_every == 0;
}

static int in_place_mode; /* run() sets the parsers it makes in-place */

static int on_event(void *user, const telex_sse_event_t *ev) {
    struct rec *r = user;
    /* The strings are NUL-terminated as the header promises; in-place data
     * is followed by its line's end instead. */
    assert_int_equal(ev->type[ev->type_len], '\0');
    char after = ev->data[ev->data_len];
    assert_true(after == '\0' || (in_place_mode && (after == '\n' || after == '\r')));
    assert_int_equal(ev->id[ev->id_len], '\0');
    rec_str(r, "E ");
    rec_escaped(r, ev->type, ev->type_len);
    rec_str(r, "|");
    rec_escaped(r, ev->data, ev->data_len);
    rec_str(r, "|");
    rec_escaped(r, ev->id, ev->id_len);
    rec_str(r, "\n");
    return rec_stop(r);
}

static int on_retry(void *user, uint64_t ms) {
    struct rec *r = user;
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "R %llu\n", (unsigned long long)ms);
    rec_str(r, tmp);
    return rec_stop(r);
}

static int on_comment(void *user, const char *text, size_t len) {
    struct rec *r = user;
    assert_int_equal(text[len], '\0');
    rec_str(r, "C ");
    rec_escaped(r, text, len);
    rec_str(r, "\n");
    return rec_stop(r);
}

static const telex_sse_callbacks_t recording = {on_event, on_retry, on_comment};

/* ------------------------------------------------------------- feeding */

enum feed_mode {
    FEED_ONCE,        /* all bytes in one feed */
    FEED_SPLIT,       /* two feeds, split at byte `arg` */
    FEED_BYTES,       /* one byte per feed */
    FEED_BYTES_EMPTY, /* one byte per feed, with empty feeds in between */
    FEED_STOPPING,    /* feeds of `arg` bytes; every callback stops the parser */
};

/* Feeds one piece and notes the first hard error; once failed, the parser
 * must keep returning that error. */
static void feed_piece(telex_sse_parser_t *p, const char *in, size_t len, int *err) {
    int rc = telex_sse_parser_feed(p, len ? in : NULL, len);
    if (*err) {
        assert_int_equal(rc, *err);
        return;
    }
    if (rc == TELEX_SSE_ESTOPPED) return;
    assert_true(rc == TELEX_SSE_OK || rc == TELEX_SSE_ETOOBIG);
    *err = rc;
}

/* Feeds input as `mode` says and returns the transcript (caller frees). */
static char *run(const char *in, size_t len, size_t max, enum feed_mode mode, size_t arg) {
    struct rec r = {0};
    telex_sse_parser_t *p = telex_sse_parser_new(max, &recording, &r);
    assert_non_null(p);
    assert_int_equal(telex_sse_parser_set_in_place(p, in_place_mode), 0);
    int err = 0;
    switch (mode) {
    case FEED_ONCE: feed_piece(p, in, len, &err); break;
    case FEED_SPLIT:
        feed_piece(p, in, arg, &err);
        feed_piece(p, in + arg, len - arg, &err);
        break;
    case FEED_BYTES:
    case FEED_BYTES_EMPTY:
        for (size_t i = 0; i < len; i++) {
            feed_piece(p, in + i, 1, &err);
            if (mode == FEED_BYTES_EMPTY) feed_piece(p, in + i, 0, &err);
        }
        break;
    case FEED_STOPPING:
        r.stop_every = 1;
        for (size_t i = 0; i < len; i += arg) feed_piece(p, in + i, len - i < arg ? len - i : arg, &err);
        /* Drain what the stops left behind; each drain runs at least one callback. */
        for (size_t guard = 0; !err; guard++) {
            assert_true(guard <= len + 1);
            int rc = telex_sse_parser_feed(p, NULL, 0);
            if (rc != TELEX_SSE_ESTOPPED) {
                if (rc) feed_piece(p, NULL, 0, &err);
                break;
            }
        }
        break;
    }
    if (err == TELEX_SSE_ETOOBIG) rec_str(&r, "!toobig\n");
    telex_sse_parser_free(p);
    if (r.s == NULL) rec_str(&r, "");
    return r.s;
}

/* Asserts that every way of feeding `in` gives the transcript `want`. */
static void check_max_once(const char *in, size_t len, size_t max, const char *want);

static void check_max(const char *in, size_t len, size_t max, const char *want) {
    for (in_place_mode = 0; in_place_mode <= 1; in_place_mode++) check_max_once(in, len, max, want);
    in_place_mode = 0;
}

static void check_max_once(const char *in, size_t len, size_t max, const char *want) {
    char *got = run(in, len, max, FEED_ONCE, 0);
    assert_string_equal(got, want);
    free(got);
    for (size_t k = 0; k <= len; k++) {
        got = run(in, len, max, FEED_SPLIT, k);
        if (strcmp(got, want) != 0) print_error("split at byte %zu\n", k);
        assert_string_equal(got, want);
        free(got);
    }
    got = run(in, len, max, FEED_BYTES, 0);
    assert_string_equal(got, want);
    free(got);
    got = run(in, len, max, FEED_BYTES_EMPTY, 0);
    assert_string_equal(got, want);
    free(got);
    static const size_t chunk[] = {1, 2, 3, 7, 64};
    for (size_t i = 0; i < sizeof(chunk) / sizeof(chunk[0]); i++) {
        got = run(in, len, max, FEED_STOPPING, chunk[i]);
        if (strcmp(got, want) != 0) print_error("stopping, chunks of %zu\n", chunk[i]);
        assert_string_equal(got, want);
        free(got);
    }
}

/* String literals may contain \0, so their length comes from sizeof. */
#define CHECK(lit, want) check_max((lit), sizeof(lit) - 1, 0, (want))
#define CHECK_MAX(lit, max, want) check_max((lit), sizeof(lit) - 1, (max), (want))
#define FEED(p, lit) telex_sse_parser_feed((p), (lit), sizeof(lit) - 1)

/* ---------------------------------------------------------------- rules */

static void test_simple_event(void **state) {
    (void)state;
    CHECK("data: hello\n\n", "E message|hello|\n");
    CHECK("data: a\n\ndata: b\n\n", "E message|a|\nE message|b|\n");
    CHECK("", "");
}

static void test_data_lines_joined_with_lf(void **state) {
    (void)state;
    CHECK("data: a\ndata: b\ndata: c\n\n", "E message|a\\nb\\nc|\n");
    /* Only the final LF is removed. */
    CHECK("data: a\ndata\n\n", "E message|a\\n|\n");
    CHECK("data\ndata\n\n", "E message|\\n|\n");
    CHECK("data: {\"x\":1}\n\n", "E message|{\"x\":1}|\n");
}

static void test_empty_data_field_dispatches(void **state) {
    (void)state;
    CHECK("data\n\n", "E message||\n");
    CHECK("data:\n\n", "E message||\n");
    CHECK("data: \n\n", "E message||\n");
}

static void test_no_data_no_dispatch(void **state) {
    (void)state;
    CHECK("event: foo\n\n", "");
    CHECK("id: 1\n\n", "");
    CHECK("\n\n\n", "");
    /* The type buffer is cleared even though nothing was dispatched. */
    CHECK("event: foo\n\ndata: x\n\n", "E message|x|\n");
}

static void test_one_leading_space_stripped(void **state) {
    (void)state;
    CHECK("data:x\n\n", "E message|x|\n");
    CHECK("data: x\n\n", "E message|x|\n");
    CHECK("data:  x\n\n", "E message| x|\n");
    CHECK("data:   x \n\n", "E message|  x |\n");
    CHECK("data:\tx\n\n", "E message|\\x09x|\n");
    CHECK("event:  t\ndata: x\n\n", "E  t|x|\n");
}

static void test_colon_inside_value(void **state) {
    (void)state;
    CHECK("data: a:b: c\n\n", "E message|a:b: c|\n");
    CHECK("data::\n\n", "E message|:|\n");
}

static void test_field_without_colon(void **state) {
    (void)state;
    /* The whole line is the field name and the value is empty. */
    CHECK("data\n\n", "E message||\n");
    CHECK("event\ndata: x\n\n", "E message|x|\n");
    CHECK("id: 5\ndata: a\n\nid\ndata: b\n\n", "E message|a|5\nE message|b|\n");
    CHECK("data x\n\n", "");
}

static void test_line_endings(void **state) {
    (void)state;
    CHECK("data: a\r\n\r\n", "E message|a|\n");
    CHECK("data: a\r\r", "E message|a|\n");
    CHECK("data: a\n\r", "E message|a|\n");
    CHECK("data: a\r\n\n", "E message|a|\n");
    CHECK("data: a\ndata: b\rdata: c\r\ndata: d\n\r\n", "E message|a\\nb\\nc\\nd|\n");
    /* CR LF is one line end, LF CR is two. */
    CHECK("data: a\r\ndata: b\n\rdata: c\n\n", "E message|a\\nb|\nE message|c|\n");
    CHECK("data: a\r\r\r\ndata: b\r\n\r\n", "E message|a|\nE message|b|\n");
}

static void test_cr_lf_across_feeds(void **state) {
    (void)state;
    struct rec r = {0};
    telex_sse_parser_t *p = telex_sse_parser_new(0, &recording, &r);
    assert_non_null(p);
    assert_int_equal(FEED(p, "data: a\r"), 0);
    assert_null(r.s);
    /* This LF belongs to the CR above: it must not end an (empty) line. */
    assert_int_equal(FEED(p, "\n"), 0);
    assert_null(r.s);
    assert_int_equal(telex_sse_parser_feed(p, NULL, 0), 0); /* empty feeds change nothing */
    assert_int_equal(FEED(p, "\r"), 0);
    assert_string_equal(r.s, "E message|a|\n");
    assert_int_equal(FEED(p, "\ndata: b\r"), 0);
    assert_int_equal(FEED(p, "\r"), 0);
    assert_string_equal(r.s, "E message|a|\nE message|b|\n");
    telex_sse_parser_free(p);
    free(r.s);
}

static void test_comments(void **state) {
    (void)state;
    CHECK(": hello\n", "C  hello\n");
    CHECK(":\n", "C \n");
    CHECK("::x\n", "C :x\n");
    CHECK(":ping\r\n", "C ping\n");
    /* A comment does not end or disturb the event around it. */
    CHECK("data: a\n: c\ndata: b\n\n", "C  c\nE message|a\\nb|\n");
    CHECK(": \0x\n", "C  \\0x\n");
}

static void test_event_type(void **state) {
    (void)state;
    CHECK("event: add\ndata: x\n\n", "E add|x|\n");
    CHECK("event:\ndata: x\n\n", "E message|x|\n");
    CHECK("event: a\nevent: b\ndata: x\n\n", "E b|x|\n");
    CHECK("event: a\ndata: x\nevent\n\n", "E message|x|\n");
    /* The type does not persist to the next event. */
    CHECK("event: add\ndata: x\n\ndata: y\n\n", "E add|x|\nE message|y|\n");
}

static void test_id_persists(void **state) {
    (void)state;
    CHECK("id: 1\ndata: a\n\ndata: b\n\n", "E message|a|1\nE message|b|1\n");
    CHECK("id: 7\n\ndata: a\n\n", "E message|a|7\n");
    CHECK("data: a\nid: 3\n\n", "E message|a|3\n");
    CHECK("id: 1\ndata: a\n\nid: 2\ndata: b\n\n", "E message|a|1\nE message|b|2\n");
    /* An empty id resets it. */
    CHECK("id: 1\ndata: a\n\nid:\ndata: b\n\n", "E message|a|1\nE message|b|\n");
    CHECK("id: 1\ndata: a\n\nid: \ndata: b\n\n", "E message|a|1\nE message|b|\n");
    CHECK("id:  x\ndata: a\n\n", "E message|a| x\n");
}

static void test_id_with_nul_ignored(void **state) {
    (void)state;
    CHECK("id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n", "E message|a|1\nE message|b|1\n");
    CHECK("id: \0\ndata: b\n\n", "E message|b|\n");
}

static void test_retry(void **state) {
    (void)state;
    CHECK("retry: 3000\n", "R 3000\n");
    CHECK("retry:0\n", "R 0\n");
    CHECK("retry: 007\n", "R 7\n");
    CHECK("retry: 18446744073709551615\n", "R 18446744073709551615\n");
    /* Not digits only, empty, or too big for 64 bits: ignored. */
    CHECK("retry: 30a\n", "");
    CHECK("retry: -1\n", "");
    CHECK("retry: +1\n", "");
    CHECK("retry: 1.5\n", "");
    CHECK("retry:  300\n", "");
    CHECK("retry: 300 \n", "");
    CHECK("retry:\n", "");
    CHECK("retry\n", "");
    CHECK("retry: 18446744073709551616\n", "");
    CHECK("retry: 99999999999999999999\n", "");
    /* retry takes effect at once and does not affect the event. */
    CHECK("data: a\nretry: 5\n\n", "R 5\nE message|a|\n");
}

static void test_unknown_and_case_sensitive_fields(void **state) {
    (void)state;
    CHECK("foo: bar\ndata: x\n\n", "E message|x|\n");
    CHECK("Data: x\n\n", "");
    CHECK("DATA: x\n\n", "");
    CHECK("data : x\n\n", "");
    CHECK(" data: x\n\n", "");
    CHECK("Event: t\ndata: x\n\n", "E message|x|\n");
    CHECK("ID: 1\ndata: x\n\n", "E message|x|\n");
    CHECK("Retry: 1\n", "");
    CHECK("dat: x\nda: y\ndataa: z\n\n", "");
}

static void test_unterminated_final_event(void **state) {
    (void)state;
    CHECK("data: a", "");
    CHECK("data: a\n", "");
    CHECK("data: a\r", "");
    CHECK("data: a\r\n", "");
    CHECK("data: a\n\ndata: b\n", "E message|a|\n");
    CHECK("data: a\n\ndata: b", "E message|a|\n");
}

static void test_bom(void **state) {
    (void)state;
    CHECK("\xEF\xBB\xBF" "data: a\n\n", "E message|a|\n");
    CHECK("\xEF\xBB\xBF", "");
    CHECK("\xEF\xBB\xBF\n" "data: a\n\n", "E message|a|\n");
    /* Only one BOM: a second one is part of the first field name. */
    CHECK("\xEF\xBB\xBF\xEF\xBB\xBF" "data: a\n\n", "");
    CHECK("\xEF\xBB\xBF\xEF\xBB\xBF" "data: a\n\ndata: b\n\n", "E message|b|\n");
    /* Only at the start of the stream. */
    CHECK("data: a\n\n\xEF\xBB\xBF" "data: b\n\n", "E message|a|\n");
    CHECK("\n\xEF\xBB\xBF" "data: b\n\n", "");
    /* Not a BOM after all: its first bytes are ordinary bytes of the line. */
    CHECK("\xEF\xBB" "data: a\n\n", "");
    CHECK("\xEF\n" "data: a\n\n", "E message|a|\n");
    CHECK("\xEF\xBB:x\n", "");
    CHECK(":\xEF\xBB\n", "C \\xEF\\xBB\n");
    CHECK("\xEF\xBB\xBE:x\n", "");
    CHECK("\xEF\xBB\xBF:x\n", "C x\n");
    CHECK("\xEF" "data: a\r\n\r\n", "");
    /* In data, BOM bytes are just bytes. */
    CHECK("data: \xEF\xBB\xBFx\n\n", "E message|\\xEF\\xBB\\xBFx|\n");
}

static void test_bytes_pass_through(void **state) {
    (void)state;
    /* The parser is byte oriented: NUL and invalid UTF-8 reach the caller. */
    CHECK("data: a\0b\n\n", "E message|a\\0b|\n");
    CHECK("data: \xFF\xFE\xC3\n\n", "E message|\\xFF\\xFE\\xC3|\n");
    CHECK("data: \xC3\xA9t\xC3\xA9\n\n", "E message|\\xC3\\xA9t\\xC3\\xA9|\n");
    CHECK("event: \0\ndata: x\n\n", "E \\0|x|\n");
}

static void test_whatwg_examples(void **state) {
    (void)state;
    /* The examples of the HTML standard's server-sent events section. */
    CHECK("data: This is the first message.\n\n"
          "data: This is the second message, it\n"
          "data: has two lines.\n\n"
          "data: This is the third message.\n",
          "E message|This is the first message.|\n"
          "E message|This is the second message, it\\nhas two lines.|\n");
    CHECK("event: add\ndata: 73857293\n\n"
          "event: remove\ndata: 2153\n\n"
          "event: add\ndata: 113411\n\n",
          "E add|73857293|\nE remove|2153|\nE add|113411|\n");
    CHECK("data: YHOO\ndata: +2\ndata: 10\n\n", "E message|YHOO\\n+2\\n10|\n");
    CHECK(": test stream\n\ndata: first event\nid: 1\n\n"
          "data:second event\nid\n\ndata:  third event\n",
          "C  test stream\nE message|first event|1\nE message|second event|\n");
    CHECK("data\n\ndata\ndata\n\ndata:", "E message||\nE message|\\n|\n");
    CHECK("data:test\n\ndata: test\n\n", "E message|test|\nE message|test|\n");
}

/* --------------------------------------------------------------- limits */

static void test_limit_line(void **state) {
    (void)state;
    /* A line of exactly max bytes is fine; one byte more is not. */
    CHECK_MAX("data: 0123456789\n\n", 16, "E message|0123456789|\n");
    CHECK_MAX("data: 01234567890\n\n", 16, "!toobig\n");
    CHECK_MAX("data: a\n\ndata: 01234567890\n\n", 16, "E message|a|\n!toobig\n");
    CHECK_MAX(":0123456789abcdef\n", 16, "!toobig\n");
    CHECK_MAX("x0123456789abcdef\n", 16, "!toobig\n");
    /* An over-long line fails even before its end arrives. */
    CHECK_MAX("data: a\n\n:0123456789abcdef", 16, "E message|a|\n!toobig\n");
    CHECK_MAX("\xEF\xBB\xBF" ":0123456789abcde\n", 16, "C 0123456789abcde\n");
}

static void test_limit_event(void **state) {
    (void)state;
    /* data (with its LFs), type and id together stay within max. */
    CHECK_MAX("data: 0123456\ndata: 012345\n\n", 16, "E message|0123456\\n012345|\n");
    CHECK_MAX("data: 0123456\ndata: 0123456\n\n", 16, "E message|0123456\\n0123456|\n");
    CHECK_MAX("data: 01234567\ndata: 0123456\n\n", 16, "!toobig\n");
    CHECK_MAX("id: 01234567\ndata: 0123456\n\n", 16, "E message|0123456|01234567\n");
    CHECK_MAX("id: 012345678\ndata: 0123456\n\n", 16, "!toobig\n");
    CHECK_MAX("data: 0123456\nid: 012345678\n\n", 16, "!toobig\n");
    CHECK_MAX("event: 012345678\ndata: 0123456\n\n", 16, "!toobig\n");
    CHECK_MAX("event: 01234567\ndata: 012345\n\n", 16, "E 01234567|012345|\n");
    /* The id persists, so it counts towards every later event too. */
    CHECK_MAX("id: 0123456789\ndata: a\n\ndata: 012345\n\n", 16, "E message|a|0123456789\n!toobig\n");
    /* A type replaced by a shorter one frees its room. */
    CHECK_MAX("event: 012345678\nevent: x\ndata: 012345678\n\n", 16, "E x|012345678|\n");
}

/* Feeds `len` bytes of `in` in `chunk`-sized feeds and returns the 1-based
 * number of the byte whose feed first failed (0 if none), checking that
 * later feeds fail the same way. */
static size_t feed_until_error(telex_sse_parser_t *p, const char *in, size_t len, size_t chunk, int *err) {
    size_t failed_at = 0;
    *err = 0;
    for (size_t i = 0; i < len; i += chunk) {
        size_t n = len - i < chunk ? len - i : chunk;
        int rc = telex_sse_parser_feed(p, in + i, n);
        if (*err) {
            assert_int_equal(rc, *err);
        } else if (rc) {
            *err = rc;
            failed_at = i + n;
        }
    }
    return failed_at;
}

static void test_limit_giant_inputs(void **state) {
    (void)state;
    const size_t max = TELEX_SSE_DEFAULT_MAX_EVENT_SIZE;
    const size_t len = 2 * max + 64;
    char *in = malloc(len);
    assert_non_null(in);
    struct rec r = {0};
    telex_sse_parser_t *p = telex_sse_parser_new(0, &recording, &r);
    assert_non_null(p);
    int err;

    /* One giant line without a newline: fails when it crosses the limit. */
    memset(in, 'a', len);
    assert_int_equal(feed_until_error(p, in, len, 1, &err), max + 1);
    assert_int_equal(err, TELEX_SSE_ETOOBIG);
    telex_sse_parser_reset(p);
    assert_int_equal(feed_until_error(p, in, len, 65536, &err), 1114112); /* the 17th 64 KiB feed */
    assert_int_equal(err, TELEX_SSE_ETOOBIG);
    telex_sse_parser_reset(p);
    assert_int_equal(telex_sse_parser_feed(p, in, len), TELEX_SSE_ETOOBIG);

    /* A giant comment line. */
    telex_sse_parser_reset(p);
    in[0] = ':';
    assert_int_equal(feed_until_error(p, in, len, 4096, &err), max + 4096);
    assert_int_equal(err, TELEX_SSE_ETOOBIG);

    /* Giant data in one line, with its line end. */
    telex_sse_parser_reset(p);
    memcpy(in, "data: ", 6);
    memcpy(in + len - 2, "\n\n", 2);
    assert_int_equal(telex_sse_parser_feed(p, in, len), TELEX_SSE_ETOOBIG);
    assert_int_equal(FEED(p, "data: x\n\n"), TELEX_SSE_ETOOBIG);

    /* Giant data from lines that are each small enough. */
    telex_sse_parser_reset(p);
    size_t line = max / 4 * 3;
    memset(in, 'a', len);
    memcpy(in, "data: ", 6);
    in[line] = '\n';
    memcpy(in + line + 1, "data: ", 6);
    in[2 * line + 1] = '\n';
    in[2 * line + 2] = '\n';
    assert_int_equal(telex_sse_parser_feed(p, in, line + 1), 0);
    assert_int_equal(telex_sse_parser_feed(p, in + line + 1, line + 2), TELEX_SSE_ETOOBIG);
    assert_null(r.s);

    /* Exactly at the limit: a max-byte line whose data fills the buffer. */
    telex_sse_parser_reset(p);
    memset(in, 'x', max + 2);
    memcpy(in, "data: ", 6);
    in[max] = '\n';
    in[max + 1] = '\n';
    assert_int_equal(feed_until_error(p, in, max + 2, 1000, &err), 0);
    assert_non_null(r.s);
    assert_int_equal(strlen(r.s), strlen("E message||\n") + (max - 6));

    /* After reset a failed parser works again. */
    free(r.s);
    r = (struct rec){0};
    telex_sse_parser_reset(p);
    assert_int_equal(FEED(p, "data: ok\n\n"), 0);
    assert_string_equal(r.s, "E message|ok|\n");

    telex_sse_parser_free(p);
    free(r.s);
    free(in);
}

static int count_event(void *user, const telex_sse_event_t *ev) {
    size_t *n = user;
    *n += ev->data_len;
    return 0;
}

/* The linearity tests take milliseconds; a quadratic parser takes minutes
 * to hours. The watchdog turns that into a failure (SIGALRM kills the test). */
enum { WATCHDOG_SECONDS = 60 };

static void test_one_event_in_tiny_feeds_is_linear(void **state) {
    (void)state;
    alarm(WATCHDOG_SECONDS);
    /* A nearly max-size event arriving a byte at a time, as a slow peer
     * could send it. A parser that rescans buffered bytes on every feed does
     * ~10^12 steps here and never finishes; a linear one takes milliseconds. */
    const size_t n = TELEX_SSE_DEFAULT_MAX_EVENT_SIZE - 16;
    char *in = malloc(n + 8);
    assert_non_null(in);
    memset(in, 'y', n + 8);
    memcpy(in, "data: ", 6);
    memcpy(in + n, "\r\n\r\n", 4);
    size_t got = 0;
    telex_sse_callbacks_t cb = {count_event, NULL, NULL};
    telex_sse_parser_t *p = telex_sse_parser_new(0, &cb, &got);
    assert_non_null(p);
    for (size_t i = 0; i < n + 4; i++) assert_int_equal(telex_sse_parser_feed(p, in + i, 1), 0);
    assert_int_equal(got, n - 6);
    /* Many small lines, a byte at a time, too. */
    for (size_t i = 0; i + 8 <= n; i += 8) memcpy(in + i, "data: z\n", 8);
    got = 0;
    for (size_t i = 0; i < n - n % 8; i++) assert_int_equal(telex_sse_parser_feed(p, in + i, 1), 0);
    assert_int_equal(FEED(p, "\n"), 0);
    assert_int_equal(got, (n / 8) * 2 - 1);
    telex_sse_parser_free(p);
    free(in);
    alarm(0);
}

/* ------------------------------------------------------ stop and reset */

static int count_and_stop(void *user, const telex_sse_event_t *ev) {
    size_t *n = user;
    (*n)++;
    (void)ev;
    return 1;
}

static void test_stopping_at_every_event_is_linear(void **state) {
    (void)state;
    alarm(WATCHDOG_SECONDS);
    /* 8 MiB of tiny events in one feed, a callback stopping at each one, and
     * a drain per event: if every drain searched the rest of the held bytes
     * for CR or LF again, this would scan ~10^12 bytes (an hour). */
    static const char *const shapes[] = {"data: x\n\n", "data: x\r\r", "data: x\r\n\r\n"};
    const size_t len = 8 << 20;
    char *in = malloc(len);
    assert_non_null(in);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        size_t n = strlen(shapes[s]), events = len / n;
        for (size_t i = 0; i < events; i++) memcpy(in + i * n, shapes[s], n);
        size_t got = 0;
        telex_sse_callbacks_t cb = {count_and_stop, NULL, NULL};
        telex_sse_parser_t *p = telex_sse_parser_new(0, &cb, &got);
        assert_non_null(p);
        int rc = telex_sse_parser_feed(p, in, events * n);
        while (rc == TELEX_SSE_ESTOPPED) rc = telex_sse_parser_feed(p, NULL, 0);
        assert_int_equal(rc, 0);
        assert_int_equal(got, events);
        telex_sse_parser_free(p);
    }
    free(in);
    alarm(0);
}



static void test_callback_stops_feed(void **state) {
    (void)state;
    struct rec r = {0};
    r.stop_every = 1;
    telex_sse_parser_t *p = telex_sse_parser_new(0, &recording, &r);
    assert_non_null(p);
    const char *in = "data: a\n\n: c\nretry: 5\ndata: b\n\n";
    assert_int_equal(telex_sse_parser_feed(p, in, strlen(in)), TELEX_SSE_ESTOPPED);
    assert_string_equal(r.s, "E message|a|\n");
    /* Feeding again continues after the stopping line: nothing is lost. */
    assert_int_equal(telex_sse_parser_feed(p, NULL, 0), TELEX_SSE_ESTOPPED);
    assert_string_equal(r.s, "E message|a|\nC  c\n");
    assert_int_equal(FEED(p, "data: d\n"), TELEX_SSE_ESTOPPED);
    assert_string_equal(r.s, "E message|a|\nC  c\nR 5\n");
    assert_int_equal(FEED(p, "\n"), TELEX_SSE_ESTOPPED);
    assert_string_equal(r.s, "E message|a|\nC  c\nR 5\nE message|b|\n");
    r.stop_every = 0;
    assert_int_equal(telex_sse_parser_feed(p, NULL, 0), 0);
    assert_string_equal(r.s, "E message|a|\nC  c\nR 5\nE message|b|\nE message|d|\n");
    assert_int_equal(FEED(p, "data: e\n\n"), 0);
    assert_string_equal(r.s, "E message|a|\nC  c\nR 5\nE message|b|\nE message|d|\nE message|e|\n");

    /* A stop on the last line of a feed leaves nothing behind. */
    free(r.s);
    r = (struct rec){0};
    r.stop_every = 1;
    assert_int_equal(FEED(p, "data: f\n\n"), TELEX_SSE_ESTOPPED);
    assert_int_equal(telex_sse_parser_feed(p, NULL, 0), 0);
    assert_string_equal(r.s, "E message|f|\n");

    /* Reset forgets held bytes. */
    assert_int_equal(FEED(p, "data: g\n\ndata: h\n\n"), TELEX_SSE_ESTOPPED);
    telex_sse_parser_reset(p);
    assert_int_equal(telex_sse_parser_feed(p, NULL, 0), 0);
    assert_string_equal(r.s, "E message|f|\nE message|g|\n");
    telex_sse_parser_free(p);
    free(r.s);
}

static void test_reset(void **state) {
    (void)state;
    struct rec r = {0};
    telex_sse_parser_t *p = telex_sse_parser_new(16, &recording, &r);
    assert_non_null(p);
    /* Reset drops the pending line, data, type and last event id... */
    assert_int_equal(FEED(p, "id: 1\nevent: t\ndata: a\ndata: par"), 0);
    telex_sse_parser_reset(p);
    assert_int_equal(FEED(p, "tial\n\ndata: b\n\n"), 0);
    assert_string_equal(r.s, "E message|b|\n");
    /* ...a CR waiting for its LF... */
    assert_int_equal(FEED(p, "data: c\r"), 0);
    telex_sse_parser_reset(p);
    assert_int_equal(FEED(p, "\ndata: d\n\n"), 0);
    assert_string_equal(r.s, "E message|b|\nE message|d|\n");
    /* ...and a failure; and a new stream may start with a BOM again. */
    assert_int_equal(FEED(p, "data: 0123456789abcdef\n"), TELEX_SSE_ETOOBIG);
    assert_int_equal(FEED(p, "\n"), TELEX_SSE_ETOOBIG);
    assert_int_equal(telex_sse_parser_set_last_event_id(p, "x", 1), TELEX_SSE_ETOOBIG);
    telex_sse_parser_reset(p);
    assert_int_equal(FEED(p, "\xEF\xBB"), 0);
    assert_int_equal(FEED(p, "\xBF" "data: e\n\n"), 0);
    assert_string_equal(r.s, "E message|b|\nE message|d|\nE message|e|\n");
    telex_sse_parser_free(p);
    free(r.s);
}

static void test_set_last_event_id(void **state) {
    (void)state;
    struct rec r = {0};
    telex_sse_parser_t *p = telex_sse_parser_new(16, &recording, &r);
    assert_non_null(p);
    assert_int_equal(telex_sse_parser_set_last_event_id(p, "42", 2), 0);
    assert_int_equal(FEED(p, "data: a\n\n"), 0);
    assert_string_equal(r.s, "E message|a|42\n");
    /* The stream overrides it. */
    assert_int_equal(FEED(p, "id: 43\ndata: b\n\n"), 0);
    assert_string_equal(r.s, "E message|a|42\nE message|b|43\n");
    /* Invalid ids are refused and change nothing. */
    assert_int_equal(telex_sse_parser_set_last_event_id(p, "4\0" "4", 3), TELEX_SSE_EINVAL);
    assert_int_equal(telex_sse_parser_set_last_event_id(p, NULL, 3), TELEX_SSE_EINVAL);
    assert_int_equal(telex_sse_parser_set_last_event_id(p, "0123456789abcdefg", 17), TELEX_SSE_ETOOBIG);
    assert_int_equal(FEED(p, "data: c\n\n"), 0);
    assert_string_equal(r.s, "E message|a|42\nE message|b|43\nE message|c|43\n");
    /* Empty clears it; the parser is not failed by refused ids. */
    assert_int_equal(telex_sse_parser_set_last_event_id(p, NULL, 0), 0);
    assert_int_equal(FEED(p, "data: d\n\n"), 0);
    assert_string_equal(r.s, "E message|a|42\nE message|b|43\nE message|c|43\nE message|d|\n");
    telex_sse_parser_free(p);
    free(r.s);
}

static void test_null_callbacks_and_arguments(void **state) {
    (void)state;
    telex_sse_parser_t *p = telex_sse_parser_new(0, NULL, NULL);
    assert_non_null(p);
    const char *in = ": c\nretry: 1\nevent: t\nid: 1\ndata: a\n\n";
    assert_int_equal(telex_sse_parser_feed(p, in, strlen(in)), 0);
    assert_int_equal(telex_sse_parser_feed(p, NULL, 0), 0);
    assert_int_equal(telex_sse_parser_feed(p, NULL, 1), TELEX_SSE_EINVAL);
    assert_int_equal(FEED(p, "data: b\n\n"), 0); /* EINVAL does not fail it */
    telex_sse_parser_free(p);
    telex_sse_parser_free(NULL);
}

static void test_strerror(void **state) {
    (void)state;
    int codes[] = {TELEX_SSE_OK, TELEX_SSE_ENOMEM, TELEX_SSE_ETOOBIG, TELEX_SSE_ESTOPPED, TELEX_SSE_EINVAL,
                   TELEX_SSE_ENOSPC};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        assert_non_null(telex_sse_strerror(codes[i]));
        for (size_t j = 0; j < i; j++) assert_string_not_equal(telex_sse_strerror(codes[i]), telex_sse_strerror(codes[j]));
    }
    assert_string_equal(telex_sse_strerror(-99), "unknown SSE error");
    assert_non_null(strstr(telex_sse_strerror(TELEX_SSE_ETOOBIG), "maximum event size"));
}

/* In-place mode: which events come from the caller's bytes. */
struct seen {
    const char *data;
    size_t len;
    char type[16], id[16];
    unsigned events;
};

static int remember(void *user, const telex_sse_event_t *ev) {
    struct seen *w = user;
    w->data = ev->data;
    w->len = ev->data_len;
    snprintf(w->type, sizeof(w->type), "%.*s", (int)ev->type_len, ev->type);
    snprintf(w->id, sizeof(w->id), "%.*s", (int)ev->id_len, ev->id);
    w->events++;
    return 0;
}

static void test_in_place(void **state) {
    (void)state;
    telex_sse_callbacks_t cb = {.on_event = remember};
    struct seen w = {0};
    telex_sse_parser_t *p = telex_sse_parser_new(0, &cb, &w);
    assert_non_null(p);
    assert_int_equal(telex_sse_parser_set_in_place(p, 1), 0);

    /* one data line and its blank line in one feed: reported where they lie */
    char one[] = "data: {\"a\":1}\n\n";
    assert_int_equal(telex_sse_parser_feed(p, one, sizeof(one) - 1), 0);
    assert_int_equal(w.events, 1);
    assert_ptr_equal(w.data, one + 6);
    assert_int_equal(w.len, 7);
    assert_int_equal(w.data[w.len], '\n');

    /* with a type and an id before it, CRLF line ends */
    char typed[] = "event: e\r\nid: 7\r\ndata:xy\r\n\r\n";
    assert_int_equal(telex_sse_parser_feed(p, typed, sizeof(typed) - 1), 0);
    assert_int_equal(w.events, 2);
    assert_ptr_equal(w.data, typed + strlen("event: e\r\nid: 7\r\ndata:"));
    assert_int_equal(w.data[w.len], '\r');
    assert_string_equal(w.type, "e");
    assert_string_equal(w.id, "7");

    /* two data lines: joined in the parser's buffer, NUL-terminated */
    char two[] = "data: a\ndata: b\n\n";
    assert_int_equal(telex_sse_parser_feed(p, two, sizeof(two) - 1), 0);
    assert_int_equal(w.events, 3);
    assert_true(w.data < two || w.data >= two + sizeof(two));
    assert_int_equal(w.len, 3);
    assert_memory_equal(w.data, "a\nb", 4); /* the NUL included */

    /* the blank line in the next feed: copied before the first feed returns */
    char first[] = "data: later\n", second[] = "\n";
    assert_int_equal(telex_sse_parser_feed(p, first, sizeof(first) - 1), 0);
    memset(first, 'X', sizeof(first) - 1); /* the caller reuses its buffer */
    assert_int_equal(w.events, 3);
    assert_int_equal(telex_sse_parser_feed(p, second, 1), 0);
    assert_int_equal(w.events, 4);
    assert_int_equal(w.len, 5);
    assert_memory_equal(w.data, "later", 6);

    /* a comment between the data line and the blank line: copied, same event */
    char commented[] = "data: c\n: ping\n\n";
    assert_int_equal(telex_sse_parser_feed(p, commented, sizeof(commented) - 1), 0);
    assert_int_equal(w.events, 5);
    assert_memory_equal(w.data, "c", 2);

    /* reset keeps the mode */
    telex_sse_parser_reset(p);
    char again[] = "data: z\n\n";
    assert_int_equal(telex_sse_parser_feed(p, again, sizeof(again) - 1), 0);
    assert_ptr_equal(w.data, again + 6);

    /* off: every event copied */
    assert_int_equal(telex_sse_parser_set_in_place(p, 0), 0);
    assert_int_equal(telex_sse_parser_feed(p, one, sizeof(one) - 1), 0);
    assert_true(w.data < one || w.data >= one + sizeof(one));
    assert_int_equal(w.data[w.len], '\0');
    telex_sse_parser_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_event),
        cmocka_unit_test(test_data_lines_joined_with_lf),
        cmocka_unit_test(test_empty_data_field_dispatches),
        cmocka_unit_test(test_no_data_no_dispatch),
        cmocka_unit_test(test_one_leading_space_stripped),
        cmocka_unit_test(test_colon_inside_value),
        cmocka_unit_test(test_field_without_colon),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_cr_lf_across_feeds),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_event_type),
        cmocka_unit_test(test_id_persists),
        cmocka_unit_test(test_id_with_nul_ignored),
        cmocka_unit_test(test_retry),
        cmocka_unit_test(test_unknown_and_case_sensitive_fields),
        cmocka_unit_test(test_unterminated_final_event),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_bytes_pass_through),
        cmocka_unit_test(test_whatwg_examples),
        cmocka_unit_test(test_limit_line),
        cmocka_unit_test(test_limit_event),
        cmocka_unit_test(test_limit_giant_inputs),
        cmocka_unit_test(test_one_event_in_tiny_feeds_is_linear),
        cmocka_unit_test(test_callback_stops_feed),
        cmocka_unit_test(test_stopping_at_every_event_is_linear),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_set_last_event_id),
        cmocka_unit_test(test_null_callbacks_and_arguments),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
