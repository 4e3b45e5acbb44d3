/*
 * gateway/usage.h — tokens and cost of each request, the ledger row it
 * leaves, settling a key's reservation, and the /v1/usage query (its
 * parameters and its JSON; the HTTP handler is endpoints.c). A plain
 * library: it takes the limits and the rows it works on, never the
 * services.
 *
 * Tokens come from the provider's usage object (prompt_tokens,
 * completion_tokens, prompt_tokens_details.cached_tokens,
 * completion_tokens_details.reasoning_tokens). When a request ends without
 * one (cancelled, cut, a provider that sends none) telex estimates them —
 * UTF-8 bytes / 4 of the prompt's texts (+4 per message, +3) and of what
 * was streamed — and marks the row `estimated`.
 *
 * Cost = (prompt - cached) × input_price + cached × cached_input_price +
 * completion × output_price, per million tokens, with the prices of the
 * route that served the request (config.h, telex_route_t).
 *
 * Integration — in the relay (chat_start.c, chat_relay.c):
 *
 *   at the start (after telex_auth_admit):
 *       telex_usage_estimator_begin(&c->est, body);
 *   for each upstream chunk (json_t *chunk), before it is sent on:
 *       telex_usage_estimator_chunk(&c->est, chunk);
 *       if (telex_usage_annotate(chunk, route, &c->usage, &c->cost) == 1) {
 *           c->has_usage = 1;    // chunk.usage now holds "cost_usd"
 *           text = telex_usage_dump(chunk);   // send this text instead of
 *       }                                     // the upstream bytes
 *     (for "stream": false, call telex_usage_annotate on the response body
 *      object the same way and send its telex_usage_dump.)
 *   when the request ends (once, whatever the outcome; also for requests
 *   admitted but refused later, e.g. 502 before any chunk):
 *       telex_usage_record_t rec;
 *       telex_usage_record_init(&rec, &grant, model_name, provider_name_or_"");
 *       if (!c->has_usage) {
 *           telex_usage_estimator_result(&c->est, &c->usage);
 *           c->cost = telex_usage_cost(&c->usage, route);   // route may be NULL: 0
 *       }
 *       telex_usage_record_set(&rec, &c->usage, c->cost);
 *       rec.ttft_ms = ...; rec.duration_ms = ...; rec.status = ...;
 *       snprintf(rec.outcome, sizeof rec.outcome, "%s", outcome);
 *       telex_usage_record(svc, &grant, &rec);   // never blocks (services.h:
 *                                                // telex_usage_settle, then the ledger)
 *
 * Requests refused before admission (401/402/403/429/400/404) leave no
 * ledger row; metrics count them.
 *
 * GET /v1/usage?from=&to=&group_by=key|model|day[&key=ID]: the admin token
 * sees every key (key= narrows to one); an API key sees only itself; an
 * anonymous caller (when anonymous requests are allowed) sees anonymous
 * usage. from/to: 2026-01-31 (from: that day's start; to: its end, UTC),
 * 2026-01-31T12:00:00Z, or unix seconds. Defaults: all time up to now.
 */
#ifndef TELEX_GATEWAY_USAGE_H
#define TELEX_GATEWAY_USAGE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "config/config.h"
#include "gateway/apierror.h"
#include "gateway/grant.h"
#include "gateway/limits.h"
#include "store/store.h"

typedef struct telex_usage {
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
    uint64_t cached_tokens;    /* part of prompt_tokens */
    uint64_t reasoning_tokens; /* part of completion_tokens */
    bool estimated;
    uint64_t absurd;           /* the largest count the provider reported
                                  above TELEX_USAGE_TOKENS_MAX (clamped to
                                  it); 0 = none. Logged with the ledger row. */
} telex_usage_t;

/* From an OpenAI usage object. Returns 0, or -1 when usage is not an
 * object with a non-negative integer prompt_tokens or completion_tokens. */
int telex_usage_parse(const json_t *usage, telex_usage_t *out);

