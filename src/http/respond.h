/*
 * http/respond.h — small helpers for complete (non-streamed) responses.
 *
 * Errors are OpenAI-shaped: {"error":{"message","type","param","code"}},
 * Content-Type application/json — except on the Anthropic front door
 * (/v1/messages…), where they have Anthropic's shape:
 * {"type":"error","error":{"type","message"}} with its error type for the
 * status. The message is user-facing text; it must never contain a secret.
 */
#ifndef TELEX_HTTP_RESPOND_H
#define TELEX_HTTP_RESPOND_H

#include <h2o.h>

/* param and code may be NULL (sent as null). */
void telex_respond_error(h2o_req_t *req, int status, const char *type, const char *code, const char *param,
                         const char *message_fmt, ...) __attribute__((format(printf, 6, 7)));

/* The JSON text of an error (malloc'd): OpenAI's shape, or Anthropic's when
 * `anthropic`; bytes of message that are not UTF-8 become '?'. NULL only
 * when type, code or param is not UTF-8 (jansson refuses it); out of memory
 * ends the process (cli/main.c gives jansson util/alloc.h's allocator). */
char *telex_error_body(int anthropic, int status, const char *type, const char *code, const char *param,
                       const char *message);

/* Is req on the Anthropic front door (/v1/messages, /v1/messages/…)? */
int telex_req_speaks_anthropic(h2o_req_t *req);

/* Sends `body` (copied) with the given status and Content-Type. */
void telex_respond(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len);

/* Adds a response header; name must be lower-case; value is copied. */
void telex_add_header(h2o_req_t *req, const char *name, const char *value);

/* The value of request header `name` (lower-case), or an empty iovec. */
h2o_iovec_t telex_req_header(h2o_req_t *req, const char *name);

/* The value of query parameter `name` (raw, not decoded: every value telex
 * issues is URL-safe), or an empty iovec. */
h2o_iovec_t telex_query_param(h2o_req_t *req, const char *name);

/* The HTTP reason phrase for a status. */
const char *telex_reason(int status);

#endif
