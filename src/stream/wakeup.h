/*
 * stream/wakeup.h — "run this on that worker's thread, soon".
 *
 * Each worker owns a telex_waker_t (an h2o multithread queue on its loop).
 * A telex_wakeup_t belongs to one worker (its home) and names a callback.
 * telex_wakeup_send() may be called from any thread and never runs the
 * callback itself: from the home thread it is queued on a local list that
 * the loop drains in the same iteration, once the I/O callbacks of that
 * iteration have returned (no syscall) — or earlier, when an I/O callback
 * ends with telex_waker_drain_current(); from another thread it goes
 * through the queue. Sends that arrive while one is queued coalesce
 * into one call. No lock is held while the callback runs, and a callback is
 * never re-entered from inside another.
 *
 * Freeing: a wakeup may still be queued when its owner wants to free it.
 * telex_wakeup_retire() (on the home thread, once no thread can send to it
 * any more) returns 0 when it may be freed now; otherwise the queue calls
 * on_retired later, on the home thread, and the owner frees it there.
 */
#ifndef TELEX_STREAM_WAKEUP_H
#define TELEX_STREAM_WAKEUP_H

#include <stdatomic.h>

#include <h2o.h>
#include <h2o/multithread.h>
#include <uv.h>

typedef struct telex_waker telex_waker_t;
typedef struct telex_wakeup telex_wakeup_t;

struct telex_wakeup {
    h2o_multithread_message_t message;
    telex_wakeup_t *local_next;
    telex_waker_t *home;
    atomic_int queued;
    int retired;
    void (*cb)(telex_wakeup_t *wakeup);
    void (*on_retired)(telex_wakeup_t *wakeup);
};

/* Created for a worker (on any thread); telex_waker_enter must then be
 * called on the worker's own thread before its loop runs. */
telex_waker_t *telex_waker_new(uv_loop_t *loop);
void telex_waker_enter(telex_waker_t *waker);
/* Non-zero when the calling thread is `waker`'s worker thread. */
int telex_waker_is_current(telex_waker_t *waker);
/* Runs what this thread queued for its own worker now, instead of after
 * every other I/O callback of the loop iteration. Only for the last thing
 * a socket callback does (nothing of its own used after it; never from
 * inside a wakeup callback: then it does nothing): a provider read's
 * events reach their readers' sockets before the next socket's read is
 * handled, as a proxy that writes what it read at once would. No-op on a
 * thread without a waker. */
void telex_waker_drain_current(void);

void telex_wakeup_init(telex_wakeup_t *w, telex_waker_t *home, void (*cb)(telex_wakeup_t *),
                       void (*on_retired)(telex_wakeup_t *));
void telex_wakeup_send(telex_wakeup_t *w);
int telex_wakeup_retire(telex_wakeup_t *w);

#endif
