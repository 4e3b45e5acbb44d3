/*
 * gateway/chat_internal.h — what the two halves of a chat share, nothing more.
 *
 * A chat (chat_t) is the producer of one answer; its life is one explicit
 * state (chat_state_t, below; chat_relay.c makes the changes).
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

#include <stdbool.h>
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

/* A chat's life. Every change goes through chat_set_state (chat_relay.c),
 * which asserts in debug builds that it is one of these transitions:
 *
 *   CALLING ──commit──► COMMITTED ──finish──► ENDED ──release──► RELEASED ──► (freed)
 *      │                                                          ▲
 *      └───finish───► ENDED_UNCOMMITTED ──release (within finish)─┘
 *
 *   CALLING            before commit: no response yet; a route's call runs
 *                      (the first, then each fallback). A plain (not
 *                      streamed) request stays here until its answer or
 *                      error is sent in one piece.
 *   COMMITTED          the original request has its response: the log's
 *                      first subscriber (or, Responses background, the
 *                      Response object); events go to the log. Before the
 *                      first event (commit_timeout committed it) a failure
 *                      may still fall back.
 *   ENDED_UNCOMMITTED  over before commit: answered in one piece, or the
 *                      client left. Nobody can attach to it: released at
 *                      once, its cluster registration dropped.
 *   ENDED              over after commit: the log is finished (its last
 *                      event the answer's end or an error). Released at
 *                      once without resume, after resume.retention_seconds
 *                      with it.
 *   RELEASED           out of the registry and the worker's list; freed
 *                      once its timers are closed and its wakeup retired.
 * CALLING and COMMITTED are the running states: the chat counts in
 * active_streams (and the streams gauge) until it leaves them.
 *
 * What is not life cycle stays in flags next to it, because it varies on
 * its own within the running states:
 *   paused       telex paused the provider (back-pressure): set and cleared
 *                any number of times while COMMITTED (regulate runs after a
 *                commit); a chat may end paused.
 *   idle_armed   which timeout the deadline timer runs as: a plain request
 *                runs the idle timeout from the start, a stream the commit
 *                timeout until its first chunk or its commit — and a chunk
 *                can come without a commit (a usage-only chunk the client
 *                did not ask for is dropped), so neither follows the state.
 *   first_event  the provider's first event came: no fallback after it,
 *                and the TTFT. A stream commits at commit_timeout without
 *                one, and the usage-only chunk is one without a commit.
 *   registered   the stream is in the resume registry: a resumable stream's
 *                commit puts it there before the hand-over, which can still
 *                fail (ENDED_UNCOMMITTED then, still to be removed).
 *   open         a count, not a flag: timers and wakeup not yet released.
 */
typedef enum chat_state {
    CHAT_CALLING,
    CHAT_COMMITTED,
    CHAT_ENDED_UNCOMMITTED,
    CHAT_ENDED,
    CHAT_RELEASED,
} chat_state_t;

