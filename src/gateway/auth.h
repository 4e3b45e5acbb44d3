/*
 * gateway/auth.h — API keys: their format, the in-memory key set, and the
 * checks a request goes through before any upstream call.
 *
 * A key is "tlx_" + 43 base62 characters (32 random bytes from the
 * kernel). It is shown once, when created; the store keeps only its
 * SHA-256. Keys are checked against an immutable snapshot of the key
 * table (swapped under a read-write lock when keys change), so checking a
 * key never touches the disk.
 *
 * Integration — the relay, for each POST /v1/chat/completions (and
 * /v1/presets/{name}):
 *
 *     telex_grant_t grant;
 *     telex_api_error_t e;
 *     h2o_iovec_t authz = telex_req_header(req, "authorization");
 *     // 1. before parsing the body (401 comes before 400):
 *     if (telex_auth_authenticate(svc, authz.base, authz.len, &grant, &e) != 0)
 *         return telex_api_error_respond(req, &e), 0;
 *     // 2. after parsing, preset expansion and the model lookup (404), before
 *     //    the concurrent-stream slot and any upstream call:
 *     if (telex_auth_admit(svc, &grant, model_name, preset_name_or_NULL,
 *                          telex_usage_estimate_request_tokens(body), &e) != 0)
 *         return telex_api_error_respond(req, &e), 0;   // 403, 402, 429 + Retry-After
 *     // keep `grant` in the chat: grant.owner is the stream owner for resume
 *     // authorization ("" = anonymous); pass &grant to telex_usage_record.
 *     // A request refused after admission without a ledger row (503 for the
 *     // stream limit or shutdown, 500 out of memory): telex_auth_release(svc, &grant).
 *
 * telex_authorize does both steps in one call. Every denial is an
 * OpenAI-style error: 401 invalid_api_key / missing_api_key / key_revoked /
 * key_expired, 403 model_not_allowed, 402 budget_exceeded (type
 * insufficient_quota), 429 rate_limit_exceeded with Retry-After, 429
 * concurrency_limit_exceeded (the key's max_concurrent) with Retry-After: 1. No key,
 * token or hash ever appears in a message or a log line.
 */
#ifndef TELEX_GATEWAY_AUTH_H
#define TELEX_GATEWAY_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "gateway/apierror.h"
#include "gateway/limits.h"
#include "gateway/services.h"
#include "store/store.h"

#define TELEX_KEY_PREFIX "tlx_"
#define TELEX_KEY_LEN 47 /* "tlx_" + 43 base62 characters */

/* ---- keys ------------------------------------------------------------------ */

/* A new random key, NUL-terminated, into out[TELEX_KEY_LEN + 1]. Returns 0,
 * or -EIO when the kernel gives no randomness. */
int telex_key_generate(char *out);
/* Is s (len bytes) shaped like a telex key? */
bool telex_key_well_formed(const char *s, size_t len);
/* SHA-256 of the key's bytes. */
void telex_key_hash(const char *key, size_t len, uint8_t out[TELEX_KEY_HASH_LEN]);

/* A new key row for `name`: generates the key into key_out, fills
 * row->name, prefix, hash and created_at (now). Returns 0 or -EIO. */
int telex_key_new_row(const char *name, telex_key_row_t *row, char *key_out);

/* Does the comma-separated allow-list admit `model` (or "preset:NAME")?
 * Entries: an exact name, a prefix ending in '*', or "*". "" admits all. */
bool telex_key_allows_model(const char *allow_list, const char *model, const char *preset);

/* "30d", "12h", "90m", "2026-01-31" (00:00 UTC), "2026-01-31T12:00:00Z",
 * or "never" (0) → unix seconds. Returns 0, or -EINVAL with a message. */
int telex_parse_expiry(const char *text, int64_t now, int64_t *out, char *err, size_t errlen);

/* Validation shared by `telex keys` and the admin API. Each returns 0, or
 * -EINVAL with a one-line reason in err. */
int telex_key_check_name(const char *name, char *err, size_t errlen);
/* Joins a model allow-list (items may themselves hold commas) into out
 * ("a,b"), checking each name. */
