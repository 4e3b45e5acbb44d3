/*
 * test_stream_log.c — the append-only event log: sequence numbers, resume
 * positions, reads across segments, limits and releasing. Every test runs
 * twice: on a shared (locking) log and on a private one (no locks), which
 * must behave the same. Also the per-thread cache of free segments, and
 * readers' cursors (reads that do not walk the history, and stay safe when
 * the segment a cursor names is dropped).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "stream/log.h"

static int shared_on = 1, shared_off = 0;
static int shared(void **state)
{
    return *(int *)*state;
}

/* Concatenates what telex_log_read returns from `from` into out. */
static size_t read_all(telex_log_t *log, uint64_t from, char *out, size_t cap, uint64_t *to)
{
    struct iovec v[64];
    int n = telex_log_read(log, from, v, 64, to);
    assert_true(n >= 0);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        assert_true(len + v[i].iov_len <= cap);
        memcpy(out + len, v[i].iov_base, v[i].iov_len);
        len += v[i].iov_len;
    }
    return len;
}

static void test_append_numbers_events_and_reads_them_back(void **state)
{
    telex_log_t *log = telex_log_new(0, shared(state));
    assert_int_equal(telex_log_append(log, "a\n\n", 3), 1);
    assert_int_equal(telex_log_append(log, "bb\n\n", 4), 2);
    assert_int_equal(telex_log_append(log, "ccc\n\n", 5), 3);
    assert_int_equal(telex_log_events(log), 3);
    assert_int_equal(telex_log_end(log), 12);
    char buf[64];
    uint64_t to;
    size_t n = read_all(log, 0, buf, sizeof(buf), &to);
    assert_int_equal(n, 12);
    assert_int_equal(to, 12);
    assert_memory_equal(buf, "a\n\nbb\n\nccc\n\n", 12);
    /* nothing new past the end */
    struct iovec v[4];
    assert_int_equal(telex_log_read(log, 12, v, 4, &to), 0);
    telex_log_free(log);
}

/* Whole events up to a byte total: a read stops before the event that
 * would pass max_bytes, takes one event alone when it is longer than
 * max_bytes, and the next read goes on from where it stopped, across
 * segments, every event once. */
static void test_read_events_upto_a_byte_cap(void **state)
{
    telex_log_t *log = telex_log_new(0, shared(state));
    char ev[1200];
    size_t lens[201], total = 0;
    for (int i = 1; i <= 200; i++) { /* every 50th event is longer than the cap */
        size_t len = i % 50 == 0 ? 1000 : 20 + (size_t)(i % 7) * 10;
        memset(ev, 'x', len);
        memcpy(ev, "data: ", 6);
        memcpy(ev + len - 2, "\n\n", 2);
        assert_int_equal(telex_log_append(log, ev, len), i);
        lens[i] = len;
        total += len;
    }
    const size_t cap = 300;
    uint64_t pos = 0, next = 1, to;
    telex_log_cursor_t c = {0};
    int reads = 0;
    while (next <= 200) {
        struct iovec v[32];
        int n = telex_log_read_events_upto(log, &c, pos, next, v, 32, cap, &to);
        assert_true(n > 0);
        size_t bytes = 0;
        for (int i = 0; i < n; i++, next++) {
            assert_int_equal(v[i].iov_len, lens[next]);
            bytes += v[i].iov_len;
        }
        if (n == 1 && bytes > cap)
            assert_int_equal(bytes, 1000); /* a long event alone */
        else
            assert_true(bytes <= cap);
        if (next <= 200 && lens[next] <= cap && bytes < cap)
            assert_true(bytes + lens[next] > cap); /* it stopped only where the next did not fit */
        pos += bytes;
        assert_int_equal(to, pos);
        reads++;
    }
    assert_int_equal(pos, total);
    assert_true(reads < 200 / 3); /* several events per read */
    struct iovec v[2];
    assert_int_equal(telex_log_read_events_upto(log, &c, pos, next, v, 2, cap, &to), 0);
    /* max still bounds the count */
    assert_int_equal(telex_log_read_events_upto(log, NULL, 0, 1, v, 2, SIZE_MAX, &to), 2);
    telex_log_free(log);
}

/* Event by event: each read returns whole events, one iovec each, across
 * segments, from any event's start, at most `max`; after a release, a
 * dropped event is -ENOENT. */
