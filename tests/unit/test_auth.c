/*
 * tests/unit/test_auth.c — API keys and the services as the relay meets
 * them, on a real database in a mkdtemp directory: key format and
 * hashing (the per-thread digest gives a one-shot SHA-256's bytes, for
 * every length around SHA-256's block, call after call, in several
 * threads), validation helpers, the secure default (no keys off loopback
 * refuses to start), authenticate (missing, malformed, unknown, revoked,
 * expired keys, anonymous mode and SDK placeholder keys, the stream owner
 * of one- and two-digit key ids), admit (model allow-list 403, budget 402,
 * rate limits 429 with Retry-After), the admin token, keys created by
 * another process taking effect within seconds, and no secret in any
 * message.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "config/config.h"
#include "gateway/auth.h"
#include "gateway/keys.h"
#include "gateway/limits.h"
#include "gateway/services.h"
#include "gateway/usage.h"
#include "store/store.h"

static char dir[64], db_path[128], yaml_path[128];
static telex_config_t *cfg;
static telex_services_t *svc;

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/telex-auth-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(db_path, sizeof db_path, "%s/telex.db", dir);
    snprintf(yaml_path, sizeof yaml_path, "%s/telex.yaml", dir);
    unsetenv("TELEX_DB");
    unsetenv("TELEX_ADMIN_TOKEN");
    unsetenv("TELEX_LISTEN");
    cfg = NULL;
    svc = NULL;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    telex_services_close(svc);
    telex_config_free(cfg);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Loads a config (listen + extra YAML) with the store in the temp dir. */
static void load_config(const char *listen, const char *extra)
{
    FILE *f = fopen(yaml_path, "w");
    assert_non_null(f);
    fprintf(f, "listen: \"%s\"\nstore:\n  path: %s\n  flush_interval_seconds: 0.05\n%s", listen, db_path,
            extra ? extra : "");
    fclose(f);
    char err[512];
    telex_config_free(cfg);
    cfg = NULL;
    if (telex_config_load(&cfg, yaml_path, err, sizeof err) != 0)
        fail_msg("config: %s", err);
}

static void open_services(bool allow_anonymous)
{
    char err[512];
    telex_services_options_t o = {.allow_anonymous = allow_anonymous};
    if (telex_services_open(&svc, cfg, &o, err, sizeof err) != 0)
        fail_msg("services: %s", err);
}

/* Creates a key through the services' store; returns its id. */
static int64_t create_key(const char *name, char *key_out, void (*tweak)(telex_key_row_t *))
{
    telex_key_row_t row;
    char err[256];
    assert_int_equal(telex_key_new_row(name, &row, key_out), 0);
    if (tweak)
        tweak(&row);
    assert_int_equal(telex_store_key_insert(telex_services_store(svc), &row, err, sizeof err), 0);
    assert_int_equal(telex_services_reload_keys(svc), 0);
    return row.id;
}

static int auth(const char *header, telex_grant_t *g, telex_api_error_t *e)
{
    memset(e, 0, sizeof(*e));
    return telex_auth_authenticate(svc, header, header ? strlen(header) : 0, g, e);
}

static void bearer(char *out, size_t n, const char *key)
{
    snprintf(out, n, "Bearer %s", key);
}

/* ---- keys ------------------------------------------------------------------ */

