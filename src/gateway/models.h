/*
 * gateway/models.h — GET /v1/models: the models a client can ask for.
 *
 * First the models named in the configuration (file order, the catch-all
 * "*" left out), then what the catch-all reaches: each provider of a "*"
 * route that passes the client's name on (no `model:` of its own) and has
 * a model list (openai, anthropic: upstream/model_list.h) is asked for it.
 * Ids already listed are not repeated. OpenAI's shape:
 * {"object":"list","data":[{"id","object":"model","created","owned_by"}]}.
 *
 * Cache. A provider's list is kept for TELEX_MODELS_TTL_MS, shared by all
 * workers. The first request waits for the first answer (at most
 * TELEX_MODELS_FETCH_TIMEOUT_MS); later, a list past its age is still
 * answered at once while it is fetched again in the background. A failed
 * fetch is logged ("models fetch failed", with the reason, never a key)
 * and does not fail the request: it answers with what is known (the
 * configured models, and the last good list); the provider is asked again
 * after TELEX_MODELS_RETRY_MS at the earliest. Fetches run on the worker's
 * own loop and HTTP client, one per provider per worker at a time; a
 * worker never blocks.
 */
#ifndef TELEX_GATEWAY_MODELS_H
#define TELEX_GATEWAY_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "config/config.h"
#include "upstream/model_list.h"

#define TELEX_MODELS_TTL_MS (5 * 60 * 1000)
#define TELEX_MODELS_RETRY_MS (30 * 1000)
#define TELEX_MODELS_FETCH_TIMEOUT_MS 10000

struct gateway_worker;
typedef struct telex_models_worker telex_models_worker_t;

/* The worker's part; the process-wide cache of the gateway's
 * configuration is created by the first worker. NULL when the list cannot
 * be rendered (telex_models_render). */
telex_models_worker_t *telex_models_worker_new(struct gateway_worker *gw);

/* Answers GET/HEAD /v1/models. Returns TELEX_HANDLED (off_loop.h: answered and to be
 * logged by the caller) or TELEX_DEFERRED (answered later, when the
 * providers' lists are in, and logged here; started_ns is for that line). */
int telex_models_handle(telex_models_worker_t *mw, h2o_req_t *req, uint64_t started_ns);

/* At shutdown: answers every request still waiting with what is known. */
void telex_models_worker_shutdown(telex_models_worker_t *mw);

/* The answer's JSON text (malloc'ed, *len set): cfg's named models, then
 * the models of each list whose id was not listed before. NULL only when
 * jansson refuses a name (not UTF-8; names come from telex.yaml and from
 * parsed provider lists, so none is). */
char *telex_models_render(const telex_config_t *cfg, const telex_model_list_t *const *lists, size_t n_lists,
                          size_t *len);

#endif
