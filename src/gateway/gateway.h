/*
 * gateway/gateway.h — the product's endpoints on top of http/server.
 *
 * One telex_gateway_t per process (config and counters shared by all
 * workers, read-only config after start) and one gateway_worker_t per
 * worker thread (its HTTP client, its active chats). router.c maps paths to
 * handlers; chat_start.c and chat_relay.c are /v1/chat/completions.
 */
#ifndef TELEX_GATEWAY_GATEWAY_H
#define TELEX_GATEWAY_GATEWAY_H

#include <stdatomic.h>

#include <h2o.h>

#include "config/config.h"
#include "gateway/services.h"
#include "http/server.h"
#include "upstream/http_client.h"
#include "stream/stream.h"
#include "stream/wakeup.h"
#include "upstream/provider.h"

typedef struct telex_gateway {
    const telex_config_t *config;
    atomic_size_t active_streams; /* upstream requests running, all workers */
    telex_services_t *services;   /* keys, presets, accounting, metrics */
} telex_gateway_t;

struct subscriber;
struct telex_models_worker;

#define TELEX_SWEEP_MS 500

typedef struct gateway_worker {
    telex_worker_t *worker;
    telex_gateway_t *gateway;
    telex_http_client_t *http;
    telex_upstream_env_t upstream_env;
    telex_waker_t *waker;     /* cross-thread wake-ups to this worker */
    struct telex_models_worker *models; /* GET /v1/models: this worker's fetches and waiting requests */
    h2o_linklist_t chats;     /* of chat_t's in_chats: producers on this worker, running or kept for resume, the newest first */
    size_t n_chats;
    h2o_linklist_t subscribers; /* of struct subscriber's link: streamed responses on this worker, the newest first */
    size_t n_subscribers;
    size_t resumes;
    size_t streams_peak;      /* most chats + subscribers + connections seen since the last heap trim */
    int trimmed;              /* a trim happened and the count has not risen since */
    uv_timer_t sweep;         /* every TELEX_SWEEP_MS: probes quiet HTTP/1 clients for disconnects */
    uv_timer_t shutdown_timer;
    int shutting_down;
    struct telex_cluster_worker *cluster; /* cluster mode only (src/cluster) */
} gateway_worker_t;

/* http/server callbacks */
int telex_gateway_on_request(telex_worker_t *worker, h2o_req_t *req);
int telex_gateway_worker_init(telex_worker_t *worker);
void telex_gateway_worker_dispose(telex_worker_t *worker);
void telex_gateway_on_shutdown(telex_worker_t *worker);
int telex_gateway_is_idle(telex_worker_t *worker);
/* http/guard's on_head (head_check.c): a request head whose body has not
 * been read yet — 401 without a valid key (when keys exist), 413 over
 * limits.max_body_bytes, 503 over the bodies-in-flight budget, and the
 * cross-site checks of an anonymous gateway (cors.c). */
int telex_gateway_on_head(telex_worker_t *worker, const telex_head_t *head, telex_head_verdict_t *v);

/* static_files.c: GET of an embedded web/ file; -1 when there is none. */
int telex_static_handle(h2o_req_t *req);

/* chat_start.c */
int telex_chat_handle(gateway_worker_t *gw, h2o_req_t *req);
/* The same with a body that is not req->entity: POST /v1/presets/{name}
 * (preset = the name, for the key's allow-list; NULL otherwise). */
int telex_chat_handle_body(gateway_worker_t *gw, h2o_req_t *req, const char *body, size_t len, const char *preset);
/* The wire a client speaks to a chat's front door. */
#define TELEX_FRONT_CHAT 0      /* /v1/chat/completions */
#define TELEX_FRONT_RESPONSES 1 /* /v1/responses (gateway/responses_*.c) */
#define TELEX_FRONT_MESSAGES 2  /* /v1/messages (gateway/messages_*.c) */
/* Any front door: auth, validation (Responses translated to a chat request
 * first), routing, the answer in the front door's wire. */
int telex_chat_handle_front(gateway_worker_t *gw, h2o_req_t *req, const char *body, size_t len, const char *preset,
                            int front);
/* chat_relay.c */
/* Chats whose upstream is still running. */
size_t telex_chat_running(gateway_worker_t *gw);
/* Checks every chat and subscriber of the worker for a client that left (HTTP/1). */
void telex_chat_sweep(gateway_worker_t *gw);
/* Ends every chat of the worker: a final SSE error event, or 503. */
void telex_chat_end_all(gateway_worker_t *gw, const char *why);

/* resume.c: GET/DELETE /v1/streams/{id}; caller_owner identifies the caller's
 * key (NULL when anonymous). telex_resume_try_post returns 1 when a POST
 * carried the Last-Event-ID of a stream and was answered as a resume. */
int telex_resume_is_streams_path(h2o_req_t *req);
int telex_resume_handle(gateway_worker_t *gw, h2o_req_t *req, const char *caller_owner);
int telex_resume_try_post(gateway_worker_t *gw, h2o_req_t *req, const char *caller_owner);
/* The stream of that id if the caller may use it (its key, ?token=, or an
 * anonymous stream), a new reference; NULL looks like unknown. */
telex_stream_t *telex_resume_find(h2o_req_t *req, const char *stream_id, const char *caller_owner);
/* Streams s to req from after event `after` (subscriber flags); answers
 * 400 (naming param) past the end, 410 when dropped. Returns 0. */
int telex_resume_attach_after(gateway_worker_t *gw, h2o_req_t *req, telex_stream_t *s, uint64_t after, int flags,
                              const char *param);

/* chat_start.c: does this request ask for telex's framing (X-Telex-Event-Ids, streaming.event_ids)? */
int telex_wants_telex_framing(h2o_req_t *req, const telex_config_t *cfg);

/* messages.c: POST /v1/messages/count_tokens (an estimate); the
 * Authorization to check for an Anthropic client (its x-api-key as a
 * Bearer token when it sent no Authorization; buf holds it). */
h2o_iovec_t telex_anthropic_authorization(h2o_req_t *req, char *buf, size_t cap);
int telex_messages_count_tokens(gateway_worker_t *gw, h2o_req_t *req);

/* responses.c: the Responses API's own endpoints (POST /v1/responses goes
 * to telex_chat_handle_front). */
int telex_responses_is_path(h2o_req_t *req);
int telex_responses_handle(gateway_worker_t *gw, h2o_req_t *req, const char *caller_owner);
/* The conversation (chat messages, a new reference) of a stored response
 * the caller (owner, "" when anonymous) may use; NULL when there is none. */
json_t *telex_responses_history(const char *response_id, const char *owner);
void telex_gateway_worker_start(telex_worker_t *worker);

#endif
