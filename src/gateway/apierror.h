/*
 * gateway/apierror.h — an OpenAI-style error decided by one module (auth,
 * limits, presets, admin, usage) and answered by whoever holds the request.
 *
 * A module fills a telex_api_error_t; the relay (or a handler) sends it
 * with telex_api_error_respond, which adds Retry-After when retry_after is
 * set. Messages are user-facing and never contain a secret.
 */
#ifndef TELEX_GATEWAY_APIERROR_H
#define TELEX_GATEWAY_APIERROR_H

#include <h2o.h>

typedef struct telex_api_error {
    int status;            /* HTTP status; 0 = no error */
    const char *type;      /* "invalid_request_error", "rate_limit_error", ... (static) */
    const char *code;      /* "invalid_api_key", ... or NULL (static) */
    const char *param;     /* the offending parameter or NULL (static) */
    unsigned retry_after;  /* seconds for a Retry-After header; 0 = none */
    char message[400];
} telex_api_error_t;

/* Fills *e; returns status (so `return telex_api_error_set(...)` reads well). */
int telex_api_error_set(telex_api_error_t *e, int status, const char *type, const char *code, const char *param,
                        const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Answers req with e (status, Retry-After, JSON body). */
void telex_api_error_respond(h2o_req_t *req, const telex_api_error_t *e);

/* Client-supplied text made safe to put in a message: at most cap-1 bytes
 * (cut at a character boundary, "..." when cut), invalid UTF-8 and control
 * characters replaced by '?'. Returns buf. */
const char *telex_api_safe_text(char *buf, size_t cap, const char *s, size_t len);

/* The JSON body {"error":{...}} of e, malloc'ed text; NULL when jansson
 * refuses e's message, param or code: text that is not valid UTF-8 (a
 * client's bytes put in unchecked, or a message cut inside a character at
 * its size). telex_api_error_respond does not have that limit. */
char *telex_api_error_json(const telex_api_error_t *e);

#endif
