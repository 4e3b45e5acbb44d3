/*
 * store/store.h — telex's persistent state: API keys, stored presets and
 * the usage ledger, in one SQLite file (one node) or in a PostgreSQL
 * database (several nodes share it).
 *
 * The backend is chosen by what telex_store_open is given: a
 * `postgresql://` or `postgres://` URL is PostgreSQL (store/postgres.c),
 * anything else is a file path for SQLite (store/sqlite.c). Both behave the
 * same through this API, with the same messages.
 *
 * For SQLite, telex_store_open creates the file (and missing parent directories, 0700)
 * on first use, switches it to WAL, checks it (a file that is not SQLite, a
 * corrupted one, another program's database, one written by a newer telex,
 * or one telex cannot write all fail here with one clear line) and brings
 * the schema up to date with versioned migrations (PRAGMA user_version,
 * application_id "TLX1"). A zero-length file is refused (it is not a
 * database telex made; an empty file where one was expected means it was
 * truncated). For PostgreSQL it connects (connect_timeout 5 s unless the
 * URL says otherwise; statement_timeout 30 s), and applies the same
 * versioned migrations (table telex_schema), refusing a schema newer than
 * this binary.
 *
 * One connection per telex_store_t, guarded by an internal mutex: every
 * function may be called from any thread, but each runs SQL and may wait on
 * the disk — never call one on an event loop thread. The ledger writer
 * (store/ledger.h) owns the hot path; key management and usage queries run
 * on worker threads of the libuv pool or in the CLI. Other processes (the
 * `telex keys` CLI next to a running `telex serve`) share the file through
 * SQLite's locking; SQLITE_BUSY is waited out for up to 5 s.
 *
 * Errors: functions return 0 or a negative errno and write one line to
 * err/errlen: -ENOENT (no such key), -EEXIST (an active key has that name),
 * -EBUSY (the database stayed locked), -EIO (anything else the database
 * said, or PostgreSQL cannot be reached),
 * -EINVAL (bad argument), -ENOMEM. Messages name the file (or the URL
 * without its password), never a key.
 */
#ifndef TELEX_STORE_STORE_H
#define TELEX_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct telex_store telex_store_t;

#define TELEX_STORE_SCHEMA_VERSION 3 /* 1: keys, ledger; 2: presets; 3: keys.max_concurrent */
#define TELEX_KEY_NAME_MAX 64      /* bytes of a key's name */
#define TELEX_KEY_MODELS_MAX 1024  /* bytes of a key's model allow-list */
#define TELEX_KEY_PREFIX_LEN 12    /* "tlx_" + 8 characters, shown in listings */
#define TELEX_KEY_HASH_LEN 32      /* SHA-256 */

typedef struct telex_key_row {
    int64_t id;                               /* > 0, never reused */
    char name[TELEX_KEY_NAME_MAX + 1];        /* unique among active keys */
    char prefix[TELEX_KEY_PREFIX_LEN + 1];    /* the key's first characters */
    uint8_t hash[TELEX_KEY_HASH_LEN];         /* SHA-256 of the whole key */
    int64_t created_at;                       /* unix seconds */
    int64_t expires_at;                       /* unix seconds; 0 = never */
    int64_t revoked_at;                       /* unix seconds; 0 = active */
    int64_t last_used_at;                     /* unix seconds; 0 = never */
    double budget_usd;                        /* < 0 = no budget */
    int64_t rpm;                              /* requests per minute; 0 = unlimited */
    int64_t tpm;                              /* tokens per minute; 0 = unlimited */
    int64_t max_concurrent;                   /* requests running at once; 0 = unlimited */
    char models[TELEX_KEY_MODELS_MAX + 1];    /* "a,b,gpt-4o*"; "" = every model */
    double spent_usd;                         /* lifetime spend (ledger rows written) */
} telex_key_row_t;

