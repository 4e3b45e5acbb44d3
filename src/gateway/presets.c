/*
 * gateway/presets.c — compiled templates, their expansion, and the list
 * GET /v1/presets shows (its handler is endpoints.c). See presets.h.
 *
 * A template compiles to segments (literal text or a variable name)
 * pointing into the config's strings, so expansion is one pass that
 * appends into a buffer bounded by limits.max_body_bytes.
 */
#include "gateway/presets.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/json_dump.h"
#include "util/json_load.h"

#define MAX_CLIENT_VARIABLES 256

typedef struct seg {
    const char *text; /* literal text, or the variable's name */
    size_t len;
    bool var;
} seg_t;

typedef struct tmpl {
    seg_t *segs;
    size_t n;
} tmpl_t;

typedef struct preset {
    const telex_preset_t *cfg;
    bool has_system;
    tmpl_t system, user;
    json_t *params;   /* object */
    json_t *defaults; /* object of strings */
    char **vars;      /* names used by system and user, unique, in order of appearance */
    size_t n_vars;
} preset_t;

struct telex_presets {
    preset_t *p;
    size_t n;
    telex_preset_t *owned_list; /* telex_presets_new_from: freed with the set */
    json_t *owned_json;         /* ... holding the strings the list points into */
};

/* ---- compiling ------------------------------------------------------------------ */

static int compile(const char *t, tmpl_t *out)
{
    size_t cap = 8, n = 0;
    seg_t *segs = telex_xmalloc(cap * sizeof(*segs));
    const char *p = t;
    while (*p) {
        const char *open = strstr(p, "{{");
        const char *close = open ? strstr(open + 2, "}}") : NULL;
        if (n + 2 > cap)
            segs = telex_xrealloc(segs, (cap *= 2) * sizeof(*segs));
        if (open == NULL || close == NULL) {
            segs[n++] = (seg_t){p, strlen(p), false};
            break;
        }
        if (open > p)
            segs[n++] = (seg_t){p, (size_t)(open - p), false};
        const char *a = open + 2, *b = close;
        while (a < b && *a == ' ')
            a++;
        while (b > a && b[-1] == ' ')
            b--;
        if (a == b) { /* config validation prevents this */
            free(segs);
            return -EINVAL;
        }
        segs[n++] = (seg_t){a, (size_t)(b - a), true};
        p = close + 2;
    }
    out->segs = segs;
    out->n = n;
    return 0;
}

static void add_vars(preset_t *pr, const tmpl_t *t)
{
    for (size_t i = 0; i < t->n; i++) {
        if (!t->segs[i].var)
            continue;
        bool seen = false;
        for (size_t j = 0; j < pr->n_vars && !seen; j++)
            seen = strlen(pr->vars[j]) == t->segs[i].len && memcmp(pr->vars[j], t->segs[i].text, t->segs[i].len) == 0;
        if (seen)
            continue;
        pr->vars = telex_xrealloc(pr->vars, (pr->n_vars + 1) * sizeof(*pr->vars));
        pr->vars[pr->n_vars++] = telex_xstrndup(t->segs[i].text, t->segs[i].len);
    }
}

void telex_presets_free(telex_presets_t *ps)
{
    if (ps == NULL)
        return;
    for (size_t i = 0; i < ps->n; i++) {
        preset_t *pr = &ps->p[i];
        free(pr->system.segs);
        free(pr->user.segs);
        json_decref(pr->params);
        json_decref(pr->defaults);
        for (size_t j = 0; j < pr->n_vars; j++)
            free(pr->vars[j]);
        free(pr->vars);
    }
    free(ps->p);
    free(ps->owned_list);
    json_decref(ps->owned_json);
    free(ps);
}

int telex_presets_new(telex_presets_t **out, const telex_config_t *cfg, char *err, size_t errlen)
{
    return telex_presets_new_from(out, cfg->presets, cfg->n_presets, NULL, NULL, err, errlen);
}

