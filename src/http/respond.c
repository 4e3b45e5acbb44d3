/*
 * http/respond.c — complete responses and OpenAI-style errors. See respond.h.
 */
#include "http/respond.h"
#include "util/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

const char *telex_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

void telex_add_header(h2o_req_t *req, const char *name, const char *value)
{
    size_t vlen = strlen(value);
    char *v = h2o_mem_alloc_pool(&req->pool, vlen + 1);
    memcpy(v, value, vlen + 1);
    const h2o_token_t *token = h2o_lookup_token(name, strlen(name));
    if (token != NULL)
        h2o_add_header(&req->pool, &req->res.headers, token, NULL, v, vlen);
    else
        h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, v, vlen);
}

/* The value of query parameter `name` (raw, not decoded: every value telex
 * issues is URL-safe), or an empty iovec. */
h2o_iovec_t telex_query_param(h2o_req_t *req, const char *name)
{
    if (req->query_at == SIZE_MAX)
        return h2o_iovec_init(NULL, 0);
    const char *p = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t n = strlen(name);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > n && memcmp(p, name, n) == 0 && p[n] == '=')
            return h2o_iovec_init(p + n + 1, (size_t)(stop - p - (ptrdiff_t)n - 1));
        p = stop + 1;
    }
    return h2o_iovec_init(NULL, 0);
}

h2o_iovec_t telex_req_header(h2o_req_t *req, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0)
        return h2o_iovec_init(NULL, 0);
    return req->headers.entries[i].value;
}

void telex_respond(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = telex_reason(status);
    telex_add_header(req, "content-type", content_type);
    telex_add_header(req, "cache-control", "no-store");
    /* With a Content-Length the body needs no chunked encoding: h2o 2.2
     * chunks only 200 responses and ends any other status of unknown length
     * by closing the connection, which cost clients their keep-alive on every
     * error. */
    req->res.content_length = len;
    char *copy = h2o_mem_alloc_pool(&req->pool, len + 1);
    memcpy(copy, body, len);
    h2o_send_inline(req, copy, len);
}

/* Anthropic's error type for a status (its API's own table). */
static const char *anthropic_error_type(int status)
{
    switch (status) {
    case 400:
    case 405:
    case 410:
    case 422:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 402:
        return "billing_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
    case 431:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 503:
    case 529:
        return "overloaded_error";
    default:
        return status < 500 ? "invalid_request_error" : "api_error";
    }
}

int telex_req_speaks_anthropic(h2o_req_t *req)
{
    h2o_iovec_t p = req->path_normalized;
    return p.len >= 12 && memcmp(p.base, "/v1/messages", 12) == 0 && (p.len == 12 || p.base[12] == '/');
}

char *telex_error_body(int anthropic, int status, const char *type, const char *code, const char *param,
                       const char *message_in)
{
    char message[1024];
    snprintf(message, sizeof message, "%s", message_in);
    /* a message may quote what the client sent (a path, a name): bytes that
     * are not UTF-8 become '?' (JSON cannot carry them; "/%ff" was a 500) */
    unsigned char *p = (unsigned char *)message, *end = p + strlen(message);
    while (p < end) {
        size_t n = *p < 0x80 ? 1 : telex_utf8_seq_len(p, end);
        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
    json_t *err = anthropic ? json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type",
                                        anthropic_error_type(status), "message", message)
                            : json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", message, "type", type, "param",
                                        param ? json_string(param) : json_null(), "code",
                                        code ? json_string(code) : json_null());
    char *text = err ? json_dumps(err, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(err);
    return text;
}

void telex_respond_error(h2o_req_t *req, int status, const char *type, const char *code, const char *param,
                         const char *message_fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, message_fmt);
    vsnprintf(message, sizeof(message), message_fmt, ap);
    va_end(ap);
    char *text = telex_error_body(telex_req_speaks_anthropic(req), status, type, code, param, message);
    if (text == NULL) {
        static const char fallback[] = "{\"error\":{\"message\":\"internal error\",\"type\":\"server_error\"}}";
        telex_respond(req, 500, "application/json", fallback, sizeof(fallback) - 1);
        return;
    }
    telex_respond(req, status, "application/json", text, strlen(text));
    free(text);
}
