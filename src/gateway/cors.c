/*
 * gateway/cors.c — see cors.h.
 */
#include "gateway/cors.h"

#include <arpa/inet.h>
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

/* ---- an anonymous gateway's cross-site checks ---------------------------- */

static bool host_allowed(const telex_config_t *cfg, h2o_iovec_t host)
{
    if (host.len == 0)
        return true; /* no Host: not a browser (HTTP/1.0) */
    char name[256];
    if (host.base[0] == '[') {
        const char *end = memchr(host.base, ']', host.len);
        size_t n = end ? (size_t)(end - host.base - 1) : 0;
        if (end == NULL || n == 0 || n >= sizeof name)
            return false;
        memcpy(name, host.base + 1, n);
        name[n] = '\0';
        struct in6_addr a6;
        return inet_pton(AF_INET6, name, &a6) == 1;
    }
    const char *colon = memchr(host.base, ':', host.len);
    size_t n = colon ? (size_t)(colon - host.base) : host.len;
    if (n == 0 || n >= sizeof name)
        return false;
    memcpy(name, host.base, n);
    name[n] = '\0';
    if (n > 1 && name[n - 1] == '.')
        name[--n] = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, name, &a4) == 1 || strcasecmp(name, "localhost") == 0)
        return true;
    for (size_t i = 0; i < cfg->cors.n_hosts; i++)
        if (strcasecmp(cfg->cors.hosts[i], name) == 0)
            return true;
    return false;
}

static bool is_own_origin(h2o_iovec_t origin, h2o_iovec_t host)
{
    for (int https = 0; https <= 1; https++) {
        size_t s = https ? 8 : 7; /* "https://" / "http://" */
        if (host.len > 0 && origin.len == s + host.len &&
            strncasecmp(origin.base, https ? "https://" : "http://", s) == 0 &&
            strncasecmp(origin.base + s, host.base, host.len) == 0)
            return true;
    }
    return false;
}

static bool is_json(h2o_iovec_t ct)
{
    static const char json[] = "application/json";
    size_t n = sizeof json - 1;
    return ct.len >= n && strncasecmp(ct.base, json, n) == 0 &&
           (ct.len == n || ct.base[n] == ';' || ct.base[n] == ' ' || ct.base[n] == '\t');
}

int telex_cors_check_anonymous(const telex_config_t *cfg, h2o_iovec_t host, h2o_iovec_t origin,
                               h2o_iovec_t content_type, bool has_body, const char **code, char *msg, size_t cap)
{
    if (!host_allowed(cfg, host)) {
        *code = "host_not_allowed";
        snprintf(msg, cap,
                 "This gateway runs without keys and answers only to IP addresses, localhost and cors.hosts; "
                 "Host %.*s is none of them (DNS rebinding protection).",
                 (int)(host.len > 200 ? 200 : host.len), host.base);
        return 403;
    }
    if (origin.len > 0 && !telex_cors_origin_allowed(cfg, origin.base, origin.len) && !is_own_origin(origin, host)) {
        *code = "cross_origin_not_allowed";
        snprintf(msg, cap,
                 "This gateway runs without keys, so other web pages may not use it: origin %.*s is not in "
                 "cors.origins.",
                 (int)(origin.len > 200 ? 200 : origin.len), origin.base);
        return 403;
    }
    if (origin.len > 0 && has_body && !is_json(content_type)) {
        *code = "unsupported_media_type";
        snprintf(msg, cap, "Send the request body as Content-Type: application/json.");
        return 415;
    }
    return 0;
}
