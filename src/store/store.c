/*
 * store/store.c — store.h's entry points: chooses the backend from the
 * path (a postgresql:// URL or a file) and forwards each call to it after
 * the checks every backend shares (key fields, id-or-name, preset names).
 */
#include "store/backend.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void telex_store_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int64_t telex_store_tokens(uint64_t v)
{
    return v > TELEX_USAGE_TOKENS_MAX ? (int64_t)TELEX_USAGE_TOKENS_MAX : (int64_t)v;
}

int64_t telex_store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int telex_store_is_url(const char *path)
{
    return path != NULL && (strncmp(path, "postgresql://", 13) == 0 || strncmp(path, "postgres://", 11) == 0);
}

int telex_store_default_spill_path(const char *db_path, char *out, size_t cap)
{
    int n;
    if (!telex_store_is_url(db_path)) {
        n = snprintf(out, cap, "%s.spill", db_path);
    } else {
        const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
        if (xdg != NULL && xdg[0] == '/')
            n = snprintf(out, cap, "%s/telex/ledger.spill", xdg);
        else if (home != NULL && home[0] == '/')
            n = snprintf(out, cap, "%s/.local/state/telex/ledger.spill", strcmp(home, "/") == 0 ? "" : home);
        else
            n = snprintf(out, cap, "ledger.spill");
    }
    return n > 0 && (size_t)n < cap ? 0 : -ENAMETOOLONG;
}

int telex_store_open(telex_store_t **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    if (path == NULL || *path == '\0') {
        telex_store_errf(err, errlen, "store: no database path");
        return -EINVAL;
    }
    if (telex_store_is_url(path))
        return telex_store_postgres_open(out, path, err, errlen);
    return telex_store_sqlite_open(out, path, err, errlen);
}

void telex_store_close(telex_store_t *s)
{
    if (s == NULL)
        return;
    char *path = s->path;
    s->ops->close(s);
    free(path);
}

const char *telex_store_path(const telex_store_t *s)
{
    return s->path;
}

const char *telex_store_backend(const telex_store_t *s)
{
    return s->ops->name;
}

/* ---- keys ------------------------------------------------------------------ */

static int key_fields_valid(const telex_key_row_t *k, unsigned set, char *err, size_t errlen)
{
    if ((set & TELEX_KEY_SET_NAME) && (k->name[0] == '\0' || strlen(k->name) > TELEX_KEY_NAME_MAX)) {
        telex_store_errf(err, errlen, "a key name must be 1 to %d bytes", TELEX_KEY_NAME_MAX);
        return -EINVAL;
    }
    if ((set & TELEX_KEY_SET_RPM) && k->rpm < 0) {
        telex_store_errf(err, errlen, "rpm must be 0 (unlimited) or more");
        return -EINVAL;
    }
    if ((set & TELEX_KEY_SET_TPM) && k->tpm < 0) {
        telex_store_errf(err, errlen, "tpm must be 0 (unlimited) or more");
        return -EINVAL;
    }
    if ((set & TELEX_KEY_SET_MAX_CONCURRENT) && k->max_concurrent < 0) {
        telex_store_errf(err, errlen, "max_concurrent must be 0 (unlimited) or more");
        return -EINVAL;
    }
    return 0;
}

int telex_store_key_insert(telex_store_t *s, telex_key_row_t *row, char *err, size_t errlen)
{
    int rc = key_fields_valid(row, TELEX_KEY_SET_NAME | TELEX_KEY_SET_RPM | TELEX_KEY_SET_TPM | TELEX_KEY_SET_MAX_CONCURRENT,
                              err, errlen);
    return rc < 0 ? rc : s->ops->key_insert(s, row, err, errlen);
}

int telex_store_key_get(telex_store_t *s, int64_t id, telex_key_row_t *out, char *err, size_t errlen)
{
    return s->ops->key_get(s, id, out, err, errlen);
}

int telex_store_key_find(telex_store_t *s, const char *id_or_name, telex_key_row_t *out, char *err,
                         size_t errlen)
{
    const char *p = id_or_name;
    if (*p >= '1' && *p <= '9' && strspn(p, "0123456789") == strlen(p) && strlen(p) <= 18)
        return telex_store_key_get(s, strtoll(p, NULL, 10), out, err, errlen);
    if (strlen(p) > TELEX_KEY_NAME_MAX) {
        telex_store_errf(err, errlen, "no key named \"%.64s...\"", p);
        return -ENOENT;
    }
    return s->ops->key_find_name(s, p, out, err, errlen);
}

