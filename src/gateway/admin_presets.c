/*
 * gateway/admin_presets.c — the admin API's /admin/presets[/NAME] calls
 * without HTTP: list, create, read, change and delete stored presets on
 * the services' store, then rebuild the live set at once. See
 * presets_store.h (the rules a preset follows) and admin.h (the door:
 * telex_admin_execute; the HTTP side is endpoints.c).
 */
#include "gateway/presets_store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/admin.h"
#include "gateway/services.h"

static int store_error(telex_api_error_t *e, int rc, const char *msg)
{
    return telex_admin_store_error(e, rc, msg, "preset_not_found");
}

static const telex_preset_t *config_preset(const telex_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_presets; i++)
        if (strcmp(cfg->presets[i].name, name) == 0)
            return &cfg->presets[i];
    return NULL;
}

/* Never NULL; a string that is not UTF-8 would be left out (telex.yaml's
 * are UTF-8: libyaml reads nothing else). */
static json_t *config_preset_json(const telex_preset_t *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(p->name));
    json_object_set_new(o, "model", json_string(p->model));
    if (p->description)
        json_object_set_new(o, "description", json_string(p->description));
    if (p->system)
        json_object_set_new(o, "system", json_string(p->system));
    if (p->template)
        json_object_set_new(o, "template", json_string(p->template));
    json_object_set_new(o, "parameters", json_loads(p->parameters ? p->parameters : "{}", 0, NULL));
    json_object_set_new(o, "variables", json_loads(p->variables ? p->variables : "{}", 0, NULL));
    json_object_set_new(o, "source", json_string("config"));
    return o;
}

static json_t *stored_json(const telex_config_t *cfg, const telex_preset_row_t *row)
{
    json_t *o = json_loads(row->body, 0, NULL);
    if (!json_is_object(o)) { /* a row written by hand: its name alone (left out when it is not UTF-8) */
        json_decref(o);
        o = json_object();
        json_object_set_new(o, "name", json_string(row->name));
    }
    json_object_set_new(o, "source", json_string("store"));
    json_object_set_new(o, "created_at", json_integer(row->created_at));
    json_object_set_new(o, "updated_at", json_integer(row->updated_at));
    if (config_preset(cfg, row->name) != NULL)
        json_object_set_new(o, "shadowed", json_true());
    return o;
}

/* Checks and stores body (create or replace); *out the stored preset. */
static int put(telex_services_t *svc, json_t *body, int create, json_t **out, telex_api_error_t *e)
{
    const telex_config_t *cfg = telex_services_config(svc);
    char *canon = NULL, param[96], msg[300], err[512];
    if (telex_preset_check(cfg, body, &canon, param, sizeof param, msg, sizeof msg) != 0)
        return telex_api_error_set(e, 400, "invalid_request_error", "invalid_preset", param[0] ? param : NULL, "%s",
                                   msg);
    const char *name = json_string_value(json_object_get(body, "name"));
    if (create && config_preset(cfg, name) != NULL) {
        free(canon);
        return telex_api_error_set(e, 409, "invalid_request_error", "name_taken", "name",
                                   "telex.yaml already has a preset named \"%s\" (it would win over a stored one).",
                                   name);
    }
    telex_store_t *store = telex_services_store(svc);
    int rc = telex_store_preset_put(store, name, canon, create, err, sizeof err);
    free(canon);
    if (rc != 0)
        return store_error(e, rc, err);
    telex_services_reload_presets(svc);
    telex_preset_row_t row;
    if ((rc = telex_store_preset_get(store, name, &row, err, sizeof err)) != 0)
        return store_error(e, rc, err);
    *out = stored_json(cfg, &row);
    free(row.body);
    return create ? 201 : 200;
}

