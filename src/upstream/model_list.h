/*
 * upstream/model_list.h — asks a provider which models it serves.
 *
 * The catch-all model "*" sends any name the client asks for to its
 * providers, so GET /v1/models can only list what it reaches by asking them
 * (gateway/models.c caches and merges the answers). Kinds with such an
 * endpoint:
 *
 *   openai     GET {base_url}/models      Authorization: Bearer KEY
 *              {"object":"list","data":[{"id","object","created","owned_by"}]}
 *   anthropic  GET {base_url}/v1/models?limit=1000
 *              x-api-key: KEY, anthropic-version: V
 *              {"data":[{"type":"model","id","display_name","created_at"}],"has_more"}
 *
 * azure has none per resource that maps to what a client may send (the
 * deployments are the names, and listing them needs the management API),
 * demo needs none: both report "not listable". The provider's extra
 * headers are sent as on every request. Either way the result is reduced
 * to OpenAI's fields: id, created (Unix seconds; Anthropic's created_at is
 * converted; 0 when absent) and owned_by (the provider's own, else the
 * telex provider's name).
 *
 * A fetch runs on a worker's loop through its HTTP client and reports once,
 * always from the loop (never from inside telex_model_list_fetch), within
 * timeout_ms at the latest. Nothing secret is ever part of an error text.
 */
#ifndef TELEX_UPSTREAM_MODEL_LIST_H
#define TELEX_UPSTREAM_MODEL_LIST_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "config/config.h"
#include "upstream/http_client.h"

/* Answers larger than this are refused (OpenRouter's full list is ~2 MB). */
#define TELEX_MODEL_LIST_MAX_BYTES (16u << 20)
/* Entries kept per provider at most; the rest are ignored. */
#define TELEX_MODEL_LIST_MAX_MODELS 5000

typedef struct telex_model_info {
    char *id;
    int64_t created;
    char *owned_by;
} telex_model_info_t;

typedef struct telex_model_list {
    telex_model_info_t *items;
    size_t n;
} telex_model_list_t;

/* Non-zero when the provider's kind has a model list telex can ask for. */
int telex_model_list_supported(const telex_provider_t *provider);

/* Reads a provider's answer (kind decides the shape). Entries without a
 * string id, or with an id repeated, are skipped. owner is used when an
 * entry names no owner. Returns 0 and fills *out (free it with
 * telex_model_list_free), or -1 with a short reason in err. */
int telex_model_list_parse(telex_provider_kind_t kind, const char *body, size_t len, const char *owner,
                           telex_model_list_t *out, char *err, size_t errlen);

void telex_model_list_free(telex_model_list_t *list);

/* list: the models (ownership passes to the callee), or NULL with error
 * set (a short reason such as "the provider answered HTTP 401"). */
typedef void (*telex_model_list_cb)(void *user, telex_model_list_t *list, const char *error);

typedef struct telex_model_list_fetch telex_model_list_fetch_t;

/* Starts GET of the provider's list. Returns NULL when the kind is not
 * listable or has no base URL (then cb never runs); otherwise cb runs
 * exactly once, and the fetch frees itself after it. */
telex_model_list_fetch_t *telex_model_list_fetch(uv_loop_t *loop, telex_http_client_t *http,
                                                 const telex_provider_t *provider, long timeout_ms,
                                                 telex_model_list_cb cb, void *user);

#endif