int telex_store_key_list(telex_store_t *s, telex_key_row_t **rows, size_t *n, char *err, size_t errlen)
{
    *rows = NULL;
    *n = 0;
    return s->ops->key_list(s, rows, n, err, errlen);
}

int telex_store_key_update(telex_store_t *s, int64_t id, unsigned set, const telex_key_row_t *values, char *err,
                           size_t errlen)
{
    int rc = key_fields_valid(values, set, err, errlen);
    return rc < 0 ? rc : s->ops->key_update(s, id, set, values, err, errlen);
}

int telex_store_key_revoke(telex_store_t *s, int64_t id, int64_t now, char *err, size_t errlen)
{
    return s->ops->key_revoke(s, id, now, err, errlen);
}

int telex_store_key_count_active(telex_store_t *s, size_t *n, char *err, size_t errlen)
{
    *n = 0;
    return s->ops->key_count_active(s, n, err, errlen);
}

int telex_store_data_version(telex_store_t *s, int64_t *out, char *err, size_t errlen)
{
    return s->ops->data_version(s, out, err, errlen);
}

/* ---- ledger ------------------------------------------------------------------ */

int telex_store_ledger_append(telex_store_t *s, const telex_usage_record_t *rows, size_t n, char *err,
                              size_t errlen)
{
    return n == 0 ? 0 : s->ops->ledger_append(s, rows, n, err, errlen);
}

int telex_store_usage(telex_store_t *s, const telex_usage_query_t *q, telex_usage_row_t **rows, size_t *n,
                      int *truncated, char *err, size_t errlen)
{
    *rows = NULL;
    *n = 0;
    *truncated = 0;
    if ((unsigned)q->group > TELEX_USAGE_GROUP_DAY) {
        telex_store_errf(err, errlen, "unknown grouping");
        return -EINVAL;
    }
    return s->ops->usage(s, q, rows, n, truncated, err, errlen);
}

/* ---- presets ------------------------------------------------------------------ */

static int preset_name_valid(const char *name, char *err, size_t errlen)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > TELEX_PRESET_NAME_MAX) {
        telex_store_errf(err, errlen, "a preset name must be 1 to %d bytes", TELEX_PRESET_NAME_MAX);
        return -EINVAL;
    }
    return 0;
}

int telex_store_preset_put(telex_store_t *s, const char *name, const char *body, int create, char *err,
                           size_t errlen)
{
    int rc = preset_name_valid(name, err, errlen);
    if (rc < 0)
        return rc;
    if (body == NULL || strlen(body) > TELEX_PRESET_BODY_MAX) {
        telex_store_errf(err, errlen, "a preset is at most %d bytes of JSON", TELEX_PRESET_BODY_MAX);
        return -EINVAL;
    }
    return s->ops->preset_put(s, name, body, create, err, errlen);
}

int telex_store_preset_get(telex_store_t *s, const char *name, telex_preset_row_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (preset_name_valid(name, NULL, 0) < 0) {
        telex_store_errf(err, errlen, "no stored preset named \"%.64s\"", name ? name : "");
        return -ENOENT;
    }
    return s->ops->preset_get(s, name, out, err, errlen);
}

int telex_store_preset_list(telex_store_t *s, telex_preset_row_t **rows, size_t *n, char *err, size_t errlen)
{
    *rows = NULL;
    *n = 0;
    return s->ops->preset_list(s, rows, n, err, errlen);
}

int telex_store_preset_delete(telex_store_t *s, const char *name, char *err, size_t errlen)
{
    if (preset_name_valid(name, NULL, 0) < 0) {
        telex_store_errf(err, errlen, "no stored preset named \"%.64s\"", name ? name : "");
        return -ENOENT;
    }
    return s->ops->preset_delete(s, name, err, errlen);
}

void telex_store_preset_rows_free(telex_preset_row_t *rows, size_t n)
{
    for (size_t i = 0; rows != NULL && i < n; i++)
        free(rows[i].body);
    free(rows);
}
