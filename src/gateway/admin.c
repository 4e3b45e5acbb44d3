/*
 * gateway/admin.c — the admin API's calls without HTTP: /admin/keys on the
 * store, and the door to /admin/presets (gateway/presets_store.c). See
 * admin.h. The HTTP side (the admin token, the thread pool) is
 * endpoints.c.
 */
#include "gateway/admin.h"
#include "cluster/cluster.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/keys.h"
#include "gateway/limits.h"
#include "store/store.h"
#include "util/log.h"

#define MAX_ADMIN_BODY (64u << 10)

int telex_admin_store_error(telex_api_error_t *e, int rc, const char *msg, const char *not_found_code)
{
    if (rc == -ENOENT)
        return telex_api_error_set(e, 404, "invalid_request_error", not_found_code, NULL, "%s.", msg);
    if (rc == -EEXIST)
        return telex_api_error_set(e, 409, "invalid_request_error", "name_taken", "name", "%s.", msg);
    if (rc == -EINVAL)
        return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", NULL, "%s.", msg);
    if (rc == -EBUSY) {
        telex_api_error_set(e, 503, "server_error", "store_busy", NULL, "The database is busy; retry shortly.");
        e->retry_after = 1;
        return 503;
    }
    return telex_api_error_set(e, 500, "server_error", "store_error", NULL, "The database failed: %s", msg);
}

static int store_error(telex_api_error_t *e, int rc, const char *msg)
{
    return telex_admin_store_error(e, rc, msg, "key_not_found");
}

static int bad(telex_api_error_t *e, const char *param, const char *msg)
{
    return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", param, "%s", msg);
}

/* Reads the fields of a create/update body into *row; *set gets the
 * TELEX_KEY_SET_* bits of the fields present. Returns 0 or 400. */
static int read_fields(const json_t *body, bool create, telex_key_row_t *row, unsigned *set, telex_api_error_t *e)
{
    static const char *const known[] = {"name", "budget_usd", "rpm", "tpm", "max_concurrent", "models", "expires"};
    char err[256];
    const char *k;
    json_t *v;
    *set = 0;
    if (!json_is_object(body))
        return bad(e, NULL, "The body must be a JSON object.");
    json_object_foreach((json_t *)body, k, v)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            ok = ok || strcmp(k, known[i]) == 0;
        if (!ok) {
            char safe[64];
            telex_api_safe_text(safe, sizeof safe, k, strlen(k));
            return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", NULL,
                                       "Unknown field '%s' (known: name, budget_usd, rpm, tpm, max_concurrent, models, "
                                       "expires).",
                                       safe);
        }
    }
    json_t *name = json_object_get(body, "name");
    if (name != NULL) {
        if (!json_is_string(name) || json_string_length(name) != strlen(json_string_value(name)))
            return bad(e, "name", "name must be a string.");
        if (telex_key_check_name(json_string_value(name), err, sizeof err) != 0)
            return bad(e, "name", err);
        snprintf(row->name, sizeof row->name, "%s", json_string_value(name));
        *set |= TELEX_KEY_SET_NAME;
    } else if (create) {
        return bad(e, "name", "name is required: a label for the key's owner.");
    }
    json_t *budget = json_object_get(body, "budget_usd");
    if (budget != NULL) {
        if (json_is_null(budget)) {
            row->budget_usd = -1;
        } else if (!json_is_number(budget) || telex_key_check_budget(json_number_value(budget), err, sizeof err)) {
            return bad(e, "budget_usd", "budget_usd must be a number of US dollars from 0 to 1000000000, or null.");
        } else {
            row->budget_usd = json_number_value(budget);
        }
        *set |= TELEX_KEY_SET_BUDGET;
    }
    static const char *const rates[3] = {"rpm", "tpm", "max_concurrent"};
    int64_t *rate_fields[3] = {&row->rpm, &row->tpm, &row->max_concurrent};
    static const unsigned rate_bits[3] = {TELEX_KEY_SET_RPM, TELEX_KEY_SET_TPM, TELEX_KEY_SET_MAX_CONCURRENT};
    for (int i = 0; i < 3; i++) {
        json_t *r = json_object_get(body, rates[i]);
        if (r == NULL)
            continue;
        long long n = json_is_null(r) ? 0 : json_is_integer(r) ? (long long)json_integer_value(r) : -1;
        if (telex_key_check_rate(n, rates[i], err, sizeof err) != 0)
            return bad(e, rates[i], err);
        *rate_fields[i] = n;
        *set |= rate_bits[i];
    }
    json_t *models = json_object_get(body, "models");
    if (models != NULL) {
        const char *items[64];
        size_t n = 0;
        if (json_is_string(models)) {
            items[n++] = json_string_value(models);
        } else if (json_is_array(models) && json_array_size(models) <= 64) {
            size_t i;
            json_t *m;
            json_array_foreach(models, i, m)
            {
                if (!json_is_string(m))
                    return bad(e, "models", "models must be a list of model names.");
                items[n++] = json_string_value(m);
            }
        } else if (!json_is_null(models)) {
            return bad(e, "models", "models must be a list of at most 64 model names (or null for all).");
        }
        if (telex_key_join_models(items, n, row->models, sizeof row->models, err, sizeof err) != 0)
            return bad(e, "models", err);
        *set |= TELEX_KEY_SET_MODELS;
    }
    json_t *expires = json_object_get(body, "expires");
    if (expires != NULL) {
        if (json_is_null(expires)) {
            row->expires_at = 0;
        } else if (!json_is_string(expires)) {
            return bad(e, "expires", "expires must be a string: 30d, 2026-01-31, 2026-01-31T12:00:00Z or never.");
        } else if (telex_parse_expiry(json_string_value(expires), (int64_t)time(NULL), &row->expires_at, err,
                                      sizeof err) != 0) {
            char msg[300];
            snprintf(msg, sizeof msg, "expires: %s.", err);
            return bad(e, "expires", msg);
        }
        *set |= TELEX_KEY_SET_EXPIRES;
    }
    return 0;
}

