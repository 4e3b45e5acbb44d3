/*
 * store/sqlite.c — the SQLite backend (backend.h): opening and checking
 * the file, migrations, keys, presets, the ledger and usage totals.
 *
 * The schema is a list of migrations; migrations[i] takes user_version i to
 * i + 1 inside one IMMEDIATE transaction, so a crash mid-migration leaves
 * the previous version intact. application_id marks the file as telex's.
 * WAL with synchronous=NORMAL: a crash of telex loses nothing committed; a
 * power cut may lose the last transactions (the ledger flushes often).
 */
#include "store/backend.h"
#include "util/alloc.h"

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

typedef struct sq_store {
    struct telex_store base; /* first: a telex_store_t * is a sq_store_t * */
    sqlite3 *db;
    pthread_mutex_t lock;
    const char *path; /* base.path */
    /* the ledger's two statements, prepared at the first batch and kept
     * (preparing them was ~110,000 instructions per batch) */
    sqlite3_stmt *ledger_insert;
    sqlite3_stmt *ledger_spend;
} sq_store_t;

#define SQ(s) ((sq_store_t *)(s))

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
    /* 1 -> 2: presets stored through the admin API / `telex presets` */
    "CREATE TABLE presets ("
    "  name TEXT PRIMARY KEY,"
    "  body TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);",
    /* 2 -> 3: how many requests a key may have running at once (0 = unlimited) */
    "ALTER TABLE keys ADD COLUMN max_concurrent INTEGER NOT NULL DEFAULT 0;",
};
_Static_assert(sizeof migrations / sizeof migrations[0] == TELEX_STORE_SCHEMA_VERSION,
               "one migration per schema version");

/* ---- helpers ------------------------------------------------------------ */

#define errf telex_store_errf

/* A negative errno for an SQLite result code, with a message. */
static int sql_fail(sq_store_t *s, int rc, const char *what, char *err, size_t errlen)
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
    if (primary == SQLITE_ERROR && strncmp(msg, "no such table", 13) == 0) {
        errf(err, errlen,
             "%s: %s: %s: the database was changed outside telex (a table was renamed or dropped); restore it "
             "from a backup",
             s->path, what, msg);
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
static int query_int(sq_store_t *s, const char *sql, int64_t *out, char *err, size_t errlen)
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

static int exec(sq_store_t *s, const char *sql, const char *what, char *err, size_t errlen)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sql_fail(s, rc, what, err, errlen);
}

/* mkdir -p of path's parent directories (0700). */
static int make_parents(const char *path, char *err, size_t errlen)
{
    size_t len = strlen(path);
    char *dir = telex_xmalloc(len + 1);
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

static int check_identity(sq_store_t *s, int64_t *version, char *err, size_t errlen)
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

static int quick_check(sq_store_t *s, char *err, size_t errlen)
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

/* Every table the schema version promises is there (someone may have renamed
 * or dropped one with the sqlite3 shell). */
static int check_tables(sq_store_t *s, int64_t version, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        int64_t since;
    } tables[] = {{"keys", 1}, {"ledger", 1}, {"presets", 2}};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        if (version < tables[i].since)
            continue;
        char sql[128];
        int64_t n = 0;
        snprintf(sql, sizeof sql, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '%s'",
                 tables[i].name);
        int rc = query_int(s, sql, &n, err, errlen);
        if (rc < 0)
            return rc;
        if (n == 0) {
            errf(err, errlen,
                 "%s: the table \"%s\" is missing (schema version %lld has it): the database was changed outside "
                 "telex; restore it from a backup",
                 s->path, tables[i].name, (long long)version);
            return -EIO;
        }
    }
    return 0;
}

static int migrate(sq_store_t *s, int64_t version, char *err, size_t errlen)
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

static void sq_close(telex_store_t *base);
static const telex_store_ops_t sq_ops;