static void test_read_events_one_by_one(void **state)
{
    telex_log_t *log = telex_log_new(0, shared(state));
    char ev[64];
    size_t total = 0;
    for (int i = 1; i <= 300; i++) { /* ~4 KiB: several segments */
        int len = snprintf(ev, sizeof ev, "data: event %d\n\n", i);
        assert_int_equal(telex_log_append(log, ev, (size_t)len), i);
        total += (size_t)len;
    }
    for (uint64_t seq = 1; seq <= 300; seq += 37) {
        uint64_t from = 0, to;
        assert_int_equal(telex_log_position_after(log, seq - 1, &from), 0);
        uint64_t pos = from, next = seq;
        while (next <= 300) {
            struct iovec v[7];
            int n = telex_log_read_events(log, pos, next, v, 7, &to);
            assert_true(n > 0 && n <= 7);
            for (int i = 0; i < n; i++, next++) {
                int len = snprintf(ev, sizeof ev, "data: event %llu\n\n", (unsigned long long)next);
                assert_int_equal(v[i].iov_len, (size_t)len);
                assert_memory_equal(v[i].iov_base, ev, (size_t)len);
                pos += v[i].iov_len;
            }
            assert_int_equal(to, pos);
        }
        assert_int_equal(pos, total);
        struct iovec v[2];
        assert_int_equal(telex_log_read_events(log, pos, next, v, 2, &to), 0); /* nothing new */
    }
    uint64_t half;
    assert_int_equal(telex_log_position_after(log, 150, &half), 0);
    telex_log_release_before(log, half);
    struct iovec v[2];
    uint64_t to;
    assert_int_equal(telex_log_read_events(log, 0, 1, v, 2, &to), -ENOENT);
    uint64_t start = telex_log_start(log), first = 0;
    for (uint64_t seq = 0; seq <= 300; seq++) { /* the first event still kept starts at start */
        uint64_t p;
        if (telex_log_position_after(log, seq, &p) == 0 && p == start) {
            first = seq + 1;
            break;
        }
    }
    assert_true(first > 1 && first <= 151);
    assert_int_equal(telex_log_read_events(log, start, first, v, 2, &to), 2);
    int len = snprintf(ev, sizeof ev, "data: event %llu\n\n", (unsigned long long)first);
    assert_memory_equal(v[0].iov_base, ev, (size_t)len);
    telex_log_free(log);
}

static void test_position_after_each_event(void **state)
{
    telex_log_t *log = telex_log_new(0, shared(state));
    telex_log_append(log, "a\n\n", 3);
    telex_log_append(log, "bb\n\n", 4);
    uint64_t pos;
    assert_int_equal(telex_log_position_after(log, 0, &pos), 0);
    assert_int_equal(pos, 0);
    assert_int_equal(telex_log_position_after(log, 1, &pos), 0);
    assert_int_equal(pos, 3);
    assert_int_equal(telex_log_position_after(log, 2, &pos), 0);
    assert_int_equal(pos, 7);
    assert_int_equal(telex_log_position_after(log, 3, &pos), -ERANGE);
    char buf[16];
    uint64_t to;
    assert_int_equal(read_all(log, 3, buf, sizeof(buf), &to), 4);
    assert_memory_equal(buf, "bb\n\n", 4);
    telex_log_free(log);
}

static void test_many_events_span_segments_without_moving(void **state)
{
    telex_log_t *log = telex_log_new(0, shared(state));
    static char expected[200000];
    size_t total = 0;
    struct iovec first;
    uint64_t to;
    for (int i = 1; i <= 3000; i++) {
        char ev[64];
        int len = snprintf(ev, sizeof(ev), "data: event %d\n\n", i);
        assert_int_equal(telex_log_append(log, ev, (size_t)len), i);
        memcpy(expected + total, ev, (size_t)len);
        total += (size_t)len;
        if (i == 1)
            assert_int_equal(telex_log_read(log, 0, &first, 1, &to), 1);
    }
    /* the first segment did not move while the log grew */
    assert_memory_equal(first.iov_base, "data: event 1\n\n", 15);
    static char got[200000];
    size_t n = read_all(log, 0, got, sizeof(got), &to);
    assert_int_equal(n, total);
    assert_memory_equal(got, expected, total);
    /* resuming after event 1234 gives exactly the rest */
    uint64_t pos;
    assert_int_equal(telex_log_position_after(log, 1234, &pos), 0);
    n = read_all(log, pos, got, sizeof(got), &to);
    assert_memory_equal(got, "data: event 1235\n\n", 18);
    assert_int_equal(pos + n, total);
    telex_log_free(log);
}

