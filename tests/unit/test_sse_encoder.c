/*
 * test_sse_encoder.c — the libtelex encoder: exact output for each kind of
 * field, refusals (EINVAL, ENOSPC) that leave the buffer untouched, sizes
 * that are exact upper bounds, and a round trip of 10,000 random events
 * (types, ids and data full of CR, LF, CRLF, ':', spaces, NUL and non-ASCII
 * bytes) through the parser in random chunk sizes.
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

#define S(lit) (lit), (sizeof(lit) - 1)

/* Encodes ev into a fresh buffer of exactly telex_sse_encoded_size bytes,
 * asserts success and that the size was exact, and returns the text. */
static char *encode_ok(const telex_sse_out_event_t *ev, size_t *len) {
    size_t size = telex_sse_encoded_size(ev);
    char *buf = malloc(size + 1);
    assert_non_null(buf);
    size_t written = 12345;
    assert_int_equal(telex_sse_encode_event(buf, size, ev, &written), TELEX_SSE_OK);
    assert_int_equal(written, size);
    buf[written] = '\0';
    if (len) *len = written;
    return buf;
}

static void assert_encodes(const telex_sse_out_event_t *ev, const char *want, size_t want_len) {
    size_t len;
    char *got = encode_ok(ev, &len);
    assert_int_equal(len, want_len);
    assert_memory_equal(got, want, want_len);
    free(got);
}

static telex_sse_out_event_t data_event(const char *data, size_t len) {
    telex_sse_out_event_t ev = {NULL, 0, NULL, 0, -1, data, len};
    return ev;
}

#define ASSERT_DATA(data, want)                                                                                 \
    do {                                                                                                        \
        telex_sse_out_event_t ev_ = data_event(S(data));                                                        \
        assert_encodes(&ev_, S(want));                                                                          \
    } while (0)

static void test_encode_data(void **state) {
    (void)state;
    ASSERT_DATA("hello", "data: hello\n\n");
    ASSERT_DATA("{\"a\": 1}", "data: {\"a\": 1}\n\n");
    /* One space is always written, so a value starting with a space survives. */
    ASSERT_DATA(" x", "data:  x\n\n");
    ASSERT_DATA(":x", "data: :x\n\n");
    ASSERT_DATA("a\0b", "data: a\0b\n\n");
}

static void test_encode_data_line_breaks(void **state) {
    (void)state;
    ASSERT_DATA("a\nb", "data: a\ndata: b\n\n");
    ASSERT_DATA("a\r\nb\rc", "data: a\ndata: b\ndata: c\n\n");
    ASSERT_DATA("a\n", "data: a\ndata:\n\n");
    ASSERT_DATA("a\r", "data: a\ndata:\n\n");
    ASSERT_DATA("a\r\n", "data: a\ndata:\n\n");
    ASSERT_DATA("\n", "data:\ndata:\n\n");
    ASSERT_DATA("\r\n", "data:\ndata:\n\n");
    ASSERT_DATA("\n\r", "data:\ndata:\ndata:\n\n");
    ASSERT_DATA("\r\r\n\n", "data:\ndata:\ndata:\ndata:\n\n");
    ASSERT_DATA("a\n\nb", "data: a\ndata:\ndata: b\n\n");
}

static void test_encode_empty_data(void **state) {
    (void)state;
    ASSERT_DATA("", "data:\n\n");
    telex_sse_out_event_t ev = data_event(NULL, 0);
    assert_encodes(&ev, S("data:\n\n"));
}

static void test_encode_all_fields(void **state) {
    (void)state;
    telex_sse_out_event_t ev = {S("add"), S("7"), 3000, S("x")};
    assert_encodes(&ev, S("event: add\nid: 7\nretry: 3000\ndata: x\n\n"));
    ev = (telex_sse_out_event_t){S(" sp:ace"), S(" 1:2"), 0, S("y")};
    assert_encodes(&ev, S("event:  sp:ace\nid:  1:2\nretry: 0\ndata: y\n\n"));
    ev = (telex_sse_out_event_t){NULL, 0, NULL, 0, INT64_MAX, S("z")};
    assert_encodes(&ev, S("retry: 9223372036854775807\ndata: z\n\n"));
    ev = (telex_sse_out_event_t){"ignored", 0, "ignored", 0, INT64_MIN, S("z")};
    assert_encodes(&ev, S("data: z\n\n"));
    ev = (telex_sse_out_event_t){S("\xC3\xA9v\xFF"), S("\xF0\x9F\x98\x80"), 9, S("\xFF")};
    assert_encodes(&ev, S("event: \xC3\xA9v\xFF\nid: \xF0\x9F\x98\x80\nretry: 9\ndata: \xFF\n\n"));
}

