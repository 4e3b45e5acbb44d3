/*
 * config/config.c — loading a telex_config_t: built-in defaults, then the
 * YAML file (config_yaml.c), then environment overrides; and the lookups the
 * request path uses (find_model, find_provider), which never allocate.
 *
 * Every byte of a config lives in its arena: a list of zeroed allocations
 * freed together by telex_config_free, so a half-built config on an error
 * path is released in one call.
 */
#include "config/config_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <h2o.h>

/* ---- allocation, with fault injection for tests ------------------------ */

static long fail_countdown = -1; /* < 0: never fail */

void telex_config_test_fail_alloc(long n)
{
    fail_countdown = n;
}

static bool alloc_fails(void)
{
    if (fail_countdown < 0)
        return false;
    return fail_countdown-- == 0;
}

/* ---- arena ------------------------------------------------------------ */

typedef union arena_block {
    union arena_block *next;
    max_align_t align;
} arena_block_t;

struct telex_config_arena {
    arena_block_t *head;
};

void *telex_config_alloc(struct telex_config_arena *a, size_t size)
{
    if (size > SIZE_MAX - sizeof(arena_block_t) || alloc_fails())
        return NULL;
    arena_block_t *b = calloc(1, sizeof(*b) + size);
    if (!b)
        return NULL;
    b->next = a->head;
    a->head = b;
    return b + 1;
}

char *telex_config_strndup(struct telex_config_arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *p = telex_config_alloc(a, n + 1);
    if (p)
        memcpy(p, s, n);
    return p;
}

char *telex_config_strdup(struct telex_config_arena *a, const char *s)
{
    return telex_config_strndup(a, s, strlen(s));
}

static void arena_free(struct telex_config_arena *a)
{
    arena_block_t *b = a->head;
    while (b) {
        arena_block_t *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

/* ---- small shared helpers ---------------------------------------------- */

void telex_config_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Levenshtein distance, capped: returns cap+1 when above cap or too long. */
static size_t edit_distance(const char *a, const char *b, size_t cap)
{
    size_t la = strlen(a), lb = strlen(b);
    enum { MAXLEN = 64 };
    if (la > MAXLEN || lb > MAXLEN)
        return cap + 1;
    size_t row[MAXLEN + 1];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *telex_config_suggest(const char *word, const char *const *candidates, size_t n)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(word, candidates[i], 2);
        if (d < best_d && d < strlen(word)) {
            best = candidates[i];
            best_d = d;
        }
    }
    return best;
}

char *telex_config_base_url(struct telex_config_arena *a, const char *url, const char **why)
{
    size_t skip;
    if (strncmp(url, "http://", 7) == 0)
        skip = 7;
    else if (strncmp(url, "https://", 8) == 0)
        skip = 8;
    else {
        *why = "must start with http:// or https://";
        return NULL;
    }
    for (const char *p = url; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= 0x20 || ch == 0x7f) {
            *why = "must not contain spaces or control characters";
            return NULL;
        }
        if (ch == '?' || ch == '#') {
            *why = "must not contain a query (?) or fragment (#)";
            return NULL;
        }
    }
    /* The HTTP client parses base URL + path with h2o_url_parse: whatever
     * passes here, it can parse. */
    h2o_url_t parsed;
    if (h2o_url_parse(url, strlen(url), &parsed) != 0) {
        *why = url[skip] == '\0' || url[skip] == '/' ? "has no host" : "has a bad host or port";
        return NULL;
    }
    size_t n = strlen(url);
    while (n > skip && url[n - 1] == '/')
        n--;
    char *copy = telex_config_strndup(a, url, n);
    *why = NULL; /* NULL result with NULL why = out of memory */
    return copy;
}

/* ---- kinds ------------------------------------------------------------- */

static const char *const kind_names[TELEX_PROVIDER_KIND_COUNT] = {
    [TELEX_PROVIDER_OPENAI] = "openai",
    [TELEX_PROVIDER_DEMO] = "demo",
    [TELEX_PROVIDER_ANTHROPIC] = "anthropic",
    [TELEX_PROVIDER_AZURE] = "azure",
};