static void test_large_event_gets_its_own_segment(void **state)
{
    telex_log_t *log = telex_log_new(0, shared(state));
    static char big[50000];
    memset(big, 'x', sizeof(big));
    telex_log_append(log, "a\n\n", 3);
    assert_int_equal(telex_log_append(log, big, sizeof(big)), 2);
    telex_log_append(log, "b\n\n", 3);
    struct iovec v[8];
    uint64_t to;
    int n = telex_log_read(log, 3, v, 8, &to);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].iov_len, sizeof(big));
    assert_int_equal(to, 3 + sizeof(big) + 3);
    telex_log_free(log);
}

/* An event in pieces is the event of the pieces put together: same
 * numbering, positions, limits and refusal after finish. */
static void test_append_in_pieces(void **state)
{
    telex_log_t *log = telex_log_new(1000, shared(state));
    telex_log_piece_t three[] = {{"data: ", 6}, {"{\"a\":1}", 7}, {"\n\n", 2}};
    assert_int_equal(telex_log_appendv(log, three, 3), 1);
    telex_log_piece_t one[] = {{"data: x\n\n", 9}};
    assert_int_equal(telex_log_appendv(log, one, 1), 2);
    telex_log_piece_t empty[] = {{"", 0}, {"id: 1\n", 6}, {"", 0}};
    assert_int_equal(telex_log_appendv(log, empty, 3), 3);
    assert_int_equal(telex_log_end(log), 30);
    char buf[64];
    uint64_t to, pos;
    assert_int_equal(read_all(log, 0, buf, sizeof(buf), &to), 30);
    assert_memory_equal(buf, "data: {\"a\":1}\n\ndata: x\n\nid: 1\n", 30);
    assert_int_equal(telex_log_position_after(log, 1, &pos), 0);
    assert_int_equal(pos, 15);
    /* the limit counts all pieces together */
    static char big[500];
    memset(big, 'b', sizeof(big));
    telex_log_piece_t two_big[] = {{big, sizeof(big)}, {big, 480}};
    assert_int_equal(telex_log_appendv(log, two_big, 2), -ENOSPC);
    telex_log_piece_t fits[] = {{big, sizeof(big)}, {big, 470}};
    assert_int_equal(telex_log_appendv(log, fits, 2), 4);
    assert_int_equal(telex_log_end(log), 1000);
    telex_log_finish(log);
    assert_int_equal(telex_log_appendv(log, one, 1), -EPIPE);
    telex_log_free(log);
}

static void test_max_bytes_refuses_then_release_makes_room(void **state)
{
    telex_log_t *log = telex_log_new(20000, shared(state));
    static char ev[9000];
    memset(ev, 'e', sizeof(ev));
    assert_int_equal(telex_log_append(log, ev, sizeof(ev)), 1);
    assert_int_equal(telex_log_append(log, ev, sizeof(ev)), 2);
    assert_int_equal(telex_log_append(log, ev, sizeof(ev)), -ENOSPC);
    /* every subscriber passed event 1: its segment can go */
    telex_log_release_before(log, 9000);
    assert_int_equal(telex_log_start(log), 9000);
    assert_int_equal(telex_log_retained(log), 9000);
    assert_int_equal(telex_log_append(log, ev, sizeof(ev)), 3);
    uint64_t pos;
    assert_int_equal(telex_log_position_after(log, 0, &pos), -ENOENT);
    assert_int_equal(telex_log_position_after(log, 1, &pos), 0);
    assert_int_equal(pos, 9000);
    assert_int_equal(telex_log_position_after(log, 2, &pos), 0);
    assert_int_equal(pos, 18000);
    struct iovec v[2];
    uint64_t to;
    assert_int_equal(telex_log_read(log, 0, v, 2, &to), -ENOENT);
    telex_log_free(log);
}

