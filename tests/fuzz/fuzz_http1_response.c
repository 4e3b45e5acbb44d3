/*
 * fuzz_http1_response.c — libFuzzer target for the upstream client's HTTP/1.1
 * response parser (src/upstream/http1_response.c, compiled in here).
 *
 * Input: byte 0 seeds the feed sizes, the rest is what a provider sends.
 * The bytes are fed the way the client feeds them — a socket buffer: what
 * the parser did not consume comes again at the front of the next feed,
 * followed by what arrived since — and each run checks, aborting on any
 * difference:
 *
 *  1. Every call: used <= n; PAUSED only right after a callback that asked
 *     for it; on_body pieces are non-empty and lie inside the feed (the
 *     parser may write to the bytes it consumes, so each run feeds a copy); on_head
 *     runs at most once, for a final status (>= 200, not 101), before any
 *     body; DONE and ERROR leave the matching phase (and an error message)
 *     and stay, consuming nothing, when called again.
 *  2. The body delivered never exceeds the input; with Content-Length or
 *     read-until-close framing it is the input right after the head, byte
 *     for byte (and for until-close all of it).
 *  3. Splitting never matters: the transcript (head fields, framing, body,
 *     result, error, bytes consumed) is the same for one feed, a cut in two
 *     at a data-driven position, data-driven feed sizes (each feed an
 *     exact-size copy, so reads past its end are caught), one byte at a
 *     time, and callbacks that stop the parser every time.
 *
 * Build and run: `make fuzz FUZZ_SECONDS=N` (clang, -fsanitize=fuzzer,
 * address,undefined; seeds in tests/fuzz/corpus_http1_response/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/upstream/http1_response.c"

#define REQUIRE(cond)                                                                                                  \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);                               \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

typedef struct {
    /* the transcript */
    int heads;
    int status, keep_alive, framing;
    char content_type[128], retry_after[32];
    char *body;
    size_t body_len, body_cap;
    telex_http1_result_t result;
    const char *error;
    size_t consumed;
    /* checking */
    const char *feed; /* the current feed */
    size_t feed_len;
    int stop;             /* callbacks stop the parser */
    int callbacks;        /* in the current call */
    const char *last_end; /* contiguity of non-chunked bodies within one feed */
} rec_t;

static int on_head(void *user, const telex_http1_response_t *r)
{
    rec_t *rec = user;
    REQUIRE(rec->heads == 0 && rec->body_len == 0);
    REQUIRE(r->status >= 200 && r->status <= 999 && r->status != 101);
    REQUIRE(r->phase == TELEX_HTTP1_BODY);
    REQUIRE(memchr(r->content_type, '\0', sizeof(r->content_type)) != NULL);
    REQUIRE(memchr(r->retry_after, '\0', sizeof(r->retry_after)) != NULL);
    rec->heads++;
    rec->callbacks++;
    rec->status = r->status;
    rec->keep_alive = r->keep_alive;
    rec->framing = (int)r->framing;
    memcpy(rec->content_type, r->content_type, sizeof(rec->content_type));
    memcpy(rec->retry_after, r->retry_after, sizeof(rec->retry_after));
    if (r->framing == TELEX_HTTP1_UNTIL_CLOSE)
        REQUIRE(!r->keep_alive);
    return rec->stop;
}

static int on_body(void *user, const char *data, size_t len)
{
    rec_t *rec = user;
    REQUIRE(rec->heads == 1);
    REQUIRE(len > 0);
    REQUIRE(data >= rec->feed && data + len <= rec->feed + rec->feed_len);
    if (rec->framing != TELEX_HTTP1_CHUNKED && rec->last_end != NULL)
        REQUIRE(data == rec->last_end);
    rec->last_end = data + len;
    rec->callbacks++;
    if (rec->body_len + len > rec->body_cap) {
        rec->body_cap = (rec->body_len + len) * 2;
        rec->body = realloc(rec->body, rec->body_cap);
        REQUIRE(rec->body != NULL);
    }
    memcpy(rec->body + rec->body_len, data, len);
    rec->body_len += len;
    return rec->stop;
}

static const telex_http1_response_callbacks_t callbacks = {on_head, on_body};

static telex_http1_result_t parse_once(telex_http1_response_t *r, char *p, size_t n, size_t *used, rec_t *rec)
{
    rec->feed = p;
    rec->feed_len = n;
    rec->callbacks = 0;
    rec->last_end = NULL;
    *used = (size_t)-1;
    telex_http1_result_t res = telex_http1_response_parse(r, p, n, used, &callbacks, rec);
    REQUIRE(*used <= n);
    switch (res) {
    case TELEX_HTTP1_MORE:
        REQUIRE(r->phase == TELEX_HTTP1_HEAD || r->phase == TELEX_HTTP1_BODY);
        REQUIRE(r->error == NULL);
        if (r->phase == TELEX_HTTP1_BODY)
            REQUIRE(*used == n); /* a body takes everything until its end */
        break;
    case TELEX_HTTP1_PAUSED:
        REQUIRE(rec->stop && rec->callbacks > 0);
        REQUIRE(r->phase == TELEX_HTTP1_BODY);
        break;
    case TELEX_HTTP1_DONE:
        REQUIRE(r->phase == TELEX_HTTP1_END && rec->heads == 1 && r->error == NULL);
        break;
    case TELEX_HTTP1_ERROR:
        REQUIRE(r->phase == TELEX_HTTP1_FAILED && r->error != NULL && r->error[0] != '\0');
        break;
    default:
        REQUIRE(0);
    }
    return res;
}

static uint64_t rng;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

enum mode { WHOLE, CUT, CHUNKS, BYTES };