static void assert_refused(const telex_sse_out_event_t *ev, int want) {
    char buf[256];
    memset(buf, '#', sizeof(buf));
    size_t written = 99;
    assert_int_equal(telex_sse_encode_event(buf, sizeof(buf), ev, &written), want);
    assert_int_equal(written, 0);
    for (size_t i = 0; i < sizeof(buf); i++) assert_int_equal(buf[i], '#');
}

static void test_encode_rejects_bad_type_and_id(void **state) {
    (void)state;
    static const struct {
        const char *s;
        size_t len;
    } bad[] = {{S("a\rb")}, {S("a\nb")}, {S("a\0b")}, {S("\r")}, {S("\n")}, {S("\0")}, {S("ab\r\n")}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        telex_sse_out_event_t ev = {bad[i].s, bad[i].len, NULL, 0, -1, S("x")};
        assert_refused(&ev, TELEX_SSE_EINVAL);
        ev = (telex_sse_out_event_t){NULL, 0, bad[i].s, bad[i].len, -1, S("x")};
        assert_refused(&ev, TELEX_SSE_EINVAL);
    }
    telex_sse_out_event_t ev = {NULL, 3, NULL, 0, -1, S("x")};
    assert_refused(&ev, TELEX_SSE_EINVAL);
    ev = (telex_sse_out_event_t){NULL, 0, NULL, 2, -1, S("x")};
    assert_refused(&ev, TELEX_SSE_EINVAL);
    ev = (telex_sse_out_event_t){NULL, 0, NULL, 0, -1, NULL, 4};
    assert_refused(&ev, TELEX_SSE_EINVAL);
    assert_int_equal(telex_sse_encode_event(NULL, 0, NULL, NULL), TELEX_SSE_EINVAL);
    /* Data may contain anything. */
    ev = (telex_sse_out_event_t){NULL, 0, NULL, 0, -1, S("\r\n\0")};
    assert_encodes(&ev, S("data:\ndata: \0\n\n"));
}

static void test_encode_nospace(void **state) {
    (void)state;
    telex_sse_out_event_t evs[] = {
        {S("add"), S("7"), 3000, S("x")},
        {NULL, 0, NULL, 0, -1, S("a\r\nb\n")},
        {NULL, 0, NULL, 0, -1, NULL, 0},
        {S("t"), NULL, 0, 5, S("")},
    };
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        size_t size = telex_sse_encoded_size(&evs[i]);
        char *buf = malloc(size);
        assert_non_null(buf);
        for (size_t cap = 0; cap < size; cap++) {
            memset(buf, '#', size);
            size_t written = 99;
            assert_int_equal(telex_sse_encode_event(buf, cap, &evs[i], &written), TELEX_SSE_ENOSPC);
            assert_int_equal(written, 0);
            for (size_t j = 0; j < size; j++) assert_int_equal(buf[j], '#');
        }
        size_t written = 0;
        assert_int_equal(telex_sse_encode_event(buf, size, &evs[i], &written), TELEX_SSE_OK);
        assert_int_equal(written, size);
        free(buf);
    }
    telex_sse_out_event_t ev = data_event(S("x"));
    assert_int_equal(telex_sse_encode_event(NULL, 0, &ev, NULL), TELEX_SSE_ENOSPC);
}

static void assert_comment(const char *text, size_t len, const char *want, size_t want_len) {
    char buf[256];
    size_t written = 0;
    assert_true(telex_sse_encoded_comment_size(len) >= want_len);
    assert_int_equal(telex_sse_encode_comment(buf, sizeof(buf), text, len, &written), TELEX_SSE_OK);
    assert_int_equal(written, want_len);
    assert_memory_equal(buf, want, want_len);
    /* One byte less never fits, and writes nothing. */
    memset(buf, '#', sizeof(buf));
    assert_int_equal(telex_sse_encode_comment(buf, want_len - 1, text, len, &written), TELEX_SSE_ENOSPC);
    assert_int_equal(written, 0);
    assert_int_equal(buf[0], '#');
}

