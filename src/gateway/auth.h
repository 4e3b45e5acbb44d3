/*
 * gateway/auth.h — the checks a request goes through before any upstream
 * call: who is calling (its API key, against the key set: keyset.h), may
 * it run now (the key's model allow-list, budget, rate and concurrency
 * limits: limits.h), and is it the administrator.
 *
 * These sit above the services (they take telex_services_t for the key
 * set, the limits, the admin token and the anonymous rule) and below the
 * handlers that call them. Key format and validation are keys.h; the grant
 * a request keeps is grant.h.
 *
 * Integration — the relay, for each POST /v1/chat/completions (and
 * /v1/presets/{name}):
 *
 *     telex_grant_t grant;
 *     telex_api_error_t e;
 *     h2o_iovec_t authz = telex_req_header(req, "authorization");
 *     // 1. before parsing the body (401 comes before 400):
 *     if (telex_auth_authenticate(svc, authz.base, authz.len, &grant, &e) != 0)
 *         return telex_api_error_respond(req, &e), 0;
 *     // 2. after parsing, preset expansion and the model lookup (404), before
 *     //    the concurrent-stream slot and any upstream call:
 *     if (telex_auth_admit(svc, &grant, model_name, preset_name_or_NULL,
 *                          telex_usage_estimate_request_tokens(body), &e) != 0)
 *         return telex_api_error_respond(req, &e), 0;   // 403, 402, 429 + Retry-After
 *     // keep `grant` in the chat: grant.owner is the stream owner for resume
 *     // authorization ("" = anonymous); pass &grant to telex_usage_record.
 *     // A request refused after admission without a ledger row (503 for the
 *     // stream limit or shutdown, 500 when no stream id could be drawn):
 *     // telex_auth_release(svc, &grant).
 *
 * telex_authorize does both steps in one call. Every denial is an
 * OpenAI-style error: 401 invalid_api_key / missing_api_key / key_revoked /
 * key_expired, 403 model_not_allowed, 402 budget_exceeded (type
 * insufficient_quota), 429 rate_limit_exceeded with Retry-After, 429
 * concurrency_limit_exceeded (the key's max_concurrent) with Retry-After: 1. No key,
 * token or hash ever appears in a message or a log line.
 */
#ifndef TELEX_GATEWAY_AUTH_H
#define TELEX_GATEWAY_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/apierror.h"
#include "gateway/grant.h"
#include "gateway/limits.h"
#include "gateway/services.h"

/* ---- the relay's checks ---------------------------------------------------------- */

/* Step 1: who is calling. authz is the Authorization header value (may be
 * NULL/0). Returns 0 and fills *grant, or 401 and fills *e. */
int telex_auth_authenticate(telex_services_t *svc, const char *authz, size_t len, telex_grant_t *grant,
                            telex_api_error_t *e);

/* Step 2: may this caller run this request now: the key's model
 * allow-list (403; checked against `model` and "preset:<preset>"), its
 * budget (402), its rate limits (429 + e->retry_after). est_tokens is
 * reserved against tokens per minute. Returns 0, or the status with *e. */
int telex_auth_admit(telex_services_t *svc, telex_grant_t *grant, const char *model, const char *preset,
                     uint64_t est_tokens, telex_api_error_t *e);

/* The key's limits, for a caller that enforces them elsewhere (cluster
 * mode). Returns 0, or -1 for an unknown or revoked key. */
int telex_auth_key_limits(telex_services_t *svc, int64_t key_id, telex_key_limits_t *out);

/* An admitted request that ends before it is recorded (a 503 for the
 * stream limit or shutdown after admission): gives back its reserved
 * tokens and its in-flight slot. Not needed after telex_usage_record, which
 * settles them (exactly one of the two runs, once, per admitted request). */
void telex_auth_release(telex_services_t *svc, telex_grant_t *grant);

/* Both steps. */
int telex_authorize(telex_services_t *svc, const char *authz, size_t len, const char *model, const char *preset,
                    uint64_t est_tokens, telex_grant_t *grant, telex_api_error_t *e);

/* Is authz "Bearer <the admin token>"? Constant time. False when no admin
 * token is configured. */
bool telex_auth_is_admin(const telex_services_t *svc, const char *authz, size_t len);

/* The token of "Bearer <token>" (scheme case-insensitive), or NULL. */
const char *telex_auth_bearer(const char *authz, size_t len, size_t *token_len);

#endif