int telex_presets_new_from(telex_presets_t **out, const telex_preset_t *list, size_t n, telex_preset_t *owned_list,
                           json_t *owned_json, char *err, size_t errlen)
{
    *out = NULL;
    telex_presets_t *ps = telex_xcalloc(1, sizeof(*ps));
    if (n)
        ps->p = telex_xcalloc(n, sizeof(*ps->p));
    ps->owned_list = owned_list;
    ps->owned_json = owned_json;
    ps->n = n;
    for (size_t i = 0; i < ps->n; i++) {
        preset_t *pr = &ps->p[i];
        const telex_preset_t *c = &list[i];
        pr->cfg = c;
        pr->has_system = c->system != NULL;
        int rc = 0;
        if ((pr->has_system && (rc = compile(c->system, &pr->system)) != 0) ||
            (rc = compile(c->template ? c->template : "{{content}}", &pr->user)) != 0) {
            telex_presets_free(ps);
            snprintf(err, errlen, "preset %s: invalid template", c->name);
            return rc;
        }
        add_vars(pr, &pr->system);
        add_vars(pr, &pr->user);
        pr->params = json_loads(c->parameters ? c->parameters : "{}", 0, NULL);
        pr->defaults = json_loads(c->variables ? c->variables : "{}", 0, NULL);
        if (!json_is_object(pr->params) || !json_is_object(pr->defaults)) {
            telex_presets_free(ps);
            snprintf(err, errlen, "preset %s: invalid parameters", c->name);
            return -EINVAL;
        }
    }
    *out = ps;
    return 0;
}

size_t telex_presets_count(const telex_presets_t *ps)
{
    return ps ? ps->n : 0;
}

static const preset_t *find(const telex_presets_t *ps, const char *name, size_t len)
{
    for (size_t i = 0; ps && i < ps->n; i++)
        if (strlen(ps->p[i].cfg->name) == len && memcmp(ps->p[i].cfg->name, name, len) == 0)
            return &ps->p[i];
    return NULL;
}

/* ---- expanding ---------------------------------------------------------------------- */

typedef struct ctx {
    const preset_t *pr;
    const json_t *vars;    /* the client's "variables" (validated), or NULL */
    const char *content;   /* {{content}}, or NULL */
    size_t content_len;
    size_t limit;
    telex_api_error_t *e;
} ctx_t;

static int too_large(ctx_t *c)
{
    return telex_api_error_set(c->e, 400, "invalid_request_error", "preset_too_large", NULL,
                               "The preset '%s' expands to more than %zu bytes (limits.max_body_bytes).",
                               c->pr->cfg->name, c->limit);
}

/* Appends template t with variables substituted. Returns 0 or 400 in c->e. */
static int expand(ctx_t *c, const tmpl_t *t, telex_buf_t *out)
{
    for (size_t i = 0; i < t->n; i++) {
        const seg_t *s = &t->segs[i];
        const char *val = NULL;
        size_t vlen = 0;
        char num[48], name[72];
        if (!s->var) {
            val = s->text;
            vlen = s->len;
        } else {
            snprintf(name, sizeof name, "%.*s", (int)s->len, s->text);
            const json_t *v = c->vars ? json_object_get(c->vars, name) : NULL;
            if (strcmp(name, "content") == 0 && c->content != NULL) {
                val = c->content;
                vlen = c->content_len;
            } else if (json_is_string(v)) {
                val = json_string_value(v);
                vlen = json_string_length(v);
            } else if (json_is_integer(v)) {
                vlen = (size_t)snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
                val = num;
            } else if (json_is_real(v)) {
                vlen = (size_t)snprintf(num, sizeof num, "%.15g", json_real_value(v));
                val = num;
            } else if (json_is_boolean(v)) {
                val = json_is_true(v) ? "true" : "false";
                vlen = strlen(val);
            } else if ((v = json_object_get(c->pr->defaults, name)) != NULL) {
                val = json_string_value(v);
                vlen = json_string_length(v);
            } else if (strcmp(name, "content") == 0) {
                return telex_api_error_set(c->e, 400, "invalid_request_error", "missing_variable", "content",
                                           "The preset '%s' needs \"content\": the text to work on.",
                                           c->pr->cfg->name);
            } else {
                return telex_api_error_set(c->e, 400, "invalid_request_error", "missing_variable", "variables",
                                           "The preset '%s' needs the variable '%s': send it in \"variables\".",
                                           c->pr->cfg->name, name);
            }
        }
        if (telex_buf_append(out, val ? val : "", vlen) != 0) /* only past the limit (util/buf.h) */
            return too_large(c);
    }
    return 0;
}

