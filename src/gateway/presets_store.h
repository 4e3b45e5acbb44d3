/*
 * gateway/presets_store.h — presets kept in the store (both backends) next
 * to those of telex.yaml: checking one, merging a change, and the live set
 * the gateway serves. A library under the services: it takes the config
 * and the store, never the services.
 *
 * A stored preset is the JSON of a telex.yaml preset: {"name", "model",
 * "description"?, "system"?, "template"?, "parameters"? {...},
 * "variables"? {name: "text"}} with the same rules (name of 1 to 64
 * letters, digits, '.', '_', '-'; a model this gateway serves, not
 * "preset:..."; {{placeholders}} of letters, digits and _; parameters not
 * "model" or "messages", numbers in range). A preset of telex.yaml wins over
 * a stored one of the same name: the stored one is not served (logged at
 * start and whenever the set is rebuilt with a new such conflict); the
 * admin API reports it as "shadowed" and refuses to change the file's.
 *
 * The live set: built at start from the config and the store, rebuilt when
 * the store's presets change (services' tick polls the data version 5
 * times a second: another process, another node) or at once after a change
 * through this node's admin API. Readers get the current set without a
 * lock; a replaced set is freed 10 s later (expansion is synchronous, on
 * the caller's thread: no reader holds one that long).
 *
 * The admin API on stored presets (/admin/presets) is admin_presets.c,
 * declared in admin.h.
 */
#ifndef TELEX_GATEWAY_PRESETS_STORE_H
#define TELEX_GATEWAY_PRESETS_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "config/config.h"
#include "gateway/apierror.h"
#include "gateway/presets.h"
#include "store/store.h"

/* Is s a preset name: 1 to TELEX_PRESET_NAME_MAX letters, digits, '.',
 * '_' or '-'? */
bool telex_preset_name_valid(const char *s);

/* A stored preset (its JSON body) with a PATCH applied: each member of
 * changes replaces the stored one, a null removes it. A body that is not
 * an object counts as {}. Returns a new reference. */
json_t *telex_preset_merge(const char *stored_body, const json_t *changes);

/* Checks a preset's JSON. cfg (may be NULL: the model is then not checked
 * against it) is the gateway's config. On success *canonical is the JSON
 * text to store (malloc'ed) and 0 is returned; otherwise -EINVAL with
 * *param (the field, e.g. "parameters.temperature") and msg. */
int telex_preset_check(const telex_config_t *cfg, const json_t *preset, char **canonical, char *param, size_t plen,
                       char *msg, size_t mlen);

typedef struct telex_presets_live telex_presets_live_t;

/* Builds the first set from cfg and store (store may be NULL: the file's
 * only). Returns 0, or a negative errno with a message. */
int telex_presets_live_new(telex_presets_live_t **out, const telex_config_t *cfg, telex_store_t *store, char *err,
                           size_t errlen);
/* The current set (never NULL after a successful new). */
const telex_presets_t *telex_presets_live_get(telex_presets_live_t *live);
/* Rebuilds the set from the store; on failure the current set stays.
 * Thread-safe (one rebuild at a time). Returns 0 or a negative errno. */
int telex_presets_live_reload(telex_presets_live_t *live, telex_store_t *store);
void telex_presets_live_free(telex_presets_live_t *live);

#endif
