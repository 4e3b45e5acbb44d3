/*
 * config/config_read.c — the toolkit every part of telex.yaml's reader uses
 * (config_read.h): FILE:LINE:COL messages, node access, key checks with a
 * did-you-mean, the typed scalar readers, and read_keys, which reads a
 * mapping of scalar keys from a table (the key, its type and bounds, the
 * offset of its field) instead of a list of names plus a call per key.
 */
#include "config/config_read.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- messages ---------------------------------------------------------- */

int cy_fail(ctx_t *c, const yaml_node_t *at, const char *path, const char *fmt, ...)
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

int cy_oom(ctx_t *c)
{
    telex_config_errf(c->err, c->errlen, "out of memory");
    return -ENOMEM;
}

/* s as a double-quoted, escaped, truncated string, for messages. */
const char *cy_quote(char buf[QUOTE_LEN], const char *s)
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
void cy_path_key(char out[PATH_LEN], const char *base, const char *key)
{
    int o = snprintf(out, PATH_LEN, "%s%s%.80s", base, *base ? "." : "", key);
    for (int i = o - (int)strnlen(key, 80); i >= 0 && i < o && i < PATH_LEN; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            out[i] = '?';
}

void cy_path_index(char out[PATH_LEN], const char *base, size_t i)
{
    /* base is itself at most PATH_LEN; a path that long is cut, never overrun */
    int n = snprintf(out, PATH_LEN, "%.200s[%zu]", base, i);
    (void)n;
}

/* "a, b, c" into out (truncated with "..." if needed). */
const char *cy_join_list(char *out, size_t outlen, const char *const *items, size_t n)
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
void cy_note_missing(ctx_t *c, const yaml_node_t *at, const char *path, const char *var)
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
int cy_fail_missing(ctx_t *c)
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
                          m->line, m->column, m->path, cy_quote(q, m->var));
        return -EINVAL;
    }
    char list[768];
    size_t o = 0;
    list[0] = '\0';
    for (size_t i = 0; i < kept && o < sizeof list; i++) {
        int w = snprintf(list + o, sizeof list - o, "%s%s (%s, line %zu)", i ? ", " : "",
                         cy_quote(q, c->missing[i].var), c->missing[i].path, c->missing[i].line);
        o = w < 0 ? sizeof list : o + (size_t)w;
    }
    if (o >= sizeof list)
        memcpy(list + sizeof list - 4, "...", 4);
    telex_config_errf(c->err, c->errlen, "%s:%zu:%zu: %zu environment variables are not set: %s%s", c->file,
                      m->line, m->column, c->n_missing, list, c->n_missing > kept ? ", ..." : "");
    return -EINVAL;
}

/* ---- nodes ------------------------------------------------------------- */

yaml_node_t *cy_node_at(ctx_t *c, int index)
{
    return yaml_document_get_node(c->doc, index);
}

const char *cy_sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

bool cy_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = cy_sval(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

/* What the user wrote, for "expected X, got Y". Only for non-secret keys. */
const char *cy_describe(char buf[QUOTE_LEN], const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_SCALAR_NODE:
        return cy_is_null(n) ? "nothing (null)" : cy_quote(buf, cy_sval(n));
    default:
        return "nothing";
    }
}

