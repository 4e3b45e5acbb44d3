/*
 * tests/unit/test_ids.c — stream ids and resume tokens keep their bytes:
 * a known token for a known secret and id (base64url, no padding, '-' and
 * '_' included), the shape of new ids, new ids all differ across the
 * refills of the per-thread randomness pool, event ids parsed back; and
 * tokens from the per-thread keyed HMAC context equal a one-shot OpenSSL
 * HMAC over the same secret, call after call, in several threads, and
 * after the secret changes.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <h2o.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "stream/ids.h"

static int setup(void **state)
{
    (void)state;
    setenv("TELEX_RESUME_SECRET", "telex-test-secret", 1);
    return telex_ids_init();
}

static void test_known_token(void **state)
{
    (void)state;
    /* HMAC-SHA256(SHA-256("telex-test-secret"), id), base64url without
     * padding; computed independently (Python's hmac and base64) and by the
     * hand-written encoder that h2o_base64_encode replaced. */
    char token[TELEX_RESUME_TOKEN_LEN + 1];
    assert_int_equal(telex_resume_token("st_0000000000000000000009", token), 0);
    assert_string_equal(token, "N0EPio65ai12IffU-fFEq_30LdEgU8j8ZQPWgNS_p9c");
    assert_int_equal(telex_resume_token("st_0000000000000000000003", token), 0);
    assert_string_equal(token, "D-OqK7z6CgNn6vr-We9Mg8fHpLsETq2y3s3pJk8GAR0");
    assert_true(telex_resume_token_valid("st_0000000000000000000003", token, strlen(token)));
    assert_false(telex_resume_token_valid("st_0000000000000000000009", token, strlen(token)));
    assert_false(telex_resume_token_valid("st_0000000000000000000003", token, strlen(token) - 1));
}

static void test_new_ids(void **state)
{
    (void)state;
    char a[TELEX_STREAM_ID_LEN + 1], b[TELEX_STREAM_ID_LEN + 1];
    assert_int_equal(telex_stream_id_new(a), 0);
    assert_int_equal(telex_stream_id_new(b), 0);
    assert_int_equal(strlen(a), TELEX_STREAM_ID_LEN);
    assert_memory_equal(a, "st_", 3);
    assert_true(telex_stream_id_valid(a, strlen(a)));
    assert_string_not_equal(a, b);
    /* 128 bits in 22 characters: the last carries 2 bits, so it is one of
     * A, Q, g, w (the low 4 bits of its 6 are zero) */
    assert_non_null(strchr("AQgw", a[TELEX_STREAM_ID_LEN - 1]));
    assert_false(telex_stream_id_valid("st_000000000000000000000=", TELEX_STREAM_ID_LEN));
    assert_false(telex_stream_id_valid("st_000000000000000000000+", TELEX_STREAM_ID_LEN));
    assert_false(telex_stream_id_valid("xx_0000000000000000000000", TELEX_STREAM_ID_LEN));
    assert_true(telex_stream_id_valid("st_-_0000000000000000000A", TELEX_STREAM_ID_LEN));
}

/* Ids come from a pool refilled 16 ids at a time: across several refills
 * (and from another thread's pool) no id repeats, and every one is valid.
 * A pool that handed out the same bytes twice, or bytes it never filled,
 * repeats ids here. */
#define MANY_IDS 200
static char many[2 * MANY_IDS][TELEX_STREAM_ID_LEN + 1];

static void *draw_ids(void *arg)
{
    char(*out)[TELEX_STREAM_ID_LEN + 1] = arg;
    for (int i = 0; i < MANY_IDS; i++)
        if (telex_stream_id_new(out[i]) != 0)
            return NULL;
    return arg;
}

static int cmp_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_ids_across_pool_refills(void **state)
{
    (void)state;
    pthread_t other;
    void *ok = NULL;
    assert_int_equal(pthread_create(&other, NULL, draw_ids, many[MANY_IDS]), 0);
    assert_non_null(draw_ids(many[0]));
    assert_int_equal(pthread_join(other, &ok), 0);
    assert_non_null(ok);
    for (int i = 0; i < 2 * MANY_IDS; i++)
        assert_true(telex_stream_id_valid(many[i], strlen(many[i])));
    qsort(many, 2 * MANY_IDS, sizeof many[0], cmp_ids);
    for (int i = 1; i < 2 * MANY_IDS; i++)
        assert_string_not_equal(many[i - 1], many[i]);
}

