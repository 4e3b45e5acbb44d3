/*
 * store/postgres.c — the PostgreSQL backend (backend.h): keys, presets, the
 * ledger and usage totals in a database several telex nodes share.
 *
 * Two connections, each behind its own mutex: `main` for keys, presets,
 * usage queries and change notifications (LISTEN telex_changes), `ledger`
 * for the batching writer, so a slow ledger batch never holds up a key
 * reload. Calls block (libpq's synchronous API): they run only on the
 * ledger thread, the libuv pool and the CLI, never on an event loop.
 * Bounds: connect_timeout 5 s and statement_timeout 30 s (the URL may set
 * others), tcp_user_timeout 30 s. A broken connection is re-established
 * at the next call; until then calls fail with -EIO and a message saying
 * PostgreSQL cannot be reached.
 *
 * Migrations: table telex_schema holds the version; they run in one
 * transaction under an advisory lock, so nodes starting together migrate
 * once. Triggers on keys (columns that matter to authentication, not the
 * spend the ledger adds) and presets NOTIFY telex_changes: data_version
 * counts those notifications (and reconnections, after which some may
 * have been missed).
 */
#include "store/backend.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "util/alloc.h"
#include "util/hex.h"

#define ADVISORY_LOCK 0x544c5831 /* "TLX1" */
#define errf telex_store_errf

typedef struct pg_conn {
    pthread_mutex_t lock;
    PGconn *conn;
    int listen;        /* LISTEN telex_changes on this one */
    int64_t changes;   /* notifications and reconnections seen (under lock) */
} pg_conn_t;

typedef struct pg_store {
    struct telex_store base;
    char *url;
    pg_conn_t main, ledger;
} pg_store_t;

#define PG(s) ((pg_store_t *)(s))

static const char *const migrations[] = {
    /* 0 -> 1: keys and the ledger */
    "CREATE TABLE keys ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  prefix TEXT NOT NULL,"
    "  hash BYTEA NOT NULL UNIQUE,"
    "  created_at BIGINT NOT NULL,"
    "  expires_at BIGINT,"
    "  revoked_at BIGINT,"
    "  last_used_at BIGINT,"
    "  budget_usd DOUBLE PRECISION,"
    "  rpm BIGINT NOT NULL DEFAULT 0,"
    "  tpm BIGINT NOT NULL DEFAULT 0,"
    "  models TEXT NOT NULL DEFAULT '',"
    "  spent_usd DOUBLE PRECISION NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX keys_active_name ON keys(name) WHERE revoked_at IS NULL;"
    "CREATE TABLE ledger ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  ts_ms BIGINT NOT NULL,"
    "  key_id BIGINT,"
    "  model TEXT NOT NULL,"
    "  provider TEXT NOT NULL DEFAULT '',"
    "  prompt_tokens BIGINT NOT NULL,"
    "  completion_tokens BIGINT NOT NULL,"
    "  cached_tokens BIGINT NOT NULL,"
    "  reasoning_tokens BIGINT NOT NULL,"
    "  estimated SMALLINT NOT NULL,"
    "  cost_usd DOUBLE PRECISION NOT NULL,"
    "  ttft_ms DOUBLE PRECISION,"
    "  duration_ms DOUBLE PRECISION NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  outcome TEXT NOT NULL);"
    "CREATE INDEX ledger_ts ON ledger(ts_ms);"
    "CREATE INDEX ledger_key_ts ON ledger(key_id, ts_ms);"
    "CREATE FUNCTION telex_notify_change() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN PERFORM pg_notify('telex_changes', TG_TABLE_NAME); RETURN NULL; END $$;"
    "CREATE TRIGGER keys_changed AFTER INSERT OR DELETE OR UPDATE OF name, hash, expires_at, revoked_at, "
    "budget_usd, rpm, tpm, models ON keys FOR EACH STATEMENT EXECUTE FUNCTION telex_notify_change();",
    /* 1 -> 2: presets stored through the admin API / `telex presets` */
    "CREATE TABLE presets ("
    "  name TEXT PRIMARY KEY,"
    "  body TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL);"
    "CREATE TRIGGER presets_changed AFTER INSERT OR UPDATE OR DELETE ON presets "
    "FOR EACH STATEMENT EXECUTE FUNCTION telex_notify_change();",
    /* 2 -> 3: how many requests a key may have running at once (0 = unlimited); the trigger that tells
     * the nodes a key changed watches the new column too */
    "ALTER TABLE keys ADD COLUMN max_concurrent BIGINT NOT NULL DEFAULT 0;"
    "DROP TRIGGER keys_changed ON keys;"
    "CREATE TRIGGER keys_changed AFTER INSERT OR DELETE OR UPDATE OF name, hash, expires_at, revoked_at, "
    "budget_usd, rpm, tpm, models, max_concurrent ON keys FOR EACH STATEMENT EXECUTE FUNCTION "
    "telex_notify_change();",
};
_Static_assert(sizeof migrations / sizeof migrations[0] == TELEX_STORE_SCHEMA_VERSION,
               "one migration per schema version");

/* ---- connections ------------------------------------------------------------ */

/* libpq's messages end with a newline and may span lines: one line. */
static const char *one_line(const char *msg, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", msg ? msg : "");
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == ' ')
        buf[--n] = '\0';
    return buf;
}