static void test_release_of_small_events_keeps_resume_points(void **state)
{
    telex_log_t *log = telex_log_new(0, shared(state));
    for (int i = 0; i < 1000; i++)
        telex_log_append(log, "data: 0123456789\n\n", 18); /* 18000 bytes, 5 segments */
    uint64_t end = telex_log_end(log);
    telex_log_release_before(log, 9000);
    uint64_t start = telex_log_start(log);
    assert_true(start > 0 && start <= 9000);
    assert_int_equal(start % 18, 0);
    uint64_t seq = start / 18, pos;
    assert_int_equal(telex_log_position_after(log, seq, &pos), 0);
    assert_int_equal(pos, start);
    assert_int_equal(telex_log_position_after(log, seq - 1, &pos), -ENOENT);
    assert_int_equal(telex_log_position_after(log, 1000, &pos), 0);
    assert_int_equal(pos, end);
    /* releasing everything keeps the log usable */
    telex_log_release_before(log, end);
    assert_int_equal(telex_log_retained(log), 0);
    assert_int_equal(telex_log_append(log, "x\n\n", 3), 1001);
    char buf[8];
    uint64_t to;
    assert_int_equal(read_all(log, end, buf, sizeof(buf), &to), 3);
    assert_int_equal(telex_log_position_after(log, 1000, &pos), 0);
    assert_int_equal(pos, end);
    telex_log_free(log);
}

static void test_finish_refuses_appends(void **state)
{
    telex_log_t *log = telex_log_new(0, shared(state));
    telex_log_append(log, "a\n\n", 3);
    assert_false(telex_log_finished(log));
    telex_log_finish(log);
    assert_true(telex_log_finished(log));
    assert_int_equal(telex_log_append(log, "b\n\n", 3), -EPIPE);
    assert_int_equal(telex_log_events(log), 1);
    telex_log_free(log);
}

/* Allocation sizes (headers included) in log.c: segments grow 1, 2, 4, 8 KiB. */
#define SEG_MIN 512
#define SEG_MAX 8192

static void test_segments_start_small_and_grow_geometrically(void **state)
{
    telex_log_t *log = telex_log_new(0, shared(state));
    size_t empty = telex_log_allocated(log);
    telex_log_append(log, "data: 0123456789\n\n", 18);
    /* one small segment (and the event table), not 8 KiB */
    assert_true(telex_log_allocated(log) - empty <= SEG_MIN + 16 * sizeof(uint64_t));
    for (int i = 1; i < 2000; i++)
        telex_log_append(log, "data: 0123456789\n\n", 18); /* 36000 bytes kept: nothing released */
    struct iovec v[64];
    uint64_t to;
    int n = telex_log_read(log, 0, v, 64, &to);
    assert_int_equal(to, 36000);
    /* each iovec is one segment, filled to within one event of its room */
    size_t expect[] = {SEG_MIN, 2 * SEG_MIN, 4 * SEG_MIN, 8 * SEG_MIN, SEG_MAX};
    for (int i = 0; i < n - 1; i++) {
        size_t alloc = i < 5 ? expect[i] : SEG_MAX;
        assert_true(v[i].iov_len <= alloc - 32);
        assert_true(v[i].iov_len > alloc - 64 - 18);
        assert_int_equal(v[i].iov_len % 18, 0);
    }
    assert_int_equal(n, 8); /* 0.5 + 1 + 2 + 4 + 3 x 8 KiB + the rest of the 36000 bytes */
    /* everything allocated is about what is retained (segment headers and
     * the tail's free room aside) */
    assert_true(telex_log_allocated(log) < 36000 + SEG_MAX + 4096 * sizeof(uint64_t));
    telex_log_free(log);
}

/* The process-wide total counts every log's segments, and gives them back
 * when they are released or the log is freed. */
static void test_total_bytes_counts_every_log(void **state)
{
    size_t before = telex_log_total_bytes();
    telex_log_t *a = telex_log_new(0, shared(state)), *b = telex_log_new(0, shared(state));
    static char ev[1000];
    memset(ev, 'e', sizeof(ev));
    for (int i = 0; i < 100; i++) {
        telex_log_append(a, ev, sizeof(ev));
        telex_log_append(b, ev, sizeof(ev));
    }
    size_t both = telex_log_total_bytes() - before;
    assert_true(both >= 2 * 100 * sizeof(ev));
    assert_true(both <= 2 * (100 * sizeof(ev) + 2 * SEG_MAX));
    telex_log_release_before(a, telex_log_end(a));
    assert_true(telex_log_total_bytes() - before <= both / 2 + SEG_MAX);
    telex_log_free(a);
    telex_log_free(b);
    assert_int_equal(telex_log_total_bytes(), before);
}

/* A log whose one reader writes and releases as it goes (resume off) holds
 * one small segment, whether the reader keeps up exactly or lags by an
 * event now and then. */