size_t cy_n_pairs(const yaml_node_t *map)
{
    return (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
}

size_t cy_n_items(const yaml_node_t *seq)
{
    return (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
}

/* Every key of `map` is a string, appears once, and is one of `keys`. */
int cy_check_keys(ctx_t *c, const yaml_node_t *map, const char *path,
                      const char *const *keys, size_t nkeys)
{
    char kp[PATH_LEN], q[QUOTE_LEN], list[256];
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = cy_node_at(c, p->key);
        if (k->type != YAML_SCALAR_NODE || cy_is_null(k) ||
            strlen(cy_sval(k)) != k->data.scalar.length)
            return cy_fail(c, k, path, "keys must be plain strings");
        cy_path_key(kp, path, cy_sval(k));
        for (yaml_node_pair_t *p2 = map->data.mapping.pairs.start; p2 < p; p2++) {
            yaml_node_t *k2 = cy_node_at(c, p2->key);
            if (strcmp(cy_sval(k2), cy_sval(k)) == 0)
                return cy_fail(c, k, kp, "duplicate key (first at line %zu)",
                               k2->start_mark.line + 1);
        }
        bool known = false;
        for (size_t i = 0; i < nkeys && !known; i++)
            known = strcmp(keys[i], cy_sval(k)) == 0;
        if (!known) {
            const char *s = telex_config_suggest(cy_sval(k), keys, nkeys);
            if (s)
                return cy_fail(c, k, kp, "unknown key; did you mean %s?", cy_quote(q, s));
            return cy_fail(c, k, kp, "unknown key (valid here: %s)",
                           cy_join_list(list, sizeof list, keys, nkeys));
        }
    }
    return 0;
}

/* The value of `key` in `map` (keys already checked unique), or NULL. */
yaml_node_t *cy_get(ctx_t *c, const yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = cy_node_at(c, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(cy_sval(k), key) == 0)
            return cy_node_at(c, p->value);
    }
    return NULL;
}

/* The key node of `key` in `map`, for errors about the key itself. */
yaml_node_t *cy_get_key(ctx_t *c, const yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = cy_node_at(c, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(cy_sval(k), key) == 0)
            return k;
    }
    return NULL;
}

/* 1 when v is a mapping, 0 when absent or null (= not configured), <0 error. */
int cy_as_mapping(ctx_t *c, const yaml_node_t *v, const char *path, const char *hint)
{
    char d[QUOTE_LEN];
    if (!v || cy_is_null(v))
        return 0;
    if (v->type != YAML_MAPPING_NODE)
        return cy_fail(c, v, path, "expected a mapping (%s), got %s", hint, cy_describe(d, v));
    return 1;
}

/* ---- typed scalars ----------------------------------------------------- */

/* A string: any scalar without NUL or control characters except TAB (and,
 * with STR_MULTILINE, line breaks). With STR_ALLOW_EMPTY, null and "" give
 * "". Never quotes the value (it may be a secret). */
int cy_read_str(ctx_t *c, const yaml_node_t *v, const char *path, unsigned flags,
                    const char **out)
{
    char d[QUOTE_LEN];
    if (v->type != YAML_SCALAR_NODE)
        return cy_fail(c, v, path, "expected a string, got %s", cy_describe(d, v));
    if (cy_is_null(v)) {
        if (!(flags & STR_ALLOW_EMPTY))
            return cy_fail(c, v, path, "missing value (expected a string)");
        *out = "";
        return 0;
    }
    const char *s = cy_sval(v);
    size_t len = v->data.scalar.length;
    if (strlen(s) != len)
        return cy_fail(c, v, path, "must not contain NUL bytes");
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((flags & STR_MULTILINE) && (ch == '\n' || ch == '\r'))
            continue;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return cy_fail(c, v, path, (flags & STR_MULTILINE) ? "must not contain control characters"
                                                            : "must not contain line breaks or control characters");
    }
    if (len == 0 && !(flags & STR_ALLOW_EMPTY))
        return cy_fail(c, v, path, "must not be empty");
    char *copy = telex_config_strndup(c->arena, s, len);
    if (!copy)
        return cy_oom(c);
    *out = copy;
    return 0;
}

/* The text of a plain (unquoted) scalar that should be a number or bool. */
static int plain_text(ctx_t *c, const yaml_node_t *v, const char *path, const char *what,
                      const char **text)
{
    char d[QUOTE_LEN];
    if (v->type != YAML_SCALAR_NODE || cy_is_null(v))
        return cy_fail(c, v, path, "expected %s, got %s", what, cy_describe(d, v));
    if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return cy_fail(c, v, path, "expected %s, got the quoted string %s (remove the quotes)", what,
                       cy_quote(d, cy_sval(v)));
    *text = cy_sval(v);
    return 0;
}

