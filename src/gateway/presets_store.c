/*
 * gateway/presets_store.c — stored presets: checking one, merging a
 * change, and the live set the gateway serves. See presets_store.h.
 * /admin/presets is admin_presets.c.
 */
#include "gateway/presets_store.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/alloc.h"
#include "util/log.h"

#define RETIRE_SECONDS 10
_Static_assert(TELEX_PRESET_NAME_MAX == TELEX_PRESET_RULES_NAME_MAX, "one preset name length");
#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))

json_t *telex_preset_merge(const char *stored_body, const json_t *changes)
{
    json_t *merged = json_loads(stored_body, 0, NULL);
    if (!json_is_object(merged)) {
        json_decref(merged);
        merged = json_object();
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)changes, k, v)
    {
        if (json_is_null(v))
            json_object_del(merged, k);
        else
            json_object_set(merged, k, v);
    }
    return merged;
}

/* ---- checking ---------------------------------------------------------------------- */

static int fail(char *param, size_t plen, const char *p, char *msg, size_t mlen, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int fail(char *param, size_t plen, const char *p, char *msg, size_t mlen, const char *fmt, ...)
{
    snprintf(param, plen, "%s", p);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, mlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* The {{placeholders}} of t: well formed. */
static int check_template(const char *field, const char *t, char *param, size_t plen, char *msg, size_t mlen)
{
    const char *p = NULL;
    switch (telex_preset_template_problem(t, &p)) {
    case TELEX_TEMPLATE_UNTERMINATED:
        return fail(param, plen, field, msg, mlen, "unterminated placeholder \"%.40s\" (close it with }}).", p);
    case TELEX_TEMPLATE_BAD_NAME:
        return fail(param, plen, field, msg, mlen,
                    "invalid placeholder \"%.40s\": a placeholder is {{name}}, name made of letters, digits and _.",
                    p);
    case TELEX_TEMPLATE_OK:
        break;
    }
    return 0;
}

static int check_parameters(const json_t *params, char *param, size_t plen, char *msg, size_t mlen)
{
    const char *k;
    json_t *v;
    char p[96], buf[64];
    json_object_foreach((json_t *)params, k, v)
    {
        snprintf(p, sizeof p, "parameters.%.64s", k);
        if (!strcmp(k, "model"))
            return fail(param, plen, p, msg, mlen, "model is set by the preset's own \"model\".");
        if (!strcmp(k, "messages"))
            return fail(param, plen, p, msg, mlen, "messages are built from the preset's system and template.");
        const char *why = telex_preset_parameter_problem(k, v, buf, sizeof buf);
        if (why)
            return fail(param, plen, p, msg, mlen, "%s.", why);
    }
    return 0;
}

int telex_preset_check(const telex_config_t *cfg, const json_t *in, char **canonical, char *param, size_t plen,
                       char *msg, size_t mlen)
{
    *canonical = NULL;
    if (!json_is_object(in))
        return fail(param, plen, "", msg, mlen,
                    "A preset is a JSON object: {\"name\", \"model\", \"system\"?, \"template\"?, \"parameters\"?, "
                    "\"variables\"?, \"description\"?}.");
    static const char *const known[] = {"name", "model", "description", "system", "template", "parameters", "variables"};
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)in, k, v)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0] && !ok; i++)
            ok = strcmp(k, known[i]) == 0;
        if (!ok)
            return fail(param, plen, k, msg, mlen,
                        "Unknown field '%.64s' (known: name, model, description, system, template, parameters, "
                        "variables).",
                        k);
    }
    const json_t *name = json_object_get(in, "name");
    if (!json_is_string(name))
        return fail(param, plen, "name", msg, mlen, "name is required: a string.");
    if (!telex_preset_name_valid(json_string_value(name)))
        return fail(param, plen, "name", msg, mlen, "A preset name is 1 to 64 letters, digits, '.', '_' or '-'.");
    const json_t *model = json_object_get(in, "model");
    if (!json_is_string(model) || json_string_length(model) == 0 || json_string_length(model) > 256)
        return fail(param, plen, "model", msg, mlen, "model is required: the model the preset asks for.");
    const char *m = json_string_value(model);
    if (strncmp(m, "preset:", 7) == 0)
        return fail(param, plen, "model", msg, mlen, "A preset cannot use another preset.");
    if (cfg != NULL && cfg->n_models > 0 && telex_config_find_model(cfg, m) == NULL)
        return fail(param, plen, "model", msg, mlen, "Unknown model \"%.64s\": this gateway does not serve it.", m);
    static const char *const texts[] = {"description", "system", "template"};
    for (int i = 0; i < 3; i++) {
        const json_t *t = json_object_get(in, texts[i]);
        if (t == NULL || json_is_null(t))
            continue;
        if (!json_is_string(t))
            return fail(param, plen, texts[i], msg, mlen, "%s must be a string.", texts[i]);
        if (i > 0) {
            int rc = check_template(texts[i], json_string_value(t), param, plen, msg, mlen);
            if (rc < 0)
                return rc;
        }
    }
    const json_t *params = json_object_get(in, "parameters");
    if (params != NULL && !json_is_null(params)) {
        if (!json_is_object(params))
            return fail(param, plen, "parameters", msg, mlen, "parameters must be an object of request parameters.");
        int rc = check_parameters(params, param, plen, msg, mlen);
        if (rc < 0)
            return rc;
    }
    const json_t *vars = json_object_get(in, "variables");
    if (vars != NULL && !json_is_null(vars)) {
        if (!json_is_object(vars))
            return fail(param, plen, "variables", msg, mlen, "variables must be an object of strings.");
        json_object_foreach((json_t *)vars, k, v)
        {
            char p[96];
            snprintf(p, sizeof p, "variables.%.64s", k);
            if (!telex_preset_var_name_valid(k, strlen(k)))
                return fail(param, plen, p, msg, mlen, "A variable name is made of letters, digits and _.");
            if (!json_is_string(v))
                return fail(param, plen, p, msg, mlen, "expected a string.");
        }
    }
    /* the canonical form: known fields in a fixed order, nulls left out */
    json_t *out = json_object();
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        json_t *x = json_object_get(in, known[i]);
        if (x != NULL && !json_is_null(x))
            json_object_set(out, known[i], x);
    }
    *canonical = json_dumps(out, DUMP_FLAGS); /* parts of a parsed object: it dumps */
    json_decref(out);
    if (strlen(*canonical) > TELEX_PRESET_BODY_MAX) {
        free(*canonical);
        *canonical = NULL;
        return fail(param, plen, "", msg, mlen, "A preset is at most %d bytes of JSON.", TELEX_PRESET_BODY_MAX);
    }
    return 0;
}

