/*
 * tests/unit/test_sse_oom.c — libtelex's out-of-memory paths, exercised the
 * way curl and SQLite exercise theirs: every allocation the parser makes is
 * failed in turn (the n-th, for n = 0, 1, 2, ... until a run needs no more),
 * on a stream fed whole and fed a byte at a time. Each run must end in
 * TELEX_SSE_ENOMEM (or NULL from telex_sse_parser_new), report a prefix of
 * the events of a run without failures, stay failed until
 * telex_sse_parser_reset, and then parse the whole stream again; an ASan
 * build checks that nothing leaks or is used after a failure.
 *
 * The allocations are intercepted at link time (-Wl,--wrap=calloc,realloc
 * for this test only, CMakeLists.txt): libtelex keeps its plain calls.
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

/* ---------------------------------------------------------- the injector */

void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);

static long countdown = -1; /* < 0: allocations succeed; 0: the next one fails */
static long made;           /* allocations counted while armed */

static int fail_now(void)
{
    if (countdown < 0)
        return 0;
    made++;
    return countdown-- == 0;
}

void *__wrap_calloc(size_t n, size_t size)
{
    return fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    return fail_now() ? NULL : __real_realloc(p, size);
}

/* ---------------------------------------------------------- a transcript */

typedef struct {
    char text[8192];
    size_t len;
} transcript_t;

static void put(transcript_t *t, const char *s, size_t n)
{
    if (t->len + n < sizeof t->text) {
        memcpy(t->text + t->len, s, n);
        t->len += n;
        t->text[t->len] = '\0';
    }
}

static int on_event(void *user, const telex_sse_event_t *ev)
{
    transcript_t *t = user;
    put(t, "E ", 2);
    put(t, ev->type, ev->type_len);
    put(t, "|", 1);
    put(t, ev->data, ev->data_len);
    put(t, "|", 1);
    put(t, ev->id, ev->id_len);
    put(t, "\n", 1);
    return 0;
}

static int on_retry(void *user, uint64_t ms)
{
    char line[32];
    put(user, line, (size_t)snprintf(line, sizeof line, "R %llu\n", (unsigned long long)ms));
    return 0;
}

static const telex_sse_callbacks_t callbacks = {on_event, on_retry, NULL};

/* Events that make every buffer grow: a long data line, long type and id,
 * a line held across feeds. */
static char stream[6000];
static size_t stream_len;

static void make_stream(void)
{
    char big[1500];
    memset(big, 'd', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    stream_len = (size_t)snprintf(stream, sizeof stream,
                                  "retry: 250\n: a comment\nid: first\ndata: small\n\n"
                                  "event: %.*s\nid: %.*s\ndata: %s\ndata: %s\n\n"
                                  "data: after\n\n",
                                  600, big, 700, big, big, big);
    assert_true(stream_len < sizeof stream);
}

/* Feeds the stream in pieces of `step` bytes; returns the first non-zero
 * result (and checks that every later feed repeats it), or 0. */
static int feed_all(telex_sse_parser_t *p, size_t step)
{
    int first = 0;
    for (size_t at = 0; at < stream_len; at += step) {
        size_t n = stream_len - at < step ? stream_len - at : step;
        int rc = telex_sse_parser_feed(p, stream + at, n);
        if (first != 0)
            assert_int_equal(rc, first); /* failed until reset */
        else
            first = rc;
    }
    return first;
}

static void run_every_failure(size_t step)
{
    make_stream();
    transcript_t whole = {{0}, 0};
    telex_sse_parser_t *p = telex_sse_parser_new(16384, &callbacks, &whole);
    assert_non_null(p);
    assert_int_equal(feed_all(p, step), TELEX_SSE_OK);
    telex_sse_parser_free(p);
    assert_true(whole.len > 0);

    int failures = 0;
    for (long n = 0;; n++) {
        transcript_t t = {{0}, 0};
        countdown = n;
        made = 0;
        p = telex_sse_parser_new(16384, &callbacks, &t);
        int rc = p == NULL ? TELEX_SSE_ENOMEM : feed_all(p, step);
        countdown = -1;
        if (rc == TELEX_SSE_OK) {
            assert_true(made <= n); /* no allocation was failed: every path is covered */
            assert_string_equal(t.text, whole.text);
            telex_sse_parser_free(p);
            break;
        }
        failures++;
        assert_int_equal(rc, TELEX_SSE_ENOMEM);
        assert_int_equal(strncmp(t.text, whole.text, t.len), 0); /* a prefix of the events */
        if (p != NULL) {
            /* reset clears the failure; the same parser reads the stream whole again */
            telex_sse_parser_reset(p);
            t.len = 0;
            t.text[0] = '\0';
            assert_int_equal(feed_all(p, step), TELEX_SSE_OK);
            assert_string_equal(t.text, whole.text);
            telex_sse_parser_free(p);
        }
    }
    assert_true(failures >= 3); /* the parser, and buffers that grew */
    printf("# %s: %d allocation failures, each ENOMEM\n", step == 1 ? "byte by byte" : "whole", failures);
}

static void test_every_allocation_fails_in_turn_whole(void **state)
{
    (void)state;
    run_every_failure(SIZE_MAX / 2);
}

static void test_every_allocation_fails_in_turn_bytewise(void **state)
{
    (void)state;
    run_every_failure(1);
}

static void test_reset_clears_the_failure(void **state)
{
    (void)state;
    make_stream();
    transcript_t t = {{0}, 0};
    telex_sse_parser_t *p = telex_sse_parser_new(16384, &callbacks, &t);
    assert_non_null(p);
    countdown = 0; /* the first buffer the stream needs */
    int rc = telex_sse_parser_feed(p, stream, stream_len);
    countdown = -1;
    assert_int_equal(rc, TELEX_SSE_ENOMEM);
    assert_int_equal(telex_sse_parser_feed(p, "data: x\n\n", 9), TELEX_SSE_ENOMEM);
    telex_sse_parser_reset(p);
    t.len = 0;
    t.text[0] = '\0';
    assert_int_equal(telex_sse_parser_feed(p, "data: x\n\n", 9), TELEX_SSE_OK);
    assert_string_equal(t.text, "E message|x|\n");
    telex_sse_parser_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_allocation_fails_in_turn_whole),
        cmocka_unit_test(test_every_allocation_fails_in_turn_bytewise),
        cmocka_unit_test(test_reset_clears_the_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