static void test_key_format(void **state)
{
    (void)state;
    char a[TELEX_KEY_LEN + 1], b[TELEX_KEY_LEN + 1];
    assert_int_equal(telex_key_generate(a), 0);
    assert_int_equal(telex_key_generate(b), 0);
    assert_int_equal(strlen(a), 47);
    assert_memory_equal(a, "tlx_", 4);
    for (int i = 4; i < 47; i++)
        assert_non_null(strchr("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", a[i]));
    assert_string_not_equal(a, b);
    assert_true(telex_key_well_formed(a, 47));
    assert_false(telex_key_well_formed(a, 46));
    assert_false(telex_key_well_formed("sk-0123456789012345678901234567890123456789012", 47));
    char c[48];
    memcpy(c, a, 48);
    c[20] = '-';
    assert_false(telex_key_well_formed(c, 47));
    assert_false(telex_key_well_formed(NULL, 0));
    /* digits vary over many keys (no stuck leading zeros) */
    int firsts[128] = {0};
    for (int i = 0; i < 200; i++) {
        assert_int_equal(telex_key_generate(a), 0);
        firsts[(unsigned char)a[4]]++;
    }
    int distinct = 0;
    for (int i = 0; i < 128; i++)
        distinct += firsts[i] > 0;
    assert_true(distinct >= 5); /* 43 digits of 256 bits: the first is 0..9 or A..Z/a..? */

    uint8_t h1[32], h2[32];
    telex_key_hash("tlx_x", 5, h1);
    telex_key_hash("tlx_x", 5, h2);
    assert_memory_equal(h1, h2, 32);
    telex_key_hash("tlx_y", 5, h2);
    assert_memory_not_equal(h1, h2, 32);
    /* the SHA-256 of "abc" */
    static const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                    0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                    0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    telex_key_hash("abc", 3, h1);
    assert_memory_equal(h1, abc, 32);

    telex_key_row_t row;
    assert_int_equal(telex_key_new_row("alice", &row, a), 0);
    assert_string_equal(row.name, "alice");
    assert_int_equal(strlen(row.prefix), 12);
    assert_memory_equal(row.prefix, a, 12);
    telex_key_hash(a, 47, h1);
    assert_memory_equal(row.hash, h1, 32);
    assert_true(row.budget_usd < 0);
}

/* telex_key_hash over inputs of 0 to 200 bytes (the block is 64; padding
 * needs 9 more bytes) against EVP_Digest's one-shot SHA-256, which it
 * replaced. The thread's number shifts its inputs. NULL on a mismatch (no
 * cmocka assert: it runs in other threads too). */
static void *check_key_hashes(void *arg)
{
    int shift = *(int *)arg;
    char text[200];
    for (int round = 0; round < 3; round++) {
        for (size_t len = 0; len <= sizeof text; len++) {
            for (size_t i = 0; i < len; i++)
                text[i] = (char)('0' + (i * 31 + len + (size_t)shift + (size_t)round) % 75);
            uint8_t got[TELEX_KEY_HASH_LEN], want[TELEX_KEY_HASH_LEN];
            unsigned int n = 0;
            memset(got, 0xaa, sizeof got);
            telex_key_hash(text, len, got);
            if (EVP_Digest(text, len, want, &n, EVP_sha256(), NULL) != 1 || n != sizeof want ||
                memcmp(got, want, sizeof want) != 0)
                return NULL;
        }
    }
    return arg;
}

static void test_key_hash_equals_one_shot_sha256(void **state)
{
    (void)state;
    int shifts[4] = {0, 1, 2, 3};
    assert_non_null(check_key_hashes(&shifts[0]));
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, check_key_hashes, &shifts[i + 1]), 0);
    for (int i = 0; i < 3; i++) {
        void *ok = NULL;
        assert_int_equal(pthread_join(t[i], &ok), 0);
        assert_non_null(ok);
    }
    assert_non_null(check_key_hashes(&shifts[3])); /* this thread's context again, after the others */
}

