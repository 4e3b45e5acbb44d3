/*
 * fuzz_sse_parser.c — libFuzzer target for libtelex's parser and encoder.
 *
 * Input: byte 0 picks max_event_size, byte 1 seeds the chunk sizes, and
 * the rest is an event stream. Each run checks, aborting on any difference:
 *
 *  1. Splitting never matters: the transcript (events, retries, comments,
 *     final error) is the same for one feed, data-driven chunks with empty
 *     feeds mixed in, one byte per feed, callbacks that stop the parser at
 *     every call (drained by later feeds), and a parser reused after
 *     telex_sse_parser_reset. Byte 0's bit 3 turns strict mode on (limits of
 *     6 bytes or more), bit 4 in-place data; the transcript must then be a
 *     default parser's (strict: that or its start followed by EFIELD).
 *  2. Encoding what was parsed parses back to the same thing: every event,
 *     retry and comment of the transcript is re-encoded with the encoder
 *     (exact sizes, ENOSPC one byte short) and the result re-parsed.
 *  3. Arbitrary bytes survive the encoder: the raw stream bytes used as the
 *     data of one event come back with CRLF and CR turned into LF.
 *
 * Build and run: `make fuzz FUZZ_SECONDS=N` (clang, -fsanitize=fuzzer,
 * address,undefined; seeds in tests/fuzz/corpus/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telex/sse.h"

#define REQUIRE(cond)                                                                                           \
    do {                                                                                                        \
        if (!(cond)) {                                                                                          \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);                        \
            abort();                                                                                            \
        }                                                                                                       \
    } while (0)

/* ------------------------------------------------------------ transcript */

struct text {
    char *s;
    size_t len, cap;
};

static void put(struct text *t, const void *s, size_t n) {
    if (n == 0) return;
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n) cap *= 2;
        t->s = realloc(t->s, cap);
        REQUIRE(t->s != NULL);
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
}

static void put_str(struct text *t, const char *s) {
    put(t, s, strlen(s));
}

static void put_u64(struct text *t, uint64_t v) {
    put(t, &v, sizeof(v));
}

/* A length-prefixed string. */
static void put_field(struct text *t, const char *s, size_t n) {
    put_u64(t, n);
    put(t, s, n);
}

static uint64_t get_u64(const char **pos) {
    uint64_t v;
    memcpy(&v, *pos, sizeof(v));
    *pos += sizeof(v);
    return v;
}

static const char *get_field(const char **pos, size_t *n) {
    *n = (size_t)get_u64(pos);
    const char *s = *pos;
    *pos += *n;
    return s;
}

/* Records are: 'E' type data id | 'R' u64 | 'C' text | '!' error. */
struct rec {
    struct text t;
    int stop; /* every callback stops the parser */
};

static int in_place; /* the parsers of this input report data in place */

static int on_event(void *user, const telex_sse_event_t *ev) {
    struct rec *r = user;
    char after = ev->data[ev->data_len]; /* in place: the line's end */
    REQUIRE(ev->type[ev->type_len] == '\0' && ev->id[ev->id_len] == '\0');
    REQUIRE(after == '\0' || (in_place && (after == '\n' || after == '\r')));
    REQUIRE(ev->type_len > 0);
    REQUIRE(memchr(ev->id, '\0', ev->id_len) == NULL);
    put(&r->t, "E", 1);
    put_field(&r->t, ev->type, ev->type_len);
    put_field(&r->t, ev->data, ev->data_len);
    put_field(&r->t, ev->id, ev->id_len);
    return r->stop;
}

static int on_retry(void *user, uint64_t ms) {
    struct rec *r = user;
    put(&r->t, "R", 1);
    put_u64(&r->t, ms);
    return r->stop;
}

static int on_comment(void *user, const char *text, size_t len) {
    struct rec *r = user;
    REQUIRE(text[len] == '\0');
    put(&r->t, "C", 1);
    put_field(&r->t, text, len);
    return r->stop;
}

static const telex_sse_callbacks_t callbacks = {on_event, on_retry, on_comment};

/* ----------------------------------------------------------- feeding */

static uint64_t rng;

static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Feeds one piece; notes the first hard error, which must then persist. */
static void feed(telex_sse_parser_t *p, const uint8_t *in, size_t len, int *err) {
    int rc = telex_sse_parser_feed(p, in, len);
    if (*err) {
        REQUIRE(rc == *err);
        return;
    }
    REQUIRE(rc == TELEX_SSE_OK || rc == TELEX_SSE_ESTOPPED || rc == TELEX_SSE_ETOOBIG || rc == TELEX_SSE_EFIELD);
    if (rc == TELEX_SSE_ETOOBIG || rc == TELEX_SSE_EFIELD) *err = rc;
}

static void finish(struct rec *r, int err) {
    if (err) {
        put(&r->t, "!", 1);
        put_u64(&r->t, (uint64_t)(int64_t)err);
    }
}