/* The URL without its password (user:PASSWORD@ and password=...). */
static char *redact(const char *url)
{
    char *out = telex_xstrdup(url);
    char *scheme = strstr(out, "://");
    if (scheme != NULL) {
        char *auth = scheme + 3;
        char *at = strchr(auth, '@');
        char *slash = strchr(auth, '/');
        char *colon = strchr(auth, ':');
        if (at != NULL && (slash == NULL || at < slash) && colon != NULL && colon < at)
            memmove(colon, at, strlen(at) + 1);
    }
    char *pw = strstr(out, "password=");
    if (pw != NULL && (pw == out || pw[-1] == '?' || pw[-1] == '&')) {
        char *end = strchr(pw, '&');
        if (end != NULL)
            memmove(pw, end + 1, strlen(end + 1) + 1);
        else
            *(pw > out ? pw - 1 : pw) = '\0';
    }
    return out;
}

/* Notices ("relation already exists, skipping") are not for the user. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static int conn_open(pg_store_t *s, pg_conn_t *c, char *err, size_t errlen)
{
    /* keywords before dbname are defaults the URL may override */
    const char *keys[] = {"connect_timeout", "options", "fallback_application_name", "tcp_user_timeout", "dbname",
                          NULL};
    const char *vals[] = {"5", "-c statement_timeout=30000", "telex", "30000", s->url, NULL};
    if (c->conn != NULL) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    c->conn = PQconnectdbParams(keys, vals, 1);
    if (c->conn == NULL) /* libpq could not allocate its connection object */
        telex_out_of_memory(sizeof(void *));
    if (PQstatus(c->conn) != CONNECTION_OK) {
        char line[400];
        errf(err, errlen, "%s: cannot connect to PostgreSQL: %s", s->base.path,
             one_line(PQerrorMessage(c->conn), line, sizeof line));
        PQfinish(c->conn);
        c->conn = NULL;
        return -EIO;
    }
    PQsetNoticeProcessor(c->conn, ignore_notice, NULL);
    if (c->listen) {
        PGresult *r = PQexec(c->conn, "LISTEN telex_changes");
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) {
            char line[400];
            errf(err, errlen, "%s: LISTEN telex_changes: %s", s->base.path,
                 one_line(PQerrorMessage(c->conn), line, sizeof line));
            PQfinish(c->conn);
            c->conn = NULL;
            return -EIO;
        }
    }
    c->changes++; /* changes may have been missed while disconnected */
    return 0;
}

/* Locks c and makes sure it is connected; on failure it is unlocked. */
static int conn_get(pg_store_t *s, pg_conn_t *c, char *err, size_t errlen)
{
    pthread_mutex_lock(&c->lock);
    if (c->conn != NULL && PQstatus(c->conn) == CONNECTION_OK)
        return 0;
    int rc = conn_open(s, c, err, errlen);
    if (rc < 0)
        pthread_mutex_unlock(&c->lock);
    return rc;
}

static void conn_put(pg_conn_t *c)
{
    pthread_mutex_unlock(&c->lock);
}

/* A negative errno for a failed result (NULL: the connection failed), with
 * a message naming the database and what was being done. */
static int pg_fail(pg_store_t *s, pg_conn_t *c, PGresult *r, const char *what, char *err, size_t errlen)
{
    char line[400];
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    /* the primary message: one sentence, without the statement's text */
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (msg == NULL || *msg == '\0')
        msg = c->conn ? PQerrorMessage(c->conn) : "no connection";
    one_line(msg, line, sizeof line);
    if (c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK) {
        errf(err, errlen, "%s: %s: cannot reach PostgreSQL (%s)", s->base.path, what, line);
        return -EIO;
    }
    if (state != NULL && strcmp(state, "42P01") == 0) {
        errf(err, errlen,
             "%s: %s: %s: the database was changed outside telex (a table was renamed or dropped); restore it "
             "from a backup",
             s->base.path, what, line);
        return -EIO;
    }
    if (state != NULL && strcmp(state, "57014") == 0) {
        errf(err, errlen, "%s: %s: PostgreSQL took too long (statement_timeout): %s", s->base.path, what, line);
        return -EBUSY;
    }
    if (state != NULL && (strcmp(state, "55P03") == 0 || strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)) {
        errf(err, errlen, "%s: %s: the database stayed locked (%s)", s->base.path, what, line);
        return -EBUSY;
    }
    errf(err, errlen, "%s: %s: %s", s->base.path, what, line);
    return -EIO;
}

static PGresult *run(pg_conn_t *c, const char *sql, int n, const char *const *values)
{
    return PQexecParams(c->conn, sql, n, NULL, values, NULL, NULL, 0);
}

