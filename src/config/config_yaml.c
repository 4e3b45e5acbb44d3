/*
 * config/config_yaml.c — telex.yaml → telex_config_t, with a FILE:LINE:COL
 * message for every mistake a user can make.
 *
 * libyaml's document loader builds a node tree in which every node keeps its
 * start mark (line, column); this file walks that tree from the top: listen,
 * workers and tls here, the sections of scalar settings through their tables
 * (config_sections.c), providers and models here, presets in
 * config_presets.c — reporting the first problem at the node that has it:
 * unknown or duplicate keys (with a did-you-mean), wrong types, out-of-range
 * numbers, duplicate names, a model naming an undefined provider. The
 * readers and messages are config_read.c's. Why not libcyaml:
 * docs/configuration.md, "Design note".
 *
 * Values that may be secret (api_key, header values, the contents of an
 * api_key_env variable) are never quoted in a message.
 */
#include "config/config_presets.h"
#include "config/config_read.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- tls --------------------------------------------------------------- */

static int parse_tls(ctx_t *c, const yaml_node_t *v)
{
    static const char *const keys[] = {"cert", "key"};
    int rc = cy_as_mapping(c, v, "tls", "cert: and key:");
    if (rc <= 0)
        return rc;
    if ((rc = cy_check_keys(c, v, "tls", keys, 2)) < 0)
        return rc;
    const char *vals[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        yaml_node_t *n = cy_get(c, v, keys[i]);
        if (!n)
            continue;
        char p[PATH_LEN];
        cy_path_key(p, "tls", keys[i]);
        if ((rc = cy_read_str(c, n, p, 0, &vals[i])) < 0)
            return rc;
        if (c->use == TELEX_CONFIG_USE_ALL && (rc = telex_config_check_readable(vals[i])) < 0) {
            char q[QUOTE_LEN];
            return cy_fail(c, n, p, "cannot read %s: %s", cy_quote(q, vals[i]), strerror(-rc));
        }
    }
    if (!vals[0] != !vals[1])
        return cy_fail(c, v, "tls", "%s is set but %s is not (give both, or neither)",
                       vals[0] ? "cert" : "key", vals[0] ? "key" : "cert");
    c->cfg->tls_cert = vals[0];
    c->cfg->tls_key = vals[1];
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
    cy_path_key(path, base, "headers");
    if (v && !cy_is_null(v) && v->type != YAML_MAPPING_NODE) /* not cy_describe(): may hold a key */
        return cy_fail(c, v, path, "expected a mapping (Header-Name: value), got %s",
                       v->type == YAML_SEQUENCE_NODE ? "a list" : "a string");
    int rc = cy_as_mapping(c, v, path, "Header-Name: value");
    if (rc <= 0)
        return rc;
    size_t n = cy_n_pairs(v);
    telex_header_t *h = n ? telex_config_alloc(c->arena, n * sizeof(*h)) : NULL;
    if (n && !h)
        return cy_oom(c);
    size_t i = 0;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
         p++, i++) {
        yaml_node_t *k = cy_node_at(c, p->key);
        if (k->type != YAML_SCALAR_NODE || cy_is_null(k) ||
            strlen(cy_sval(k)) != k->data.scalar.length)
            return cy_fail(c, k, path, "header names must be plain strings");
        const char *name = cy_sval(k);
        char hp[PATH_LEN];
        cy_path_key(hp, path, name);
        for (const char *s = name; *s; s++)
            if (!is_token_char((unsigned char)*s))
                return cy_fail(c, k, hp, "not a valid HTTP header name");
        for (size_t j = 0; j < i; j++)
            if (strcasecmp(h[j].name, name) == 0)
                return cy_fail(c, k, hp, "duplicate header (header names ignore case)");
        for (size_t j = 0; j < sizeof reserved / sizeof reserved[0]; j++)
            if (strcasecmp(reserved[j], name) == 0)
                return cy_fail(c, k, hp, "telex sets this header itself; it cannot be configured");
        if (api_key_node && strcasecmp(name, auth) == 0)
            return cy_fail(c, k, hp, "conflicts with api_key/api_key_env (which sends %s%s); use one or the other",
                           auth, prov->kind == TELEX_PROVIDER_OPENAI ? ": Bearer" : "");
        if (prov->kind == TELEX_PROVIDER_ANTHROPIC && strcasecmp(name, "anthropic-version") == 0)
            return cy_fail(c, k, hp, "set by the provider's anthropic_version key");
        if (!(h[i].name = telex_config_strdup(c->arena, name)))
            return cy_oom(c);
        if ((rc = cy_read_str(c, cy_node_at(c, p->value), hp, STR_ALLOW_EMPTY,
                              &h[i].value)) < 0)
            return rc;
    }
    prov->headers = h;
    prov->n_headers = n;
    return 0;
}


