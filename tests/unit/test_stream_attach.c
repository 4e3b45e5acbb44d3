/*
 * test_stream_attach.c — attaching a subscriber at a log position, and the
 * producer dropping what every subscriber has written, are atomic with each
 * other: a subscriber that attached is never left with a dropped position,
 * and one whose position is already gone is refused (-ENOENT: a 410).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "stream/stream.h"

static const char EVENT[] = "id: x\ndata: 0123456789012345678901234567890123456789012345678901234567890123456789\n\n";
#define EVENT_LEN (sizeof(EVENT) - 1)

static void append_n(telex_stream_t *s, int n)
{
    for (int i = 0; i < n; i++)
        assert_true(telex_log_append(s->log, EVENT, EVENT_LEN) > 0);
}

static void test_attach_from_a_dropped_position_is_refused(void **state)
{
    (void)state;
    telex_stream_t *s = telex_stream_new(0, 1);
    assert_non_null(s);
    telex_stream_sub_t a = {0}, late = {0};
    assert_int_equal(telex_stream_attach_from(s, &a, 0), 0);
    append_n(s, 1000); /* ~90 KB: several segments */
    uint64_t end = telex_log_end(s->log);
    atomic_store(&a.acked, end);
    telex_stream_release_acked(s);
    assert_true(telex_log_start(s->log) > 0);
    assert_int_equal(telex_stream_attach_from(s, &late, 0), -ENOENT);
    assert_int_equal(telex_stream_subscribers(s, NULL), 1);
    assert_int_equal(telex_stream_attach_from(s, &late, telex_log_start(s->log)), 0);
    assert_int_equal(telex_stream_subscribers(s, NULL), 2);
    telex_stream_detach(s, &late);
    telex_stream_detach(s, &a);
    telex_stream_unref(s);
}

static void test_release_keeps_what_an_attached_subscriber_needs(void **state)
{
    (void)state;
    telex_stream_t *s = telex_stream_new(0, 1);
    telex_stream_sub_t a = {0}, b = {0};
    assert_int_equal(telex_stream_attach_from(s, &a, 0), 0);
    append_n(s, 500);
    uint64_t mid;
    assert_int_equal(telex_log_position_after(s->log, 250, &mid), 0);
    assert_int_equal(telex_stream_attach_from(s, &b, mid), 0);
    atomic_store(&a.acked, telex_log_end(s->log));
    telex_stream_release_acked(s);
    assert_true(telex_log_start(s->log) <= mid);
    assert_true(telex_log_start(s->log) > 0);
    struct iovec v[64];
    uint64_t to;
    assert_true(telex_log_read(s->log, mid, v, 64, &to) > 0);
    assert_int_equal(to, telex_log_end(s->log));
    /* nobody attached: nothing is released */
    telex_stream_detach(s, &a);
    telex_stream_detach(s, &b);
    uint64_t start = telex_log_start(s->log);
    telex_stream_release_acked(s);
    assert_int_equal(telex_log_start(s->log), start);
    telex_stream_unref(s);
}

/* One thread produces and releases behind a fast reader; another keeps
 * attaching at the oldest position it sees. Whenever an attach succeeds,
 * its position must stay readable until it detaches. The producer thread
 * only records what it saw (a failing cmocka assert longjmps, which must
 * not happen off the test's thread); the test thread asserts on it. */
typedef struct {
    telex_stream_t *s;
    telex_stream_sub_t fast;
    atomic_int reading; /* the reader has made its first attach */
    atomic_int stop;
    int appended;       /* producer: events appended ... */
    int append_failed;  /* ... and the index of the one that failed, or -1 */
} race_t;

static void *producer(void *p)
{
    race_t *r = p;
    /* On a busy machine this thread could otherwise be done before the
     * reader's loop starts (and the reader would never attach). */
    while (!atomic_load(&r->reading))
        sched_yield();
    for (int i = 0; i < 20000; i++) {
        if (telex_log_append(r->s->log, EVENT, EVENT_LEN) <= 0) {
            r->append_failed = i;
            break;
        }
        r->appended++;
        atomic_store(&r->fast.acked, telex_log_end(r->s->log));
        telex_stream_release_acked(r->s);
    }
    atomic_store(&r->stop, 1);
    return NULL;
}

