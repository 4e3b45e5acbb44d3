/*
 * gateway/limits.c — striped hash table of per-key token buckets and
 * spend. See limits.h.
 */
#include "gateway/limits.h"
#include "util/alloc.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#define STRIPES 256

typedef struct state {
    struct state *next;
    int64_t key_id;
    double rpm_tokens; /* may not exceed rpm; NAN = not started (full) */
    uint64_t rpm_at;
    double tpm_tokens; /* may go negative; NAN = not started (full) */
    uint64_t tpm_at;
    double spent_usd;
    double reserved_usd; /* estimated cost of the requests in flight */
    int64_t in_flight;   /* admitted requests not yet ended (this node) */
} state_t;

typedef struct stripe {
    pthread_mutex_t lock;
    state_t *head;
} stripe_t;

struct telex_limits {
    stripe_t stripes[STRIPES];
};

uint64_t telex_limits_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

telex_limits_t *telex_limits_new(void)
{
    telex_limits_t *l = telex_xcalloc(1, sizeof(*l));
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&l->stripes[i].lock, NULL);
    return l;
}

void telex_limits_free(telex_limits_t *l)
{
    if (l == NULL)
        return;
    for (int i = 0; i < STRIPES; i++) {
        state_t *s = l->stripes[i].head;
        while (s != NULL) {
            state_t *next = s->next;
            free(s);
            s = next;
        }
        pthread_mutex_destroy(&l->stripes[i].lock);
    }
    free(l);
}

static stripe_t *stripe_of(telex_limits_t *l, int64_t key_id)
{
    uint64_t h = (uint64_t)key_id * 0x9e3779b97f4a7c15ull;
    return &l->stripes[h >> 56];
}

/* The key's state, created when missing (under the stripe's lock); NULL
 * only when missing and !create. */
static state_t *find(stripe_t *st, int64_t key_id, bool create, bool *created)
{
    for (state_t *s = st->head; s != NULL; s = s->next)
        if (s->key_id == key_id)
            return s;
    if (!create)
        return NULL;
    state_t *s = telex_xcalloc(1, sizeof(*s));
    s->key_id = key_id;
    s->rpm_tokens = NAN;
    s->tpm_tokens = NAN;
    s->next = st->head;
    st->head = s;
    if (created)
        *created = true;
    return s;
}

/* The key's state with its stripe locked: find()'s answer; the caller
 * unlocks (*stp)->lock. */
static state_t *lock_state(telex_limits_t *l, int64_t key_id, bool create, bool *created, stripe_t **stp)
{
    stripe_t *st = stripe_of(l, key_id);
    pthread_mutex_lock(&st->lock);
    *stp = st;
    return find(st, key_id, create, created);
}

/* A copy of the key's state, taken under its lock; all zeros for a key
 * never seen. */
static state_t peek(telex_limits_t *l, int64_t key_id)
{
    stripe_t *st;
    state_t *s = lock_state(l, key_id, false, NULL, &st);
    state_t copy = s != NULL ? *s : (state_t){0};
    pthread_mutex_unlock(&st->lock);
    return copy;
}

void telex_limits_seed_spend(telex_limits_t *l, int64_t key_id, double spent_usd)
{
    stripe_t *st;
    bool created = false;
    state_t *s = lock_state(l, key_id, true, &created, &st);
    if (created)
        s->spent_usd = spent_usd > 0 ? spent_usd : 0;
    pthread_mutex_unlock(&st->lock);
}

double telex_limits_spent(telex_limits_t *l, int64_t key_id)
{
    return peek(l, key_id).spent_usd;
}

/* Refills a bucket of capacity cap (per minute) up to now; NAN = full. */
static double refill(double tokens, uint64_t *at, double cap, uint64_t now_ms)
{
    if (isnan(tokens)) {
        *at = now_ms;
        return cap;
    }
    if (now_ms > *at) {
        tokens += (double)(now_ms - *at) * cap / 60000.0;
        *at = now_ms;
    }
    return tokens > cap ? cap : tokens;
}

/* Seconds until a bucket of capacity cap holds `need` (>= 1). */
static unsigned seconds_until(double tokens, double need, double cap)
{
    double s = (need - tokens) * 60.0 / cap;
    if (!(s > 1))
        return 1;
    if (s > 86400)
        return 86400;
    return (unsigned)ceil(s);
}