static int parse_api_key(ctx_t *c, const yaml_node_t *item, const char *base,
                         telex_provider_t *prov)
{
    char p[PATH_LEN], q[QUOTE_LEN];
    yaml_node_t *lit = cy_get(c, item, "api_key");
    yaml_node_t *env = cy_get(c, item, "api_key_env");
    int rc;
    if (lit && env) {
        cy_path_key(p, base, "api_key_env");
        return cy_fail(c, cy_get_key(c, item, "api_key_env"), p,
                       "give api_key or api_key_env, not both");
    }
    if (lit) {
        cy_path_key(p, base, "api_key");
        return cy_read_str(c, lit, p, 0, &prov->api_key);
    }
    if (!env)
        return 0;
    cy_path_key(p, base, "api_key_env");
    const char *var, *val;
    if ((rc = cy_secret_env(c, env, p, &var, &val)) <= 0)
        return rc;
    for (const char *s = val; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return cy_fail(c, env, p, "environment variable %s contains control characters",
                           cy_quote(q, var));
    if (!(prov->api_key = telex_config_strdup(c->arena, val)))
        return cy_oom(c);
    return 0;
}

static int parse_provider(ctx_t *c, const yaml_node_t *seq, size_t i, telex_provider_t *prov)
{
    static const cy_named_list_t list_of = {"providers", "provider", "name:, kind:, ...", provider_keys,
                                            N_PROVIDER_KEYS};
    char base[PATH_LEN], p[PATH_LEN], q[QUOTE_LEN], list[256];
    yaml_node_t *item, *name;
    int rc;
    if ((rc = cy_named_item(c, seq, i, &list_of, base, &item, &name, &prov->name)) < 0)
        return rc;

    const char *kinds[TELEX_PROVIDER_KIND_COUNT];
    for (int k = 0; k < TELEX_PROVIDER_KIND_COUNT; k++)
        kinds[k] = telex_provider_kind_name((telex_provider_kind_t)k);
    yaml_node_t *kind = cy_get(c, item, "kind");
    if (!kind)
        return cy_fail(c, item, base, "missing required key \"kind\" (one of: %s)",
                       cy_join_list(list, sizeof list, kinds, TELEX_PROVIDER_KIND_COUNT));
    cy_path_key(p, base, "kind");
    const char *ks;
    if ((rc = cy_read_str(c, kind, p, 0, &ks)) < 0)
        return rc;
    int kix = -1;
    for (int k = 0; k < TELEX_PROVIDER_KIND_COUNT; k++)
        if (strcmp(kinds[k], ks) == 0)
            kix = k;
    if (kix < 0) {
        const char *s = telex_config_suggest(ks, kinds, TELEX_PROVIDER_KIND_COUNT);
        if (s)
            return cy_fail(c, kind, p, "unknown provider kind %s; did you mean \"%s\"?",
                           cy_quote(q, ks), s);
        return cy_fail(c, kind, p, "unknown provider kind %s (known kinds: %s)", cy_quote(q, ks),
                       cy_join_list(list, sizeof list, kinds, TELEX_PROVIDER_KIND_COUNT));
    }
    prov->kind = (telex_provider_kind_t)kix;

    /* Keys that exist, but not for this kind. */
    for (yaml_node_pair_t *pp = item->data.mapping.pairs.start;
         pp < item->data.mapping.pairs.top; pp++) {
        yaml_node_t *k = cy_node_at(c, pp->key);
        for (size_t j = 0; j < N_PROVIDER_KEYS; j++) {
            if (strcmp(provider_keys[j], cy_sval(k)) != 0 || (provider_key_kinds[j] & KIND(kix)))
                continue;
            cy_path_key(p, base, cy_sval(k));
            const char *valid_for[TELEX_PROVIDER_KIND_COUNT];
            size_t nv = 0;
            for (int kk = 0; kk < TELEX_PROVIDER_KIND_COUNT; kk++)
                if (provider_key_kinds[j] & KIND(kk))
                    valid_for[nv++] = kinds[kk];
            return cy_fail(c, k, p, "not used by kind %s (only by: %s)", kinds[kix],
                           cy_join_list(list, sizeof list, valid_for, nv));
        }
    }

    prov->timeout_seconds = TELEX_CONFIG_DEFAULT_TIMEOUT_SECONDS;
    prov->tokens_per_second = TELEX_CONFIG_DEFAULT_TOKENS_PER_SECOND;
    FIELD(item, "timeout_seconds", base, cy_read_double, 0, true, SECONDS_MAX,
          &prov->timeout_seconds);
    FIELD(item, "tokens_per_second", base, cy_read_double, 0, true, 1e6, &prov->tokens_per_second);

    if (prov->kind == TELEX_PROVIDER_DEMO)
        return 0;
    /* openai, anthropic, azure: an HTTP API */
    const char *url_key = prov->kind == TELEX_PROVIDER_AZURE ? "endpoint" : "base_url";
    const char *example = prov->kind == TELEX_PROVIDER_AZURE       ? "https://my-resource.openai.azure.com"
                          : prov->kind == TELEX_PROVIDER_ANTHROPIC ? TELEX_CONFIG_ANTHROPIC_BASE_URL
                                                                   : TELEX_CONFIG_OPENAI_BASE_URL;
    prov->base_url = prov->kind == TELEX_PROVIDER_ANTHROPIC ? TELEX_CONFIG_ANTHROPIC_BASE_URL
                                                            : TELEX_CONFIG_OPENAI_BASE_URL;
    yaml_node_t *url = cy_get(c, item, url_key);
    if (!url && prov->kind == TELEX_PROVIDER_AZURE)
        return cy_fail(c, item, base, "missing required key \"endpoint\" (the resource's URL, e.g. %s)", example);
    if (url) {
        const char *s, *why = NULL;
        cy_path_key(p, base, url_key);
        if ((rc = cy_read_str(c, url, p, 0, &s)) < 0)
            return rc;
        if (!(prov->base_url = telex_config_base_url(c->arena, s, &why)))
            return why ? cy_fail(c, url, p, "%s (e.g. %s)", why, example) : cy_oom(c);
    }
    yaml_node_t *h2 = cy_get(c, item, "http2");
    if (h2) { /* auto | on | off (a YAML bool is taken as on/off) */
        static const char *const modes[] = {"auto", "on", "off"};
        const char *hs;
        cy_path_key(p, base, "http2");
        if (h2->type != YAML_SCALAR_NODE || cy_is_null(h2))
            return cy_fail(c, h2, p, "expected auto, on or off");
        hs = cy_sval(h2);
        int m = -1;
        for (int k = 0; k < 3; k++)
            if (strcmp(hs, modes[k]) == 0)
                m = k;
        if (m < 0 && (!strcmp(hs, "true") || !strcmp(hs, "yes")))
            m = 1;
        if (m < 0 && (!strcmp(hs, "false") || !strcmp(hs, "no")))
            m = 2;
        if (m < 0)
            return cy_fail(c, h2, p, "expected auto, on or off, got %s", cy_quote(q, hs));
        prov->http2 = m;
    }
    if ((rc = parse_api_key(c, item, base, prov)) < 0)
        return rc;
    yaml_node_t *keynode = cy_get(c, item, "api_key");
    if (!keynode)
        keynode = cy_get(c, item, "api_key_env");
    if ((rc = parse_headers(c, cy_get(c, item, "headers"), base, prov, keynode)) < 0)
        return rc;
    if (prov->kind == TELEX_PROVIDER_ANTHROPIC) {
        prov->anthropic_version = TELEX_CONFIG_ANTHROPIC_VERSION;
        prov->max_tokens = TELEX_CONFIG_ANTHROPIC_MAX_TOKENS;
        FIELD(item, "anthropic_version", base, cy_read_str, 0, &prov->anthropic_version);
        FIELD(item, "max_tokens", base, cy_read_uint, 1, 100000000, &prov->max_tokens);
    }
    if (prov->kind == TELEX_PROVIDER_AZURE) {
        prov->api_version = TELEX_CONFIG_AZURE_API_VERSION;
        yaml_node_t *av = cy_get(c, item, "api_version");
        if (av) {
            cy_path_key(p, base, "api_version");
            if ((rc = cy_read_str(c, av, p, 0, &prov->api_version)) < 0)
                return rc;
            if (strspn(prov->api_version, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
                strlen(prov->api_version))
                return cy_fail(c, av, p, "%s is not an API version (e.g. %s or 2025-01-01-preview)",
                               cy_quote(q, prov->api_version), TELEX_CONFIG_AZURE_API_VERSION);
        }
    }
    return 0;
}

static int parse_providers(ctx_t *c, const yaml_node_t *v, telex_provider_t **out, size_t *n)
{
    char d[QUOTE_LEN];
    if (v->type != YAML_SEQUENCE_NODE)
        return cy_fail(c, v, "providers", "expected a list of providers (- name: ...), got %s",
                       cy_describe(d, v));
    *n = cy_n_items(v);
    if (*n == 0)
        return cy_fail(c, v, "providers", "the list is empty; define at least one provider");
    telex_provider_t *p = telex_config_alloc(c->arena, *n * sizeof(*p));
    if (!p)
        return cy_oom(c);
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

#define PRICE_KEY(NAME, FIELD, DOC)                                                                     \
    {NAME, KEY_DOUBLE, offsetof(telex_route_t, FIELD), 0, 1e6, false, {.d = 0}, DOC}

/* A route's keys, read into its telex_route_t. */
static const config_key_t route_keys[] = {
    {"provider", KEY_OTHER, 0, 0, 0, false, {.u = 0}, "the provider's name"},
    {"model", KEY_STRING, offsetof(telex_route_t, model), 0, 0, false, {.u = 0},
     "the upstream model (the Azure deployment); default: the model's own name"},
    PRICE_KEY("input_price_per_mtok", input_price_per_mtok, "USD per million input tokens"),
    PRICE_KEY("output_price_per_mtok", output_price_per_mtok, "USD per million output tokens"),
    PRICE_KEY("cached_input_price_per_mtok", cached_input_price_per_mtok,
              "USD per million cached prompt tokens; default: input_price_per_mtok"),
};
#define N_ROUTE_KEYS (sizeof route_keys / sizeof route_keys[0])

static int parse_route(ctx_t *c, const yaml_node_t *item, const char *base,
                       const telex_model_t *model, const char *const *provider_names,
                       telex_route_t *r)
{
    char p[PATH_LEN], q[QUOTE_LEN], d[QUOTE_LEN], list[256];
    const yaml_node_t *pv;
    int rc;
    if (item->type == YAML_SCALAR_NODE) { /* shorthand: just the provider's name */
        pv = item;
        snprintf(p, sizeof p, "%s", base);
    } else if (item->type == YAML_MAPPING_NODE) {
        if ((rc = cy_check_key_table(c, item, base, route_keys, N_ROUTE_KEYS)) < 0)
            return rc;
        if (!(pv = cy_get(c, item, "provider")))
            return cy_fail(c, item, base, "missing required key \"provider\"");
        cy_path_key(p, base, "provider");
    } else {
        return cy_fail(c, item, base, "expected a provider name or a mapping (provider:, model:), got %s",
                       cy_describe(d, item));
    }
    const char *pname;
    if ((rc = cy_read_str(c, pv, p, 0, &pname)) < 0)
        return rc;
    r->provider = telex_config_find_provider(c->cfg, pname);
    if (!r->provider) {
        const char *s = telex_config_suggest(pname, provider_names, c->cfg->n_providers);
        if (s)
            return cy_fail(c, pv, p, "unknown provider %s; did you mean \"%s\"?", cy_quote(q, pname), s);
        return cy_fail(c, pv, p, "unknown provider %s (defined providers: %s)", cy_quote(q, pname),
                       cy_join_list(list, sizeof list, provider_names, c->cfg->n_providers));
    }
    r->model = model->catch_all ? NULL : model->name;
    if (item->type == YAML_MAPPING_NODE) {
        if ((rc = cy_read_key_values(c, item, base, route_keys, N_ROUTE_KEYS, r)) < 0)
            return rc;
        if (!cy_get(c, item, "cached_input_price_per_mtok"))
            r->cached_input_price_per_mtok = r->input_price_per_mtok;
    }
    if (r->provider->kind == TELEX_PROVIDER_AZURE && r->model != NULL && !valid_deployment(r->model)) {
        yaml_node_t *mn = item->type == YAML_MAPPING_NODE ? cy_get(c, item, "model") : NULL;
        if (mn) {
            cy_path_key(p, base, "model");
            return cy_fail(c, mn, p, "%s is not an Azure deployment name (letters, digits, '.', '_' and '-')",
                           cy_quote(q, r->model));
        }
        return cy_fail(c, item, base,
                       "the model name %s would be the Azure deployment name, which allows only letters, "
                       "digits, '.', '_' and '-'; give the deployment with model:",
                       cy_quote(q, r->model));
    }
    return 0;
}

static int parse_model(ctx_t *c, const yaml_node_t *seq, size_t i,
                       const char *const *provider_names, telex_model_t *m)
{
    static const char *const keys[] = {"name", "providers"};
    static const cy_named_list_t list_of = {"models", "model", "name:, providers:", keys, 2};
    char base[PATH_LEN], p[PATH_LEN], d[QUOTE_LEN];
    yaml_node_t *item, *name;
    int rc;
    if ((rc = cy_named_item(c, seq, i, &list_of, base, &item, &name, &m->name)) < 0)
        return rc;
    m->catch_all = strcmp(m->name, "*") == 0;

    yaml_node_t *routes = cy_get(c, item, "providers");
    cy_path_key(p, base, "providers");
    if (!routes)
        return cy_fail(c, item, base, "missing required key \"providers\" (the providers that "
                                   "serve this model, in fallback order)");
    if (routes->type != YAML_SEQUENCE_NODE)
        return cy_fail(c, routes, p, "expected a list (- provider: ...), got %s",
                       cy_describe(d, routes));
    size_t n = cy_n_items(routes);
    if (n == 0)
        return cy_fail(c, routes, p, "the list is empty; give at least one provider");
    telex_route_t *r = telex_config_alloc(c->arena, n * sizeof(*r));
    if (!r)
        return cy_oom(c);
    for (size_t j = 0; j < n; j++) {
        char rp[PATH_LEN];
        cy_path_index(rp, p, j);
        if ((rc = parse_route(c, cy_node_at(c, routes->data.sequence.items.start[j]), rp, m,
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
        return cy_fail(c, v, "models", "expected a list of models (- name: ...), got %s",
                       cy_describe(d, v));
    *n = cy_n_items(v);
    if (*n == 0)
        return cy_fail(c, v, "models", "the list is empty; define at least one model");
    telex_model_t *m = telex_config_alloc(c->arena, *n * sizeof(*m));
    const char **names = telex_config_alloc(c->arena, c->cfg->n_providers * sizeof(*names));
    if (!m || !names)
        return cy_oom(c);
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

/* ---- the document ------------------------------------------------------ */

static int parse_root(ctx_t *c, const yaml_node_t *root)
{
    static const char *const keys[] = {"listen",  "workers", "tls",     "providers", "models",
                                       "streaming", "limits", "resume",  "store",     "auth",
                                       "cors",    "metrics", "presets", "cluster"};
    telex_config_t *cfg = c->cfg;
    int rc;
    if (!root || cy_is_null(root))
        return 0; /* an empty file: all defaults */
    if (root->type != YAML_MAPPING_NODE) {
        char d[QUOTE_LEN];
        return cy_fail(c, root, "", "the top level must be a mapping (listen:, providers:, "
                                 "models:, ...), got %s", cy_describe(d, root));
    }
    if ((rc = cy_check_keys(c, root, "", keys, sizeof keys / sizeof keys[0])) < 0)
        return rc;

    yaml_node_t *v;
    if ((v = cy_get(c, root, "listen"))) {
        const char *s;
        char why[256];
        if ((rc = cy_read_str(c, v, "listen", 0, &s)) < 0)
            return rc;
        if ((rc = telex_config_set_listen(cfg, s, why, sizeof why)) < 0)
            return rc == -ENOMEM ? cy_oom(c) : cy_fail(c, v, "listen", "%s", why);
    }
    uint64_t workers = (uint64_t)cfg->workers;
    FIELD(root, "workers", "", cy_read_uint, 0, 1024, &workers);
    cfg->workers = (int)workers;
    if ((rc = parse_tls(c, cy_get(c, root, "tls"))) < 0 || (rc = cy_read_sections(c, root)) < 0)
        return rc;

    yaml_node_t *pv = cy_get(c, root, "providers"), *mv = cy_get(c, root, "models");
    if (pv && cy_is_null(pv))
        pv = NULL;
    if (mv && cy_is_null(mv))
        mv = NULL;
    if (pv && !mv)
        return cy_fail(c, cy_get_key(c, root, "providers"), "providers",
                       "given without models: a file that defines providers must define the "
                       "models they serve");
    if (mv && !pv)
        return cy_fail(c, cy_get_key(c, root, "models"), "models",
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
    if ((v = cy_get(c, root, "presets")) && !cy_is_null(v))
        return cy_parse_presets(c, v);
    return 0;
}

static int syntax_error(ctx_t *c, const yaml_parser_t *parser, const char *text, size_t len)
{
    if (parser->error == YAML_MEMORY_ERROR)
        return cy_oom(c);
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
        return cy_oom(&c);
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
                rc = cy_fail(&c, r2, "", "a second YAML document; telex.yaml holds exactly one");
            }
            yaml_document_delete(&extra);
        }
    }
    if (rc == 0 && c.n_missing > 0)
        rc = cy_fail_missing(&c);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}
