/*
 * config/config_presets.c — telex.yaml's presets: list (named request
 * templates, config.h's telex_preset_t) into cfg->presets. Each preset's
 * parameters: and variables: mappings are kept as JSON text. The checks it
 * shares with presets stored through the admin API are in preset_rules.c;
 * that each preset's model is served is checked after the whole load
 * (config.c), when the models are known.
 */
#include "config/config_presets.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config/preset_rules.h"

/* Checks every {{placeholder}} of a template; see presets.h for the syntax. */
static int check_template(ctx_t *c, const yaml_node_t *at, const char *path, const char *t)
{
    char q[QUOTE_LEN], snippet[48];
    const char *p = NULL;
    telex_template_problem_t problem = telex_preset_template_problem(t, &p);
    if (problem == TELEX_TEMPLATE_OK)
        return 0;
    snprintf(snippet, sizeof snippet, "%.40s", p);
    for (char *x = snippet; *x; x++)
        if (*x == '\n' || *x == '\r')
            *x = '\0';
    if (problem == TELEX_TEMPLATE_UNTERMINATED)
        return cy_fail(c, at, path, "unterminated placeholder %s (close it with }})", cy_quote(q, snippet));
    return cy_fail(c, at, path, "invalid placeholder %s: a placeholder is {{name}}, name made of letters, digits and _",
                   cy_quote(q, snippet));
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
            yaml_node_t *k = cy_node_at(c, p->key);
            json_t *val = yaml_to_json(c, cy_node_at(c, p->value), depth + 1);
            if (k->type != YAML_SCALAR_NODE || !val || json_object_set_new(o, cy_sval(k), val) != 0) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    if (v->type == YAML_SEQUENCE_NODE) {
        json_t *a = json_array();
        for (yaml_node_item_t *i = v->data.sequence.items.start; a && i < v->data.sequence.items.top; i++) {
            json_t *val = yaml_to_json(c, cy_node_at(c, *i), depth + 1);
            if (!val || json_array_append_new(a, val) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    if (v->type != YAML_SCALAR_NODE)
        return NULL;
    const char *t = cy_sval(v);
    if (v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (cy_is_null(v))
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
    const char *name = cy_sval(k);
    if (!strcmp(name, "model"))
        return cy_fail(c, k, path, "set by the preset's own model: key");
    if (!strcmp(name, "messages"))
        return cy_fail(c, k, path, "built from the preset's system: and template: keys");
    char buf[64];
    const char *why = telex_preset_parameter_problem(name, j, buf, sizeof buf);
    return why ? cy_fail(c, val, path, "%s", why) : 0;
}

static int parse_json_mapping(ctx_t *c, const yaml_node_t *v, const char *path, bool parameters,
                              const char **out)
{
    char d[QUOTE_LEN];
    if (!v || cy_is_null(v)) {
        *out = "{}";
        return 0;
    }
    if (v->type != YAML_MAPPING_NODE)
        return cy_fail(c, v, path, "expected a mapping, got %s", cy_describe(d, v));
    json_t *obj = json_object();
    if (!obj)
        return cy_oom(c);
    int rc = 0;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *k = cy_node_at(c, p->key), *val = cy_node_at(c, p->value);
        char kp[PATH_LEN];
        if (k->type != YAML_SCALAR_NODE || cy_is_null(k) || strlen(cy_sval(k)) != k->data.scalar.length) {
            rc = cy_fail(c, k, path, "keys must be plain strings");
            break;
        }
        cy_path_key(kp, path, cy_sval(k));
        for (yaml_node_pair_t *p2 = v->data.mapping.pairs.start; p2 < p && rc == 0; p2++)
            if (strcmp(cy_sval(cy_node_at(c, p2->key)), cy_sval(k)) == 0)
                rc = cy_fail(c, k, kp, "duplicate key (first at line %zu)", cy_node_at(c, p2->key)->start_mark.line + 1);
        if (rc < 0)
            break;
        if (!parameters) { /* a variable: a name and a scalar value, kept as text */
            const char *txt;
            /* "" (a quoted empty key) has always been let through here */
            if (*cy_sval(k) && !telex_preset_var_name_valid(cy_sval(k), strlen(cy_sval(k)))) {
                rc = cy_fail(c, k, kp, "a variable name is made of letters, digits and _");
                break;
            }
            if (val->type != YAML_SCALAR_NODE) {
                rc = cy_fail(c, val, kp, "expected a string, got %s", cy_describe(d, val));
                break;
            }
            if ((rc = cy_read_str(c, val, kp, STR_ALLOW_EMPTY | STR_MULTILINE, &txt)) < 0)
                break;
            if (json_object_set_new(obj, cy_sval(k), json_string(txt)) != 0) {
                rc = cy_fail(c, val, kp, "must be valid UTF-8");
                break;
            }
            continue;
        }
        json_t *j = yaml_to_json(c, val, 0);
        if (!j) {
            rc = cy_fail(c, val, kp, "cannot be represented as JSON (invalid UTF-8 or nested too deeply)");
            break;
        }
        if ((rc = check_parameter(c, k, val, j, kp)) < 0 || json_object_set_new(obj, cy_sval(k), j) != 0) {
            if (rc == 0)
                rc = cy_oom(c);
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
        return cy_oom(c);
    }
    free(text);
    return 0;
}

static int parse_preset(ctx_t *c, const yaml_node_t *seq, size_t i, telex_preset_t *pr)
{
    static const char *const keys[] = {"name",     "model",      "description", "system",
                                       "template", "parameters", "variables"};
    static const cy_named_list_t list_of = {"presets", "preset", "name:, model:, system:, template:, ...", keys,
                                            sizeof keys / sizeof keys[0]};
    char base[PATH_LEN], p[PATH_LEN], q[QUOTE_LEN];
    yaml_node_t *item, *name;
    int rc;
    /* (a duplicate is found before a bad name is: an earlier item with the
     * same name had that bad name, and failed first) */
    if ((rc = cy_named_item(c, seq, i, &list_of, base, &item, &name, &pr->name)) < 0)
        return rc;
    if (!telex_preset_name_valid(pr->name)) {
        cy_path_key(p, base, "name");
        return cy_fail(c, name, p, "%s: a preset name is 1 to 64 letters, digits, '.', '_' or '-'",
                       cy_quote(q, pr->name));
    }
    yaml_node_t *model = cy_get(c, item, "model");
    if (!model)
        return cy_fail(c, item, base, "missing required key \"model\" (the model the preset asks for)");
    cy_path_key(p, base, "model");
    if ((rc = cy_read_str(c, model, p, 0, &pr->model)) < 0)
        return rc;
    if (strncmp(pr->model, "preset:", 7) == 0)
        return cy_fail(c, model, p, "a preset cannot use another preset");
    pr->line = (unsigned)model->start_mark.line + 1;
    pr->column = (unsigned)model->start_mark.column + 1;
    FIELD(item, "description", base, cy_read_str, STR_MULTILINE, &pr->description);
    static const char *const texts[] = {"system", "template"};
    const char **slots[] = {&pr->system, &pr->template};
    for (int t = 0; t < 2; t++) {
        yaml_node_t *v = cy_get(c, item, texts[t]);
        if (!v)
            continue;
        cy_path_key(p, base, texts[t]);
        if ((rc = cy_read_str(c, v, p, STR_MULTILINE, slots[t])) < 0 ||
            (rc = check_template(c, v, p, *slots[t])) < 0)
            return rc;
    }
    cy_path_key(p, base, "parameters");
    if ((rc = parse_json_mapping(c, cy_get(c, item, "parameters"), p, true, &pr->parameters)) < 0)
        return rc;
    cy_path_key(p, base, "variables");
    if ((rc = parse_json_mapping(c, cy_get(c, item, "variables"), p, false, &pr->variables)) < 0)
        return rc;
    return 0;
}

int cy_parse_presets(ctx_t *c, const yaml_node_t *v)
{
    char d[QUOTE_LEN];
    if (v->type != YAML_SEQUENCE_NODE)
        return cy_fail(c, v, "presets", "expected a list of presets (- name: ...), got %s", cy_describe(d, v));
    size_t n = cy_n_items(v);
    telex_preset_t *p = n ? telex_config_alloc(c->arena, n * sizeof(*p)) : NULL;
    if (n && !p)
        return cy_oom(c);
    for (size_t i = 0; i < n; i++) {
        int rc = parse_preset(c, v, i, &p[i]);
        if (rc < 0)
            return rc;
    }
    c->cfg->presets = p;
    c->cfg->n_presets = n;
    return 0;
}
