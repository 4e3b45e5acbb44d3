/*
 * gateway/presets.h — named request templates from telex.yaml: a model, a
 * system prompt, a user-message template with {{variable}} placeholders
 * and default parameters.
 *
 * Placeholders are {{name}} (spaces inside the braces allowed), name made
 * of letters, digits and '_'. {{content}} is the text the client sends
 * (the "content" field, or each user message). Values are inserted as
 * they are: a value containing "{{x}}" is not expanded again.
 *
 * Two ways to use a preset, both ending as an ordinary chat request that
 * the relay then handles exactly like POST /v1/chat/completions:
 *
 *  1. POST /v1/presets/{name} with {"content": "...", "variables": {...},
 *     ...any other chat parameter}. The result is {"model": <preset's>,
 *     "messages": [system (if any), user (the template expanded)], the
 *     preset's parameters, then the client's other parameters (which win)}.
 *     "stream" defaults to true. "model" and "messages" may not be sent.
 *
 *  2. "model": "preset:NAME" on /v1/chat/completions: the model becomes the
 *     preset's, its system prompt (expanded) is put first, the template is
 *     applied to every user message whose content is a string (so a
 *     conversation stays consistent turn after turn), missing parameters
 *     take the preset's defaults, and "variables" is removed.
 *
 * Errors: unknown preset 404 (code preset_not_found); a missing variable
 * (code missing_variable, param "variables.NAME" or "content"), a variable
 * the preset does not use, a wrongly typed field, or an expansion larger
 * than limits.max_body_bytes (code preset_too_large): 400.
 *
 * Integration — in the relay:
 *
 *   POST /v1/presets/{name} (router.c): instead of req->entity,
 *       size_t n; telex_api_error_t e;
 *       char *body = telex_presets_expand_request(presets, req->path_normalized.base,
 *                        req->path_normalized.len, req->entity.base, req->entity.len,
 *                        cfg->limits.max_body_bytes, &n, &e);
 *       if (body == NULL) → telex_api_error_respond(req, &e)
 *       else → handle (body, n) as the chat request body; free(body) after parsing
 *   "preset:" models (chat_start.c), right after telex_chat_request_parse:
 *       if (strncmp(parsed.model, "preset:", 7) == 0) {
 *           char *body = telex_presets_apply_text(presets, parsed.body,
 *                            cfg->limits.max_body_bytes, &n, &e);
 *           ... on NULL respond e; else json_decref(parsed.body) and parse (body, n) again
 *       }
 *   GET /v1/presets → endpoints.c, from telex_presets_list
 *
 * presets = telex_services_presets(svc): this file takes the set only, never
 * the services, and knows nothing of HTTP. Everything here is read-only after
 * telex_presets_new and safe from any thread. A set is replaced (not
 * changed) when stored presets change (gateway/presets_store.h); a set a
 * caller got stays valid for at least 10 s after it was replaced.
 */
#ifndef TELEX_GATEWAY_PRESETS_H
#define TELEX_GATEWAY_PRESETS_H

#include <stddef.h>

#include <jansson.h>

#include "config/config.h"
#include "gateway/apierror.h"

typedef struct telex_presets telex_presets_t;

/* Compiles cfg's presets. Returns 0, or -EINVAL with a message. */
int telex_presets_new(telex_presets_t **out, const telex_config_t *cfg, char *err, size_t errlen);
/* Compiles a list of presets (strings must outlive the set). owned_list
 * and owned_json (either may be NULL) become the set's: freed with it,
 * also on failure — the stored presets (gateway/presets_store.h) live
 * there. */
int telex_presets_new_from(telex_presets_t **out, const telex_preset_t *list, size_t n, telex_preset_t *owned_list,
                           json_t *owned_json, char *err, size_t errlen);
void telex_presets_free(telex_presets_t *p);
size_t telex_presets_count(const telex_presets_t *p);

/* Way 1 on JSON: request → *out (a new chat body). Returns 0, or the status
 * with *e. */
int telex_presets_expand(const telex_presets_t *p, const char *name, size_t name_len, const json_t *request,
                         size_t max_body_bytes, json_t **out, telex_api_error_t *e);

/* Way 2 on JSON, in place. Returns 0 (*preset_name = the preset's name, or
 * NULL when body's model is not "preset:..." and nothing changed), or the
 * status with *e. */
int telex_presets_apply(const telex_presets_t *p, json_t *body, size_t max_body_bytes, const char **preset_name,
                        telex_api_error_t *e);

/* Way 1 on the wire: path is "/v1/presets/NAME" (or "/presets/NAME"), body
 * the raw request. Returns the chat body as JSON text (malloc'ed, *out_len
 * bytes), or NULL with *e. */
char *telex_presets_expand_request(const telex_presets_t *p, const char *path, size_t path_len, const char *body,
                                   size_t len, size_t max_body_bytes, size_t *out_len, telex_api_error_t *e);

/* Way 2 on a parsed body (left untouched): the expanded body as JSON text
 * (malloc'ed), or NULL with *e. */
char *telex_presets_apply_text(const telex_presets_t *p, const json_t *body, size_t max_body_bytes,
                               size_t *out_len, telex_api_error_t *e);

/* The NAME of "/v1/presets/NAME" or "/presets/NAME". Returns 0, or -1 when
 * path is not of that shape. */
int telex_presets_name_from_path(const char *path, size_t len, const char **name, size_t *name_len);

/* {"object":"list","data":[{"id","object":"preset","model","description",
 * "variables":[...],"defaults":{...}}]} — names, not prompts. Never NULL. */
json_t *telex_presets_list(const telex_presets_t *p);

#endif
