/*
 * gateway/chat_request.h — the client's chat request: parse, validate,
 * and derive the body sent upstream.
 *
 * Validation catches what a user can get wrong with an OpenAI-style error
 * message naming the parameter; everything else is passed through untouched
 * so new OpenAI parameters keep working.
 */
#ifndef TELEX_GATEWAY_CHAT_REQUEST_H
#define TELEX_GATEWAY_CHAT_REQUEST_H

#include <stddef.h>

#include <jansson.h>

typedef struct telex_chat_request {
    json_t *body;      /* owned by the caller on success */
    const char *model; /* points into body */
    int stream;
    int include_usage; /* stream_options.include_usage */
} telex_chat_request_t;

/* Returns 0, or an HTTP status (400) with a message and the offending
 * parameter's name (or NULL) filled in. */
int telex_chat_request_parse(const char *bytes, size_t len, telex_chat_request_t *out, char *msg, size_t msglen,
                             const char **param);

/* A copy of body for the provider: "model" set to upstream_model; when
 * streaming, "stream": true and "stream_options.include_usage": true (telex
 * always counts usage; the client sees it only if it asked). body is an
 * object: never NULL. body is left unchanged, but the copy shares body's
 * other values (messages, tools, ...) rather than duplicating them: neither
 * the copy's reader nor body's holder may modify a value inside it. */
json_t *telex_chat_upstream_body(json_t *body, const char *upstream_model, int stream);

#endif