/* A JSON string of t expanded; NULL with c->e set. */
static json_t *expand_string(ctx_t *c, const tmpl_t *t)
{
    telex_buf_t b = {.limit = c->limit};
    if (expand(c, t, &b) != 0) {
        telex_buf_free(&b);
        return NULL;
    }
    json_t *s = json_stringn(b.data ? b.data : "", b.len);
    telex_buf_free(&b);
    if (s == NULL)
        telex_api_error_set(c->e, 400, "invalid_request_error", "invalid_request", "variables",
                            "The expanded preset is not valid UTF-8.");
    return s;
}

/* The client's variables: an object of strings, numbers or booleans that
 * the preset uses. Returns 0 or 400. */
static int check_vars(const preset_t *pr, const json_t *vars, telex_api_error_t *e)
{
    if (vars == NULL || json_is_null(vars))
        return 0;
    if (!json_is_object(vars))
        return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", "variables",
                                   "variables must be an object of name: value.");
    if (json_object_size(vars) > MAX_CLIENT_VARIABLES)
        return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", "variables",
                                   "variables may hold at most %d names.", MAX_CLIENT_VARIABLES);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)vars, k, v)
    {
        char safe[96];
        telex_api_safe_text(safe, sizeof safe, k, strlen(k));
        if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v))
            return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", "variables",
                                       "variables.%s must be a string, a number or a boolean.", safe);
        bool used = false;
        for (size_t i = 0; i < pr->n_vars && !used; i++)
            used = strcmp(pr->vars[i], k) == 0;
        if (!used) {
            char list[160] = "";
            size_t o = 0;
            for (size_t i = 0; i < pr->n_vars && o + 70 < sizeof list; i++)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", pr->vars[i]);
            return telex_api_error_set(e, 400, "invalid_request_error", "unknown_variable", "variables",
                                       "The preset '%s' does not use the variable '%s' (it uses: %s).",
                                       pr->cfg->name, safe, pr->n_vars ? list : "none");
        }
    }
    return 0;
}

static int check_size(const json_t *body, size_t limit, ctx_t *c, char **text_out, size_t *len_out)
{
    char *text = telex_json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER); /* an object of checked strings */
    size_t len = strlen(text);
    if (len > limit) {
        free(text);
        return too_large(c);
    }
    if (text_out != NULL) {
        *text_out = text;
        *len_out = len;
    } else {
        free(text);
    }
    return 0;
}

static int not_found(telex_api_error_t *e, const char *name, size_t len, const char *param)
{
    char safe[96];
    telex_api_safe_text(safe, sizeof safe, name, len);
    return telex_api_error_set(e, 404, "invalid_request_error", "preset_not_found", param,
                               "The preset '%s' does not exist on this gateway. GET /v1/presets lists the presets.",
                               safe);
}

static json_t *message(const char *role, json_t *content)
{
    return content ? json_pack("{s:s,s:o}", "role", role, "content", content) : NULL;
}