const char *telex_provider_kind_name(telex_provider_kind_t kind)
{
    if ((unsigned)kind >= TELEX_PROVIDER_KIND_COUNT)
        return NULL;
    return kind_names[kind];
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Provider "demo" and model "demo"; with OPENAI_API_KEY or OPENAI_BASE_URL
 * in the environment, also provider "openai" and the catch-all "*" → openai.
 * A command that does not serve gets the same models but reads neither
 * variable's value (no key, the default URL). */
static int set_builtin_routes(telex_config_t *cfg, telex_config_use_t use, char *err, size_t errlen)
{
    struct telex_config_arena *a = cfg->arena;
    const char *key = env_nonempty("OPENAI_API_KEY");
    const char *url = env_nonempty("OPENAI_BASE_URL");
    bool openai = key || url;
    if (use != TELEX_CONFIG_USE_ALL)
        key = url = NULL;
    size_t np = openai ? 2 : 1;

    telex_provider_t *p = telex_config_alloc(a, np * sizeof(*p));
    telex_model_t *m = telex_config_alloc(a, np * sizeof(*m));
    telex_route_t *r = telex_config_alloc(a, np * sizeof(*r));
    if (!p || !m || !r)
        goto oom;

    p[0] = (telex_provider_t){
        .name = "demo",
        .kind = TELEX_PROVIDER_DEMO,
        .timeout_seconds = TELEX_CONFIG_DEFAULT_TIMEOUT_SECONDS,
        .tokens_per_second = TELEX_CONFIG_DEFAULT_TOKENS_PER_SECOND,
    };
    r[0] = (telex_route_t){.provider = &p[0], .model = "demo"};
    m[0] = (telex_model_t){.name = "demo", .routes = &r[0], .n_routes = 1};

    if (openai) {
        const char *base = TELEX_CONFIG_OPENAI_BASE_URL;
        if (url) {
            const char *why = NULL;
            base = telex_config_base_url(a, url, &why);
            if (!base) {
                if (!why)
                    goto oom;
                telex_config_errf(err, errlen, "OPENAI_BASE_URL: %s", why);
                return -EINVAL;
            }
        }
        const char *k = NULL;
        if (key) {
            if (has_ctl(key)) {
                telex_config_errf(err, errlen, "OPENAI_API_KEY: contains control characters");
                return -EINVAL;
            }
            if (!(k = telex_config_strdup(a, key)))
                goto oom;
        }
        p[1] = (telex_provider_t){
            .name = "openai",
            .kind = TELEX_PROVIDER_OPENAI,
            .base_url = base,
            .api_key = k,
            .timeout_seconds = TELEX_CONFIG_DEFAULT_TIMEOUT_SECONDS,
            .tokens_per_second = TELEX_CONFIG_DEFAULT_TOKENS_PER_SECOND,
        };
        r[1] = (telex_route_t){.provider = &p[1], .model = NULL};
        m[1] = (telex_model_t){.name = "*", .catch_all = true, .routes = &r[1], .n_routes = 1};
    }
    cfg->providers = p;
    cfg->n_providers = np;
    cfg->models = m;
    cfg->n_models = np;
    return 0;
oom:
    telex_config_errf(err, errlen, "out of memory");
    return -ENOMEM;
}

/* ---- environment overrides --------------------------------------------- */

int telex_config_set_listen(telex_config_t *cfg, const char *hostport, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = telex_config_parse_listen(hostport, &ss, &len, err, errlen);
    if (rc < 0)
        return rc;
    char *copy = telex_config_strdup(cfg->arena, hostport);
    if (!copy) {
        telex_config_errf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    cfg->listen = copy;
    cfg->listen_addr = ss;
    cfg->listen_addrlen = len;
    return 0;
}

static const char *ctl_problem(const char *v)
{
    return has_ctl(v) ? "contains control characters" : NULL;
}

/* The variable `name`, when set, replaces *slot (an arena copy) unless
 * problem(value) says why not: "NAME: LEADwhy". */
static int env_string(telex_config_t *cfg, const char *name, const char *(*problem)(const char *),
                      const char *lead, const char **slot, char *err, size_t errlen)
{
    const char *v = env_nonempty(name), *why;
    if (!v)
        return 0;
    if ((why = problem(v))) {
        telex_config_errf(err, errlen, "%s: %s%s", name, lead, why);
        return -EINVAL;
    }
    if (!(*slot = telex_config_strdup(cfg->arena, v))) {
        telex_config_errf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

static int apply_store_env(telex_config_t *cfg, char *err, size_t errlen)
{
    return env_string(cfg, "TELEX_DB", ctl_problem, "", &cfg->store.path, err, errlen);
}

/* Every override; a command that uses only the store applies only TELEX_DB. */
static int apply_env(telex_config_t *cfg, telex_config_use_t use, char *err, size_t errlen)
{
    const char *v;
    char why[256];
    if (use != TELEX_CONFIG_USE_ALL)
        return apply_store_env(cfg, err, errlen);
    if ((v = env_nonempty("TELEX_LISTEN"))) {
        int rc = telex_config_set_listen(cfg, v, why, sizeof why);
        if (rc < 0) {
            if (rc == -ENOMEM)
                telex_config_errf(err, errlen, "out of memory");
            else
                telex_config_errf(err, errlen, "TELEX_LISTEN: %s", why);
            return rc;
        }
    }
    if ((v = env_nonempty("TELEX_WORKERS"))) {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (*v < '0' || *v > '9' || *end || errno || n > 1024) {
            telex_config_errf(err, errlen,
                              "TELEX_WORKERS: expected an integer from 0 to 1024 "
                              "(0 = one per core), got \"%.64s\"", v);
            return -EINVAL;
        }
        cfg->workers = (int)n;
    }
    const char *cert = env_nonempty("TELEX_TLS_CERT");
    const char *key = env_nonempty("TELEX_TLS_KEY");
    const char *names[2] = {"TELEX_TLS_CERT", "TELEX_TLS_KEY"};
    const char *vals[2] = {cert, key};
    const char **slots[2] = {&cfg->tls_cert, &cfg->tls_key};
    for (int i = 0; i < 2; i++) {
        if (!vals[i])
            continue;
        int rc = telex_config_check_readable(vals[i]);
        if (rc < 0) {
            telex_config_errf(err, errlen, "%s: cannot read %.200s: %s", names[i], vals[i],
                              strerror(-rc));
            return -EINVAL;
        }
        if (!(*slots[i] = telex_config_strdup(cfg->arena, vals[i]))) {
            telex_config_errf(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    if (!cfg->tls_cert != !cfg->tls_key) {
        telex_config_errf(err, errlen, "%s is set but %s is not (TLS needs both)",
                          cfg->tls_cert ? "TELEX_TLS_CERT" : "TELEX_TLS_KEY",
                          cfg->tls_cert ? "TELEX_TLS_KEY" : "TELEX_TLS_CERT");
        return -EINVAL;
    }
    int rc;
    if ((rc = apply_store_env(cfg, err, errlen)) < 0 ||
        (rc = env_string(cfg, "TELEX_REDIS_URL", ctl_problem, "", &cfg->cluster.redis_url, err, errlen)) < 0)
        return rc;
    return env_string(cfg, "TELEX_ADMIN_TOKEN", telex_config_admin_token_problem, "the token ",
                      &cfg->auth.admin_token, err, errlen);
}

/* $XDG_STATE_HOME/telex/telex.db, else $HOME/.local/state/telex/telex.db,
 * else ./telex.db (XDG: relative values are ignored). */
static int default_store_path(telex_config_t *cfg, char *err, size_t errlen)
{
    const char *xdg = env_nonempty("XDG_STATE_HOME"), *home = env_nonempty("HOME");
    const char *base = NULL, *rest = "";
    if (xdg && xdg[0] == '/' && !has_ctl(xdg))
        base = xdg, rest = "/telex/telex.db";
    else if (home && home[0] == '/' && !has_ctl(home))
        base = home, rest = "/.local/state/telex/telex.db";
    size_t n = (base ? strlen(base) : 0) + strlen(rest) + 16;
    char *p = telex_config_alloc(cfg->arena, n);
    if (!p) {
        telex_config_errf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (base)
        snprintf(p, n, "%s%s", strcmp(base, "/") == 0 ? "" : base, rest);
    else
        snprintf(p, n, "telex.db");
    cfg->store.path = p;
    return 0;
}

/* Every preset names a model this config serves. */
static int check_preset_models(const telex_config_t *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->n_presets; i++) {
        const telex_preset_t *p = &cfg->presets[i];
        if (telex_config_find_model(cfg, p->model))
            continue;
        const char *names[64];
        size_t n = 0;
        for (size_t j = 0; j < cfg->n_models && n < 64; j++)
            names[n++] = cfg->models[j].name;
        const char *s = telex_config_suggest(p->model, names, n);
        char list[256] = "";
        size_t o = 0;
        for (size_t j = 0; j < n && o + 70 < sizeof list; j++)
            o += (size_t)snprintf(list + o, sizeof list - o, "%s%.64s", j ? ", " : "", names[j]);
        if (s)
            telex_config_errf(err, errlen, "%s:%u:%u: presets[%zu].model: unknown model \"%.64s\"; did you mean \"%s\"?",
                              cfg->path ? cfg->path : "telex.yaml", p->line, p->column, i, p->model, s);
        else
            telex_config_errf(err, errlen, "%s:%u:%u: presets[%zu].model: unknown model \"%.64s\" (defined models: %s)",
                              cfg->path ? cfg->path : "telex.yaml", p->line, p->column, i, p->model, list);
        return -EINVAL;
    }
    return 0;
}

int telex_config_check_readable(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0)
        rc = -errno;
    else if (S_ISDIR(st.st_mode))
        rc = -EISDIR;
    close(fd);
    return rc;
}

/* ---- the file ---------------------------------------------------------- */

#define MAX_CONFIG_FILE_BYTES (16u << 20)

/* Reads the whole file; *out is malloc'ed and NUL-terminated. */
static int read_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = 0;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    struct stat st;
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
        goto fail;
    }
    for (;;) {
        if (cap - len < 4096) {
            size_t ncap = cap ? cap * 2 : 8192;
            char *nbuf = alloc_fails() ? NULL : realloc(buf, ncap + 1);
            if (!nbuf) {
                close(fd);
                free(buf);
                telex_config_errf(err, errlen, "out of memory");
                return -ENOMEM;
            }
            buf = nbuf;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > MAX_CONFIG_FILE_BYTES) {
            close(fd);
            free(buf);
            telex_config_errf(err, errlen, "cannot read %s: larger than 16 MiB", path);
            return -EFBIG;
        }
    }
    close(fd);
    if (!buf && !(buf = alloc_fails() ? NULL : malloc(1))) {
        telex_config_errf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    free(buf);
    telex_config_errf(err, errlen, "cannot read %s: %s", path, strerror(-rc));
    return rc;
}

/* ---- public API -------------------------------------------------------- */

const char *telex_config_path(const char *cli_path)
{
    return cli_path ? cli_path : env_nonempty("TELEX_CONFIG");
}

int telex_config_load(telex_config_t **out, const char *path, char *err, size_t errlen)
{
    return telex_config_load_for(out, path, TELEX_CONFIG_USE_ALL, err, errlen);
}

int telex_config_load_for(telex_config_t **out, const char *path, telex_config_use_t use, char *err,
                          size_t errlen)
{
    *out = NULL;
    telex_config_errf(err, errlen, "%s", "");
    telex_config_t *cfg = alloc_fails() ? NULL : calloc(1, sizeof(*cfg));
    struct telex_config_arena *arena = alloc_fails() ? NULL : calloc(1, sizeof(*arena));
    char *text = NULL;
    int rc;
    if (!cfg || !arena) {
        free(cfg);
        free(arena);
        telex_config_errf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    cfg->arena = arena;
    telex_config_set_defaults(cfg);
    if ((rc = telex_config_set_listen(cfg, TELEX_CONFIG_DEFAULT_LISTEN, err, errlen)) < 0)
        goto fail;

    if (path) {
        size_t len = 0;
        if (!(cfg->path = telex_config_strdup(arena, path))) {
            rc = -ENOMEM;
            telex_config_errf(err, errlen, "out of memory");
            goto fail;
        }
        if ((rc = read_file(path, &text, &len, err, errlen)) < 0)
            goto fail;
        if ((rc = telex_config_parse_yaml(cfg, path, text, len, use, err, errlen)) < 0)
            goto fail;
        free(text);
        text = NULL;
    }
    if (!cfg->providers && (rc = set_builtin_routes(cfg, use, err, errlen)) < 0)
        goto fail;
    if ((rc = apply_env(cfg, use, err, errlen)) < 0)
        goto fail;
    if (!cfg->store.path && (rc = default_store_path(cfg, err, errlen)) < 0)
        goto fail;

    cfg->catch_all = NULL;
    for (size_t i = 0; i < cfg->n_models; i++)
        if (cfg->models[i].catch_all)
            cfg->catch_all = &cfg->models[i];
    if ((rc = check_preset_models(cfg, err, errlen)) < 0)
        goto fail;
    *out = cfg;
    return 0;
fail:
    free(text);
    telex_config_free(cfg);
    return rc;
}

void telex_config_free(telex_config_t *cfg)
{
    if (!cfg)
        return;
    if (cfg->arena) {
        arena_free(cfg->arena);
        free(cfg->arena);
    }
    free(cfg);
}

const telex_model_t *telex_config_find_model(const telex_config_t *cfg, const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < cfg->n_models; i++)
        if (!cfg->models[i].catch_all && strcmp(cfg->models[i].name, name) == 0)
            return &cfg->models[i];
    return *name ? cfg->catch_all : NULL;
}

const telex_preset_t *telex_config_find_preset(const telex_config_t *cfg, const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < cfg->n_presets; i++)
        if (strcmp(cfg->presets[i].name, name) == 0)
            return &cfg->presets[i];
    return NULL;
}

const telex_provider_t *telex_config_find_provider(const telex_config_t *cfg, const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < cfg->n_providers; i++)
        if (strcmp(cfg->providers[i].name, name) == 0)
            return &cfg->providers[i];
    return NULL;
}