typedef struct chat {
    /* What every chunk touches comes first, together (~160 bytes, three
     * cache lines): at a model's pace a stream's chunk arrives after
     * hundreds of other streams' events and finds its chat cold, so each
     * line touched is a miss (bench/findings.md, "cold cache lines"); they
     * were spread over ten. */
    chat_state_t state;
    bool first_event;         /* the provider's first event came (see the state's comment) */
    bool paused;              /* telex paused the provider (back-pressure; see the state's comment) */
    bool in_batch;            /* inside the chunks of one provider read (sink's on_batch) */
    bool notify_pending;      /* events appended in that batch: readers are woken at its end */
    bool wants_usage;
    bool resumable;
    bool idle_armed;         /* the deadline timer runs as the idle timeout (see the state's comment) */
    bool telex_framing; /* the original client gets telex's framing (ids when resumable, retry:, keep-alives) */
    uint32_t itl_zeros;       /* chunks of that batch after its first: gaps of 0 not yet in c->itl */
    gateway_worker_t *gw;
    telex_stream_t *stream;
    uv_timer_t *deadline; /* commit timeout, then idle timeout (lazy: see touch_idle_deadline) */
    telex_responses_enc_t *renc; /* Responses: the encoder of the answer's events (streamed) */
    telex_messages_enc_t *menc;  /* Messages: the encoder of the answer's events (streamed) */
    size_t events;
    uint64_t last_chunk_ms;  /* uv_now() of the last chunk (inter-token gaps) */
    uint64_t idle_from_ms;   /* uv_now() the idle timeout counts from (the last chunk) */
    telex_metrics_hist_t *itl; /* the inter-token histogram of (model, provider_name) */
    size_t pause_above; /* retained log bytes */
    size_t resume_below;
    size_t lag_check_at; /* retained log bytes at which regulate looks at the readers' lag */
    size_t log_cap;        /* the stream's log bound (resume.max_bytes, or the plain cap) */
    telex_upstream_t *up;
    telex_usage_estimator_t est; /* tokens if the provider reports none */
    /* the rest: per answer, or rare */
    h2o_linklist_t in_chats; /* in gw->chats until released */
    h2o_req_t *req; /* the original request, until commit hands it to a subscriber */
    struct chat **link; /* in req's pool while req != NULL: tells us when h2o disposes of it */
    json_t *body;
    const telex_model_t *model;
    size_t route;
    telex_wakeup_t wake;  /* subscribers attached/left/advanced, DELETE */
    uv_timer_t *life;     /* grace without subscribers, then retention */
    uv_timer_t timers[2]; /* what deadline and life point to (one allocation with the chat) */
    int open;             /* timers and wakeup not yet released */
    bool stream_mode;
    int front;                  /* TELEX_FRONT_CHAT or TELEX_FRONT_RESPONSES: the wire the client speaks */
    json_t *resp_echo;          /* Responses: the request parameters the Response object repeats */
    json_t *resp_messages;      /* Responses: the request's messages (the conversation so far) */
    bool background;            /* Responses background: runs on with no client attached */
    bool client_streams;        /* the client asked for a stream (background runs one regardless) */
    char *ignored;              /* Responses: X-Telex-Ignored (NULL: none) */
    bool registered;          /* in the resume registry (see the state's comment) */
    telex_cluster_reg_t *reg; /* cluster mode: the stream's registration in Redis (NULL: none to wait for) */
    int status;
    int commit_status;     /* the status a failed commit answers (0: 500 server_error) */
    char commit_why[320];  /* its message, when telex_chat_check_start wrote one */
    const char *outcome;
    char error_kind[24];
    uint64_t started_ns;
    uint64_t first_event_ns;
    size_t inline_bytes; /* body of a response sent in one piece (error, plain answer) */
    size_t fallbacks;
    json_t *usage;
    telex_grant_t grant;         /* who asked: key id, stream owner */
    telex_usage_t tokens;        /* the provider's usage, once seen */
    double cost;
    bool has_usage;
    const char *provider_name; /* the route's provider (config-owned), "" before the first route */
    const char *method;        /* these three point into names[] (exact sizes: a stream */
    const char *path;          /* lives long, and fixed buffers were a third of chat_t) */
    const char *model_name;
    char names[];
} chat_t;

/* The running states (CALLING, COMMITTED): the answer is not over yet. */
static inline bool chat_running(const chat_t *c)
{
    return c->state == CHAT_CALLING || c->state == CHAT_COMMITTED;
}

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
/* Whether the answer's first events will fit the stream's log (Responses,
 * streamed to the client: response.created and response.in_progress repeat
 * the request's parameters). 0, or -1 with *why; telex_chat_fail_commit then
 * answers 400 invalid_request_error naming the limit. */
int telex_chat_check_start(chat_t *c, const char **why);
/* CALLING → COMMITTED: the original request becomes the first subscriber
 * (after telex_chat_check_start, which it runs first). 0, or -1 with *why
 * saying what failed; then telex_chat_fail_commit(c, why) answers with it
 * while the request is still the chat's (400 for check_start, else 500) or,
 * when the front door's first events failed after the hand-over, ends the
 * stream with an error event; either way it finishes the chat. */
int telex_chat_commit(chat_t *c, const char **why);
void telex_chat_fail_commit(chat_t *c, const char *why);
/* Starts the call to the chat's current route (c->route); answers 500 and
 * finishes the chat when it cannot start. */
void telex_chat_start_route(chat_t *c);

#endif