/* Which fields telex_store_key_update changes. */
enum {
    TELEX_KEY_SET_NAME = 1 << 0,
    TELEX_KEY_SET_BUDGET = 1 << 1,
    TELEX_KEY_SET_RPM = 1 << 2,
    TELEX_KEY_SET_TPM = 1 << 3,
    TELEX_KEY_SET_MODELS = 1 << 4,
    TELEX_KEY_SET_EXPIRES = 1 << 5,
    TELEX_KEY_SET_MAX_CONCURRENT = 1 << 6,
};

/* One ledger row: one request that passed admission. */
typedef struct telex_usage_record {
    int64_t ts_ms;              /* when the request ended, unix ms; 0 = now */
    int64_t key_id;             /* 0 = anonymous */
    char model[128];            /* the model asked for (after preset expansion) */
    char provider[64];          /* "" when no provider was reached */
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
    uint64_t cached_tokens;     /* part of prompt_tokens served from cache */
    uint64_t reasoning_tokens;  /* part of completion_tokens */
    int estimated;              /* 1: telex's estimate (the provider sent no usage) */
    double cost_usd;
    double ttft_ms;             /* time to first token; < 0 = none */
    double duration_ms;
    int status;                 /* HTTP status of the response */
    char outcome[24];           /* "ok", "upstream_error", "client_gone", ... */
} telex_usage_record_t;

typedef enum telex_usage_group {
    TELEX_USAGE_GROUP_NONE = 0, /* one row: the totals */
    TELEX_USAGE_GROUP_KEY,
    TELEX_USAGE_GROUP_MODEL,
    TELEX_USAGE_GROUP_DAY,      /* UTC days */
} telex_usage_group_t;

typedef struct telex_usage_query {
    int64_t from_ms;            /* inclusive, unix ms */
    int64_t to_ms;              /* exclusive, unix ms */
    telex_usage_group_t group;
    int64_t key_id;             /* < 0: every key; 0: anonymous only; > 0: that key */
} telex_usage_query_t;

#define TELEX_USAGE_MAX_ROWS 10000 /* more groups than this: truncated */

/* The most tokens one ledger row may hold in a count (one answer): larger
 * (absurd) provider reports are clamped to this before they are stored, and
 * usage totals count at most this per row, so sums cannot overflow. */
#define TELEX_USAGE_TOKENS_MAX 1000000000ULL

typedef struct telex_usage_row {
    /* the group: */
    int64_t key_id;             /* GROUP_KEY: 0 = anonymous */
    char key_name[TELEX_KEY_NAME_MAX + 1]; /* GROUP_KEY: "" for anonymous or a deleted key */
    char model[128];            /* GROUP_MODEL */
    char day[11];               /* GROUP_DAY: "YYYY-MM-DD" */
    /* the totals: */
    uint64_t requests;
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
    uint64_t cached_tokens;
    uint64_t reasoning_tokens;
    uint64_t estimated_requests; /* requests whose tokens are estimates */
    uint64_t failed_requests;    /* outcome other than "ok" */
    double cost_usd;
} telex_usage_row_t;

/* Opens (creating if needed) and checks the database at path; see the top
 * comment. *out is NULL on failure. */
int telex_store_open(telex_store_t **out, const char *path, char *err, size_t errlen);
/* Closes the connection (checkpointing the WAL). NULL is a no-op. */
void telex_store_close(telex_store_t *store);
const char *telex_store_path(const telex_store_t *store);

/* Inserts a key: row->name, prefix, hash, created_at, expires_at,
 * budget_usd, rpm, tpm, max_concurrent and models are used; on success row->id is set. */
int telex_store_key_insert(telex_store_t *store, telex_key_row_t *row, char *err, size_t errlen);
/* The key with this id (active or not). -ENOENT if none. */
int telex_store_key_get(telex_store_t *store, int64_t id, telex_key_row_t *out, char *err, size_t errlen);
/* "12" (an id) or a name: the active key of that name, else the most
 * recently created key of that name. -ENOENT if none. */
int telex_store_key_find(telex_store_t *store, const char *id_or_name, telex_key_row_t *out, char *err,
                         size_t errlen);