int cy_read_double(ctx_t *c, const yaml_node_t *v, const char *path, double min,
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
        return cy_fail(c, v, path, "expected a number, got %s", cy_quote(d, t));
    if (min_exclusive ? !(x > min) : !(x >= min))
        return cy_fail(c, v, path, "must be %s %.10g, got %s",
                       min_exclusive ? "greater than" : "at least", min, t);
    if (x > max)
        return cy_fail(c, v, path, "must be at most %.10g, got %s", max, t);
    *out = x;
    return 0;
}

int cy_read_uint(ctx_t *c, const yaml_node_t *v, const char *path, uint64_t min,
                     uint64_t max, uint64_t *out)
{
    const char *t;
    char d[QUOTE_LEN];
    int rc = plain_text(c, v, path, "an integer", &t);
    if (rc < 0)
        return rc;
    const char *digits = t[0] == '+' || t[0] == '-' ? t + 1 : t;
    if (!*digits || strspn(digits, "0123456789") != strlen(digits))
        return cy_fail(c, v, path, "expected an integer, got %s", cy_quote(d, t));
    errno = 0;
    unsigned long long x = strtoull(digits, NULL, 10);
    if (t[0] == '-' && x != 0)
        return cy_fail(c, v, path, "must be at least %" PRIu64 ", got %s", min, t);
    if (errno == ERANGE || x > max)
        return cy_fail(c, v, path, "must be at most %" PRIu64 ", got %s", max, t);
    if (x < min)
        return cy_fail(c, v, path, "must be at least %" PRIu64 ", got %s", min, t);
    *out = x;
    return 0;
}

/* A byte count: an integer, optionally followed by B, KB, MB, GB (powers of
 * 1000) or KiB, MiB, GiB (powers of 1024), e.g. 1048576, 1MiB, "512 KiB". */
int cy_read_bytes(ctx_t *c, const yaml_node_t *v, const char *path, uint64_t min,
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
            return cy_fail(c, v, path, "must be at least %" PRIu64 ", got %s", min, t);
        return cy_fail(c, v, path,
                       "expected a size in bytes (e.g. 1048576, 1MiB, 512KiB), got %s",
                       cy_quote(d, t));
    }
    errno = 0;
    unsigned long long x = strtoull(t, NULL, 10);
    if (errno == ERANGE || x > max / mult)
        return cy_fail(c, v, path, "must be at most %" PRIu64 " bytes, got %s", max, t);
    x *= mult;
    if (x < min)
        return cy_fail(c, v, path, "must be at least %" PRIu64 " bytes, got %s", min, t);
    *out = x;
    return 0;
}

int cy_read_bool(ctx_t *c, const yaml_node_t *v, const char *path, bool *out)
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
        return cy_fail(c, v, path, "expected true or false, got %s", cy_quote(d, t));
    return 0;
}



int cy_secret_env(ctx_t *c, const yaml_node_t *env, const char *path, const char **var, const char **val)
{
    int rc = cy_read_str(c, env, path, 0, var);
    if (rc < 0)
        return rc;
    if (c->use != TELEX_CONFIG_USE_ALL)
        return 0; /* the secret is not used: not read */
    *val = getenv(*var);
    if (!*val || !**val) {
        cy_note_missing(c, env, path, *var);
        return 0;
    }
    return 1;
}

/* ---- lists of named mappings ------------------------------------------ */

/* Which item of seq[0..i) has name: `name`; its name node, or NULL. */
static const yaml_node_t *earlier_name(ctx_t *c, const yaml_node_t *seq, size_t i, const char *name)
{
    for (size_t j = 0; j < i; j++) {
        yaml_node_t *item = cy_node_at(c, seq->data.sequence.items.start[j]);
        yaml_node_t *n = cy_get(c, item, "name");
        if (n && n->type == YAML_SCALAR_NODE && strcmp(cy_sval(n), name) == 0)
            return n;
    }
    return NULL;
}

