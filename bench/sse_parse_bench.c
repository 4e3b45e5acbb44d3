/*
 * bench/sse_parse_bench.c — throughput of the libtelex SSE parser.
 *
 * Builds two synthetic event streams in memory, deterministically (the same
 * bytes on every run and machine):
 *
 *   realistic  ~100 MB of OpenAI chat-completion chunk events, as a model
 *              streams them: `data: {"id":"chatcmpl-…","object":
 *              "chat.completion.chunk",…,"choices":[{"index":0,"delta":
 *              {"content":"…"},"finish_reason":null}]}` + blank line, with
 *              varied tokens (ASCII words, punctuation, escaped newlines and
 *              quotes, raw multi-byte UTF-8), a role chunk, a finish chunk and
 *              `data: [DONE]` per answer;
 *   large      ~100 MB of events carrying 64 KiB of data each.
 *
 * and feeds each to a parser in 64 KiB chunks: one warm-up pass, then --runs
 * timed passes. Prints one JSON line per stream (MB = 10^6 bytes):
 *   {"bench":"sse_parse","impl":"telex","stream":"realistic","bytes":…,
 *    "events":…,"mean_event_bytes":…,"chunk":65536,"runs":…,
 *    "mb_per_s":<median>,"mb_per_s_min":…,"mb_per_s_max":…}
 *
 * --write-realistic FILE / --write-large FILE also write the streams to
 * files, so other parsers (bench/sse_parse_bench.mjs) measure the identical
 * bytes; --no-run only writes them. Exit 1 on any error.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "telex/sse.h"

#define CHUNK_SIZE 65536
#define LARGE_EVENT_DATA 65536
#define MAX_RUNS 101

/* ------------------------------------------------------------ the streams */

typedef struct {
    char *p;
    size_t len;
    size_t cap;
} stream_t;

static bool stream_reserve(stream_t *s, size_t more)
{
    if (s->cap - s->len >= more)
        return true;
    size_t cap = s->cap ? s->cap : 1u << 20;
    while (cap - s->len < more)
        cap *= 2;
    char *p = realloc(s->p, cap);
    if (!p)
        return false;
    s->p = p;
    s->cap = cap;
    return true;
}

static void stream_put(stream_t *s, const char *text, size_t len) /* room reserved by the caller */
{
    memcpy(s->p + s->len, text, len);
    s->len += len;
}

static uint64_t rng_state = UINT64_C(0x9E3779B97F4A7C15);

static uint64_t rng_next(void) /* xorshift64*: deterministic, good enough */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(2685821657736338717);
}

static size_t rng_below(size_t n)
{
    return (size_t)(rng_next() % n);
}

/* Tokens as they appear inside a JSON string in a chunk (already escaped). */
static const char *const tokens[] = {
    " the", " a", " of", " to", " and", " in", " is", " that", " for", " it", " with", " as", " on",
    " model", " stream", " token", " server", " events", " request", " response", " latency", " buffer",
    " function", " return", " value", " because", " however", " example", " parser", " browser",
    "ing", "ed", "s", "ly", "'s", ",", ".", ":", ";", "!", "?", " (", ")", " -", " \\\"", "\\\"",
    "\\n", "\\n\\n", "\\n- ", " `", "`", "```", "c\\n", " 42", " 2024", " 3.14", " é", " café",
    " naïve", " über", " 日本", "語", " 😀", " 🚀", " —", " “quoted”", " \\\\", "\\t", " Hello", " world",
};