static int run_cmd(pg_store_t *s, pg_conn_t *c, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexec(c->conn, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    int rc = ok ? 0 : pg_fail(s, c, r, what, err, errlen);
    PQclear(r);
    return rc;
}

static int64_t col_i64(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static uint64_t col_u64(PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    const char *v = PQgetvalue(r, row, col);
    if (*v == '-')
        return 0;
    return strtoull(v, NULL, 10); /* numeric sums beyond 2^64 saturate (ERANGE) */
}

static double col_double(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtod(PQgetvalue(r, row, col), NULL);
}

static void col_text(PGresult *r, int row, int col, char *dst, size_t cap)
{
    snprintf(dst, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

/* ---- open ------------------------------------------------------------------ */

static int migrate(pg_store_t *s, char *err, size_t errlen)
{
    pg_conn_t *c = &s->main;
    int rc;
    if ((rc = run_cmd(s, c, "BEGIN", "starting a migration", err, errlen)) < 0)
        return rc;
    char lock[96];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%d)", ADVISORY_LOCK);
    if ((rc = run_cmd(s, c, lock, "locking the schema", err, errlen)) < 0 ||
        (rc = run_cmd(s, c, "CREATE TABLE IF NOT EXISTS telex_schema (version INTEGER NOT NULL)",
                      "creating telex_schema", err, errlen)) < 0)
        goto rollback;
    PGresult *r = PQexec(c->conn, "SELECT version FROM telex_schema");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = pg_fail(s, c, r, "reading the schema version", err, errlen);
        PQclear(r);
        goto rollback;
    }
    int64_t version = PQntuples(r) > 0 ? col_i64(r, 0, 0) : -1;
    PQclear(r);
    if (version < 0) {
        /* a database telex has not used: it must not hold our tables already */
        r = PQexec(c->conn, "SELECT to_regclass('keys') IS NOT NULL OR to_regclass('ledger') IS NOT NULL");
        int foreign = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (foreign) {
            errf(err, errlen,
                 "%s: not a telex database (it holds a table named keys or ledger that telex did not create); "
                 "choose another database or schema",
                 s->base.path);
            rc = -EINVAL;
            goto rollback;
        }
        if ((rc = run_cmd(s, c, "INSERT INTO telex_schema VALUES (0)", "creating telex_schema", err, errlen)) < 0)
            goto rollback;
        version = 0;
    }
    if (version > TELEX_STORE_SCHEMA_VERSION) {
        errf(err, errlen,
             "%s: the database has schema version %lld, written by a newer telex (this one knows up to %d); "
             "upgrade telex",
             s->base.path, (long long)version, TELEX_STORE_SCHEMA_VERSION);
        rc = -EINVAL;
        goto rollback;
    }
    while (version < TELEX_STORE_SCHEMA_VERSION) {
        char what[64], sql[96];
        snprintf(what, sizeof what, "migrating the schema to version %lld", (long long)version + 1);
        if ((rc = run_cmd(s, c, migrations[version], what, err, errlen)) < 0)
            goto rollback;
        snprintf(sql, sizeof sql, "UPDATE telex_schema SET version = %lld", (long long)version + 1);
        if ((rc = run_cmd(s, c, sql, what, err, errlen)) < 0)
            goto rollback;
        version++;
    }
    /* tables a version promises (someone may have renamed one) */
    r = PQexec(c->conn, "SELECT to_regclass('keys') IS NULL, to_regclass('ledger') IS NULL, "
                        "to_regclass('presets') IS NULL");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        static const char *const names[] = {"keys", "ledger", "presets"};
        for (int i = 0; i < 3; i++)
            if (PQgetvalue(r, 0, i)[0] == 't') {
                errf(err, errlen,
                     "%s: the table \"%s\" is missing (schema version %lld has it): the database was changed "
                     "outside telex; restore it from a backup",
                     s->base.path, names[i], (long long)version);
                rc = -EIO;
                PQclear(r);
                goto rollback;
            }
    }
    PQclear(r);
    return run_cmd(s, c, "COMMIT", "committing the migration", err, errlen);
rollback:
    PQclear(PQexec(c->conn, "ROLLBACK"));
    return rc;
}

static void pg_close(telex_store_t *base);
static const telex_store_ops_t pg_ops;

int telex_store_postgres_open(telex_store_t **out, const char *url, char *err, size_t errlen)
{
    *out = NULL;
    pg_store_t *s = telex_xcalloc(1, sizeof(*s));
    s->url = telex_xstrdup(url);
    s->base.path = redact(url);
    s->base.ops = &pg_ops;
    pthread_mutex_init(&s->main.lock, NULL);
    pthread_mutex_init(&s->ledger.lock, NULL);
    s->main.listen = 1;
    int rc = conn_get(s, &s->main, err, errlen);
    if (rc == 0) {
        rc = migrate(s, err, errlen);
        conn_put(&s->main);
    }
    if (rc < 0) {
        char *path = s->base.path;
        pg_close(&s->base);
        free(path);
        return rc;
    }
    *out = &s->base;
    return 0;
}

static void pg_close(telex_store_t *base)
{
    pg_store_t *s = PG(base);
    if (s->main.conn)
        PQfinish(s->main.conn);
    if (s->ledger.conn)
        PQfinish(s->ledger.conn);
    pthread_mutex_destroy(&s->main.lock);
    pthread_mutex_destroy(&s->ledger.lock);
    free(s->url);
    free(s);
}

/* ---- keys ------------------------------------------------------------------ */

#define KEY_COLUMNS                                                                                              \
    "id, name, prefix, encode(hash, 'hex'), created_at, expires_at, revoked_at, last_used_at, budget_usd, rpm, " \
    "tpm, models, spent_usd, max_concurrent"

static void read_key(PGresult *r, int i, telex_key_row_t *k)
{
    memset(k, 0, sizeof(*k));
    k->id = col_i64(r, i, 0);
    col_text(r, i, 1, k->name, sizeof k->name);
    col_text(r, i, 2, k->prefix, sizeof k->prefix);
    const char *h = PQgetvalue(r, i, 3);
    if (strlen(h) == 2 * TELEX_KEY_HASH_LEN)
        for (int b = 0; b < TELEX_KEY_HASH_LEN; b++)
            k->hash[b] = (uint8_t)(telex_hexval(h[2 * b]) << 4 | telex_hexval(h[2 * b + 1]));
    k->created_at = col_i64(r, i, 4);
    k->expires_at = col_i64(r, i, 5);
    k->revoked_at = col_i64(r, i, 6);
    k->last_used_at = col_i64(r, i, 7);
    k->budget_usd = PQgetisnull(r, i, 8) ? -1 : col_double(r, i, 8);
    k->rpm = col_i64(r, i, 9);
    k->tpm = col_i64(r, i, 10);
    col_text(r, i, 11, k->models, sizeof k->models);
    k->spent_usd = col_double(r, i, 12);
    k->max_concurrent = col_i64(r, i, 13);
}

/* Text parameters: NULL for 0 (optional times) / a negative budget. */
static const char *opt_i64(char *buf, size_t cap, int64_t v)
{
    if (v == 0)
        return NULL;
    snprintf(buf, cap, "%" PRId64, v);
    return buf;
}

static const char *budget(char *buf, size_t cap, double v)
{
    if (v < 0)
        return NULL;
    snprintf(buf, cap, "%.17g", v);
    return buf;
}

static int is_unique_violation(PGresult *r, const char *constraint)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *name = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
    return state && strcmp(state, "23505") == 0 && (constraint == NULL || (name && strcmp(name, constraint) == 0));
}

