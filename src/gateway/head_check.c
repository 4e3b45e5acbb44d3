/*
 * gateway/head_check.c — the gateway's verdict on a request head before h2o
 * reads its body (http/guard.h calls it): authentication when keys exist,
 * the cross-site checks when there are none (cors.h), the body size limit,
 * the bodies-in-flight budget. Nothing here reads the
 * body; the handlers repeat every check on the complete request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/auth.h"
#include "gateway/cors.h"
#include "gateway/gateway.h"
#include "http/respond.h"

static int path_has_prefix(h2o_iovec_t path, const char *prefix)
{
    size_t n = strlen(prefix);
    return path.len >= n && memcmp(path.base, prefix, n) == 0 &&
           (path.len == n || path.base[n] == '/' || path.base[n] == '?');
}

static int verdict(telex_head_verdict_t *v, const telex_head_t *head, int status, const char *type, const char *code,
                   unsigned retry_after, const char *message)
{
    char *body = telex_error_body(path_has_prefix(head->path, "/v1/messages"), status, type, code, NULL, message);
    snprintf(v->body, sizeof v->body, "%s", body != NULL ? body : "{}");
    free(body);
    v->status = status;
    v->retry_after = retry_after;
    return status;
}

int telex_gateway_on_head(telex_worker_t *worker, const telex_head_t *head, telex_head_verdict_t *v)
{
    gateway_worker_t *gw = worker->app_worker;
    const telex_config_t *cfg = gw->gateway->config;
    telex_services_t *svc = gw->gateway->services;
    char msg[400];

    if (telex_services_anonymous_allowed(svc)) {
        const char *code;
        int status = telex_cors_check_anonymous(cfg, telex_head_header(head, "host"), telex_head_header(head, "origin"),
                                                telex_head_header(head, "content-type"), true, &code, msg, sizeof msg);
        if (status != 0)
            return verdict(v, head, status, "invalid_request_error", code, 0, msg);
    } else {
        /* the body of an unknown caller is never read */
        h2o_iovec_t authz = telex_head_header(head, "authorization");
        h2o_iovec_t xkey = telex_head_header(head, "x-api-key");
        char bearer[256];
        if (authz.base == NULL && xkey.base != NULL && xkey.len + 8 < sizeof bearer) {
            int n = snprintf(bearer, sizeof bearer, "Bearer %.*s", (int)xkey.len, xkey.base);
            authz = h2o_iovec_init(bearer, (size_t)n);
        }
        telex_grant_t grant;
        telex_api_error_t e;
        if (!telex_auth_is_admin(svc, authz.base, authz.len) &&
            telex_auth_authenticate(svc, authz.base, authz.len, &grant, &e) != 0)
            return verdict(v, head, e.status, e.type, e.code, 0, e.message);
    }
    uint64_t max = cfg->limits.max_body_bytes;
    if (head->content_length != SIZE_MAX && head->content_length > max) {
        snprintf(msg, sizeof msg, "The request body is %zu bytes; the limit is %llu.", head->content_length,
                 (unsigned long long)max);
        return verdict(v, head, 413, "invalid_request_error", "request_too_large", 0, msg);
    }
    if (head->body_received > max) {
        snprintf(msg, sizeof msg, "The request body is larger than the limit of %llu bytes.", (unsigned long long)max);
        return verdict(v, head, 413, "invalid_request_error", "request_too_large", 0, msg);
    }
    if (head->over_budget)
        return verdict(v, head, 503, "server_error", "overloaded", 1,
                       "The gateway is receiving too many request bodies at once; retry shortly.");
    return 0;
}
