/*
 * gateway/endpoints.h — the HTTP endpoints of the services: the admin API
 * (/admin/...), GET /v1/usage, GET /metrics and GET /v1/presets.
 *
 * Layering: router.c → endpoints → the services (services.h) and the
 * plain libraries under them (admin.h, usage.h, metrics.h, presets.h,
 * auth.h). Those libraries never call back up here; each endpoint checks
 * who is calling, then reads or changes the services.
 *
 * Contract: each takes the services and a request whose path is its own
 * (the router decides), and answers any method (405 with Allow for a
 * wrong one). Returns TELEX_HANDLED (answered now: the caller writes the
 * access-log line) or TELEX_DEFERRED (store work on the thread pool,
 * off_loop.h: answered and logged later; the caller returns 0 to h2o).
 */
#ifndef TELEX_GATEWAY_ENDPOINTS_H
#define TELEX_GATEWAY_ENDPOINTS_H

#include <h2o.h>

#include "gateway/off_loop.h"
#include "gateway/services.h"

/* Any request under /admin: 403 while no admin token is configured, 401
 * without it; the call itself is telex_admin_execute (admin.h). */
int telex_endpoint_admin(telex_services_t *svc, h2o_req_t *req);
/* GET/HEAD /v1/usage (usage.h has the query): the admin token reads every
 * key's usage, an API key its own, an anonymous caller anonymous usage. */
int telex_endpoint_usage(telex_services_t *svc, h2o_req_t *req);
/* GET/HEAD /metrics: 401 without the admin token or metrics.token while
 * keys exist or with metrics.require_admin. */
int telex_endpoint_metrics(telex_services_t *svc, h2o_req_t *req);
/* GET/HEAD /v1/presets: the names (not the prompts), for callers with a
 * key or the admin token while keys exist. Always TELEX_HANDLED. */
int telex_endpoint_presets(telex_services_t *svc, h2o_req_t *req);

#endif