static int one(telex_services_t *svc, const char *method, const char *name, const char *body, size_t body_len,
               json_t **out, telex_api_error_t *e, const char **allow)
{
    const telex_config_t *cfg = telex_services_config(svc);
    telex_store_t *store = telex_services_store(svc);
    const telex_preset_t *file = config_preset(cfg, name);
    char err[512];
    telex_preset_row_t row;
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
        if (file != NULL) {
            *out = config_preset_json(file);
            return 200;
        }
        int rc = telex_store_preset_get(store, name, &row, err, sizeof err);
        if (rc != 0)
            return store_error(e, rc, err);
        *out = stored_json(cfg, &row);
        free(row.body);
        return 200;
    }
    bool patch = strcmp(method, "PATCH") == 0, del = strcmp(method, "DELETE") == 0;
    if (!patch && !del) {
        *allow = "GET, PATCH, DELETE";
        return telex_api_error_set(e, 405, "invalid_request_error", "method_not_allowed", NULL,
                                   "Use GET, PATCH or DELETE on /admin/presets/{name}.");
    }
    if (file != NULL) {
        int rc = telex_store_preset_get(store, name, &row, err, sizeof err);
        if (rc == 0)
            free(row.body);
        if (rc != 0 || !del)
            return telex_api_error_set(e, 409, "invalid_request_error", "preset_in_config", NULL,
                                       "The preset \"%s\" is defined in telex.yaml; change it there.", name);
        /* DELETE of a shadowed stored preset: allowed (it removes the store's) */
    }
    if (del) {
        int rc = telex_store_preset_delete(store, name, err, sizeof err);
        if (rc != 0)
            return store_error(e, rc, err);
        telex_services_reload_presets(svc);
        *out = json_pack("{s:s,s:b}", "name", name, "deleted", 1); /* a valid preset name */
        return 200;
    }
    json_error_t jerr;
    json_t *changes = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(changes)) {
        json_decref(changes);
        return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", NULL,
                                   "The body is not a JSON object of the fields to change.");
    }
    const json_t *newname = json_object_get(changes, "name");
    if (newname != NULL && !(json_is_string(newname) && strcmp(json_string_value(newname), name) == 0)) {
        json_decref(changes);
        return telex_api_error_set(e, 400, "invalid_request_error", "invalid_preset", "name",
                                   "A preset's name cannot change; create one with the new name and delete this one.");
    }
    int rc = telex_store_preset_get(store, name, &row, err, sizeof err);
    if (rc != 0) {
        json_decref(changes);
        return store_error(e, rc, err);
    }
    json_t *merged = telex_preset_merge(row.body, changes);
    free(row.body);
    json_decref(changes);
    rc = put(svc, merged, 0, out, e);
    json_decref(merged);
    return rc;
}

int telex_admin_presets_execute(telex_services_t *svc, const char *method, const char *path, const char *body,
                                size_t body_len, json_t **out, telex_api_error_t *e, const char **allow)
{
    static const char base[] = "/admin/presets";
    size_t plen = strlen(path);
    while (plen > 1 && path[plen - 1] == '/')
        plen--;
    if (plen > sizeof base - 1) {
        char name[TELEX_PRESET_NAME_MAX + 1];
        size_t nlen = plen - sizeof base;
        const char *seg = path + sizeof base;
        if (nlen == 0 || nlen > TELEX_PRESET_NAME_MAX || memchr(seg, '/', nlen) != NULL)
            return telex_api_error_set(e, 404, "invalid_request_error", "preset_not_found", NULL, "No such preset.");
        memcpy(name, seg, nlen);
        name[nlen] = '\0';
        if (!telex_preset_name_valid(name))
            return telex_api_error_set(e, 404, "invalid_request_error", "preset_not_found", NULL, "No such preset.");
        return one(svc, method, name, body, body_len, out, e, allow);
    }
    const telex_config_t *cfg = telex_services_config(svc);
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
        char err[512];
        telex_preset_row_t *rows = NULL;
        size_t n = 0;
        int rc = telex_store_preset_list(telex_services_store(svc), &rows, &n, err, sizeof err);
        if (rc != 0)
            return store_error(e, rc, err);
        json_t *data = json_array();
        for (size_t i = 0; i < cfg->n_presets; i++)
            json_array_append_new(data, config_preset_json(&cfg->presets[i]));
        for (size_t i = 0; i < n; i++)
            json_array_append_new(data, stored_json(cfg, &rows[i]));
        telex_store_preset_rows_free(rows, n);
        *out = json_pack("{s:s,s:o}", "object", "list", "data", data);
        return 200;
    }
    if (strcmp(method, "POST") == 0) {
        json_error_t jerr;
        json_t *j = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, &jerr);
        if (j == NULL)
            return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", NULL,
                                       "The body is not valid JSON: send a preset as in telex.yaml.");
        int rc = put(svc, j, 1, out, e);
        json_decref(j);
        return rc;
    }
    *allow = "GET, POST";
    return telex_api_error_set(e, 405, "invalid_request_error", "method_not_allowed", NULL,
                               "Use GET or POST on /admin/presets.");
}