/* Feeds in[0..len) as it arrives in `mode`; fills rec's transcript. */
static void run(const char *in, size_t len, enum mode mode, unsigned seed, int stop, rec_t *rec)
{
    telex_http1_response_t r;
    telex_http1_response_init(&r);
    rec->stop = stop;
    rng = 0x9E3779B97F4A7C15u ^ ((uint64_t)seed << 32) ^ len ^ ((uint64_t)mode << 20);
    size_t max_chunk = (size_t)1 << (seed % 11);
    size_t consumed = 0, avail = 0;
    telex_http1_result_t res = TELEX_HTTP1_MORE;
    /* The parser writes to the bytes it consumes (it moves chunk data
     * together); the fuzzer's input is read-only. */
    char *buf = malloc(len > 0 ? len : 1);
    REQUIRE(buf != NULL);
    memcpy(buf, in, len);
    while (res != TELEX_HTTP1_DONE && res != TELEX_HTTP1_ERROR) {
        if (res == TELEX_HTTP1_MORE) {
            if (avail == len && avail > 0)
                break; /* all in: the connection would close now */
            switch (mode) {
            case WHOLE:
                avail = len;
                break;
            case CUT:
                avail = avail == 0 ? (len > 0 ? (size_t)(rnd() % (len + 1)) : 0) : len;
                break;
            case CHUNKS:
                avail += (size_t)(rnd() % (max_chunk + 1));
                break;
            case BYTES:
                avail++;
                break;
            }
            if (avail > len)
                avail = len;
        }
        size_t n = avail - consumed, used;
        if (mode == CHUNKS) {
            char *copy = malloc(n > 0 ? n : 1);
            REQUIRE(copy != NULL);
            memcpy(copy, in + consumed, n);
            res = parse_once(&r, copy, n, &used, rec);
            free(copy);
        } else {
            res = parse_once(&r, buf + consumed, n, &used, rec);
        }
        consumed += used;
        if (len == 0 && res == TELEX_HTTP1_MORE)
            break;
    }
    /* DONE and ERROR stay */
    if (res == TELEX_HTTP1_DONE || res == TELEX_HTTP1_ERROR) {
        const char *err = r.error;
        size_t used;
        int heads = rec->heads;
        size_t body = rec->body_len;
        REQUIRE(parse_once(&r, buf + consumed, len - consumed, &used, rec) == res);
        REQUIRE(used == 0 && r.error == err && rec->heads == heads && rec->body_len == body);
    }
    free(buf);
    rec->result = res;
    rec->error = r.error;
    rec->consumed = consumed;
    REQUIRE(rec->body_len <= len);
}

static void same(const rec_t *a, const rec_t *b)
{
    REQUIRE(a->result == b->result);
    REQUIRE(a->error == b->error); /* static strings: the same message is the same pointer */
    REQUIRE(a->consumed == b->consumed);
    REQUIRE(a->heads == b->heads);
    if (a->heads) {
        REQUIRE(a->status == b->status && a->keep_alive == b->keep_alive && a->framing == b->framing);
        REQUIRE(strcmp(a->content_type, b->content_type) == 0 && strcmp(a->retry_after, b->retry_after) == 0);
    }
    REQUIRE(a->body_len == b->body_len);
    REQUIRE(a->body_len == 0 || memcmp(a->body, b->body, a->body_len) == 0);
}

/* Where the final head ends: parse again, stopping at on_head. */
static int head_end(const char *in, size_t len, size_t *end)
{
    rec_t rec = {0};
    telex_http1_response_t r;
    telex_http1_response_init(&r);
    rec.stop = 1;
    size_t used;
    char *buf = malloc(len > 0 ? len : 1);
    REQUIRE(buf != NULL);
    memcpy(buf, in, len);
    telex_http1_result_t res = parse_once(&r, buf, len, &used, &rec);
    free(buf);
    if (rec.heads == 0)
        return 0;
    REQUIRE(res == TELEX_HTTP1_PAUSED || res == TELEX_HTTP1_DONE);
    *end = used;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned seed = data[0];
    const char *in = (const char *)data + 1;
    size_t len = size - 1;

    rec_t whole = {0};
    run(in, len, WHOLE, seed, 0, &whole);

    /* 2. Non-chunked bodies are the bytes after the head. */
    size_t end;
    if (whole.heads && head_end(in, len, &end)) {
        if (whole.framing == TELEX_HTTP1_LENGTH || whole.framing == TELEX_HTTP1_UNTIL_CLOSE) {
            REQUIRE(end + whole.body_len <= len);
            REQUIRE(whole.body_len == 0 || memcmp(whole.body, in + end, whole.body_len) == 0);
            REQUIRE(whole.consumed == end + whole.body_len);
        }
        if (whole.framing == TELEX_HTTP1_UNTIL_CLOSE)
            REQUIRE(whole.result == TELEX_HTTP1_MORE && whole.consumed == len);
        if (whole.framing == TELEX_HTTP1_NO_BODY)
            REQUIRE(whole.result == TELEX_HTTP1_DONE && whole.consumed == end && whole.body_len == 0);
    }

    /* 3. The same, however it arrives. */
    static const enum mode modes[] = {CUT, CHUNKS, BYTES};
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        for (int stop = 0; stop <= 1; stop++) {
            rec_t other = {0};
            run(in, len, modes[m], seed, stop, &other);
            same(&whole, &other);
            free(other.body);
        }
    }
    rec_t stopping = {0};
    run(in, len, WHOLE, seed, 1, &stopping);
    same(&whole, &stopping);
    free(stopping.body);
    free(whole.body);
    return 0;
}
