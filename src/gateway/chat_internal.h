/*
 * gateway/chat_internal.h — what the two halves of a chat share, nothing more.
 *
 * A chat (chat_t) is the producer of one answer (see chat_relay.c for its
 * life: before commit, commit, finish, release).
 *  - chat_start.c  a request → a running chat: authentication, the body
 *                  (and the Responses/Messages translation), presets, the
 *                  model, admission, the stream, timers and wakeup, the
 *                  first route's call
 *  - chat_relay.c  the provider's events → the stream log: the calls to a
 *                  route (the first and each fallback), commit, finish and
 *                  release, back-pressure, deadlines, grace and retention,
 *                  DELETE, the sweep and shutdown
 * chat_start.c only creates chats and hands them to chat_relay.c; it is
 * called by nothing in chat_relay.c. Not a public interface: only these two
 * files include it (the gateway's entry points are in gateway.h).
 */
#ifndef TELEX_GATEWAY_CHAT_INTERNAL_H
#define TELEX_GATEWAY_CHAT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <jansson.h>
#include <uv.h>

#include "cluster/cluster.h"
#include "gateway/auth.h"
#include "gateway/gateway.h"
#include "gateway/messages_stream.h"
#include "gateway/metrics.h"
#include "gateway/responses_stream.h"
#include "gateway/usage.h"

/* Back-pressure bounds (chat_relay.c pauses the provider above and resumes
 * below them; chat_start.c sizes a stream's log and bounds with them). */
#define HIGH_WATER (256u * 1024)
#define LOW_WATER (64u * 1024)

typedef struct chat {
    struct chat *prev, *next;
    gateway_worker_t *gw;
    h2o_req_t *req; /* the original request, until commit hands it to a subscriber */
    struct chat **link; /* in req's pool while req != NULL: tells us when h2o disposes of it */
    json_t *body;
    const telex_model_t *model;
    size_t route;
    telex_upstream_t *up;
    telex_stream_t *stream;
    telex_wakeup_t wake;  /* subscribers attached/left/advanced, DELETE */
    uv_timer_t *deadline; /* commit timeout, then idle timeout (lazy: see touch_idle_deadline) */
    uv_timer_t *life;     /* grace without subscribers, then retention */
    uv_timer_t timers[2]; /* what deadline and life point to (one allocation with the chat) */
    int open;             /* timers and wakeup not yet released */
    int stream_mode;
    int wants_usage;
    int resumable;
    int telex_framing; /* the original client gets telex's framing (ids when resumable, retry:, keep-alives) */
    int front;                  /* TELEX_FRONT_CHAT or TELEX_FRONT_RESPONSES: the wire the client speaks */
    telex_responses_enc_t *renc; /* Responses: the encoder of the answer's events (streamed) */
    telex_messages_enc_t *menc;  /* Messages: the encoder of the answer's events (streamed) */
    json_t *resp_echo;          /* Responses: the request parameters the Response object repeats */
    json_t *resp_messages;      /* Responses: the request's messages (the conversation so far) */
    int background;             /* Responses background: runs on with no client attached */
    int client_streams;         /* the client asked for a stream (background runs one regardless) */
    char *ignored;              /* Responses: X-Telex-Ignored (NULL: none) */
    int registered;
    telex_cluster_reg_t *reg; /* cluster mode: the stream's registration in Redis (NULL: none to wait for) */
    int committed;
    int first_event;
    int finished;
    int released;
    int paused;
    int counted;
    int status;
    const char *outcome;
    char error_kind[24];
    size_t pause_above; /* retained log bytes */
    size_t resume_below;
    size_t lag_check_at; /* retained log bytes at which regulate looks at the readers' lag */
    uint64_t started_ns;
    uint64_t first_event_ns;
    size_t events;
    size_t inline_bytes; /* body of a response sent in one piece (error, plain answer) */
    size_t fallbacks;
    json_t *usage;
    telex_grant_t grant;         /* who asked: key id, stream owner */
    telex_usage_estimator_t est; /* tokens if the provider reports none */
    telex_usage_t tokens;        /* the provider's usage, once seen */
    double cost;
    int has_usage;
    uint64_t last_chunk_ms;  /* uv_now() of the last chunk (inter-token gaps) */
    int idle_armed;          /* the deadline timer runs as the idle timeout */
    uint64_t idle_from_ms;   /* uv_now() the idle timeout counts from (the last chunk) */
    telex_metrics_hist_t *itl; /* the inter-token histogram of (model, provider_name) */
    const char *provider_name; /* the route's provider (config-owned), "" before the first route */
    const char *method;        /* these three point into names[] (exact sizes: a stream */
    const char *path;          /* lives long, and fixed buffers were a third of chat_t) */
    const char *model_name;
    char names[];
} chat_t;
/* chat_relay.c, for chat_start.c: */

/* The dispose callback of the chat's link in the original request's pool
 * (h2o_mem_alloc_shared): before commit, the client left. */
void telex_chat_on_req_disposed(void *p);
/* The Responses and Messages encoders' emit: one named event into the log
 * (user is the chat). */
int telex_chat_emit_event(void *user, const char *type, const char *json, size_t len);
/* The chat's wakeup: subscribers attached, left or advanced; or a DELETE
 * arrived. And its retirement (the chat may be freed then). */
void telex_chat_on_wake(telex_wakeup_t *w);
void telex_chat_on_wake_retired(telex_wakeup_t *w);
/* The commit timeout (a stream not yet committed), and the idle timeout
 * (re)started from now. */
void telex_chat_start_commit_deadline(chat_t *c, double seconds);
void telex_chat_restart_idle_deadline(chat_t *c);
/* The original request becomes the first subscriber: 0, or -1 when it
 * could not (then telex_chat_fail_commit answers 500 and finishes). */
int telex_chat_commit(chat_t *c);
void telex_chat_fail_commit(chat_t *c);
/* Starts the call to the chat's current route (c->route); answers 500 and
 * finishes the chat when it cannot start. */
void telex_chat_start_route(chat_t *c);

#endif
