/*
 * config/config_yaml.c — telex.yaml → telex_config_t, with a FILE:LINE:COL
 * message for every mistake a user can make.
 *
 * libyaml's document loader builds a node tree in which every node keeps its
 * start mark (line, column); this file walks that tree against the schema
 * written out below as code — one function per section, one table of keys per
 * mapping — and reports the first problem at the node that has it: unknown
 * or duplicate keys (with a did-you-mean), wrong types, out-of-range numbers,
 * duplicate names, a model naming an undefined provider. Why not libcyaml:
 * docs/configuration.md, "Design note".
 *
 * Values that may be secret (api_key, header values, the contents of an
 * api_key_env variable) are never quoted in a message.
 */
#include "config/config_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include <jansson.h>

enum { PATH_LEN = 256, QUOTE_LEN = 80, MAX_MISSING = 16 };

/* A secret's environment variable that is not set: collected while the
 * file is read, so one message can name them all. */
typedef struct missing_var {
    const char *var; /* an arena copy */
    char path[PATH_LEN];
    size_t line, column;
} missing_var_t;

typedef struct ctx {
    yaml_document_t *doc;
    const char *file;
    telex_config_t *cfg;
    struct telex_config_arena *arena;
    telex_config_use_t use;
    char *err;
    size_t errlen;
    missing_var_t missing[MAX_MISSING];
    size_t n_missing; /* distinct variables; only the first MAX_MISSING are kept */
} ctx_t;

/* ---- messages ---------------------------------------------------------- */

static int fail(ctx_t *c, const yaml_node_t *at, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(ctx_t *c, const yaml_node_t *at, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    telex_config_errf(c->err, c->errlen, "%s:%zu:%zu: %s%s%s", c->file, at->start_mark.line + 1,
                      at->start_mark.column + 1, path, *path ? ": " : "", msg);
    return -EINVAL;
}

static int oom(ctx_t *c)
{
    telex_config_errf(c->err, c->errlen, "out of memory");
    return -ENOMEM;
}

/* s as a double-quoted, escaped, truncated string, for messages. */
static const char *quote(char buf[QUOTE_LEN], const char *s)
{
    size_t o = 0;
    buf[o++] = '"';
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (o > QUOTE_LEN - 8) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') {
            o += (size_t)snprintf(buf + o, QUOTE_LEN - o, ch == '"' || ch == '\\' ? "\\%c" : "\\x%02x",
                                  ch);
        } else {
            buf[o++] = (char)ch;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* base.key; control characters in a key become '?' (messages are one line). */
static void path_key(char out[PATH_LEN], const char *base, const char *key)
{
    int o = snprintf(out, PATH_LEN, "%s%s%.80s", base, *base ? "." : "", key);
    for (int i = o - (int)strnlen(key, 80); i >= 0 && i < o && i < PATH_LEN; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            out[i] = '?';
}

static void path_index(char out[PATH_LEN], const char *base, size_t i)
{
    /* base is itself at most PATH_LEN; a path that long is cut, never overrun */
    int n = snprintf(out, PATH_LEN, "%.200s[%zu]", base, i);
    (void)n;
}

/* "a, b, c" into out (truncated with "..." if needed). */
static const char *join_list(char *out, size_t outlen, const char *const *items, size_t n)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o < outlen; i++) {
        int w = snprintf(out + o, outlen - o, "%s%s", i ? ", " : "", items[i]);
        if (w < 0 || (size_t)w >= outlen - o) {
            if (outlen > 4)
                memcpy(out + outlen - 4, "...", 4);
            break;
        }
        o += (size_t)w;
    }
    return out;
}

/* Notes that the secret variable `var` (named at node `at`, key path
 * `path`) is not set; the load fails at the end, naming every such one. */
static void note_missing(ctx_t *c, const yaml_node_t *at, const char *path, const char *var)
{
    for (size_t i = 0; i < c->n_missing && i < MAX_MISSING; i++)
        if (strcmp(c->missing[i].var, var) == 0)
            return;
    if (c->n_missing < MAX_MISSING) {
        missing_var_t *m = &c->missing[c->n_missing];
        m->var = var;
        snprintf(m->path, sizeof m->path, "%s", path);
        m->line = at->start_mark.line + 1;
        m->column = at->start_mark.column + 1;
    }
    c->n_missing++;
}

/* The one message for every unset secret variable: the first one's place,
 * then each variable with its key path and line, in file order (sections
 * are not read in file order). */
static int fail_missing(ctx_t *c)
{
    char q[QUOTE_LEN];
    size_t kept = c->n_missing < MAX_MISSING ? c->n_missing : MAX_MISSING;
    for (size_t i = 1; i < kept; i++)
        for (size_t j = i; j > 0; j--) {
            missing_var_t *a = &c->missing[j - 1], *b = &c->missing[j];
            if (a->line < b->line || (a->line == b->line && a->column <= b->column))
                break;
            missing_var_t t = *a;
            *a = *b;
            *b = t;
        }
    const missing_var_t *m = &c->missing[0];
    if (c->n_missing == 1) {
        telex_config_errf(c->err, c->errlen, "%s:%zu:%zu: %s: environment variable %s is not set", c->file,
                          m->line, m->column, m->path, quote(q, m->var));
        return -EINVAL;
    }
    char list[768];
    size_t o = 0;
    list[0] = '\0';
    for (size_t i = 0; i < kept && o < sizeof list; i++) {
        int w = snprintf(list + o, sizeof list - o, "%s%s (%s, line %zu)", i ? ", " : "",
                         quote(q, c->missing[i].var), c->missing[i].path, c->missing[i].line);
        o = w < 0 ? sizeof list : o + (size_t)w;
    }
    if (o >= sizeof list)
        memcpy(list + sizeof list - 4, "...", 4);
    telex_config_errf(c->err, c->errlen, "%s:%zu:%zu: %zu environment variables are not set: %s%s", c->file,
                      m->line, m->column, c->n_missing, list, c->n_missing > kept ? ", ..." : "");
    return -EINVAL;
}

/* ---- nodes ------------------------------------------------------------- */

static yaml_node_t *node_at(ctx_t *c, int index)
{
    return yaml_document_get_node(c->doc, index);
}

static const char *sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = sval(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

/* What the user wrote, for "expected X, got Y". Only for non-secret keys. */
static const char *describe(char buf[QUOTE_LEN], const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_SCALAR_NODE:
        return is_null(n) ? "nothing (null)" : quote(buf, sval(n));
    default:
        return "nothing";
    }
}

static size_t n_pairs(const yaml_node_t *map)
{
    return (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
}

static size_t n_items(const yaml_node_t *seq)
{
    return (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
}

/* Every key of `map` is a string, appears once, and is one of `keys`. */
static int check_keys(ctx_t *c, const yaml_node_t *map, const char *path,
                      const char *const *keys, size_t nkeys)
{
    char kp[PATH_LEN], q[QUOTE_LEN], list[256];
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(c, p->key);
        if (k->type != YAML_SCALAR_NODE || is_null(k) ||
            strlen(sval(k)) != k->data.scalar.length)
            return fail(c, k, path, "keys must be plain strings");
        path_key(kp, path, sval(k));
        for (yaml_node_pair_t *p2 = map->data.mapping.pairs.start; p2 < p; p2++) {
            yaml_node_t *k2 = node_at(c, p2->key);
            if (strcmp(sval(k2), sval(k)) == 0)
                return fail(c, k, kp, "duplicate key (first at line %zu)",
                            k2->start_mark.line + 1);
        }
        bool known = false;
        for (size_t i = 0; i < nkeys && !known; i++)
            known = strcmp(keys[i], sval(k)) == 0;
        if (!known) {
            const char *s = telex_config_suggest(sval(k), keys, nkeys);
            if (s)
                return fail(c, k, kp, "unknown key; did you mean %s?", quote(q, s));
            return fail(c, k, kp, "unknown key (valid here: %s)",
                        join_list(list, sizeof list, keys, nkeys));
        }
    }
    return 0;
}

/* The value of `key` in `map` (keys already checked unique), or NULL. */
static yaml_node_t *get(ctx_t *c, const yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(c, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(sval(k), key) == 0)
            return node_at(c, p->value);
    }
    return NULL;
}

/* The key node of `key` in `map`, for errors about the key itself. */
static yaml_node_t *get_key(ctx_t *c, const yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(c, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(sval(k), key) == 0)
            return k;
    }
    return NULL;
}

