/*
 * tests/unit/test_limits.c — per-key budgets and rate limits on a driven
 * clock: the requests-per-minute bucket (burst, refill, Retry-After), the
 * tokens-per-minute bucket (reservation, settling, overdraft), budgets,
 * spend seeding, requests in flight (max_concurrent), and exact counts
 * when many threads admit at once.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "gateway/limits.h"

static const uint64_t T0 = 1000000;

static void test_rpm_bucket(void **state)
{
    (void)state;
    telex_limits_t *l = telex_limits_new();
    telex_key_limits_t kl = {.rpm = 3, .tpm = 0, .budget_usd = -1};
    unsigned retry = 99;
    for (int i = 0; i < 3; i++)
        assert_int_equal(telex_limits_admit(l, 1, &kl, 0, T0, &retry), TELEX_LIMIT_OK);
    assert_int_equal(retry, 0);
    assert_int_equal(telex_limits_admit(l, 1, &kl, 0, T0, &retry), TELEX_LIMIT_RPM);
    assert_int_equal(retry, 20); /* one request every 60/3 s */
    /* 10 s later: half a token, still refused, 10 s to go */
    assert_int_equal(telex_limits_admit(l, 1, &kl, 0, T0 + 10000, &retry), TELEX_LIMIT_RPM);
    assert_int_equal(retry, 10);
    assert_int_equal(telex_limits_admit(l, 1, &kl, 0, T0 + 20000, &retry), TELEX_LIMIT_OK);
    /* another key is not affected */
    assert_int_equal(telex_limits_admit(l, 2, &kl, 0, T0, &retry), TELEX_LIMIT_OK);
    /* a long pause refills to the capacity, not beyond */
    for (int i = 0; i < 3; i++)
        assert_int_equal(telex_limits_admit(l, 1, &kl, 0, T0 + 3600000, &retry), TELEX_LIMIT_OK);
    assert_int_equal(telex_limits_admit(l, 1, &kl, 0, T0 + 3600000, &retry), TELEX_LIMIT_RPM);
    /* unlimited */
    telex_key_limits_t none = {.rpm = 0, .tpm = 0, .budget_usd = -1};
    for (int i = 0; i < 1000; i++)
        assert_int_equal(telex_limits_admit(l, 3, &none, 1000000, T0, &retry), TELEX_LIMIT_OK);
    telex_limits_free(l);
}

static void test_tpm_bucket(void **state)
{
    (void)state;
    telex_limits_t *l = telex_limits_new();
    telex_key_limits_t kl = {.rpm = 0, .tpm = 600, .budget_usd = -1}; /* 10 tokens per second */
    unsigned retry = 0;
    /* the first request reserves 500 of 600 */
    assert_int_equal(telex_limits_admit(l, 7, &kl, 500, T0, &retry), TELEX_LIMIT_OK);
    /* a second one may still start (bucket positive) and overdraws it */
    assert_int_equal(telex_limits_admit(l, 7, &kl, 500, T0, &retry), TELEX_LIMIT_OK);
    /* now -400: refused until it is positive again: 40 s + a token */
    assert_int_equal(telex_limits_admit(l, 7, &kl, 1, T0, &retry), TELEX_LIMIT_TPM);
    assert_int_equal(retry, 41);
    /* the first request really used 100 tokens: 400 come back; bucket 0 */
    telex_limits_settle(l, 7, 500, 100, 0);
    assert_int_equal(telex_limits_admit(l, 7, &kl, 1, T0, &retry), TELEX_LIMIT_TPM);
    assert_int_equal(retry, 1);
    assert_int_equal(telex_limits_admit(l, 7, &kl, 1, T0 + 1000, &retry), TELEX_LIMIT_OK);
    /* the second used 2000: deep overdraft, refused for about 3.3 minutes */
    telex_limits_settle(l, 7, 500, 2000, 0);
    assert_int_equal(telex_limits_admit(l, 7, &kl, 1, T0 + 1000, &retry), TELEX_LIMIT_TPM);
    assert_true(retry >= 150 && retry <= 152);
    assert_int_equal(telex_limits_admit(l, 7, &kl, 1, T0 + 1000 + 152000, &retry), TELEX_LIMIT_OK);
    telex_limits_free(l);
}

