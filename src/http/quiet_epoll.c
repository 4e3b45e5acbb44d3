/*
 * http/quiet_epoll.c — drops libuv's epoll_ctl calls that change nothing.
 * See quiet_epoll.h.
 *
 * The loop's watcher queue and each watcher's masks are in libuv's public
 * headers (uv/unix.h: uv_loop_t's watcher_queue, uv__io_t); a queue link is
 * two pointers, next then prev (libuv's QUEUE, later struct uv__queue: the
 * same layout, which libuv's ABI promise keeps within 1.x).
 */
#include "http/quiet_epoll.h"

#include <stddef.h>

typedef struct link {
    struct link *next, *prev;
} link_t;

size_t telex_quiet_epoll_skip(uv_loop_t *loop)
{
#ifdef __linux__
    link_t *head = (link_t *)loop->watcher_queue;
    size_t skipped = 0;
    link_t *next;
    for (link_t *q = head->next; q != head; q = next) {
        next = q->next;
        uv__io_t *w = (uv__io_t *)((char *)q - offsetof(uv__io_t, watcher_queue));
        /* (a queued watcher wants some events: libuv unqueues it when it
         * wants none; so equal masks are never a new registration) */
        if (w->events != w->pevents)
            continue; /* a new registration or a changed mask: libuv makes the call */
        q->prev->next = q->next;
        q->next->prev = q->prev;
        q->next = q->prev = q; /* unqueued, as libuv leaves it after the call */
        skipped++;
    }
    return skipped;
#else
    (void)loop;
    return 0;
#endif
}

static void on_prepare(uv_prepare_t *handle)
{
    telex_quiet_epoll_skip(handle->loop);
}

void telex_quiet_epoll_start(uv_loop_t *loop, uv_prepare_t *handle)
{
#ifdef __linux__
    uv_prepare_init(loop, handle);
    uv_prepare_start(handle, on_prepare);
    uv_unref((uv_handle_t *)handle);
#else
    (void)loop;
    (void)handle;
#endif
}
