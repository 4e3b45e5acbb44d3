/*
 * gateway/cors.h — cross-origin access for browser apps on other origins.
 *
 * cors.origins in telex.yaml lists the origins ("https://app.example.com",
 * or "*") whose pages may call telex from the browser; the default is none
 * (the gateway's own chat page is same-origin and needs no CORS). For an
 * allowed Origin, responses get Access-Control-Allow-Origin (the origin
 * itself; "*" only when configured so), Vary: Origin, and
 * Access-Control-Expose-Headers for the headers clients read (Retry-After,
 * X-Telex-Stream-Id, X-Telex-Resume-Url, X-Request-Id). A preflight
 * (OPTIONS with Access-Control-Request-Method) from an allowed origin is
 * answered 204 with the allowed methods and headers (Authorization,
 * Content-Type, Last-Event-ID, ...) and Access-Control-Max-Age; from any
 * other origin, 403. No credentials (cookies) are ever allowed: telex uses
 * Authorization headers.
 *
 * Integration — router.c, first thing for every request:
 *     if (telex_cors_handle(cfg, req) == 0)
 *         return 0;   // a preflight, answered
 *     ... route as usual (the CORS headers are already on req->res)
 */
#ifndef TELEX_GATEWAY_CORS_H
#define TELEX_GATEWAY_CORS_H

#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>

#include "config/config.h"

/* Adds the CORS response headers an allowed Origin needs, and answers a
 * preflight. Returns 0 when it answered (a preflight), -1 to go on. */
int telex_cors_handle(const telex_config_t *cfg, h2o_req_t *req);

/* Is this Origin header value allowed? (exact, ASCII case-insensitive, or "*") */
bool telex_cors_origin_allowed(const telex_config_t *cfg, const char *origin, size_t len);

/* The cross-site checks of a gateway that runs without keys (anonymous
 * access; a keyed gateway needs none: a page cannot know a key), against
 * pages that would use it from the user's browser:
 *   - Host must be an IP literal, localhost, or one of cors.hosts (DNS
 *     rebinding: a page's own domain pointed at 127.0.0.1) → 403 host_not_allowed;
 *   - an Origin must be in cors.origins or be the gateway's own origin
 *     (http or https + the Host) → 403 cross_origin_not_allowed;
 *   - a browser's body (an Origin is present) must be Content-Type
 *     application/json (no "simple" text/plain or form POST) → 415.
 * Empty iovecs for absent headers. Returns 0, or the status with *code and a
 * message in msg. */
int telex_cors_check_anonymous(const telex_config_t *cfg, h2o_iovec_t host, h2o_iovec_t origin,
                               h2o_iovec_t content_type, bool has_body, const char **code, char *msg, size_t cap);

#endif