/* 1 when v is a mapping, 0 when absent or null (= not configured), <0 error. */
static int as_mapping(ctx_t *c, const yaml_node_t *v, const char *path, const char *hint)
{
    char d[QUOTE_LEN];
    if (!v || is_null(v))
        return 0;
    if (v->type != YAML_MAPPING_NODE)
        return fail(c, v, path, "expected a mapping (%s), got %s", hint, describe(d, v));
    return 1;
}

/* ---- typed scalars ----------------------------------------------------- */

enum { STR_ALLOW_EMPTY = 1, STR_MULTILINE = 2 };

/* A string: any scalar without NUL or control characters except TAB (and,
 * with STR_MULTILINE, line breaks). With STR_ALLOW_EMPTY, null and "" give
 * "". Never quotes the value (it may be a secret). */
static int read_str(ctx_t *c, const yaml_node_t *v, const char *path, unsigned flags,
                    const char **out)
{
    char d[QUOTE_LEN];
    if (v->type != YAML_SCALAR_NODE)
        return fail(c, v, path, "expected a string, got %s", describe(d, v));
    if (is_null(v)) {
        if (!(flags & STR_ALLOW_EMPTY))
            return fail(c, v, path, "missing value (expected a string)");
        *out = "";
        return 0;
    }
    const char *s = sval(v);
    size_t len = v->data.scalar.length;
    if (strlen(s) != len)
        return fail(c, v, path, "must not contain NUL bytes");
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((flags & STR_MULTILINE) && (ch == '\n' || ch == '\r'))
            continue;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return fail(c, v, path, (flags & STR_MULTILINE) ? "must not contain control characters"
                                                            : "must not contain line breaks or control characters");
    }
    if (len == 0 && !(flags & STR_ALLOW_EMPTY))
        return fail(c, v, path, "must not be empty");
    char *copy = telex_config_strndup(c->arena, s, len);
    if (!copy)
        return oom(c);
    *out = copy;
    return 0;
}

/* The text of a plain (unquoted) scalar that should be a number or bool. */
static int plain_text(ctx_t *c, const yaml_node_t *v, const char *path, const char *what,
                      const char **text)
{
    char d[QUOTE_LEN];
    if (v->type != YAML_SCALAR_NODE || is_null(v))
        return fail(c, v, path, "expected %s, got %s", what, describe(d, v));
    if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return fail(c, v, path, "expected %s, got the quoted string %s (remove the quotes)", what,
                    quote(d, sval(v)));
    *text = sval(v);
    return 0;
}

#define SECONDS_MAX 1e6

static int read_double(ctx_t *c, const yaml_node_t *v, const char *path, double min,
                       bool min_exclusive, double max, double *out)
{
    const char *t;
    char d[QUOTE_LEN];
    int rc = plain_text(c, v, path, "a number", &t);
    if (rc < 0)
        return rc;
    char *end;
    errno = 0;
    double x = strtod(t, &end);
    if (!*t || strspn(t, "0123456789+-.eE") != strlen(t) || *end || errno == ERANGE ||
        !isfinite(x))
        return fail(c, v, path, "expected a number, got %s", quote(d, t));
    if (min_exclusive ? !(x > min) : !(x >= min))
        return fail(c, v, path, "must be %s %.10g, got %s",
                    min_exclusive ? "greater than" : "at least", min, t);
    if (x > max)
        return fail(c, v, path, "must be at most %.10g, got %s", max, t);
    *out = x;
    return 0;
}

static int read_uint(ctx_t *c, const yaml_node_t *v, const char *path, uint64_t min,
                     uint64_t max, uint64_t *out)
{
    const char *t;
    char d[QUOTE_LEN];
    int rc = plain_text(c, v, path, "an integer", &t);
    if (rc < 0)
        return rc;
    const char *digits = t[0] == '+' || t[0] == '-' ? t + 1 : t;
    if (!*digits || strspn(digits, "0123456789") != strlen(digits))
        return fail(c, v, path, "expected an integer, got %s", quote(d, t));
    errno = 0;
    unsigned long long x = strtoull(digits, NULL, 10);
    if (t[0] == '-' && x != 0)
        return fail(c, v, path, "must be at least %" PRIu64 ", got %s", min, t);
    if (errno == ERANGE || x > max)
        return fail(c, v, path, "must be at most %" PRIu64 ", got %s", max, t);
    if (x < min)
        return fail(c, v, path, "must be at least %" PRIu64 ", got %s", min, t);
    *out = x;
    return 0;
}

/* A byte count: an integer, optionally followed by B, KB, MB, GB (powers of
 * 1000) or KiB, MiB, GiB (powers of 1024), e.g. 1048576, 1MiB, "512 KiB". */
static int read_bytes(ctx_t *c, const yaml_node_t *v, const char *path, uint64_t min,
                      uint64_t max, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {{"", 1},           {"B", 1},           {"KB", 1000},
                 {"MB", 1000000},   {"GB", 1000000000}, {"KiB", 1024},
                 {"MiB", 1u << 20}, {"GiB", 1u << 30}};
    const char *t;
    char d[QUOTE_LEN];
    int rc = plain_text(c, v, path, "a size in bytes", &t);
    if (rc < 0)
        return rc;
    size_t nd = strspn(t, "0123456789");
    const char *unit = t + nd;
    while (*unit == ' ')
        unit++;
    uint64_t mult = 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0] && nd > 0; i++)
        if (strcmp(unit, units[i].unit) == 0)
            mult = units[i].mult;
    if (!mult) {
        if (t[0] == '-')
            return fail(c, v, path, "must be at least %" PRIu64 ", got %s", min, t);
        return fail(c, v, path,
                    "expected a size in bytes (e.g. 1048576, 1MiB, 512KiB), got %s",
                    quote(d, t));
    }
    errno = 0;
    unsigned long long x = strtoull(t, NULL, 10);
    if (errno == ERANGE || x > max / mult)
        return fail(c, v, path, "must be at most %" PRIu64 " bytes, got %s", max, t);
    x *= mult;
    if (x < min)
        return fail(c, v, path, "must be at least %" PRIu64 " bytes, got %s", min, t);
    *out = x;
    return 0;
}

static int read_bool(ctx_t *c, const yaml_node_t *v, const char *path, bool *out)
{
    const char *t;
    char d[QUOTE_LEN];
    int rc = plain_text(c, v, path, "true or false", &t);
    if (rc < 0)
        return rc;
    if (!strcmp(t, "true") || !strcmp(t, "True") || !strcmp(t, "TRUE"))
        *out = true;
    else if (!strcmp(t, "false") || !strcmp(t, "False") || !strcmp(t, "FALSE"))
        *out = false;
    else
        return fail(c, v, path, "expected true or false, got %s", quote(d, t));
    return 0;
}

/* Helpers for "key absent → keep default". */
#define FIELD(map, key, base, reader, ...)                                                       \
    do {                                                                                         \
        yaml_node_t *v_ = get(c, (map), (key));                                                  \
        if (v_) {                                                                                \
            char p_[PATH_LEN];                                                                   \
            path_key(p_, (base), (key));                                                         \
            int rc_ = reader(c, v_, p_, __VA_ARGS__);                                            \
            if (rc_ < 0)                                                                         \
                return rc_;                                                                      \
        }                                                                                        \
    } while (0)

/* ---- sections ---------------------------------------------------------- */

static int parse_tls(ctx_t *c, const yaml_node_t *v)
{
    static const char *const keys[] = {"cert", "key"};
    int rc = as_mapping(c, v, "tls", "cert: and key:");
    if (rc <= 0)
        return rc;
    if ((rc = check_keys(c, v, "tls", keys, 2)) < 0)
        return rc;
    const char *vals[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        yaml_node_t *n = get(c, v, keys[i]);
        if (!n)
            continue;
        char p[PATH_LEN];
        path_key(p, "tls", keys[i]);
        if ((rc = read_str(c, n, p, 0, &vals[i])) < 0)
            return rc;
        if (c->use == TELEX_CONFIG_USE_ALL && (rc = telex_config_check_readable(vals[i])) < 0) {
            char q[QUOTE_LEN];
            return fail(c, n, p, "cannot read %s: %s", quote(q, vals[i]), strerror(-rc));
        }
    }
    if (!vals[0] != !vals[1])
        return fail(c, v, "tls", "%s is set but %s is not (give both, or neither)",
                    vals[0] ? "cert" : "key", vals[0] ? "key" : "cert");
    c->cfg->tls_cert = vals[0];
    c->cfg->tls_key = vals[1];
    return 0;
}