static json_t *key_json(telex_services_t *svc, const telex_key_row_t *row)
{
    return telex_key_to_json(row, telex_limits_spent(telex_services_limits(svc), row->id), (int64_t)time(NULL));
}

/* Decodes the {id|name} path segment. Returns 0 or -1. */
static int decode_ref(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '%' && i + 2 < len) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end != '\0' || v == 0)
                return -1;
            ch = (unsigned char)v;
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return o > 0 ? 0 : -1;
}

static int find_key(telex_services_t *svc, const char *ref, telex_key_row_t *row, telex_api_error_t *e)
{
    char err[256];
    int rc = telex_store_key_find(telex_services_store(svc), ref, row, err, sizeof err);
    return rc == 0 ? 0 : store_error(e, rc, err);
}

static int key_call(telex_services_t *svc, const char *method, const char *ref, const char *action, const char *body,
                    size_t body_len, json_t **out, telex_api_error_t *e, const char **allow)
{
    telex_key_row_t row;
    char err[256];
    int rc;
    if (action != NULL) {
        if (strcmp(action, "revoke") != 0)
            return telex_api_error_set(e, 404, "invalid_request_error", "not_found", NULL,
                                       "Unknown admin path; see docs/keys.md.");
        if (strcmp(method, "POST") != 0) {
            *allow = "POST";
            return telex_api_error_set(e, 405, "invalid_request_error", "method_not_allowed", NULL,
                                       "Use POST to revoke a key.");
        }
        method = "DELETE";
    }
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
        if ((rc = find_key(svc, ref, &row, e)) != 0)
            return rc;
        *out = key_json(svc, &row);
        return 200;
    }
    if (strcmp(method, "DELETE") == 0) {
        if ((rc = find_key(svc, ref, &row, e)) != 0)
            return rc;
        if ((rc = telex_store_key_revoke(telex_services_store(svc), row.id, (int64_t)time(NULL), err, sizeof err)) !=
                0 ||
            (rc = telex_store_key_get(telex_services_store(svc), row.id, &row, err, sizeof err)) != 0)
            return store_error(e, rc, err);
        telex_services_reload_keys(svc);
        telex_cluster_keys_changed(); /* cluster mode: every node reloads */
        telex_log_event("info", "API key revoked", "\"key_id\":%lld", (long long)row.id);
        *out = key_json(svc, &row);
        return 200;
    }
    if (strcmp(method, "PATCH") == 0) {
        if ((rc = find_key(svc, ref, &row, e)) != 0)
            return rc;
        json_error_t jerr;
        json_t *j = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, &jerr);
        if (j == NULL)
            return bad(e, NULL, "The body is not valid JSON.");
        telex_key_row_t values = row;
        unsigned set = 0;
        rc = read_fields(j, false, &values, &set, e);
        json_decref(j);
        if (rc != 0)
            return rc;
        if ((rc = telex_store_key_update(telex_services_store(svc), row.id, set, &values, err, sizeof err)) != 0 ||
            (rc = telex_store_key_get(telex_services_store(svc), row.id, &row, err, sizeof err)) != 0)
            return store_error(e, rc, err);
        telex_services_reload_keys(svc);
        telex_cluster_keys_changed(); /* cluster mode: every node reloads */
        telex_log_event("info", "API key updated", "\"key_id\":%lld", (long long)row.id);
        *out = key_json(svc, &row);
        return 200;
    }
    *allow = "GET, PATCH, DELETE";
    return telex_api_error_set(e, 405, "invalid_request_error", "method_not_allowed", NULL,
                               "Use GET, PATCH or DELETE on /admin/keys/{id}.");
}