/* ---- the live set ---------------------------------------------------------------------- */

typedef struct retired {
    struct retired *next;
    telex_presets_t *set;
    time_t at;
} retired_t;

struct telex_presets_live {
    const telex_config_t *cfg;
    _Atomic(telex_presets_t *) cur;
    pthread_mutex_t lock; /* rebuilds, the retired list, shadow_logged */
    retired_t *retired;
    json_t *shadow_logged; /* names already logged as shadowed */
};

static bool in_config(const telex_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_presets; i++)
        if (strcmp(cfg->presets[i].name, name) == 0)
            return true;
    return false;
}

static const char *opt_str(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Builds a set: the file's presets, then the stored ones it does not
 * shadow and whose model this config serves. Under live->lock. */
static int build(telex_presets_live_t *live, const telex_preset_row_t *rows, size_t n, telex_presets_t **out, char *err,
                 size_t errlen)
{
    const telex_config_t *cfg = live->cfg;
    telex_preset_t *list = telex_xcalloc(cfg->n_presets + n + 1, sizeof(*list));
    json_t *bodies = json_array();
    size_t k = 0;
    for (size_t i = 0; i < cfg->n_presets; i++)
        list[k++] = cfg->presets[i];
    for (size_t i = 0; i < n; i++) {
        if (in_config(cfg, rows[i].name)) {
            if (json_object_get(live->shadow_logged, rows[i].name) == NULL) {
                json_object_set_new(live->shadow_logged, rows[i].name, json_true());
                json_t *line = json_pack("{s:s,s:s,s:s}", "level", "notice", "msg",
                                         "a preset in telex.yaml overrides the stored preset of the same name",
                                         "preset", rows[i].name);
                if (line != NULL)
                    telex_log_json(line);
            }
            continue;
        }
        json_t *j = json_loads(rows[i].body, 0, NULL);
        char *canon = NULL, param[96], msg[256];
        if (j == NULL || telex_preset_check(cfg, j, &canon, param, sizeof param, msg, sizeof msg) != 0 ||
            strcmp(opt_str(j, "name"), rows[i].name) != 0) {
            json_t *line = json_pack("{s:s,s:s,s:s,s:s}", "level", "warn", "msg",
                                     "stored preset not served (this gateway cannot use it)", "preset", rows[i].name,
                                     "error", j ? msg : "not JSON");
            if (line != NULL)
                telex_log_json(line);
            json_decref(j);
            free(canon);
            continue;
        }
        free(canon);
        json_array_append_new(bodies, j); /* keeps the strings alive */
        telex_preset_t *p = &list[k++];
        p->name = opt_str(j, "name");
        p->model = opt_str(j, "model");
        p->description = opt_str(j, "description");
        p->system = opt_str(j, "system");
        p->template = opt_str(j, "template");
        const json_t *params = json_object_get(j, "parameters"), *vars = json_object_get(j, "variables");
        char *ptext = params ? json_dumps(params, DUMP_FLAGS) : NULL;
        char *vtext = vars ? json_dumps(vars, DUMP_FLAGS) : NULL;
        /* the texts live in the bodies array too */
        json_t *holder = json_pack("{s:s,s:s}", "p", ptext ? ptext : "{}", "v", vtext ? vtext : "{}");
        free(ptext);
        free(vtext);
        if (holder == NULL) {
            k--;
            continue;
        }
        json_array_append_new(bodies, holder);
        p->parameters = opt_str(holder, "p");
        p->variables = opt_str(holder, "v");
    }
    return telex_presets_new_from(out, list, k, list, bodies, err, errlen);
}

static int load_rows(telex_store_t *store, telex_preset_row_t **rows, size_t *n, char *err, size_t errlen)
{
    *rows = NULL;
    *n = 0;
    return store ? telex_store_preset_list(store, rows, n, err, errlen) : 0;
}

int telex_presets_live_new(telex_presets_live_t **out, const telex_config_t *cfg, telex_store_t *store, char *err,
                           size_t errlen)
{
    *out = NULL;
    telex_presets_live_t *live = telex_xcalloc(1, sizeof(*live));
    live->shadow_logged = json_object();
    live->cfg = cfg;
    pthread_mutex_init(&live->lock, NULL);
    telex_preset_row_t *rows;
    size_t n;
    telex_presets_t *set = NULL;
    int rc = load_rows(store, &rows, &n, err, errlen);
    if (rc == 0) {
        rc = build(live, rows, n, &set, err, errlen);
        telex_store_preset_rows_free(rows, n);
    }
    if (rc != 0) {
        telex_presets_live_free(live);
        return rc;
    }
    atomic_store(&live->cur, set);
    *out = live;
    return 0;
}

const telex_presets_t *telex_presets_live_get(telex_presets_live_t *live)
{
    return atomic_load(&live->cur);
}

int telex_presets_live_reload(telex_presets_live_t *live, telex_store_t *store)
{
    char err[512];
    telex_preset_row_t *rows;
    size_t n;
    int rc = load_rows(store, &rows, &n, err, sizeof err);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&live->lock);
    telex_presets_t *set = NULL;
    rc = build(live, rows, n, &set, err, sizeof err);
    telex_store_preset_rows_free(rows, n);
    if (rc == 0) {
        retired_t *r = telex_xmalloc(sizeof(*r));
        telex_presets_t *old = atomic_exchange(&live->cur, set);
        time_t now = time(NULL);
        *r = (retired_t){live->retired, old, now};
        live->retired = r;
        /* free what was replaced long enough ago */
        for (retired_t **pp = &live->retired; *pp != NULL;) {
            retired_t *x = *pp;
            if (now - x->at >= RETIRE_SECONDS) {
                *pp = x->next;
                telex_presets_free(x->set);
                free(x);
            } else {
                pp = &x->next;
            }
        }
    }
    pthread_mutex_unlock(&live->lock);
    return rc;
}

void telex_presets_live_free(telex_presets_live_t *live)
{
    if (live == NULL)
        return;
    telex_presets_free(atomic_load(&live->cur));
    while (live->retired != NULL) {
        retired_t *x = live->retired;
        live->retired = x->next;
        telex_presets_free(x->set);
        free(x);
    }
    json_decref(live->shadow_logged);
    pthread_mutex_destroy(&live->lock);
    free(live);
}
