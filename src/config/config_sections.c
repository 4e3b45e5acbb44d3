/*
 * config/config_sections.c — telex.yaml's sections of settings (streaming,
 * limits, resume, cluster, store, auth, cors, metrics): one table per section
 * that says, for each key, its type, bounds, field and built-in default. The
 * same table checks the keys (unknown → did-you-mean / "valid here"), reads
 * the values and gives the defaults, so a key is written down once. Keys that
 * are more than a scalar (tokens read from the environment, lists of origins
 * and hosts) are KEY_OTHER rows, read by the section's own function.
 */
#include "config/config_read.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Rows of a table over telex_config_t: FIELD is a member path, e.g. limits.max_body_bytes. */
#define SECONDS_KEY(NAME, FIELD, MIN, EXCLUSIVE, MAX, DEF, DOC)                                   \
    {NAME, KEY_DOUBLE, offsetof(telex_config_t, FIELD), MIN, MAX, EXCLUSIVE, {.d = DEF}, DOC}
#define UINT_KEY(NAME, FIELD, MIN, MAX, DEF, DOC)                                                 \
    {NAME, KEY_UINT, offsetof(telex_config_t, FIELD), (double)(MIN), (double)(MAX), false, {.u = DEF}, DOC}
#define BYTES_KEY(NAME, FIELD, MIN, MAX, DEF, DOC)                                                \
    {NAME, KEY_BYTES, offsetof(telex_config_t, FIELD), (double)(MIN), (double)(MAX), false, {.u = DEF}, DOC}
#define BOOL_KEY(NAME, FIELD, DEF, DOC) {NAME, KEY_BOOL, offsetof(telex_config_t, FIELD), 0, 0, false, {.b = DEF}, DOC}
#define STRING_KEY(NAME, FIELD, DOC) {NAME, KEY_STRING, offsetof(telex_config_t, FIELD), 0, 0, false, {.u = 0}, DOC}
#define OTHER_KEY(NAME, DOC) {NAME, KEY_OTHER, 0, 0, 0, false, {.u = 0}, DOC}

static const config_key_t streaming_keys[] = {
    SECONDS_KEY("keepalive_seconds", streaming.keepalive_seconds, 0, true, SECONDS_MAX, 15,
                "\": keepalive\" after this much silence (telex framing)"),
    SECONDS_KEY("commit_timeout_seconds", streaming.commit_timeout_seconds, 0, true, SECONDS_MAX, 5,
                "commit the response headers by then at the latest"),
    SECONDS_KEY("idle_timeout_seconds", streaming.idle_timeout_seconds, 0, true, SECONDS_MAX, 60,
                "upstream silent this long after commit = dead"),
    SECONDS_KEY("shutdown_grace_seconds", streaming.shutdown_grace_seconds, 0, false, SECONDS_MAX, 10,
                "streams may run this long after SIGTERM"),
    BOOL_KEY("event_ids", streaming.event_ids, false,
             "telex framing (ids, retry:, keep-alives) on every POST stream, not only when asked for"),
};

static const config_key_t limits_keys[] = {
    BYTES_KEY("max_body_bytes", limits.max_body_bytes, 1, BYTES_MAX, 1u << 20, "a request body"),
    BYTES_KEY("max_header_bytes", limits.max_header_bytes, 1, BYTES_MAX, 16u << 10, "a request's header section"),
    UINT_KEY("max_connections", limits.max_connections, 1, COUNT_MAX, 10000, "open client connections"),
    UINT_KEY("max_concurrent_streams", limits.max_concurrent_streams, 1, COUNT_MAX, 10000,
             "running upstream requests"),
    /* at least 64: the strict event-stream check (upstream/sse_upstream.c) needs 6 */
    BYTES_KEY("max_event_bytes", limits.max_event_bytes, 64, BYTES_MAX, 1u << 20, "one upstream SSE event"),
    BYTES_KEY("max_buffered_body_bytes", limits.max_buffered_body_bytes, 1, BYTES_MAX, 64u << 20,
              "all request bodies being received together"),
    UINT_KEY("max_connections_per_client", limits.max_connections_per_client, 1, COUNT_MAX, 1024,
             "open connections per client address (/64 for IPv6)"),
    UINT_KEY("max_unfinished_requests_per_client", limits.max_unfinished_requests_per_client, 1, COUNT_MAX, 256,
             "partial heads + bodies arriving, per address"),
    SECONDS_KEY("header_timeout_seconds", limits.header_timeout_seconds, 0, true, 3600, 10,
                "a complete request head within this"),
    SECONDS_KEY("body_timeout_seconds", limits.body_timeout_seconds, 0, true, 3600, 60,
                "head + body within this (h2o's request timeout)"),
};

