/*
 * tests/unit/test_store.c — the store and the write-behind ledger. With
 * TELEX_TEST_PG_URL unset: SQLite, on real database files in a fresh
 * mkdtemp directory. With TELEX_TEST_PG_URL=postgresql://user@host:port
 * (tests/unit/with_postgres.sh starts a throwaway server and sets it): the
 * same tests, minus those about files, against PostgreSQL, each in a fresh
 * database. Covered: creation, WAL,
 * migrations, every kind of bad file failing with a clear line, keys,
 * ledger rows and usage totals, and a ledger writer that never loses a row
 * on a clean stop (many threads, retries after a failing batch) and drops
 * only beyond max_pending.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "store/ledger.h"
#include "store/spill.h"
#include "store/store.h"

static char dir[64];
static char db_path[300];
static const char *pg_base; /* TELEX_TEST_PG_URL: PostgreSQL mode */
static char pg_db[64];

/* Runs sql on the server's "postgres" database (creating/dropping ours). */
static int pg_admin(const char *sql)
{
    char url[300];
    snprintf(url, sizeof url, "%s/postgres", pg_base);
    PGconn *c = PQconnectdb(url);
    int ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PGresult *r = PQexec(c, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
    } else {
        fprintf(stderr, "%s: %s", url, PQerrorMessage(c));
    }
    PQfinish(c);
    return ok ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/telex-store-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    if (pg_base != NULL) {
        static int counter;
        snprintf(pg_db, sizeof pg_db, "telex_test_%d_%d", (int)getpid(), ++counter);
        snprintf(db_path, sizeof db_path, "%s/%s", pg_base, pg_db);
        char sql[128];
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", pg_db);
        return pg_admin(sql);
    }
    snprintf(db_path, sizeof db_path, "%s/state/telex.db", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[200];
    if (pg_base != NULL) {
        snprintf(cmd, sizeof cmd, "DROP DATABASE %s WITH (FORCE)", pg_db);
        if (pg_admin(cmd) != 0)
            return -1;
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Tests about files: SQLite only. */
#define SQLITE_ONLY()                                                                                                \
    do {                                                                                                             \
        if (pg_base != NULL)                                                                                         \
            skip();                                                                                                  \
    } while (0)

static telex_store_t *open_ok(const char *path)
{
    telex_store_t *s = NULL;
    char err[512] = "";
    int rc = telex_store_open(&s, path, err, sizeof err);
    if (rc != 0)
        fail_msg("open %s failed (%d): %s", path, rc, err);
    return s;
}

/* Opening must fail with rc and a message containing `want`. */
static void open_fails(const char *path, int want_rc, const char *want)
{
    telex_store_t *s = (telex_store_t *)1;
    char err[512] = "";
    int rc = telex_store_open(&s, path, err, sizeof err);
    assert_null(s);
    if (rc != want_rc || strstr(err, want) == NULL)
        fail_msg("open %s: want (%d) \"...%s...\", got (%d) \"%s\"", path, want_rc, want, rc, err);
    assert_non_null(strstr(err, path)); /* the message names the file */
}

static int64_t pg_int(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("%s: %s", url, PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    int64_t v = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    PQfinish(c);
    return v;
}

static void pg_exec(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("%s: %s", url, PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

static int64_t sql_int(const char *path, const char *sql)
{
    if (pg_base != NULL)
        return pg_int(path, sql);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Stops the ledger (nothing dropped) and closes the store; the database
 * then holds n ledger rows, each written once (distinct ts_ms). */
static void stop_and_expect_rows(telex_ledger_t *l, telex_store_t *s, int64_t n)
{
    assert_int_equal(telex_ledger_stop(l), 0);
    telex_store_close(s);
    assert_int_equal(sql_int(db_path, "SELECT count(*) FROM ledger"), n);
    assert_int_equal(sql_int(db_path, "SELECT count(DISTINCT ts_ms) FROM ledger"), n);
}

static void sql_exec(const char *path, const char *sql)
{
    if (pg_base != NULL) {
        pg_exec(path, sql);
        return;
    }
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000); /* a ledger writer may hold the lock a moment */
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static void write_bytes(const char *path, const void *bytes, size_t len, off_t at)
{
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, len, at), (ssize_t)len);
    close(fd);
}

static telex_key_row_t key(const char *name, uint8_t hash_byte)
{
    telex_key_row_t k;
    memset(&k, 0, sizeof k);
    snprintf(k.name, sizeof k.name, "%s", name);
    snprintf(k.prefix, sizeof k.prefix, "tlx_abcd%04u", hash_byte);
    memset(k.hash, hash_byte, sizeof k.hash);
    k.created_at = 1700000000;
    k.budget_usd = -1;
    return k;
}

static telex_usage_record_t rec(int64_t key_id, const char *model, int64_t ts_ms, uint64_t p, uint64_t c,
                                double cost)
{
    telex_usage_record_t r;
    memset(&r, 0, sizeof r);
    r.ts_ms = ts_ms;
    r.key_id = key_id;
    snprintf(r.model, sizeof r.model, "%s", model);
    snprintf(r.provider, sizeof r.provider, "mock");
    r.prompt_tokens = p;
    r.completion_tokens = c;
    r.cost_usd = cost;
    r.ttft_ms = 12.5;
    r.duration_ms = 100;
    r.status = 200;
    snprintf(r.outcome, sizeof r.outcome, "ok");
    return r;
}

/* ---- opening ------------------------------------------------------------ */

static void test_creates_file_dirs_wal_and_schema(void **state)
{
    (void)state;
    SQLITE_ONLY();
    telex_store_t *s = open_ok(db_path);
    assert_string_equal(telex_store_path(s), db_path);
    struct stat st;
    char parent[200];
    snprintf(parent, sizeof parent, "%s/state", dir);
    assert_int_equal(stat(parent, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    telex_store_close(s);
    assert_int_equal(sql_int(db_path, "PRAGMA user_version"), TELEX_STORE_SCHEMA_VERSION);
    assert_int_equal(sql_int(db_path, "PRAGMA application_id"), 0x544c5831);
    /* WAL is persistent: a fresh connection sees it */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_stmt *st2 = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st2, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st2), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st2, 0), "wal");
    sqlite3_finalize(st2);
    sqlite3_close(db);
    /* reopening an up-to-date database changes nothing */
    s = open_ok(db_path);
    telex_store_close(s);
    assert_int_equal(sql_int(db_path, "PRAGMA user_version"), TELEX_STORE_SCHEMA_VERSION);
}

static void test_garbage_file_is_refused(void **state)
{
    (void)state;
    SQLITE_ONLY();
    char path[200];
    snprintf(path, sizeof path, "%s/garbage.db", dir);
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 7 + 3);
    write_bytes(path, junk, sizeof junk, 0);
    open_fails(path, -EIO, "the database is corrupted (file is not a database)");
}

static void test_corrupted_pages_are_refused(void **state)
{
    (void)state;
    SQLITE_ONLY();
    telex_store_t *s = open_ok(db_path);
    telex_usage_record_t rows[500];
    for (int i = 0; i < 500; i++)
        rows[i] = rec(0, "model-with-a-long-name-to-fill-pages", 1700000000000 + i, 10, 20, 0.001);
    for (int round = 0; round < 4; round++)
        assert_int_equal(telex_store_ledger_append(s, rows, 500, NULL, 0), 0);
    telex_store_close(s);
    struct stat st;
    assert_int_equal(stat(db_path, &st), 0);
    assert_true(st.st_size > 16 * 4096);
    /* scribble over pages in the middle of the file (B-tree pages) */
    char junk[4096];
    memset(junk, 0x5a, sizeof junk);
    for (off_t page = 2; page < 12; page += 3)
        write_bytes(db_path, junk, sizeof junk, page * 4096);
    open_fails(db_path, -EIO, "the database is corrupted");
}

static void test_foreign_and_newer_databases_are_refused(void **state)
{
    (void)state;
    char path[200];
    if (pg_base != NULL) {
        sql_exec(db_path, "CREATE TABLE keys (id INTEGER PRIMARY KEY, title TEXT)");
        open_fails(db_path, -EINVAL, "not a telex database (it holds a table named keys or ledger that telex did not create)");
        sql_exec(db_path, "DROP TABLE keys");
        telex_store_t *s = open_ok(db_path);
        telex_store_close(s);
        sql_exec(db_path, "UPDATE telex_schema SET version = 99");
        open_fails(db_path, -EINVAL, "schema version 99, written by a newer telex (this one knows up to 3); upgrade telex");
        return;
    }
    snprintf(path, sizeof path, "%s/other.db", dir);
    sql_exec(path, "CREATE TABLE photos (id INTEGER PRIMARY KEY, title TEXT)");
    open_fails(path, -EINVAL, "not a telex database (it holds tables telex did not create)");

    snprintf(path, sizeof path, "%s/app.db", dir);
    sql_exec(path, "PRAGMA application_id = 1234");
    open_fails(path, -EINVAL, "not a telex database (application_id 0x000004d2)");

    telex_store_t *s = open_ok(db_path);
    telex_store_close(s);
    sql_exec(db_path, "PRAGMA user_version = 99");
    open_fails(db_path, -EINVAL, "schema version 99, written by a newer telex (this one knows up to 3); upgrade telex");
}

static void test_unusable_paths_are_refused(void **state)
{
    (void)state;
    SQLITE_ONLY();
    char path[200];
    /* a directory */
    snprintf(path, sizeof path, "%s", dir);
    open_fails(path, -EISDIR, "is a directory");
    /* a parent that is a file */
    char file[200];
    snprintf(file, sizeof file, "%s/plain", dir);
    write_bytes(file, "x", 1, 0);
    snprintf(path, sizeof path, "%s/plain/telex.db", dir);
    open_fails(path, -ENOTDIR, "is not a directory");
    /* a directory nobody may create files in, not even root */
    open_fails("/proc/telex-test/telex.db", -ENOENT, "cannot create the directory /proc/telex-test");
    open_fails("/proc/telex-test.db", -EIO, "telex must be able to write");
    /* a read-only file (root may write anyway: only checked for others) */
    if (geteuid() != 0) {
        telex_store_t *s = open_ok(db_path);
        telex_store_close(s);
        chmod(db_path, 0400);
        open_fails(db_path, -EACCES, "read-only");
    }
    /* no path */
    telex_store_t *s = NULL;
    char err[200];
    assert_int_equal(telex_store_open(&s, "", err, sizeof err), -EINVAL);
}

/* ---- keys ---------------------------------------------------------------- */

static void test_keys(void **state)
{
    (void)state;
    telex_store_t *s = open_ok(db_path);
    char err[256];
    telex_key_row_t a = key("alice", 1), b = key("bob", 2), out;
    a.budget_usd = 5;
    a.rpm = 60;
    a.tpm = 1000;
    a.max_concurrent = 4;
    snprintf(a.models, sizeof a.models, "gpt-4o,demo");
    a.expires_at = 1900000000;
    assert_int_equal(telex_store_key_insert(s, &a, err, sizeof err), 0);
    assert_int_equal(telex_store_key_insert(s, &b, err, sizeof err), 0);
    assert_true(a.id > 0 && b.id > a.id);

    /* a second active "alice" is refused; the hash is unique too */
    telex_key_row_t a2 = key("alice", 3);
    assert_int_equal(telex_store_key_insert(s, &a2, err, sizeof err), -EEXIST);
    assert_string_equal(err, "an active key is already named \"alice\"");
    telex_key_row_t dup = key("carol", 1);
    assert_int_equal(telex_store_key_insert(s, &dup, err, sizeof err), -EIO);

    assert_int_equal(telex_store_key_get(s, a.id, &out, err, sizeof err), 0);
    assert_string_equal(out.name, "alice");
    assert_string_equal(out.models, "gpt-4o,demo");
    assert_memory_equal(out.hash, a.hash, 32);
    assert_true(out.budget_usd == 5);
    assert_int_equal(out.rpm, 60);
    assert_int_equal(out.tpm, 1000);
    assert_int_equal(out.max_concurrent, 4);
    assert_int_equal(out.expires_at, 1900000000);
    assert_int_equal(out.revoked_at, 0);
    assert_int_equal(telex_store_key_get(s, b.id, &out, err, sizeof err), 0);
    assert_true(out.budget_usd < 0);
    assert_int_equal(out.expires_at, 0);
    assert_int_equal(out.max_concurrent, 0); /* the default: unlimited */

    assert_int_equal(telex_store_key_find(s, "bob", &out, err, sizeof err), 0);
    assert_int_equal(out.id, b.id);
    char idtext[32];
    snprintf(idtext, sizeof idtext, "%lld", (long long)a.id);
    assert_int_equal(telex_store_key_find(s, idtext, &out, err, sizeof err), 0);
    assert_string_equal(out.name, "alice");
    assert_int_equal(telex_store_key_find(s, "nobody", &out, err, sizeof err), -ENOENT);
    assert_string_equal(err, "no key named \"nobody\"");
    assert_int_equal(telex_store_key_get(s, 999, &out, err, sizeof err), -ENOENT);
    assert_string_equal(err, "no key with id 999");

    size_t active = 0;
    assert_int_equal(telex_store_key_count_active(s, &active, err, sizeof err), 0);
    assert_int_equal(active, 2);

    /* revoke: idempotent, keeps the first time, frees the name */
    assert_int_equal(telex_store_key_revoke(s, a.id, 1800000000, err, sizeof err), 0);
    assert_int_equal(telex_store_key_revoke(s, a.id, 1800000999, err, sizeof err), 0);
    assert_int_equal(telex_store_key_get(s, a.id, &out, err, sizeof err), 0);
    assert_int_equal(out.revoked_at, 1800000000);
    assert_int_equal(telex_store_key_revoke(s, 999, 1, err, sizeof err), -ENOENT);
    assert_int_equal(telex_store_key_count_active(s, &active, err, sizeof err), 0);
    assert_int_equal(active, 1);
    assert_int_equal(telex_store_key_insert(s, &a2, err, sizeof err), 0);
    assert_int_equal(telex_store_key_find(s, "alice", &out, err, sizeof err), 0);
    assert_int_equal(out.id, a2.id); /* the active one wins */
    assert_int_equal(telex_store_key_revoke(s, a2.id, 1800000001, err, sizeof err), 0);
    assert_int_equal(telex_store_key_find(s, "alice", &out, err, sizeof err), 0);
    assert_int_equal(out.id, a2.id); /* then the newest */

    /* update: only the named fields change */
    telex_key_row_t v;
    memset(&v, 0, sizeof v);
    v.budget_usd = 12.5;
    v.rpm = 7;
    snprintf(v.name, sizeof v.name, "ignored");
    assert_int_equal(telex_store_key_update(s, b.id, TELEX_KEY_SET_BUDGET | TELEX_KEY_SET_RPM, &v, err, sizeof err), 0);
    assert_int_equal(telex_store_key_get(s, b.id, &out, err, sizeof err), 0);
    assert_string_equal(out.name, "bob");
    assert_true(out.budget_usd == 12.5);
    assert_int_equal(out.rpm, 7);
    assert_int_equal(out.max_concurrent, 0); /* not named: kept */
    v.max_concurrent = 3;
    assert_int_equal(telex_store_key_update(s, b.id, TELEX_KEY_SET_MAX_CONCURRENT, &v, err, sizeof err), 0);
    assert_int_equal(telex_store_key_get(s, b.id, &out, err, sizeof err), 0);
    assert_int_equal(out.max_concurrent, 3);
    assert_int_equal(out.rpm, 7);
    v.budget_usd = -1; /* clear */
    v.expires_at = 2000000000;
    snprintf(v.models, sizeof v.models, "x*");
    assert_int_equal(telex_store_key_update(s, b.id, TELEX_KEY_SET_BUDGET | TELEX_KEY_SET_EXPIRES | TELEX_KEY_SET_MODELS,
                                            &v, err, sizeof err), 0);
    assert_int_equal(telex_store_key_get(s, b.id, &out, err, sizeof err), 0);
    assert_true(out.budget_usd < 0);
    assert_int_equal(out.expires_at, 2000000000);
    assert_string_equal(out.models, "x*");
    assert_int_equal(telex_store_key_update(s, 999, TELEX_KEY_SET_RPM, &v, err, sizeof err), -ENOENT);
    v.rpm = -1;
    assert_int_equal(telex_store_key_update(s, b.id, TELEX_KEY_SET_RPM, &v, err, sizeof err), -EINVAL);
    v.max_concurrent = -2;
    assert_int_equal(telex_store_key_update(s, b.id, TELEX_KEY_SET_MAX_CONCURRENT, &v, err, sizeof err), -EINVAL);
    assert_string_equal(err, "max_concurrent must be 0 (unlimited) or more");
    assert_int_equal(telex_store_key_get(s, b.id, &out, err, sizeof err), 0);
    assert_int_equal(out.max_concurrent, 3); /* unchanged */
    /* renaming onto an active name */
    telex_key_row_t c = key("carol", 9);
    assert_int_equal(telex_store_key_insert(s, &c, err, sizeof err), 0);
    snprintf(v.name, sizeof v.name, "carol");
    assert_int_equal(telex_store_key_update(s, b.id, TELEX_KEY_SET_NAME, &v, err, sizeof err), -EEXIST);

    telex_key_row_t *rows = NULL;
    size_t n = 0;
    assert_int_equal(telex_store_key_list(s, &rows, &n, err, sizeof err), 0);
    assert_int_equal(n, 4);
    assert_int_equal(rows[0].id, a.id);
    assert_string_equal(rows[3].name, "carol");
    free(rows);
    telex_store_close(s);
}

/* ---- ledger and usage ------------------------------------------------------ */

static void test_ledger_rows_and_usage_totals(void **state)
{
    (void)state;
    telex_store_t *s = open_ok(db_path);
    char err[256];
    telex_key_row_t a = key("alice", 1), b = key("bob", 2);
    assert_int_equal(telex_store_key_insert(s, &a, err, sizeof err), 0);
    assert_int_equal(telex_store_key_insert(s, &b, err, sizeof err), 0);
    const int64_t day1 = 1735689600000; /* 2025-01-01T00:00:00Z */
    const int64_t day2 = day1 + 86400000;
    telex_usage_record_t rows[6] = {
        rec(a.id, "gpt-4o", day1 + 1000, 100, 50, 0.5),
        rec(a.id, "demo", day1 + 2000, 10, 5, 0.25),
        rec(b.id, "gpt-4o", day2 + 1000, 1000, 500, 2.0),
        rec(0, "demo", day2 + 2000, 1, 1, 0),
        rec(a.id, "gpt-4o", day2 + 3000, 7, 3, 0.125),
        rec(b.id, "gpt-4o", day2 + 86400000, 1, 1, 100), /* outside [day1, day2 end) */
    };
    rows[1].estimated = 1;
    rows[1].cached_tokens = 4;
    rows[2].reasoning_tokens = 200;
    rows[3].ttft_ms = -1;
    snprintf(rows[4].outcome, sizeof rows[4].outcome, "client_gone");
    assert_int_equal(telex_store_ledger_append(s, rows, 6, err, sizeof err), 0);

    telex_key_row_t out;
    assert_int_equal(telex_store_key_get(s, a.id, &out, err, sizeof err), 0);
    assert_true(out.spent_usd > 0.874 && out.spent_usd < 0.876);
    assert_int_equal(out.last_used_at, (day2 + 3000) / 1000);

    telex_usage_row_t *u = NULL;
    size_t n = 0;
    int trunc = 0;
    telex_usage_query_t q = {.from_ms = day1, .to_ms = day2 + 86400000, .group = TELEX_USAGE_GROUP_NONE, .key_id = -1};
    assert_int_equal(telex_store_usage(s, &q, &u, &n, &trunc, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(u[0].requests, 5);
    assert_int_equal(u[0].prompt_tokens, 1118);
    assert_int_equal(u[0].completion_tokens, 559);
    assert_int_equal(u[0].cached_tokens, 4);
    assert_int_equal(u[0].reasoning_tokens, 200);
    assert_int_equal(u[0].estimated_requests, 1);
    assert_int_equal(u[0].failed_requests, 1);
    assert_true(u[0].cost_usd > 2.874 && u[0].cost_usd < 2.876);
    free(u);

    q.group = TELEX_USAGE_GROUP_KEY;
    assert_int_equal(telex_store_usage(s, &q, &u, &n, &trunc, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(u[0].key_id, 0); /* anonymous sorts first (NULL) */
    assert_string_equal(u[0].key_name, "");
    assert_int_equal(u[1].key_id, a.id);
    assert_string_equal(u[1].key_name, "alice");
    assert_int_equal(u[1].requests, 3);
    assert_string_equal(u[2].key_name, "bob");
    assert_int_equal(u[2].requests, 1);
    free(u);

    q.group = TELEX_USAGE_GROUP_MODEL;
    assert_int_equal(telex_store_usage(s, &q, &u, &n, &trunc, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(u[0].model, "demo");
    assert_int_equal(u[0].requests, 2);
    assert_string_equal(u[1].model, "gpt-4o");
    assert_int_equal(u[1].requests, 3);
    free(u);

    q.group = TELEX_USAGE_GROUP_DAY;
    q.key_id = a.id;
    assert_int_equal(telex_store_usage(s, &q, &u, &n, &trunc, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(u[0].day, "2025-01-01");
    assert_int_equal(u[0].requests, 2);
    assert_string_equal(u[1].day, "2025-01-02");
    assert_int_equal(u[1].requests, 1);
    free(u);

    q.key_id = 0; /* anonymous only */
    q.group = TELEX_USAGE_GROUP_NONE;
    assert_int_equal(telex_store_usage(s, &q, &u, &n, &trunc, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(u[0].requests, 1);
    free(u);

    q.from_ms = day2 + 86400000 * 5; /* nothing there */
    q.to_ms = q.from_ms + 1000;
    q.key_id = -1;
    assert_int_equal(telex_store_usage(s, &q, &u, &n, &trunc, err, sizeof err), 0);
    assert_int_equal(n, 0);
    free(u);
    telex_store_close(s);
}

/* ---- the ledger writer --------------------------------------------------------- */

typedef struct {
    telex_ledger_t *ledger;
    int base;
    int n;
} appender_t;

static void *append_many(void *arg)
{
    appender_t *a = arg;
    for (int i = 0; i < a->n; i++) {
        telex_usage_record_t r = rec(0, "m", 1700000000000 + a->base + i, 1, 2, 0.001);
        if (telex_ledger_append(a->ledger, &r) != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_ledger_writer_loses_nothing_on_stop(void **state)
{
    (void)state;
    telex_store_t *s = open_ok(db_path);
    telex_ledger_t *l = NULL;
    char err[256];
    telex_ledger_options_t opt = {.flush_interval_seconds = 0.05, .batch_max = 100, .max_pending = 1000000};
    assert_int_equal(telex_ledger_start(&l, s, &opt, err, sizeof err), 0);
    pthread_t th[4];
    appender_t ap[4];
    for (int i = 0; i < 4; i++) {
        ap[i] = (appender_t){l, i * 100000, 5000};
        assert_int_equal(pthread_create(&th[i], NULL, append_many, &ap[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    stop_and_expect_rows(l, s, 20000);
}

static void test_ledger_flush_and_stats(void **state)
{
    (void)state;
    telex_store_t *s = open_ok(db_path);
    telex_ledger_t *l = NULL;
    char err[256];
    telex_ledger_options_t opt = {.flush_interval_seconds = 30}; /* only flush() makes it write */
    assert_int_equal(telex_ledger_start(&l, s, &opt, err, sizeof err), 0);
    for (int i = 0; i < 10; i++) {
        telex_usage_record_t r = rec(0, "m", 0, 1, 1, 0);
        assert_int_equal(telex_ledger_append(l, &r), 0);
    }
    assert_int_equal(telex_ledger_flush(l, 5), 0);
    assert_int_equal(sql_int(db_path, "SELECT count(*) FROM ledger"), 10);
    /* ts 0 = now */
    assert_true(sql_int(db_path, "SELECT min(ts_ms) FROM ledger") > 1700000000000);
    telex_ledger_stats_t st;
    telex_ledger_stats(l, &st);
    assert_int_equal(st.appended, 10);
    assert_int_equal(st.written, 10);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(telex_ledger_stop(l), 0);
    telex_store_close(s);
}

static void test_ledger_retries_a_failing_batch(void **state)
{
    (void)state;
    telex_store_t *s = open_ok(db_path);
    /* make every write fail: another connection renames the table away */
    sql_exec(db_path, "ALTER TABLE ledger RENAME TO ledger_away");
    telex_ledger_t *l = NULL;
    char err[256];
    telex_ledger_options_t opt = {.flush_interval_seconds = 0.02};
    assert_int_equal(telex_ledger_start(&l, s, &opt, err, sizeof err), 0);
    for (int i = 0; i < 50; i++) {
        telex_usage_record_t r = rec(0, "m", 1700000000000 + i, 1, 1, 0);
        assert_int_equal(telex_ledger_append(l, &r), 0);
    }
    assert_int_equal(telex_ledger_flush(l, 0.3), -EIO);
    telex_ledger_stats_t st;
    telex_ledger_stats(l, &st);
    assert_true(st.failed_batches >= 1);
    assert_int_equal(st.pending, 50);
    sql_exec(db_path, "ALTER TABLE ledger_away RENAME TO ledger");
    assert_int_equal(telex_ledger_flush(l, 5), 0);
    assert_int_equal(telex_ledger_stop(l), 0);
    telex_store_close(s);
    assert_int_equal(sql_int(db_path, "SELECT count(*) FROM ledger"), 50);
}

static void test_ledger_drops_only_beyond_max_pending(void **state)
{
    (void)state;
    telex_store_t *s = open_ok(db_path);
    /* every write fails (the table is renamed away): nothing drains */
    sql_exec(db_path, "ALTER TABLE ledger RENAME TO ledger_away");
    telex_ledger_t *l = NULL;
    char err[256];
    telex_ledger_options_t opt = {.flush_interval_seconds = 0.01, .max_pending = 300};
    assert_int_equal(telex_ledger_start(&l, s, &opt, err, sizeof err), 0);
    int accepted = 0, refused = 0;
    for (int i = 0; i < 310; i++) {
        telex_usage_record_t r = rec(0, "m", 1700000000000 + i, 1, 1, 0);
        int rc = telex_ledger_append(l, &r);
        if (rc == 0)
            accepted++;
        else if (rc == -ENOSPC)
            refused++;
    }
    assert_int_equal(accepted, 300);
    assert_int_equal(refused, 10);
    telex_ledger_stats_t st;
    telex_ledger_stats(l, &st);
    assert_int_equal(st.dropped, 10);
    sql_exec(db_path, "ALTER TABLE ledger_away RENAME TO ledger");
    assert_int_equal(telex_ledger_stop(l), 0);
    telex_store_close(s);
    assert_int_equal(sql_int(db_path, "SELECT count(*) FROM ledger"), 300);
}

/* Appends, waiting out a full queue (the writer spills it; this loop
 * appends far faster than any gateway, so it does fill it). */
static void append_patiently(telex_ledger_t *l, const telex_usage_record_t *r)
{
    for (int tries = 0; tries < 20000; tries++) {
        int rc = telex_ledger_append(l, r);
        if (rc == 0)
            return;
        assert_int_equal(rc, -ENOSPC);
        usleep(1000);
    }
    fail_msg("the ledger queue stayed full for 20 s");
}

static void test_ledger_spills_while_the_database_fails(void **state)
{
    (void)state;
    char spill[200];
    snprintf(spill, sizeof spill, "%s/spill/ledger.spill", dir);
    telex_store_t *s = open_ok(db_path);
    sql_exec(db_path, "ALTER TABLE ledger RENAME TO ledger_away");
    telex_ledger_t *l = NULL;
    char err[256];
    telex_ledger_options_t opt = {.flush_interval_seconds = 0.01, .batch_max = 50, .max_pending = 1000,
                                  .spill_path = spill};
    assert_int_equal(telex_ledger_start(&l, s, &opt, err, sizeof err), 0);
    /* a second process may not share the file */
    telex_ledger_t *l2 = NULL;
    assert_int_equal(telex_ledger_start(&l2, s, &opt, err, sizeof err), -EBUSY);
    assert_non_null(strstr(err, "in use by another telex process"));
    for (int i = 0; i < 5000; i++) {
        telex_usage_record_t r = rec(0, "m", 1700000000000 + i, 1, 1, 0);
        append_patiently(l, &r);
    }
    telex_ledger_stats_t st;
    telex_ledger_stats(l, &st);
    assert_true(st.spilled_total > 0); /* 5000 rows never fit in 1000 */
    assert_int_equal(telex_ledger_flush(l, 0.2), -EIO);
    sql_exec(db_path, "ALTER TABLE ledger_away RENAME TO ledger");
    assert_int_equal(telex_ledger_flush(l, 20), 0);
    telex_ledger_stats(l, &st);
    assert_int_equal(st.spilled, 0);
    stop_and_expect_rows(l, s, 5000);
    telex_spill_t *sp = NULL;
    assert_int_equal(telex_spill_open(&sp, spill, 0, err, sizeof err), 0);
    assert_int_equal(telex_spill_pending(sp), 0); /* replayed: nothing left */
    telex_spill_close(sp);
}

/* Another connection holds the ledger table (SQLite: a write lock, so our
 * INSERT waits its 5 s busy timeout; PostgreSQL: LOCK TABLE, so it waits
 * until the lock goes): the database is "slow". */
typedef struct {
    sqlite3 *db;
    PGconn *pg;
} holder_t;

static holder_t hold_ledger(void)
{
    holder_t h = {NULL, NULL};
    if (pg_base != NULL) {
        h.pg = PQconnectdb(db_path);
        assert_int_equal(PQstatus(h.pg), CONNECTION_OK);
        PQclear(PQexec(h.pg, "BEGIN"));
        PGresult *r = PQexec(h.pg, "LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE");
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
    } else {
        assert_int_equal(sqlite3_open(db_path, &h.db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(h.db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    }
    return h;
}

static void release_ledger(holder_t *h)
{
    if (h->pg != NULL) {
        PQclear(PQexec(h->pg, "COMMIT"));
        PQfinish(h->pg);
    } else {
        sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL);
        sqlite3_close(h->db);
    }
}

static void test_ledger_spills_while_the_database_is_slow(void **state)
{
    (void)state;
    char spill[200];
    snprintf(spill, sizeof spill, "%s/slow.spill", dir);
    telex_store_t *s = open_ok(db_path);
    telex_ledger_t *l = NULL;
    char err[256];
    telex_ledger_options_t opt = {.flush_interval_seconds = 0.01, .batch_max = 20, .max_pending = 100,
                                  .spill_path = spill};
    assert_int_equal(telex_ledger_start(&l, s, &opt, err, sizeof err), 0);
    holder_t h = hold_ledger();
    /* the writer gets stuck in its first batch; while it is, 300 more rows
     * arrive: far more than max_pending, none may be dropped */
    for (int i = 0; i < 400; i++) {
        telex_usage_record_t r = rec(0, "m", 1700000000000 + i, 1, 1, 0);
        append_patiently(l, &r);
    }
    telex_ledger_stats_t st;
    telex_ledger_stats(l, &st);
    assert_true(st.spilled_total >= 200);
    release_ledger(&h);
    assert_int_equal(telex_ledger_flush(l, 30), 0);
    stop_and_expect_rows(l, s, 400);
}

static void test_ledger_spill_survives_a_restart(void **state)
{
    (void)state;
    char spill[200];
    snprintf(spill, sizeof spill, "%s/ledger.spill", dir);
    telex_store_t *s = open_ok(db_path);
    sql_exec(db_path, "ALTER TABLE ledger RENAME TO ledger_away");
    telex_ledger_t *l = NULL;
    char err[256];
    telex_ledger_options_t opt = {.flush_interval_seconds = 0.01, .spill_path = spill};
    assert_int_equal(telex_ledger_start(&l, s, &opt, err, sizeof err), 0);
    for (int i = 0; i < 300; i++) {
        telex_usage_record_t r = rec(0, "m", 1700000000000 + i, 2, 3, 0);
        assert_int_equal(telex_ledger_append(l, &r), 0);
    }
    /* stop while the database fails: nothing lost, the rows are in the file */
    assert_int_equal(telex_ledger_stop(l), 0);
    telex_spill_t *sp = NULL;
    assert_int_equal(telex_spill_open(&sp, spill, 0, err, sizeof err), 0);
    assert_int_equal(telex_spill_pending(sp), 300);
    telex_spill_close(sp);
    struct stat fst;
    assert_int_equal(stat(spill, &fst), 0);
    assert_true(fst.st_size >= 8 << 20); /* room kept allocated for a full disk */
    /* a torn append after the last counted row (a crash mid-way) is not data */
    write_bytes(spill, "torn", 4, 32 + 300 * sizeof(telex_usage_record_t));
    sql_exec(db_path, "ALTER TABLE ledger_away RENAME TO ledger");
    assert_int_equal(telex_ledger_start(&l, s, &opt, err, sizeof err), 0);
    assert_int_equal(telex_ledger_flush(l, 20), 0);
    assert_int_equal(telex_ledger_stop(l), 0);
    telex_store_close(s);
    assert_int_equal(sql_int(db_path, "SELECT count(*) FROM ledger"), 300);
    assert_int_equal(sql_int(db_path, "SELECT sum(completion_tokens) FROM ledger"), 900);
    /* a file that is not a spill file is refused, never misread */
    char other[200];
    snprintf(other, sizeof other, "%s/not-a-spill", dir);
    write_bytes(other, "0123456789abcdef0123456789abcdef0123", 36, 0);
    opt.spill_path = other;
    s = open_ok(db_path);
    assert_int_equal(telex_ledger_start(&l, s, &opt, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "not a telex ledger spill file"));
    telex_store_close(s);
}

static void test_two_connections_share_the_file(void **state)
{
    (void)state;
    /* stop(NULL) is a no-op; two connections (two processes: serve and the
     * CLI, or two nodes) write the same database and notice each other's
     * key changes */
    assert_int_equal(telex_ledger_stop(NULL), 0);
    telex_store_t *s1 = open_ok(db_path), *s2 = open_ok(db_path);
    telex_usage_record_t r = rec(0, "m", 1700000000000, 1, 1, 0);
    assert_int_equal(telex_store_ledger_append(s1, &r, 1, NULL, 0), 0);
    assert_int_equal(telex_store_ledger_append(s2, &r, 1, NULL, 0), 0);
    int64_t v1 = 0, v2 = 0;
    assert_int_equal(telex_store_data_version(s1, &v1, NULL, 0), 0);
    assert_int_equal(telex_store_ledger_append(s2, &r, 1, NULL, 0), 0);
    telex_key_row_t k = key("dave", 4);
    assert_int_equal(telex_store_key_insert(s2, &k, NULL, 0), 0);
    /* PostgreSQL delivers the notification asynchronously: poll (bounded) */
    for (int i = 0; i < 200; i++) {
        assert_int_equal(telex_store_data_version(s1, &v2, NULL, 0), 0);
        if (v1 != v2)
            break;
        usleep(10000);
    }
    assert_true(v1 != v2); /* s1 notices s2's commit */
    telex_store_close(s1);
    telex_store_close(s2);
    assert_int_equal(sql_int(db_path, "SELECT count(*) FROM ledger"), 3);
}

/* ---- item 9 of issue 18, presets, absurd token counts --------------------------- */

static void test_empty_file_is_refused(void **state)
{
    (void)state;
    SQLITE_ONLY();
    char parent[200];
    snprintf(parent, sizeof parent, "%s/state", dir);
    mkdir(parent, 0700);
    int fd = open(db_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    close(fd);
    open_fails(db_path, -EINVAL, "the file is empty (0 bytes), not a telex database");
    struct stat st;
    assert_int_equal(stat(db_path, &st), 0);
    assert_int_equal(st.st_size, 0); /* left as it was */
}

static void test_missing_table_is_named(void **state)
{
    (void)state;
    telex_store_t *s = open_ok(db_path);
    char err[512];
    sql_exec(db_path, "ALTER TABLE ledger RENAME TO ledger_old");
    telex_usage_record_t r = rec(0, "m", 1700000000000, 1, 1, 0);
    assert_int_equal(telex_store_ledger_append(s, &r, 1, err, sizeof err), -EIO);
    if (strstr(err, "the database was changed outside telex") == NULL || strstr(err, "ledger") == NULL)
        fail_msg("unexpected message: %s", err);
    telex_store_close(s);
    open_fails(db_path, -EIO, "the table \"ledger\" is missing (schema version 3 has it)");
}

static void test_absurd_token_counts_do_not_break_totals(void **state)
{
    (void)state;
    telex_store_t *s = open_ok(db_path);
    char err[512];
    telex_usage_record_t rows[3] = {
        rec(0, "m", 1700000000000, UINT64_MAX, 5, 0),
        rec(0, "m", 1700000000001, (uint64_t)INT64_MAX, (uint64_t)INT64_MAX, 0),
        rec(0, "m", 1700000000002, 7, 3, 0),
    };
    assert_int_equal(telex_store_ledger_append(s, rows, 3, err, sizeof err), 0);
    /* clamped when stored */
    assert_int_equal(sql_int(db_path, "SELECT max(prompt_tokens) FROM ledger"), (int64_t)TELEX_USAGE_TOKENS_MAX);
    /* rows stored before the clamp (or by hand) still sum without overflow */
    sql_exec(db_path, "INSERT INTO ledger (ts_ms, model, provider, prompt_tokens, completion_tokens, cached_tokens, "
                      "reasoning_tokens, estimated, cost_usd, duration_ms, status, outcome) VALUES "
                      "(1700000000003, 'm', '', 9223372036854775807, 9223372036854775807, 0, 0, 0, 0, 1, 200, 'ok'),"
                      "(1700000000004, 'm', '', 9223372036854775807, -5, 0, 0, 0, 0, 1, 200, 'ok')");
    telex_usage_row_t *u = NULL;
    size_t n = 0;
    int trunc = 0;
    telex_usage_query_t q = {.from_ms = 0, .to_ms = 1800000000000, .group = TELEX_USAGE_GROUP_MODEL, .key_id = -1};
    assert_int_equal(telex_store_usage(s, &q, &u, &n, &trunc, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(u[0].requests, 5);
    assert_int_equal(u[0].prompt_tokens, 4 * TELEX_USAGE_TOKENS_MAX + 7);
    assert_int_equal(u[0].completion_tokens, 2 * TELEX_USAGE_TOKENS_MAX + 5 + 3);
    free(u);
    telex_store_close(s);
}

/* PostgreSQL: the keys table as versions 1 and 2 had it (no max_concurrent; the trigger without it). */
#define PG_KEYS_AT_V2                                                                                             \
    "DROP TRIGGER keys_changed ON keys; ALTER TABLE keys DROP COLUMN max_concurrent; "                           \
    "CREATE TRIGGER keys_changed AFTER INSERT OR DELETE OR UPDATE OF name, hash, expires_at, revoked_at, "        \
    "budget_usd, rpm, tpm, models ON keys FOR EACH STATEMENT EXECUTE FUNCTION telex_notify_change(); "

static void test_version_1_is_migrated(void **state)
{
    (void)state;
    /* a database of the previous version (keys and ledger, no presets):
     * opening migrates it, keeping what it holds */
    telex_store_t *s = open_ok(db_path);
    char err[512];
    telex_key_row_t k = key("old", 7);
    assert_int_equal(telex_store_key_insert(s, &k, err, sizeof err), 0);
    telex_store_close(s);
    if (pg_base != NULL)
        sql_exec(db_path, "DROP TABLE presets; " PG_KEYS_AT_V2 "UPDATE telex_schema SET version = 1");
    else
        sql_exec(db_path, "DROP TABLE presets; ALTER TABLE keys DROP COLUMN max_concurrent; PRAGMA user_version = 1");
    s = open_ok(db_path);
    assert_int_equal(telex_store_preset_put(s, "p", "{}", 1, err, sizeof err), 0);
    telex_key_row_t out;
    assert_int_equal(telex_store_key_find(s, "old", &out, err, sizeof err), 0);
    telex_store_close(s);
    assert_int_equal(sql_int(db_path, pg_base ? "SELECT version FROM telex_schema" : "PRAGMA user_version"), 3);
}

static void test_version_2_is_migrated(void **state)
{
    (void)state;
    /* a database of version 2 (no keys.max_concurrent): opening adds the column, every key unlimited,
     * keeping the rest of the row; the new column is then written and read */
    telex_store_t *s = open_ok(db_path);
    char err[512];
    telex_key_row_t k = key("old2", 8);
    k.rpm = 11;
    assert_int_equal(telex_store_key_insert(s, &k, err, sizeof err), 0);
    telex_store_close(s);
    if (pg_base != NULL)
        sql_exec(db_path, PG_KEYS_AT_V2 "UPDATE telex_schema SET version = 2");
    else
        sql_exec(db_path, "ALTER TABLE keys DROP COLUMN max_concurrent; PRAGMA user_version = 2");
    s = open_ok(db_path);
    telex_key_row_t out;
    assert_int_equal(telex_store_key_find(s, "old2", &out, err, sizeof err), 0);
    assert_int_equal(out.rpm, 11);
    assert_int_equal(out.max_concurrent, 0);
    telex_key_row_t v;
    memset(&v, 0, sizeof v);
    v.max_concurrent = 5;
    assert_int_equal(telex_store_key_update(s, out.id, TELEX_KEY_SET_MAX_CONCURRENT, &v, err, sizeof err), 0);
    assert_int_equal(telex_store_key_get(s, out.id, &out, err, sizeof err), 0);
    assert_int_equal(out.max_concurrent, 5);
    telex_store_close(s);
    assert_int_equal(sql_int(db_path, pg_base ? "SELECT version FROM telex_schema" : "PRAGMA user_version"), 3);
    assert_int_equal(sql_int(db_path, "SELECT max_concurrent FROM keys WHERE name = 'old2'"), 5);
}

static void test_presets(void **state)
{
    (void)state;
    telex_store_t *s = open_ok(db_path);
    char err[512];
    telex_preset_row_t p;
    assert_int_equal(telex_store_preset_get(s, "fast", &p, err, sizeof err), -ENOENT);
    assert_string_equal(err, "no stored preset named \"fast\"");
    assert_int_equal(telex_store_preset_put(s, "fast", "{\"model\":\"demo\"}", 1, err, sizeof err), 0);
    assert_int_equal(telex_store_preset_put(s, "fast", "{}", 1, err, sizeof err), -EEXIST);
    assert_string_equal(err, "a stored preset is already named \"fast\"");
    assert_int_equal(telex_store_preset_put(s, "slow", "{}", 0, err, sizeof err), -ENOENT);
    assert_int_equal(telex_store_preset_put(s, "", "{}", 1, err, sizeof err), -EINVAL);
    assert_int_equal(telex_store_preset_put(s, "alpha", "{\"model\":\"x\"}", 1, err, sizeof err), 0);
    assert_int_equal(telex_store_preset_get(s, "fast", &p, err, sizeof err), 0);
    assert_string_equal(p.name, "fast");
    assert_string_equal(p.body, "{\"model\":\"demo\"}");
    assert_true(p.created_at > 1700000000 && p.updated_at == p.created_at);
    free(p.body);
    assert_int_equal(telex_store_preset_put(s, "fast", "{\"model\":\"other\"}", 0, err, sizeof err), 0);
    telex_preset_row_t *rows = NULL;
    size_t n = 0;
    assert_int_equal(telex_store_preset_list(s, &rows, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].name, "alpha");
    assert_string_equal(rows[1].body, "{\"model\":\"other\"}");
    telex_store_preset_rows_free(rows, n);
    /* another connection sees preset changes */
    telex_store_t *s2 = open_ok(db_path);
    int64_t v1 = 0, v2 = 0;
    assert_int_equal(telex_store_data_version(s2, &v1, NULL, 0), 0);
    assert_int_equal(telex_store_preset_delete(s, "alpha", err, sizeof err), 0);
    assert_int_equal(telex_store_preset_delete(s, "alpha", err, sizeof err), -ENOENT);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(telex_store_data_version(s2, &v2, NULL, 0), 0);
        if (v1 != v2)
            break;
        usleep(10000);
    }
    assert_true(v1 != v2);
    telex_store_close(s2);
    telex_store_close(s);
}

int main(void)
{
    pg_base = getenv("TELEX_TEST_PG_URL");
    if (pg_base != NULL && *pg_base == '\0')
        pg_base = NULL;
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_creates_file_dirs_wal_and_schema),
        T(test_garbage_file_is_refused),
        T(test_corrupted_pages_are_refused),
        T(test_foreign_and_newer_databases_are_refused),
        T(test_unusable_paths_are_refused),
        T(test_keys),
        T(test_ledger_rows_and_usage_totals),
        T(test_ledger_writer_loses_nothing_on_stop),
        T(test_ledger_flush_and_stats),
        T(test_ledger_retries_a_failing_batch),
        T(test_ledger_drops_only_beyond_max_pending),
        T(test_ledger_spills_while_the_database_fails),
        T(test_ledger_spill_survives_a_restart),
        T(test_ledger_spills_while_the_database_is_slow),
        T(test_two_connections_share_the_file),
        T(test_empty_file_is_refused),
        T(test_missing_table_is_named),
        T(test_absurd_token_counts_do_not_break_totals),
        T(test_version_1_is_migrated),
        T(test_version_2_is_migrated),
        T(test_presets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