static bool generate_realistic(stream_t *s, size_t target, size_t *events)
{
    static const char *const models[] = {"gpt-4o-mini", "gpt-4o", "gpt-4.1-nano"};
    static const char id_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    long created = 1718000000;
    *events = 0;
    while (s->len < target) {
        char id[40];
        memcpy(id, "chatcmpl-", 9);
        for (int i = 0; i < 29; i++)
            id[9 + i] = id_chars[rng_below(sizeof id_chars - 1)];
        id[38] = '\0';
        const char *model = models[rng_below(3)];
        created += (long)rng_below(5);
        size_t answer_tokens = 20 + rng_below(600);
        char head[256];
        int head_len = snprintf(head, sizeof head,
                                "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%ld,"
                                "\"model\":\"%s\",\"choices\":[{\"index\":0,\"delta\":",
                                id, created, model);
        if (head_len < 0 || (size_t)head_len >= sizeof head)
            return false;
        /* role chunk, content chunks, finish chunk, [DONE] */
        for (size_t t = 0; t < answer_tokens + 3; t++) {
            if (!stream_reserve(s, 512))
                return false;
            if (t == answer_tokens + 2) {
                stream_put(s, "data: [DONE]\n\n", 14);
                ++*events;
                continue;
            }
            stream_put(s, head, (size_t)head_len);
            if (t == 0) {
                static const char role[] = "{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
                stream_put(s, role, sizeof role - 1);
            } else if (t == answer_tokens + 1) {
                static const char fin[] = "{},\"finish_reason\":\"stop\"}]}\n\n";
                stream_put(s, fin, sizeof fin - 1);
            } else {
                stream_put(s, "{\"content\":\"", 12);
                size_t pieces = 1 + (rng_below(4) == 0); /* some chunks carry two tokens */
                for (size_t k = 0; k < pieces; k++) {
                    const char *tok = tokens[rng_below(sizeof tokens / sizeof tokens[0])];
                    stream_put(s, tok, strlen(tok));
                }
                static const char tail[] = "\"},\"finish_reason\":null}]}\n\n";
                stream_put(s, tail, sizeof tail - 1);
            }
            ++*events;
        }
    }
    return true;
}

static bool generate_large(stream_t *s, size_t target, size_t *events)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char prefix[] = "data: {\"type\":\"blob\",\"seq\":";
    *events = 0;
    while (s->len < target) {
        if (!stream_reserve(s, LARGE_EVENT_DATA + 64))
            return false;
        /* data = {"type":"blob","seq":N,"b64":"…"} padded to exactly 64 KiB */
        size_t start = s->len;
        stream_put(s, prefix, sizeof prefix - 1);
        char num[32];
        int n = snprintf(num, sizeof num, "%zu,\"b64\":\"", *events);
        stream_put(s, num, (size_t)n);
        size_t data_so_far = s->len - start - 6; /* minus "data: " */
        size_t fill = LARGE_EVENT_DATA - data_so_far - 2;
        for (size_t i = 0; i < fill; i += 8) {
            uint64_t r = rng_next();
            for (size_t k = 0; k < 8 && i + k < fill; k++)
                s->p[s->len++] = b64[(r >> (6 * k)) & 63];
        }
        stream_put(s, "\"}\n\n", 4);
        ++*events;
    }
    return true;
}

static bool write_file(const char *path, const stream_t *s)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "sse_parse_bench: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    bool ok = fwrite(s->p, 1, s->len, f) == s->len;
    if (fclose(f) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "sse_parse_bench: cannot write %s: %s\n", path, strerror(errno));
    return ok;
}

/* ------------------------------------------------------------ measuring */

typedef struct {
    size_t events;
    size_t data_bytes;
    unsigned checksum;
} counts_t;