static const config_key_t resume_keys[] = {
    BOOL_KEY("enabled", resume.enabled, true, "streams can be resumed (Last-Event-ID)"),
    SECONDS_KEY("retention_seconds", resume.retention_seconds, 0, false, SECONDS_MAX, 300,
                "keep a finished stream's log this long"),
    BYTES_KEY("max_bytes", resume.max_bytes, 1, BYTES_MAX, 8u << 20, "per-stream log cap"),
    SECONDS_KEY("grace_seconds", resume.grace_seconds, 0, false, SECONDS_MAX, 10,
                "keep upstream running after the client left"),
    UINT_KEY("retry_ms", resume.retry_ms, 0, 86400000, 3000, "SSE \"retry:\" sent to clients"),
    BYTES_KEY("max_total_bytes", resume.max_total_bytes, 0, BYTES_MAX, 256u << 20,
              "all streams' logs together (0 = no global bound)"),
};

static const config_key_t cluster_keys[] = {
    STRING_KEY("redis_url", cluster.redis_url, "cluster mode through this Redis (TELEX_REDIS_URL wins)"),
};

static const config_key_t store_keys[] = {
    STRING_KEY("path", store.path, "the SQLite file or postgres:// URL of keys and the ledger (TELEX_DB wins)"),
    SECONDS_KEY("flush_interval_seconds", store.flush_interval_seconds, 0, true, 60, 0.25,
                "ledger write-behind interval"),
    UINT_KEY("max_pending", store.max_pending, 1, COUNT_MAX, 100000, "ledger rows queued at most"),
    STRING_KEY("spill_path", store.spill_path, "ledger rows the database cannot take yet"),
    UINT_KEY("spill_max_bytes", store.spill_max_bytes, 4096, UINT64_C(1) << 40, 0,
             "the spill file's bound; 0 = 1 GiB"),
    BOOL_KEY("ledger", store.ledger, true, "write a usage row per request"),
};

static const config_key_t auth_keys[] = {
    OTHER_KEY("admin_token", "the /admin/ API's token (secret)"),
    OTHER_KEY("admin_token_env", "the variable that holds it"),
    BOOL_KEY("allow_anonymous", auth.allow_anonymous, false, "accept requests without a key even off loopback"),
};

static const config_key_t cors_keys[] = {
    OTHER_KEY("origins", "origins allowed cross-origin access (scheme://host[:port] or \"*\")"),
    SECONDS_KEY("max_age_seconds", cors.max_age_seconds, 0, false, 86400, 600,
                "how long browsers may cache a preflight"),
    OTHER_KEY("hosts", "host names an anonymous gateway answers to besides IP literals and localhost"),
};

static const config_key_t metrics_keys[] = {
    BOOL_KEY("require_admin", metrics.require_admin, false, "GET /metrics needs a token even without keys"),
    OTHER_KEY("token", "a token for GET /metrics besides the admin token (secret)"),
    OTHER_KEY("token_env", "the variable that holds it"),
};

/* ---- the keys that are not scalars -------------------------------------- */

