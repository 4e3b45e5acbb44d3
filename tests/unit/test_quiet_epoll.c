/*
 * tests/unit/test_quiet_epoll.c — http/quiet_epoll.c takes off libuv's
 * queue only the epoll_ctl calls that would re-register the same events:
 * on a socket being read, each completed write costs libuv one such call,
 * and none with the prepare handle running; reads and writes still flow,
 * a read stopped and started again still gets its data (libuv's ADD path),
 * and a write that has to wait for room still completes (the mask changes
 * to add EPOLLOUT, and that call must still be made).
 *
 * epoll_ctl is interposed here (libuv is a shared library: the executable's
 * definition wins) to count the calls whose mask equals the one the kernel
 * already holds for that descriptor.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "http/quiet_epoll.h"

#define MAX_FD 4096
static uint32_t registered[MAX_FD]; /* the mask the kernel holds, per fd (0: none) */
static int same_mask_calls;

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (fd >= 0 && fd < MAX_FD) {
        if (op == EPOLL_CTL_MOD && ev != NULL && registered[fd] == ev->events)
            same_mask_calls++;
        if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && ev != NULL)
            registered[fd] = ev->events;
        else if (op == EPOLL_CTL_DEL)
            registered[fd] = 0;
    }
    long rc = syscall(SYS_epoll_ctl, epfd, op, fd, ev);
    if (rc < 0)
        return -1; /* errno set by syscall(2) */
    return 0;
}

typedef struct {
    uv_loop_t loop;
    uv_pipe_t a; /* the libuv side of a socket pair */
    int b;       /* the raw other end */
    size_t got, written;
} pair_t;

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char space[65536];
    (void)h, (void)hint;
    *buf = uv_buf_init(space, sizeof space);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    if (n > 0)
        ((pair_t *)s->data)->got += (size_t)n;
}

static void on_written(uv_write_t *req, int status)
{
    assert_int_equal(status, 0);
    ((pair_t *)req->data)->written++;
}

static void pair_open(pair_t *p)
{
    int sv[2];
    memset(p, 0, sizeof *p);
    memset(registered, 0, sizeof registered);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(uv_loop_init(&p->loop), 0);
    assert_int_equal(uv_pipe_init(&p->loop, &p->a, 0), 0);
    assert_int_equal(uv_pipe_open(&p->a, sv[0]), 0);
    p->a.data = p;
    p->b = sv[1];
    assert_int_equal(uv_read_start((uv_stream_t *)&p->a, on_alloc, on_read), 0);
}

static void close_one(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void pair_close(pair_t *p)
{
    uv_walk(&p->loop, close_one, NULL); /* the pipe and the prepare handle, if any */
    uv_run(&p->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&p->loop), 0);
    close(p->b);
}

/* Runs the loop until cond holds (at most 1,000 turns: a lost epoll
 * registration shows as a condition that never comes). */
#define RUN_UNTIL(p, cond)                                                                                             \
    do {                                                                                                               \
        int turns_ = 0;                                                                                                \
        while (!(cond) && turns_++ < 1000)                                                                             \
            uv_run(&(p)->loop, UV_RUN_NOWAIT);                                                                         \
        assert_true(cond);                                                                                             \
    } while (0)

static void drain_b(pair_t *p)
{
    char buf[65536];
    while (read(p->b, buf, sizeof buf) > 0) {
    }
}

/* rounds of: a writes a byte, b writes a byte; both arrive. Returns the
 * same-mask epoll_ctl calls made meanwhile. */
static int exchange(pair_t *p, int rounds)
{
    static uv_write_t reqs[64];
    assert_true(rounds <= 64);
    int before = same_mask_calls;
    for (int i = 0; i < rounds; i++) {
        uv_buf_t buf = uv_buf_init("x", 1);
        reqs[i].data = p;
        size_t written = p->written, got = p->got;
        assert_int_equal(uv_write(&reqs[i], (uv_stream_t *)&p->a, &buf, 1, on_written), 0);
        assert_int_equal(write(p->b, "y", 1), 1);
        RUN_UNTIL(p, p->written == written + 1 && p->got == got + 1);
        drain_b(p);
    }
    uv_run(&p->loop, UV_RUN_NOWAIT); /* a last poll: what the last round queued */
    return same_mask_calls - before;
}

static void test_no_same_mask_calls(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p);
    uv_run(&p.loop, UV_RUN_NOWAIT); /* the first registration */
    int plain = exchange(&p, 20);
    if (plain == 0) {
        pair_close(&p);
        print_message("this libuv makes no same-mask epoll_ctl calls: nothing for quiet_epoll to do\n");
        skip();
    }
    uv_prepare_t quiet;
    telex_quiet_epoll_start(&p.loop, &quiet);
    assert_int_equal(exchange(&p, 20), 0);
    assert_true(plain >= 20); /* one per completed write before (how much it saves) */
    pair_close(&p);
}

static void test_stop_start_and_blocked_write(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p);
    uv_prepare_t quiet;
    telex_quiet_epoll_start(&p.loop, &quiet);
    uv_run(&p.loop, UV_RUN_NOWAIT);
    assert_int_equal(exchange(&p, 5), 0);

    /* read stopped for a turn, then started again (libuv: ADD, EEXIST, MOD) */
    uv_read_stop((uv_stream_t *)&p.a);
    uv_run(&p.loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_read_start((uv_stream_t *)&p.a, on_alloc, on_read), 0);
    size_t got = p.got;
    assert_int_equal(write(p.b, "z", 1), 1);
    RUN_UNTIL(&p, p.got == got + 1);

    /* a write larger than the socket buffers waits for EPOLLOUT */
    size_t big = 8u << 20;
    char *data = calloc(1, big);
    assert_non_null(data);
    uv_write_t req;
    req.data = &p;
    uv_buf_t buf = uv_buf_init(data, (unsigned)big);
    size_t written = p.written;
    assert_int_equal(uv_write(&req, (uv_stream_t *)&p.a, &buf, 1, on_written), 0);
    int turns = 0;
    while (p.written == written && turns++ < 100000) {
        drain_b(&p);
        uv_run(&p.loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(p.written, written + 1);
    free(data);
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_same_mask_calls),
        cmocka_unit_test(test_stop_start_and_blocked_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