double telex_limits_reserved(telex_limits_t *l, int64_t key_id)
{
    return peek(l, key_id).reserved_usd;
}

telex_limit_verdict_t telex_limits_admit(telex_limits_t *l, int64_t key_id, const telex_key_limits_t *kl,
                                         uint64_t est_tokens, uint64_t now_ms, unsigned *retry_after_s)
{
    return telex_limits_admit_cost(l, key_id, kl, est_tokens, 0, now_ms, retry_after_s);
}

telex_limit_verdict_t telex_limits_admit_cost(telex_limits_t *l, int64_t key_id, const telex_key_limits_t *kl,
                                              uint64_t est_tokens, double est_usd, uint64_t now_ms,
                                              unsigned *retry_after_s)
{
    stripe_t *st;
    telex_limit_verdict_t v = TELEX_LIMIT_OK;
    *retry_after_s = 0;
    state_t *s = lock_state(l, key_id, true, NULL, &st);
    double rpm_tokens = 0, tpm_tokens = 0;
    if (kl->budget_usd >= 0 && s->spent_usd + s->reserved_usd >= kl->budget_usd) {
        v = TELEX_LIMIT_BUDGET;
        goto out;
    }
    if (kl->max_concurrent > 0 && s->in_flight >= kl->max_concurrent) {
        v = TELEX_LIMIT_CONCURRENCY;
        *retry_after_s = 1;
        goto out;
    }
    if (kl->tpm > 0) {
        tpm_tokens = refill(s->tpm_tokens, &s->tpm_at, (double)kl->tpm, now_ms);
        s->tpm_tokens = tpm_tokens;
        if (tpm_tokens <= 0) {
            v = TELEX_LIMIT_TPM;
            *retry_after_s = seconds_until(tpm_tokens, 1, (double)kl->tpm);
            goto out;
        }
    }
    if (kl->rpm > 0) {
        rpm_tokens = refill(s->rpm_tokens, &s->rpm_at, (double)kl->rpm, now_ms);
        s->rpm_tokens = rpm_tokens;
        if (rpm_tokens < 1) {
            v = TELEX_LIMIT_RPM;
            *retry_after_s = seconds_until(rpm_tokens, 1, (double)kl->rpm);
            goto out;
        }
        s->rpm_tokens = rpm_tokens - 1;
    }
    if (kl->tpm > 0)
        s->tpm_tokens = tpm_tokens - (double)est_tokens;
    if (est_usd > 0)
        s->reserved_usd += est_usd;
    s->in_flight++;
out:
    pthread_mutex_unlock(&st->lock);
    return v;
}

void telex_limits_settle(telex_limits_t *l, int64_t key_id, uint64_t reserved_tokens, uint64_t used_tokens,
                         double cost_usd)
{
    telex_limits_settle_cost(l, key_id, reserved_tokens, used_tokens, 0, cost_usd);
}

void telex_limits_settle_cost(telex_limits_t *l, int64_t key_id, uint64_t reserved_tokens, uint64_t used_tokens,
                              double reserved_usd, double cost_usd)
{
    stripe_t *st;
    state_t *s = lock_state(l, key_id, true, NULL, &st);
    if (!isnan(s->tpm_tokens))
        s->tpm_tokens -= (double)used_tokens - (double)reserved_tokens;
    if (cost_usd > 0)
        s->spent_usd += cost_usd;
    if (reserved_usd > 0) {
        s->reserved_usd -= reserved_usd;
        if (s->reserved_usd < 1e-12)
            s->reserved_usd = 0; /* no float residue once nothing is in flight */
    }
    pthread_mutex_unlock(&st->lock);
}

void telex_limits_hold_slot(telex_limits_t *l, int64_t key_id)
{
    stripe_t *st;
    state_t *s = lock_state(l, key_id, true, NULL, &st);
    s->in_flight++;
    pthread_mutex_unlock(&st->lock);
}

void telex_limits_release_slot(telex_limits_t *l, int64_t key_id)
{
    stripe_t *st;
    state_t *s = lock_state(l, key_id, false, NULL, &st);
    if (s != NULL && s->in_flight > 0)
        s->in_flight--;
    pthread_mutex_unlock(&st->lock);
}

int64_t telex_limits_in_flight(telex_limits_t *l, int64_t key_id)
{
    return peek(l, key_id).in_flight;
}
