/*
 * config/config.h — telex's configuration: what `telex.yaml` says, after
 * defaults and environment overrides, validated.
 *
 * One call loads everything: telex_config_load(&cfg, path, err, errlen).
 * The result is immutable after load (telex_config_set_listen is for the
 * command line, before any thread starts) and read by every worker thread
 * without locks. Every string and array lives in one arena that
 * telex_config_free releases; nothing is allocated on the request path:
 * telex_config_find_model returns a pointer into the config.
 *
 * Precedence, lowest to highest: built-in defaults < telex.yaml < environment
 * (TELEX_LISTEN, TELEX_WORKERS, TELEX_TLS_CERT, TELEX_TLS_KEY, TELEX_DB,
 * TELEX_ADMIN_TOKEN) < command line (the caller applies --listen / --workers
 * / --allow-anonymous after load).
 *
 * Every error is one line, "FILE:LINE:COL: key.path: what is wrong", or
 * "ENVVAR: what is wrong". Provider keys and the admin token are never part
 * of any message.
 * The full reference is docs/configuration.md.
 */
#ifndef TELEX_CONFIG_CONFIG_H
#define TELEX_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Provider kinds. To add one: a value here, its name in config.c's kind
 * table, and the keys it accepts in the provider key table. */
typedef enum telex_provider_kind {
    TELEX_PROVIDER_OPENAI = 0, /* any OpenAI-compatible /chat/completions API */
    TELEX_PROVIDER_DEMO,       /* in-process fake model, no network */
    TELEX_PROVIDER_ANTHROPIC,  /* Anthropic Messages API (POST /v1/messages) */
    TELEX_PROVIDER_AZURE,      /* Azure OpenAI: /openai/deployments/{deployment}/chat/completions */
    TELEX_PROVIDER_KIND_COUNT
} telex_provider_kind_t;

/* "openai", "demo", "anthropic", "azure"; NULL for an out-of-range value. */
const char *telex_provider_kind_name(telex_provider_kind_t kind);

typedef struct telex_header {
    const char *name;  /* a valid HTTP token */
    const char *value; /* no CR, LF or NUL; may be secret: never log */
} telex_header_t;

typedef struct telex_provider {
    const char *name; /* unique among providers */
    telex_provider_kind_t kind;
    /* openai, anthropic, azure: */
    /* http(s)://..., no trailing '/'. openai: the API root (+ "/chat/completions");
     * anthropic: the API host (+ "/v1/messages"); azure: the resource's
     * `endpoint` (+ "/openai/deployments/{deployment}/chat/completions"). */
    const char *base_url;
    /* NULL = no key header. Sent as openai: Authorization: Bearer; anthropic:
     * x-api-key; azure: api-key. SECRET: never log */
    const char *api_key;
    double timeout_seconds; /* connect timeout, > 0 */
    /* http2: auto (0: HTTP/2 when TLS's ALPN chooses it), on (HTTP/2 only; prior
     * knowledge on http://), off (HTTP/1.1 only). Same values as telex_http2_mode_t. */
    int http2;
    const telex_header_t *headers; /* extra request headers, in file order */
    size_t n_headers;
    /* anthropic: */
    const char *anthropic_version; /* the anthropic-version header; "2023-06-01" */
    uint64_t max_tokens;           /* sent when a request sets none (Anthropic requires it); 4096 */
    /* azure: */
    const char *api_version; /* ?api-version= ; "2024-10-21". The deployment is the route's model. */
    /* demo: */
    double tokens_per_second; /* > 0 */
} telex_provider_t;

/* One entry of a model's fallback list. */
typedef struct telex_route {
    const telex_provider_t *provider; /* never NULL */
    /* The upstream model name; NULL means "the name the client asked for"
     * (only in the catch-all model "*"). Use telex_route_upstream_model.
     * For an azure provider it is the deployment name. */
    const char *model;
    double input_price_per_mtok;  /* USD per million input tokens, >= 0 */
    double output_price_per_mtok; /* USD per million output tokens, >= 0 */
    /* USD per million cached prompt tokens (usage.prompt_tokens_details.
     * cached_tokens); defaults to input_price_per_mtok. */
    double cached_input_price_per_mtok;
} telex_route_t;

typedef struct telex_model {
    const char *name;    /* what clients send as "model"; "*" for the catch-all */
    bool catch_all;      /* name is "*": serves every name not configured */
    const telex_route_t *routes; /* fallback order: try routes[0] first */
    size_t n_routes;     /* >= 1 */
} telex_model_t;

typedef struct telex_streaming_config {
    double keepalive_seconds;      /* ": keepalive" after this much silence (telex framing); default 15 */
    double commit_timeout_seconds; /* commit headers by then at the latest; default 5 */
    double idle_timeout_seconds;   /* upstream silent this long after commit = dead; 60 */
    double shutdown_grace_seconds; /* streams may run this long after SIGTERM; 10 (>= 0) */
    bool event_ids; /* telex framing (ids, retry:, keep-alives) on every POST stream, not only
                       when asked for (X-Telex-Event-Ids: 1); default false */
} telex_streaming_config_t;