/* USD for u at route's prices; 0 when route is NULL. */
double telex_usage_cost(const telex_usage_t *u, const telex_route_t *route);

/* If obj (a chunk, or a non-streamed response) has a usage object: parses
 * it into *u, computes *cost with route's prices, sets usage.cost_usd and
 * returns 1. Returns 0 when obj has no usage (it cannot fail: prices are at
 * most 1e6 and token counts clamped, so the cost is finite). */
int telex_usage_annotate(json_t *obj, const telex_route_t *route, telex_usage_t *u, double *cost);

/* obj as compact JSON text that keeps cost_usd short (15 significant
 * digits); malloc'ed. NULL only for a string jansson did not check that is
 * not valid UTF-8 (a parsed or built tree has none). */
char *telex_usage_dump(const json_t *obj);

/* ---- estimates -------------------------------------------------------------- */

typedef struct telex_usage_estimator {
    uint64_t prompt_bytes;     /* text of the request's messages */
    uint64_t prompt_messages;
    uint64_t completion_bytes; /* content, refusal, tool-call arguments streamed */
    uint64_t reasoning_bytes;  /* reasoning / reasoning_content streamed */
} telex_usage_estimator_t;

void telex_usage_estimator_begin(telex_usage_estimator_t *est, const json_t *request_body);
void telex_usage_estimator_chunk(telex_usage_estimator_t *est, const json_t *chunk);
/* The estimate so far (estimated = true). */
void telex_usage_estimator_result(const telex_usage_estimator_t *est, telex_usage_t *out);
/* Estimated prompt tokens of a chat request body (for tokens-per-minute
 * reservation at admission). */
uint64_t telex_usage_estimate_request_tokens(const json_t *request_body);
/* Output tokens assumed for a request without max_tokens / max_completion_tokens. */
#define TELEX_USAGE_DEFAULT_MAX_OUTPUT 4096
/* The most a chat request can cost (USD) for budget reservation: its
 * prompt estimate at the highest input price among the model's routes,
 * plus max_completion_tokens (else max_tokens, else the default above)
 * times n at the highest output price. */
double telex_usage_estimate_cost(const json_t *request_body, const telex_model_t *model, uint64_t prompt_tokens);

/* ---- the ledger row ------------------------------------------------------------- */

/* Zeroes rec, sets ts (now), key_id from grant (NULL = anonymous), model
 * and provider (cut to fit), ttft_ms = -1. */
void telex_usage_record_init(telex_usage_record_t *rec, const telex_grant_t *grant, const char *model,
                             const char *provider);
void telex_usage_record_set(telex_usage_record_t *rec, const telex_usage_t *u, double cost_usd);

/* Settles the key's tokens-per-minute and budget reservation of grant
 * (NULL or anonymous: nothing) against what rec used: in limits, and in
 * Redis when the cluster decided the admission; gives back the request's
 * in-flight slot (its concurrency lease in Redis goes with the settle). */
void telex_usage_settle(telex_limits_t *limits, const telex_grant_t *grant, const telex_usage_record_t *rec);

/* ---- the /v1/usage query ---------------------------------------------------------- */

/* The query string (without '?') → *q (key_id = -1 unless key= is given).
 * Returns 0, or 400 with *e. */
int telex_usage_parse_query(const char *qs, size_t len, int64_t now_ms, telex_usage_query_t *q,
                            telex_api_error_t *e);
/* The response body for rows of query q; NULL only when a row's cost is
 * not a finite number (jansson refuses it; only a ledger edited by hand
 * holds one). */
json_t *telex_usage_to_json(const telex_usage_query_t *q, const telex_usage_row_t *rows, size_t n, int truncated);
/* Parses a time: "2026-01-31" (end_of_day picks 24:00 instead of 00:00),
 * "2026-01-31T12:00:00Z", or unix seconds. Returns 0 or -1. */
int telex_usage_parse_time(const char *s, size_t len, bool end_of_day, int64_t *ms_out);

#endif