int telex_admin_execute(telex_services_t *svc, const char *method, const char *path, const char *body,
                        size_t body_len, json_t **out, telex_api_error_t *e, const char **allow)
{
    *out = NULL;
    *allow = NULL;
    memset(e, 0, sizeof(*e));
    char err[256];
    size_t plen = strlen(path);
    while (plen > 1 && path[plen - 1] == '/')
        plen--;
    static const char keys[] = "/admin/keys", presets[] = "/admin/presets";
    if (plen >= sizeof presets - 1 && memcmp(path, presets, sizeof presets - 1) == 0 &&
        (plen == sizeof presets - 1 || path[sizeof presets - 1] == '/')) {
        if (body_len > MAX_ADMIN_BODY)
            return telex_api_error_set(e, 413, "invalid_request_error", "request_too_large", NULL,
                                       "The body is larger than %u bytes.", MAX_ADMIN_BODY);
        return telex_admin_presets_execute(svc, method, path, body, body_len, out, e, allow);
    }
    if (plen < sizeof keys - 1 || memcmp(path, keys, sizeof keys - 1) != 0 ||
        (plen > sizeof keys - 1 && path[sizeof keys - 1] != '/'))
        return telex_api_error_set(e, 404, "invalid_request_error", "not_found", NULL,
                                   "Unknown admin path. The admin API is /admin/keys and /admin/presets; see docs/keys.md.");
    if (body_len > MAX_ADMIN_BODY)
        return telex_api_error_set(e, 413, "invalid_request_error", "request_too_large", NULL,
                                   "The body is larger than %u bytes.", MAX_ADMIN_BODY);
    if (plen > sizeof keys - 1) { /* /admin/keys/{ref}[/action] */
        const char *seg = path + sizeof keys;
        size_t seglen = plen - sizeof keys;
        const char *slash = memchr(seg, '/', seglen);
        char ref[3 * TELEX_KEY_NAME_MAX + 1], action[16];
        size_t reflen = slash ? (size_t)(slash - seg) : seglen;
        if (decode_ref(seg, reflen, ref, sizeof ref) != 0)
            return telex_api_error_set(e, 404, "invalid_request_error", "key_not_found", NULL, "No such key.");
        if (slash != NULL) {
            size_t alen = seglen - reflen - 1;
            if (alen == 0 || alen >= sizeof action || memchr(slash + 1, '/', alen) != NULL)
                return telex_api_error_set(e, 404, "invalid_request_error", "not_found", NULL,
                                           "Unknown admin path; see docs/keys.md.");
            memcpy(action, slash + 1, alen);
            action[alen] = '\0';
        }
        return key_call(svc, method, ref, slash ? action : NULL, body, body_len, out, e, allow);
    }
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
        telex_key_row_t *rows = NULL;
        size_t n = 0;
        int rc = telex_store_key_list(telex_services_store(svc), &rows, &n, err, sizeof err);
        if (rc != 0)
            return store_error(e, rc, err);
        json_t *data = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(data, key_json(svc, &rows[i])); /* never NULL (keys.h) */
        free(rows);
        *out = json_pack("{s:s,s:o}", "object", "list", "data", data);
        return 200;
    }
    if (strcmp(method, "POST") == 0) {
        json_error_t jerr;
        json_t *j = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, &jerr);
        if (j == NULL)
            return bad(e, NULL, "The body is not valid JSON: send {\"name\": \"...\"}.");
        telex_key_row_t row, fields;
        memset(&fields, 0, sizeof fields);
        fields.budget_usd = -1;
        unsigned set = 0;
        int rc = read_fields(j, true, &fields, &set, e);
        json_decref(j);
        if (rc != 0)
            return rc;
        char key[TELEX_KEY_LEN + 1];
        if (telex_key_new_row(fields.name, &row, key) != 0)
            return telex_api_error_set(e, 500, "server_error", NULL, NULL, "The kernel gave no randomness.");
        row.budget_usd = fields.budget_usd;
        row.rpm = fields.rpm;
        row.tpm = fields.tpm;
        row.max_concurrent = fields.max_concurrent;
        row.expires_at = fields.expires_at;
        memcpy(row.models, fields.models, sizeof row.models);
        if ((rc = telex_store_key_insert(telex_services_store(svc), &row, err, sizeof err)) != 0) {
            memset(key, 0, sizeof key);
            return store_error(e, rc, err);
        }
        telex_services_reload_keys(svc);
        telex_cluster_keys_changed(); /* cluster mode: every node reloads */
        telex_log_event("info", "API key created", "\"key_id\":%lld", (long long)row.id);
        *out = key_json(svc, &row);
        json_object_set_new(*out, "key", json_string(key));
        memset(key, 0, sizeof key);
        return 201;
    }
    *allow = "GET, POST";
    return telex_api_error_set(e, 405, "invalid_request_error", "method_not_allowed", NULL,
                               "Use GET or POST on /admin/keys.");
}
