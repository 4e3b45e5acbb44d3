/*
 * cli/mock.c — `telex mock`: run the fake upstream (OpenAI and Anthropic).
 *
 * Parses the command line (flags set the defaults of every request; a
 * request's `mock` object overrides them), then runs the HTTP server with
 * the mock's handlers until SIGINT/SIGTERM. Exit codes as in commands.h.
 * HOST:PORT is parsed here (IPv4, [IPv6] or a host name; port 0 = any
 * free port, reported by the "listening" log line).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "http/server.h"
#include "mock/mock.h"

#define DEFAULT_LISTEN "127.0.0.1:9090"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: telex mock [options]\n"
            "\n"
            "A fake OpenAI and Anthropic upstream for tests, demos and load tests. It serves\n"
            "POST /v1/chat/completions (and /openai/deployments/NAME/chat/completions),\n"
            "POST /v1/messages (Anthropic), GET /v1/models, GET /healthz, and GET/DELETE\n"
            "/mock/requests (the recent requests it received). A request may override any\n"
            "default below, and inject faults, with a \"mock\" object in its JSON body;\n"
            "see docs/mock.md.\n"
            "\n"
            "options:\n"
            "  --listen HOST:PORT  address to listen on (default " DEFAULT_LISTEN "; port 0 picks a\n"
            "                      free port, printed in the \"listening\" log line)\n"
            "  --workers N         worker threads (default 1)\n"
            "  --tokens N          content chunks per answer (default 20)\n"
            "  --delay-ms MS       pause between content chunks (default 20)\n"
            "  --ttft-ms MS        time to first chunk (default 0)\n"
            "  --stall-ms MS       how long a stall_after fault lasts (default 600000)\n"
            "  --journal N         requests kept for /mock/requests (default %d, 0 = none)\n"
            "  --models ID,ID...   the model ids GET /v1/models lists (default mock)\n"
            "  --format FORMAT     answer every request in this format: openai or anthropic\n"
            "                      (default: the path decides; /v1/messages is anthropic)\n"
            "  -h, --help          this help\n",
            TELEX_MOCK_DEFAULT_JOURNAL);
}

/* Parses HOST:PORT, [IPV6]:PORT or :PORT (all interfaces). 0 or -1. */
static int parse_listen(const char *s, struct sockaddr_storage *addr, socklen_t *len)
{
    char host[256];
    const char *port_str;
    memset(addr, 0, sizeof(*addr));
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
            return -1;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        port_str = end + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
            return -1;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        port_str = colon + 1;
    }
    char *endp;
    errno = 0;
    long port = strtol(port_str, &endp, 10);
    if (port_str[0] == '\0' || *endp != '\0' || errno != 0 || port < 0 || port > 65535)
        return -1;
    struct sockaddr_in *in4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        in4->sin_family = AF_INET;
        in4->sin_addr.s_addr = htonl(INADDR_ANY);
        in4->sin_port = htons((uint16_t)port);
        *len = sizeof(*in4);
        return 0;
    }
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *len = sizeof(*in4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*in6);
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL)
        return -1;
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    if (addr->ss_family == AF_INET)
        in4->sin_port = htons((uint16_t)port);
    else if (addr->ss_family == AF_INET6)
        in6->sin6_port = htons((uint16_t)port);
    else
        return -1;
    return 0;
}

static int parse_number(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int telex_cmd_mock(int argc, char **argv)
{
    telex_mock_defaults_t defaults;
    telex_mock_defaults_init(&defaults);
    const char *listen = DEFAULT_LISTEN;
    long long workers = 1;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            return TELEX_EXIT_OK;
        }
        /* --name=value or --name value */
        char name[32];
        const char *value = NULL;
        const char *eq = strchr(arg, '=');
        size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
        if (strncmp(arg, "--", 2) != 0 || nl >= sizeof(name)) {
            fprintf(stderr, "telex mock: unexpected argument '%s'\n\n", arg);
            usage(stderr);
            return TELEX_EXIT_USAGE;
        }
        memcpy(name, arg, nl);
        name[nl] = '\0';
        if (eq != NULL)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        if (value == NULL) {
            fprintf(stderr, "telex mock: %s needs a value\n", name);
            return TELEX_EXIT_USAGE;
        }
        long long v = 0;
        int bad = 0;
        if (strcmp(name, "--listen") == 0)
            listen = value;
        else if (strcmp(name, "--workers") == 0)
            bad = parse_number(value, 1, 256, &workers);
        else if (strcmp(name, "--tokens") == 0)
            bad = parse_number(value, 0, TELEX_MOCK_MAX_TOKENS, &v), defaults.tokens = v;
        else if (strcmp(name, "--delay-ms") == 0)
            bad = parse_number(value, 0, TELEX_MOCK_MAX_DELAY_MS, &v), defaults.delay_ms = v;
        else if (strcmp(name, "--ttft-ms") == 0)
            bad = parse_number(value, 0, TELEX_MOCK_MAX_DELAY_MS, &v), defaults.ttft_ms = v;
        else if (strcmp(name, "--stall-ms") == 0)
            bad = parse_number(value, 0, TELEX_MOCK_MAX_DELAY_MS, &v), defaults.stall_ms = v;
        else if (strcmp(name, "--journal") == 0)
            bad = parse_number(value, 0, 1000000, &v), defaults.journal_size = (size_t)v;
        else if (strcmp(name, "--models") == 0)
            defaults.models = value;
        else if (strcmp(name, "--format") == 0) {
            bad = strcmp(value, "openai") != 0 && strcmp(value, "anthropic") != 0;
            defaults.format = strcmp(value, "anthropic") == 0 ? TELEX_MOCK_FORMAT_ANTHROPIC : TELEX_MOCK_FORMAT_OPENAI;
        }
        else {
            fprintf(stderr, "telex mock: unknown option '%s'\n\n", name);
            usage(stderr);
            return TELEX_EXIT_USAGE;
        }
        if (bad) {
            fprintf(stderr, "telex mock: bad value '%s' for %s (see telex mock --help)\n", value, name);
            return TELEX_EXIT_USAGE;
        }
    }

    telex_server_options_t options;
    memset(&options, 0, sizeof(options));
    if (parse_listen(listen, &options.listen_addr, &options.listen_addrlen) != 0) {
        fprintf(stderr, "telex mock: bad --listen '%s' (want HOST:PORT, [IPV6]:PORT or :PORT)\n", listen);
        return TELEX_EXIT_USAGE;
    }
    options.workers = (int)workers;
    options.max_request_body = 64 * 1024 * 1024;
    options.shutdown_grace = 1.0;

    telex_mock_t *mock = telex_mock_create(&defaults);
    telex_mock_server_options(mock, &options);
    int r = telex_server_run(&options);
    telex_mock_destroy(mock);
    return r == 0 ? TELEX_EXIT_OK : TELEX_EXIT_UNAVAILABLE;
}