static int pg_key_insert(telex_store_t *base, telex_key_row_t *k, char *err, size_t errlen)
{
    pg_store_t *s = PG(base);
    int rc = conn_get(s, &s->main, err, errlen);
    if (rc < 0)
        return rc;
    char hex[2 * TELEX_KEY_HASH_LEN + 3], created[24], expires[24], bud[40], rpm[24], tpm[24], conc[24];
    strcpy(hex, "\\x");
    for (int i = 0; i < TELEX_KEY_HASH_LEN; i++)
        snprintf(hex + 2 + 2 * i, 3, "%02x", k->hash[i]);
    snprintf(created, sizeof created, "%" PRId64, k->created_at);
    snprintf(rpm, sizeof rpm, "%" PRId64, k->rpm);
    snprintf(tpm, sizeof tpm, "%" PRId64, k->tpm);
    snprintf(conc, sizeof conc, "%" PRId64, k->max_concurrent);
    const char *v[] = {k->name, k->prefix, hex, created, opt_i64(expires, sizeof expires, k->expires_at),
                       budget(bud, sizeof bud, k->budget_usd), rpm, tpm, k->models, conc};
    PGresult *r = run(&s->main,
                      "INSERT INTO keys (name, prefix, hash, created_at, expires_at, budget_usd, rpm, tpm, models, "
                      "max_concurrent) VALUES ($1, $2, $3::bytea, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                      10, v);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        k->id = col_i64(r, 0, 0);
        k->revoked_at = k->last_used_at = 0;
        k->spent_usd = 0;
    } else if (is_unique_violation(r, "keys_active_name")) {
        errf(err, errlen, "an active key is already named \"%s\"", k->name);
        rc = -EEXIST;
    } else {
        rc = pg_fail(s, &s->main, r, "creating a key", err, errlen);
    }
    PQclear(r);
    conn_put(&s->main);
    return rc;
}

static int key_select(pg_store_t *s, const char *sql, const char *param, const char *missing,
                      telex_key_row_t *out, char *err, size_t errlen)
{
    int rc = conn_get(s, &s->main, err, errlen);
    if (rc < 0)
        return rc;
    const char *v[] = {param};
    PGresult *r = run(&s->main, sql, 1, v);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
        read_key(r, 0, out);
    } else if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        errf(err, errlen, "%s", missing);
        rc = -ENOENT;
    } else {
        rc = pg_fail(s, &s->main, r, "reading keys", err, errlen);
    }
    PQclear(r);
    conn_put(&s->main);
    return rc;
}

static int pg_key_get(telex_store_t *base, int64_t id, telex_key_row_t *out, char *err, size_t errlen)
{
    char idbuf[24], missing[64];
    snprintf(idbuf, sizeof idbuf, "%" PRId64, id);
    snprintf(missing, sizeof missing, "no key with id %lld", (long long)id);
    return key_select(PG(base), "SELECT " KEY_COLUMNS " FROM keys WHERE id = $1", idbuf, missing, out, err,
                      errlen);
}

static int pg_key_find_name(telex_store_t *base, const char *name, telex_key_row_t *out, char *err,
                            size_t errlen)
{
    char missing[96];
    snprintf(missing, sizeof missing, "no key named \"%.64s\"", name);
    return key_select(PG(base),
                      "SELECT " KEY_COLUMNS " FROM keys WHERE name = $1 "
                      "ORDER BY revoked_at IS NOT NULL, id DESC LIMIT 1",
                      name, missing, out, err, errlen);
}

