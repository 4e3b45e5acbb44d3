/*
 * gateway/keys.c — key format, field validation and a key row as JSON.
 * See keys.h.
 */
#include "gateway/keys.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/evp.h>

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

/* SHA-256, fetched once, and one digest context per thread (freed, its
 * memory cleansed by OpenSSL, when the thread ends). EVP_Digest with
 * EVP_sha256() fetches the algorithm and builds a context on every call:
 * in OpenSSL 3 that is more than half of a key check, and every request
 * checks its key up to three times. The context holds no key bytes between
 * calls: SHA-256's final step wipes its input block. */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256;
static pthread_key_t sha256_ctx_key;
static bool sha256_ready;

static void free_sha256_ctx(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void sha256_setup(void)
{
    if (pthread_key_create(&sha256_ctx_key, free_sha256_ctx) != 0)
        return;
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    sha256_ready = sha256 != NULL;
}

/* This thread's context, or NULL (then the one-shot path serves). */
static EVP_MD_CTX *sha256_ctx(void)
{
    pthread_once(&sha256_once, sha256_setup);
    if (!sha256_ready)
        return NULL;
    EVP_MD_CTX *ctx = pthread_getspecific(sha256_ctx_key);
    if (ctx == NULL && (ctx = EVP_MD_CTX_new()) != NULL && pthread_setspecific(sha256_ctx_key, ctx) != 0) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

void telex_key_hash(const char *key, size_t len, uint8_t out[TELEX_KEY_HASH_LEN])
{
    unsigned int n = 0;
    EVP_MD_CTX *ctx = sha256_ctx();
    int ok = ctx != NULL ? EVP_DigestInit_ex2(ctx, sha256, NULL) == 1 && EVP_DigestUpdate(ctx, key, len) == 1 &&
                               EVP_DigestFinal_ex(ctx, out, &n) == 1
                         : EVP_Digest(key, len, out, &n, EVP_sha256(), NULL) == 1;
    if (!ok || n != TELEX_KEY_HASH_LEN)
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

/* A checked string, or "?" for one that is not UTF-8. */
static json_t *string_or_mark(const char *s)
{
    json_t *j = json_string(s);
    return j != NULL ? j : json_string("?");
}

/* A real, or null for one that is not finite (jansson refuses it). */
static json_t *real_or_null(double v)
{
    json_t *j = json_real(v);
    return j != NULL ? j : json_null();
}

json_t *telex_key_to_json(const telex_key_row_t *k, double spent, int64_t now)
{
    json_t *models = json_array();
    const char *p = k->models;
    while (*p) {
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
    /* a row written by hand may hold what JSON cannot carry: shown as "?" or null, never a failure */
    return json_pack("{s:I,s:s,s:o,s:o,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:I,s:I,s:o}", "id", (json_int_t)k->id, "object",
                     "api_key", "name", string_or_mark(k->name), "prefix", string_or_mark(k->prefix), "status", status,
                     "created_at", time_or_null(k->created_at), "expires_at", time_or_null(k->expires_at),
                     "revoked_at", time_or_null(k->revoked_at), "last_used_at", time_or_null(k->last_used_at),
                     "budget_usd", k->budget_usd >= 0 ? real_or_null(k->budget_usd) : json_null(), "spent_usd",
                     real_or_null(round(s * 1e10) / 1e10), "rpm", (json_int_t)k->rpm, "tpm", (json_int_t)k->tpm,
                     "max_concurrent", (json_int_t)k->max_concurrent, "models", models);
}
