/*
 * test_wakeup.c — stream/wakeup.c: when a wakeup's callback runs.
 *
 *   - a send from the home thread never runs the callback itself; the loop
 *     runs it once in the same iteration, however many sends came;
 *   - telex_waker_drain_current runs what this thread queued right away (the
 *     end of a provider read), and does nothing on a thread without a waker
 *     or from inside a callback (a callback never runs inside another);
 *   - a send from another thread reaches the home loop through the queue.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "stream/wakeup.h"

typedef struct {
    telex_wakeup_t w;
    int runs;
    int others_seen; /* the other wakeup's runs when this one ran */
    struct probe *other;
    telex_wakeup_t *send_then_drain; /* sent, then a drain, from inside this callback */
} probe_t;
struct probe {
    telex_wakeup_t w;
    int runs;
};

static void on_probe(telex_wakeup_t *w)
{
    probe_t *p = (probe_t *)w;
    p->runs++;
    if (p->send_then_drain != NULL) {
        telex_wakeup_send(p->send_then_drain);
        telex_waker_drain_current(); /* inside a callback: must not run it here */
        p->others_seen = p->other->runs;
    }
}

static void on_other(telex_wakeup_t *w)
{
    ((struct probe *)w)->runs++;
}

typedef struct {
    uv_loop_t loop;
    telex_waker_t *waker;
} fixture_t;

/* One loop and one waker for the whole file (a worker's live as long as the
 * process; there is no free), kept reachable here. */
static fixture_t the_fixture;

static int setup(void **state)
{
    assert_int_equal(uv_loop_init(&the_fixture.loop), 0);
    the_fixture.waker = telex_waker_new(&the_fixture.loop);
    assert_non_null(the_fixture.waker);
    *state = &the_fixture;
    return 0;
}

static int setup_each(void **state)
{
    *state = &the_fixture;
    return 0;
}

static void test_sends_coalesce_and_run_in_the_loop(void **state)
{
    fixture_t *f = *state;
    probe_t p = {0};
    telex_wakeup_init(&p.w, f->waker, on_probe, NULL);
    telex_waker_drain_current(); /* no waker entered on this thread yet: nothing happens */
    telex_waker_enter(f->waker);
    telex_wakeup_send(&p.w);
    telex_wakeup_send(&p.w);
    telex_wakeup_send(&p.w);
    assert_int_equal(p.runs, 0); /* never inside send */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(p.runs, 1);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(p.runs, 1);
}

static void test_drain_runs_queued_wakeups_at_once(void **state)
{
    fixture_t *f = *state;
    telex_waker_enter(f->waker);
    probe_t p = {0};
    struct probe q = {0};
    telex_wakeup_init(&p.w, f->waker, on_probe, NULL);
    telex_wakeup_init(&q.w, f->waker, on_other, NULL);
    telex_wakeup_send(&p.w);
    telex_wakeup_send(&q.w);
    telex_waker_drain_current();
    assert_int_equal(p.runs, 1);
    assert_int_equal(q.runs, 1);
    telex_waker_drain_current(); /* nothing queued: nothing runs */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(p.runs, 1);
    assert_int_equal(q.runs, 1);
    /* sent again after a drain: queued again */
    telex_wakeup_send(&p.w);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(p.runs, 2);
}

static void test_no_callback_runs_inside_another(void **state)
{
    fixture_t *f = *state;
    telex_waker_enter(f->waker);
    probe_t p = {0};
    struct probe q = {0};
    telex_wakeup_init(&p.w, f->waker, on_probe, NULL);
    telex_wakeup_init(&q.w, f->waker, on_other, NULL);
    p.other = &q;
    p.send_then_drain = &q.w;
    telex_wakeup_send(&p.w);
    telex_waker_drain_current();
    assert_int_equal(p.runs, 1);
    assert_int_equal(p.others_seen, 0); /* the drain inside p's callback did nothing */
    /* q waits for the loop (or the next drain) */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(q.runs, 1);
}

static void *send_from_thread(void *arg)
{
    telex_waker_drain_current(); /* a thread without a waker: a no-op */
    telex_wakeup_send(arg);
    return NULL;
}

static void test_send_from_another_thread(void **state)
{
    fixture_t *f = *state;
    telex_waker_enter(f->waker);
    struct probe q = {0};
    telex_wakeup_init(&q.w, f->waker, on_other, NULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, send_from_thread, &q.w), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(q.runs, 0);
    telex_waker_drain_current(); /* not on the local list: the queue brings it */
    for (int i = 0; i < 1000 && q.runs == 0; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(q.runs, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_sends_coalesce_and_run_in_the_loop, setup_each),
        cmocka_unit_test_setup(test_drain_runs_queued_wakeups_at_once, setup_each),
        cmocka_unit_test_setup(test_no_callback_runs_inside_another, setup_each),
        cmocka_unit_test_setup(test_send_from_another_thread, setup_each),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