int telex_store_sqlite_open(telex_store_t **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    int rc = make_parents(path, err, errlen);
    if (rc < 0)
        return rc;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        errf(err, errlen, "%s: is a directory; store.path must name a file", path);
        return -EISDIR;
    }
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0) {
        /* SQLite would take it for a new database: an open gateway with no
         * keys. A database that became empty was truncated or replaced. */
        errf(err, errlen,
             "%s: the file is empty (0 bytes), not a telex database; restore it from a backup, or remove it to "
             "start a new database",
             path);
        return -EINVAL;
    }
    sq_store_t *s = telex_xcalloc(1, sizeof(*s));
    s->base.path = telex_xstrdup(path);
    s->base.ops = &sq_ops;
    s->path = s->base.path;
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
    if (version > 0 && ((rc = quick_check(s, err, errlen)) < 0 || (rc = check_tables(s, version, err, errlen)) < 0))
        goto fail;
    if ((rc = migrate(s, version, err, errlen)) < 0)
        goto fail;
    *out = &s->base;
    return 0;
fail:
    telex_store_close(&s->base);
    return rc;
}

static void sq_close(telex_store_t *base)
{
    sq_store_t *s = SQ(base);
    sqlite3_finalize(s->ledger_insert);
    sqlite3_finalize(s->ledger_spend);
    if (s->db != NULL)
        sqlite3_close_v2(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ---- keys ------------------------------------------------------------------ */

#define KEY_COLUMNS                                                                                              \
    "id, name, prefix, hash, created_at, expires_at, revoked_at, last_used_at, budget_usd, rpm, tpm, models, "   \
    "spent_usd, max_concurrent"

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
    k->max_concurrent = sqlite3_column_int64(st, 13);
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

static int sq_key_insert(telex_store_t *base, telex_key_row_t *k, char *err, size_t errlen)
{
    sq_store_t *s = SQ(base);
    int rc;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(s->db,
                                 "INSERT INTO keys (name, prefix, hash, created_at, expires_at, budget_usd, rpm, tpm, "
                                 "models, max_concurrent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        sqlite3_bind_int64(st, 10, k->max_concurrent);
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
static int key_select(sq_store_t *s, const char *sql, int64_t id, const char *text, telex_key_row_t *out,
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

static int sq_key_get(telex_store_t *base, int64_t id, telex_key_row_t *out, char *err, size_t errlen)
{
    sq_store_t *s = SQ(base);
    return key_select(s, "SELECT " KEY_COLUMNS " FROM keys WHERE id = ?", id, NULL, out, err, errlen);
}

static int sq_key_find_name(telex_store_t *base, const char *p, telex_key_row_t *out, char *err,
                            size_t errlen)
{
    sq_store_t *s = SQ(base);
    return key_select(s,
                      "SELECT " KEY_COLUMNS " FROM keys WHERE name = ? "
                      "ORDER BY revoked_at IS NOT NULL, id DESC LIMIT 1",
                      0, p, out, err, errlen);
}

static int sq_key_list(telex_store_t *base, telex_key_row_t **rows, size_t *n, char *err, size_t errlen)
{
    sq_store_t *s = SQ(base);
    *rows = NULL;
    *n = 0;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc = 0, src = sqlite3_prepare_v2(s->db, "SELECT " KEY_COLUMNS " FROM keys ORDER BY id", -1, &st, NULL);
    while (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            *rows = telex_xrealloc(*rows, ncap * sizeof(**rows));
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

static int sq_key_update(telex_store_t *base, int64_t id, unsigned set, const telex_key_row_t *v, char *err,
                           size_t errlen)
{
    sq_store_t *s = SQ(base);
    int rc = 0;
    /* A fixed statement: each column is either rebound or kept. */
    static const char sql[] = "UPDATE keys SET "
                              "name = CASE WHEN ?1 THEN ?2 ELSE name END, "
                              "budget_usd = CASE WHEN ?3 THEN ?4 ELSE budget_usd END, "
                              "rpm = CASE WHEN ?5 THEN ?6 ELSE rpm END, "
                              "tpm = CASE WHEN ?7 THEN ?8 ELSE tpm END, "
                              "models = CASE WHEN ?9 THEN ?10 ELSE models END, "
                              "expires_at = CASE WHEN ?11 THEN ?12 ELSE expires_at END, "
                              "max_concurrent = CASE WHEN ?14 THEN ?15 ELSE max_concurrent END "
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
        sqlite3_bind_int(st, 14, (set & TELEX_KEY_SET_MAX_CONCURRENT) != 0);
        sqlite3_bind_int64(st, 15, v->max_concurrent);
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

static int sq_key_revoke(telex_store_t *base, int64_t id, int64_t now, char *err, size_t errlen)
{
    sq_store_t *s = SQ(base);
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

static int sq_key_count_active(telex_store_t *base, size_t *n, char *err, size_t errlen)
{
    sq_store_t *s = SQ(base);
    int64_t v = 0;
    pthread_mutex_lock(&s->lock);
    int rc = query_int(s, "SELECT count(*) FROM keys WHERE revoked_at IS NULL", &v, err, errlen);
    pthread_mutex_unlock(&s->lock);
    *n = rc == 0 && v > 0 ? (size_t)v : 0;
    return rc;
}

static int sq_data_version(telex_store_t *base, int64_t *out, char *err, size_t errlen)
{
    sq_store_t *s = SQ(base);
    pthread_mutex_lock(&s->lock);
    int rc = query_int(s, "PRAGMA data_version", out, err, errlen);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---- ledger ------------------------------------------------------------------ */

static int sq_ledger_append(telex_store_t *base, const telex_usage_record_t *rows, size_t n, char *err,
                              size_t errlen)
{
    sq_store_t *s = SQ(base);
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
        sqlite3_bind_int64(ins, 5, telex_store_tokens(r->prompt_tokens));
        sqlite3_bind_int64(ins, 6, telex_store_tokens(r->completion_tokens));
        sqlite3_bind_int64(ins, 7, telex_store_tokens(r->cached_tokens));
        sqlite3_bind_int64(ins, 8, telex_store_tokens(r->reasoning_tokens));
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

static int sq_usage(telex_store_t *base, const telex_usage_query_t *q, telex_usage_row_t **rows, size_t *n,
                      int *truncated, char *err, size_t errlen)
{
    sq_store_t *s = SQ(base);
    static const char *const group_cols[] = {
        [TELEX_USAGE_GROUP_NONE] = "NULL",
        [TELEX_USAGE_GROUP_KEY] = "l.key_id",
        [TELEX_USAGE_GROUP_MODEL] = "l.model",
        [TELEX_USAGE_GROUP_DAY] = "strftime('%Y-%m-%d', l.ts_ms / 1000, 'unixepoch')",
    };
    *rows = NULL;
    *n = 0;
    *truncated = 0;
    const char *g = group_cols[q->group];
    char sql[1024];
    snprintf(sql, sizeof sql,
             /* each row counts at most TELEX_USAGE_TOKENS_MAX tokens (rows
              * written before telex clamped them may hold more): a sum of
              * 64-bit integers then needs 9 billion rows to overflow */
             "SELECT %s AS g, count(*), sum(min(max(prompt_tokens, 0), %llu)), "
             "sum(min(max(completion_tokens, 0), %llu)), sum(min(max(cached_tokens, 0), %llu)), "
             "sum(min(max(reasoning_tokens, 0), %llu)), sum(estimated), sum(outcome <> 'ok'), total(cost_usd), "
             "(SELECT name FROM keys k WHERE k.id = l.key_id) "
             "FROM ledger l WHERE l.ts_ms >= ?1 AND l.ts_ms < ?2 "
             "AND (?3 < 0 OR (?3 = 0 AND l.key_id IS NULL) OR l.key_id = ?3) "
             "GROUP BY g ORDER BY g LIMIT %d",
             g, TELEX_USAGE_TOKENS_MAX, TELEX_USAGE_TOKENS_MAX, TELEX_USAGE_TOKENS_MAX, TELEX_USAGE_TOKENS_MAX,
             TELEX_USAGE_MAX_ROWS + 1);
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
            *rows = telex_xrealloc(*rows, ncap * sizeof(**rows));
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

/* ---- presets ------------------------------------------------------------------ */

static int sq_preset_put(telex_store_t *base, const char *name, const char *body, int create, char *err,
                         size_t errlen)
{
    sq_store_t *s = SQ(base);
    int64_t now = telex_store_now_ms() / 1000;
    const char *sql = create ? "INSERT INTO presets (name, body, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)"
                             : "UPDATE presets SET body = ?2, updated_at = ?3 WHERE name = ?1";
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = NULL;
    int rc = 0, src = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, body, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 3, now);
        src = sqlite3_step(st);
    }
    if (src == SQLITE_DONE) {
        if (!create && sqlite3_changes(s->db) == 0) {
            errf(err, errlen, "no stored preset named \"%s\"", name);
            rc = -ENOENT;
        }
    } else if ((src & 0xff) == SQLITE_CONSTRAINT) {
        errf(err, errlen, "a stored preset is already named \"%s\"", name);
        rc = -EEXIST;
    } else {
        rc = sql_fail(s, src, create ? "storing a preset" : "updating a preset", err, errlen);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Fills a preset row from columns name, body, created_at, updated_at. */
static void read_preset(sqlite3_stmt *st, telex_preset_row_t *p)
{
    memset(p, 0, sizeof(*p));
    copy_text(p->name, sizeof p->name, sqlite3_column_text(st, 0));
    const unsigned char *b = sqlite3_column_text(st, 1);
    p->body = telex_xstrdup(b ? (const char *)b : "{}");
    p->created_at = sqlite3_column_int64(st, 2);
    p->updated_at = sqlite3_column_int64(st, 3);
}

static int sq_preset_get(telex_store_t *base, const char *name, telex_preset_row_t *out, char *err, size_t errlen)
{
    sq_store_t *s = SQ(base);
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = NULL;
    int rc = 0, src = sqlite3_prepare_v2(s->db, "SELECT name, body, created_at, updated_at FROM presets WHERE name = ?",
                                         -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        src = sqlite3_step(st);
    }
    if (src == SQLITE_ROW) {
        read_preset(st, out);
    } else if (src == SQLITE_DONE) {
        errf(err, errlen, "no stored preset named \"%s\"", name);
        rc = -ENOENT;
    } else {
        rc = sql_fail(s, src, "reading presets", err, errlen);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int sq_preset_list(telex_store_t *base, telex_preset_row_t **rows, size_t *n, char *err, size_t errlen)
{
    sq_store_t *s = SQ(base);
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc = 0, src = sqlite3_prepare_v2(s->db, "SELECT name, body, created_at, updated_at FROM presets ORDER BY name",
                                         -1, &st, NULL);
    while (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        src = SQLITE_OK;
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            *rows = telex_xrealloc(*rows, ncap * sizeof(**rows));
            cap = ncap;
        }
        read_preset(st, &(*rows)[(*n)++]);
    }
    if (src != SQLITE_DONE)
        rc = sql_fail(s, src, "listing presets", err, errlen);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    if (rc < 0) {
        telex_store_preset_rows_free(*rows, *n);
        *rows = NULL;
        *n = 0;
    }
    return rc;
}

static int sq_preset_delete(telex_store_t *base, const char *name, char *err, size_t errlen)
{
    sq_store_t *s = SQ(base);
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = NULL;
    int rc = 0, src = sqlite3_prepare_v2(s->db, "DELETE FROM presets WHERE name = ?", -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        src = sqlite3_step(st);
    }
    if (src == SQLITE_DONE) {
        if (sqlite3_changes(s->db) == 0) {
            errf(err, errlen, "no stored preset named \"%s\"", name);
            rc = -ENOENT;
        }
    } else {
        rc = sql_fail(s, src, "deleting a preset", err, errlen);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static const telex_store_ops_t sq_ops = {
    .name = "sqlite",
    .close = sq_close,
    .key_insert = sq_key_insert,
    .key_get = sq_key_get,
    .key_find_name = sq_key_find_name,
    .key_list = sq_key_list,
    .key_update = sq_key_update,
    .key_revoke = sq_key_revoke,
    .key_count_active = sq_key_count_active,
    .data_version = sq_data_version,
    .ledger_append = sq_ledger_append,
    .usage = sq_usage,
    .preset_put = sq_preset_put,
    .preset_get = sq_preset_get,
    .preset_list = sq_preset_list,
    .preset_delete = sq_preset_delete,
};
