/*
 * gateway/auth.c — key format, the key-set snapshot, and the relay's
 * authenticate/admit checks. See auth.h.
 *
 * The snapshot is immutable and reference counted: a reader takes a
 * reference under a mutex held for a pointer copy, checks without any
 * lock, and drops it; a reload builds a new snapshot off to the side and
 * swaps the pointer. So key checks on the event loops never wait for a
 * reload (which reads SQLite on the ledger thread or the thread pool).
 *
 * Anonymous callers: when the services allow them (services.h), a request
 * without an Authorization header — or with one that is not shaped like a
 * telex key, since SDKs insist on sending some key — is served as
 * anonymous; a telex key that is present is always checked.
 */
#include "gateway/auth.h"
#include "cluster/limits.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "gateway/limits.h"
#include "util/alloc.h"
#include "util/money.h"

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* ---- keys ------------------------------------------------------------------ */

int telex_key_generate(char *out)
{
    uint8_t num[32];
    size_t got = 0;
    while (got < sizeof num) {
        ssize_t n = getrandom(num + got, sizeof num - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -EIO;
        }
        got += (size_t)n;
    }
    /* The 256-bit number in base 62, most significant digit first: 43 digits. */
    char digits[43];
    for (int d = 42; d >= 0; d--) {
        unsigned rem = 0;
        for (size_t i = 0; i < sizeof num; i++) {
            unsigned cur = rem * 256 + num[i];
            num[i] = (uint8_t)(cur / 62);
            rem = cur % 62;
        }
        digits[d] = base62[rem];
    }
    memcpy(out, TELEX_KEY_PREFIX, 4);
    memcpy(out + 4, digits, sizeof digits);
    out[TELEX_KEY_LEN] = '\0';
    return 0;
}

bool telex_key_well_formed(const char *s, size_t len)
{
    if (s == NULL || len != TELEX_KEY_LEN || memcmp(s, TELEX_KEY_PREFIX, 4) != 0)
        return false;
    for (size_t i = 4; i < len; i++)
        if (!isalnum((unsigned char)s[i]))
            return false;
    return true;
}

void telex_key_hash(const char *key, size_t len, uint8_t out[TELEX_KEY_HASH_LEN])
{
    unsigned int n = 0;
    if (EVP_Digest(key, len, out, &n, EVP_sha256(), NULL) != 1 || n != TELEX_KEY_HASH_LEN)
        memset(out, 0, TELEX_KEY_HASH_LEN); /* no digest: matches no stored key */
}

int telex_key_new_row(const char *name, telex_key_row_t *row, char *key_out)
{
    memset(row, 0, sizeof(*row));
    if (telex_key_generate(key_out) != 0)
        return -EIO;
    snprintf(row->name, sizeof row->name, "%s", name);
    memcpy(row->prefix, key_out, TELEX_KEY_PREFIX_LEN);
    row->prefix[TELEX_KEY_PREFIX_LEN] = '\0';
    telex_key_hash(key_out, TELEX_KEY_LEN, row->hash);
    row->created_at = (int64_t)time(NULL);
    row->budget_usd = -1;
    return 0;
}

bool telex_key_allows_model(const char *list, const char *model, const char *preset)
{
    if (list == NULL || *list == '\0')
        return true;
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && *p == ' ')
            p++, n--;
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n > 0) {
            bool prefix = p[n - 1] == '*';
            size_t m = prefix ? n - 1 : n;
            const char *cands[2] = {model, NULL};
            char pbuf[80];
            if (preset != NULL && strlen(preset) < 64) {
                snprintf(pbuf, sizeof pbuf, "preset:%s", preset);
                cands[1] = pbuf;
            }
            for (int i = 0; i < 2; i++) {
                const char *c = cands[i];
                if (c == NULL)
                    continue;
                if (prefix ? strncmp(c, p, m) == 0 : (strlen(c) == m && strncmp(c, p, m) == 0))
                    return true;
            }
        }
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