static void test_released_as_written_stays_small(void **state)
{
    telex_log_t *log = telex_log_new(0, shared(state));
    static char ev[300];
    memset(ev, 'e', sizeof(ev));
    uint64_t acked = 0;
    size_t most = 0;
    for (int i = 1; i <= 10000; i++) {
        assert_int_equal(telex_log_append(log, ev, sizeof(ev)), i);
        /* every third event, the write in flight still holds the one before */
        uint64_t pos = i % 3 == 0 ? telex_log_end(log) - sizeof(ev) : telex_log_end(log);
        if (pos > acked)
            acked = pos;
        telex_log_release_before(log, acked);
        size_t a = telex_log_allocated(log);
        if (a > most)
            most = a;
    }
    size_t empty_log = telex_log_allocated(log) - SEG_MIN - 16 * sizeof(uint64_t);
    /* at most two small segments at a time, never a big one */
    assert_true(most - empty_log <= 2 * SEG_MIN + 16 * sizeof(uint64_t));
    telex_log_release_before(log, telex_log_end(log));
    assert_int_equal(telex_log_retained(log), 0);
    assert_true(telex_log_allocated(log) - empty_log <= SEG_MIN + 16 * sizeof(uint64_t));
    telex_log_free(log);
}

/* A reader that fell behind makes the log grow to big segments; once it has
 * caught up and released everything, the log is small again. */
static void test_big_segments_go_once_passed(void **state)
{
    telex_log_t *log = telex_log_new(0, shared(state));
    size_t empty = telex_log_allocated(log);
    static char ev[250];
    memset(ev, 'e', sizeof(ev));
    for (int i = 0; i < 400; i++) /* 100 KB behind */
        telex_log_append(log, ev, sizeof(ev));
    assert_true(telex_log_allocated(log) > 100000);
    uint64_t end = telex_log_end(log);
    telex_log_release_before(log, end);
    assert_int_equal(telex_log_retained(log), 0);
    assert_int_equal(telex_log_start(log), end);
    /* the event table keeps its size; every segment is gone */
    size_t table = 512 * sizeof(uint64_t);
    assert_true(telex_log_allocated(log) <= empty + table);
    /* the next event starts a small segment again, at the right position */
    assert_int_equal(telex_log_append(log, "x\n\n", 3), 401);
    assert_true(telex_log_allocated(log) <= empty + table + SEG_MIN);
    char buf[8];
    uint64_t to;
    assert_int_equal(read_all(log, end, buf, sizeof(buf), &to), 3);
    assert_memory_equal(buf, "x\n\n", 3);
    uint64_t pos;
    assert_int_equal(telex_log_position_after(log, 400, &pos), 0);
    assert_int_equal(pos, end);
    assert_int_equal(telex_log_position_after(log, 399, &pos), -ENOENT);
    telex_log_free(log);
}


/* ------------------------------------------------------------ segment cache */

/* A freed log's segment waits in the thread's cache and is the next log's
 * first segment; dropping the cache frees it. */
static void test_freed_segments_are_reused_on_the_thread(void **state)
{
    telex_log_cache_drop();
    assert_int_equal(telex_log_cache_bytes(), 0);
    telex_log_t *a = telex_log_new(0, shared(state));
    assert_int_equal(telex_log_append(a, "data: 1\n\n", 10), 1);
    struct iovec v[4];
    uint64_t to;
    assert_int_equal(telex_log_read(a, 0, v, 4, &to), 1);
    void *first = v[0].iov_base;
    telex_log_free(a);
    assert_int_equal(telex_log_cache_bytes(), SEG_MIN);
    telex_log_t *b = telex_log_new(0, shared(state));
    assert_int_equal(telex_log_append(b, "data: 2\n\n", 10), 1);
    assert_int_equal(telex_log_read(b, 0, v, 4, &to), 1);
    assert_ptr_equal(v[0].iov_base, first);
    assert_int_equal(telex_log_cache_bytes(), 0);
    /* a burst's bigger segments come back as the reader passes them */
    static char ev[250];
    memset(ev, 'e', sizeof(ev));
    for (int i = 0; i < 40; i++) /* 10 KB: 0.5 + 1 + 2 + 4 + 8 KiB segments */
        telex_log_append(b, ev, sizeof(ev));
    telex_log_release_before(b, telex_log_end(b));
    size_t cached = telex_log_cache_bytes();
    assert_true(cached >= 512 + 1024 + 2048 + 4096);
    telex_log_free(b);
    telex_log_cache_drop();
    assert_int_equal(telex_log_cache_bytes(), 0);
}

