/*
 * gateway/keyset.h — the in-memory key set: every key of the store, by
 * hash and by id, as an immutable snapshot.
 *
 * Reloading builds a new snapshot off to the side and swaps it in under a
 * mutex held for a pointer copy; a reader takes a reference to the current
 * snapshot, looks keys up without any lock, and drops it. So checking a
 * key never touches the disk and never waits for a reload (which reads the
 * store on the ledger thread or the thread pool).
 *
 * It sits below the services (services.h creates it and reloads it when
 * the store changes) and takes only the store, to read the keys, and the
 * limits, to seed each new key's spend. The checks a request goes through
 * against it are auth.h.
 */
#ifndef TELEX_GATEWAY_KEYSET_H
#define TELEX_GATEWAY_KEYSET_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/limits.h"
#include "store/store.h"

typedef struct telex_keyset telex_keyset_t;
/* One snapshot of the key set (reference counted). */
typedef struct telex_keyset_snap telex_keyset_snap_t;

/* A key as requests are checked against it. */
typedef struct telex_key_entry {
    uint8_t hash[TELEX_KEY_HASH_LEN];
    int64_t id;
    int64_t expires_at; /* 0 = never */
    int64_t revoked_at; /* 0 = not revoked */
    telex_key_limits_t limits;
    char models[TELEX_KEY_MODELS_MAX + 1]; /* allow-list, "" = every model */
} telex_key_entry_t;

/* Never NULL (out of memory aborts: util/alloc.h); starts empty. */
telex_keyset_t *telex_keyset_new(void);
void telex_keyset_free(telex_keyset_t *ks);
/* Replaces the snapshot with the store's keys; seeds each new key's spend
 * into limits (may be NULL). Not on an event loop. Returns 0 or a negative
 * errno (the store's, with one line in err). */
int telex_keyset_load(telex_keyset_t *ks, telex_store_t *store, telex_limits_t *limits, char *err, size_t errlen);
/* Keys not revoked in the current snapshot. */
size_t telex_keyset_active(telex_keyset_t *ks);

/* The current snapshot, with a reference: look keys up in it, then drop it
 * with telex_keyset_put. Never NULL. Any thread. */
telex_keyset_snap_t *telex_keyset_get(telex_keyset_t *ks);
void telex_keyset_put(telex_keyset_snap_t *s);
/* The key with this hash (compared in constant time once found), or NULL. */
const telex_key_entry_t *telex_keyset_by_hash(const telex_keyset_snap_t *s, const uint8_t *hash);
/* The key with this id, or NULL. Valid while the snapshot is held. */
const telex_key_entry_t *telex_keyset_by_id(const telex_keyset_snap_t *s, int64_t id);

#endif