static void test_validation_helpers(void **state)
{
    (void)state;
    char err[256], out[64];
    assert_int_equal(telex_key_check_name("alice", err, sizeof err), 0);
    assert_int_equal(telex_key_check_name("team a/prod", err, sizeof err), 0);
    assert_int_equal(telex_key_check_name("", err, sizeof err), -EINVAL);
    assert_int_equal(telex_key_check_name("123", err, sizeof err), -EINVAL);
    assert_string_equal(err, "a key name cannot be only digits (digits name a key by its id)");
    assert_int_equal(telex_key_check_name("a\nb", err, sizeof err), -EINVAL);
    char long_name[80];
    memset(long_name, 'x', 65);
    long_name[65] = '\0';
    assert_int_equal(telex_key_check_name(long_name, err, sizeof err), -EINVAL);

    const char *items[] = {"gpt-4o, demo", "openai/gpt-4o-mini", "llama3:8b", "gpt-*"};
    assert_int_equal(telex_key_join_models(items, 4, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "gpt-4o,demo,openai/gpt-4o-mini,llama3:8b,gpt-*");
    const char *bad1[] = {"gp t"};
    assert_int_equal(telex_key_join_models(bad1, 1, out, sizeof out, err, sizeof err), -EINVAL);
    assert_string_equal(err, "model \"gp t\": only letters, digits and . _ : / @ + - * are allowed");
    const char *bad2[] = {"g*pt"};
    assert_int_equal(telex_key_join_models(bad2, 1, out, sizeof out, err, sizeof err), -EINVAL);
    const char *many[] = {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbb"};
    assert_int_equal(telex_key_join_models(many, 2, out, sizeof out, err, sizeof err), -EINVAL);
    assert_int_equal(telex_key_join_models(NULL, 0, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "");
    /* an empty name is refused, never read as "every model" (issue 18) */
    const char *empty[][1] = {{""}, {"  "}, {"a,,b"}};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(telex_key_join_models(empty[i], 1, out, sizeof out, err, sizeof err), -EINVAL);
        assert_string_equal(err, "an empty model name (leave the list out, or use null or all, for every model)");
    }

    assert_int_equal(telex_key_check_budget(0, err, sizeof err), 0);
    assert_int_equal(telex_key_check_budget(-1, err, sizeof err), -EINVAL);
    assert_int_equal(telex_key_check_budget(0.0 / 0.0, err, sizeof err), -EINVAL);
    assert_int_equal(telex_key_check_rate(60, "rpm", err, sizeof err), 0);
    assert_int_equal(telex_key_check_rate(-1, "rpm", err, sizeof err), -EINVAL);
    assert_string_equal(err, "rpm is a whole number from 0 (unlimited) to 1000000000");

    assert_true(telex_key_allows_model("", "anything", NULL));
    assert_true(telex_key_allows_model("a, b ,c", "b", NULL));
    assert_false(telex_key_allows_model("a,b", "bb", NULL));
    assert_true(telex_key_allows_model("gpt-4o*", "gpt-4o-mini", NULL));
    assert_false(telex_key_allows_model("gpt-4o*", "gpt-3.5", NULL));
    assert_true(telex_key_allows_model("*", "x", NULL));
    assert_true(telex_key_allows_model("preset:summary", "gpt-4o", "summary"));
    assert_false(telex_key_allows_model("preset:summary", "gpt-4o", "other"));
    assert_false(telex_key_allows_model("preset:summary", "gpt-4o", NULL));
    assert_true(telex_key_allows_model("gpt-4o", "gpt-4o", "any-preset"));

    const int64_t now = 1767225600; /* 2026-01-01T00:00:00Z */
    int64_t t = -1;
    assert_int_equal(telex_parse_expiry("30d", now, &t, err, sizeof err), 0);
    assert_int_equal(t, now + 30 * 86400);
    assert_int_equal(telex_parse_expiry("12h", now, &t, err, sizeof err), 0);
    assert_int_equal(t, now + 12 * 3600);
    assert_int_equal(telex_parse_expiry("90m", now, &t, err, sizeof err), 0);
    assert_int_equal(t, now + 5400);
    assert_int_equal(telex_parse_expiry("2w", now, &t, err, sizeof err), 0);
    assert_int_equal(t, now + 14 * 86400);
    assert_int_equal(telex_parse_expiry("2026-01-31", now, &t, err, sizeof err), 0);
    assert_int_equal(t, now + 30 * 86400);
    assert_int_equal(telex_parse_expiry("2026-01-02T12:30:00Z", now, &t, err, sizeof err), 0);
    assert_int_equal(t, now + 86400 + 12 * 3600 + 1800);
    assert_int_equal(telex_parse_expiry("never", now, &t, err, sizeof err), 0);
    assert_int_equal(t, 0);
    assert_int_equal(telex_parse_expiry("2025-12-31", now, &t, err, sizeof err), -EINVAL);
    assert_string_equal(err, "is in the past; revoke a key to stop it at once");
    static const char *const junk[] = {"", "tomorrow", "0d", "5y", "2026-13-01", "2026-01-31T12:00:00+02:00",
                                       "2026-01-31x", "-5d"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        if (telex_parse_expiry(junk[i], now, &t, err, sizeof err) != -EINVAL)
            fail_msg("expiry '%s' was accepted", junk[i]);
}

/* A row as a database edited by hand may hold it: what JSON cannot carry
 * shows as "?" or null, and the row is still shown (never NULL). */
static void test_key_json_of_a_row_written_by_hand(void **state)
{
    (void)state;
    telex_key_row_t row;
    memset(&row, 0, sizeof row);
    row.id = 7;
    snprintf(row.name, sizeof row.name, "caf\xc3");   /* cut inside a character */
    snprintf(row.prefix, sizeof row.prefix, "tlx_\xff"); /* not UTF-8 */
    snprintf(row.models, sizeof row.models, "a,b");
    row.budget_usd = 1.0 / 0.0;
    row.spent_usd = 0.0 / 0.0;
    json_t *j = telex_key_to_json(&row, 0, 0);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "?");
    assert_string_equal(json_string_value(json_object_get(j, "prefix")), "?");
    assert_true(json_is_null(json_object_get(j, "budget_usd")));
    assert_true(json_is_null(json_object_get(j, "spent_usd")));
    assert_int_equal(json_array_size(json_object_get(j, "models")), 2);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(text);
    free(text);
    json_decref(j);
    /* an ordinary row: the numbers as they are */
    snprintf(row.name, sizeof row.name, "alice");
    snprintf(row.prefix, sizeof row.prefix, "tlx_abcdefgh");
    row.budget_usd = 2.5;
    row.spent_usd = 0.25;
    j = telex_key_to_json(&row, 0.5, 0);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "alice");
    assert_string_equal(json_string_value(json_object_get(j, "prefix")), "tlx_abcdefgh");
    assert_true(json_real_value(json_object_get(j, "budget_usd")) == 2.5);
    assert_true(json_real_value(json_object_get(j, "spent_usd")) == 0.5);
    json_decref(j);
}

/* ---- the secure default ---------------------------------------------------------- */

static void test_secure_default(void **state)
{
    (void)state;
    char err[512];
    /* not loopback, no keys: refuses to start, and says how to fix it */
    load_config("0.0.0.0:0", NULL);
    telex_services_options_t o = {0};
    assert_int_equal(telex_services_open(&svc, cfg, &o, err, sizeof err), -EPERM);
    assert_null(svc);
    assert_non_null(strstr(err, "telex listens on 0.0.0.0:0, which is not a loopback address, and has no API keys"));
    assert_non_null(strstr(err, "telex keys create --name NAME"));
    assert_non_null(strstr(err, "--allow-anonymous"));
    /* ...unless told so, by flag or config */
    o.allow_anonymous = true;
    assert_int_equal(telex_services_open(&svc, cfg, &o, err, sizeof err), 0);
    assert_true(telex_services_anonymous_allowed(svc));
    telex_services_close(svc);
    svc = NULL;
    load_config("0.0.0.0:0", "auth:\n  allow_anonymous: true\n");
    o.allow_anonymous = false;
    assert_int_equal(telex_services_open(&svc, cfg, &o, err, sizeof err), 0);
    telex_services_close(svc);
    svc = NULL;
    /* loopback without keys: anonymous allowed; once a key exists, not */
    load_config("127.0.0.1:0", NULL);
    open_services(false);
    assert_true(telex_services_anonymous_allowed(svc));
    char key[TELEX_KEY_LEN + 1];
    int64_t id = create_key("alice", key, NULL);
    assert_false(telex_services_anonymous_allowed(svc));
    telex_services_close(svc);
    svc = NULL;
    /* with a key, any address may be used */
    load_config("0.0.0.0:0", NULL);
    open_services(false);
    assert_false(telex_services_anonymous_allowed(svc));
    /* revoking the last key: no anonymous access off loopback */
    assert_int_equal(telex_store_key_revoke(telex_services_store(svc), id, 1, NULL, 0), 0);
    assert_int_equal(telex_services_reload_keys(svc), 0);
    assert_false(telex_services_anonymous_allowed(svc));
}

static void test_store_problems_stop_the_start(void **state)
{
    (void)state;
    char err[512];
    FILE *f = fopen(db_path, "w");
    fputs("this is not a database, it is a note that happens to be large enough to look like one.........", f);
    for (int i = 0; i < 100; i++)
        fputs("0123456789abcdef0123456789abcdef0123456789abcdef", f);
    fclose(f);
    load_config("127.0.0.1:0", NULL);
    telex_services_options_t o = {0};
    assert_int_equal(telex_services_open(&svc, cfg, &o, err, sizeof err), -EIO);
    assert_non_null(strstr(err, db_path));
    assert_non_null(strstr(err, "the database is corrupted"));
}

/* ---- authenticate ------------------------------------------------------------------- */

static void expire(telex_key_row_t *r)
{
    r->expires_at = (int64_t)time(NULL) - 10;
}

static void test_authenticate(void **state)
{
    (void)state;
    load_config("127.0.0.1:0", NULL);
    open_services(false);
    telex_grant_t g;
    telex_api_error_t e;
    /* no keys, loopback: anonymous, whatever placeholder an SDK sends */
    assert_int_equal(auth(NULL, &g, &e), 0);
    assert_int_equal(g.key_id, 0);
    assert_string_equal(g.owner, "");
    assert_int_equal(auth("Bearer sk-not-checked", &g, &e), 0);
    assert_int_equal(g.key_id, 0);

    char key[TELEX_KEY_LEN + 1], expired_key[TELEX_KEY_LEN + 1], h[128];
    int64_t id = create_key("alice", key, NULL);
    create_key("old", expired_key, expire);

    assert_int_equal(auth(NULL, &g, &e), 401);
    assert_string_equal(e.code, "missing_api_key");
    assert_string_equal(e.type, "invalid_request_error");
    assert_int_equal(auth("", &g, &e), 401);
    assert_string_equal(e.code, "missing_api_key");
    assert_int_equal(auth("Bearer ", &g, &e), 401);
    assert_string_equal(e.code, "missing_api_key");
    assert_int_equal(auth("Basic dXNlcjpwYXNz", &g, &e), 401);
    assert_string_equal(e.code, "invalid_api_key");
    assert_string_equal(e.message, "The Authorization header must be `Bearer <API key>`.");
    assert_int_equal(auth("Bearer sk-something-else", &g, &e), 401);
    assert_string_equal(e.code, "invalid_api_key");
    assert_null(strstr(e.message, "sk-something"));
    /* a well-formed key that does not exist */
    char other[TELEX_KEY_LEN + 1];
    assert_int_equal(telex_key_generate(other), 0);
    bearer(h, sizeof h, other);
    assert_int_equal(auth(h, &g, &e), 401);
    assert_string_equal(e.code, "invalid_api_key");
    assert_string_equal(e.message, "Incorrect API key provided.");
    /* the right key, with any case of "bearer" and extra blanks */
    snprintf(h, sizeof h, "bearer   %s  ", key);
    assert_int_equal(auth(h, &g, &e), 0);
    assert_int_equal(g.key_id, id);
    char owner[32];
    snprintf(owner, sizeof owner, "key:%lld", (long long)id);
    assert_string_equal(g.owner, owner);
    /* expired */
    bearer(h, sizeof h, expired_key);
    assert_int_equal(auth(h, &g, &e), 401);
    assert_string_equal(e.code, "key_expired");
    assert_non_null(strstr(e.message, "This API key expired at 20"));
    /* revoked: at once for this process */
    assert_int_equal(telex_store_key_revoke(telex_services_store(svc), id, (int64_t)time(NULL), NULL, 0), 0);
    assert_int_equal(telex_services_reload_keys(svc), 0);
    bearer(h, sizeof h, key);
    assert_int_equal(auth(h, &g, &e), 401);
    assert_string_equal(e.code, "key_revoked");
    assert_null(strstr(e.message, key));
}

/* The stream owner a key's requests get: "key:<id>" for one- and two-digit
 * ids alike (written without snprintf now). */
static void test_owner_is_the_key_id(void **state)
{
    (void)state;
    load_config("127.0.0.1:0", NULL);
    open_services(false);
    char keys[12][TELEX_KEY_LEN + 1], h[128], want[32];
    int64_t ids[12];
    for (int i = 0; i < 12; i++) {
        char name[16];
        snprintf(name, sizeof name, "k%d", i);
        ids[i] = create_key(name, keys[i], NULL);
    }
    assert_true(ids[11] >= 10);
    for (int i = 0; i < 12; i++) {
        telex_grant_t g;
        telex_api_error_t e;
        snprintf(h, sizeof h, "Bearer %.*s", TELEX_KEY_LEN, keys[i]);
        assert_int_equal(auth(h, &g, &e), 0);
        assert_int_equal(g.key_id, ids[i]);
        snprintf(want, sizeof want, "key:%lld", (long long)ids[i]);
        assert_string_equal(g.owner, want);
    }
}

static void test_anonymous_mode_still_checks_telex_keys(void **state)
{
    (void)state;
    load_config("0.0.0.0:0", NULL);
    open_services(true);
    char key[TELEX_KEY_LEN + 1], h[128], other[TELEX_KEY_LEN + 1];
    create_key("alice", key, NULL);
    telex_grant_t g;
    telex_api_error_t e;
    assert_int_equal(auth(NULL, &g, &e), 0);
    assert_int_equal(g.key_id, 0);
    assert_int_equal(auth("Bearer client-key-not-checked", &g, &e), 0);
    assert_int_equal(g.key_id, 0);
    bearer(h, sizeof h, key);
    assert_int_equal(auth(h, &g, &e), 0);
    assert_true(g.key_id > 0);
    assert_int_equal(telex_key_generate(other), 0);
    bearer(h, sizeof h, other);
    assert_int_equal(auth(h, &g, &e), 401); /* a telex key that is wrong is never ignored */
}

/* ---- admit ------------------------------------------------------------------------------ */

static void limited(telex_key_row_t *r)
{
    snprintf(r->models, sizeof r->models, "demo,gpt-4o*,preset:summary");
    r->rpm = 2;
}

static void budgeted(telex_key_row_t *r)
{
    r->budget_usd = 0.01;
}

static void tpm_limited(telex_key_row_t *r)
{
    r->tpm = 100;
}

static void test_admit(void **state)
{
    (void)state;
    load_config("127.0.0.1:0", NULL);
    open_services(false);
    char k1[TELEX_KEY_LEN + 1], k2[TELEX_KEY_LEN + 1], k3[TELEX_KEY_LEN + 1], h[128];
    create_key("limited", k1, limited);
    int64_t id2 = create_key("budget", k2, budgeted);
    create_key("tokens", k3, tpm_limited);
    telex_grant_t g;
    telex_api_error_t e;

    bearer(h, sizeof h, k1);
    assert_int_equal(auth(h, &g, &e), 0);
    assert_int_equal(telex_auth_admit(svc, &g, "gpt-3.5", NULL, 10, &e), 403);
    assert_string_equal(e.code, "model_not_allowed");
    assert_string_equal(e.param, "model");
    assert_string_equal(e.message,
                        "This API key may not use model 'gpt-3.5'. It may use: demo,gpt-4o*,preset:summary.");
    assert_false(g.admitted);
    /* the 403 took no request from the rate limit */
    assert_int_equal(telex_auth_admit(svc, &g, "gpt-4o-mini", NULL, 10, &e), 0);
    assert_true(g.admitted);
    assert_int_equal(g.reserved_tokens, 0); /* no tpm limit: nothing reserved */
    assert_int_equal(telex_auth_admit(svc, &g, "other-model", "summary", 10, &e), 0);
    assert_int_equal(telex_auth_admit(svc, &g, "demo", NULL, 10, &e), 429);
    assert_string_equal(e.type, "rate_limit_error");
    assert_string_equal(e.code, "rate_limit_exceeded");
    assert_int_equal(e.retry_after, 30);
    assert_non_null(strstr(e.message, "2 requests per minute"));

    /* budget: spend recorded through telex_usage_record counts at once */
    bearer(h, sizeof h, k2);
    assert_int_equal(telex_authorize(svc, h, strlen(h), "demo", NULL, 5, &g, &e), 0);
    telex_usage_record_t rec;
    telex_usage_record_init(&rec, &g, "demo", "demo");
    telex_usage_t u = {.prompt_tokens = 10, .completion_tokens = 20};
    telex_usage_record_set(&rec, &u, 0.01);
    assert_int_equal(telex_usage_record(svc, &g, &rec), 0);
    assert_int_equal(telex_authorize(svc, h, strlen(h), "demo", NULL, 5, &g, &e), 402);
    assert_string_equal(e.type, "insufficient_quota");
    assert_string_equal(e.code, "budget_exceeded");
    assert_string_equal(e.message, "This API key has used its budget: it spent $0.01 of $0.01. Ask an "
                                   "administrator to raise it (telex keys update --budget-usd).");
    /* raising the budget (another process or the admin API) lets it through */
    telex_key_row_t v;
    memset(&v, 0, sizeof v);
    v.budget_usd = 1;
    assert_int_equal(telex_store_key_update(telex_services_store(svc), id2, TELEX_KEY_SET_BUDGET, &v, NULL, 0), 0);
    assert_int_equal(telex_services_reload_keys(svc), 0);
    assert_int_equal(telex_authorize(svc, h, strlen(h), "demo", NULL, 5, &g, &e), 0);

    /* a budget of a fraction of a cent reads as itself, not "$0.0000" */
    char k4[64];
    int64_t id4 = create_key("tiny", k4, NULL);
    v.budget_usd = 0.00005;
    assert_int_equal(telex_store_key_update(telex_services_store(svc), id4, TELEX_KEY_SET_BUDGET, &v, NULL, 0), 0);
    assert_int_equal(telex_services_reload_keys(svc), 0);
    bearer(h, sizeof h, k4);
    assert_int_equal(telex_authorize(svc, h, strlen(h), "demo", NULL, 5, &g, &e), 0);
    telex_usage_record_init(&rec, &g, "demo", "demo");
    telex_usage_record_set(&rec, &u, 0.000062);
    assert_int_equal(telex_usage_record(svc, &g, &rec), 0);
    assert_int_equal(telex_authorize(svc, h, strlen(h), "demo", NULL, 5, &g, &e), 402);
    assert_string_equal(e.message, "This API key has used its budget: it spent $0.000062 of $0.00005. Ask an "
                                   "administrator to raise it (telex keys update --budget-usd).");
    bearer(h, sizeof h, k2);

    /* tokens per minute: the reservation, then the real count */
    bearer(h, sizeof h, k3);
    assert_int_equal(telex_authorize(svc, h, strlen(h), "demo", NULL, 60, &g, &e), 0);
    assert_int_equal(g.reserved_tokens, 60);
    telex_usage_record_init(&rec, &g, "demo", "demo");
    u = (telex_usage_t){.prompt_tokens = 60, .completion_tokens = 400};
    telex_usage_record_set(&rec, &u, 0);
    assert_int_equal(telex_usage_record(svc, &g, &rec), 0);
    assert_int_equal(telex_authorize(svc, h, strlen(h), "demo", NULL, 1, &g, &e), 429);
    assert_non_null(strstr(e.message, "100 tokens per minute"));
    assert_true(e.retry_after >= 200 && e.retry_after <= 220);

    /* an admitted request that never ran gives its reservation back */
    telex_grant_t g2;
    create_key("tokens2", k3, tpm_limited);
    bearer(h, sizeof h, k3);
    assert_int_equal(telex_authorize(svc, h, strlen(h), "demo", NULL, 100, &g2, &e), 0);
    assert_int_equal(telex_authorize(svc, h, strlen(h), "demo", NULL, 1, &g, &e), 429); /* bucket at 0 */
    telex_auth_release(svc, &g2);
    assert_int_equal(g2.reserved_tokens, 0);
    assert_int_equal(telex_authorize(svc, h, strlen(h), "demo", NULL, 1, &g, &e), 0);

    /* anonymous callers have no limits */
    telex_grant_t anon = {0};
    for (int i = 0; i < 10; i++)
        assert_int_equal(telex_auth_admit(svc, &anon, "x", NULL, 100000, &e), 0);
}

static void test_admin_token(void **state)
{
    (void)state;
    load_config("127.0.0.1:0", NULL);
    open_services(false);
    assert_false(telex_auth_is_admin(svc, "Bearer anything-at-all-0123", 27)); /* none configured */
    telex_services_close(svc);
    svc = NULL;
    load_config("127.0.0.1:0", "auth:\n  admin_token: adm-0123456789abcdef\n");
    open_services(false);
    const char *good = "Bearer adm-0123456789abcdef";
    assert_true(telex_auth_is_admin(svc, good, strlen(good)));
    assert_false(telex_auth_is_admin(svc, good, strlen(good) - 1));
    assert_false(telex_auth_is_admin(svc, "adm-0123456789abcdef", 20));
    assert_false(telex_auth_is_admin(svc, NULL, 0));
    /* the admin token is not an API key */
    telex_grant_t g;
    telex_api_error_t e;
    char key[TELEX_KEY_LEN + 1];
    create_key("alice", key, NULL);
    assert_int_equal(auth(good, &g, &e), 401);
    assert_null(strstr(e.message, "adm-0123"));
}

static void test_keys_from_another_process_take_effect(void **state)
{
    (void)state;
    load_config("127.0.0.1:0", NULL);
    open_services(false);
    /* a second connection to the file, as `telex keys create` would be */
    telex_store_t *cli = NULL;
    char err[256], key[TELEX_KEY_LEN + 1], h[128];
    assert_int_equal(telex_store_open(&cli, db_path, err, sizeof err), 0);
    telex_key_row_t row;
    assert_int_equal(telex_key_new_row("bob", &row, key), 0);
    assert_int_equal(telex_store_key_insert(cli, &row, err, sizeof err), 0);
    bearer(h, sizeof h, key);
    telex_grant_t g;
    telex_api_error_t e;
    int ok = 0;
    for (int i = 0; i < 60 && !ok; i++) { /* the ledger thread looks every second */
        ok = auth(h, &g, &e) == 0;
        if (!ok) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    assert_true(ok);
    assert_int_equal(g.key_id, row.id);
    assert_false(telex_services_anonymous_allowed(svc));
    /* and a revocation from there too */
    assert_int_equal(telex_store_key_revoke(cli, row.id, (int64_t)time(NULL), err, sizeof err), 0);
    ok = 0;
    for (int i = 0; i < 60 && !ok; i++) {
        ok = auth(h, &g, &e) == 401;
        if (!ok) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    assert_true(ok);
    assert_string_equal(e.code, "key_revoked");
    telex_store_close(cli);
}

static void test_close_writes_every_row(void **state)
{
    (void)state;
    /* a long flush interval: only the close writes */
    FILE *f = fopen(yaml_path, "w");
    fprintf(f, "listen: \"127.0.0.1:0\"\nstore:\n  path: %s\n  flush_interval_seconds: 30\n", db_path);
    fclose(f);
    char err[256];
    assert_int_equal(telex_config_load(&cfg, yaml_path, err, sizeof err), 0);
    open_services(false);
    telex_grant_t anon = {0};
    for (int i = 0; i < 2500; i++) {
        telex_usage_record_t rec;
        telex_usage_record_init(&rec, &anon, "demo", "demo");
        rec.duration_ms = i;
        assert_int_equal(telex_usage_record(svc, &anon, &rec), 0);
    }
    assert_int_equal(telex_services_close(svc), 0); /* no row lost */
    svc = NULL;
    telex_store_t *s = NULL;
    assert_int_equal(telex_store_open(&s, db_path, err, sizeof err), 0);
    telex_usage_row_t *rows;
    size_t n;
    int trunc;
    telex_usage_query_t q = {.from_ms = 0, .to_ms = INT64_MAX, .key_id = -1};
    assert_int_equal(telex_store_usage(s, &q, &rows, &n, &trunc, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].requests, 2500);
    free(rows);
    telex_store_close(s);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_key_format),
        T(test_key_hash_equals_one_shot_sha256),
        T(test_validation_helpers),
        T(test_key_json_of_a_row_written_by_hand),
        T(test_secure_default),
        T(test_store_problems_stop_the_start),
        T(test_authenticate),
        T(test_owner_is_the_key_id),
        T(test_anonymous_mode_still_checks_telex_keys),
        T(test_admit),
        T(test_admin_token),
        T(test_keys_from_another_process_take_effect),
        T(test_close_writes_every_row),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