enum mode { ONCE, CHUNKS, BYTES, STOPPING };

static void run(struct rec *r, telex_sse_parser_t *p, const uint8_t *in, size_t len, enum mode mode,
                unsigned seed) {
    int err = 0;
    r->stop = mode == STOPPING;
    rng = 0x9E3779B97F4A7C15u ^ ((uint64_t)seed << 32) ^ len;
    size_t max_chunk = (size_t)1 << (seed % 12);
    switch (mode) {
    case ONCE: feed(p, in, len, &err); break;
    case BYTES:
        for (size_t i = 0; i < len; i++) feed(p, in + i, 1, &err);
        break;
    case CHUNKS:
    case STOPPING:
        for (size_t off = 0; off < len;) {
            size_t n = (size_t)(rnd() % (max_chunk + 1));
            if (n > len - off) n = len - off;
            feed(p, n ? in + off : NULL, n, &err);
            off += n;
        }
        /* Drain what stopping callbacks left; each drain makes progress. */
        for (size_t guard = 0; mode == STOPPING && !err; guard++) {
            REQUIRE(guard <= len + 1);
            int rc = telex_sse_parser_feed(p, NULL, 0);
            if (rc != TELEX_SSE_ESTOPPED) {
                REQUIRE(rc == TELEX_SSE_OK || rc == TELEX_SSE_ETOOBIG || rc == TELEX_SSE_EFIELD);
                err = rc;
                break;
            }
        }
        break;
    }
    r->stop = 0;
    finish(r, err);
}

static int same(const struct text *a, const struct text *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->s, b->s, a->len) == 0);
}

/* --------------------------------------------------------- re-encoding */

/* Encodes ev into out, checking the size is exact and one byte less fails. */
static void encode_into(struct text *out, const telex_sse_out_event_t *ev) {
    size_t size = telex_sse_encoded_size(ev);
    char *buf = malloc(size);
    REQUIRE(buf != NULL);
    size_t written = 1;
    REQUIRE(telex_sse_encode_event(buf, size - 1, ev, &written) == TELEX_SSE_ENOSPC && written == 0);
    REQUIRE(telex_sse_encode_event(buf, size, ev, &written) == TELEX_SSE_OK);
    REQUIRE(written == size);
    put(out, buf, written);
    free(buf);
}

/* Turns a transcript back into an event stream, and builds the transcript
 * that stream must give (the same, except that comments come back with the
 * space the encoder writes after ':'). */
static void re_encode(const struct text *t, struct text *stream, struct text *want) {
    const char *pos = t->s, *end = t->len ? t->s + t->len : t->s;
    struct text cur_id = {0};
    uint64_t pending_retry = 0;
    int have_retry = 0;

    while (pos < end) {
        char kind = *pos++;
        if (kind == '!') break;
        if (kind == 'R') {
            uint64_t ms = get_u64(&pos);
            put(want, "R", 1);
            put_u64(want, ms);
            /* A retry right before an event goes in that event's block. */
            if (pos < end && *pos == 'E' && ms <= INT64_MAX && !have_retry) {
                pending_retry = ms;
                have_retry = 1;
            } else {
                char line[40];
                snprintf(line, sizeof(line), "retry: %llu\n", (unsigned long long)ms);
                put_str(stream, line);
            }
        } else if (kind == 'C') {
            size_t n;
            const char *text = get_field(&pos, &n);
            size_t cap = telex_sse_encoded_comment_size(n);
            char *buf = malloc(cap);
            REQUIRE(buf != NULL);
            size_t written;
            REQUIRE(telex_sse_encode_comment(buf, cap, text, n, &written) == TELEX_SSE_OK);
            REQUIRE(written == (n ? n + 3 : 2));
            put(stream, buf, written);
            free(buf);
            put(want, "C", 1);
            put_u64(want, n ? n + 1 : 0);
            if (n) put(want, " ", 1);
            put(want, text, n);
        } else {
            REQUIRE(kind == 'E');
            size_t type_len, data_len, id_len;
            const char *type = get_field(&pos, &type_len);
            const char *data = get_field(&pos, &data_len);
            const char *id = get_field(&pos, &id_len);
            telex_sse_out_event_t ev = {type, type_len, NULL, 0, -1, data, data_len};
            if (have_retry) ev.retry = (int64_t)pending_retry, have_retry = 0;
            if (memchr(type, '\0', type_len) != NULL) {
                /* The encoder refuses such types; the stream can still carry them. */
                REQUIRE(telex_sse_encode_event(NULL, 0, &ev, NULL) == TELEX_SSE_EINVAL);
                put_str(stream, "event: ");
                put(stream, type, type_len);
                put_str(stream, "\n");
                ev.type = NULL;
                ev.type_len = 0;
            }
            if (id_len != cur_id.len || (id_len && memcmp(id, cur_id.s, id_len) != 0)) {
                if (id_len == 0) put_str(stream, "id\n"); /* the encoder omits empty ids */
                ev.id = id;
                ev.id_len = id_len;
                cur_id.len = 0;
                put(&cur_id, id, id_len);
            }
            encode_into(stream, &ev);
            put(want, "E", 1);
            put_field(want, type, type_len);
            put_field(want, data, data_len);
            put_field(want, id, id_len);
        }
    }
    free(cur_id.s);
}