static int parse_streaming(ctx_t *c, const yaml_node_t *v)
{
    static const char *const keys[] = {"keepalive_seconds", "commit_timeout_seconds",
                                       "idle_timeout_seconds", "shutdown_grace_seconds", "event_ids"};
    const char *P = "streaming";
    telex_streaming_config_t *s = &c->cfg->streaming;
    int rc = as_mapping(c, v, P, "keepalive_seconds:, ...");
    if (rc <= 0)
        return rc;
    if ((rc = check_keys(c, v, P, keys, sizeof keys / sizeof keys[0])) < 0)
        return rc;
    FIELD(v, "keepalive_seconds", P, read_double, 0, true, SECONDS_MAX, &s->keepalive_seconds);
    FIELD(v, "commit_timeout_seconds", P, read_double, 0, true, SECONDS_MAX,
          &s->commit_timeout_seconds);
    FIELD(v, "idle_timeout_seconds", P, read_double, 0, true, SECONDS_MAX,
          &s->idle_timeout_seconds);
    FIELD(v, "shutdown_grace_seconds", P, read_double, 0, false, SECONDS_MAX,
          &s->shutdown_grace_seconds);
    FIELD(v, "event_ids", P, read_bool, &s->event_ids);
    return 0;
}

#define BYTES_MAX (UINT64_C(1) << 40)
#define COUNT_MAX UINT64_C(100000000)

static int parse_limits(ctx_t *c, const yaml_node_t *v)
{
    static const char *const keys[] = {"max_body_bytes", "max_header_bytes", "max_connections",
                                       "max_concurrent_streams", "max_event_bytes",
                                       "max_buffered_body_bytes", "max_connections_per_client",
                                       "max_unfinished_requests_per_client", "header_timeout_seconds",
                                       "body_timeout_seconds"};
    const char *P = "limits";
    telex_limits_config_t *l = &c->cfg->limits;
    int rc = as_mapping(c, v, P, "max_body_bytes:, ...");
    if (rc <= 0)
        return rc;
    if ((rc = check_keys(c, v, P, keys, sizeof keys / sizeof keys[0])) < 0)
        return rc;
    FIELD(v, "max_body_bytes", P, read_bytes, 1, BYTES_MAX, &l->max_body_bytes);
    FIELD(v, "max_header_bytes", P, read_bytes, 1, BYTES_MAX, &l->max_header_bytes);
    FIELD(v, "max_connections", P, read_uint, 1, COUNT_MAX, &l->max_connections);
    FIELD(v, "max_concurrent_streams", P, read_uint, 1, COUNT_MAX, &l->max_concurrent_streams);
    FIELD(v, "max_event_bytes", P, read_bytes, 1, BYTES_MAX, &l->max_event_bytes);
    FIELD(v, "max_buffered_body_bytes", P, read_bytes, 1, BYTES_MAX, &l->max_buffered_body_bytes);
    FIELD(v, "max_connections_per_client", P, read_uint, 1, COUNT_MAX, &l->max_connections_per_client);
    FIELD(v, "max_unfinished_requests_per_client", P, read_uint, 1, COUNT_MAX,
          &l->max_unfinished_requests_per_client);
    FIELD(v, "header_timeout_seconds", P, read_double, 0, true, 3600, &l->header_timeout_seconds);
    FIELD(v, "body_timeout_seconds", P, read_double, 0, true, 3600, &l->body_timeout_seconds);
    return 0;
}

static int parse_resume(ctx_t *c, const yaml_node_t *v)
{
    static const char *const keys[] = {"enabled", "retention_seconds", "max_bytes",
                                       "grace_seconds", "retry_ms", "max_total_bytes"};
    const char *P = "resume";
    telex_resume_config_t *r = &c->cfg->resume;
    int rc = as_mapping(c, v, P, "enabled:, ...");
    if (rc <= 0)
        return rc;
    if ((rc = check_keys(c, v, P, keys, sizeof keys / sizeof keys[0])) < 0)
        return rc;
    FIELD(v, "enabled", P, read_bool, &r->enabled);
    FIELD(v, "retention_seconds", P, read_double, 0, false, SECONDS_MAX, &r->retention_seconds);
    FIELD(v, "max_bytes", P, read_bytes, 1, BYTES_MAX, &r->max_bytes);
    FIELD(v, "grace_seconds", P, read_double, 0, false, SECONDS_MAX, &r->grace_seconds);
    FIELD(v, "retry_ms", P, read_uint, 0, 86400000, &r->retry_ms);
    FIELD(v, "max_total_bytes", P, read_bytes, 0, BYTES_MAX, &r->max_total_bytes);
    return 0;
}

static int parse_cluster(ctx_t *c, const yaml_node_t *v)
{
    static const char *const keys[] = {"redis_url"};
    const char *P = "cluster";
    int rc = as_mapping(c, v, P, "redis_url:");
    if (rc <= 0)
        return rc;
    if ((rc = check_keys(c, v, P, keys, sizeof keys / sizeof keys[0])) < 0)
        return rc;
    FIELD(v, "redis_url", P, read_str, 0, &c->cfg->cluster.redis_url);
    return 0;
}

/* ---- store, auth, cors, metrics ---------------------------------------- */

static int parse_store(ctx_t *c, const yaml_node_t *v)
{
    static const char *const keys[] = {"path", "flush_interval_seconds", "max_pending", "spill_path",
                                       "spill_max_bytes", "ledger"};
    const char *P = "store";
    telex_store_config_t *s = &c->cfg->store;
    int rc = as_mapping(c, v, P, "path:, ...");
    if (rc <= 0)
        return rc;
    if ((rc = check_keys(c, v, P, keys, sizeof keys / sizeof keys[0])) < 0)
        return rc;
    FIELD(v, "path", P, read_str, 0, &s->path);
    FIELD(v, "flush_interval_seconds", P, read_double, 0, true, 60, &s->flush_interval_seconds);
    FIELD(v, "max_pending", P, read_uint, 1, COUNT_MAX, &s->max_pending);
    FIELD(v, "spill_path", P, read_str, 0, &s->spill_path);
    FIELD(v, "spill_max_bytes", P, read_uint, 4096, UINT64_C(1) << 40, &s->spill_max_bytes);
    FIELD(v, "ledger", P, read_bool, &s->ledger);
    return 0;
}

/* Validates an admin token without ever quoting it. NULL = fine, else why. */
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

