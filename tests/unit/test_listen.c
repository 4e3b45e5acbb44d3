/*
 * tests/unit/test_listen.c — the workers' listening sockets are shared among
 * themselves and with no one else: telex_listen_open refuses an address
 * another socket listens on (with or without SO_REUSEPORT, at the same
 * address or the wildcard), and telex_listen_has_foreign finds a listener
 * that joined the port's SO_REUSEPORT group (what two processes starting at
 * the same instant could do) while ignoring the process's own sockets.
 * Each of the two checks is also tested alone.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/listen.h"

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    inet_pton(AF_INET, ip, &in->sin_addr);
    return ss;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

/* A listener as another program would open it. */
static int foreign_listener(struct sockaddr_storage *addr, int reuseport)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
    assert_int_equal(bind(fd, (struct sockaddr *)addr, sizeof(struct sockaddr_in)), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t len = sizeof(*addr);
    getsockname(fd, (struct sockaddr *)addr, &len);
    return fd;
}

static void close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

static void test_workers_share_one_port(void **state)
{
    (void)state;
    struct sockaddr_storage addr = v4("127.0.0.1", 0);
    int fds[3];
    char err[256] = "";
    assert_int_equal(telex_listen_open(&addr, sizeof(struct sockaddr_in), 3, fds, err, sizeof(err)), 0);
    uint16_t port = port_of(&addr);
    assert_true(port != 0);
    for (int i = 0; i < 3; i++) {
        struct sockaddr_storage b;
        socklen_t len = sizeof(b);
        assert_int_equal(getsockname(fds[i], (struct sockaddr *)&b, &len), 0);
        assert_int_equal(port_of(&b), port);
    }
    assert_int_equal(telex_listen_has_foreign(&addr, fds, 3), 0);
    /* The same port again, given explicitly, once they are closed: free. */
    close_all(fds, 3);
    assert_int_equal(telex_listen_open(&addr, sizeof(struct sockaddr_in), 2, fds, err, sizeof(err)), 0);
    close_all(fds, 2);
}

static void test_refuses_a_port_held_by_anyone(void **state)
{
    (void)state;
    for (int reuseport = 0; reuseport <= 1; reuseport++) {
        struct sockaddr_storage held = v4("127.0.0.1", 0);
        int other = foreign_listener(&held, reuseport);
        struct sockaddr_storage addr = held;
        int fds[2] = {-1, -1};
        char err[256] = "";
        assert_int_equal(telex_listen_open(&addr, sizeof(struct sockaddr_in), 2, fds, err, sizeof(err)),
                         -EADDRINUSE);
        assert_non_null(strstr(err, "address already in use by another process"));
        /* The wildcard covers 127.0.0.1 too. */
        addr = v4("0.0.0.0", port_of(&held));
        assert_int_equal(telex_listen_open(&addr, sizeof(struct sockaddr_in), 2, fds, err, sizeof(err)),
                         -EADDRINUSE);
        close(other);
    }
}

static void test_finds_a_listener_that_joined_the_group(void **state)
{
    (void)state;
    struct sockaddr_storage addr = v4("127.0.0.1", 0);
    int ours = foreign_listener(&addr, 1);
    struct sockaddr_storage same = addr;
    int theirs = foreign_listener(&same, 1); /* SO_REUSEPORT, same user: the kernel lets it join */
    assert_int_equal(telex_listen_has_foreign(&addr, &ours, 1), 1);
    int both[2] = {ours, theirs};
    assert_int_equal(telex_listen_has_foreign(&addr, both, 2), 0);
    close(theirs);
    assert_int_equal(telex_listen_has_foreign(&addr, &ours, 1), 0);

    /* One on the wildcard of the same port overlaps too; another port does not. */
    struct sockaddr_storage any = v4("0.0.0.0", port_of(&addr));
    theirs = foreign_listener(&any, 1);
    assert_int_equal(telex_listen_has_foreign(&addr, &ours, 1), 1);
    close(theirs);
    struct sockaddr_storage elsewhere = v4("127.0.0.1", 0);
    theirs = foreign_listener(&elsewhere, 1);
    assert_int_equal(telex_listen_has_foreign(&addr, &ours, 1), 0);
    close(theirs);
    close(ours);
}

/* The probe alone: it sees a holder with or without SO_REUSEPORT, and it
 * does not mistake connections of an earlier run in TIME_WAIT for one. */
static void test_probe(void **state)
{
    (void)state;
    for (int reuseport = 0; reuseport <= 1; reuseport++) {
        struct sockaddr_storage held = v4("127.0.0.1", 0);
        int other = foreign_listener(&held, reuseport);
        assert_int_equal(telex_listen_probe(&held, sizeof(struct sockaddr_in)), -EADDRINUSE);
        close(other);
        assert_int_equal(telex_listen_probe(&held, sizeof(struct sockaddr_in)), 0);
    }

    /* A server that closes a connection first keeps its side in TIME_WAIT. */
    struct sockaddr_storage addr = v4("127.0.0.1", 0);
    int server = foreign_listener(&addr, 0);
    int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(client, (struct sockaddr *)&addr, sizeof(struct sockaddr_in)), 0);
    int conn = accept(server, NULL, NULL);
    assert_true(conn >= 0);
    close(conn);
    char byte;
    assert_int_equal(read(client, &byte, 1), 0); /* the server's FIN */
    close(client);
    close(server);
    assert_int_equal(telex_listen_probe(&addr, sizeof(struct sockaddr_in)), 0);
    int fds[2];
    assert_int_equal(telex_listen_join(&addr, sizeof(struct sockaddr_in), 2, fds), 0);
    close_all(fds, 2);
}

/* The check after binding alone: a listener that was already in the port's
 * SO_REUSEPORT group (as a second process starting at the same instant
 * could be) makes join fail and close what it opened. */
static void test_join_refuses_a_group_with_strangers(void **state)
{
    (void)state;
    struct sockaddr_storage addr = v4("127.0.0.1", 0);
    int theirs = foreign_listener(&addr, 1);
    int fds[2] = {-1, -1};
    assert_int_equal(telex_listen_join(&addr, sizeof(struct sockaddr_in), 2, fds), -EADDRINUSE);
    assert_int_equal(telex_listen_has_foreign(&addr, &theirs, 1), 0); /* ours were closed */
    close(theirs);
    assert_int_equal(telex_listen_join(&addr, sizeof(struct sockaddr_in), 2, fds), 0);
    close_all(fds, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_share_one_port),
        cmocka_unit_test(test_refuses_a_port_held_by_anyone),
        cmocka_unit_test(test_finds_a_listener_that_joined_the_group),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_join_refuses_a_group_with_strangers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
