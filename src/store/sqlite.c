/*
 * store/sqlite.c — store.h on SQLite: opening and checking the file,
 * migrations, keys, the ledger and usage totals.
 *
 * The schema is a list of migrations; migrations[i] takes user_version i to
 * i + 1 inside one IMMEDIATE transaction, so a crash mid-migration leaves
 * the previous version intact. application_id marks the file as telex's.
 * WAL with synchronous=NORMAL: a crash of telex loses nothing committed; a
 * power cut may lose the last transactions (the ledger flushes often).
 */
#include "store/store.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#define APPLICATION_ID 0x544c5831 /* "TLX1" */
#define BUSY_TIMEOUT_MS 5000

struct telex_store {
    sqlite3 *db;
    pthread_mutex_t lock;
    char *path;
    /* the ledger's two statements, prepared at the first batch and kept
     * (preparing them was ~110,000 instructions per batch) */
    sqlite3_stmt *ledger_insert;
    sqlite3_stmt *ledger_spend;
};

static const char *const migrations[] = {
    /* 0 -> 1: keys and the ledger */
    "CREATE TABLE keys ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL,"
    "  prefix TEXT NOT NULL,"
    "  hash BLOB NOT NULL UNIQUE,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER,"
    "  revoked_at INTEGER,"
    "  last_used_at INTEGER,"
    "  budget_usd REAL,"
    "  rpm INTEGER NOT NULL DEFAULT 0,"
    "  tpm INTEGER NOT NULL DEFAULT 0,"
    "  models TEXT NOT NULL DEFAULT '',"
    "  spent_usd REAL NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX keys_active_name ON keys(name) WHERE revoked_at IS NULL;"
    "CREATE TABLE ledger ("
    "  id INTEGER PRIMARY KEY,"
    "  ts_ms INTEGER NOT NULL,"
    "  key_id INTEGER,"
    "  model TEXT NOT NULL,"
    "  provider TEXT NOT NULL DEFAULT '',"
    "  prompt_tokens INTEGER NOT NULL,"
    "  completion_tokens INTEGER NOT NULL,"
    "  cached_tokens INTEGER NOT NULL,"
    "  reasoning_tokens INTEGER NOT NULL,"
    "  estimated INTEGER NOT NULL,"
    "  cost_usd REAL NOT NULL,"
    "  ttft_ms REAL,"
    "  duration_ms REAL NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  outcome TEXT NOT NULL);"
    "CREATE INDEX ledger_ts ON ledger(ts_ms);"
    "CREATE INDEX ledger_key_ts ON ledger(key_id, ts_ms);",
};
_Static_assert(sizeof migrations / sizeof migrations[0] == TELEX_STORE_SCHEMA_VERSION,
               "one migration per schema version");

/* ---- helpers ------------------------------------------------------------ */

static void errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int64_t telex_store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A negative errno for an SQLite result code, with a message. */
static int sql_fail(telex_store_t *s, int rc, const char *what, char *err, size_t errlen)
{
    int primary = rc & 0xff;
    const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
        errf(err, errlen, "%s: %s: the database stayed locked for %d s (another telex process is writing)",
             s->path, what, BUSY_TIMEOUT_MS / 1000);
        return -EBUSY;
    }
    if (primary == SQLITE_NOMEM) {
        errf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
        errf(err, errlen, "%s: %s: the database is corrupted (%s); restore it from a backup or move it away",
             s->path, what, msg);
        return -EIO;
    }
    if (primary == SQLITE_READONLY || primary == SQLITE_CANTOPEN || primary == SQLITE_IOERR ||
        primary == SQLITE_FULL || primary == SQLITE_PERM) {
        errf(err, errlen, "%s: %s: %s (telex must be able to write the file and its directory)", s->path, what,
             msg);
        return -EIO;
    }
    errf(err, errlen, "%s: %s: %s", s->path, what, msg);
    return -EIO;
}

static void copy_text(char *dst, size_t cap, const unsigned char *src)
{
    snprintf(dst, cap, "%s", src ? (const char *)src : "");
}