typedef struct telex_limits_config {
    uint64_t max_body_bytes;         /* request body; default 1 MiB */
    uint64_t max_header_bytes;       /* request header section; default 16 KiB */
    uint64_t max_connections;        /* open client connections; default 10000 */
    uint64_t max_concurrent_streams; /* running upstream requests; default 10000 */
    uint64_t max_event_bytes;        /* one upstream SSE event; default 1 MiB */
    /* before a request's body is read (http/guard.h; docs/security.md) */
    uint64_t max_buffered_body_bytes;    /* all request bodies being received together; 64 MiB */
    uint64_t max_connections_per_client; /* open connections per client address (/64 for IPv6); 1024 */
    uint64_t max_unfinished_requests_per_client; /* partial heads + bodies arriving, per address; 256 */
    double header_timeout_seconds;       /* a complete request head within this; 10 */
    double body_timeout_seconds;         /* head + body within this (h2o's request timeout); 60 */
} telex_limits_config_t;

typedef struct telex_resume_config {
    bool enabled;             /* default true */
    double retention_seconds; /* keep a finished stream's log this long; 300 */
    uint64_t max_bytes;       /* per-stream log cap; default 8 MiB */
    double grace_seconds;     /* keep upstream running after the client left; 10 (>= 0) */
    uint64_t retry_ms;        /* SSE "retry:" sent to clients; 3000 (>= 0) */
    uint64_t max_total_bytes; /* all streams' logs together; 256 MiB (0 = no global bound) */
} telex_resume_config_t;

/* Cluster mode (src/cluster): several nodes share streams, limits and key
 * changes through Redis. NULL redis_url = a single node (the default). The
 * URL is checked when the server starts (cluster/redis_url.h). */
typedef struct telex_cluster_config {
    const char *redis_url; /* cluster.redis_url or TELEX_REDIS_URL (which wins) */
} telex_cluster_config_t;

/* The SQLite file of keys and the usage ledger (src/store). */
typedef struct telex_store_config {
    const char *path; /* never NULL after load; see docs/configuration.md for the default */
    double flush_interval_seconds; /* ledger write-behind interval; 0.25 */
    uint64_t max_pending;          /* ledger rows queued at most; 100000 */
    const char *spill_path;        /* ledger rows the database cannot take yet; NULL: path + ".spill"
                                      (SQLite) or $XDG_STATE_HOME/telex/ledger.spill (PostgreSQL) */
    uint64_t spill_max_bytes;      /* the spill file's bound; 0 = 1 GiB */
    bool ledger;                   /* write a usage row per request; true */
} telex_store_config_t;

typedef struct telex_auth_config {
    const char *admin_token; /* the /admin/ API's token; NULL = disabled. SECRET: never log */
    bool allow_anonymous;    /* accept requests without a key even off loopback; false */
} telex_auth_config_t;

typedef struct telex_cors_config {
    const char *const *origins; /* "https://app.example.com" (scheme://host[:port]) or "*" */
    size_t n_origins;           /* 0 = no cross-origin access (the default) */
    double max_age_seconds;     /* how long browsers may cache a preflight; 600 */
    /* Host names (no port) an anonymous gateway answers to besides IP literals
     * and localhost (DNS rebinding; docs/security.md); none by default */
    const char *const *hosts;
    size_t n_hosts;
} telex_cors_config_t;

typedef struct telex_metrics_config {
    bool require_admin; /* GET /metrics needs the admin token (or token) even without keys; false */
    const char *token;  /* a token for GET /metrics besides the admin token (scrapers); NULL. SECRET */
} telex_metrics_config_t;

/* A named request template (POST /v1/presets/{name}, "model": "preset:NAME"). */
typedef struct telex_preset {
    const char *name;        /* [A-Za-z0-9._-]{1,64}, unique */
    const char *model;       /* a model name clients could ask for (checked at load) */
    const char *description; /* NULL = none */
    const char *system;      /* system prompt, may hold {{variables}}; NULL = none */
    const char *template;    /* the user message, with {{variables}}; NULL = "{{content}}" */
    const char *parameters;  /* default request parameters: a JSON object's text ("{}") */
    const char *variables;   /* default variable values: a JSON object of strings ("{}") */
    unsigned line, column;   /* where the preset's model: is written (for messages) */
} telex_preset_t;