static void test_attach_races_release(void **state)
{
    (void)state;
    race_t r = {.s = telex_stream_new(0, 1), .append_failed = -1};
    assert_int_equal(telex_stream_attach_from(r.s, &r.fast, 0), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, producer, &r), 0);
    int attached = 0, refused = 0, unreadable = 0;
    while (!atomic_load(&r.stop)) {
        telex_stream_sub_t sub = {0};
        uint64_t from = telex_log_start(r.s->log);
        if (telex_stream_attach_from(r.s, &sub, from) != 0) {
            refused++;
            continue;
        }
        attached++;
        for (int k = 0; k < 3; k++) {
            struct iovec v[8];
            uint64_t to;
            unreadable += telex_log_read(r.s->log, from, v, 8, &to) < 0; /* never -ENOENT */
        }
        telex_stream_detach(r.s, &sub);
        atomic_store(&r.reading, 1);
    }
    pthread_join(t, NULL); /* the producer's results are ours to read from here */
    assert_int_equal(r.append_failed, -1);
    assert_int_equal(r.appended, 20000);
    assert_int_equal(unreadable, 0); /* asserted after the join: r lives on this stack */
    assert_true(attached > 0);
    printf("# %d attaches, %d refused (their position was dropped first)\n", attached, refused);
    telex_stream_detach(r.s, &r.fast);
    telex_stream_unref(r.s);
}

/* Releasing behind subscribers that keep up leaves the log one small
 * segment (512 bytes), not a large one, however long the answer; with two
 * subscribers the slower one decides. */
static void test_release_behind_readers_keeps_the_log_small(void **state)
{
    (void)state;
    telex_stream_t *s = telex_stream_new(0, 1);
    telex_stream_sub_t a = {0}, b = {0};
    assert_int_equal(telex_stream_attach_from(s, &a, 0), 0);
    assert_int_equal(telex_stream_attach_from(s, &b, 0), 0);
    size_t most = 0;
    for (int i = 1; i <= 5000; i++) {
        append_n(s, 1);
        uint64_t end = telex_log_end(s->log);
        atomic_store(&a.acked, end);
        atomic_store(&b.acked, i % 4 == 0 ? end - EVENT_LEN : end); /* b lags an event now and then */
        telex_stream_release_acked(s);
        size_t now = telex_log_allocated(s->log);
        if (now > most)
            most = now;
    }
    assert_true(telex_log_retained(s->log) <= EVENT_LEN);
    /* the log itself, its event table (16 entries) and at most two 512-byte
     * segments (the events are 88 bytes) */
    assert_true(most <= 256 + 16 * sizeof(uint64_t) + 2 * 512);
    telex_stream_detach(s, &a);
    telex_stream_detach(s, &b);
    telex_stream_unref(s);
}

/* A private stream (resume off: only its worker touches it) works the same
 * without locks, and the registry refuses it, so no other thread can find it. */
static void test_private_stream_is_never_registered(void **state)
{
    (void)state;
    telex_stream_t *s = telex_stream_new(0, 0);
    assert_non_null(s);
    telex_stream_sub_t a = {0};
    assert_int_equal(telex_stream_attach_from(s, &a, 0), 0);
    append_n(s, 100);
    atomic_store(&a.acked, telex_log_end(s->log));
    telex_stream_release_acked(s);
    assert_int_equal(telex_log_retained(s->log), 0);
    size_t before = telex_registry_size();
    assert_int_equal(telex_registry_put(s), -1);
    assert_int_equal(telex_registry_size(), before);
    assert_null(telex_registry_get(s->id));
    telex_stream_detach(s, &a);
    telex_stream_unref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attach_from_a_dropped_position_is_refused),
        cmocka_unit_test(test_release_keeps_what_an_attached_subscriber_needs),
        cmocka_unit_test(test_attach_races_release),
        cmocka_unit_test(test_release_behind_readers_keeps_the_log_small),
        cmocka_unit_test(test_private_stream_is_never_registered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
