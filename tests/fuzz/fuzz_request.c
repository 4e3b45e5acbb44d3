/*
 * fuzz_request.c — libFuzzer target for the request path: whole HTTP/1.1
 * requests (head and body, several on one connection) sent into a real
 * `telex serve` running inside the fuzzer process, over a loopback socket.
 *
 * Why a real server rather than the validators alone: the bugs worth
 * finding on this path sit between the layers — h2o's HTTP/1 parser and
 * its body buffering, the router's dispatch on method and path, auth on
 * the headers, CORS, the front doors' validators (chat_request.c,
 * responses_request.c, messages_request.c) fed whatever body h2o
 * assembled, and what a request that passes them does (a stream from the
 * built-in demo provider, so no network, through the log and the
 * subscriber to the socket). Calling the validators directly would skip
 * all but one of those and fuzz bodies a client cannot deliver. The cost is
 * speed (a connection per input, a few hundred inputs per second) and
 * coverage that includes the server's background work; the whole gateway
 * is compiled with the fuzzer's coverage and ASan/UBSan (CMake option
 * TELEX_FUZZ), so a memory error anywhere on the path aborts the run with
 * the input that caused it.
 *
 * Setup (once): a temp directory with a telex.yaml (one worker; the demo
 * provider at a fast pace; resume on with no grace; a small max_body_bytes
 * so limits are reached) and its own database; telex_cmd_serve runs on a
 * thread, listening on a free loopback port.
 *
 * Each input is sent on a fresh connection, in two writes cut at a
 * position given by its first byte; then the write side is shut. The
 * target reads until the server closes the connection and checks:
 *  1. the server closes it within 20 s (a request it never ends is a hang);
 *  2. whatever came back is HTTP/1.x responses: it starts with "HTTP/1."
 *     and a three-digit status (an empty answer is allowed: h2o may close
 *     a connection that sent nothing parseable).
 * Crashes and sanitizer reports anywhere in the process are findings too.
 *
 * Build and run: `make fuzz FUZZ_SECONDS=N` (clang; seeds in
 * tests/fuzz/corpus_request/; run with -detect_leaks=0: the server's
 * threads hold memory across inputs by design). FUZZ_REQUEST_SHOW=1 prints
 * what each input got back (to look at one: fuzz_request FILE).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"

#define REQUIRE(cond)                                                                                                  \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);                               \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

static int port;
static char config_path[256], listen_arg[64];

static void *serve(void *arg)
{
    (void)arg;
    char *argv[] = {"serve", "--config", config_path, "--listen", listen_arg, NULL};
    int rc = telex_cmd_serve(5, argv);
    fprintf(stderr, "fuzz_request: telex serve ended (%d)\n", rc);
    abort();
    return NULL;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    REQUIRE(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int connect_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char dir[] = "/tmp/telex-fuzz-request-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    snprintf(config_path, sizeof(config_path), "%s/telex.yaml", dir);
    FILE *f = fopen(config_path, "w");
    REQUIRE(f != NULL);
    fprintf(f, "workers: 1\n"
               "providers:\n"
               "  - {name: demo, kind: demo, tokens_per_second: 100000}\n"
               "models:\n"
               "  - {name: demo, providers: [{provider: demo, model: demo}]}\n"
               "  - {name: claude-demo, providers: [{provider: demo, model: demo}]}\n"
               "limits: {max_body_bytes: 4096, max_header_bytes: 4096}\n"
               "resume: {grace_seconds: 0, retention_seconds: 1}\n"
               "streaming: {shutdown_grace_seconds: 0.1}\n");
    fclose(f);
    char db[300];
    snprintf(db, sizeof(db), "%s/telex.db", dir);
    setenv("TELEX_DB", db, 1);
    setenv("TELEX_LOG", "quiet", 1);
    port = free_port();
    snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%d", port);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, serve, NULL) == 0);
    for (int i = 0; i < 400; i++) { /* up to 20 s */
        int fd = connect_server();
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "fuzz_request: the server did not start\n");
    abort();
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the server closed early (an answer to a bad request): fine */
        p += w;
        n -= (size_t)w;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t cut = size > 1 ? 1 + data[0] % (size - 1) : 1;
    int fd = connect_server();
    REQUIRE(fd >= 0);
    write_all(fd, data + 1, cut - 1);
    write_all(fd, data + cut, size - cut);
    shutdown(fd, SHUT_WR);
    static char answer[1 << 16];
    size_t got = 0;
    uint64_t deadline = now_ms() + 20000;
    for (;;) {
        uint64_t now = now_ms();
        REQUIRE(now < deadline); /* 1. the server ends what it was sent */
        struct pollfd p = {fd, POLLIN, 0};
        int rc = poll(&p, 1, (int)(deadline - now));
        if (rc < 0 && errno == EINTR)
            continue;
        REQUIRE(rc >= 0);
        if (rc == 0)
            continue;
        char *to = got < sizeof(answer) ? answer + got : answer + sizeof(answer) - 4096;
        size_t room = got < sizeof(answer) ? sizeof(answer) - got : 4096;
        if (room > 4096)
            room = 4096;
        ssize_t n = recv(fd, to, room, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* closed (or reset: a connection h2o gave up on) */
        if (got < sizeof(answer))
            got += (size_t)n;
    }
    close(fd);
    if (getenv("FUZZ_REQUEST_SHOW") != NULL) /* to look at what one input gets */
        fprintf(stderr, "--- %zu bytes back:\n%.*s\n---\n", got, (int)(got < 4096 ? got : 4096), answer);
    /* 2. HTTP/1.x responses */
    if (got > 0) {
        REQUIRE(got >= 12 && memcmp(answer, "HTTP/1.", 7) == 0);
        REQUIRE(answer[8] == ' ' && answer[9] >= '1' && answer[9] <= '5' && answer[10] >= '0' && answer[10] <= '9' &&
                answer[11] >= '0' && answer[11] <= '9');
    }
    return 0;
}