int telex_parse_expiry(const char *text, int64_t now, int64_t *out, char *err, size_t errlen)
{
    int64_t t = -1;
    size_t n = strlen(text);
    if (strcmp(text, "never") == 0) {
        *out = 0;
        return 0;
    }
    char unit = n ? text[n - 1] : 0;
    if (n >= 2 && n <= 8 && strchr("mhdw", unit) && strspn(text, "0123456789") == n - 1) {
        long long k = strtoll(text, NULL, 10);
        long long mult = unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400 : 604800;
        t = k > 0 ? now + k * mult : -1;
    } else {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *rest = strptime(text, "%Y-%m-%d", &tm);
        if (rest != NULL && n == 10) {
            t = (int64_t)timegm(&tm);
        } else if (rest != NULL && (*rest == 'T' || *rest == ' ')) {
            const char *z = strptime(rest + 1, "%H:%M:%S", &tm);
            if (z != NULL && (strcmp(z, "Z") == 0 || strcmp(z, "+00:00") == 0))
                t = (int64_t)timegm(&tm);
        }
        if (t >= 0 && tm.tm_year + 1900 > 9999)
            t = -1;
    }
    if (t < 0) {
        if (err && errlen)
            snprintf(err, errlen,
                     "expected a date (2026-01-31, meaning 00:00 UTC), a UTC time (2026-01-31T12:00:00Z), "
                     "a duration (90m, 12h, 30d, 2w) or never");
        return -EINVAL;
    }
    if (t <= now) {
        if (err && errlen)
            snprintf(err, errlen, "is in the past; revoke a key to stop it at once");
        return -EINVAL;
    }
    *out = t;
    return 0;
}

/* ---- validation and display --------------------------------------------------------- */

static int errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

int telex_key_check_name(const char *name, char *err, size_t errlen)
{
    size_t n = strlen(name);
    if (n == 0 || n > TELEX_KEY_NAME_MAX)
        return errf(err, errlen, "a key name is 1 to %d bytes", TELEX_KEY_NAME_MAX);
    if (strspn(name, "0123456789") == n)
        return errf(err, errlen, "a key name cannot be only digits (digits name a key by its id)");
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return errf(err, errlen, "a key name must not contain control characters");
    return 0;
}

static bool model_char(char ch)
{
    return isalnum((unsigned char)ch) || strchr("._:/@+-*", ch) != NULL;
}

int telex_key_join_models(const char *const *items, size_t n, char *out, size_t cap, char *err, size_t errlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *p = items[i];
        if (strspn(p, " ") == strlen(p)) /* "" would read as "every model" */
            return errf(err, errlen, "an empty model name (leave the list out, or use null or all, for every model)");
        while (*p) {
            const char *end = strchr(p, ',');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            while (len > 0 && *p == ' ')
                p++, len--;
            while (len > 0 && p[len - 1] == ' ')
                len--;
            if (len == 0) /* "" would read as "every model" */
                return errf(err, errlen, "an empty model name (leave the list out, or use null or all, for every model)");
            {
                if (len > 128)
                    return errf(err, errlen, "a model name is at most 128 characters");
                for (size_t k = 0; k < len; k++)
                    if (!model_char(p[k]))
                        return errf(err, errlen, "model \"%.*s\": only letters, digits and . _ : / @ + - * are allowed",
                                    (int)(len > 64 ? 64 : len), p);
                const char *star = memchr(p, '*', len);
                if (star != NULL && star != p + len - 1)
                    return errf(err, errlen, "model \"%.*s\": '*' may only end a name (a prefix match)",
                                (int)(len > 64 ? 64 : len), p);
                if (o + len + 2 > cap)
                    return errf(err, errlen, "the model list is longer than %zu bytes", cap - 1);
                if (o > 0)
                    out[o++] = ',';
                memcpy(out + o, p, len);
                o += len;
                out[o] = '\0';
            }
            if (!end)
                break;
            p = end + 1;
        }
    }
    return 0;
}

