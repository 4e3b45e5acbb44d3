/*
 * gateway/auth.c — the relay's checks: authenticate (the key against the
 * key set), admit (allow-list, budget, rate and concurrency limits),
 * release, and the admin token. See auth.h.
 *
 * Anonymous callers: when the services allow them (services.h), a request
 * without an Authorization header — or with one that is not shaped like a
 * telex key, since SDKs insist on sending some key — is served as
 * anonymous; a telex key that is present is always checked.
 */
#include "gateway/auth.h"
#include "cluster/limits.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "gateway/keys.h"
#include "gateway/keyset.h"
#include "gateway/limits.h"
#include "util/money.h"

const char *telex_auth_bearer(const char *authz, size_t len, size_t *token_len)
{
    if (authz == NULL || len < 7 || strncasecmp(authz, "bearer", 6) != 0 || (authz[6] != ' ' && authz[6] != '\t'))
        return NULL;
    size_t i = 6;
    while (i < len && (authz[i] == ' ' || authz[i] == '\t'))
        i++;
    size_t j = len;
    while (j > i && (authz[j - 1] == ' ' || authz[j - 1] == '\t'))
        j--;
    *token_len = j - i;
    return authz + i;
}

static void format_utc(int64_t t, char *buf, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, n, "%lld", (long long)t);
}

/* grant->owner = "key:<id>", the bytes snprintf's "key:%lld" writes (but
 * at a tenth of its cost: every request authenticates up to three times). */
static void set_owner(telex_grant_t *grant, int64_t id)
{
    _Static_assert(sizeof grant->owner >= sizeof "key:-9223372036854775808", "owner holds any key id");
    if (id <= 0) { /* key ids are positive; anything else the plain way */
        snprintf(grant->owner, sizeof grant->owner, "key:%lld", (long long)id);
        return;
    }
    char digits[20];
    size_t n = 0;
    for (uint64_t v = (uint64_t)id; v > 0; v /= 10)
        digits[n++] = (char)('0' + v % 10);
    char *p = grant->owner;
    memcpy(p, "key:", 4);
    p += 4;
    while (n > 0)
        *p++ = digits[--n];
    *p = '\0';
}

int telex_auth_authenticate(telex_services_t *svc, const char *authz, size_t len, telex_grant_t *grant,
                            telex_api_error_t *e)
{
    memset(grant, 0, sizeof(*grant));
    size_t tlen = 0;
    const char *token = telex_auth_bearer(authz, len, &tlen);
    bool anonymous_ok = telex_services_anonymous_allowed(svc);
    bool present = authz != NULL && len > 0 && !(token != NULL && tlen == 0);
    if (!present || (anonymous_ok && !telex_key_well_formed(token, tlen))) {
        if (anonymous_ok)
            return 0;
        return telex_api_error_set(e, 401, "invalid_request_error", "missing_api_key", NULL,
                                   "You did not provide an API key. Send it as `Authorization: Bearer tlx_...`; "
                                   "an administrator creates keys with `telex keys create`.");
    }
    if (token == NULL)
        return telex_api_error_set(e, 401, "invalid_request_error", "invalid_api_key", NULL,
                                   "The Authorization header must be `Bearer <API key>`.");
    if (!telex_key_well_formed(token, tlen))
        return telex_api_error_set(e, 401, "invalid_request_error", "invalid_api_key", NULL,
                                   "Incorrect API key provided. telex keys start with tlx_ and are %d characters "
                                   "long.",
                                   TELEX_KEY_LEN);
    uint8_t hash[TELEX_KEY_HASH_LEN];
    telex_key_hash(token, tlen, hash);
    telex_keyset_snap_t *s = telex_keyset_get(telex_services_keyset(svc));
    const telex_key_entry_t *k = telex_keyset_by_hash(s, hash);
    int rc = 0;
    if (k == NULL) {
        rc = telex_api_error_set(e, 401, "invalid_request_error", "invalid_api_key", NULL,
                                 "Incorrect API key provided.");
    } else if (k->revoked_at != 0) {
        rc = telex_api_error_set(e, 401, "invalid_request_error", "key_revoked", NULL,
                                 "This API key has been revoked.");
    } else if (k->expires_at != 0 && k->expires_at <= (int64_t)time(NULL)) {
        char when[32];
        format_utc(k->expires_at, when, sizeof when);
        rc = telex_api_error_set(e, 401, "invalid_request_error", "key_expired", NULL, "This API key expired at %s.",
                                 when);
    } else {
        grant->key_id = k->id;
        set_owner(grant, k->id);
    }
    telex_keyset_put(s);
    return rc;
}