static int64_t col_i64_or0(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, i);
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
    int64_t v = sqlite3_column_int64(st, i);
    return v < 0 ? 0 : (uint64_t)v;
}

/* Runs a statement that returns one integer (a pragma); *out = that value. */
static int query_int(telex_store_t *s, const char *sql, int64_t *out, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            *out = 0;
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : sql_fail(s, rc, "reading the database", err, errlen);
}

static int exec(telex_store_t *s, const char *sql, const char *what, char *err, size_t errlen)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sql_fail(s, rc, what, err, errlen);
}

/* mkdir -p of path's parent directories (0700). */
static int make_parents(const char *path, char *err, size_t errlen)
{
    size_t len = strlen(path);
    char *dir = malloc(len + 1);
    if (dir == NULL) {
        errf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    memcpy(dir, path, len + 1);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir) {
        free(dir);
        return 0;
    }
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        struct stat st;
        if (stat(dir, &st) != 0) {
            if (errno != ENOENT || (mkdir(dir, 0700) != 0 && errno != EEXIST)) {
                int e = errno;
                errf(err, errlen, "%s: cannot create the directory %s: %s", path, dir, strerror(e));
                free(dir);
                return -e;
            }
        } else if (!S_ISDIR(st.st_mode)) {
            errf(err, errlen, "%s: %s is not a directory", path, dir);
            free(dir);
            return -ENOTDIR;
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    free(dir);
    return 0;
}

/* ---- open ------------------------------------------------------------------ */

static int check_identity(telex_store_t *s, int64_t *version, char *err, size_t errlen)
{
    int64_t app = 0, tables = 0;
    int rc;
    if ((rc = query_int(s, "PRAGMA application_id", &app, err, errlen)) < 0)
        return rc;
    if ((rc = query_int(s, "PRAGMA user_version", version, err, errlen)) < 0)
        return rc;
    if ((rc = query_int(s, "SELECT count(*) FROM sqlite_master", &tables, err, errlen)) < 0)
        return rc;
    if (app != 0 && app != APPLICATION_ID) {
        errf(err, errlen, "%s: not a telex database (application_id 0x%08llx); choose another store.path", s->path,
             (unsigned long long)(uint32_t)app);
        return -EINVAL;
    }
    if (app == 0 && tables > 0) {
        errf(err, errlen, "%s: not a telex database (it holds tables telex did not create); choose another store.path",
             s->path);
        return -EINVAL;
    }
    if (*version > TELEX_STORE_SCHEMA_VERSION) {
        errf(err, errlen,
             "%s: the database has schema version %lld, written by a newer telex (this one knows up to %d); "
             "upgrade telex",
             s->path, (long long)*version, TELEX_STORE_SCHEMA_VERSION);
        return -EINVAL;
    }
    return 0;
}

static int quick_check(telex_store_t *s, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (r == NULL || strcmp(r, "ok") != 0) {
            errf(err, errlen, "%s: the database is corrupted (%.200s); restore it from a backup or move it away",
                 s->path, r ? r : "integrity check failed");
            sqlite3_finalize(st);
            return -EIO;
        }
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : sql_fail(s, rc, "checking the database", err, errlen);
}

static int migrate(telex_store_t *s, int64_t version, char *err, size_t errlen)
{
    int rc;
    while (version < TELEX_STORE_SCHEMA_VERSION) {
        if ((rc = exec(s, "BEGIN IMMEDIATE", "starting a migration", err, errlen)) < 0)
            return rc;
        /* Another process may have migrated while we waited for the lock. */
        int64_t now_version = 0;
        if ((rc = query_int(s, "PRAGMA user_version", &now_version, err, errlen)) < 0)
            goto rollback;
        if (now_version != version) {
            exec(s, "ROLLBACK", "migration", NULL, 0);
            version = now_version;
            continue;
        }
        char what[64], sql[96];
        snprintf(what, sizeof what, "migrating the schema to version %lld", (long long)version + 1);
        if ((rc = exec(s, migrations[version], what, err, errlen)) < 0)
            goto rollback;
        snprintf(sql, sizeof sql, "PRAGMA application_id=%d; PRAGMA user_version=%lld", APPLICATION_ID,
                 (long long)version + 1);
        if ((rc = exec(s, sql, what, err, errlen)) < 0)
            goto rollback;
        if ((rc = exec(s, "COMMIT", what, err, errlen)) < 0)
            goto rollback;
        version++;
    }
    return 0;
rollback:
    exec(s, "ROLLBACK", "migration", NULL, 0);
    return rc;
}

int telex_store_open(telex_store_t **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    if (path == NULL || *path == '\0') {
        errf(err, errlen, "store: no database path");
        return -EINVAL;
    }
    int rc = make_parents(path, err, errlen);
    if (rc < 0)
        return rc;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        errf(err, errlen, "%s: is a directory; store.path must name a file", path);
        return -EISDIR;
    }
    telex_store_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->path = strdup(path)) == NULL) {
        free(s);
        errf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&s->lock, NULL);
    int src = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        rc = sql_fail(s, src, "cannot open", err, errlen);
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    if (sqlite3_db_readonly(s->db, "main") == 1) {
        errf(err, errlen, "%s: the file is read-only; telex must be able to write it", path);
        rc = -EACCES;
        goto fail;
    }
    int64_t version = 0;
    if ((rc = check_identity(s, &version, err, errlen)) < 0)
        goto fail;
    sqlite3_stmt *jm = NULL;
    src = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &jm, NULL);
    if (src == SQLITE_OK && (src = sqlite3_step(jm)) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(jm, 0);
        if (mode == NULL || strcmp(mode, "wal") != 0) {
            errf(err, errlen, "%s: cannot switch to WAL mode (journal mode stays %s); is the directory writable?",
                 path, mode ? mode : "unknown");
            sqlite3_finalize(jm);
            rc = -EIO;
            goto fail;
        }
        src = SQLITE_OK;
    }
    sqlite3_finalize(jm);
    if (src != SQLITE_OK) {
        rc = sql_fail(s, src, "enabling WAL", err, errlen);
        goto fail;
    }
    if ((rc = exec(s, "PRAGMA synchronous=NORMAL", "configuring", err, errlen)) < 0)
        goto fail;
    if (version > 0 && (rc = quick_check(s, err, errlen)) < 0)
        goto fail;
    if ((rc = migrate(s, version, err, errlen)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    telex_store_close(s);
    return rc;
}

void telex_store_close(telex_store_t *s)
{
    if (s == NULL)
        return;
    sqlite3_finalize(s->ledger_insert);
    sqlite3_finalize(s->ledger_spend);
    if (s->db != NULL)
        sqlite3_close_v2(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s->path);
    free(s);
}

const char *telex_store_path(const telex_store_t *s)
{
    return s->path;
}

/* ---- keys ------------------------------------------------------------------ */

#define KEY_COLUMNS                                                                                              \
    "id, name, prefix, hash, created_at, expires_at, revoked_at, last_used_at, budget_usd, rpm, tpm, models, "   \
    "spent_usd"

static void read_key(sqlite3_stmt *st, telex_key_row_t *k)
{
    memset(k, 0, sizeof(*k));
    k->id = sqlite3_column_int64(st, 0);
    copy_text(k->name, sizeof k->name, sqlite3_column_text(st, 1));
    copy_text(k->prefix, sizeof k->prefix, sqlite3_column_text(st, 2));
    const void *h = sqlite3_column_blob(st, 3);
    if (h != NULL && sqlite3_column_bytes(st, 3) == TELEX_KEY_HASH_LEN)
        memcpy(k->hash, h, TELEX_KEY_HASH_LEN);
    k->created_at = col_i64_or0(st, 4);
    k->expires_at = col_i64_or0(st, 5);
    k->revoked_at = col_i64_or0(st, 6);
    k->last_used_at = col_i64_or0(st, 7);
    k->budget_usd = sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 : sqlite3_column_double(st, 8);
    k->rpm = sqlite3_column_int64(st, 9);
    k->tpm = sqlite3_column_int64(st, 10);
    copy_text(k->models, sizeof k->models, sqlite3_column_text(st, 11));
    k->spent_usd = sqlite3_column_double(st, 12);
}

static void bind_opt_i64(sqlite3_stmt *st, int i, int64_t v)
{
    if (v == 0)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, v);
}