static int parse_auth(ctx_t *c, const yaml_node_t *v)
{
    static const char *const keys[] = {"admin_token", "admin_token_env", "allow_anonymous"};
    const char *P = "auth";
    char p[PATH_LEN], q[QUOTE_LEN];
    telex_auth_config_t *a = &c->cfg->auth;
    int rc = as_mapping(c, v, P, "admin_token_env:, allow_anonymous:");
    if (rc <= 0)
        return rc;
    if ((rc = check_keys(c, v, P, keys, sizeof keys / sizeof keys[0])) < 0)
        return rc;
    FIELD(v, "allow_anonymous", P, read_bool, &a->allow_anonymous);
    yaml_node_t *lit = get(c, v, "admin_token"), *env = get(c, v, "admin_token_env");
    if (lit && env) {
        path_key(p, P, "admin_token_env");
        return fail(c, get_key(c, v, "admin_token_env"), p, "give admin_token or admin_token_env, not both");
    }
    const char *why;
    if (lit) {
        path_key(p, P, "admin_token");
        if ((rc = read_str(c, lit, p, 0, &a->admin_token)) < 0)
            return rc;
        if ((why = telex_config_admin_token_problem(a->admin_token)))
            return fail(c, lit, p, "%s", why);
    } else if (env) {
        const char *var;
        path_key(p, P, "admin_token_env");
        if ((rc = read_str(c, env, p, 0, &var)) < 0)
            return rc;
        if (c->use != TELEX_CONFIG_USE_ALL)
            return 0; /* the token is not used: not read */
        const char *val = getenv(var);
        if (!val || !*val) {
            note_missing(c, env, p, var);
            return 0;
        }
        if ((why = telex_config_admin_token_problem(val)))
            return fail(c, env, p, "environment variable %s: the token %s", quote(q, var), why);
        if (!(a->admin_token = telex_config_strdup(c->arena, val)))
            return oom(c);
    }
    return 0;
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

/* cors.hosts: host names, [A-Za-z0-9.-], no port */
static int parse_cors_hosts(ctx_t *c, const yaml_node_t *list)
{
    char p[PATH_LEN], q[QUOTE_LEN], d[QUOTE_LEN];
    int rc;
    if (!list || is_null(list))
        return 0;
    path_key(p, "cors", "hosts");
    if (list->type != YAML_SEQUENCE_NODE)
        return fail(c, list, p, "expected a list of host names (- telex.example.com), got %s", describe(d, list));
    size_t n = n_items(list);
    const char **h = n ? telex_config_alloc(c->arena, n * sizeof(*h)) : NULL;
    if (n && !h)
        return oom(c);
    for (size_t i = 0; i < n; i++) {
        char ip[PATH_LEN];
        yaml_node_t *item = node_at(c, list->data.sequence.items.start[i]);
        path_index(ip, p, i);
        if ((rc = read_str(c, item, ip, 0, &h[i])) < 0)
            return rc;
        size_t len = strlen(h[i]);
        if (len == 0 || len > 253 || strspn(h[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-") != len)
            return fail(c, item, ip, "%s must be a host name without scheme or port (letters, digits, '.', '-')",
                        quote(q, h[i]));
    }
    c->cfg->cors.hosts = h;
    c->cfg->cors.n_hosts = n;
    return 0;
}

static int parse_cors(ctx_t *c, const yaml_node_t *v)
{
    static const char *const keys[] = {"origins", "max_age_seconds", "hosts"};
    const char *P = "cors";
    char p[PATH_LEN], q[QUOTE_LEN], d[QUOTE_LEN];
    telex_cors_config_t *cors = &c->cfg->cors;
    int rc = as_mapping(c, v, P, "origins: [...]");
    if (rc <= 0)
        return rc;
    if ((rc = check_keys(c, v, P, keys, sizeof keys / sizeof keys[0])) < 0)
        return rc;
    FIELD(v, "max_age_seconds", P, read_double, 0, false, 86400, &cors->max_age_seconds);
    if ((rc = parse_cors_hosts(c, get(c, v, "hosts"))) < 0)
        return rc;
    yaml_node_t *list = get(c, v, "origins");
    if (!list || is_null(list))
        return 0;
    path_key(p, P, "origins");
    if (list->type != YAML_SEQUENCE_NODE)
        return fail(c, list, p, "expected a list of origins (- https://app.example.com), got %s",
                    describe(d, list));
    size_t n = n_items(list);
    const char **o = n ? telex_config_alloc(c->arena, n * sizeof(*o)) : NULL;
    if (n && !o)
        return oom(c);
    for (size_t i = 0; i < n; i++) {
        char ip[PATH_LEN];
        yaml_node_t *item = node_at(c, list->data.sequence.items.start[i]);
        path_index(ip, p, i);
        if ((rc = read_str(c, item, ip, 0, &o[i])) < 0)
            return rc;
        const char *why = origin_problem(o[i]);
        if (why)
            return fail(c, item, ip, "%s %s", quote(q, o[i]), why);
        for (size_t j = 0; j < i; j++)
            if (strcasecmp(o[j], o[i]) == 0)
                return fail(c, item, ip, "duplicate origin %s", quote(q, o[i]));
    }
    cors->origins = o;
    cors->n_origins = n;
    return 0;
}

static int parse_metrics(ctx_t *c, const yaml_node_t *v)
{
    static const char *const keys[] = {"require_admin", "token", "token_env"};
    const char *P = "metrics";
    char p[PATH_LEN], q[QUOTE_LEN];
    int rc = as_mapping(c, v, P, "require_admin:");
    if (rc <= 0)
        return rc;
    if ((rc = check_keys(c, v, P, keys, sizeof keys / sizeof keys[0])) < 0)
        return rc;
    FIELD(v, "require_admin", P, read_bool, &c->cfg->metrics.require_admin);
    yaml_node_t *lit = get(c, v, "token"), *env = get(c, v, "token_env");
    const char *why;
    if (lit && env) {
        path_key(p, P, "token_env");
        return fail(c, get_key(c, v, "token_env"), p, "give token or token_env, not both");
    }
    if (lit) {
        path_key(p, P, "token");
        if ((rc = read_str(c, lit, p, 0, &c->cfg->metrics.token)) < 0)
            return rc;
        if ((why = telex_config_admin_token_problem(c->cfg->metrics.token)))
            return fail(c, lit, p, "%s", why);
    } else if (env) {
        const char *var;
        path_key(p, P, "token_env");
        if ((rc = read_str(c, env, p, 0, &var)) < 0)
            return rc;
        if (c->use != TELEX_CONFIG_USE_ALL)
            return 0;
        const char *val = getenv(var);
        if (!val || !*val) {
            note_missing(c, env, p, var);
            return 0;
        }
        if ((why = telex_config_admin_token_problem(val)))
            return fail(c, env, p, "environment variable %s: the token %s", quote(q, var), why);
        if (!(c->cfg->metrics.token = telex_config_strdup(c->arena, val)))
            return oom(c);
    }
    return 0;
}

/* ---- providers --------------------------------------------------------- */

#define KIND(k) (1u << (k))
#define ALL_KINDS ((1u << TELEX_PROVIDER_KIND_COUNT) - 1)

/* The keys a provider accepts, and for which kinds. */
#define HTTP_KINDS (KIND(TELEX_PROVIDER_OPENAI) | KIND(TELEX_PROVIDER_ANTHROPIC) | KIND(TELEX_PROVIDER_AZURE))
static const char *const provider_keys[] = {"name",        "kind",            "base_url",
                                            "endpoint",    "api_key",         "api_key_env",
                                            "timeout_seconds", "headers",     "anthropic_version",
                                            "max_tokens",  "api_version",     "tokens_per_second",
                                            "http2"};
static const unsigned provider_key_kinds[] = {
    ALL_KINDS,  ALL_KINDS,  KIND(TELEX_PROVIDER_OPENAI) | KIND(TELEX_PROVIDER_ANTHROPIC),
    KIND(TELEX_PROVIDER_AZURE), HTTP_KINDS, HTTP_KINDS,
    HTTP_KINDS, HTTP_KINDS, KIND(TELEX_PROVIDER_ANTHROPIC),
    KIND(TELEX_PROVIDER_ANTHROPIC), KIND(TELEX_PROVIDER_AZURE), KIND(TELEX_PROVIDER_DEMO),
    HTTP_KINDS};
_Static_assert(sizeof provider_keys / sizeof provider_keys[0] ==
                   sizeof provider_key_kinds / sizeof provider_key_kinds[0],
               "one kinds mask per provider key");
#define N_PROVIDER_KEYS (sizeof provider_keys / sizeof provider_keys[0])

static bool is_token_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* The header a provider kind sends its key in, as shown in messages. */
static const char *key_header(telex_provider_kind_t kind)
{
    switch (kind) {
    case TELEX_PROVIDER_ANTHROPIC:
        return "x-api-key";
    case TELEX_PROVIDER_AZURE:
        return "api-key";
    default:
        return "Authorization";
    }
}

static int parse_headers(ctx_t *c, const yaml_node_t *v, const char *base,
                         telex_provider_t *prov, const yaml_node_t *api_key_node)
{
    static const char *const reserved[] = {"host", "content-length", "transfer-encoding",
                                           "connection"};
    const char *auth = key_header(prov->kind);
    char path[PATH_LEN];
    path_key(path, base, "headers");
    if (v && !is_null(v) && v->type != YAML_MAPPING_NODE) /* not describe(): may hold a key */
        return fail(c, v, path, "expected a mapping (Header-Name: value), got %s",
                    v->type == YAML_SEQUENCE_NODE ? "a list" : "a string");
    int rc = as_mapping(c, v, path, "Header-Name: value");
    if (rc <= 0)
        return rc;
    size_t n = n_pairs(v);
    telex_header_t *h = n ? telex_config_alloc(c->arena, n * sizeof(*h)) : NULL;
    if (n && !h)
        return oom(c);
    size_t i = 0;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
         p++, i++) {
        yaml_node_t *k = node_at(c, p->key);
        if (k->type != YAML_SCALAR_NODE || is_null(k) ||
            strlen(sval(k)) != k->data.scalar.length)
            return fail(c, k, path, "header names must be plain strings");
        const char *name = sval(k);
        char hp[PATH_LEN];
        path_key(hp, path, name);
        for (const char *s = name; *s; s++)
            if (!is_token_char((unsigned char)*s))
                return fail(c, k, hp, "not a valid HTTP header name");
        for (size_t j = 0; j < i; j++)
            if (strcasecmp(h[j].name, name) == 0)
                return fail(c, k, hp, "duplicate header (header names ignore case)");
        for (size_t j = 0; j < sizeof reserved / sizeof reserved[0]; j++)
            if (strcasecmp(reserved[j], name) == 0)
                return fail(c, k, hp, "telex sets this header itself; it cannot be configured");
        if (api_key_node && strcasecmp(name, auth) == 0)
            return fail(c, k, hp, "conflicts with api_key/api_key_env (which sends %s%s); use one or the other",
                        auth, prov->kind == TELEX_PROVIDER_OPENAI ? ": Bearer" : "");
        if (prov->kind == TELEX_PROVIDER_ANTHROPIC && strcasecmp(name, "anthropic-version") == 0)
            return fail(c, k, hp, "set by the provider's anthropic_version key");
        if (!(h[i].name = telex_config_strdup(c->arena, name)))
            return oom(c);
        if ((rc = read_str(c, node_at(c, p->value), hp, STR_ALLOW_EMPTY,
                           &h[i].value)) < 0)
            return rc;
    }
    prov->headers = h;
    prov->n_headers = n;
    return 0;
}

/* Which provider in seq[0..i) is called `name`; its name node, or NULL. */
static const yaml_node_t *earlier_name(ctx_t *c, const yaml_node_t *seq, size_t i,
                                       const char *name)
{
    for (size_t j = 0; j < i; j++) {
        yaml_node_t *item = node_at(c, seq->data.sequence.items.start[j]);
        yaml_node_t *n = get(c, item, "name");
        if (n && n->type == YAML_SCALAR_NODE && strcmp(sval(n), name) == 0)
            return n;
    }
    return NULL;
}

static int parse_api_key(ctx_t *c, const yaml_node_t *item, const char *base,
                         telex_provider_t *prov)
{
    char p[PATH_LEN], q[QUOTE_LEN];
    yaml_node_t *lit = get(c, item, "api_key");
    yaml_node_t *env = get(c, item, "api_key_env");
    int rc;
    if (lit && env) {
        path_key(p, base, "api_key_env");
        return fail(c, get_key(c, item, "api_key_env"), p,
                    "give api_key or api_key_env, not both");
    }
    if (lit) {
        path_key(p, base, "api_key");
        return read_str(c, lit, p, 0, &prov->api_key);
    }
    if (!env)
        return 0;
    path_key(p, base, "api_key_env");
    const char *var;
    if ((rc = read_str(c, env, p, 0, &var)) < 0)
        return rc;
    if (c->use != TELEX_CONFIG_USE_ALL)
        return 0; /* the key is not used: not read */
    const char *val = getenv(var);
    if (!val || !*val) {
        note_missing(c, env, p, var);
        return 0;
    }
    for (const char *s = val; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return fail(c, env, p, "environment variable %s contains control characters",
                        quote(q, var));
    if (!(prov->api_key = telex_config_strdup(c->arena, val)))
        return oom(c);
    return 0;
}

static int parse_provider(ctx_t *c, const yaml_node_t *seq, size_t i, telex_provider_t *prov)
{
    char base[PATH_LEN], p[PATH_LEN], q[QUOTE_LEN], d[QUOTE_LEN], list[256];
    yaml_node_t *item = node_at(c, seq->data.sequence.items.start[i]);
    int rc;
    path_index(base, "providers", i);
    if (item->type != YAML_MAPPING_NODE)
        return fail(c, item, base, "expected a mapping (name:, kind:, ...), got %s",
                    describe(d, item));
    if ((rc = check_keys(c, item, base, provider_keys, N_PROVIDER_KEYS)) < 0)
        return rc;

    yaml_node_t *name = get(c, item, "name");
    if (!name)
        return fail(c, item, base, "missing required key \"name\"");
    path_key(p, base, "name");
    if ((rc = read_str(c, name, p, 0, &prov->name)) < 0)
        return rc;
    const yaml_node_t *first = earlier_name(c, seq, i, prov->name);
    if (first)
        return fail(c, name, p, "duplicate provider name %s (first at line %zu)",
                    quote(q, prov->name), first->start_mark.line + 1);

    const char *kinds[TELEX_PROVIDER_KIND_COUNT];
    for (int k = 0; k < TELEX_PROVIDER_KIND_COUNT; k++)
        kinds[k] = telex_provider_kind_name((telex_provider_kind_t)k);
    yaml_node_t *kind = get(c, item, "kind");
    if (!kind)
        return fail(c, item, base, "missing required key \"kind\" (one of: %s)",
                    join_list(list, sizeof list, kinds, TELEX_PROVIDER_KIND_COUNT));
    path_key(p, base, "kind");
    const char *ks;
    if ((rc = read_str(c, kind, p, 0, &ks)) < 0)
        return rc;
    int kix = -1;
    for (int k = 0; k < TELEX_PROVIDER_KIND_COUNT; k++)
        if (strcmp(kinds[k], ks) == 0)
            kix = k;
    if (kix < 0) {
        const char *s = telex_config_suggest(ks, kinds, TELEX_PROVIDER_KIND_COUNT);
        if (s)
            return fail(c, kind, p, "unknown provider kind %s; did you mean \"%s\"?",
                        quote(q, ks), s);
        return fail(c, kind, p, "unknown provider kind %s (known kinds: %s)", quote(q, ks),
                    join_list(list, sizeof list, kinds, TELEX_PROVIDER_KIND_COUNT));
    }
    prov->kind = (telex_provider_kind_t)kix;

    /* Keys that exist, but not for this kind. */
    for (yaml_node_pair_t *pp = item->data.mapping.pairs.start;
         pp < item->data.mapping.pairs.top; pp++) {
        yaml_node_t *k = node_at(c, pp->key);
        for (size_t j = 0; j < N_PROVIDER_KEYS; j++) {
            if (strcmp(provider_keys[j], sval(k)) != 0 || (provider_key_kinds[j] & KIND(kix)))
                continue;
            path_key(p, base, sval(k));
            const char *valid_for[TELEX_PROVIDER_KIND_COUNT];
            size_t nv = 0;
            for (int kk = 0; kk < TELEX_PROVIDER_KIND_COUNT; kk++)
                if (provider_key_kinds[j] & KIND(kk))
                    valid_for[nv++] = kinds[kk];
            return fail(c, k, p, "not used by kind %s (only by: %s)", kinds[kix],
                        join_list(list, sizeof list, valid_for, nv));
        }
    }

    prov->timeout_seconds = TELEX_CONFIG_DEFAULT_TIMEOUT_SECONDS;
    prov->tokens_per_second = TELEX_CONFIG_DEFAULT_TOKENS_PER_SECOND;
    FIELD(item, "timeout_seconds", base, read_double, 0, true, SECONDS_MAX,
          &prov->timeout_seconds);
    FIELD(item, "tokens_per_second", base, read_double, 0, true, 1e6, &prov->tokens_per_second);

    if (prov->kind == TELEX_PROVIDER_DEMO)
        return 0;
    /* openai, anthropic, azure: an HTTP API */
    const char *url_key = prov->kind == TELEX_PROVIDER_AZURE ? "endpoint" : "base_url";
    const char *example = prov->kind == TELEX_PROVIDER_AZURE       ? "https://my-resource.openai.azure.com"
                          : prov->kind == TELEX_PROVIDER_ANTHROPIC ? TELEX_CONFIG_ANTHROPIC_BASE_URL
                                                                   : TELEX_CONFIG_OPENAI_BASE_URL;
    prov->base_url = prov->kind == TELEX_PROVIDER_ANTHROPIC ? TELEX_CONFIG_ANTHROPIC_BASE_URL
                                                            : TELEX_CONFIG_OPENAI_BASE_URL;
    yaml_node_t *url = get(c, item, url_key);
    if (!url && prov->kind == TELEX_PROVIDER_AZURE)
        return fail(c, item, base, "missing required key \"endpoint\" (the resource's URL, e.g. %s)", example);
    if (url) {
        const char *s, *why = NULL;
        path_key(p, base, url_key);
        if ((rc = read_str(c, url, p, 0, &s)) < 0)
            return rc;
        if (!(prov->base_url = telex_config_base_url(c->arena, s, &why)))
            return why ? fail(c, url, p, "%s (e.g. %s)", why, example) : oom(c);
    }
    yaml_node_t *h2 = get(c, item, "http2");
    if (h2) { /* auto | on | off (a YAML bool is taken as on/off) */
        static const char *const modes[] = {"auto", "on", "off"};
        const char *hs;
        path_key(p, base, "http2");
        if (h2->type != YAML_SCALAR_NODE || is_null(h2))
            return fail(c, h2, p, "expected auto, on or off");
        hs = sval(h2);
        int m = -1;
        for (int k = 0; k < 3; k++)
            if (strcmp(hs, modes[k]) == 0)
                m = k;
        if (m < 0 && (!strcmp(hs, "true") || !strcmp(hs, "yes")))
            m = 1;
        if (m < 0 && (!strcmp(hs, "false") || !strcmp(hs, "no")))
            m = 2;
        if (m < 0)
            return fail(c, h2, p, "expected auto, on or off, got %s", quote(q, hs));
        prov->http2 = m;
    }
    if ((rc = parse_api_key(c, item, base, prov)) < 0)
        return rc;
    yaml_node_t *keynode = get(c, item, "api_key");
    if (!keynode)
        keynode = get(c, item, "api_key_env");
    if ((rc = parse_headers(c, get(c, item, "headers"), base, prov, keynode)) < 0)
        return rc;
    if (prov->kind == TELEX_PROVIDER_ANTHROPIC) {
        prov->anthropic_version = TELEX_CONFIG_ANTHROPIC_VERSION;
        prov->max_tokens = TELEX_CONFIG_ANTHROPIC_MAX_TOKENS;
        FIELD(item, "anthropic_version", base, read_str, 0, &prov->anthropic_version);
        FIELD(item, "max_tokens", base, read_uint, 1, 100000000, &prov->max_tokens);
    }
    if (prov->kind == TELEX_PROVIDER_AZURE) {
        prov->api_version = TELEX_CONFIG_AZURE_API_VERSION;
        yaml_node_t *av = get(c, item, "api_version");
        if (av) {
            path_key(p, base, "api_version");
            if ((rc = read_str(c, av, p, 0, &prov->api_version)) < 0)
                return rc;
            if (strspn(prov->api_version, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
                strlen(prov->api_version))
                return fail(c, av, p, "%s is not an API version (e.g. %s or 2025-01-01-preview)",
                            quote(q, prov->api_version), TELEX_CONFIG_AZURE_API_VERSION);
        }
    }
    return 0;
}

static int parse_providers(ctx_t *c, const yaml_node_t *v, telex_provider_t **out, size_t *n)
{
    char d[QUOTE_LEN];
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(c, v, "providers", "expected a list of providers (- name: ...), got %s",
                    describe(d, v));
    *n = n_items(v);
    if (*n == 0)
        return fail(c, v, "providers", "the list is empty; define at least one provider");
    telex_provider_t *p = telex_config_alloc(c->arena, *n * sizeof(*p));
    if (!p)
        return oom(c);
    for (size_t i = 0; i < *n; i++) {
        int rc = parse_provider(c, v, i, &p[i]);
        if (rc < 0)
            return rc;
    }
    *out = p;
    return 0;
}

/* ---- models ------------------------------------------------------------ */

/* An Azure OpenAI deployment name: 1..64 letters, digits, '.', '_', '-'. */
static bool valid_deployment(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 64 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static int parse_route(ctx_t *c, const yaml_node_t *item, const char *base,
                       const telex_model_t *model, const char *const *provider_names,
                       telex_route_t *r)
{
    static const char *const keys[] = {"provider", "model", "input_price_per_mtok",
                                       "output_price_per_mtok", "cached_input_price_per_mtok"};
    char p[PATH_LEN], q[QUOTE_LEN], d[QUOTE_LEN], list[256];
    const yaml_node_t *pv;
    int rc;
    if (item->type == YAML_SCALAR_NODE) { /* shorthand: just the provider's name */
        pv = item;
        snprintf(p, sizeof p, "%s", base);
    } else if (item->type == YAML_MAPPING_NODE) {
        if ((rc = check_keys(c, item, base, keys, sizeof keys / sizeof keys[0])) < 0)
            return rc;
        if (!(pv = get(c, item, "provider")))
            return fail(c, item, base, "missing required key \"provider\"");
        path_key(p, base, "provider");
    } else {
        return fail(c, item, base, "expected a provider name or a mapping (provider:, model:), got %s",
                    describe(d, item));
    }
    const char *pname;
    if ((rc = read_str(c, pv, p, 0, &pname)) < 0)
        return rc;
    r->provider = telex_config_find_provider(c->cfg, pname);
    if (!r->provider) {
        const char *s = telex_config_suggest(pname, provider_names, c->cfg->n_providers);
        if (s)
            return fail(c, pv, p, "unknown provider %s; did you mean \"%s\"?", quote(q, pname), s);
        return fail(c, pv, p, "unknown provider %s (defined providers: %s)", quote(q, pname),
                    join_list(list, sizeof list, provider_names, c->cfg->n_providers));
    }
    r->model = model->catch_all ? NULL : model->name;
    if (item->type == YAML_MAPPING_NODE) {
        FIELD(item, "model", base, read_str, 0, &r->model);
        FIELD(item, "input_price_per_mtok", base, read_double, 0, false, 1e6,
              &r->input_price_per_mtok);
        FIELD(item, "output_price_per_mtok", base, read_double, 0, false, 1e6,
              &r->output_price_per_mtok);
        r->cached_input_price_per_mtok = r->input_price_per_mtok;
        FIELD(item, "cached_input_price_per_mtok", base, read_double, 0, false, 1e6,
              &r->cached_input_price_per_mtok);
    }
    if (r->provider->kind == TELEX_PROVIDER_AZURE && r->model != NULL && !valid_deployment(r->model)) {
        yaml_node_t *mn = item->type == YAML_MAPPING_NODE ? get(c, item, "model") : NULL;
        if (mn) {
            path_key(p, base, "model");
            return fail(c, mn, p, "%s is not an Azure deployment name (letters, digits, '.', '_' and '-')",
                        quote(q, r->model));
        }
        return fail(c, item, base,
                    "the model name %s would be the Azure deployment name, which allows only letters, "
                    "digits, '.', '_' and '-'; give the deployment with model:",
                    quote(q, r->model));
    }
    return 0;
}

static int parse_model(ctx_t *c, const yaml_node_t *seq, size_t i,
                       const char *const *provider_names, telex_model_t *m)
{
    static const char *const keys[] = {"name", "providers"};
    char base[PATH_LEN], p[PATH_LEN], q[QUOTE_LEN], d[QUOTE_LEN];
    yaml_node_t *item = node_at(c, seq->data.sequence.items.start[i]);
    int rc;
    path_index(base, "models", i);
    if (item->type != YAML_MAPPING_NODE)
        return fail(c, item, base, "expected a mapping (name:, providers:), got %s",
                    describe(d, item));
    if ((rc = check_keys(c, item, base, keys, 2)) < 0)
        return rc;
    yaml_node_t *name = get(c, item, "name");
    if (!name)
        return fail(c, item, base, "missing required key \"name\"");
    path_key(p, base, "name");
    if ((rc = read_str(c, name, p, 0, &m->name)) < 0)
        return rc;
    const yaml_node_t *first = earlier_name(c, seq, i, m->name);
    if (first)
        return fail(c, name, p, "duplicate model name %s (first at line %zu)", quote(q, m->name),
                    first->start_mark.line + 1);
    m->catch_all = strcmp(m->name, "*") == 0;

    yaml_node_t *routes = get(c, item, "providers");
    path_key(p, base, "providers");
    if (!routes)
        return fail(c, item, base, "missing required key \"providers\" (the providers that "
                                   "serve this model, in fallback order)");
    if (routes->type != YAML_SEQUENCE_NODE)
        return fail(c, routes, p, "expected a list (- provider: ...), got %s",
                    describe(d, routes));
    size_t n = n_items(routes);
    if (n == 0)
        return fail(c, routes, p, "the list is empty; give at least one provider");
    telex_route_t *r = telex_config_alloc(c->arena, n * sizeof(*r));
    if (!r)
        return oom(c);
    for (size_t j = 0; j < n; j++) {
        char rp[PATH_LEN];
        path_index(rp, p, j);
        if ((rc = parse_route(c, node_at(c, routes->data.sequence.items.start[j]), rp, m,
                              provider_names, &r[j])) < 0)
            return rc;
    }
    m->routes = r;
    m->n_routes = n;
    return 0;
}

static int parse_models(ctx_t *c, const yaml_node_t *v, telex_model_t **out, size_t *n)
{
    char d[QUOTE_LEN];
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(c, v, "models", "expected a list of models (- name: ...), got %s",
                    describe(d, v));
    *n = n_items(v);
    if (*n == 0)
        return fail(c, v, "models", "the list is empty; define at least one model");
    telex_model_t *m = telex_config_alloc(c->arena, *n * sizeof(*m));
    const char **names = telex_config_alloc(c->arena, c->cfg->n_providers * sizeof(*names));
    if (!m || !names)
        return oom(c);
    for (size_t i = 0; i < c->cfg->n_providers; i++)
        names[i] = c->cfg->providers[i].name;
    for (size_t i = 0; i < *n; i++) {
        int rc = parse_model(c, v, i, names, &m[i]);
        if (rc < 0)
            return rc;
    }
    *out = m;
    return 0;
}

/* ---- presets ------------------------------------------------------------ */

static bool valid_preset_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* Checks every {{placeholder}} of a template; see presets.h for the syntax. */
static int check_template(ctx_t *c, const yaml_node_t *at, const char *path, const char *t)
{
    char q[QUOTE_LEN];
    for (const char *p = strstr(t, "{{"); p; p = strstr(p, "{{")) {
        const char *close = strstr(p + 2, "}}");
        char snippet[48];
        snprintf(snippet, sizeof snippet, "%.40s", p);
        for (char *x = snippet; *x; x++)
            if (*x == '\n' || *x == '\r')
                *x = '\0';
        if (!close)
            return fail(c, at, path, "unterminated placeholder %s (close it with }})", quote(q, snippet));
        const char *a = p + 2, *b = close;
        while (a < b && *a == ' ')
            a++;
        while (b > a && b[-1] == ' ')
            b--;
        size_t n = (size_t)(b - a);
        bool ok = n > 0 && n <= 64 && !(a[0] >= '0' && a[0] <= '9');
        for (size_t i = 0; i < n && ok; i++)
            ok = (a[i] >= 'a' && a[i] <= 'z') || (a[i] >= 'A' && a[i] <= 'Z') ||
                 (a[i] >= '0' && a[i] <= '9') || a[i] == '_';
        if (!ok)
            return fail(c, at, path,
                        "invalid placeholder %s: a placeholder is {{name}}, name made of letters, digits and _",
                        quote(q, snippet));
        p = close + 2;
    }
    return 0;
}

/* A YAML node as JSON: plain scalars that read as numbers, booleans or null
 * become those; everything else a string. */
static json_t *yaml_to_json(ctx_t *c, const yaml_node_t *v, int depth)
{
    if (depth > 16)
        return NULL;
    if (v->type == YAML_MAPPING_NODE) {
        json_t *o = json_object();
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; o && p < v->data.mapping.pairs.top; p++) {
            yaml_node_t *k = node_at(c, p->key);
            json_t *val = yaml_to_json(c, node_at(c, p->value), depth + 1);
            if (k->type != YAML_SCALAR_NODE || !val || json_object_set_new(o, sval(k), val) != 0) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    if (v->type == YAML_SEQUENCE_NODE) {
        json_t *a = json_array();
        for (yaml_node_item_t *i = v->data.sequence.items.start; a && i < v->data.sequence.items.top; i++) {
            json_t *val = yaml_to_json(c, node_at(c, *i), depth + 1);
            if (!val || json_array_append_new(a, val) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    if (v->type != YAML_SCALAR_NODE)
        return NULL;
    const char *t = sval(v);
    if (v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (is_null(v))
            return json_null();
        if (!strcmp(t, "true") || !strcmp(t, "True") || !strcmp(t, "TRUE"))
            return json_true();
        if (!strcmp(t, "false") || !strcmp(t, "False") || !strcmp(t, "FALSE"))
            return json_false();
        const char *digits = t[0] == '-' ? t + 1 : t;
        if (*digits && strspn(digits, "0123456789") == strlen(digits) && strlen(digits) <= 18)
            return json_integer(strtoll(t, NULL, 10));
        if (*t && strspn(t, "0123456789+-.eE") == strlen(t)) {
            char *end;
            double x = strtod(t, &end);
            if (!*end && isfinite(x))
                return json_real(x);
        }
    }
    return json_stringn(t, v->data.scalar.length);
}

/* Parameters the preset itself decides, and types of the common ones. */
static int check_parameter(ctx_t *c, const yaml_node_t *k, const yaml_node_t *val, const json_t *j,
                           const char *path)
{
    const char *name = sval(k);
    if (!strcmp(name, "model"))
        return fail(c, k, path, "set by the preset's own model: key");
    if (!strcmp(name, "messages"))
        return fail(c, k, path, "built from the preset's system: and template: keys");
    static const struct {
        const char *name;
        int integer;
        double min, max;
    } nums[] = {{"max_tokens", 1, 1, 1e9},         {"max_completion_tokens", 1, 1, 1e9},
                {"n", 1, 1, 128},                  {"temperature", 0, 0, 2},
                {"top_p", 0, 0, 1},                {"presence_penalty", 0, -2, 2},
                {"frequency_penalty", 0, -2, 2},   {"seed", 1, -9.2e18, 9.2e18}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (strcmp(nums[i].name, name) != 0)
            continue;
        if (nums[i].integer ? !json_is_integer(j) : !json_is_number(j))
            return fail(c, val, path, "expected %s", nums[i].integer ? "an integer" : "a number");
        double x = json_number_value(j);
        if (x < nums[i].min || x > nums[i].max)
            return fail(c, val, path, "must be from %g to %g", nums[i].min, nums[i].max);
    }
    if (!strcmp(name, "stream") && !json_is_boolean(j))
        return fail(c, val, path, "expected true or false");
    return 0;
}

static int parse_json_mapping(ctx_t *c, const yaml_node_t *v, const char *path, bool parameters,
                              const char **out)
{
    char d[QUOTE_LEN];
    if (!v || is_null(v)) {
        *out = "{}";
        return 0;
    }
    if (v->type != YAML_MAPPING_NODE)
        return fail(c, v, path, "expected a mapping, got %s", describe(d, v));
    json_t *obj = json_object();
    if (!obj)
        return oom(c);
    int rc = 0;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key), *val = node_at(c, p->value);
        char kp[PATH_LEN];
        if (k->type != YAML_SCALAR_NODE || is_null(k) || strlen(sval(k)) != k->data.scalar.length) {
            rc = fail(c, k, path, "keys must be plain strings");
            break;
        }
        path_key(kp, path, sval(k));
        for (yaml_node_pair_t *p2 = v->data.mapping.pairs.start; p2 < p && rc == 0; p2++)
            if (strcmp(sval(node_at(c, p2->key)), sval(k)) == 0)
                rc = fail(c, k, kp, "duplicate key (first at line %zu)", node_at(c, p2->key)->start_mark.line + 1);
        if (rc < 0)
            break;
        if (!parameters) { /* a variable: a name and a scalar value, kept as text */
            const char *txt;
            bool name_ok = strlen(sval(k)) <= 64 && !(sval(k)[0] >= '0' && sval(k)[0] <= '9');
            for (const char *x = sval(k); *x && name_ok; x++)
                name_ok = (*x >= 'a' && *x <= 'z') || (*x >= 'A' && *x <= 'Z') || (*x >= '0' && *x <= '9') ||
                          *x == '_';
            if (!name_ok) {
                rc = fail(c, k, kp, "a variable name is made of letters, digits and _");
                break;
            }
            if (val->type != YAML_SCALAR_NODE) {
                rc = fail(c, val, kp, "expected a string, got %s", describe(d, val));
                break;
            }
            if ((rc = read_str(c, val, kp, STR_ALLOW_EMPTY | STR_MULTILINE, &txt)) < 0)
                break;
            if (json_object_set_new(obj, sval(k), json_string(txt)) != 0) {
                rc = fail(c, val, kp, "must be valid UTF-8");
                break;
            }
            continue;
        }
        json_t *j = yaml_to_json(c, val, 0);
        if (!j) {
            rc = fail(c, val, kp, "cannot be represented as JSON (invalid UTF-8 or nested too deeply)");
            break;
        }
        if ((rc = check_parameter(c, k, val, j, kp)) < 0 || json_object_set_new(obj, sval(k), j) != 0) {
            if (rc == 0)
                rc = oom(c);
            if (rc != -ENOMEM)
                json_decref(j);
            break;
        }
    }
    char *text = rc == 0 ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(obj);
    if (rc < 0)
        return rc;
    if (!text || !(*out = telex_config_strdup(c->arena, text))) {
        free(text);
        return oom(c);
    }
    free(text);
    return 0;
}

static int parse_preset(ctx_t *c, const yaml_node_t *seq, size_t i, telex_preset_t *pr)
{
    static const char *const keys[] = {"name",     "model",      "description", "system",
                                       "template", "parameters", "variables"};
    char base[PATH_LEN], p[PATH_LEN], q[QUOTE_LEN], d[QUOTE_LEN];
    yaml_node_t *item = node_at(c, seq->data.sequence.items.start[i]);
    int rc;
    path_index(base, "presets", i);
    if (item->type != YAML_MAPPING_NODE)
        return fail(c, item, base, "expected a mapping (name:, model:, system:, template:, ...), got %s",
                    describe(d, item));
    if ((rc = check_keys(c, item, base, keys, sizeof keys / sizeof keys[0])) < 0)
        return rc;
    yaml_node_t *name = get(c, item, "name");
    if (!name)
        return fail(c, item, base, "missing required key \"name\"");
    path_key(p, base, "name");
    if ((rc = read_str(c, name, p, 0, &pr->name)) < 0)
        return rc;
    if (!valid_preset_name(pr->name))
        return fail(c, name, p, "%s: a preset name is 1 to 64 letters, digits, '.', '_' or '-'",
                    quote(q, pr->name));
    const yaml_node_t *first = earlier_name(c, seq, i, pr->name);
    if (first)
        return fail(c, name, p, "duplicate preset name %s (first at line %zu)", quote(q, pr->name),
                    first->start_mark.line + 1);
    yaml_node_t *model = get(c, item, "model");
    if (!model)
        return fail(c, item, base, "missing required key \"model\" (the model the preset asks for)");
    path_key(p, base, "model");
    if ((rc = read_str(c, model, p, 0, &pr->model)) < 0)
        return rc;
    if (strncmp(pr->model, "preset:", 7) == 0)
        return fail(c, model, p, "a preset cannot use another preset");
    pr->line = (unsigned)model->start_mark.line + 1;
    pr->column = (unsigned)model->start_mark.column + 1;
    FIELD(item, "description", base, read_str, STR_MULTILINE, &pr->description);
    static const char *const texts[] = {"system", "template"};
    const char **slots[] = {&pr->system, &pr->template};
    for (int t = 0; t < 2; t++) {
        yaml_node_t *v = get(c, item, texts[t]);
        if (!v)
            continue;
        path_key(p, base, texts[t]);
        if ((rc = read_str(c, v, p, STR_MULTILINE, slots[t])) < 0 ||
            (rc = check_template(c, v, p, *slots[t])) < 0)
            return rc;
    }
    path_key(p, base, "parameters");
    if ((rc = parse_json_mapping(c, get(c, item, "parameters"), p, true, &pr->parameters)) < 0)
        return rc;
    path_key(p, base, "variables");
    if ((rc = parse_json_mapping(c, get(c, item, "variables"), p, false, &pr->variables)) < 0)
        return rc;
    return 0;
}

static int parse_presets(ctx_t *c, const yaml_node_t *v)
{
    char d[QUOTE_LEN];
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(c, v, "presets", "expected a list of presets (- name: ...), got %s", describe(d, v));
    size_t n = n_items(v);
    telex_preset_t *p = n ? telex_config_alloc(c->arena, n * sizeof(*p)) : NULL;
    if (n && !p)
        return oom(c);
    for (size_t i = 0; i < n; i++) {
        int rc = parse_preset(c, v, i, &p[i]);
        if (rc < 0)
            return rc;
    }
    c->cfg->presets = p;
    c->cfg->n_presets = n;
    return 0;
}

/* ---- the document ------------------------------------------------------ */

static int parse_root(ctx_t *c, const yaml_node_t *root)
{
    static const char *const keys[] = {"listen",  "workers", "tls",     "providers", "models",
                                       "streaming", "limits", "resume",  "store",     "auth",
                                       "cors",    "metrics", "presets", "cluster"};
    telex_config_t *cfg = c->cfg;
    int rc;
    if (!root || is_null(root))
        return 0; /* an empty file: all defaults */
    if (root->type != YAML_MAPPING_NODE) {
        char d[QUOTE_LEN];
        return fail(c, root, "", "the top level must be a mapping (listen:, providers:, "
                                 "models:, ...), got %s", describe(d, root));
    }
    if ((rc = check_keys(c, root, "", keys, sizeof keys / sizeof keys[0])) < 0)
        return rc;

    yaml_node_t *v;
    if ((v = get(c, root, "listen"))) {
        const char *s;
        char why[256];
        if ((rc = read_str(c, v, "listen", 0, &s)) < 0)
            return rc;
        if ((rc = telex_config_set_listen(cfg, s, why, sizeof why)) < 0)
            return rc == -ENOMEM ? oom(c) : fail(c, v, "listen", "%s", why);
    }
    uint64_t workers = (uint64_t)cfg->workers;
    FIELD(root, "workers", "", read_uint, 0, 1024, &workers);
    cfg->workers = (int)workers;
    if ((rc = parse_tls(c, get(c, root, "tls"))) < 0 ||
        (rc = parse_streaming(c, get(c, root, "streaming"))) < 0 ||
        (rc = parse_limits(c, get(c, root, "limits"))) < 0 ||
        (rc = parse_resume(c, get(c, root, "resume"))) < 0 ||
        (rc = parse_cluster(c, get(c, root, "cluster"))) < 0 ||
        (rc = parse_store(c, get(c, root, "store"))) < 0 ||
        (rc = parse_auth(c, get(c, root, "auth"))) < 0 ||
        (rc = parse_cors(c, get(c, root, "cors"))) < 0 ||
        (rc = parse_metrics(c, get(c, root, "metrics"))) < 0)
        return rc;

    yaml_node_t *pv = get(c, root, "providers"), *mv = get(c, root, "models");
    if (pv && is_null(pv))
        pv = NULL;
    if (mv && is_null(mv))
        mv = NULL;
    if (pv && !mv)
        return fail(c, get_key(c, root, "providers"), "providers",
                    "given without models: a file that defines providers must define the "
                    "models they serve");
    if (mv && !pv)
        return fail(c, get_key(c, root, "models"), "models",
                    "given without providers: a file that defines models must define the "
                    "providers they use (the built-in demo provider is: - name: demo, "
                    "kind: demo)");
    if (pv) {
        telex_provider_t *providers = NULL;
        telex_model_t *models = NULL;
        size_t np = 0, nm = 0;
        if ((rc = parse_providers(c, pv, &providers, &np)) < 0)
            return rc;
        cfg->providers = providers;
        cfg->n_providers = np;
        if ((rc = parse_models(c, mv, &models, &nm)) < 0)
            return rc;
        cfg->models = models;
        cfg->n_models = nm;
    }
    if ((v = get(c, root, "presets")) && !is_null(v))
        return parse_presets(c, v);
    return 0;
}

static int syntax_error(ctx_t *c, const yaml_parser_t *parser, const char *text, size_t len)
{
    if (parser->error == YAML_MEMORY_ERROR)
        return oom(c);
    size_t line = parser->problem_mark.line + 1, col = parser->problem_mark.column + 1;
    if (parser->error == YAML_READER_ERROR) { /* only an offset is known */
        line = 1;
        col = 1;
        for (size_t i = 0; i < parser->problem_offset && i < len; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
    }
    const char *problem = parser->problem ? parser->problem : "syntax error";
    /* libyaml's words for a tab ("found character that cannot start any
     * token") do not say what to do about it. */
    size_t at = parser->problem_mark.index;
    const char *hint = parser->error != YAML_READER_ERROR && at < len && text[at] == '\t' &&
                               !strstr(problem, "tab")
                           ? "; the character is a tab: YAML indents with spaces only"
                           : "";
    if (parser->context)
        telex_config_errf(c->err, c->errlen, "%s:%zu:%zu: invalid YAML: %s (%s at line %zu)%s",
                          c->file, line, col, problem, parser->context,
                          parser->context_mark.line + 1, hint);
    else
        telex_config_errf(c->err, c->errlen, "%s:%zu:%zu: invalid YAML: %s%s", c->file, line, col,
                          problem, hint);
    return -EINVAL;
}

int telex_config_parse_yaml(telex_config_t *cfg, const char *file, const char *text, size_t len,
                            telex_config_use_t use, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    ctx_t c = {.doc = &doc, .file = file, .cfg = cfg, .arena = cfg->arena, .use = use, .err = err,
               .errlen = errlen};
    int rc;
    if (!yaml_parser_initialize(&parser))
        return oom(&c);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = syntax_error(&c, &parser, text, len);
        yaml_parser_delete(&parser);
        return rc;
    }
    rc = parse_root(&c, yaml_document_get_root_node(&doc));
    if (rc == 0 && yaml_document_get_root_node(&doc)) {
        if (!yaml_parser_load(&parser, &extra)) {
            rc = syntax_error(&c, &parser, text, len);
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&extra);
            if (r2) {
                c.doc = &extra;
                rc = fail(&c, r2, "", "a second YAML document; telex.yaml holds exactly one");
            }
            yaml_document_delete(&extra);
        }
    }
    if (rc == 0 && c.n_missing > 0)
        rc = fail_missing(&c);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}
