/*
 * gateway/messages.c — the Anthropic Messages API's own endpoints besides
 * POST /v1/messages (which is telex_chat_handle_front):
 *
 *   POST /v1/messages/count_tokens   the request's input tokens, as telex
 *                                    estimates them (the same estimate the
 *                                    gateway uses for budgets and rate
 *                                    limits before a provider reports
 *                                    usage): {"input_tokens": N}, marked
 *                                    `X-Telex-Estimate: true`. No provider
 *                                    is asked.
 */
#include <stdio.h>
#include <string.h>

#include "gateway/auth.h"
#include "gateway/gateway.h"
#include "gateway/messages_request.h"
#include "gateway/usage.h"
#include "http/respond.h"
#include "util/json_load.h"

h2o_iovec_t telex_anthropic_authorization(h2o_req_t *req, char *buf, size_t cap)
{
    h2o_iovec_t authz = telex_req_header(req, "authorization");
    h2o_iovec_t key = telex_req_header(req, "x-api-key");
    if (authz.base == NULL && key.base != NULL && key.len + 8 < cap) {
        int n = snprintf(buf, cap, "Bearer %.*s", (int)key.len, key.base);
        authz = h2o_iovec_init(buf, (size_t)n);
    }
    return authz;
}

int telex_messages_count_tokens(gateway_worker_t *gw, h2o_req_t *req)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        telex_add_header(req, "allow", "POST");
        telex_respond_error(req, 405, "invalid_request_error", NULL, NULL, "Use POST here.");
        return 0;
    }
    char bearer[256];
    h2o_iovec_t authz = telex_anthropic_authorization(req, bearer, sizeof bearer);
    telex_grant_t grant;
    telex_api_error_t denial;
    if (telex_auth_authenticate(gw->gateway->services, authz.base, authz.len, &grant, &denial) != 0) {
        telex_api_error_respond(req, &denial);
        return 0;
    }
    if (req->entity.len > gw->gateway->config->limits.max_body_bytes) {
        telex_respond_error(req, 413, "invalid_request_error", NULL, NULL, "The request body is too large.");
        return 0;
    }
    json_error_t jerr;
    json_t *body = telex_json_loadb(req->entity.base, req->entity.len, 0, &jerr);
    if (json_is_object(body) && json_object_get(body, "max_tokens") == NULL)
        json_object_set_new(body, "max_tokens", json_integer(1)); /* count_tokens takes none */
    telex_messages_request_t mr;
    char msg[512];
    int status = body != NULL ? telex_messages_request_parse(body, &mr, msg, sizeof msg) : 400;
    json_decref(body);
    if (status != 0) {
        telex_respond_error(req, 400, "invalid_request_error", NULL, NULL, "%s",
                            body == NULL ? "The body is not valid JSON." : msg);
        return 0;
    }
    char out[64];
    int n = snprintf(out, sizeof out, "{\"input_tokens\":%llu}",
                     (unsigned long long)telex_usage_estimate_request_tokens(mr.chat));
    telex_messages_request_free(&mr);
    telex_add_header(req, "x-telex-estimate", "true");
    telex_respond(req, 200, "application/json", out, (size_t)n);
    return 0;
}
