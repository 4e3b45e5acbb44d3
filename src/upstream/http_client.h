/*
 * upstream/http_client.h — outgoing HTTP requests on a worker's uv loop.
 *
 * One curl multi handle per worker, driven by the worker's libuv loop
 * (curl_multi_socket_action on uv_poll_t, curl timers on a uv_timer_t): no
 * extra threads, no blocking. A call reports, in order: on_response once the
 * final response headers are in (status, Content-Type, Retry-After), then
 * on_body for each piece of the body as it arrives, then on_complete exactly
 * once — unless the call was cancelled, after which no callback runs.
 *
 * Back-pressure: telex_http_call_pause stops reading from the upstream socket
 * (TCP flow control then slows the sender); telex_http_call_resume continues.
 * Callbacks may call pause and cancel on their own call.
 */
#ifndef TELEX_UPSTREAM_HTTP_CLIENT_H
#define TELEX_UPSTREAM_HTTP_CLIENT_H

#include <stddef.h>
#include <uv.h>

typedef struct telex_http_client telex_http_client_t;
typedef struct telex_http_call telex_http_call_t;

typedef struct telex_http_call_handlers {
    void (*on_response)(void *user, long status, const char *content_type, const char *retry_after);
    void (*on_body)(void *user, const char *data, size_t len);
    /* error is NULL on success, else a short human-readable reason;
     * timed_out tells a connect timeout apart from other failures. */
    void (*on_complete)(void *user, const char *error, int timed_out);
} telex_http_call_handlers_t;

typedef struct telex_http_request {
    const char *url;
    const char *const *headers; /* NULL-terminated "Name: value" strings */
    const char *body;           /* POST body (copied), or NULL for GET */
    size_t body_len;
    long connect_timeout_ms;
} telex_http_request_t;

telex_http_client_t *telex_http_client_new(uv_loop_t *loop);

/* Calls in flight above which a new call opens a fresh connection (closed
 * when it ends) rather than have curl search its cache for an idle one: the
 * search walks every connection to the host, so it costs O(calls in flight)
 * per call. Also bounds the idle connections kept to about this many. */
#define TELEX_HTTP_REUSE_LIMIT 256
void telex_http_client_set_reuse_limit(telex_http_client_t *client, size_t calls);
/* Cancels every call still running, then frees the client once its handles
 * are closed (the loop must run a little longer). */
void telex_http_client_free(telex_http_client_t *client);

/* Starts a call; returns NULL when out of memory or curl refuses the options. */
telex_http_call_t *telex_http_call_start(telex_http_client_t *client, const telex_http_request_t *request,
                                         const telex_http_call_handlers_t *handlers, void *user);
void telex_http_call_pause(telex_http_call_t *call);
void telex_http_call_resume(telex_http_call_t *call);
/* Stops the call: no callback runs after this. Outside the call's callbacks
 * the transfer is aborted (its connection closed) and the call freed at once.
 * From inside one of them, the call is freed as soon as curl returns: if the
 * response has completed by then (say `data: [DONE]` and the end of the
 * chunked body came in one read), the connection stays open for reuse. */
void telex_http_call_cancel(telex_http_call_t *call);

#endif