const char *telex_config_admin_token_problem(const char *token)
{
    size_t n = strlen(token);
    if (n < TELEX_CONFIG_ADMIN_TOKEN_MIN)
        return "must be at least 16 characters (a long random string, e.g. from `openssl rand -hex 32`)";
    if (n > 256)
        return "must be at most 256 characters";
    for (const char *p = token; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return "must not contain spaces or control characters";
    return NULL;
}

/* A token given as `lit_key: TOKEN` or `env_key: VARIABLE` (not both) into
 * *out; the variable is read only when the whole config is used. */
static int read_token(ctx_t *c, const yaml_node_t *v, const char *section, const char *lit_key,
                      const char *env_key, const char **out)
{
    char p[PATH_LEN], q[QUOTE_LEN];
    yaml_node_t *lit = cy_get(c, v, lit_key), *env = cy_get(c, v, env_key);
    const char *why;
    int rc;
    if (lit && env) {
        cy_path_key(p, section, env_key);
        return cy_fail(c, cy_get_key(c, v, env_key), p, "give %s or %s, not both", lit_key, env_key);
    }
    if (lit) {
        cy_path_key(p, section, lit_key);
        if ((rc = cy_read_str(c, lit, p, 0, out)) < 0)
            return rc;
        if ((why = telex_config_admin_token_problem(*out)))
            return cy_fail(c, lit, p, "%s", why);
    } else if (env) {
        const char *var, *val;
        cy_path_key(p, section, env_key);
        if ((rc = cy_secret_env(c, env, p, &var, &val)) <= 0)
            return rc;
        if ((why = telex_config_admin_token_problem(val)))
            return cy_fail(c, env, p, "environment variable %s: the token %s", cy_quote(q, var), why);
        if (!(*out = telex_config_strdup(c->arena, val)))
            return cy_oom(c);
    }
    return 0;
}

static int auth_tokens(ctx_t *c, const yaml_node_t *v)
{
    return read_token(c, v, "auth", "admin_token", "admin_token_env", &c->cfg->auth.admin_token);
}

static int metrics_tokens(ctx_t *c, const yaml_node_t *v)
{
    return read_token(c, v, "metrics", "token", "token_env", &c->cfg->metrics.token);
}

/* An origin as browsers send it: scheme://host[:port], nothing after. */
static const char *origin_problem(const char *o)
{
    const char *host;
    if (strcmp(o, "*") == 0)
        return NULL;
    if (strncmp(o, "http://", 7) == 0)
        host = o + 7;
    else if (strncmp(o, "https://", 8) == 0)
        host = o + 8;
    else
        return "must be \"*\" or scheme://host[:port], e.g. https://app.example.com";
    if (!*host)
        return "has no host";
    for (const char *p = host; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '/')
            return "must not have a path (not even a trailing /): an origin is scheme://host[:port]";
        if (ch <= 0x20 || ch == 0x7f || ch == '?' || ch == '#')
            return "must be scheme://host[:port] without spaces, query or fragment";
    }
    return NULL;
}

