/*
 * stream/wakeup.c — cross-thread wake-ups over h2o's multithread queue.
 * See wakeup.h.
 *
 * Same-thread sends go on a local list. It is drained by a uv_check handle,
 * which runs right after the I/O callbacks of the loop iteration in which
 * the send was made: an event read from the provider is written to its
 * same-thread subscribers in that same iteration, after the read callback
 * has returned (never inside it). A send made outside the I/O phase (in a
 * timer or close callback, or during the drain itself) would otherwise wait
 * for the next poll to return; a uv_idle handle, started with the check
 * handle, makes that poll not block and drains the list first if the check
 * handle has not. Both stop once the list is empty, so an idle loop blocks
 * in poll as usual.
 */
#include "stream/wakeup.h"
#include "util/alloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct telex_waker {
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    uv_check_t check;            /* drains `local` after this iteration's I/O callbacks */
    uv_idle_t idle;              /* ... or before the next poll, which then does not block */
    telex_wakeup_t *local;       /* sent from the home thread itself */
};

static __thread telex_waker_t *current_waker;

static void deliver(telex_wakeup_t *w)
{
    atomic_store(&w->queued, 0);
    if (w->retired) {
        if (w->on_retired != NULL)
            w->on_retired(w);
    } else {
        w->cb(w);
    }
}

static void on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        telex_wakeup_t *w = H2O_STRUCT_FROM_MEMBER(telex_wakeup_t, message.link, messages->next);
        h2o_linklist_unlink(&w->message.link);
        deliver(w);
    }
}

static __thread int draining; /* drain_local is on this thread's stack */

static void drain_local(telex_waker_t *k)
{
    if (draining)
        return; /* (a callback that ends a socket callback of its own) */
    draining = 1;
    telex_wakeup_t *list = k->local;
    k->local = NULL;
    /* Reverse into send order, then deliver; callbacks may send again
     * (into a fresh k->local) safely: that list waits for the next check
     * or idle run, as the handles stay started. */
    telex_wakeup_t *ordered = NULL;
    while (list != NULL) {
        telex_wakeup_t *next = list->local_next;
        list->local_next = ordered;
        ordered = list;
        list = next;
    }
    while (ordered != NULL) {
        telex_wakeup_t *next = ordered->local_next;
        deliver(ordered);
        ordered = next;
    }
    if (k->local == NULL) {
        uv_check_stop(&k->check);
        uv_idle_stop(&k->idle);
    }
    draining = 0;
}

void telex_waker_drain_current(void)
{
    if (current_waker != NULL && current_waker->local != NULL)
        drain_local(current_waker);
}

static void on_check(uv_check_t *check)
{
    drain_local(check->data);
}

static void on_idle(uv_idle_t *idle)
{
    drain_local(idle->data);
}

telex_waker_t *telex_waker_new(uv_loop_t *loop)
{
    telex_waker_t *k = telex_xcalloc(1, sizeof(*k));
    if ((k->queue = h2o_multithread_create_queue(loop)) == NULL) {
        free(k);
        return NULL;
    }
    h2o_multithread_register_receiver(k->queue, &k->receiver, on_messages);
    uv_check_init(loop, &k->check);
    k->check.data = k;
    uv_idle_init(loop, &k->idle);
    k->idle.data = k;
    return k;
}

int telex_waker_is_current(telex_waker_t *waker)
{
    return current_waker == waker;
}

void telex_waker_enter(telex_waker_t *waker)
{
    current_waker = waker;
}

void telex_wakeup_init(telex_wakeup_t *w, telex_waker_t *home, void (*cb)(telex_wakeup_t *),
                       void (*on_retired)(telex_wakeup_t *))
{
    memset(w, 0, sizeof(*w));
    w->home = home;
    w->cb = cb;
    w->on_retired = on_retired;
}

void telex_wakeup_send(telex_wakeup_t *w)
{
    if (w->retired)
        return;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&w->queued, &expected, 1))
        return; /* already on its way */
    if (current_waker == w->home) {
        telex_waker_t *k = w->home;
        if (k->local == NULL) {
            uv_check_start(&k->check, on_check);
            uv_idle_start(&k->idle, on_idle);
        }
        w->local_next = k->local;
        k->local = w;
    } else {
        h2o_multithread_send_message(&w->home->receiver, &w->message);
    }
}

int telex_wakeup_retire(telex_wakeup_t *w)
{
    w->retired = 1;
    return atomic_load(&w->queued) ? -1 : 0;
}