static void test_tpm_refusal_takes_no_request(void **state)
{
    (void)state;
    telex_limits_t *l = telex_limits_new();
    telex_key_limits_t kl = {.rpm = 2, .tpm = 60, .budget_usd = -1};
    unsigned retry;
    assert_int_equal(telex_limits_admit(l, 1, &kl, 100, T0, &retry), TELEX_LIMIT_OK); /* tpm -40 */
    for (int i = 0; i < 5; i++)
        assert_int_equal(telex_limits_admit(l, 1, &kl, 1, T0, &retry), TELEX_LIMIT_TPM);
    /* the refusals did not use the second request of the minute */
    telex_limits_settle(l, 1, 100, 0, 0); /* tpm back to 60 */
    assert_int_equal(telex_limits_admit(l, 1, &kl, 1, T0, &retry), TELEX_LIMIT_OK);
    assert_int_equal(telex_limits_admit(l, 1, &kl, 1, T0, &retry), TELEX_LIMIT_RPM);
    telex_limits_free(l);
}

static void test_budget(void **state)
{
    (void)state;
    telex_limits_t *l = telex_limits_new();
    telex_key_limits_t kl = {.rpm = 0, .tpm = 0, .budget_usd = 1.0};
    unsigned retry;
    telex_limits_seed_spend(l, 5, 0.75);
    assert_true(telex_limits_spent(l, 5) == 0.75);
    assert_int_equal(telex_limits_admit(l, 5, &kl, 0, T0, &retry), TELEX_LIMIT_OK);
    telex_limits_settle(l, 5, 0, 10, 0.2);
    assert_int_equal(telex_limits_admit(l, 5, &kl, 0, T0, &retry), TELEX_LIMIT_OK); /* 0.95 < 1 */
    telex_limits_settle(l, 5, 0, 10, 0.05);
    assert_int_equal(telex_limits_admit(l, 5, &kl, 0, T0, &retry), TELEX_LIMIT_BUDGET); /* 1.0 reached */
    assert_int_equal(retry, 0);
    /* a raised budget lets it through again */
    kl.budget_usd = 2;
    assert_int_equal(telex_limits_admit(l, 5, &kl, 0, T0, &retry), TELEX_LIMIT_OK);
    /* seeding again (a key reload) never overwrites the running count */
    telex_limits_seed_spend(l, 5, 0);
    assert_true(telex_limits_spent(l, 5) > 0.99);
    /* a zero budget refuses at once; no budget never does */
    telex_key_limits_t zero = {.budget_usd = 0};
    assert_int_equal(telex_limits_admit(l, 6, &zero, 0, T0, &retry), TELEX_LIMIT_BUDGET);
    assert_true(telex_limits_spent(l, 99) == 0);
    telex_limits_free(l);
}

/* Budget reservation: admission reserves the estimate; a request is
 * admitted only while spend + reservations < budget; settling swaps the
 * reservation for the real cost. */