int cy_named_item(ctx_t *c, const yaml_node_t *seq, size_t i, const cy_named_list_t *l, char base[PATH_LEN],
                  yaml_node_t **item, yaml_node_t **name_node, const char **name)
{
    char p[PATH_LEN], q[QUOTE_LEN], d[QUOTE_LEN];
    int rc;
    *item = cy_node_at(c, seq->data.sequence.items.start[i]);
    cy_path_index(base, l->list, i);
    if ((*item)->type != YAML_MAPPING_NODE)
        return cy_fail(c, *item, base, "expected a mapping (%s), got %s", l->hint, cy_describe(d, *item));
    if ((rc = cy_check_keys(c, *item, base, l->keys, l->n_keys)) < 0)
        return rc;
    if (!(*name_node = cy_get(c, *item, "name")))
        return cy_fail(c, *item, base, "missing required key \"name\"");
    cy_path_key(p, base, "name");
    if ((rc = cy_read_str(c, *name_node, p, 0, name)) < 0)
        return rc;
    const yaml_node_t *first = earlier_name(c, seq, i, *name);
    if (first)
        return cy_fail(c, *name_node, p, "duplicate %s name %s (first at line %zu)", l->what, cy_quote(q, *name),
                       first->start_mark.line + 1);
    return 0;
}

/* ---- tables of scalar keys --------------------------------------------- */

static int read_key(ctx_t *c, const yaml_node_t *v, const char *path, const config_key_t *k, char *field)
{
    switch (k->type) {
    case KEY_BOOL:
        return cy_read_bool(c, v, path, (bool *)field);
    case KEY_UINT:
        return cy_read_uint(c, v, path, (uint64_t)k->min, (uint64_t)k->max, (uint64_t *)field);
    case KEY_BYTES:
        return cy_read_bytes(c, v, path, (uint64_t)k->min, (uint64_t)k->max, (uint64_t *)field);
    case KEY_DOUBLE:
        return cy_read_double(c, v, path, k->min, k->min_exclusive, k->max, (double *)field);
    case KEY_STRING:
        return cy_read_str(c, v, path, 0, (const char **)field);
    case KEY_OTHER:
        break;
    }
    return 0;
}

int cy_check_key_table(ctx_t *c, const yaml_node_t *map, const char *path, const config_key_t *keys, size_t n)
{
    const char *names[KEY_TABLE_MAX] = {NULL};
    if (n > KEY_TABLE_MAX)
        n = KEY_TABLE_MAX; /* the tables assert that none is longer */
    for (size_t i = 0; i < n; i++)
        names[i] = keys[i].name;
    return cy_check_keys(c, map, path, names, n);
}

int cy_read_key_values(ctx_t *c, const yaml_node_t *map, const char *path, const config_key_t *keys, size_t n,
                       void *obj)
{
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *v = keys[i].type == KEY_OTHER ? NULL : cy_get(c, map, keys[i].name);
        char p[PATH_LEN];
        if (!v)
            continue;
        cy_path_key(p, path, keys[i].name);
        int rc = read_key(c, v, p, &keys[i], (char *)obj + keys[i].offset);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int cy_read_keys(ctx_t *c, const yaml_node_t *map, const char *path, const config_key_t *keys, size_t n,
                 void *obj)
{
    int rc = cy_check_key_table(c, map, path, keys, n);
    return rc < 0 ? rc : cy_read_key_values(c, map, path, keys, n, obj);
}

void cy_set_key_defaults(const config_key_t *keys, size_t n, void *obj)
{
    for (size_t i = 0; i < n; i++) {
        char *field = (char *)obj + keys[i].offset;
        switch (keys[i].type) {
        case KEY_BOOL:
            *(bool *)field = keys[i].def.b;
            break;
        case KEY_UINT:
        case KEY_BYTES:
            *(uint64_t *)field = keys[i].def.u;
            break;
        case KEY_DOUBLE:
            *(double *)field = keys[i].def.d;
            break;
        case KEY_STRING:
            *(const char **)field = NULL;
            break;
        case KEY_OTHER:
            break;
        }
    }
}