/* The cache is bounded: a thousand big logs freed leave at most 256 KiB of
 * each size behind. */
static void test_cache_is_bounded(void **state)
{
    telex_log_cache_drop();
    static char big[5000];
    memset(big, 'b', sizeof(big));
    telex_log_t *logs[1000];
    for (int i = 0; i < 1000; i++) {
        logs[i] = telex_log_new(0, shared(state));
        assert_non_null(logs[i]);
        assert_int_equal(telex_log_append(logs[i], big, sizeof(big)), 1); /* one 8 KiB segment */
    }
    for (int i = 0; i < 1000; i++)
        telex_log_free(logs[i]);
    assert_int_equal(telex_log_cache_bytes(), 256 * 1024);
    telex_log_cache_drop();
}

/* A worker thread's cache is freed when the thread exits (the ASan build's
 * leak check fails this test otherwise). */
static void *churn(void *arg)
{
    int is_shared = *(int *)arg;
    static char ev[250];
    memset(ev, 'e', sizeof(ev));
    for (int i = 0; i < 50; i++) {
        telex_log_t *log = telex_log_new(0, is_shared);
        for (int k = 0; k < 40; k++)
            telex_log_append(log, ev, sizeof(ev));
        telex_log_release_before(log, telex_log_end(log) / 2);
        telex_log_free(log);
    }
    return (void *)telex_log_cache_bytes();
}

static void test_thread_cache_goes_with_the_thread(void **state)
{
    pthread_t t;
    void *held = NULL;
    assert_int_equal(pthread_create(&t, NULL, churn, *state), 0);
    assert_int_equal(pthread_join(t, &held), 0);
    assert_true((size_t)held > 0); /* it had a cache, which the thread's exit freed */
}

/* Appends event seq: "data: event <seq> " + pad bytes + a blank line. */
static void append_numbered(telex_log_t *log, uint64_t seq, size_t pad)
{
    char ev[16384];
    int len = snprintf(ev, 64, "data: event %llu ", (unsigned long long)seq);
    assert_true(pad + (size_t)len + 2 <= sizeof ev);
    memset(ev + len, 'p', pad);
    memcpy(ev + len + pad, "\n\n", 2);
    assert_int_equal(telex_log_append(log, ev, (size_t)len + pad + 2), (int64_t)seq);
}

/* Expects event seq's text (see append_numbered) in v. */
static void expect_numbered(const struct iovec *v, uint64_t seq, size_t pad)
{
    char head[64];
    int len = snprintf(head, sizeof head, "data: event %llu ", (unsigned long long)seq);
    assert_int_equal(v->iov_len, (size_t)len + pad + 2);
    assert_memory_equal(v->iov_base, head, (size_t)len);
    const char *b = v->iov_base;
    for (size_t i = 0; i < pad; i++)
        assert_int_equal(b[len + i], 'p');
    assert_memory_equal(b + len + pad, "\n\n", 2);
}

/* A live reader of a long answer kept whole for resume (nothing released):
 * one event appended, one read, 3,000 times, ~100 segments. With its
 * cursor each read starts in the segment the last one ended in, so all the
 * reads together step past each segment about once; walking from the head
 * every time stepped past ~150,000. A second reader on the log's own cursor
 * (no cursor argument), catching up from event 1 while the first reads on,
 * and a cursor reused for an earlier position, read the same bytes. */
