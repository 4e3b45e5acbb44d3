/*
 * cli/serve.c — `telex serve`: load the configuration, start the gateway.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#include "cli/commands.h"
#include "cluster/cluster.h"
#include "config/config.h"
#include "gateway/gateway.h"
#include "http/server.h"
#include "stream/ids.h"
#include "util/log.h"

/* cluster mode: another node changed key rows (on libuv's thread pool) */
static void reload_keys(void *services)
{
    telex_services_reload_keys(services);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: telex serve [--config FILE] [--listen HOST:PORT] [--workers N]\n"
            "\n"
            "Runs the streaming gateway: POST /v1/chat/completions (OpenAI-compatible),\n"
            "GET /v1/models, GET /healthz.\n"
            "\n"
            "  -c, --config FILE     telex.yaml to load (default: $TELEX_CONFIG, else built-in\n"
            "                        defaults: the `demo` model, plus every other model name\n"
            "                        routed to OpenAI when OPENAI_API_KEY is set)\n"
            "  -l, --listen ADDR     HOST:PORT or [IPv6]:PORT (default %s; port 0 picks a\n"
            "                        free port, printed in the `listening` log line)\n"
            "  -w, --workers N       worker threads (default: one per core)\n"
            "      --allow-anonymous serve requests without an API key on a non-loopback address\n"
            "                        (by default telex refuses to start there until a key exists)\n"
            "  -h, --help            this help\n"
            "\n"
            "Environment: TELEX_CONFIG, TELEX_LISTEN, TELEX_WORKERS, TELEX_TLS_CERT, TELEX_TLS_KEY,\n"
            "OPENAI_API_KEY, OPENAI_BASE_URL, TELEX_LOG=quiet, TELEX_REDIS_URL (cluster mode, with\n"
            "TELEX_RESUME_SECRET). See docs/configuration.md.\n"
            "Logs are JSON lines on stderr. SIGINT/SIGTERM stop gracefully.\n",
            TELEX_CONFIG_DEFAULT_LISTEN);
}

int telex_cmd_serve(int argc, char **argv)
{
    static const struct option options[] = {{"config", required_argument, NULL, 'c'},
                                            {"listen", required_argument, NULL, 'l'},
                                            {"workers", required_argument, NULL, 'w'},
                                            {"allow-anonymous", no_argument, NULL, 'A'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *config_path = NULL, *listen = NULL;
    long workers = -1;
    int opt, allow_anonymous = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:l:w:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'w': {
            char *end;
            workers = strtol(optarg, &end, 10);
            if (*end != '\0' || workers < 1 || workers > 256) {
                fprintf(stderr, "telex serve: --workers must be a number from 1 to 256\n");
                return TELEX_EXIT_USAGE;
            }
            break;
        }
        case 'A':
            allow_anonymous = 1;
            break;
        case 'h':
            usage(stdout);
            return TELEX_EXIT_OK;
        default:
            usage(stderr);
            return TELEX_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "telex serve: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return TELEX_EXIT_USAGE;
    }

    char err[1024];
    telex_config_t *cfg = NULL;
    if (telex_config_load(&cfg, telex_config_path(config_path), err, sizeof(err)) != 0) {
        fprintf(stderr, "telex serve: %s\n", err);
        return TELEX_EXIT_CONFIG;
    }
    if (listen != NULL && telex_config_set_listen(cfg, listen, err, sizeof(err)) != 0) {
        fprintf(stderr, "telex serve: --listen: %s\n", err);
        telex_config_free(cfg);
        return TELEX_EXIT_USAGE;
    }
    if (workers > 0)
        cfg->workers = (int)workers;
    if (cfg->workers <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->workers = cores > 0 ? (int)cores : 1;
    }

    /* response.created and response.in_progress repeat a Responses
     * request's parameters: under this a body the limits accept can be
     * refused 400 request_too_large (docs/responses.md) */
    if (cfg->resume.enabled && cfg->resume.max_bytes < cfg->limits.max_body_bytes)
        telex_log_event("warn",
                        "resume.max_bytes is below limits.max_body_bytes: streamed /v1/responses requests with "
                        "long instructions or many tools may be refused (400 request_too_large)",
                        "\"max_bytes\":%llu,\"max_body_bytes\":%llu", (unsigned long long)cfg->resume.max_bytes,
                        (unsigned long long)cfg->limits.max_body_bytes);
    if (telex_ids_init() != 0) {
        fprintf(stderr, "telex serve: cannot set up stream ids (no randomness from the kernel, or "
                        "TELEX_RESUME_SECRET could not be hashed)\n");
        telex_config_free(cfg);
        return TELEX_EXIT_SOFTWARE;
    }
    telex_services_t *services = NULL;
    telex_services_options_t sopt = {.allow_anonymous = allow_anonymous};
    int src = telex_services_open(&services, cfg, &sopt, err, sizeof(err));
    if (src != 0) {
        fprintf(stderr, "telex serve: %s\n", err);
        telex_config_free(cfg);
        return src == -EPERM ? TELEX_EXIT_CONFIG : TELEX_EXIT_UNAVAILABLE;
    }
    if (telex_cluster_configure(cfg, reload_keys, services, err, sizeof(err)) != 0) {
        fprintf(stderr, "telex serve: %s\n", err);
        telex_services_close(services);
        telex_config_free(cfg);
        return TELEX_EXIT_CONFIG;
    }
    telex_gateway_t gateway = {.config = cfg, .services = services};
    telex_server_options_t so = {
        .listen_addr = cfg->listen_addr,
        .listen_addrlen = cfg->listen_addrlen,
        .workers = cfg->workers,
        .tls_cert = cfg->tls_cert,
        .tls_key = cfg->tls_key,
        /* h2o buffers request bodies up to this hard cap. An HTTP/1 body
         * over the limit gets telex's JSON 413 from http/guard at its head
         * (Content-Length) or as it grows (chunked); the cap bounds what an
         * HTTP/2 stream, which the guard cannot see, may buffer. */
        .max_request_body = cfg->limits.max_body_bytes + 65536,
        .max_connections = cfg->limits.max_connections,
        .body_timeout_ms = (uint64_t)(cfg->limits.body_timeout_seconds * 1000),
        .guard = {.max_body_bytes = cfg->limits.max_body_bytes,
                  .max_bodies_bytes = cfg->limits.max_buffered_body_bytes,
                  .max_conns_per_client = cfg->limits.max_connections_per_client,
                  .max_unfinished_per_client = cfg->limits.max_unfinished_requests_per_client,
                  .header_timeout_ms = (uint64_t)(cfg->limits.header_timeout_seconds * 1000),
                  .on_head = telex_gateway_on_head},
        .shutdown_grace = cfg->streaming.shutdown_grace_seconds,
        .name = "serve",
        .on_request = telex_gateway_on_request,
        .worker_init = telex_gateway_worker_init,
        .worker_start = telex_gateway_worker_start,
        .worker_dispose = telex_gateway_worker_dispose,
        .on_shutdown = telex_gateway_on_shutdown,
        .is_idle = telex_gateway_is_idle,
        .app = &gateway,
    };
    int rc = telex_server_run(&so);
    unsigned long long lost = telex_services_close(services); /* writes every queued ledger row */
    if (lost > 0)
        fprintf(stderr, "telex serve: %llu usage rows could not be written\n", lost);
    telex_config_free(cfg);
    return rc == 0 ? TELEX_EXIT_OK : TELEX_EXIT_UNAVAILABLE;
}