int telex_key_check_budget(double usd, char *err, size_t errlen)
{
    if (!(usd >= 0) || usd > 1e9)
        return errf(err, errlen, "a budget is a number of US dollars from 0 to 1000000000");
    return 0;
}

int telex_key_check_rate(long long v, const char *what, char *err, size_t errlen)
{
    if (v < 0 || v > 1000000000LL)
        return errf(err, errlen, "%s is a whole number from 0 (unlimited) to 1000000000", what);
    return 0;
}

static json_t *time_or_null(int64_t t)
{
    if (t == 0)
        return json_null();
    char buf[32];
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return json_integer(t);
    return json_string(buf);
}

json_t *telex_key_to_json(const telex_key_row_t *k, double spent, int64_t now)
{
    json_t *models = json_array();
    const char *p = k->models;
    while (models != NULL && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0)
            json_array_append_new(models, json_stringn(p, len));
        if (!end)
            break;
        p = end + 1;
    }
    const char *status = k->revoked_at ? "revoked" : (k->expires_at && k->expires_at <= now) ? "expired" : "active";
    double s = spent > k->spent_usd ? spent : k->spent_usd;
    json_t *name = json_string(k->name);
    json_t *o = json_pack("{s:I,s:s,s:o,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:f,s:I,s:I,s:I,s:o}", "id", (json_int_t)k->id, "object",
                          "api_key", "name", name ? name : json_string("?"), "prefix", k->prefix, "status", status,
                          "created_at", time_or_null(k->created_at), "expires_at", time_or_null(k->expires_at),
                          "revoked_at", time_or_null(k->revoked_at), "last_used_at", time_or_null(k->last_used_at),
                          "budget_usd", k->budget_usd >= 0 ? json_real(k->budget_usd) : json_null(), "spent_usd",
                          round(s * 1e10) / 1e10, "rpm", (json_int_t)k->rpm, "tpm", (json_int_t)k->tpm, "max_concurrent",
                          (json_int_t)k->max_concurrent, "models",
                          models ? models : json_array());
    return o;
}

/* ---- the key set -------------------------------------------------------------- */

typedef struct kent {
    uint8_t hash[TELEX_KEY_HASH_LEN];
    int64_t id;
    int64_t expires_at;
    int64_t revoked_at;
    telex_key_limits_t limits;
    char models[TELEX_KEY_MODELS_MAX + 1];
} kent_t;

typedef struct snap {
    atomic_int refs;
    size_t n, active;
    kent_t *by_hash;  /* sorted by hash */
    kent_t **by_id;   /* sorted by id */
} snap_t;

struct telex_keyset {
    pthread_mutex_t lock; /* guards cur (a pointer copy and a reference) */
    snap_t *cur;
};

static void snap_unref(snap_t *s)
{
    if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1) {
        free(s->by_hash);
        free(s->by_id);
        free(s);
    }
}

static snap_t *snap_get(telex_keyset_t *ks)
{
    pthread_mutex_lock(&ks->lock);
    snap_t *s = ks->cur;
    if (s != NULL)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&ks->lock);
    return s;
}

telex_keyset_t *telex_keyset_new(void)
{
    telex_keyset_t *ks = telex_xcalloc(1, sizeof(*ks));
    snap_t *empty = telex_xcalloc(1, sizeof(*empty));
    atomic_init(&empty->refs, 1);
    pthread_mutex_init(&ks->lock, NULL);
    ks->cur = empty;
    return ks;
}

void telex_keyset_free(telex_keyset_t *ks)
{
    if (ks == NULL)
        return;
    snap_unref(ks->cur);
    pthread_mutex_destroy(&ks->lock);
    free(ks);
}

static int cmp_hash(const void *a, const void *b)
{
    return memcmp(((const kent_t *)a)->hash, ((const kent_t *)b)->hash, TELEX_KEY_HASH_LEN);
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = (*(kent_t *const *)a)->id, y = (*(kent_t *const *)b)->id;
    return x < y ? -1 : x > y;
}

