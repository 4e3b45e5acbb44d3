/*
 * gateway/admin.h — the admin API, under /admin/: API keys (admin.c) and
 * stored presets (admin_presets.c).
 *
 * Authorised by the admin token only (auth.admin_token /
 * auth.admin_token_env / TELEX_ADMIN_TOKEN), sent as `Authorization:
 * Bearer <token>` and compared in constant time. Without a configured
 * token every /admin/ request gets 403 (the API is off); a wrong or
 * missing token gets 401. API keys never authorise admin calls.
 *
 *   GET    /admin/keys                 list (never the keys themselves)
 *   POST   /admin/keys                 create: {"name", "budget_usd"?, "rpm"?,
 *                                      "tpm"?, "models"? ["a","b*"], "expires"?
 *                                      ("30d", "2026-01-31", "2026-01-31T12:00:00Z")}
 *                                      → 201 {..., "key": "tlx_..."} — shown once
 *   GET    /admin/keys/{id|name}       one key, with spent_usd
 *   PATCH  /admin/keys/{id|name}       change name, budget_usd (null = none),
 *                                      rpm, tpm, models ([] = all), expires ("never")
 *   DELETE /admin/keys/{id|name}       revoke (the row stays for the ledger)
 *   POST   /admin/keys/{id|name}/revoke   the same
 *
 * and the presets kept in the store (gateway/presets_store.h has their
 * rules; admin_presets.c):
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
 * Changes take effect at once for this server. This file is the calls
 * themselves, on the services' store, with no HTTP: endpoints.c checks the
 * admin token on the event loop and runs telex_admin_execute on libuv's
 * thread pool (off_loop.h), never on the event loop.
 */
#ifndef TELEX_GATEWAY_ADMIN_H
#define TELEX_GATEWAY_ADMIN_H

#include <stddef.h>

#include <jansson.h>

#include "gateway/apierror.h"
#include "gateway/services.h"

/* The API without HTTP (endpoints.c's work on the thread pool; tests):
 * runs one call (method, path as "/admin/...", body) against the store.
 * Blocks on the database: not on an event loop. Returns the HTTP status; *out is the response body (or NULL when
 * the status is an error, then *e is set). *allow is set for 405. */
int telex_admin_execute(telex_services_t *svc, const char *method, const char *path, const char *body,
                        size_t body_len, json_t **out, telex_api_error_t *e, const char **allow);

/* A store error (store.h's -ENOENT, -EEXIST, -EINVAL, -EBUSY, other) as the
 * admin API's answer in *e: 404 not_found_code, 409 name_taken, 400, 503 +
 * Retry-After, 500. msg is the store's line. Returns the status. */
int telex_admin_store_error(telex_api_error_t *e, int rc, const char *msg, const char *not_found_code);

/* /admin/presets[/NAME] (admin_presets.c): as telex_admin_execute, which
 * hands such paths to it after the body size check. */
int telex_admin_presets_execute(telex_services_t *svc, const char *method, const char *path, const char *body,
                                size_t body_len, json_t **out, telex_api_error_t *e, const char **allow);

#endif