static void test_event_ids(void **state)
{
    (void)state;
    char sid[TELEX_STREAM_ID_LEN + 1];
    uint64_t seq = 0;
    const char *ok = "st_0000000000000000000009.42";
    assert_int_equal(telex_event_id_parse(ok, strlen(ok), sid, &seq), 0);
    assert_string_equal(sid, "st_0000000000000000000009");
    assert_int_equal(seq, 42);
    const char *bad = "st_0000000000000000000009.4x";
    assert_int_equal(telex_event_id_parse(bad, strlen(bad), sid, &seq), -1);
    const char *nodigits = "st_0000000000000000000009.";
    assert_int_equal(telex_event_id_parse(nodigits, strlen(nodigits), sid, &seq), -1);
}

/* What telex_resume_token gave before its per-thread context: a one-shot
 * HMAC-SHA256 keyed with SHA-256(secret text), in base64url without
 * padding. 0 or -1 (no cmocka assert: it runs in other threads too). */
static int one_shot_token(const char *secret_text, const char *id, char *out)
{
    unsigned char key[32], mac[32];
    unsigned int klen = 0, mlen = 0;
    if (EVP_Digest(secret_text, strlen(secret_text), key, &klen, EVP_sha256(), NULL) != 1 ||
        HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)id, strlen(id), mac, &mlen) == NULL || mlen != 32)
        return -1;
    h2o_base64_encode(out, mac, sizeof mac, 1);
    return 0;
}

/* Ids of one pattern with one character changed (anywhere, '-' and '_'
 * included), and every fifth a new random one. 0 or -1. */
static int nth_id(int i, char *out)
{
    if (i % 5 == 4)
        return telex_stream_id_new(out);
    snprintf(out, TELEX_STREAM_ID_LEN + 1, "st_%022d", i * 7919);
    out[3 + i % 22] = "-_Az"[i % 4];
    return 0;
}

#define TOKENS_PER_THREAD 60
static const char *token_secret = "telex-test-secret";

static void *check_tokens(void *arg)
{
    int base = *(int *)arg;
    for (int i = 0; i < TOKENS_PER_THREAD; i++) {
        char id[TELEX_STREAM_ID_LEN + 1], got[TELEX_RESUME_TOKEN_LEN + 1], want[TELEX_RESUME_TOKEN_LEN + 1];
        if (nth_id(base + i, id) != 0 || telex_resume_token(id, got) != 0 ||
            one_shot_token(token_secret, id, want) != 0 || strcmp(got, want) != 0 ||
            !telex_resume_token_valid(id, want, strlen(want)))
            return NULL;
    }
    return arg;
}

static void test_token_equals_one_shot_hmac(void **state)
{
    (void)state;
    /* this thread, many tokens in a row on its one context */
    int bases[4] = {0, 1000, 2000, 3000};
    assert_non_null(check_tokens(&bases[0]));
    /* three more threads at once, each with its own context */
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, check_tokens, &bases[i + 1]), 0);
    for (int i = 0; i < 3; i++) {
        void *ok = NULL;
        assert_int_equal(pthread_join(t[i], &ok), 0);
        assert_non_null(ok);
    }
    /* a new secret: this thread's context (keyed with the old one) is keyed
     * again; a token of the old secret no longer checks */
    char id[TELEX_STREAM_ID_LEN + 1], old[TELEX_RESUME_TOKEN_LEN + 1];
    assert_int_equal(nth_id(7, id), 0);
    assert_int_equal(telex_resume_token(id, old), 0);
    setenv("TELEX_RESUME_SECRET", "another secret, any length at all", 1);
    assert_int_equal(telex_ids_init(), 0);
    token_secret = "another secret, any length at all";
    assert_false(telex_resume_token_valid(id, old, strlen(old)));
    assert_non_null(check_tokens(&bases[1]));
    pthread_t u;
    void *ok = NULL;
    assert_int_equal(pthread_create(&u, NULL, check_tokens, &bases[2]), 0);
    assert_int_equal(pthread_join(u, &ok), 0);
    assert_non_null(ok);
    /* back to the group's secret: the known tokens again */
    setenv("TELEX_RESUME_SECRET", "telex-test-secret", 1);
    assert_int_equal(telex_ids_init(), 0);
    token_secret = "telex-test-secret";
    assert_true(telex_resume_token_valid(id, old, strlen(old)));
    char token[TELEX_RESUME_TOKEN_LEN + 1];
    assert_int_equal(telex_resume_token("st_0000000000000000000009", token), 0);
    assert_string_equal(token, "N0EPio65ai12IffU-fFEq_30LdEgU8j8ZQPWgNS_p9c");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_token),
        cmocka_unit_test(test_new_ids),
        cmocka_unit_test(test_ids_across_pool_refills),
        cmocka_unit_test(test_event_ids),
        cmocka_unit_test(test_token_equals_one_shot_hmac),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
