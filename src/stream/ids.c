/*
 * stream/ids.c — see ids.h.
 */
#include "stream/ids.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <h2o.h>

static unsigned char secret[32];
static size_t secret_len;
/* Bumped by each telex_ids_init: a thread's HMAC context keyed with an
 * older secret is keyed again (only tests set a second secret). */
static atomic_uint secret_gen = 1;

/* base64url without padding (RFC 4648 section 5), as h2o writes it with
 * url_encoded set: 16 bytes make 22 characters, 32 make 43. */
static void encode_b64url(const unsigned char *in, size_t n, char *out)
{
    h2o_base64_encode(out, in, n, 1);
}

/* The alphabet encode_b64url writes. */
static int is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int telex_ids_init(void)
{
    const char *env = getenv("TELEX_RESUME_SECRET");
    if (env != NULL && env[0] != '\0') {
        /* Any length works as an HMAC key; hash it down to a fixed size. */
        unsigned int len = 0;
        if (EVP_Digest(env, strlen(env), secret, &len, EVP_sha256(), NULL) != 1 || len != sizeof(secret))
            return -1;
        secret_len = len;
        atomic_fetch_add(&secret_gen, 1);
        return 0;
    }
    if (getrandom(secret, sizeof(secret), 0) != (ssize_t)sizeof(secret))
        return -1;
    secret_len = sizeof(secret);
    atomic_fetch_add(&secret_gen, 1);
    return 0;
}

/* Kernel randomness for ids, drawn 16 ids at a time: one getrandom(2) per
 * 16 answers instead of one per answer (a system call costs microseconds
 * on a VM). Per thread, so no lock; each id's bytes are wiped from the pool
 * as they are taken, so the pool never holds an id already handed out.
 * telex does not fork after ids are drawn (a child would repeat them). */
#define ID_RAW 16
static __thread unsigned char id_pool[16 * ID_RAW];
static __thread size_t id_pool_left; /* unused bytes, at the start of id_pool */

int telex_stream_id_new(char *out)
{
    if (id_pool_left < ID_RAW) {
        if (getrandom(id_pool, sizeof(id_pool), 0) != (ssize_t)sizeof(id_pool))
            return -1;
        id_pool_left = sizeof(id_pool);
    }
    id_pool_left -= ID_RAW;
    unsigned char *raw = id_pool + id_pool_left;
    memcpy(out, "st_", 3);
    encode_b64url(raw, ID_RAW, out + 3);
    explicit_bzero(raw, ID_RAW);
    return 0;
}

int telex_stream_id_valid(const char *s, size_t len)
{
    if (len != TELEX_STREAM_ID_LEN || memcmp(s, "st_", 3) != 0)
        return 0;
    for (size_t i = 3; i < len; i++)
        if (!is_b64url(s[i]))
            return 0;
    return 1;
}

int telex_event_id_parse(const char *s, size_t len, char *stream_id_out, uint64_t *seq)
{
    if (len < TELEX_STREAM_ID_LEN + 2 || s[TELEX_STREAM_ID_LEN] != '.' || !telex_stream_id_valid(s, TELEX_STREAM_ID_LEN))
        return -1;
    uint64_t n = 0;
    size_t digits = len - TELEX_STREAM_ID_LEN - 1;
    if (digits > 18)
        return -1;
    for (size_t i = TELEX_STREAM_ID_LEN + 1; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(s[i] - '0');
    }
    memcpy(stream_id_out, s, TELEX_STREAM_ID_LEN);
    stream_id_out[TELEX_STREAM_ID_LEN] = '\0';
    *seq = n;
    return 0;
}

/* HMAC, fetched once, and one HMAC-SHA256 context per thread keyed with
 * the secret (freed when the thread ends; OpenSSL cleanses the key and
 * the states derived from it then). The one-shot HMAC() fetches HMAC and
 * SHA-256 and keys a new context on every call: in OpenSSL 3 that is about
 * three quarters of a token's cost. EVP_MAC_init with a NULL key starts a
 * new MAC with the key the context already holds (OpenSSL 3's HMAC starts
 * again from its keyed inner state; test_ids.c checks the tokens are the
 * one-shot's bytes, token after token, in several threads). */
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;
static EVP_MAC *hmac;
static pthread_key_t hmac_ctx_key;
static int hmac_ready;
static __thread unsigned hmac_ctx_gen; /* the secret_gen this thread's context was keyed with */

static void free_hmac_ctx(void *ctx)
{
    EVP_MAC_CTX_free(ctx);
}

static void hmac_setup(void)
{
    if (pthread_key_create(&hmac_ctx_key, free_hmac_ctx) != 0)
        return;
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    hmac_ready = hmac != NULL;
}

/* This thread's context, started on a new MAC with the current secret; or
 * NULL (then the one-shot HMAC() serves). */
static EVP_MAC_CTX *hmac_ctx(void)
{
    pthread_once(&hmac_once, hmac_setup);
    if (!hmac_ready)
        return NULL;
    unsigned gen = atomic_load(&secret_gen);
    EVP_MAC_CTX *ctx = pthread_getspecific(hmac_ctx_key);
    if (ctx == NULL) {
        if ((ctx = EVP_MAC_CTX_new(hmac)) == NULL)
            return NULL;
        if (pthread_setspecific(hmac_ctx_key, ctx) != 0) {
            EVP_MAC_CTX_free(ctx);
            return NULL;
        }
        hmac_ctx_gen = 0; /* a new context: never keyed */
    }
    if (hmac_ctx_gen != gen) {
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                               OSSL_PARAM_construct_end()};
        /* secret, never NULL: a NULL key would mean "the key it holds" even
         * when secret_len is 0 (no telex_ids_init yet) */
        if (EVP_MAC_init(ctx, secret, secret_len, params) != 1)
            return NULL;
        hmac_ctx_gen = gen;
    } else if (EVP_MAC_init(ctx, NULL, 0, NULL) != 1) {
        hmac_ctx_gen = 0; /* key it again next time */
        return NULL;
    }
    return ctx;
}

int telex_resume_token(const char *stream_id, char *out)
{
    unsigned char mac[32];
    size_t n = 0;
    unsigned int len = 0;
    EVP_MAC_CTX *ctx = hmac_ctx();
    int ok = ctx != NULL ? EVP_MAC_update(ctx, (const unsigned char *)stream_id, strlen(stream_id)) == 1 &&
                               EVP_MAC_final(ctx, mac, &n, sizeof(mac)) == 1 && n == sizeof(mac)
                         : HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)stream_id,
                                strlen(stream_id), mac, &len) != NULL &&
                               len == sizeof(mac);
    if (!ok) {
        hmac_ctx_gen = 0; /* a failed MAC may leave the context half-done: key it again next time */
        out[0] = '\0';   /* no token: nothing can attach with it */
        return -1;
    }
    encode_b64url(mac, sizeof(mac), out);
    return 0;
}

int telex_resume_token_valid(const char *stream_id, const char *token, size_t len)
{
    char expected[TELEX_RESUME_TOKEN_LEN + 1];
    if (len != TELEX_RESUME_TOKEN_LEN || telex_resume_token(stream_id, expected) != 0)
        return 0;
    return CRYPTO_memcmp(expected, token, TELEX_RESUME_TOKEN_LEN) == 0;
}