static void test_cursor_reads_walk_no_history(void **state)
{
    telex_log_t *log = telex_log_new(0, shared(state));
    telex_log_cursor_t live = {0};
    uint64_t pos = 0, to;
    size_t before = telex_log_segments_walked();
    for (uint64_t seq = 1; seq <= 3000; seq++) {
        append_numbered(log, seq, 230);
        struct iovec v[2];
        assert_int_equal(telex_log_read_events_at(log, &live, pos, seq, v, 2, &to), 1);
        expect_numbered(&v[0], seq, 230);
        pos = to;
    }
    struct iovec seg[256];
    int segments = telex_log_read(log, 0, seg, 256, &to);
    assert_true(segments > 90);
    size_t walked = telex_log_segments_walked() - before;
    assert_true(walked <= (size_t)segments + 1);

    /* the log's own cursor, for a reader behind the live one */
    uint64_t behind = 0, next = 1, live_seq = 3000;
    while (next <= 3000) {
        struct iovec v[7];
        int want = 3001 - next < 7 ? (int)(3001 - next) : 7;
        int n = telex_log_read_events(log, behind, next, v, want, &to);
        assert_true(n > 0);
        for (int i = 0; i < n; i++)
            expect_numbered(&v[i], next + (uint64_t)i, 230);
        next += (uint64_t)n;
        behind = to;
        append_numbered(log, ++live_seq, 230); /* the live reader's answer goes on */
        struct iovec w[2];
        assert_int_equal(telex_log_read_events_at(log, &live, pos, live_seq, w, 2, &to), 1);
        expect_numbered(&w[0], live_seq, 230);
        pos = to;
    }
    uint64_t at3000;
    assert_int_equal(telex_log_position_after(log, 3000, &at3000), 0);
    assert_int_equal(behind, at3000);

    /* a cursor past the position asked for: read from the head instead */
    uint64_t mid;
    assert_int_equal(telex_log_position_after(log, 1499, &mid), 0);
    struct iovec v[3];
    assert_int_equal(telex_log_read_events_at(log, &live, mid, 1500, v, 3, &to), 3);
    for (int i = 0; i < 3; i++)
        expect_numbered(&v[i], 1500 + (uint64_t)i, 230);
    telex_log_free(log);
}

/* The global history budget (resume.max_total_bytes) makes the gateway drop
 * what every reader has passed, while a reader's cursor names a segment it
 * drops. The cursor must never be followed: not into a segment freed to
 * malloc (the ASan build would report the read), not into one whose memory
 * the thread's cache gave to another log since. The reader then reads on
 * from its position; a position dropped too is -ENOENT. */
static void test_cursor_into_segments_dropped_by_the_budget(void **state)
{
    telex_log_cache_drop();
    telex_log_t *log = telex_log_new(0, shared(state));
    telex_log_cursor_t c = {0};
    struct iovec v[8];
    uint64_t pos = 0, to;
    /* a 10 KB event: a segment of its own, freed to malloc when dropped */
    append_numbered(log, 1, 10000);
    append_numbered(log, 2, 100);
    assert_int_equal(telex_log_read_events_at(log, &c, pos, 1, v, 1, &to), 1);
    expect_numbered(&v[0], 1, 10000);
    pos = to; /* the cursor names event 1's segment, which ends here */
    size_t total = telex_log_total_bytes();
    size_t budget = total - 1; /* over the budget: drop what the reader passed, as chat.c does */
    while (telex_log_total_bytes() > budget && telex_log_start(log) < pos)
        telex_log_release_before(log, pos);
    assert_int_equal(telex_log_start(log), pos);
    assert_true(telex_log_total_bytes() < total - 10000);
    assert_int_equal(telex_log_read_events_at(log, &c, pos, 2, v, 8, &to), 1);
    expect_numbered(&v[0], 2, 100);
    pos = to;

    /* cached sizes: standard segments, dropped and handed to another log */
    for (uint64_t seq = 3; seq <= 150; seq++)
        append_numbered(log, seq, 150);
    struct iovec seg[64];
    int segments = telex_log_read(log, pos, seg, 64, &to);
    assert_true(segments >= 3);
    uint64_t seg2_end = pos + seg[0].iov_len + seg[1].iov_len; /* reads start at pos, in seg[0] */
    /* read event by event up to the end of the second segment */
    uint64_t next = 3;
    while (pos < seg2_end) {
        assert_int_equal(telex_log_read_events_at(log, &c, pos, next, v, 1, &to), 1);
        expect_numbered(&v[0], next, 150);
        next++;
        pos = to;
    }
    assert_int_equal(pos, seg2_end);
    telex_log_release_before(log, pos); /* into the thread's cache */
    assert_int_equal(telex_log_start(log), pos);
    telex_log_t *other = telex_log_new(0, shared(state));
    for (uint64_t seq = 1; seq <= 40; seq++) /* takes those segments from the cache */
        append_numbered(other, seq, 150);
    for (uint64_t seq = 151; seq <= 170; seq++)
        append_numbered(log, seq, 150);
    while (next <= 170) {
        int n = telex_log_read_events_at(log, &c, pos, next, v, 8, &to);
        assert_true(n > 0);
        for (int i = 0; i < n; i++)
            expect_numbered(&v[i], next + (uint64_t)i, 150);
        next += (uint64_t)n;
        pos = to;
    }

    /* the position itself dropped (budget on an unattached stream) */
    uint64_t at159;
    assert_int_equal(telex_log_position_after(log, 159, &at159), 0);
    telex_log_release_before(log, telex_log_end(log));
    telex_log_cursor_t kept = c;
    assert_int_equal(telex_log_read_events_at(log, &c, at159, 160, v, 8, &to), -ENOENT);
    assert_memory_equal(&c, &kept, sizeof c);
    telex_log_free(other);
    telex_log_free(log);
    telex_log_cache_drop();
}