static int pg_key_list(telex_store_t *base, telex_key_row_t **rows, size_t *n, char *err, size_t errlen)
{
    pg_store_t *s = PG(base);
    int rc = conn_get(s, &s->main, err, errlen);
    if (rc < 0)
        return rc;
    PGresult *r = PQexec(s->main.conn, "SELECT " KEY_COLUMNS " FROM keys ORDER BY id");
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        int count = PQntuples(r);
        if (count > 0)
            *rows = telex_xcalloc((size_t)count, sizeof(**rows));
        for (int i = 0; i < count; i++)
            read_key(r, i, &(*rows)[i]);
        *n = (size_t)count;
    } else {
        rc = pg_fail(s, &s->main, r, "listing keys", err, errlen);
    }
    PQclear(r);
    conn_put(&s->main);
    return rc;
}

static int pg_key_update(telex_store_t *base, int64_t id, unsigned set, const telex_key_row_t *v, char *err,
                         size_t errlen)
{
    pg_store_t *s = PG(base);
    int rc = conn_get(s, &s->main, err, errlen);
    if (rc < 0)
        return rc;
    char b[7][4], bud[40], rpm[24], tpm[24], exp[24], idbuf[24], conc[24];
    unsigned bits[7] = {TELEX_KEY_SET_NAME,   TELEX_KEY_SET_BUDGET, TELEX_KEY_SET_RPM,
                        TELEX_KEY_SET_TPM,    TELEX_KEY_SET_MODELS, TELEX_KEY_SET_EXPIRES,
                        TELEX_KEY_SET_MAX_CONCURRENT};
    for (int i = 0; i < 7; i++)
        snprintf(b[i], sizeof b[i], "%s", (set & bits[i]) ? "t" : "f");
    snprintf(rpm, sizeof rpm, "%" PRId64, v->rpm);
    snprintf(tpm, sizeof tpm, "%" PRId64, v->tpm);
    snprintf(idbuf, sizeof idbuf, "%" PRId64, id);
    snprintf(conc, sizeof conc, "%" PRId64, v->max_concurrent);
    const char *p[] = {b[0], v->name, b[1], budget(bud, sizeof bud, v->budget_usd), b[2], rpm, b[3], tpm, b[4],
                       v->models, b[5], opt_i64(exp, sizeof exp, v->expires_at), idbuf, b[6], conc};
    static const char sql[] = "UPDATE keys SET "
                              "name = CASE WHEN $1::bool THEN $2::text ELSE name END, "
                              "budget_usd = CASE WHEN $3::bool THEN $4::float8 ELSE budget_usd END, "
                              "rpm = CASE WHEN $5::bool THEN $6::bigint ELSE rpm END, "
                              "tpm = CASE WHEN $7::bool THEN $8::bigint ELSE tpm END, "
                              "models = CASE WHEN $9::bool THEN $10::text ELSE models END, "
                              "expires_at = CASE WHEN $11::bool THEN $12::bigint ELSE expires_at END, "
                              "max_concurrent = CASE WHEN $14::bool THEN $15::bigint ELSE max_concurrent END "
                              "WHERE id = $13::bigint";
    PGresult *r = PQexecParams(s->main.conn, sql, 15, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        if (strcmp(PQcmdTuples(r), "0") == 0) {
            errf(err, errlen, "no key with id %lld", (long long)id);
            rc = -ENOENT;
        }
    } else if (is_unique_violation(r, NULL)) {
        errf(err, errlen, "an active key is already named \"%s\"", v->name);
        rc = -EEXIST;
    } else {
        rc = pg_fail(s, &s->main, r, "updating a key", err, errlen);
    }
    PQclear(r);
    conn_put(&s->main);
    return rc;
}

static int pg_key_revoke(telex_store_t *base, int64_t id, int64_t now, char *err, size_t errlen)
{
    pg_store_t *s = PG(base);
    int rc = conn_get(s, &s->main, err, errlen);
    if (rc < 0)
        return rc;
    char nowbuf[24], idbuf[24];
    snprintf(nowbuf, sizeof nowbuf, "%" PRId64, now);
    snprintf(idbuf, sizeof idbuf, "%" PRId64, id);
    const char *v[] = {nowbuf, idbuf};
    PGresult *r = run(&s->main, "UPDATE keys SET revoked_at = coalesce(revoked_at, $1::bigint) WHERE id = $2", 2, v);
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        if (strcmp(PQcmdTuples(r), "0") == 0) {
            errf(err, errlen, "no key with id %lld", (long long)id);
            rc = -ENOENT;
        }
    } else {
        rc = pg_fail(s, &s->main, r, "revoking a key", err, errlen);
    }
    PQclear(r);
    conn_put(&s->main);
    return rc;
}

static int pg_key_count_active(telex_store_t *base, size_t *n, char *err, size_t errlen)
{
    pg_store_t *s = PG(base);
    int rc = conn_get(s, &s->main, err, errlen);
    if (rc < 0)
        return rc;
    PGresult *r = PQexec(s->main.conn, "SELECT count(*) FROM keys WHERE revoked_at IS NULL");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        *n = (size_t)col_i64(r, 0, 0);
    else
        rc = pg_fail(s, &s->main, r, "counting keys", err, errlen);
    PQclear(r);
    conn_put(&s->main);
    return rc;
}

