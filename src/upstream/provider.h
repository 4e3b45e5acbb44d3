/*
 * upstream/provider.h — one streamed (or plain) chat completion from one
 * provider, normalized to OpenAI `chat.completion.chunk` events.
 *
 * telex_upstream_start() sends the request body (already mapped by the
 * gateway: upstream model name, stream, stream_options) to the provider and
 * reports, in order, either:
 *   - on_failure before any chunk (could not connect, timed out, HTTP status
 *     >= 400, not an event stream; or a request the provider's API cannot
 *     express: TELEX_UPSTREAM_STATUS 400 with an OpenAI error body, reported
 *     from the loop, never from inside start) — the gateway may fall back; or
 *   - on_chunk for every chunk, then exactly one of on_done (the answer is
 *     complete) or on_failure (cut, stalled, malformed, upstream error event).
 * In plain (non-stream) mode, a 2xx answer is reported through on_response.
 * Nothing is reported after on_done/on_failure/on_response, nor after
 * telex_upstream_cancel. Sink callbacks may cancel the upstream they come
 * from; the adapter defers freeing itself until its own frames unwind.
 *
 * One adapter file per provider kind implements telex_provider_ops_t
 * (openai.c serves openai and azure); whatever the provider speaks, the
 * sink sees OpenAI's shapes: chunks, plain `chat.completion` answers, and
 * error bodies with an "error" object.
 */
#ifndef TELEX_UPSTREAM_PROVIDER_H
#define TELEX_UPSTREAM_PROVIDER_H

#include <stddef.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "config/config.h"
#include "upstream/http_client.h"
#include "util/json_scan.h"

typedef enum telex_upstream_failure_kind {
    TELEX_UPSTREAM_CONNECT,     /* could not connect (DNS, refused, TLS) */
    TELEX_UPSTREAM_TIMEOUT,     /* connect timed out */
    TELEX_UPSTREAM_STATUS,      /* HTTP status >= 400 before streaming */
    TELEX_UPSTREAM_PROTOCOL,    /* not an event stream, malformed SSE, event over the limit */
    TELEX_UPSTREAM_BAD_JSON,    /* a chunk that is not a JSON object */
    TELEX_UPSTREAM_CUT,         /* ended before the answer was complete */
    TELEX_UPSTREAM_ERROR_EVENT, /* the provider sent an error object in the stream */
} telex_upstream_failure_kind_t;

typedef struct telex_upstream_failure {
    telex_upstream_failure_kind_t kind;
    int status;              /* HTTP status for TELEX_UPSTREAM_STATUS, else 0 */
    const char *retry_after; /* Retry-After from the provider, or "" */
    const char *message;     /* human-readable, never contains a key */
    const char *body;        /* the provider's error body (may be NULL) */
    size_t body_len;
} telex_upstream_failure_t;

typedef struct telex_upstream_sink {
    /* data is the chunk's JSON text exactly as to be relayed; chunk is the
     * parsed object (borrowed: valid during the call), or NULL for an
     * ordinary chunk the adapter only validated: one with no top-level
     * "usage" or "error" (util/json_scan.h tells the rest from data). */
    /* facts: what util/json_scan.h found in data when the adapter scanned it
     * (openai.c scans every chunk), so the sink need not scan the same
     * bytes again; NULL when the adapter built the chunk itself. */
    void (*on_chunk)(void *user, const char *data, size_t len, json_t *chunk, const telex_json_facts_t *facts);
    void (*on_done)(void *user);
    void (*on_failure)(void *user, const telex_upstream_failure_t *failure);
    void (*on_response)(void *user, int status, const char *body, size_t len);
    /* Around the chunks of one read from the provider (may be NULL): begin
     * 1 before its first on_chunk, 0 after its last — then, and only when
     * the call is still running (no on_done or on_failure came in
     * between), so readers can be woken once for all of them. */
    void (*on_batch)(void *user, int begin);
} telex_upstream_sink_t;

/* What a worker lends to every upstream call. */
typedef struct telex_upstream_env {
    uv_loop_t *loop;
    telex_http_client_t *http;
    size_t max_event_bytes;    /* one SSE event from the provider */
    size_t max_response_bytes; /* a plain (non-stream) or error response */
} telex_upstream_env_t;

typedef struct telex_upstream telex_upstream_t;

typedef struct telex_provider_ops {
    telex_upstream_t *(*start)(const telex_upstream_env_t *env, const telex_provider_t *provider, json_t *body,
                               int stream, const telex_upstream_sink_t *sink, void *user);
    void (*pause)(telex_upstream_t *upstream);
    void (*resume)(telex_upstream_t *upstream);
    void (*cancel)(telex_upstream_t *upstream);
} telex_provider_ops_t;

/* Every adapter's state starts with this. */
struct telex_upstream {
    const telex_provider_ops_t *ops;
};

extern const telex_provider_ops_t telex_openai_ops; /* kinds openai and azure */
extern const telex_provider_ops_t telex_anthropic_ops;
extern const telex_provider_ops_t telex_demo_ops;

/* Starts a call with the adapter for provider->kind. body is borrowed.
 * Returns NULL, with nothing reported, when the call cannot start: a kind
 * without an adapter, a request the HTTP client cannot send
 * (telex_http_call_start: a URL that is not http(s), a header with CR or
 * LF, no TLS context), or an Anthropic translation whose jansson call
 * failed (tests only: anthropic_map.h). */
telex_upstream_t *telex_upstream_start(const telex_upstream_env_t *env, const telex_provider_t *provider,
                                       json_t *body, int stream, const telex_upstream_sink_t *sink, void *user);

static inline void telex_upstream_pause(telex_upstream_t *u)
{
    u->ops->pause(u);
}
static inline void telex_upstream_resume(telex_upstream_t *u)
{
    u->ops->resume(u);
}
static inline void telex_upstream_cancel(telex_upstream_t *u)
{
    if (u != NULL)
        u->ops->cancel(u);
}

/* For the adapters' URLs and key headers: appends s to buf[0..*n) as
 * snprintf's "%s" would (NULL as "(null)", never past cap - 1 bytes, always
 * NUL-terminated), without its cost. */
static inline void telex_upstream_append(char *buf, size_t cap, size_t *n, const char *s)
{
    if (s == NULL)
        s = "(null)";
    size_t len = strlen(s);
    if (len > cap - 1 - *n)
        len = cap - 1 - *n;
    memcpy(buf + *n, s, len);
    *n += len;
    buf[*n] = '\0';
}

/* Short name of a failure kind for logs and metrics: "connect", "timeout"... */
const char *telex_upstream_failure_name(telex_upstream_failure_kind_t kind);

#endif