static void test_budget_reservation(void **state)
{
    (void)state;
    telex_limits_t *l = telex_limits_new();
    telex_key_limits_t kl = {.budget_usd = 0.05};
    unsigned retry;
    /* 200 requests at once, each estimated at $0.01: exactly 5 fit */
    int admitted = 0;
    for (int i = 0; i < 200; i++)
        admitted += telex_limits_admit_cost(l, 9, &kl, 0, 0.01, T0, &retry) == TELEX_LIMIT_OK;
    assert_int_equal(admitted, 5);
    assert_true(telex_limits_reserved(l, 9) > 0.0499 && telex_limits_reserved(l, 9) < 0.0501);
    /* each really cost $0.004: settling frees the rest of the reservation */
    for (int i = 0; i < 5; i++)
        telex_limits_settle_cost(l, 9, 0, 10, 0.01, 0.004);
    assert_true(telex_limits_reserved(l, 9) == 0);
    assert_true(telex_limits_spent(l, 9) > 0.0199 && telex_limits_spent(l, 9) < 0.0201);
    /* $0.03 left: three more at $0.01 */
    admitted = 0;
    for (int i = 0; i < 200; i++)
        admitted += telex_limits_admit_cost(l, 9, &kl, 0, 0.01, T0, &retry) == TELEX_LIMIT_OK;
    assert_int_equal(admitted, 3);
    /* a request estimated above what remains is still admitted while something remains
     * (overshoot: at most that one answer) */
    telex_limits_t *m = telex_limits_new();
    assert_int_equal(telex_limits_admit_cost(m, 1, &kl, 0, 1.0, T0, &retry), TELEX_LIMIT_OK);
    assert_int_equal(telex_limits_admit_cost(m, 1, &kl, 0, 0.001, T0, &retry), TELEX_LIMIT_BUDGET);
    /* a refusal (or a released request) gives back its reservation */
    telex_limits_settle_cost(m, 1, 0, 0, 1.0, 0);
    assert_int_equal(telex_limits_admit_cost(m, 1, &kl, 0, 0.001, T0, &retry), TELEX_LIMIT_OK);
    /* a rate-limit refusal reserves nothing */
    telex_key_limits_t rpm1 = {.rpm = 1, .budget_usd = 1};
    assert_int_equal(telex_limits_admit_cost(m, 2, &rpm1, 0, 0.5, T0, &retry), TELEX_LIMIT_OK);
    assert_int_equal(telex_limits_admit_cost(m, 2, &rpm1, 0, 0.5, T0, &retry), TELEX_LIMIT_RPM);
    assert_true(telex_limits_reserved(m, 2) == 0.5);
    telex_limits_free(m);
    telex_limits_free(l);
}

typedef struct {
    telex_limits_t *l;
    int admitted;
} worker_t;

static void *admit_many(void *arg)
{
    worker_t *w = arg;
    telex_key_limits_t kl = {.rpm = 1000, .tpm = 0, .budget_usd = -1};
    for (int i = 0; i < 500; i++) {
        unsigned retry;
        if (telex_limits_admit(w->l, 42, &kl, 0, T0, &retry) == TELEX_LIMIT_OK)
            w->admitted++;
        telex_limits_settle(w->l, 42, 0, 0, 0.001);
    }
    return NULL;
}

static void test_counts_across_threads(void **state)
{
    (void)state;
    telex_limits_t *l = telex_limits_new();
    pthread_t th[8];
    worker_t w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (worker_t){l, 0};
        pthread_create(&th[i], NULL, admit_many, &w[i]);
    }
    int total = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        total += w[i].admitted;
    }
    assert_int_equal(total, 1000); /* exactly the bucket, at one instant */
    double spent = telex_limits_spent(l, 42);
    assert_true(spent > 3.999 && spent < 4.001);
    telex_limits_free(l);
}