static int pg_data_version(telex_store_t *base, int64_t *out, char *err, size_t errlen)
{
    pg_store_t *s = PG(base);
    int rc = conn_get(s, &s->main, err, errlen);
    if (rc < 0)
        return rc;
    if (PQconsumeInput(s->main.conn) == 0) {
        rc = pg_fail(s, &s->main, NULL, "waiting for changes", err, errlen);
    } else {
        PGnotify *nt;
        while ((nt = PQnotifies(s->main.conn)) != NULL) {
            s->main.changes++;
            PQfreemem(nt);
        }
    }
    *out = s->main.changes;
    conn_put(&s->main);
    return rc;
}

/* ---- ledger ------------------------------------------------------------------ */

#define LEDGER_COLS 14
#define INSERT_ROWS 1000 /* rows per INSERT statement: 14,000 parameters (the limit is 65,535) */

typedef struct spend {
    int64_t key_id;
    double usd;
    int64_t last_used;
} spend_t;

static int insert_rows(pg_store_t *s, const telex_usage_record_t *rows, size_t n, int64_t now, char *err,
                       size_t errlen)
{
    /* text of every parameter, 64 bytes each except the model (128),
     * provider (64) and outcome (24), which point into the rows */
    char(*num)[32] = telex_xmalloc(n * 11 * sizeof(*num));
    const char **vals = telex_xmalloc(n * LEDGER_COLS * sizeof(*vals));
    size_t sqlcap = 200 + n * (LEDGER_COLS * 8 + 4);
    char *sql = telex_xmalloc(sqlcap);
    int rc = 0;
    size_t o = (size_t)snprintf(sql, sqlcap,
                                "INSERT INTO ledger (ts_ms, key_id, model, provider, prompt_tokens, "
                                "completion_tokens, cached_tokens, reasoning_tokens, estimated, cost_usd, ttft_ms, "
                                "duration_ms, status, outcome) VALUES ");
    for (size_t i = 0; i < n; i++) {
        const telex_usage_record_t *r = &rows[i];
        char(*t)[32] = num + i * 11;
        const char **v = vals + i * LEDGER_COLS;
        snprintf(t[0], 32, "%" PRId64, r->ts_ms > 0 ? r->ts_ms : now);
        snprintf(t[2], 32, "%" PRId64, telex_store_tokens(r->prompt_tokens));
        snprintf(t[3], 32, "%" PRId64, telex_store_tokens(r->completion_tokens));
        snprintf(t[4], 32, "%" PRId64, telex_store_tokens(r->cached_tokens));
        snprintf(t[5], 32, "%" PRId64, telex_store_tokens(r->reasoning_tokens));
        snprintf(t[6], 32, "%d", r->estimated ? 1 : 0);
        snprintf(t[7], 32, "%.17g", r->cost_usd >= 0 ? r->cost_usd : 0);
        snprintf(t[8], 32, "%.17g", r->ttft_ms);
        snprintf(t[9], 32, "%.17g", r->duration_ms >= 0 ? r->duration_ms : 0);
        snprintf(t[10], 32, "%d", r->status);
        /* the row's strings are fixed arrays: copy them terminated */
        v[0] = t[0];
        v[1] = opt_i64(t[1], 32, r->key_id);
        v[2] = r->model;
        v[3] = r->provider;
        v[4] = t[2];
        v[5] = t[3];
        v[6] = t[4];
        v[7] = t[5];
        v[8] = t[6];
        v[9] = t[7];
        v[10] = r->ttft_ms >= 0 ? t[8] : NULL;
        v[11] = t[9];
        v[12] = t[10];
        v[13] = r->outcome;
        o += (size_t)snprintf(sql + o, sqlcap - o, "%s(", i ? "," : "");
        for (int c = 0; c < LEDGER_COLS; c++)
            o += (size_t)snprintf(sql + o, sqlcap - o, "%s$%zu", c ? "," : "", i * LEDGER_COLS + c + 1);
        o += (size_t)snprintf(sql + o, sqlcap - o, ")");
    }
    PGresult *res = PQexecParams(s->ledger.conn, sql, (int)(n * LEDGER_COLS), NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_fail(s, &s->ledger, res, "writing the ledger", err, errlen);
    PQclear(res);
    free(num);
    free(vals);
    free(sql);
    return rc;
}

static int pg_ledger_append(telex_store_t *base, const telex_usage_record_t *rows, size_t n, char *err,
                            size_t errlen)
{
    pg_store_t *s = PG(base);
    /* the fixed-size strings of a row may fill their array: terminate copies */
    telex_usage_record_t *copy = telex_xmalloc(n * sizeof(*copy));
    spend_t *sp = telex_xmalloc(n * sizeof(*sp));
    int64_t now = telex_store_now_ms();
    size_t nsp = 0;
    for (size_t i = 0; i < n; i++) {
        copy[i] = rows[i];
        copy[i].model[sizeof copy[i].model - 1] = '\0';
        copy[i].provider[sizeof copy[i].provider - 1] = '\0';
        copy[i].outcome[sizeof copy[i].outcome - 1] = '\0';
        if (rows[i].key_id <= 0)
            continue;
        int64_t used = (rows[i].ts_ms > 0 ? rows[i].ts_ms : now) / 1000;
        double usd = rows[i].cost_usd >= 0 ? rows[i].cost_usd : 0;
        size_t k = 0;
        while (k < nsp && sp[k].key_id != rows[i].key_id)
            k++;
        if (k == nsp)
            sp[nsp++] = (spend_t){rows[i].key_id, 0, 0};
        sp[k].usd += usd;
        if (used > sp[k].last_used)
            sp[k].last_used = used;
    }
    int rc = conn_get(s, &s->ledger, err, errlen);
    if (rc < 0)
        goto done;
    if ((rc = run_cmd(s, &s->ledger, "BEGIN", "writing the ledger", err, errlen)) < 0)
        goto put;
    for (size_t i = 0; i < n && rc == 0; i += INSERT_ROWS)
        rc = insert_rows(s, copy + i, n - i < INSERT_ROWS ? n - i : INSERT_ROWS, now, err, errlen);
    for (size_t k = 0; k < nsp && rc == 0; k++) {
        char usd[40], used[24], id[24];
        snprintf(usd, sizeof usd, "%.17g", sp[k].usd);
        snprintf(used, sizeof used, "%" PRId64, sp[k].last_used);
        snprintf(id, sizeof id, "%" PRId64, sp[k].key_id);
        const char *v[] = {usd, used, id};
        PGresult *r = run(&s->ledger,
                          "UPDATE keys SET spent_usd = spent_usd + $1::float8, "
                          "last_used_at = greatest(coalesce(last_used_at, 0), $2::bigint) WHERE id = $3::bigint",
                          3, v);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = pg_fail(s, &s->ledger, r, "writing the ledger", err, errlen);
        PQclear(r);
    }
    if (rc == 0)
        rc = run_cmd(s, &s->ledger, "COMMIT", "writing the ledger", err, errlen);
    if (rc < 0 && s->ledger.conn != NULL && PQstatus(s->ledger.conn) == CONNECTION_OK)
        PQclear(PQexec(s->ledger.conn, "ROLLBACK"));
put:
    conn_put(&s->ledger);
done:
    free(copy);
    free(sp);
    return rc;
}

static int pg_usage(telex_store_t *base, const telex_usage_query_t *q, telex_usage_row_t **rows, size_t *n,
                    int *truncated, char *err, size_t errlen)
{
    pg_store_t *s = PG(base);
    static const char *const group_cols[] = {
        [TELEX_USAGE_GROUP_NONE] = "NULL::text",
        [TELEX_USAGE_GROUP_KEY] = "l.key_id",
        [TELEX_USAGE_GROUP_MODEL] = "l.model",
        [TELEX_USAGE_GROUP_DAY] = "to_char(to_timestamp(l.ts_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    };
    const char *g = group_cols[q->group];
    char sql[1400];
    /* sums of bigint are numeric in PostgreSQL: no overflow; each row counts
     * at most TELEX_USAGE_TOKENS_MAX tokens, as with SQLite */
#define T(col) "sum(least(greatest(" col ", 0), %llu))"
    snprintf(sql, sizeof sql,
             "SELECT %s AS g, count(*), " T("prompt_tokens") ", " T("completion_tokens") ", " T(
                 "cached_tokens") ", " T("reasoning_tokens") ", sum(estimated), sum(CASE WHEN outcome <> 'ok' "
                                                             "THEN 1 ELSE 0 END), coalesce(sum(cost_usd), 0), %s "
                                                             "FROM ledger l WHERE l.ts_ms >= $1::bigint AND l.ts_ms < "
                                                             "$2::bigint AND ($3::bigint < 0 OR ($3::bigint = 0 AND "
                                                             "l.key_id IS NULL) OR l.key_id = $3::bigint) "
                                                             "GROUP BY 1 ORDER BY 1 NULLS FIRST LIMIT %d",
             g, TELEX_USAGE_TOKENS_MAX, TELEX_USAGE_TOKENS_MAX, TELEX_USAGE_TOKENS_MAX, TELEX_USAGE_TOKENS_MAX,
             q->group == TELEX_USAGE_GROUP_KEY ? "(SELECT name FROM keys k WHERE k.id = l.key_id)" : "NULL",
             TELEX_USAGE_MAX_ROWS + 1);
#undef T
    char from[24], to[24], key[24];
    snprintf(from, sizeof from, "%" PRId64, q->from_ms);
    snprintf(to, sizeof to, "%" PRId64, q->to_ms);
    snprintf(key, sizeof key, "%" PRId64, q->key_id);
    const char *v[] = {from, to, key};
    int rc = conn_get(s, &s->main, err, errlen);
    if (rc < 0)
        return rc;
    PGresult *r = run(&s->main, sql, 3, v);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = pg_fail(s, &s->main, r, "reading the ledger", err, errlen);
        goto out;
    }
    int count = PQntuples(r);
    if (count > TELEX_USAGE_MAX_ROWS) {
        *truncated = 1;
        count = TELEX_USAGE_MAX_ROWS;
    }
    if (count > 0)
        *rows = telex_xcalloc((size_t)count, sizeof(**rows));
    for (int i = 0; i < count; i++) {
        telex_usage_row_t *u = &(*rows)[(*n)++];
        switch (q->group) {
        case TELEX_USAGE_GROUP_KEY:
            u->key_id = col_i64(r, i, 0);
            col_text(r, i, 9, u->key_name, sizeof u->key_name);
            break;
        case TELEX_USAGE_GROUP_MODEL:
            col_text(r, i, 0, u->model, sizeof u->model);
            break;
        case TELEX_USAGE_GROUP_DAY:
            col_text(r, i, 0, u->day, sizeof u->day);
            break;
        default:
            break;
        }
        u->requests = col_u64(r, i, 1);
        u->prompt_tokens = col_u64(r, i, 2);
        u->completion_tokens = col_u64(r, i, 3);
        u->cached_tokens = col_u64(r, i, 4);
        u->reasoning_tokens = col_u64(r, i, 5);
        u->estimated_requests = col_u64(r, i, 6);
        u->failed_requests = col_u64(r, i, 7);
        u->cost_usd = col_double(r, i, 8);
    }
out:
    PQclear(r);
    conn_put(&s->main);
    return rc;
}

/* ---- presets ------------------------------------------------------------------ */

static int pg_preset_put(telex_store_t *base, const char *name, const char *body, int create, char *err,
                         size_t errlen)
{
    pg_store_t *s = PG(base);
    int rc = conn_get(s, &s->main, err, errlen);
    if (rc < 0)
        return rc;
    char now[24];
    snprintf(now, sizeof now, "%" PRId64, telex_store_now_ms() / 1000);
    const char *v[] = {name, body, now};
    PGresult *r = run(&s->main,
                      create ? "INSERT INTO presets (name, body, created_at, updated_at) VALUES ($1, $2, $3, $3)"
                             : "UPDATE presets SET body = $2, updated_at = $3 WHERE name = $1",
                      3, v);
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        if (!create && strcmp(PQcmdTuples(r), "0") == 0) {
            errf(err, errlen, "no stored preset named \"%s\"", name);
            rc = -ENOENT;
        }
    } else if (is_unique_violation(r, NULL)) {
        errf(err, errlen, "a stored preset is already named \"%s\"", name);
        rc = -EEXIST;
    } else {
        rc = pg_fail(s, &s->main, r, create ? "storing a preset" : "updating a preset", err, errlen);
    }
    PQclear(r);
    conn_put(&s->main);
    return rc;
}