int telex_key_join_models(const char *const *items, size_t n, char *out, size_t cap, char *err, size_t errlen);
int telex_key_check_budget(double usd, char *err, size_t errlen);
int telex_key_check_rate(long long v, const char *what, char *err, size_t errlen);

/* A key row as the admin API and `telex keys --json` show it: never the
 * key or its hash. spent_usd: the larger of the row's and `spent` (the
 * running server's count includes rows not yet written). */
json_t *telex_key_to_json(const telex_key_row_t *row, double spent, int64_t now);

/* ---- the key set (owned by the services) ----------------------------------- */

typedef struct telex_keyset telex_keyset_t;

telex_keyset_t *telex_keyset_new(void);
void telex_keyset_free(telex_keyset_t *ks);
/* Replaces the snapshot with the store's keys; seeds each new key's spend
 * into limits. Not on an event loop. Returns 0 or a negative errno. */
int telex_keyset_load(telex_keyset_t *ks, telex_store_t *store, telex_limits_t *limits, char *err, size_t errlen);
/* Keys not revoked in the current snapshot. */
size_t telex_keyset_active(telex_keyset_t *ks);

/* ---- the relay's checks ---------------------------------------------------------- */

typedef struct telex_grant {
    int64_t key_id;           /* 0 = anonymous */
    char owner[32];           /* stream owner for resume: "key:<id>", "" anonymous */
    uint64_t reserved_tokens; /* reserved by telex_auth_admit; settled by telex_usage_record */
    double estimate_usd;      /* set by the caller before telex_auth_admit: the request's estimated cost */
    double reserved_usd;      /* reserved against the budget by telex_auth_admit; settled likewise */
    bool cluster_decided;     /* cluster mode: Redis decided the limits (gateway/cluster_admit.c) */
    int cluster_verdict;      /* its telex_limit_verdict_t */
    unsigned cluster_retry;   /* its Retry-After */
    uint64_t cluster_reservation; /* its budget reservation, settled with the request */
    uint64_t cluster_lease;   /* cluster mode, decided locally (Redis away): its concurrency lease (0: none), ended with the request */
    bool admitted;            /* telex_auth_admit passed */
    bool holds_slot;          /* holds one of the key's in-flight slots on this node (gateway/limits.h) */
} telex_grant_t;

/* Step 1: who is calling. authz is the Authorization header value (may be
 * NULL/0). Returns 0 and fills *grant, or 401 and fills *e. */
int telex_auth_authenticate(telex_services_t *svc, const char *authz, size_t len, telex_grant_t *grant,
                            telex_api_error_t *e);

/* Step 2: may this caller run this request now: the key's model
 * allow-list (403; checked against `model` and "preset:<preset>"), its
 * budget (402), its rate limits (429 + e->retry_after). est_tokens is
 * reserved against tokens per minute. Returns 0, or the status with *e. */
int telex_auth_admit(telex_services_t *svc, telex_grant_t *grant, const char *model, const char *preset,
                     uint64_t est_tokens, telex_api_error_t *e);

/* The key's limits, for a caller that enforces them elsewhere (cluster
 * mode). Returns 0, or -1 for an unknown or revoked key. */
int telex_auth_key_limits(telex_services_t *svc, int64_t key_id, telex_key_limits_t *out);

/* An admitted request that ends before it is recorded (a 503 for the
 * stream limit or shutdown after admission): gives back its reserved
 * tokens and its in-flight slot. Not needed after telex_usage_record, which
 * settles them (exactly one of the two runs, once, per admitted request). */
void telex_auth_release(telex_services_t *svc, telex_grant_t *grant);

/* Both steps. */
int telex_authorize(telex_services_t *svc, const char *authz, size_t len, const char *model, const char *preset,
                    uint64_t est_tokens, telex_grant_t *grant, telex_api_error_t *e);

/* Is authz "Bearer <the admin token>"? Constant time. False when no admin
 * token is configured. */
bool telex_auth_is_admin(const telex_services_t *svc, const char *authz, size_t len);

/* The token of "Bearer <token>" (scheme case-insensitive), or NULL. */
const char *telex_auth_bearer(const char *authz, size_t len, size_t *token_len);

#endif
