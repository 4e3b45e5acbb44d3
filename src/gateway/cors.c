/*
 * gateway/cors.c — see cors.h.
 */
#include "gateway/cors.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/respond.h"

#define ALLOW_METHODS "GET, POST, PATCH, DELETE, OPTIONS"
#define ALLOW_HEADERS                                                                                                  \
    "Authorization, Content-Type, Last-Event-ID, X-Request-Id, OpenAI-Beta, X-Telex-Event-Ids, X-Api-Key, "              \
    "Anthropic-Version, Anthropic-Beta, Anthropic-Dangerous-Direct-Browser-Access"
#define EXPOSE_HEADERS "Retry-After, X-Telex-Stream-Id, X-Telex-Resume-Url, X-Request-Id, X-Telex-Ignored"

bool telex_cors_origin_allowed(const telex_config_t *cfg, const char *origin, size_t len)
{
    if (origin == NULL || len == 0 || len > 512)
        return false;
    for (size_t i = 0; i < cfg->cors.n_origins; i++) {
        const char *o = cfg->cors.origins[i];
        if (strcmp(o, "*") == 0)
            return true;
        if (strlen(o) == len && strncasecmp(o, origin, len) == 0)
            return true;
    }
    return false;
}

static bool wildcard(const telex_config_t *cfg)
{
    for (size_t i = 0; i < cfg->cors.n_origins; i++)
        if (strcmp(cfg->cors.origins[i], "*") == 0)
            return true;
    return false;
}

int telex_cors_handle(const telex_config_t *cfg, h2o_req_t *req)
{
    h2o_iovec_t origin = telex_req_header(req, "origin");
    bool is_options = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS"));
    h2o_iovec_t acrm = telex_req_header(req, "access-control-request-method");
    bool preflight = is_options && origin.len > 0 && acrm.len > 0;
    if (origin.len == 0 || cfg->cors.n_origins == 0) {
        if (preflight) {
            telex_respond_error(req, 403, "invalid_request_error", "cors_origin_not_allowed", NULL,
                                "Cross-origin requests are not allowed here (cors.origins).");
            return 0;
        }
        return -1;
    }
    if (!telex_cors_origin_allowed(cfg, origin.base, origin.len)) {
        if (preflight) {
            telex_respond_error(req, 403, "invalid_request_error", "cors_origin_not_allowed", NULL,
                                "This origin may not call the gateway (cors.origins).");
            return 0;
        }
        return -1; /* no CORS headers: the browser keeps the response from the page */
    }
    char value[520];
    if (wildcard(cfg)) {
        telex_add_header(req, "access-control-allow-origin", "*");
    } else {
        snprintf(value, sizeof value, "%.*s", (int)origin.len, origin.base);
        telex_add_header(req, "access-control-allow-origin", value);
        telex_add_header(req, "vary", "Origin");
    }
    telex_add_header(req, "access-control-expose-headers", EXPOSE_HEADERS);
    if (!preflight)
        return -1;
    telex_add_header(req, "access-control-allow-methods", ALLOW_METHODS);
    telex_add_header(req, "access-control-allow-headers", ALLOW_HEADERS);
    snprintf(value, sizeof value, "%.0f", cfg->cors.max_age_seconds);
    telex_add_header(req, "access-control-max-age", value);
    req->res.status = 204;
    req->res.reason = "No Content";
    h2o_send_inline(req, "", 0);
    return 0;
}
