/*
 * upstream/sse_upstream.h — the transport the HTTP provider adapters share
 * (openai.c for kinds openai and azure, anthropic.c): one HTTP call on the
 * worker's HTTP client (http_client.h); a 2xx event stream whose every line must be an
 * event-stream field (data, event, id, retry), a comment or blank — a WHATWG
 * parser would skip anything else, but from a provider it means a broken
 * stream — parsed by libtelex within env->max_event_bytes; error bodies and
 * plain answers collected up to env->max_response_bytes; and provider.h's
 * contract (what is reported, once, in which order, and when state is freed).
 *
 * An adapter gives hooks — what one SSE event means (on_event), what a clean
 * end of the stream means (on_eof), and optionally how a plain answer and an
 * error body become OpenAI's shapes — and reports through
 * telex_sse_upstream_chunk / _done / _fail / _respond. Reports after the
 * first final one (done, failure, response) or after a cancel are ignored,
 * so hooks need not check. A sink callback may cancel the upstream: the
 * state is freed only once the adapter's frames have unwound.
 *
 * Use: telex_sse_upstream_new, then either telex_sse_upstream_send (the
 * request) or telex_sse_upstream_fail_soon (a request that cannot be sent:
 * the failure is reported from the loop, never from inside start()), and
 * return telex_sse_upstream_base(u) from the adapter's start.
 */
#ifndef TELEX_UPSTREAM_SSE_UPSTREAM_H
#define TELEX_UPSTREAM_SSE_UPSTREAM_H

#include <stddef.h>

#include <telex/sse.h>

#include "upstream/provider.h"

typedef struct telex_sse_upstream telex_sse_upstream_t;

typedef struct telex_sse_upstream_hooks {
    /* One event of a 2xx event stream. Required. */
    void (*on_event)(telex_sse_upstream_t *u, const telex_sse_event_t *event);
    /* The stream ended cleanly and nothing final was reported yet: report
     * done or a failure. NULL: the answer was cut (TELEX_UPSTREAM_CUT). */
    void (*on_eof)(telex_sse_upstream_t *u);
    /* A complete 2xx answer to a plain (non-stream) request: report it with
     * telex_sse_upstream_respond, or a failure. NULL: relayed as it is. */
    void (*on_plain)(telex_sse_upstream_t *u, int status, const char *body, size_t len);
    /* The body of an HTTP error (status >= 400) in OpenAI's error shape:
     * a malloc'd string (*out_len set), or NULL to relay the provider's body
     * as it is. NULL hook: always as it is. */
    char *(*error_body)(int status, const char *body, size_t len, size_t *out_len);
    /* Frees the adapter's state (the `adapter` pointer given to new). May be NULL. */
    void (*destroy)(void *adapter);
} telex_sse_upstream_hooks_t;

/* A new call, not yet started. ops are the adapter's (their pause, resume
 * and cancel must be the functions below); hooks and sink are copied or
 * borrowed for the call's life (hooks: static storage). Never NULL (out of
 * memory ends the process, util/alloc.h). */
telex_sse_upstream_t *telex_sse_upstream_new(const telex_provider_ops_t *ops, const telex_sse_upstream_hooks_t *hooks,
                                             void *adapter, const telex_upstream_env_t *env,
                                             const telex_upstream_sink_t *sink, void *user, int stream);

/* Sends the request (headers: NULL-terminated "Name: value" strings; body:
 * copied). 0, or -1 when the request cannot be sent (http_client.h): nothing was
 * reported, and the caller frees the call with telex_sse_upstream_discard. */
int telex_sse_upstream_send(telex_sse_upstream_t *u, const char *url, const char *const *headers, const char *body,
                            size_t body_len, double connect_timeout_seconds);

/* Sends a JSON request the way every HTTP provider kind does: headers
 * Content-Type and Accept (event stream or JSON), then the kind's own
 * (NULL-terminated; may hold its key), then the provider's configured extra
 * headers; body serialised with json_dumps(dump_flags). Every buffer holding
 * a configured header is wiped afterwards (the caller wipes its own). Returns
 * the upstream, or NULL after discarding it when the body cannot be
 * serialised (a string that is not UTF-8) or the request cannot be sent. */
telex_upstream_t *telex_sse_upstream_post_json(telex_sse_upstream_t *u, const telex_provider_t *provider,
                                               const char *url, const char *const *own_headers, json_t *body,
                                               size_t dump_flags);

/* Instead of sending: reports this failure on the next loop iteration
 * (body may be NULL; both copied). */
void telex_sse_upstream_fail_soon(telex_sse_upstream_t *u, telex_upstream_failure_kind_t kind, int status,
                                  const char *message, const char *body, size_t body_len);

/* Frees a call that was neither sent nor failed soon (destroys the adapter). */
void telex_sse_upstream_discard(telex_sse_upstream_t *u);

telex_upstream_t *telex_sse_upstream_base(telex_sse_upstream_t *u);
void *telex_sse_upstream_adapter(const telex_sse_upstream_t *u);
/* Non-zero once something final was reported or the call was cancelled. */
int telex_sse_upstream_stopped(const telex_sse_upstream_t *u);

/* Reports (see provider.h). chunk and facts (may be NULL) are borrowed. */
void telex_sse_upstream_chunk(telex_sse_upstream_t *u, const char *data, size_t len, json_t *chunk,
                              const telex_json_facts_t *facts);
void telex_sse_upstream_done(telex_sse_upstream_t *u);
void telex_sse_upstream_fail(telex_sse_upstream_t *u, telex_upstream_failure_kind_t kind, int status,
                             const char *message, const char *body, size_t body_len);
void telex_sse_upstream_respond(telex_sse_upstream_t *u, int status, const char *body, size_t len);

/* The adapter's telex_provider_ops_t pause, resume and cancel. */
void telex_sse_upstream_pause(telex_upstream_t *upstream);
void telex_sse_upstream_resume(telex_upstream_t *upstream);
void telex_sse_upstream_cancel(telex_upstream_t *upstream);

#endif