int telex_keyset_load(telex_keyset_t *ks, telex_store_t *store, telex_limits_t *limits, char *err, size_t errlen)
{
    telex_key_row_t *rows = NULL;
    size_t n = 0;
    int rc = telex_store_key_list(store, &rows, &n, err, errlen);
    if (rc < 0)
        return rc;
    snap_t *s = telex_xcalloc(1, sizeof(*s));
    kent_t *by_hash = n ? telex_xcalloc(n, sizeof(*by_hash)) : NULL;
    kent_t **by_id = n ? telex_xcalloc(n, sizeof(*by_id)) : NULL;
    atomic_init(&s->refs, 1);
    s->n = n;
    s->by_hash = by_hash;
    s->by_id = by_id;
    for (size_t i = 0; i < n; i++) {
        kent_t *k = &by_hash[i];
        memcpy(k->hash, rows[i].hash, TELEX_KEY_HASH_LEN);
        k->id = rows[i].id;
        k->expires_at = rows[i].expires_at;
        k->revoked_at = rows[i].revoked_at;
        k->limits.rpm = rows[i].rpm;
        k->limits.tpm = rows[i].tpm;
        k->limits.budget_usd = rows[i].budget_usd;
        k->limits.max_concurrent = rows[i].max_concurrent;
        memcpy(k->models, rows[i].models, sizeof k->models);
        if (k->revoked_at == 0)
            s->active++;
        if (limits != NULL)
            telex_limits_seed_spend(limits, k->id, rows[i].spent_usd);
    }
    free(rows);
    if (n > 0)
        qsort(by_hash, n, sizeof(*by_hash), cmp_hash);
    for (size_t i = 0; i < n; i++)
        by_id[i] = &by_hash[i];
    if (n > 0)
        qsort(by_id, n, sizeof(*by_id), cmp_id);
    pthread_mutex_lock(&ks->lock);
    snap_t *old = ks->cur;
    ks->cur = s;
    pthread_mutex_unlock(&ks->lock);
    snap_unref(old);
    return 0;
}

size_t telex_keyset_active(telex_keyset_t *ks)
{
    snap_t *s = snap_get(ks);
    size_t n = s ? s->active : 0;
    snap_unref(s);
    return n;
}

static const kent_t *by_hash(const snap_t *s, const uint8_t *hash)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(s->by_hash[mid].hash, hash, TELEX_KEY_HASH_LEN);
        if (c == 0)
            return CRYPTO_memcmp(s->by_hash[mid].hash, hash, TELEX_KEY_HASH_LEN) == 0 ? &s->by_hash[mid] : NULL;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static const kent_t *by_id(const snap_t *s, int64_t id)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->by_id[mid]->id == id)
            return s->by_id[mid];
        if (s->by_id[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- the relay's checks -------------------------------------------------------- */

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
    snap_t *s = snap_get(telex_services_keyset(svc));
    const kent_t *k = s ? by_hash(s, hash) : NULL;
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
        snprintf(grant->owner, sizeof grant->owner, "key:%lld", (long long)k->id);
    }
    snap_unref(s);
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
    snap_t *s = snap_get(telex_services_keyset(svc));
    const kent_t *k = s ? by_id(s, grant->key_id) : NULL;
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
        grant->holds_slot = !grant->cluster_decided || telex_limits_hold_slot(limits, k->id) == 0;
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
        telex_cluster_lease_end(grant->key_id, grant->cluster_lease);
    snap_unref(s);
    return rc;
}

int telex_auth_key_limits(telex_services_t *svc, int64_t key_id, telex_key_limits_t *out)
{
    snap_t *s = snap_get(telex_services_keyset(svc));
    const kent_t *k = s ? by_id(s, key_id) : NULL;
    int rc = k != NULL && k->revoked_at == 0 ? 0 : -1;
    if (rc == 0)
        *out = k->limits;
    snap_unref(s);
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
    telex_cluster_lease_end(grant->key_id, grant->cluster_lease); /* decided locally (Redis away): its lease */
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
