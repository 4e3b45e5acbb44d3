/*
 * tests/unit/test_cluster_rconn.c — cluster/rconn.c against a fake Redis
 * (a loopback socket this test answers by hand): a command waits in
 * hiredis' buffer until the loop polls, telex_rconn_flush puts it on the
 * socket at once without running a callback, and the reply still reaches
 * its callback through the loop afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/rconn.h"

static const char PING_CMD[] = "*1\r\n$4\r\nPING\r\n"; /* the idle PING rconn may send on its own */
static const char ECHO_CMD[] = "*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";

/* A connection lives as long as its process (rconn.h): kept here. */
static uv_loop_t loop;
static telex_rconn_t *rc;
static int up, replies;
static char reply_text[32];

static void on_up(telex_rconn_t *r, void *user)
{
    (void)r, (void)user;
    up = 1;
}

static void on_echo(telex_rconn_t *r, redisReply *reply, void *priv)
{
    (void)r, (void)priv;
    replies++;
    if (reply != NULL && reply->type == REDIS_REPLY_STRING)
        snprintf(reply_text, sizeof reply_text, "%s", reply->str);
}

/* What the server side has received so far (non-blocking). */
static size_t drain(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + n, cap - n - 1, MSG_DONTWAIT);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

/* Answers every idle PING in buf with +PONG; returns how many there were. */
static int pong_all(int fd, const char *buf)
{
    int k = 0;
    for (const char *p = buf; (p = strstr(p, PING_CMD)) != NULL; p += sizeof PING_CMD - 1, k++)
        assert_int_equal(send(fd, "+PONG\r\n", 7, 0), 7);
    return k;
}

/* Answers any idle PING the connection sent so far, until none waits. */
static void settle(telex_rconn_t *r, int sfd)
{
    char buf[512];
    for (;;) {
        size_t n = drain(sfd, buf, sizeof buf);
        if (n > 0)
            pong_all(sfd, buf);
        else if (telex_rconn_pending(r) == 0)
            break;
        uv_run(&loop, UV_RUN_NOWAIT);
    }
}

/* A fake Redis on loopback and a connection to it (up); returns the
 * server's side of the connection, *lfd its listener. */
static int connect_fake(telex_rconn_t **out, int *lfd)
{
    *lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(*lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(*lfd, 4), 0);
    assert_int_equal(getsockname(*lfd, (struct sockaddr *)&sa, &sl), 0);
    telex_redis_url_t url = {.port = ntohs(sa.sin_port)};
    snprintf(url.host, sizeof url.host, "127.0.0.1");
    telex_rconn_hooks_t hooks = {on_up, NULL, NULL};
    up = 0;
    *out = telex_rconn_new(&loop, &url, "test", 5000, &hooks);
    assert_non_null(*out);
    telex_rconn_flush(*out); /* not connected yet: nothing to do, nothing breaks */
    telex_rconn_start(*out);
    int sfd = accept(*lfd, NULL, NULL); /* the kernel completed the handshake */
    assert_true(sfd >= 0);
    while (!up)
        uv_run(&loop, UV_RUN_ONCE);
    return sfd;
}

static void test_flush_writes_at_once(void **state)
{
    (void)state;
    int lfd, sfd = connect_fake(&rc, &lfd);

    char buf[512];
    settle(rc, sfd); /* (an idle PING, if the loop ran long enough to send one) */
    const char *argv[] = {"ECHO", "hello"};
    size_t len[] = {4, 5};
    assert_int_equal(telex_rconn_cmd(rc, on_echo, NULL, 0, 2, argv, len), 0);
    /* given, not written: hiredis writes when the loop next polls the socket */
    assert_int_equal(drain(sfd, buf, sizeof buf), 0);
    assert_int_equal(telex_rconn_flushed(rc), 0);

    telex_rconn_flush(rc);
    size_t n = drain(sfd, buf, sizeof buf);
    assert_true(n >= sizeof ECHO_CMD - 1);
    assert_string_equal(buf + n - (sizeof ECHO_CMD - 1), ECHO_CMD); /* after any idle PING given before it */
    assert_int_equal(telex_rconn_flushed(rc), 1);
    assert_int_equal(replies, 0); /* no callback runs inside the flush */

    /* the reply comes back through the loop as usual */
    pong_all(sfd, buf);
    assert_int_equal(send(sfd, "$5\r\nhello\r\n", 11, 0), 11);
    while (replies == 0)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(replies, 1);
    assert_string_equal(reply_text, "hello");

    /* nothing given: a no-op; the connection goes on working the usual way */
    telex_rconn_flush(rc);
    telex_rconn_flush(NULL);
    assert_int_equal(telex_rconn_cmd(rc, on_echo, NULL, 0, 2, argv, len), 0);
    n = 0;
    while (n == 0 || strstr(buf, ECHO_CMD) == NULL) {
        uv_run(&loop, UV_RUN_NOWAIT);
        n += drain(sfd, buf + n, sizeof buf - n);
    }
    pong_all(sfd, buf);
    assert_int_equal(send(sfd, "$5\r\nhello\r\n", 11, 0), 11);
    while (replies == 1)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(replies, 2);
    close(sfd);
    close(lfd);
}

int main(void)
{
    if (uv_loop_init(&loop) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flush_writes_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