static void read_presets(PGresult *r, telex_preset_row_t *out, int count)
{
    for (int i = 0; i < count; i++) {
        col_text(r, i, 0, out[i].name, sizeof out[i].name);
        out[i].body = telex_xstrdup(PQgetvalue(r, i, 1));
        out[i].created_at = col_i64(r, i, 2);
        out[i].updated_at = col_i64(r, i, 3);
    }
}

static int pg_preset_get(telex_store_t *base, const char *name, telex_preset_row_t *out, char *err, size_t errlen)
{
    pg_store_t *s = PG(base);
    int rc = conn_get(s, &s->main, err, errlen);
    if (rc < 0)
        return rc;
    const char *v[] = {name};
    PGresult *r = run(&s->main, "SELECT name, body, created_at, updated_at FROM presets WHERE name = $1", 1, v);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = pg_fail(s, &s->main, r, "reading presets", err, errlen);
    } else if (PQntuples(r) == 0) {
        errf(err, errlen, "no stored preset named \"%s\"", name);
        rc = -ENOENT;
    } else {
        read_presets(r, out, 1);
    }
    PQclear(r);
    conn_put(&s->main);
    return rc;
}

static int pg_preset_list(telex_store_t *base, telex_preset_row_t **rows, size_t *n, char *err, size_t errlen)
{
    pg_store_t *s = PG(base);
    int rc = conn_get(s, &s->main, err, errlen);
    if (rc < 0)
        return rc;
    PGresult *r = PQexec(s->main.conn, "SELECT name, body, created_at, updated_at FROM presets ORDER BY name");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = pg_fail(s, &s->main, r, "listing presets", err, errlen);
    } else if (PQntuples(r) > 0) {
        int count = PQntuples(r);
        *rows = telex_xcalloc((size_t)count, sizeof(**rows));
        read_presets(r, *rows, count);
        *n = (size_t)count;
    }
    PQclear(r);
    conn_put(&s->main);
    return rc;
}