int telex_auth_admit(telex_services_t *svc, telex_grant_t *grant, const char *model, const char *preset,
                     uint64_t est_tokens, telex_api_error_t *e)
{
    grant->admitted = false;
    grant->reserved_tokens = 0;
    grant->reserved_usd = 0;
    grant->holds_slot = false;
    if (grant->key_id == 0) {
        grant->admitted = true;
        return 0;
    }
    telex_keyset_snap_t *s = telex_keyset_get(telex_services_keyset(svc));
    const telex_key_entry_t *k = telex_keyset_by_id(s, grant->key_id);
    int rc = 0;
    char safe[140];
    if (k == NULL || k->revoked_at != 0) {
        rc = telex_api_error_set(e, 401, "invalid_request_error", "key_revoked", NULL,
                                 "This API key has been revoked.");
        goto out;
    }
    if (!telex_key_allows_model(k->models, model ? model : "", preset)) {
        const char *asked = preset ? preset : model ? model : "";
        telex_api_safe_text(safe, sizeof safe, asked, strlen(asked));
        rc = telex_api_error_set(e, 403, "invalid_request_error", "model_not_allowed", "model",
                                 "This API key may not use %s '%s'. It may use: %.200s.", preset ? "preset" : "model",
                                 safe, k->models);
        goto out;
    }
    unsigned retry = 0;
    telex_limits_t *limits = telex_services_limits(svc);
    double est_usd = k->limits.budget_usd >= 0 && grant->estimate_usd > 0 ? grant->estimate_usd : 0;
    telex_limit_verdict_t verdict;
    if (grant->cluster_decided) { /* cluster mode: Redis took (or refused) the same reservation */
        verdict = (telex_limit_verdict_t)grant->cluster_verdict;
        retry = grant->cluster_retry;
    } else {
        verdict = telex_limits_admit_cost(limits, k->id, &k->limits, est_tokens, est_usd, telex_limits_now_ms(), &retry);
    }
    switch (verdict) {
    case TELEX_LIMIT_OK:
        grant->admitted = true;
        grant->reserved_tokens = k->limits.tpm > 0 ? est_tokens : 0;
        grant->reserved_usd = est_usd;
        /* the node's in-flight count: taken by telex_limits_admit_cost, or here when Redis decided */
        if (grant->cluster_decided)
            telex_limits_hold_slot(limits, k->id);
        grant->holds_slot = true;
        break;
    case TELEX_LIMIT_BUDGET: {
        char spent[TELEX_USD_LEN], budget[TELEX_USD_LEN];
        rc = telex_api_error_set(e, 402, "insufficient_quota", "budget_exceeded", NULL,
                                 "This API key has used its budget: it spent $%s of $%s. Ask an administrator "
                                 "to raise it (telex keys update --budget-usd).",
                                 telex_format_usd(spent, sizeof spent, telex_limits_spent(limits, k->id)),
                                 telex_format_usd(budget, sizeof budget, k->limits.budget_usd));
        break;
    }
    case TELEX_LIMIT_RPM:
        rc = telex_api_error_set(e, 429, "rate_limit_error", "rate_limit_exceeded", NULL,
                                 "Rate limit reached: this API key may make %lld requests per minute. Retry in %u "
                                 "s.",
                                 (long long)k->limits.rpm, retry);
        e->retry_after = retry;
        break;
    case TELEX_LIMIT_TPM:
        rc = telex_api_error_set(e, 429, "rate_limit_error", "rate_limit_exceeded", NULL,
                                 "Rate limit reached: this API key may use %lld tokens per minute. Retry in %u s.",
                                 (long long)k->limits.tpm, retry);
        e->retry_after = retry;
        break;
    case TELEX_LIMIT_CONCURRENCY:
        rc = telex_api_error_set(e, 429, "rate_limit_error", "concurrency_limit_exceeded", NULL,
                                 "Concurrency limit reached: this API key may have %lld requests running at once. "
                                 "Retry when one of them has ended.",
                                 (long long)k->limits.max_concurrent);
        e->retry_after = retry > 0 ? retry : 1;
        break;
    }
out:
    if (rc != 0 && grant->cluster_decided && grant->cluster_verdict == TELEX_LIMIT_OK) /* give Redis' reservation back */
        telex_cluster_settle(grant->key_id, grant->cluster_reservation, k != NULL && k->limits.tpm > 0 ? est_tokens : 0,
                             0, 0);
    if (rc != 0)
        telex_cluster_lease_end(grant->key_id, grant->cluster_lease, 0);
    telex_keyset_put(s);
    return rc;
}

