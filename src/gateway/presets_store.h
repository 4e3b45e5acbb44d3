/*
 * gateway/presets_store.h — presets kept in the store (both backends) next
 * to those of telex.yaml: checking one, the live set the gateway serves,
 * and the admin API /admin/presets.
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
 *   GET    /admin/presets            every preset: {"object":"list","data":[...]}
 *                                    each with "source": "config" | "store"
 *                                    (and "shadowed": true for a stored one
 *                                    the file overrides)
 *   POST   /admin/presets            body = a preset → 201 the stored preset
 *                                    (409 name_taken if one is stored, or
 *                                    the file has one of that name)
 *   GET    /admin/presets/NAME       one preset (404 preset_not_found)
 *   PATCH  /admin/presets/NAME       the fields to change (null removes
 *                                    description, system, template, parameters
 *                                    or variables); "name" may not change
 *   DELETE /admin/presets/NAME       → 200 {"name","deleted":true}
 *
 * Store work runs on the thread pool (admin.c), never on an event loop.
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

/* /admin/presets[/NAME]: as telex_admin_execute (admin.h). */
struct telex_services;
int telex_admin_presets_execute(struct telex_services *svc, const char *method, const char *path, const char *body,
                                size_t body_len, json_t **out, telex_api_error_t *e, const char **allow);

#endif