int telex_presets_expand(const telex_presets_t *ps, const char *name, size_t name_len, const json_t *request,
                         size_t max_body_bytes, json_t **out, telex_api_error_t *e)
{
    *out = NULL;
    const preset_t *pr = find(ps, name, name_len);
    if (pr == NULL)
        return not_found(e, name, name_len, NULL);
    if (!json_is_object(request))
        return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", NULL,
                                   "The request body must be a JSON object: {\"content\": \"...\", "
                                   "\"variables\": {...}}.");
    if (json_object_get(request, "messages") != NULL)
        return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", "messages",
                                   "POST /v1/presets/%s builds the messages itself: send \"content\" (and "
                                   "\"variables\"). To continue a conversation, use /v1/chat/completions with "
                                   "\"model\": \"preset:%s\".",
                                   pr->cfg->name, pr->cfg->name);
    if (json_object_get(request, "model") != NULL)
        return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", "model",
                                   "The preset '%s' chooses the model; do not send \"model\".", pr->cfg->name);
    const json_t *content = json_object_get(request, "content");
    if (content != NULL && !json_is_string(content) && !json_is_null(content))
        return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", "content",
                                   "content must be a string.");
    const json_t *vars = json_object_get(request, "variables");
    int rc = check_vars(pr, vars, e);
    if (rc != 0)
        return rc;
    ctx_t c = {.pr = pr, .vars = vars, .limit = max_body_bytes, .e = e};
    if (json_is_string(content)) {
        c.content = json_string_value(content);
        c.content_len = json_string_length(content);
    }
    json_t *messages = json_array();
    json_t *body = json_object();
    json_object_set_new(body, "model", json_string(pr->cfg->model));
    json_object_set_new(body, "messages", messages);
    if (pr->has_system) {
        json_t *sys = expand_string(&c, &pr->system);
        if (sys == NULL)
            goto fail;
        json_array_append_new(messages, message("system", sys));
    }
    json_t *user = expand_string(&c, &pr->user);
    if (user == NULL)
        goto fail;
    json_array_append_new(messages, message("user", user));
    json_object_update(body, pr->params); /* both objects: cannot fail */
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)request, k, v)
    {
        if (strcmp(k, "content") == 0 || strcmp(k, "variables") == 0)
            continue;
        json_object_set(body, k, v); /* k came out of a parsed object: valid UTF-8 */
    }
    if (json_object_get(body, "stream") == NULL)
        json_object_set_new(body, "stream", json_true());
    if ((rc = check_size(body, max_body_bytes, &c, NULL, NULL)) != 0) {
        json_decref(body);
        return rc;
    }
    *out = body;
    return 0;
fail: /* expand_string set e */
    json_decref(body);
    return e->status;
}

int telex_presets_apply(const telex_presets_t *ps, json_t *body, size_t max_body_bytes, const char **preset_name,
                        telex_api_error_t *e)
{
    *preset_name = NULL;
    const char *model = json_string_value(json_object_get(body, "model"));
    if (model == NULL || strncmp(model, "preset:", 7) != 0)
        return 0;
    const preset_t *pr = find(ps, model + 7, strlen(model + 7));
    if (pr == NULL)
        return not_found(e, model + 7, strlen(model + 7), "model");
    json_t *vars = json_object_get(body, "variables");
    int rc = check_vars(pr, vars, e);
    if (rc != 0)
        return rc;
    ctx_t c = {.pr = pr, .vars = vars, .limit = max_body_bytes, .e = e};
    json_t *old = json_object_get(body, "messages");
    json_t *messages = json_array();
    if (pr->has_system) {
        json_t *sys = expand_string(&c, &pr->system);
        if (sys == NULL)
            goto fail;
        json_array_append_new(messages, message("system", sys));
    }
    size_t i;
    json_t *m;
    json_array_foreach(old, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *content = json_object_get(m, "content");
        bool templated = pr->cfg->template != NULL && role && strcmp(role, "user") == 0 && json_is_string(content);
        if (!templated) {
            json_array_append(messages, m);
            continue;
        }
        c.content = json_string_value(content);
        c.content_len = json_string_length(content);
        json_t *text = expand_string(&c, &pr->user);
        if (text == NULL)
            goto fail;
        json_t *copy = json_copy(m);
        json_object_set_new(copy, "content", text);
        json_array_append_new(messages, copy);
    }
    c.content = NULL;
    /* only now change the body: an error above leaves it as it was */
    json_object_set_new(body, "messages", messages);
    messages = NULL;
    json_object_set_new(body, "model", json_string(pr->cfg->model));
    json_object_del(body, "variables");
    json_object_update_missing(body, pr->params); /* both objects: cannot fail */
    if ((rc = check_size(body, max_body_bytes, &c, NULL, NULL)) != 0)
        return rc;
    *preset_name = pr->cfg->name;
    return 0;
fail: /* expand_string set e */
    json_decref(messages);
    return e->status;
}