typedef struct telex_config {
    const char *path; /* the file loaded; NULL = built-in defaults */

    const char *listen;                   /* "HOST:PORT" as given */
    struct sockaddr_storage listen_addr;  /* ... resolved */
    socklen_t listen_addrlen;
    int workers;                          /* 0 = one per CPU core */

    const char *tls_cert; /* both NULL, or both set (paths, readable at load) */
    const char *tls_key;

    const telex_provider_t *providers;
    size_t n_providers;
    const telex_model_t *models; /* file order, the "*" model included */
    size_t n_models;
    const telex_model_t *catch_all; /* the "*" model, or NULL */

    telex_streaming_config_t streaming;
    telex_limits_config_t limits;
    telex_resume_config_t resume;
    telex_cluster_config_t cluster;

    telex_store_config_t store;
    telex_auth_config_t auth;
    telex_cors_config_t cors;
    telex_metrics_config_t metrics;
    const telex_preset_t *presets; /* file order */
    size_t n_presets;

    struct telex_config_arena *arena; /* private */
} telex_config_t;

#define TELEX_CONFIG_DEFAULT_LISTEN "127.0.0.1:8080"

/*
 * Loads the configuration. path NULL = no file: built-in defaults, i.e.
 * provider "demo" (kind demo) and model "demo"; plus, when OPENAI_API_KEY or
 * OPENAI_BASE_URL is set, provider "openai" and the catch-all model "*" routed
 * to it. Then TELEX_LISTEN, TELEX_WORKERS, TELEX_TLS_CERT, TELEX_TLS_KEY are
 * applied. Reads the environment: call before starting threads.
 *
 * Returns 0 and sets *out, or a negative errno and writes a one-line message
 * to err (if err and errlen > 0): -ENOMEM; -EINVAL for anything wrong in the
 * file or the environment; the read error (-ENOENT, -EACCES, -EISDIR...) for
 * a file that cannot be read ("cannot read telex.yaml: No such file or
 * directory").
 */
int telex_config_load(telex_config_t **out, const char *path, char *err, size_t errlen);

/* What a command uses of the configuration; a command requires only that. */
typedef enum telex_config_use {
    /* Everything (telex serve): every api_key_env / admin_token_env variable
     * must be set (all unset ones are named in one message), TLS files
     * readable, every environment override valid. */
    TELEX_CONFIG_USE_ALL = 0,
    /* Only store.* (telex keys, telex usage): the file must still be valid,
     * but no secret is read — api_key_env / admin_token_env variables,
     * OPENAI_API_KEY and TELEX_ADMIN_TOKEN may be unset (api_key and
     * admin_token stay NULL) — TLS files are not opened, and of the
     * environment overrides only TELEX_DB is applied. */
    TELEX_CONFIG_USE_STORE,
} telex_config_use_t;

/* telex_config_load for a command that uses only part of the config. */
int telex_config_load_for(telex_config_t **out, const char *path, telex_config_use_t use, char *err,
                          size_t errlen);

void telex_config_free(telex_config_t *cfg);

/* The config path to use: cli_path if not NULL, else $TELEX_CONFIG if set
 * and not empty, else NULL (= built-in defaults). */
const char *telex_config_path(const char *cli_path);

/*
 * The model that serves `name`: the one configured with exactly that name,
 * else the catch-all "*" model, else NULL (= 404 model_not_found).
 * Never allocates. For the upstream model name use telex_route_upstream_model.
 */
const telex_model_t *telex_config_find_model(const telex_config_t *cfg, const char *name);

/* The preset called `name`, or NULL. */
const telex_preset_t *telex_config_find_preset(const telex_config_t *cfg, const char *name);

/* The provider called `name`, or NULL. */
const telex_provider_t *telex_config_find_provider(const telex_config_t *cfg, const char *name);

/* What to send upstream as "model" for a request that asked for `requested`. */
static inline const char *telex_route_upstream_model(const telex_route_t *route,
                                                     const char *requested)
{
    return route->model ? route->model : requested;
}

/*
 * Parses "HOST:PORT" into *addr and *addrlen. Accepted: "127.0.0.1:8080",
 * "[::1]:8080", "[fe80::1%eth0]:8080", "localhost:8080" (first address
 * getaddrinfo gives), ":8080" and "*:8080" (all IPv4 interfaces), and a bare
 * "8080" (127.0.0.1). Port 0..65535 (0 = any free port). Returns 0, or -EINVAL
 * with a message in err.
 */
int telex_config_parse_listen(const char *hostport, struct sockaddr_storage *addr,
                              socklen_t *addrlen, char *err, size_t errlen);

/* Non-zero when addr is a loopback address (127.0.0.0/8, ::1, or
 * ::ffff:127.x.y.z): only this machine can connect. */
int telex_config_addr_is_loopback(const struct sockaddr_storage *addr);

/* Replaces cfg->listen (for --listen). Returns 0, -EINVAL (message in err)
 * or -ENOMEM; cfg is unchanged on error. Not thread-safe: before serving. */
int telex_config_set_listen(telex_config_t *cfg, const char *hostport, char *err, size_t errlen);

#endif
