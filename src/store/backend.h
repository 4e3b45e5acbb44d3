/*
 * store/backend.h — the contract between store.c (the public store.h API)
 * and one database backend (sqlite.c, postgres.c). Private to src/store/.
 *
 * A backend's open function allocates its own struct whose first member is
 * `struct telex_store`, fills in ops and path (malloc'ed; store.c frees it
 * after ops->close), and returns 0 or a negative errno with one line in
 * err. Each op has the meaning and errors of the store.h function of the
 * same name; store.c checks arguments common to every backend (key fields,
 * id-or-name parsing) before calling. Ops may be called from any thread; a
 * backend serialises its own connections.
 */
#ifndef TELEX_STORE_BACKEND_H
#define TELEX_STORE_BACKEND_H

#include "store/store.h"

typedef struct telex_store_ops {
    const char *name; /* "sqlite", "postgresql" */
    void (*close)(telex_store_t *s);
    int (*key_insert)(telex_store_t *s, telex_key_row_t *row, char *err, size_t errlen);
    int (*key_get)(telex_store_t *s, int64_t id, telex_key_row_t *out, char *err, size_t errlen);
    /* the active key of that name, else the newest of that name */
    int (*key_find_name)(telex_store_t *s, const char *name, telex_key_row_t *out, char *err, size_t errlen);
    int (*key_list)(telex_store_t *s, telex_key_row_t **rows, size_t *n, char *err, size_t errlen);
    int (*key_update)(telex_store_t *s, int64_t id, unsigned set, const telex_key_row_t *values, char *err,
                      size_t errlen);
    int (*key_revoke)(telex_store_t *s, int64_t id, int64_t now, char *err, size_t errlen);
    int (*key_count_active)(telex_store_t *s, size_t *n, char *err, size_t errlen);
    int (*data_version)(telex_store_t *s, int64_t *out, char *err, size_t errlen);
    int (*ledger_append)(telex_store_t *s, const telex_usage_record_t *rows, size_t n, char *err, size_t errlen);
    int (*usage)(telex_store_t *s, const telex_usage_query_t *q, telex_usage_row_t **rows, size_t *n,
                 int *truncated, char *err, size_t errlen);
    int (*preset_put)(telex_store_t *s, const char *name, const char *body, int create, char *err,
                      size_t errlen);
    int (*preset_get)(telex_store_t *s, const char *name, telex_preset_row_t *out, char *err, size_t errlen);
    int (*preset_list)(telex_store_t *s, telex_preset_row_t **rows, size_t *n, char *err, size_t errlen);
    int (*preset_delete)(telex_store_t *s, const char *name, char *err, size_t errlen);
} telex_store_ops_t;

struct telex_store {
    const telex_store_ops_t *ops;
    char *path; /* what messages name: the file, or the URL without its password */
};

int telex_store_sqlite_open(telex_store_t **out, const char *path, char *err, size_t errlen);
int telex_store_postgres_open(telex_store_t **out, const char *url, char *err, size_t errlen);

/* One line into err (NULL or 0 bytes: nothing). */
void telex_store_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Clamps a token count to what a ledger row may hold (TELEX_USAGE_TOKENS_MAX). */
int64_t telex_store_tokens(uint64_t v);

#endif