/* Every key, by id. *rows is malloc'ed (free it); NULL when there are none. */
int telex_store_key_list(telex_store_t *store, telex_key_row_t **rows, size_t *n, char *err, size_t errlen);
/* Changes the fields named in `set` (TELEX_KEY_SET_*) to those of `values`. */
int telex_store_key_update(telex_store_t *store, int64_t id, unsigned set, const telex_key_row_t *values,
                           char *err, size_t errlen);
/* Revokes a key at time `now` (unix seconds). Revoking a revoked key keeps
 * the first time and returns 0. -ENOENT if none. */
int telex_store_key_revoke(telex_store_t *store, int64_t id, int64_t now, char *err, size_t errlen);
/* Number of keys not revoked. */
int telex_store_key_count_active(telex_store_t *store, size_t *n, char *err, size_t errlen);

/* Changes whenever another connection (another process, another node)
 * changed keys or presets (SQLite: PRAGMA data_version, any commit;
 * PostgreSQL: a NOTIFY sent by the keys/presets triggers). Cheap: poll it. */
int telex_store_data_version(telex_store_t *store, int64_t *out, char *err, size_t errlen);

/* Appends n ledger rows in one transaction, adding each row's cost to its
 * key's spent_usd and setting last_used_at. All or nothing. */
int telex_store_ledger_append(telex_store_t *store, const telex_usage_record_t *rows, size_t n, char *err,
                              size_t errlen);
/* Totals per group, ordered by the group (key id, model name, day). *rows
 * is malloc'ed (free it), *n may be 0; *truncated is set when more than
 * TELEX_USAGE_MAX_ROWS groups exist. */
int telex_store_usage(telex_store_t *store, const telex_usage_query_t *q, telex_usage_row_t **rows, size_t *n,
                      int *truncated, char *err, size_t errlen);

/* ---- presets (the admin API's /admin/presets, `telex presets`) ---------- */

#define TELEX_PRESET_NAME_MAX 64
#define TELEX_PRESET_BODY_MAX 65536 /* bytes of a preset's JSON text */

typedef struct telex_preset_row {
    char name[TELEX_PRESET_NAME_MAX + 1];
    char *body;                 /* a JSON object, as in telex.yaml; malloc'ed */
    int64_t created_at;         /* unix seconds */
    int64_t updated_at;
} telex_preset_row_t;

/* Stores body (JSON text) under name. create: -EEXIST if one exists;
 * otherwise (replace) -ENOENT if none does. */
int telex_store_preset_put(telex_store_t *store, const char *name, const char *body, int create, char *err,
                           size_t errlen);
/* out->body is malloc'ed (telex_store_preset_rows_free(out, 1) or free it). */
int telex_store_preset_get(telex_store_t *store, const char *name, telex_preset_row_t *out, char *err,
                           size_t errlen);
/* Every stored preset, by name; *rows NULL when there are none. */
int telex_store_preset_list(telex_store_t *store, telex_preset_row_t **rows, size_t *n, char *err, size_t errlen);
int telex_store_preset_delete(telex_store_t *store, const char *name, char *err, size_t errlen);
/* Frees the bodies and the array. */
void telex_store_preset_rows_free(telex_preset_row_t *rows, size_t n);

/* "sqlite" or "postgresql". */
const char *telex_store_backend(const telex_store_t *store);
/* 1 if path is a PostgreSQL URL. */
int telex_store_is_url(const char *path);
/* Where the ledger spills rows when store.spill_path is not set: the
 * SQLite file's path + ".spill", or for PostgreSQL
 * $XDG_STATE_HOME/telex/ledger.spill (else ~/.local/state/telex/...).
 * Returns 0 or -ENAMETOOLONG. */
int telex_store_default_spill_path(const char *db_path, char *out, size_t cap);

/* Milliseconds since the epoch (CLOCK_REALTIME). */
int64_t telex_store_now_ms(void);

#endif