static void test_encode_comment(void **state) {
    (void)state;
    assert_comment(S("ping"), S(": ping\n"));
    assert_comment(S(""), S(":\n"));
    assert_comment(NULL, 0, S(":\n"));
    assert_comment(S(" x"), S(":  x\n"));
    assert_comment(S("a\nb"), S(": a\n: b\n"));
    assert_comment(S("a\r\n\rb"), S(": a\n:\n: b\n"));
    assert_comment(S("a\n"), S(": a\n:\n"));
    assert_comment(S("\n\n\n"), S(":\n:\n:\n:\n"));
    assert_comment(S("\r\r\r"), S(":\n:\n:\n:\n"));
    assert_comment(S("a\0b"), S(": a\0b\n"));
    size_t written = 5;
    assert_int_equal(telex_sse_encode_comment(NULL, 10, "x", 1, &written), TELEX_SSE_ENOSPC);
    char buf[8];
    assert_int_equal(telex_sse_encode_comment(buf, sizeof(buf), NULL, 1, &written), TELEX_SSE_EINVAL);
    assert_int_equal(written, 0);
}

/* ----------------------------------------------------------- round trip */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t rnd_below(size_t n) {
    return (size_t)(rnd() % n);
}

struct text {
    char *s;
    size_t len, cap;
};

static void put(struct text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        while (cap < t->len + n + 1) cap *= 2;
        t->s = realloc(t->s, cap);
        assert_non_null(t->s);
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void put_str(struct text *t, const char *s) {
    put(t, s, strlen(s));
}

/* Length-prefixed, so any bytes compare unambiguously. */
static void put_field(struct text *t, const char *s, size_t n) {
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "%zu:", n);
    put_str(t, tmp);
    put(t, s, n);
    put_str(t, " ");
}

static int rt_event(void *user, const telex_sse_event_t *ev) {
    struct text *t = user;
    put_str(t, "E ");
    put_field(t, ev->type, ev->type_len);
    put_field(t, ev->data, ev->data_len);
    put_field(t, ev->id, ev->id_len);
    put_str(t, "\n");
    return 0;
}

static int rt_retry(void *user, uint64_t ms) {
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "R %llu\n", (unsigned long long)ms);
    put_str(user, tmp);
    return 0;
}

static int rt_comment(void *user, const char *text, size_t len) {
    put_str(user, "C ");
    put_field(user, text, len);
    put_str(user, "\n");
    return 0;
}

/* Random bytes from `alphabet`; for data, some pieces are CRLF pairs. */
static void random_text(char *out, size_t len, const char *alphabet, size_t alen) {
    for (size_t i = 0; i < len; i++) out[i] = alphabet[rnd_below(alen)];
}

static const char token_chars[] = "ab: -_=\t\xC3\xA9\xFF" "01";
static const char data_chars[] = "ab: \r\n\r\n\0x{}\"\xC3\xA9";

/* The text as a parser gives it back: CRLF and CR become LF. */
static size_t normalize_breaks(const char *in, size_t len, char *out) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\r') {
            out[n++] = '\n';
            if (i + 1 < len && in[i + 1] == '\n') i++;
        } else {
            out[n++] = in[i];
        }
    }
    return n;
}

/* What the parser reports for an encoded comment: one callback per line,
 * each with the space the encoder put after ':' (none for empty lines). */
static void expect_comment(struct text *want, const char *text, size_t len) {
    char *norm = malloc(len + 1);
    assert_non_null(norm);
    size_t n = normalize_breaks(text, len, norm);
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || norm[i] == '\n') {
            char *line = malloc(i - start + 2);
            assert_non_null(line);
            size_t l = 0;
            if (i > start) line[l++] = ' ';
            memcpy(line + l, norm + start, i - start);
            l += i - start;
            put_str(want, "C ");
            put_field(want, line, l);
            put_str(want, "\n");
            free(line);
            start = i + 1;
        }
    }
    free(norm);
}