static int drop_cache(void **state)
{
    (void)state;
    telex_log_cache_drop(); /* the main thread does not exit before the leak check */
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_append_numbers_events_and_reads_them_back, &shared_on),
        cmocka_unit_test_prestate(test_position_after_each_event, &shared_on),
        cmocka_unit_test_prestate(test_many_events_span_segments_without_moving, &shared_on),
        cmocka_unit_test_prestate(test_large_event_gets_its_own_segment, &shared_on),
        cmocka_unit_test_prestate(test_max_bytes_refuses_then_release_makes_room, &shared_on),
        cmocka_unit_test_prestate(test_release_of_small_events_keeps_resume_points, &shared_on),
        cmocka_unit_test_prestate(test_finish_refuses_appends, &shared_on),
        cmocka_unit_test_prestate(test_segments_start_small_and_grow_geometrically, &shared_on),
        cmocka_unit_test_prestate(test_released_as_written_stays_small, &shared_on),
        cmocka_unit_test_prestate(test_big_segments_go_once_passed, &shared_on),
        cmocka_unit_test_prestate(test_append_numbers_events_and_reads_them_back, &shared_off),
        cmocka_unit_test_prestate(test_append_in_pieces, &shared_on),
        cmocka_unit_test_prestate(test_append_in_pieces, &shared_off),
        cmocka_unit_test_prestate(test_position_after_each_event, &shared_off),
        cmocka_unit_test_prestate(test_read_events_one_by_one, &shared_on),
        cmocka_unit_test_prestate(test_read_events_upto_a_byte_cap, &shared_on),
        cmocka_unit_test_prestate(test_read_events_upto_a_byte_cap, &shared_off),
        cmocka_unit_test_prestate(test_read_events_one_by_one, &shared_off),
        cmocka_unit_test_prestate(test_many_events_span_segments_without_moving, &shared_off),
        cmocka_unit_test_prestate(test_large_event_gets_its_own_segment, &shared_off),
        cmocka_unit_test_prestate(test_max_bytes_refuses_then_release_makes_room, &shared_off),
        cmocka_unit_test_prestate(test_release_of_small_events_keeps_resume_points, &shared_off),
        cmocka_unit_test_prestate(test_finish_refuses_appends, &shared_off),
        cmocka_unit_test_prestate(test_segments_start_small_and_grow_geometrically, &shared_off),
        cmocka_unit_test_prestate(test_released_as_written_stays_small, &shared_off),
        cmocka_unit_test_prestate(test_big_segments_go_once_passed, &shared_off),
        cmocka_unit_test_prestate(test_freed_segments_are_reused_on_the_thread, &shared_on),
        cmocka_unit_test_prestate(test_freed_segments_are_reused_on_the_thread, &shared_off),
        cmocka_unit_test_prestate(test_cache_is_bounded, &shared_on),
        cmocka_unit_test_prestate(test_total_bytes_counts_every_log, &shared_on),
        cmocka_unit_test_prestate(test_total_bytes_counts_every_log, &shared_off),
        cmocka_unit_test_prestate(test_thread_cache_goes_with_the_thread, &shared_on),
        cmocka_unit_test_prestate(test_thread_cache_goes_with_the_thread, &shared_off),
        cmocka_unit_test_prestate(test_cursor_reads_walk_no_history, &shared_on),
        cmocka_unit_test_prestate(test_cursor_reads_walk_no_history, &shared_off),
        cmocka_unit_test_prestate(test_cursor_into_segments_dropped_by_the_budget, &shared_on),
        cmocka_unit_test_prestate(test_cursor_into_segments_dropped_by_the_budget, &shared_off),
    };
    return cmocka_run_group_tests(tests, NULL, drop_cache);
}