int telex_auth_key_limits(telex_services_t *svc, int64_t key_id, telex_key_limits_t *out)
{
    telex_keyset_snap_t *s = telex_keyset_get(telex_services_keyset(svc));
    const telex_key_entry_t *k = telex_keyset_by_id(s, key_id);
    int rc = k != NULL && k->revoked_at == 0 ? 0 : -1;
    if (rc == 0)
        *out = k->limits;
    telex_keyset_put(s);
    return rc;
}

void telex_auth_release(telex_services_t *svc, telex_grant_t *grant)
{
    /* the Redis lease goes with the settle below (cluster/limits.c) */
    if (grant->key_id > 0 && grant->cluster_decided && grant->admitted)
        telex_cluster_settle(grant->key_id, grant->cluster_reservation, grant->reserved_tokens, 0, 0);
    else if (grant->key_id > 0 && (grant->reserved_tokens > 0 || grant->reserved_usd > 0))
        telex_limits_settle_cost(telex_services_limits(svc), grant->key_id, grant->reserved_tokens, 0,
                                 grant->reserved_usd, 0);
    if (grant->key_id > 0 && grant->holds_slot)
        telex_limits_release_slot(telex_services_limits(svc), grant->key_id);
    telex_cluster_lease_end(grant->key_id, grant->cluster_lease, 0); /* decided locally: its lease, a lost admission */
    grant->cluster_lease = 0;
    grant->holds_slot = false;
    grant->reserved_tokens = 0;
    grant->reserved_usd = 0;
    grant->admitted = false;
}

int telex_authorize(telex_services_t *svc, const char *authz, size_t len, const char *model, const char *preset,
                    uint64_t est_tokens, telex_grant_t *grant, telex_api_error_t *e)
{
    int rc = telex_auth_authenticate(svc, authz, len, grant, e);
    return rc != 0 ? rc : telex_auth_admit(svc, grant, model, preset, est_tokens, e);
}

bool telex_auth_is_admin(const telex_services_t *svc, const char *authz, size_t len)
{
    const char *admin = telex_services_config(svc)->auth.admin_token;
    size_t tlen = 0;
    const char *token = telex_auth_bearer(authz, len, &tlen);
    if (admin == NULL || token == NULL || tlen == 0 || tlen > 1024)
        return false;
    /* compare digests: constant time whatever the lengths */
    uint8_t a[TELEX_KEY_HASH_LEN], b[TELEX_KEY_HASH_LEN];
    telex_key_hash(admin, strlen(admin), a);
    telex_key_hash(token, tlen, b);
    return CRYPTO_memcmp(a, b, sizeof a) == 0;
}
