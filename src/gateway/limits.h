/*
 * gateway/limits.h — per-key budgets and rate limits, shared by every
 * worker thread.
 *
 * Each key has one state: a requests-per-minute token bucket (capacity
 * rpm, refilled at rpm/60 per second), a tokens-per-minute bucket
 * (capacity tpm, refilled at tpm/60 per second, which may go negative:
 * a request is admitted while the bucket is positive, reserves its
 * estimated prompt tokens, and settles the real count when it ends) and
 * the key's lifetime spend in USD, and how many of its requests are
 * running on this node (in flight: taken at admission, given back once
 * when the request ends).
 *
 * States live in a hash table of 256 stripes, each with its own mutex,
 * held only for a few arithmetic operations — never across I/O. All
 * times are monotonic milliseconds passed in by the caller (tests drive
 * the clock).
 *
 * Budgets: a request is refused (402) when the key's spend plus what the
 * requests in flight have reserved has reached its budget. Admission
 * reserves the request's estimated cost (telex_limits_admit_cost: the
 * prompt estimate and max_tokens at the model's highest prices, see
 * telex_usage_estimate_cost); the end replaces the reservation with the
 * real cost (telex_limits_settle_cost). So concurrency cannot overshoot a
 * budget by more than one answer's worth — the last request admitted while
 * budget remained — as long as answers cost no more than their estimate
 * (an answer without max_tokens is estimated at 4096 output tokens).
 *
 * Concurrency: every admitted request of a key holds one in-flight slot
 * until telex_limits_release_slot (whatever the key's max_concurrent, so
 * a limit set while requests run counts them); a key with max_concurrent
 * > 0 is refused (429) while max_concurrent of its requests hold slots.
 */
#ifndef TELEX_GATEWAY_LIMITS_H
#define TELEX_GATEWAY_LIMITS_H

#include <stdint.h>

typedef struct telex_limits telex_limits_t;

typedef enum telex_limit_verdict {
    TELEX_LIMIT_OK = 0,
    TELEX_LIMIT_BUDGET, /* 402: spend >= budget */
    TELEX_LIMIT_RPM,    /* 429: requests per minute */
    TELEX_LIMIT_TPM,    /* 429: tokens per minute */
    TELEX_LIMIT_CONCURRENCY, /* 429: requests running at once */
} telex_limit_verdict_t;

/* What a key allows (from its row). 0 / negative = unlimited. */
typedef struct telex_key_limits {
    int64_t rpm;
    int64_t tpm;
    double budget_usd; /* < 0 = no budget */
    int64_t max_concurrent; /* requests running at once */
} telex_key_limits_t;

/* Never NULL (out of memory aborts: util/alloc.h). */
telex_limits_t *telex_limits_new(void);
void telex_limits_free(telex_limits_t *limits);

/* The spend the database knows for a key. Used only when the key has no
 * state yet (its first sighting): afterwards the in-memory spend, which
 * includes rows not yet written, is authoritative. */
void telex_limits_seed_spend(telex_limits_t *limits, int64_t key_id, double spent_usd);

/* The key's spend (0 for a key never seen). */
double telex_limits_spent(telex_limits_t *limits, int64_t key_id);

/* Admission: checks budget, then concurrency, then tpm, then rpm; takes
 * nothing unless all pass, then takes one request, one in-flight slot and
 * reserves est_tokens. On a 429 verdict *retry_after_s is how long until
 * the request would pass (>= 1; 1 for concurrency: a slot may free any time). */
telex_limit_verdict_t telex_limits_admit(telex_limits_t *limits, int64_t key_id, const telex_key_limits_t *kl,
                                         uint64_t est_tokens, uint64_t now_ms, unsigned *retry_after_s);

/* The same, reserving est_usd against the budget too (admitted only while
 * spend + reserved < budget). */
telex_limit_verdict_t telex_limits_admit_cost(telex_limits_t *limits, int64_t key_id, const telex_key_limits_t *kl,
                                              uint64_t est_tokens, double est_usd, uint64_t now_ms,
                                              unsigned *retry_after_s);

/* The request ended: its tokens replace the reservation in the tpm bucket
 * and its cost is added to the spend. */
void telex_limits_settle(telex_limits_t *limits, int64_t key_id, uint64_t reserved_tokens, uint64_t used_tokens,
                         double cost_usd);
/* The same, giving back reserved_usd of budget reservation. */
void telex_limits_settle_cost(telex_limits_t *limits, int64_t key_id, uint64_t reserved_tokens, uint64_t used_tokens,
                              double reserved_usd, double cost_usd);
/* What the key's requests in flight have reserved (0 for a key never seen). */
double telex_limits_reserved(telex_limits_t *limits, int64_t key_id);

/* An in-flight slot taken without a check (cluster mode: Redis decided;
 * the node's count follows, for when Redis is away). */
void telex_limits_hold_slot(telex_limits_t *limits, int64_t key_id);
/* Gives back the slot an admitted request held (once, when it ends). */
void telex_limits_release_slot(telex_limits_t *limits, int64_t key_id);
/* The key's requests in flight on this node (0 for a key never seen). */
int64_t telex_limits_in_flight(telex_limits_t *limits, int64_t key_id);

/* A monotonic clock in milliseconds, for callers. */
uint64_t telex_limits_now_ms(void);

#endif