static void test_concurrency(void **state)
{
    (void)state;
    telex_limits_t *l = telex_limits_new();
    telex_key_limits_t kl = {.rpm = 0, .tpm = 0, .budget_usd = -1, .max_concurrent = 2};
    unsigned retry = 0;
    assert_int_equal(telex_limits_admit(l, 5, &kl, 0, T0, &retry), TELEX_LIMIT_OK);
    assert_int_equal(telex_limits_admit(l, 5, &kl, 0, T0, &retry), TELEX_LIMIT_OK);
    assert_int_equal(telex_limits_in_flight(l, 5), 2);
    assert_int_equal(telex_limits_admit(l, 5, &kl, 0, T0, &retry), TELEX_LIMIT_CONCURRENCY);
    assert_int_equal(retry, 1);
    assert_int_equal(telex_limits_in_flight(l, 5), 2); /* a refusal takes no slot */
    /* another key is not affected */
    assert_int_equal(telex_limits_admit(l, 6, &kl, 0, T0, &retry), TELEX_LIMIT_OK);
    /* one ends: one more may start, at the same instant */
    telex_limits_release_slot(l, 5);
    assert_int_equal(telex_limits_in_flight(l, 5), 1);
    assert_int_equal(telex_limits_admit(l, 5, &kl, 0, T0, &retry), TELEX_LIMIT_OK);
    assert_int_equal(telex_limits_admit(l, 5, &kl, 0, T0, &retry), TELEX_LIMIT_CONCURRENCY);
    /* a concurrency refusal takes no request from the rpm bucket */
    telex_key_limits_t both = {.rpm = 1, .tpm = 0, .budget_usd = -1, .max_concurrent = 1};
    assert_int_equal(telex_limits_admit(l, 7, &both, 0, T0, &retry), TELEX_LIMIT_OK);
    telex_limits_release_slot(l, 7);
    assert_int_equal(telex_limits_admit(l, 7, &both, 0, T0, &retry), TELEX_LIMIT_RPM);
    assert_int_equal(telex_limits_in_flight(l, 7), 0); /* an rpm refusal takes no slot either */
    assert_int_equal(telex_limits_admit(l, 7, &both, 0, T0 + 60000, &retry), TELEX_LIMIT_OK);
    assert_int_equal(telex_limits_admit(l, 7, &both, 0, T0 + 120000, &retry), TELEX_LIMIT_CONCURRENCY);
    /* slots are counted without a limit too, so a limit set later sees the requests already running */
    telex_key_limits_t none = {.rpm = 0, .tpm = 0, .budget_usd = -1, .max_concurrent = 0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(telex_limits_admit(l, 8, &none, 0, T0, &retry), TELEX_LIMIT_OK);
    telex_key_limits_t now2 = {.rpm = 0, .tpm = 0, .budget_usd = -1, .max_concurrent = 2};
    assert_int_equal(telex_limits_admit(l, 8, &now2, 0, T0, &retry), TELEX_LIMIT_CONCURRENCY);
    /* held without a check (cluster mode), released never below zero */
    telex_limits_hold_slot(l, 9);
    assert_int_equal(telex_limits_in_flight(l, 9), 1);
    telex_limits_release_slot(l, 9);
    telex_limits_release_slot(l, 9);
    assert_int_equal(telex_limits_in_flight(l, 9), 0);
    telex_limits_release_slot(l, 1234); /* a key never seen */
    assert_int_equal(telex_limits_in_flight(l, 1234), 0);
    telex_limits_free(l);
}

typedef struct conc_worker {
    telex_limits_t *l;
    int admitted, max_seen;
} conc_worker_t;

static void *hold_and_release(void *arg)
{
    conc_worker_t *w = arg;
    telex_key_limits_t kl = {.rpm = 0, .tpm = 0, .budget_usd = -1, .max_concurrent = 3};
    for (int i = 0; i < 2000; i++) {
        unsigned retry;
        if (telex_limits_admit(w->l, 77, &kl, 0, T0, &retry) == TELEX_LIMIT_OK) {
            w->admitted++;
            int64_t n = telex_limits_in_flight(w->l, 77);
            if (n > w->max_seen)
                w->max_seen = (int)n;
            telex_limits_release_slot(w->l, 77);
        }
    }
    return NULL;
}

static void test_concurrency_across_threads(void **state)
{
    (void)state;
    telex_limits_t *l = telex_limits_new();
    pthread_t th[8];
    conc_worker_t w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (conc_worker_t){l, 0, 0};
        pthread_create(&th[i], NULL, hold_and_release, &w[i]);
    }
    int total = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        total += w[i].admitted;
        assert_true(w[i].max_seen <= 3); /* never more than the limit at once */
    }
    assert_true(total > 0);
    assert_int_equal(telex_limits_in_flight(l, 77), 0); /* every slot came back */
    telex_limits_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rpm_bucket),
        cmocka_unit_test(test_tpm_bucket),
        cmocka_unit_test(test_tpm_refusal_takes_no_request),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_budget_reservation),
        cmocka_unit_test(test_counts_across_threads),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_concurrency_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
