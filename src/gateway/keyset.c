/*
 * gateway/keyset.c — the key-set snapshot: loading it from the store,
 * swapping it in, and looking keys up. See keyset.h.
 *
 * The snapshot is immutable and reference counted: a reader takes a
 * reference under a mutex held for a pointer copy, checks without any
 * lock, and drops it; a reload builds a new snapshot off to the side and
 * swaps the pointer.
 */
#include "gateway/keyset.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "util/alloc.h"

typedef telex_key_entry_t kent_t; /* keyset.h */

typedef struct telex_keyset_snap {
    atomic_int refs;
    size_t n, active;
    kent_t *by_hash;  /* sorted by hash */
    kent_t **by_id;   /* sorted by id */
} snap_t;

struct telex_keyset {
    pthread_mutex_t lock; /* guards cur (a pointer copy and a reference) */
    snap_t *cur;
};

void telex_keyset_put(snap_t *s)
{
    if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1) {
        free(s->by_hash);
        free(s->by_id);
        free(s);
    }
}

snap_t *telex_keyset_get(telex_keyset_t *ks)
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
    telex_keyset_put(ks->cur);
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
    telex_keyset_put(old);
    return 0;
}

size_t telex_keyset_active(telex_keyset_t *ks)
{
    snap_t *s = telex_keyset_get(ks);
    size_t n = s ? s->active : 0;
    telex_keyset_put(s);
    return n;
}

const kent_t *telex_keyset_by_hash(const snap_t *s, const uint8_t *hash)
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

const kent_t *telex_keyset_by_id(const snap_t *s, int64_t id)
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