static int pg_preset_delete(telex_store_t *base, const char *name, char *err, size_t errlen)
{
    pg_store_t *s = PG(base);
    int rc = conn_get(s, &s->main, err, errlen);
    if (rc < 0)
        return rc;
    const char *v[] = {name};
    PGresult *r = run(&s->main, "DELETE FROM presets WHERE name = $1", 1, v);
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        if (strcmp(PQcmdTuples(r), "0") == 0) {
            errf(err, errlen, "no stored preset named \"%s\"", name);
            rc = -ENOENT;
        }
    } else {
        rc = pg_fail(s, &s->main, r, "deleting a preset", err, errlen);
    }
    PQclear(r);
    conn_put(&s->main);
    return rc;
}

static const telex_store_ops_t pg_ops = {
    .name = "postgresql",
    .close = pg_close,
    .key_insert = pg_key_insert,
    .key_get = pg_key_get,
    .key_find_name = pg_key_find_name,
    .key_list = pg_key_list,
    .key_update = pg_key_update,
    .key_revoke = pg_key_revoke,
    .key_count_active = pg_key_count_active,
    .data_version = pg_data_version,
    .ledger_append = pg_ledger_append,
    .usage = pg_usage,
    .preset_put = pg_preset_put,
    .preset_get = pg_preset_get,
    .preset_list = pg_preset_list,
    .preset_delete = pg_preset_delete,
};