static int count_event(void *user, const telex_sse_event_t *ev)
{
    counts_t *c = user;
    c->events++;
    c->data_bytes += ev->data_len;
    c->checksum += ev->data_len ? (unsigned char)ev->data[ev->data_len - 1] : 0;
    return 0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One pass over the stream in CHUNK_SIZE feeds; returns seconds or -1. */
static double parse_once(telex_sse_parser_t *parser, const stream_t *s)
{
    telex_sse_parser_reset(parser);
    double start = now_seconds();
    for (size_t off = 0; off < s->len; off += CHUNK_SIZE) {
        size_t n = s->len - off < CHUNK_SIZE ? s->len - off : CHUNK_SIZE;
        int err = telex_sse_parser_feed(parser, s->p + off, n);
        if (err != TELEX_SSE_OK) {
            fprintf(stderr, "sse_parse_bench: parse error at bytes %zu-%zu: %s\n", off, off + n - 1,
                    telex_sse_strerror(err));
            return -1;
        }
    }
    return now_seconds() - start;
}

static bool bench_stream(const char *name, const stream_t *s, size_t expected_events, int runs)
{
    counts_t counts = {0};
    const telex_sse_callbacks_t callbacks = {.on_event = count_event};
    telex_sse_parser_t *parser = telex_sse_parser_new(0, &callbacks, &counts);
    if (!parser) {
        fputs("sse_parse_bench: out of memory\n", stderr);
        return false;
    }
    double mbps[MAX_RUNS];
    bool ok = true;
    for (int run = -1; run < runs && ok; run++) { /* run -1 is the warm-up */
        counts = (counts_t){0};
        double seconds = parse_once(parser, s);
        if (seconds < 0) {
            ok = false;
        } else if (counts.events != expected_events) {
            fprintf(stderr, "sse_parse_bench: %s: parsed %zu events, generated %zu\n", name, counts.events,
                    expected_events);
            ok = false;
        } else if (run >= 0) {
            mbps[run] = (double)s->len / 1e6 / (seconds > 1e-9 ? seconds : 1e-9);
        }
    }
    telex_sse_parser_free(parser);
    if (!ok)
        return false;
    qsort(mbps, (size_t)runs, sizeof mbps[0], compare_double);
    double median = runs % 2 ? mbps[runs / 2] : (mbps[runs / 2 - 1] + mbps[runs / 2]) / 2;
    printf("{\"bench\":\"sse_parse\",\"impl\":\"telex\",\"stream\":\"%s\",\"bytes\":%zu,\"events\":%zu,"
           "\"mean_event_bytes\":%.1f,\"chunk\":%d,\"runs\":%d,\"mb_per_s\":%.1f,\"mb_per_s_min\":%.1f,"
           "\"mb_per_s_max\":%.1f}\n",
           name, s->len, counts.events, (double)s->len / (double)counts.events, CHUNK_SIZE, runs, median, mbps[0],
           mbps[runs - 1]);
    fflush(stdout);
    return true;
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *out)
{
    fputs("usage: sse_parse_bench [--mb N] [--runs N] [--stream realistic|large|all]\n"
          "                       [--write-realistic FILE] [--write-large FILE] [--no-run]\n"
          "Measures the libtelex SSE parser on synthetic streams of ~N MB (default 100),\n"
          "fed in 64 KiB chunks; prints one JSON line per stream with the median MB/s of\n"
          "--runs timed passes (default 5) after one warm-up. --write-* also writes the\n"
          "exact streams to files; --no-run only writes them.\n",
          out);
}

static bool parse_int(const char *text, long min, long max, long *value)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < min || v > max)
        return false;
    *value = v;
    return true;
}

int main(int argc, char **argv)
{
    long mb = 100, runs = 5;
    const char *realistic_file = NULL, *large_file = NULL, *which = "all";
    bool run = true;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(arg, "--no-run") == 0) {
            run = false;
            continue;
        } else if (!value) {
            usage(stderr);
            return 2;
        } else if (strcmp(arg, "--mb") == 0) {
            if (!parse_int(value, 1, 100000, &mb)) {
                usage(stderr);
                return 2;
            }
        } else if (strcmp(arg, "--runs") == 0) {
            if (!parse_int(value, 1, MAX_RUNS, &runs)) {
                usage(stderr);
                return 2;
            }
        } else if (strcmp(arg, "--stream") == 0) {
            which = value;
            if (strcmp(which, "realistic") && strcmp(which, "large") && strcmp(which, "all")) {
                usage(stderr);
                return 2;
            }
        } else if (strcmp(arg, "--write-realistic") == 0) {
            realistic_file = value;
        } else if (strcmp(arg, "--write-large") == 0) {
            large_file = value;
        } else {
            usage(stderr);
            return 2;
        }
        i++;
    }

    size_t target = (size_t)mb * 1000 * 1000;
    bool want_realistic = strcmp(which, "large") != 0 || realistic_file;
    bool want_large = strcmp(which, "realistic") != 0 || large_file;
    stream_t realistic = {0}, large = {0};
    size_t realistic_events = 0, large_events = 0;
    bool ok = true;
    if (want_realistic && !generate_realistic(&realistic, target, &realistic_events))
        ok = false;
    if (ok && want_large && !generate_large(&large, target, &large_events))
        ok = false;
    if (!ok)
        fputs("sse_parse_bench: out of memory generating the streams\n", stderr);
    if (ok && realistic_file)
        ok = write_file(realistic_file, &realistic);
    if (ok && large_file)
        ok = write_file(large_file, &large);
    if (ok && run && strcmp(which, "large") != 0)
        ok = bench_stream("realistic", &realistic, realistic_events, (int)runs);
    if (ok && run && strcmp(which, "realistic") != 0)
        ok = bench_stream("large", &large, large_events, (int)runs);
    free(realistic.p);
    free(large.p);
    return ok ? 0 : 1;
}