/* Why a cors.hosts entry is not a host name ([A-Za-z0-9.-], no port), or NULL. */
static const char *host_problem(const char *h)
{
    size_t len = strlen(h);
    if (len == 0 || len > 253 ||
        strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-") != len)
        return "must be a host name without scheme or port (letters, digits, '.', '-')";
    return NULL;
}

/* cors.KEY: a list of strings, each checked by problem(); origins are also
 * unique (ignoring case). */
static int read_cors_list(ctx_t *c, const yaml_node_t *list, const char *key, const char *expected,
                          const char *(*problem)(const char *), bool unique, const char *const **out,
                          size_t *n_out)
{
    char p[PATH_LEN], q[QUOTE_LEN], d[QUOTE_LEN];
    int rc;
    if (!list || cy_is_null(list))
        return 0;
    cy_path_key(p, "cors", key);
    if (list->type != YAML_SEQUENCE_NODE)
        return cy_fail(c, list, p, "expected %s, got %s", expected, cy_describe(d, list));
    size_t n = cy_n_items(list);
    const char **items = n ? telex_config_alloc(c->arena, n * sizeof(*items)) : NULL;
    if (n && !items)
        return cy_oom(c);
    for (size_t i = 0; i < n; i++) {
        char ip[PATH_LEN];
        yaml_node_t *item = cy_node_at(c, list->data.sequence.items.start[i]);
        cy_path_index(ip, p, i);
        if ((rc = cy_read_str(c, item, ip, 0, &items[i])) < 0)
            return rc;
        const char *why = problem(items[i]);
        if (why)
            return cy_fail(c, item, ip, "%s %s", cy_quote(q, items[i]), why);
        for (size_t j = 0; unique && j < i; j++)
            if (strcasecmp(items[j], items[i]) == 0)
                return cy_fail(c, item, ip, "duplicate origin %s", cy_quote(q, items[i]));
    }
    *out = items;
    *n_out = n;
    return 0;
}

static int cors_lists(ctx_t *c, const yaml_node_t *v)
{
    telex_cors_config_t *cors = &c->cfg->cors;
    int rc = read_cors_list(c, cy_get(c, v, "hosts"), "hosts", "a list of host names (- telex.example.com)",
                            host_problem, false, &cors->hosts, &cors->n_hosts);
    if (rc < 0)
        return rc;
    return read_cors_list(c, cy_get(c, v, "origins"), "origins", "a list of origins (- https://app.example.com)",
                          origin_problem, true, &cors->origins, &cors->n_origins);
}

/* ---- the sections, in the order they are read ----------------------------- */

typedef struct section {
    const char *name;
    const char *hint; /* "expected a mapping (HINT), got ..." */
    const config_key_t *keys;
    size_t n_keys;
    int (*others)(ctx_t *c, const yaml_node_t *map); /* the KEY_OTHER keys, after the scalars */
} section_t;

#define SECTION(NAME, HINT, KEYS, OTHERS) {NAME, HINT, KEYS, sizeof KEYS / sizeof KEYS[0], OTHERS}

static const section_t sections[] = {
    SECTION("streaming", "keepalive_seconds:, ...", streaming_keys, NULL),
    SECTION("limits", "max_body_bytes:, ...", limits_keys, NULL),
    SECTION("resume", "enabled:, ...", resume_keys, NULL),
    SECTION("cluster", "redis_url:", cluster_keys, NULL),
    SECTION("store", "path:, ...", store_keys, NULL),
    SECTION("auth", "admin_token_env:, allow_anonymous:", auth_keys, auth_tokens),
    SECTION("cors", "origins: [...]", cors_keys, cors_lists),
    SECTION("metrics", "require_admin:", metrics_keys, metrics_tokens),
};

#define FITS(KEYS) _Static_assert(sizeof KEYS / sizeof KEYS[0] <= KEY_TABLE_MAX, #KEYS " is longer than KEY_TABLE_MAX")
FITS(streaming_keys);
FITS(limits_keys);
FITS(resume_keys);
FITS(cluster_keys);
FITS(store_keys);
FITS(auth_keys);
FITS(cors_keys);
FITS(metrics_keys);

void telex_config_set_defaults(telex_config_t *cfg)
{
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        cy_set_key_defaults(sections[i].keys, sections[i].n_keys, cfg);
}

int cy_read_sections(ctx_t *c, const yaml_node_t *root)
{
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        const section_t *s = &sections[i];
        yaml_node_t *v = cy_get(c, root, s->name);
        int rc = cy_as_mapping(c, v, s->name, s->hint);
        if (rc == 0)
            continue;
        if (rc < 0 || (rc = cy_read_keys(c, v, s->name, s->keys, s->n_keys, c->cfg)) < 0 ||
            (s->others && (rc = s->others(c, v)) < 0))
            return rc;
    }
    return 0;
}