static void test_round_trip_random_events(void **state) {
    (void)state;
    enum { EVENTS = 10000 };
    struct text stream = {0}, want = {0};
    char type[16], id[16], data[96], norm[96], comment[32];
    char last_id[16];
    size_t last_id_len = 0;

    for (int i = 0; i < EVENTS; i++) {
        telex_sse_out_event_t ev = {NULL, 0, NULL, 0, -1, NULL, 0};
        if (rnd_below(2)) {
            ev.type_len = rnd_below(sizeof(type));
            random_text(type, ev.type_len, token_chars, sizeof(token_chars) - 1);
            ev.type = type;
        }
        if (rnd_below(3) == 0) {
            ev.id_len = 1 + rnd_below(sizeof(id) - 1);
            random_text(id, ev.id_len, token_chars, sizeof(token_chars) - 1);
            ev.id = id;
            memcpy(last_id, id, ev.id_len);
            last_id_len = ev.id_len;
        }
        if (rnd_below(5) == 0) ev.retry = (int64_t)(rnd() >> rnd_below(64));
        ev.data_len = rnd_below(sizeof(data));
        random_text(data, ev.data_len, data_chars, sizeof(data_chars) - 1);
        ev.data = ev.data_len || rnd_below(2) ? data : NULL;

        size_t size = telex_sse_encoded_size(&ev);
        char *buf = malloc(size);
        assert_non_null(buf);
        size_t written = 0;
        assert_int_equal(telex_sse_encode_event(buf, size, &ev, &written), TELEX_SSE_OK);
        assert_int_equal(written, size);
        put(&stream, buf, written);
        free(buf);

        if (ev.retry >= 0) {
            char tmp[32];
            snprintf(tmp, sizeof(tmp), "R %llu\n", (unsigned long long)ev.retry);
            put_str(&want, tmp);
        }
        put_str(&want, "E ");
        if (ev.type_len) put_field(&want, type, ev.type_len);
        else put_field(&want, "message", 7);
        size_t n = normalize_breaks(data, ev.data_len, norm);
        put_field(&want, norm, n);
        put_field(&want, last_id, last_id_len);
        put_str(&want, "\n");

        if (rnd_below(10) == 0) { /* now and then a comment, e.g. a keep-alive */
            size_t clen = rnd_below(sizeof(comment));
            random_text(comment, clen, data_chars, sizeof(data_chars) - 1);
            char cbuf[4 * sizeof(comment)];
            assert_true(telex_sse_encoded_comment_size(clen) <= sizeof(cbuf));
            assert_int_equal(telex_sse_encode_comment(cbuf, sizeof(cbuf), comment, clen, &written), 0);
            assert_true(written <= telex_sse_encoded_comment_size(clen));
            put(&stream, cbuf, written);
            expect_comment(&want, comment, clen);
        }
    }

    /* One feed, then random chunk sizes (including empty feeds). */
    static const size_t max_chunk[] = {0, 1, 3, 17, 300, 70000};
    for (size_t m = 0; m < sizeof(max_chunk) / sizeof(max_chunk[0]); m++) {
        struct text got = {0};
        telex_sse_callbacks_t cb = {rt_event, rt_retry, rt_comment};
        telex_sse_parser_t *p = telex_sse_parser_new(0, &cb, &got);
        assert_non_null(p);
        for (size_t off = 0; off < stream.len;) {
            size_t n = max_chunk[m] ? rnd_below(max_chunk[m] + 1) : stream.len;
            if (n > stream.len - off) n = stream.len - off;
            assert_int_equal(telex_sse_parser_feed(p, stream.s + off, n), TELEX_SSE_OK);
            off += n;
        }
        assert_non_null(got.s);
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.s, want.s, want.len);
        telex_sse_parser_free(p);
        free(got.s);
    }
    free(stream.s);
    free(want.s);
}

static void test_comment_size_is_upper_bound(void **state) {
    (void)state;
    char text[64], buf[256];
    for (int i = 0; i < 20000; i++) {
        size_t len = rnd_below(sizeof(text));
        random_text(text, len, "a\r\n", 3);
        size_t written = 0;
        assert_int_equal(telex_sse_encode_comment(buf, sizeof(buf), text, len, &written), TELEX_SSE_OK);
        assert_true(written <= telex_sse_encoded_comment_size(len));
    }
    assert_int_equal(telex_sse_encoded_comment_size(SIZE_MAX), SIZE_MAX);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_data),
        cmocka_unit_test(test_encode_data_line_breaks),
        cmocka_unit_test(test_encode_empty_data),
        cmocka_unit_test(test_encode_all_fields),
        cmocka_unit_test(test_encode_rejects_bad_type_and_id),
        cmocka_unit_test(test_encode_nospace),
        cmocka_unit_test(test_encode_comment),
        cmocka_unit_test(test_round_trip_random_events),
        cmocka_unit_test(test_comment_size_is_upper_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