/* The raw bytes as one event's data must come back with LF line breaks. */
static void check_raw_data_round_trip(const uint8_t *in, size_t len) {
    telex_sse_out_event_t ev = {NULL, 0, NULL, 0, -1, (const char *)in, len};
    struct text stream = {0}, want = {0};
    encode_into(&stream, &ev);

    char *norm = malloc(len + 1);
    REQUIRE(norm != NULL);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\r') {
            norm[n++] = '\n';
            if (i + 1 < len && in[i + 1] == '\n') i++;
        } else {
            norm[n++] = (char)in[i];
        }
    }
    put(&want, "E", 1);
    put_field(&want, "message", 7);
    put_field(&want, norm, n);
    put_field(&want, "", 0);

    struct rec got = {0};
    telex_sse_parser_t *p = telex_sse_parser_new(0, &callbacks, &got);
    REQUIRE(p != NULL);
    int err = 0;
    feed(p, (const uint8_t *)stream.s, stream.len, &err);
    REQUIRE(err == 0);
    REQUIRE(same(&got.t, &want));
    telex_sse_parser_free(p);
    free(got.t.s);
    free(stream.s);
    free(want.s);
    free(norm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const size_t maxes[8] = {0, 1, 2, 3, 8, 16, 64, 256};
    if (size < 2) return 0;
    size_t max = maxes[data[0] % 8];
    unsigned seed = data[1];
    const uint8_t *in = data + 2;
    size_t len = size - 2;
    int strict = (data[0] & 8) && (max == 0 || max >= 6);
    in_place = (data[0] & 16) != 0;

    /* 1. The transcript does not depend on how the stream is split. */
    struct rec once = {0}, other = {0};
    telex_sse_parser_t *p = telex_sse_parser_new(max, &callbacks, &once);
    REQUIRE(p != NULL);
    REQUIRE(telex_sse_parser_set_strict(p, strict) == TELEX_SSE_OK);
    REQUIRE(telex_sse_parser_set_in_place(p, in_place) == TELEX_SSE_OK);
    run(&once, p, in, len, ONCE, seed);
    telex_sse_parser_free(p);
    if (strict || in_place) {
        /* a default parser's transcript; strict: up to the line it refuses */
        int was = in_place;
        in_place = 0;
        p = telex_sse_parser_new(max, &callbacks, &other);
        REQUIRE(p != NULL);
        run(&other, p, in, len, ONCE, seed);
        telex_sse_parser_free(p);
        in_place = was;
        static const char refused[1 + 8] = {'!', (char)(uint8_t)TELEX_SSE_EFIELD, -1, -1, -1, -1, -1, -1, -1};
        if (once.t.len >= 9 && memcmp(once.t.s + once.t.len - 9, refused, 9) == 0)
            REQUIRE(once.t.len - 9 <= other.t.len &&
                    (once.t.len == 9 || memcmp(once.t.s, other.t.s, once.t.len - 9) == 0));
        else
            REQUIRE(same(&once.t, &other.t));
    }

    static const enum mode modes[] = {CHUNKS, BYTES, STOPPING};
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        other.t.len = 0;
        p = telex_sse_parser_new(max, &callbacks, &other);
        REQUIRE(p != NULL);
        REQUIRE(telex_sse_parser_set_strict(p, strict) == TELEX_SSE_OK);
        REQUIRE(telex_sse_parser_set_in_place(p, in_place) == TELEX_SSE_OK);
        run(&other, p, in, len, modes[m], seed);
        REQUIRE(same(&once.t, &other.t));
        /* A reset parser behaves like a new one. */
        telex_sse_parser_reset(p);
        other.t.len = 0;
        run(&other, p, in, len, ONCE, seed);
        REQUIRE(same(&once.t, &other.t));
        telex_sse_parser_free(p);
    }

    in_place = 0; /* the parsers below are default ones */

    /* 2. What was parsed, encoded again, parses back the same. */
    struct text stream = {0}, want = {0};
    re_encode(&once.t, &stream, &want);
    other.t.len = 0;
    p = telex_sse_parser_new(0, &callbacks, &other);
    REQUIRE(p != NULL);
    run(&other, p, (const uint8_t *)stream.s, stream.len, CHUNKS, seed);
    REQUIRE(same(&want, &other.t));
    telex_sse_parser_free(p);

    /* 3. Any bytes as data survive the encoder. */
    check_raw_data_round_trip(in, len);

    free(stream.s);
    free(want.s);
    free(once.t.s);
    free(other.t.s);
    return 0;
}
