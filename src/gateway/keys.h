/*
 * gateway/keys.h — API keys: their format, the checks `telex keys` and the
 * admin API make on a key's fields, and a key row as JSON.
 *
 * A key is "tlx_" + 43 base62 characters (32 random bytes from the
 * kernel). It is shown once, when created; the store keeps only its
 * SHA-256. No store, no services (the key set that requests are checked
 * against is keyset.h); the only state is telex_key_hash's per-thread
 * digest context, a cache that changes no result.
 */
#ifndef TELEX_GATEWAY_KEYS_H
#define TELEX_GATEWAY_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store/store.h"

#define TELEX_KEY_PREFIX "tlx_"
#define TELEX_KEY_LEN 47 /* "tlx_" + 43 base62 characters */

/* A new random key, NUL-terminated, into out[TELEX_KEY_LEN + 1]. Returns 0,
 * or -EIO when the kernel gives no randomness. */
int telex_key_generate(char *out);
/* Is s (len bytes) shaped like a telex key? */
bool telex_key_well_formed(const char *s, size_t len);
/* SHA-256 of the key's bytes (all zero if OpenSSL fails: matches no key).
 * Any thread; each keeps its own digest context. */
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
 * running server's count includes rows not yet written). Never NULL: what
 * JSON cannot carry (a name or prefix that is not UTF-8, a budget or spend
 * that is not a finite number: only a database edited by hand holds one)
 * shows as "?" or null. */
json_t *telex_key_to_json(const telex_key_row_t *row, double spent, int64_t now);

#endif