static void bind_budget(sqlite3_stmt *st, int i, double v)
{
    if (v < 0)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_double(st, i, v);
}

static int key_fields_valid(const telex_key_row_t *k, unsigned set, char *err, size_t errlen)
{
    if ((set & TELEX_KEY_SET_NAME) && (k->name[0] == '\0' || strlen(k->name) > TELEX_KEY_NAME_MAX)) {
        errf(err, errlen, "a key name must be 1 to %d bytes", TELEX_KEY_NAME_MAX);
        return -EINVAL;
    }
    if ((set & TELEX_KEY_SET_RPM) && k->rpm < 0) {
        errf(err, errlen, "rpm must be 0 (unlimited) or more");
        return -EINVAL;
    }
    if ((set & TELEX_KEY_SET_TPM) && k->tpm < 0) {
        errf(err, errlen, "tpm must be 0 (unlimited) or more");
        return -EINVAL;
    }
    return 0;
}

int telex_store_key_insert(telex_store_t *s, telex_key_row_t *k, char *err, size_t errlen)
{
    int rc = key_fields_valid(k, TELEX_KEY_SET_NAME | TELEX_KEY_SET_RPM | TELEX_KEY_SET_TPM, err, errlen);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(s->db,
                                 "INSERT INTO keys (name, prefix, hash, created_at, expires_at, budget_usd, rpm, tpm, "
                                 "models) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_text(st, 1, k->name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, k->prefix, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 3, k->hash, TELEX_KEY_HASH_LEN, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 4, k->created_at);
        bind_opt_i64(st, 5, k->expires_at);
        bind_budget(st, 6, k->budget_usd);
        sqlite3_bind_int64(st, 7, k->rpm);
        sqlite3_bind_int64(st, 8, k->tpm);
        sqlite3_bind_text(st, 9, k->models, -1, SQLITE_TRANSIENT);
        src = sqlite3_step(st);
    }
    if (src == SQLITE_DONE) {
        k->id = sqlite3_last_insert_rowid(s->db);
        k->revoked_at = k->last_used_at = 0;
        k->spent_usd = 0;
        rc = 0;
    } else if (src == SQLITE_CONSTRAINT_UNIQUE && strstr(sqlite3_errmsg(s->db), "keys.name") != NULL) {
        errf(err, errlen, "an active key is already named \"%s\"", k->name);
        rc = -EEXIST;
    } else {
        rc = sql_fail(s, src, "creating a key", err, errlen);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Runs a key SELECT with one bound value (int64 id or text); first row. */
static int key_select(telex_store_t *s, const char *sql, int64_t id, const char *text, telex_key_row_t *out,
                      char *err, size_t errlen)
{
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = NULL;
    int rc, src = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (src == SQLITE_OK) {
        if (text != NULL)
            sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
        else
            sqlite3_bind_int64(st, 1, id);
        src = sqlite3_step(st);
    }
    if (src == SQLITE_ROW) {
        read_key(st, out);
        rc = 0;
    } else if (src == SQLITE_DONE) {
        if (text != NULL)
            errf(err, errlen, "no key named \"%.64s\"", text);
        else
            errf(err, errlen, "no key with id %lld", (long long)id);
        rc = -ENOENT;
    } else {
        rc = sql_fail(s, src, "reading keys", err, errlen);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int telex_store_key_get(telex_store_t *s, int64_t id, telex_key_row_t *out, char *err, size_t errlen)
{
    return key_select(s, "SELECT " KEY_COLUMNS " FROM keys WHERE id = ?", id, NULL, out, err, errlen);
}

int telex_store_key_find(telex_store_t *s, const char *id_or_name, telex_key_row_t *out, char *err,
                         size_t errlen)
{
    const char *p = id_or_name;
    if (*p >= '1' && *p <= '9' && strspn(p, "0123456789") == strlen(p) && strlen(p) <= 18)
        return telex_store_key_get(s, strtoll(p, NULL, 10), out, err, errlen);
    if (strlen(p) > TELEX_KEY_NAME_MAX) {
        errf(err, errlen, "no key named \"%.64s...\"", p);
        return -ENOENT;
    }
    return key_select(s,
                      "SELECT " KEY_COLUMNS " FROM keys WHERE name = ? "
                      "ORDER BY revoked_at IS NOT NULL, id DESC LIMIT 1",
                      0, p, out, err, errlen);
}

int telex_store_key_list(telex_store_t *s, telex_key_row_t **rows, size_t *n, char *err, size_t errlen)
{
    *rows = NULL;
    *n = 0;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc = 0, src = sqlite3_prepare_v2(s->db, "SELECT " KEY_COLUMNS " FROM keys ORDER BY id", -1, &st, NULL);
    while (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            telex_key_row_t *grown = realloc(*rows, ncap * sizeof(**rows));
            if (grown == NULL) {
                errf(err, errlen, "out of memory");
                rc = -ENOMEM;
                break;
            }
            *rows = grown;
            cap = ncap;
        }
        read_key(st, &(*rows)[(*n)++]);
        src = SQLITE_OK;
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = sql_fail(s, src, "listing keys", err, errlen);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    if (rc < 0) {
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
    return rc;
}

int telex_store_key_update(telex_store_t *s, int64_t id, unsigned set, const telex_key_row_t *v, char *err,
                           size_t errlen)
{
    int rc = key_fields_valid(v, set, err, errlen);
    if (rc < 0)
        return rc;
    /* A fixed statement: each column is either rebound or kept. */
    static const char sql[] = "UPDATE keys SET "
                              "name = CASE WHEN ?1 THEN ?2 ELSE name END, "
                              "budget_usd = CASE WHEN ?3 THEN ?4 ELSE budget_usd END, "
                              "rpm = CASE WHEN ?5 THEN ?6 ELSE rpm END, "
                              "tpm = CASE WHEN ?7 THEN ?8 ELSE tpm END, "
                              "models = CASE WHEN ?9 THEN ?10 ELSE models END, "
                              "expires_at = CASE WHEN ?11 THEN ?12 ELSE expires_at END "
                              "WHERE id = ?13";
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_int(st, 1, (set & TELEX_KEY_SET_NAME) != 0);
        sqlite3_bind_text(st, 2, v->name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 3, (set & TELEX_KEY_SET_BUDGET) != 0);
        bind_budget(st, 4, v->budget_usd);
        sqlite3_bind_int(st, 5, (set & TELEX_KEY_SET_RPM) != 0);
        sqlite3_bind_int64(st, 6, v->rpm);
        sqlite3_bind_int(st, 7, (set & TELEX_KEY_SET_TPM) != 0);
        sqlite3_bind_int64(st, 8, v->tpm);
        sqlite3_bind_int(st, 9, (set & TELEX_KEY_SET_MODELS) != 0);
        sqlite3_bind_text(st, 10, v->models, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 11, (set & TELEX_KEY_SET_EXPIRES) != 0);
        bind_opt_i64(st, 12, v->expires_at);
        sqlite3_bind_int64(st, 13, id);
        src = sqlite3_step(st);
    }
    if (src == SQLITE_DONE) {
        if (sqlite3_changes(s->db) == 0) {
            errf(err, errlen, "no key with id %lld", (long long)id);
            rc = -ENOENT;
        }
    } else if (src == SQLITE_CONSTRAINT_UNIQUE) {
        errf(err, errlen, "an active key is already named \"%s\"", v->name);
        rc = -EEXIST;
    } else {
        rc = sql_fail(s, src, "updating a key", err, errlen);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int telex_store_key_revoke(telex_store_t *s, int64_t id, int64_t now, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = NULL;
    int rc = 0, src = sqlite3_prepare_v2(s->db, "UPDATE keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
                                         -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_int64(st, 2, id);
        src = sqlite3_step(st);
    }
    if (src == SQLITE_DONE) {
        if (sqlite3_changes(s->db) == 0) {
            errf(err, errlen, "no key with id %lld", (long long)id);
            rc = -ENOENT;
        }
    } else {
        rc = sql_fail(s, src, "revoking a key", err, errlen);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int telex_store_key_count_active(telex_store_t *s, size_t *n, char *err, size_t errlen)
{
    int64_t v = 0;
    pthread_mutex_lock(&s->lock);
    int rc = query_int(s, "SELECT count(*) FROM keys WHERE revoked_at IS NULL", &v, err, errlen);
    pthread_mutex_unlock(&s->lock);
    *n = rc == 0 && v > 0 ? (size_t)v : 0;
    return rc;
}

int telex_store_data_version(telex_store_t *s, int64_t *out, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->lock);
    int rc = query_int(s, "PRAGMA data_version", out, err, errlen);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---- ledger ------------------------------------------------------------------ */

static int64_t clamp_i64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

int telex_store_ledger_append(telex_store_t *s, const telex_usage_record_t *rows, size_t n, char *err,
                              size_t errlen)
{
    if (n == 0)
        return 0;
    pthread_mutex_lock(&s->lock);
    int rc = exec(s, "BEGIN IMMEDIATE", "writing the ledger", err, errlen);
    if (rc < 0)
        goto out;
    int src = SQLITE_OK;
    if (s->ledger_insert == NULL)
        src = sqlite3_prepare_v3(s->db,
                                 "INSERT INTO ledger (ts_ms, key_id, model, provider, prompt_tokens, "
                                 "completion_tokens, cached_tokens, reasoning_tokens, estimated, cost_usd, ttft_ms, "
                                 "duration_ms, status, outcome) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                 -1, SQLITE_PREPARE_PERSISTENT, &s->ledger_insert, NULL);
    if (src == SQLITE_OK && s->ledger_spend == NULL)
        src = sqlite3_prepare_v3(s->db,
                                 "UPDATE keys SET spent_usd = spent_usd + ?, "
                                 "last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?",
                                 -1, SQLITE_PREPARE_PERSISTENT, &s->ledger_spend, NULL);
    sqlite3_stmt *ins = s->ledger_insert, *upd = s->ledger_spend;
    int64_t now = telex_store_now_ms();
    for (size_t i = 0; i < n && src == SQLITE_OK; i++) {
        const telex_usage_record_t *r = &rows[i];
        int64_t ts = r->ts_ms > 0 ? r->ts_ms : now;
        sqlite3_reset(ins);
        sqlite3_bind_int64(ins, 1, ts);
        bind_opt_i64(ins, 2, r->key_id);
        sqlite3_bind_text(ins, 3, r->model, (int)strnlen(r->model, sizeof r->model), SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 4, r->provider, (int)strnlen(r->provider, sizeof r->provider), SQLITE_TRANSIENT);
        sqlite3_bind_int64(ins, 5, clamp_i64(r->prompt_tokens));
        sqlite3_bind_int64(ins, 6, clamp_i64(r->completion_tokens));
        sqlite3_bind_int64(ins, 7, clamp_i64(r->cached_tokens));
        sqlite3_bind_int64(ins, 8, clamp_i64(r->reasoning_tokens));
        sqlite3_bind_int(ins, 9, r->estimated ? 1 : 0);
        sqlite3_bind_double(ins, 10, r->cost_usd >= 0 ? r->cost_usd : 0);
        if (r->ttft_ms >= 0)
            sqlite3_bind_double(ins, 11, r->ttft_ms);
        else
            sqlite3_bind_null(ins, 11);
        sqlite3_bind_double(ins, 12, r->duration_ms >= 0 ? r->duration_ms : 0);
        sqlite3_bind_int(ins, 13, r->status);
        sqlite3_bind_text(ins, 14, r->outcome, (int)strnlen(r->outcome, sizeof r->outcome), SQLITE_TRANSIENT);
        if ((src = sqlite3_step(ins)) != SQLITE_DONE)
            break;
        src = SQLITE_OK;
        if (r->key_id > 0) {
            sqlite3_reset(upd);
            sqlite3_bind_double(upd, 1, r->cost_usd >= 0 ? r->cost_usd : 0);
            sqlite3_bind_int64(upd, 2, ts / 1000);
            sqlite3_bind_int64(upd, 3, r->key_id);
            if ((src = sqlite3_step(upd)) != SQLITE_DONE)
                break;
            src = SQLITE_OK;
        }
    }
    if (src == SQLITE_OK) {
        sqlite3_reset(ins); /* kept statements: none may hold the transaction open */
        sqlite3_reset(upd);
        src = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    }
    if (src != SQLITE_OK) {
        rc = sql_fail(s, src, "writing the ledger", err, errlen);
        sqlite3_reset(ins);
        sqlite3_reset(upd);
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int telex_store_usage(telex_store_t *s, const telex_usage_query_t *q, telex_usage_row_t **rows, size_t *n,
                      int *truncated, char *err, size_t errlen)
{
    static const char *const group_cols[] = {
        [TELEX_USAGE_GROUP_NONE] = "NULL",
        [TELEX_USAGE_GROUP_KEY] = "l.key_id",
        [TELEX_USAGE_GROUP_MODEL] = "l.model",
        [TELEX_USAGE_GROUP_DAY] = "strftime('%Y-%m-%d', l.ts_ms / 1000, 'unixepoch')",
    };
    *rows = NULL;
    *n = 0;
    *truncated = 0;
    if ((unsigned)q->group > TELEX_USAGE_GROUP_DAY) {
        errf(err, errlen, "unknown grouping");
        return -EINVAL;
    }
    const char *g = group_cols[q->group];
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT %s AS g, count(*), sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens), "
             "sum(reasoning_tokens), sum(estimated), sum(outcome <> 'ok'), total(cost_usd), "
             "(SELECT name FROM keys k WHERE k.id = l.key_id) "
             "FROM ledger l WHERE l.ts_ms >= ?1 AND l.ts_ms < ?2 "
             "AND (?3 < 0 OR (?3 = 0 AND l.key_id IS NULL) OR l.key_id = ?3) "
             "GROUP BY g ORDER BY g LIMIT %d",
             g, TELEX_USAGE_MAX_ROWS + 1);
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc = 0, src = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, q->from_ms);
        sqlite3_bind_int64(st, 2, q->to_ms);
        sqlite3_bind_int64(st, 3, q->key_id);
    }
    while (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        src = SQLITE_OK;
        if (sqlite3_column_int64(st, 1) == 0)
            continue; /* the totals row of an empty range */
        if (*n == TELEX_USAGE_MAX_ROWS) {
            *truncated = 1;
            break;
        }
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            telex_usage_row_t *grown = realloc(*rows, ncap * sizeof(**rows));
            if (grown == NULL) {
                errf(err, errlen, "out of memory");
                rc = -ENOMEM;
                break;
            }
            *rows = grown;
            cap = ncap;
        }
        telex_usage_row_t *r = &(*rows)[(*n)++];
        memset(r, 0, sizeof(*r));
        switch (q->group) {
        case TELEX_USAGE_GROUP_KEY:
            r->key_id = col_i64_or0(st, 0);
            copy_text(r->key_name, sizeof r->key_name, sqlite3_column_text(st, 9));
            break;
        case TELEX_USAGE_GROUP_MODEL:
            copy_text(r->model, sizeof r->model, sqlite3_column_text(st, 0));
            break;
        case TELEX_USAGE_GROUP_DAY:
            copy_text(r->day, sizeof r->day, sqlite3_column_text(st, 0));
            break;
        default:
            break;
        }
        r->requests = col_u64(st, 1);
        r->prompt_tokens = col_u64(st, 2);
        r->completion_tokens = col_u64(st, 3);
        r->cached_tokens = col_u64(st, 4);
        r->reasoning_tokens = col_u64(st, 5);
        r->estimated_requests = col_u64(st, 6);
        r->failed_requests = col_u64(st, 7);
        r->cost_usd = sqlite3_column_double(st, 8);
    }
    if (rc == 0 && src != SQLITE_DONE && src != SQLITE_OK)
        rc = sql_fail(s, src, "reading the ledger", err, errlen);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    if (rc < 0) {
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
    return rc;
}