int telex_presets_name_from_path(const char *path, size_t len, const char **name, size_t *name_len)
{
    static const char *const prefixes[] = {"/v1/presets/", "/presets/"};
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(prefixes[i]);
        if (len > n && memcmp(path, prefixes[i], n) == 0 && memchr(path + n, '/', len - n) == NULL) {
            *name = path + n;
            *name_len = len - n;
            return 0;
        }
    }
    return -1;
}

char *telex_presets_expand_request(const telex_presets_t *ps, const char *path, size_t path_len, const char *body,
                                   size_t len, size_t max_body_bytes, size_t *out_len, telex_api_error_t *e)
{
    const char *name;
    size_t name_len;
    memset(e, 0, sizeof(*e));
    if (telex_presets_name_from_path(path, path_len, &name, &name_len) != 0 || find(ps, name, name_len) == NULL) {
        if (telex_presets_name_from_path(path, path_len, &name, &name_len) != 0)
            name = path, name_len = path_len;
        not_found(e, name, name_len, NULL);
        return NULL;
    }
    if (len > max_body_bytes) {
        telex_api_error_set(e, 413, "invalid_request_error", "request_too_large", NULL,
                            "The request body is %zu bytes; the limit is %zu.", len, max_body_bytes);
        return NULL;
    }
    json_t *request;
    if (len == 0) {
        request = json_object();
    } else {
        json_error_t jerr;
        request = telex_json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (request == NULL) {
            telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", NULL,
                                "The request body is not valid JSON: %s (line %d, column %d).", jerr.text, jerr.line,
                                jerr.column);
            return NULL;
        }
    }
    json_t *out = NULL;
    int rc = telex_presets_expand(ps, name, name_len, request, max_body_bytes, &out, e);
    json_decref(request);
    if (rc != 0)
        return NULL;
    char *text = telex_json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER); /* an object of checked strings */
    json_decref(out);
    *out_len = strlen(text);
    return text;
}

char *telex_presets_apply_text(const telex_presets_t *ps, const json_t *body, size_t max_body_bytes,
                               size_t *out_len, telex_api_error_t *e)
{
    memset(e, 0, sizeof(*e));
    json_t *copy = json_deep_copy(body);
    const char *name = NULL;
    if (telex_presets_apply(ps, copy, max_body_bytes, &name, e) != 0) {
        json_decref(copy);
        return NULL;
    }
    char *text = telex_json_dumps(copy, JSON_COMPACT | JSON_PRESERVE_ORDER); /* a parsed body, expanded */
    json_decref(copy);
    *out_len = strlen(text);
    return text;
}

json_t *telex_presets_list(const telex_presets_t *ps)
{
    json_t *data = json_array();
    for (size_t i = 0; ps && i < ps->n; i++) {
        const preset_t *pr = &ps->p[i];
        json_t *vars = json_array();
        for (size_t j = 0; j < pr->n_vars; j++)
            json_array_append_new(vars, json_string(pr->vars[j]));
        /* names, model and description came from telex.yaml or a JSON body (valid UTF-8); defaults is an object */
        json_array_append_new(data, json_pack("{s:s,s:s,s:s,s:o,s:o,s:O}", "id", pr->cfg->name, "object", "preset",
                                              "model", pr->cfg->model, "description",
                                              pr->cfg->description ? json_string(pr->cfg->description) : json_null(),
                                              "variables", vars, "defaults", pr->defaults));
    }
    return json_pack("{s:s,s:o}", "object", "list", "data", data);
}
