/*
 * gateway/chat_relay.c — a chat's answer: the provider's events into the
 * stream log, commit, finish; deadlines, back-pressure, cancel, the sweep.
 *
 * A chat is the producer of one answer (chat_start.c creates it). It runs
 * the upstream call on its worker's thread and appends every chunk, framed
 * as OpenAI frames it (`data: <chunk>\n\n`), to the answer's stream log;
 * responses are subscribers of that log (gateway/subscriber.c), and those
 * that want telex's framing add the ids ("<stream id>.<n>") as they write.
 * Its states (chat_internal.h has the diagram; chat_set_state below checks
 * each change):
 *   - CALLING, before commit: no response yet. An upstream failure that
 *     allows it (connect error, timeout, 429, 5xx, a stream cut before its
 *     first event) falls back to the model's next route; the last failure
 *     becomes a real HTTP status with an OpenAI-style error body.
 *   - COMMITTED (the first upstream event, or commit_timeout, whichever
 *     comes first): the original request becomes the first subscriber, from
 *     position 0, and the stream becomes resumable (registry). From then on
 *     the answer ends in the log: `data: [DONE]` only when the upstream
 *     really finished — otherwise a final `data: {"error":{...}}` event.
 *   - ENDED_UNCOMMITTED / ENDED (finish), then RELEASED (release).
 * When the last subscriber leaves, the upstream keeps going for
 * resume.grace_seconds (0 without resume), then is cancelled. A finished
 * stream stays resumable for resume.retention_seconds.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <telex/sse.h>

#include "cluster/cluster.h"
#include "gateway/answer_model.h"
#include "gateway/chat_internal.h"
#include "gateway/chat_request.h"
#include "gateway/gateway.h"
#include "gateway/metrics.h"
#include "gateway/messages_stream.h"
#include "gateway/responses_stream.h"
#include "gateway/secrets.h"
#include "gateway/subscriber.h"
#include "gateway/usage.h"
#include "http/respond.h"
#include "util/alloc.h"
#include "util/json_dump.h"
#include "util/json_load.h"
#include "util/json_scan.h"
#include "util/log.h"

#define LAG_STEP (16u * 1024)
/* Log bytes the Responses and Messages events leave free for an `error`
 * event, so that an answer whose events outgrow the log still ends with one
 * (its message is cut to a fixed one when the room is too small for it). */
#define ERROR_EVENT_ROOM 512u

static void release(chat_t *c);
static void on_retention_end(uv_timer_t *timer);

/* ------------------------------------------------------------ states */

/* The transitions of chat_internal.h's diagram; bit `to` of row `from`. */
#define T(s) (1u << (s))
static const unsigned allowed[] __attribute__((unused)) = {
    [CHAT_CALLING] = T(CHAT_COMMITTED) | T(CHAT_ENDED_UNCOMMITTED),
    [CHAT_COMMITTED] = T(CHAT_ENDED),
    [CHAT_ENDED_UNCOMMITTED] = T(CHAT_RELEASED),
    [CHAT_ENDED] = T(CHAT_RELEASED),
    [CHAT_RELEASED] = 0,
};
#undef T

static void chat_set_state(chat_t *c, chat_state_t to)
{
    assert((allowed[c->state] & (1u << to)) != 0 && "illegal chat_t state transition");
    c->state = to;
}

/* The chat of a link in its worker's list (gw->chats). */
static chat_t *chat_of(h2o_linklist_t *l)
{
    return H2O_STRUCT_FROM_MEMBER(chat_t, in_chats, l);
}

/* The bytes of the answer: its log after a commit (running or ended), else
 * what was sent in one piece. */
static uint64_t bytes_out(chat_t *c)
{
    bool committed = c->state == CHAT_COMMITTED || c->state == CHAT_ENDED;
    return committed ? telex_log_end(c->stream->log) : c->inline_bytes;
}

/* ------------------------------------------------------------ lifetime */

/* Drops the parsed request once no fallback can need it (it is ~1.5 KB of
 * JSON nodes per stream for the answer's whole life otherwise). */
static void release_request(chat_t *c)
{
    json_decref(c->body);
    c->body = NULL;
}

static void free_if_done(chat_t *c)
{
    if (--c->open > 0)
        return;
    json_decref(c->body);
    json_decref(c->usage);
    telex_responses_enc_free(c->renc);
    telex_messages_enc_free(c->menc);
    json_decref(c->resp_echo);
    json_decref(c->resp_messages);
    free(c->ignored);
    telex_stream_unref(c->stream);
    free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    free_if_done(h->data); /* the timer is part of the chat */
}

void telex_chat_on_wake_retired(telex_wakeup_t *w)
{
    free_if_done(H2O_STRUCT_FROM_MEMBER(chat_t, wake, w));
}

static void cancel_upstream(chat_t *c)
{
    if (c->up != NULL) {
        telex_upstream_t *up = c->up;
        c->up = NULL;
        telex_upstream_cancel(up);
    }
}

static double ms_rounded(double ns)
{
    return (double)(long long)(ns / 1e3) / 1e3;
}

static void log_request(chat_t *c)
{
    if (!telex_log_wants("info"))
        return; /* building a line nobody reads is a measurable cost per answer (bench/findings.md) */
    double now = (double)uv_hrtime();
    json_t *line = json_pack("{s:s,s:s,s:s,s:s,s:i}", "level", "info", "msg", "request", "method", c->method, "path",
                             c->path, "status", c->status);
    if (line == NULL)
        return;
    json_object_set_new(line, "model", json_string(c->model_name));
    json_object_set_new(line, "provider", c->provider_name[0] ? json_string(c->provider_name) : json_null());
    json_object_set_new(line, "stream", json_boolean(c->stream_mode));
    if (c->registered)
        json_object_set_new(line, "stream_id", json_string(c->stream->id));
    json_object_set_new(line, "ttft_ms",
                        c->first_event ? json_real(ms_rounded((double)(c->first_event_ns - c->started_ns))) : json_null());
    json_object_set_new(line, "duration_ms", json_real(ms_rounded(now - (double)c->started_ns)));
    json_object_set_new(line, "events", json_integer((json_int_t)c->events));
    json_object_set_new(line, "bytes", json_integer((json_int_t)bytes_out(c)));
    json_object_set_new(line, "fallbacks", json_integer((json_int_t)c->fallbacks));
    json_object_set_new(line, "outcome", json_string(c->outcome ? c->outcome : "client_gone"));
    if (c->error_kind[0] && strcmp(c->outcome ? c->outcome : "", "ok") != 0)
        json_object_set_new(line, "error", json_string(c->error_kind));
    if (c->usage != NULL)
        json_object_set(line, "usage", c->usage);
    telex_log_json(line);
}

static telex_metrics_t *metrics_of(chat_t *c)
{
    return telex_services_metrics(c->gw->gateway->services);
}

/* The ledger row and the metrics of an admitted request. */
static void record_usage(chat_t *c)
{
    telex_services_t *svc = c->gw->gateway->services;
    const telex_route_t *route = c->provider_name[0] ? &c->model->routes[c->route] : NULL;
    if (!c->has_usage) {
        telex_usage_estimator_result(&c->est, &c->tokens);
        c->cost = telex_usage_cost(&c->tokens, route);
    }
    double now = (double)uv_hrtime();
    telex_usage_record_t rec;
    telex_usage_record_init(&rec, &c->grant, c->model_name, c->provider_name);
    telex_usage_record_set(&rec, &c->tokens, c->cost);
    rec.ttft_ms = c->first_event ? (double)(c->first_event_ns - c->started_ns) / 1e6 : -1;
    rec.duration_ms = (now - (double)c->started_ns) / 1e6;
    rec.status = c->status;
    snprintf(rec.outcome, sizeof rec.outcome, "%s", c->outcome ? c->outcome : "client_gone");
    telex_usage_record(svc, &c->grant, &rec);
    telex_metrics_request_done(metrics_of(c),
                               &(telex_metrics_request_t){
                                   .status = c->status,
                                   .model = c->model_name,
                                   .provider = c->provider_name,
                                   .ttft_seconds = rec.ttft_ms >= 0 ? rec.ttft_ms / 1e3 : -1,
                                   .duration_seconds = rec.duration_ms / 1e3,
                                   .prompt_tokens = c->tokens.prompt_tokens,
                                   .completion_tokens = c->tokens.completion_tokens,
                                   .cached_tokens = c->tokens.cached_tokens,
                                   .reasoning_tokens = c->tokens.reasoning_tokens,
                                   .cost_usd = c->cost,
                                   .bytes_out = bytes_out(c)});
}

/* Responses: the final Response object and the conversation it ends, kept
 * with the stream for GET /v1/responses/{id} and previous_response_id. */
static void keep_response_notes(chat_t *c)
{
    json_t *final = telex_responses_enc_final(c->renc);
    char *text = telex_responses_enc_take_final_text(c->renc);
    if (text != NULL)
        telex_stream_set_note(c->stream, TELEX_NOTE_RESPONSE, text);
    json_t *said = final != NULL ? telex_responses_output_as_message(final) : NULL;
    json_t *conversation = c->resp_messages != NULL ? json_copy(c->resp_messages) : NULL;
    if (conversation != NULL && said != NULL && json_array_append(conversation, said) == 0) {
        char *ctext = telex_json_dumps(conversation, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (ctext != NULL)
            telex_stream_set_note(c->stream, TELEX_NOTE_CONVERSATION, ctext);
    }
    json_decref(conversation);
    json_decref(said);
    json_decref(final);
}

/* The zero gaps of the read being parsed go into the histogram at its end
 * (on_batch), or when the answer ends first (a route changes only before the first chunk). */
static void flush_itl_zeros(chat_t *c)
{
    if (c->itl_zeros != 0) {
        telex_metrics_inter_token_zeros(c->itl, c->itl_zeros);
        c->itl_zeros = 0;
    }
}

/* The answer is over (for whatever reason): no upstream, no more events.
 * CALLING → ENDED_UNCOMMITTED (then RELEASED), COMMITTED → ENDED; a chat
 * that is no longer running is left alone. */
static void finish(chat_t *c, const char *outcome)
{
    if (!chat_running(c))
        return;
    bool committed = c->state == CHAT_COMMITTED;
    chat_set_state(c, committed ? CHAT_ENDED : CHAT_ENDED_UNCOMMITTED);
    c->outcome = outcome;
    uv_timer_stop(c->deadline);
    cancel_upstream(c);
    /* counted since chat_start.c created it, in a running state */
    atomic_fetch_sub(&c->gw->gateway->active_streams, 1);
    telex_metrics_stream_ended(metrics_of(c));
    if (c->renc != NULL && committed)
        keep_response_notes(c);
    telex_log_finish(c->stream->log);
    flush_itl_zeros(c);
    c->in_batch = c->notify_pending = false; /* this wake-up covers them */
    telex_stream_notify(c->stream);
    log_request(c);
    record_usage(c);
    if (!committed) {
        release(c); /* nobody can attach to a stream that never committed */
    } else if (c->resumable) {
        /* keep it resumable for a while, then forget it */
        double keep = c->gw->gateway->config->resume.retention_seconds;
        uv_timer_start(c->life, on_retention_end, (uint64_t)(keep * 1000), 0);
    } else {
        release(c); /* the subscriber holds the stream; the producer is done */
    }
}

static void on_retention_end(uv_timer_t *timer)
{
    release(timer->data);
}

/* Drops the chat: out of the registry and the worker's list; freed once its
 * timers are closed and its wakeup is no longer queued. */
static void release(chat_t *c)
{
    if (c->state == CHAT_RELEASED) {
        assert(!"a chat released twice");
        return;
    }
    bool never_committed = c->state == CHAT_ENDED_UNCOMMITTED;
    chat_set_state(c, CHAT_RELEASED);
    if (c->req != NULL) {
        *c->link = NULL; /* the request outlives us: its disposal must not reach us */
        c->req = NULL;
    }
    telex_cluster_reg_end(c->reg, never_committed);
    c->reg = NULL;
    if (c->registered)
        telex_registry_remove(c->stream);
    telex_stream_set_producer(c->stream, NULL);
    h2o_linklist_unlink(&c->in_chats);
    c->gw->n_chats--;
    uv_close((uv_handle_t *)c->deadline, on_timer_closed);
    uv_close((uv_handle_t *)c->life, on_timer_closed);
    if (telex_wakeup_retire(&c->wake) == 0)
        free_if_done(c);
}

/* h2o disposed of the original request. Before commit, the client left. */
void telex_chat_on_req_disposed(void *p)
{
    chat_t *c = *(chat_t **)p;
    if (c == NULL)
        return; /* handed to a subscriber at commit */
    c->req = NULL;
    if (chat_running(c))
        finish(c, "client_gone");
}

/* ------------------------------------------------------------ the log */

static void respond_error_json(chat_t *c, int status, const char *type, const char *code, const char *message)
{
    if (c->req == NULL)
        return;
    c->status = status;
    char *masked = telex_secrets_masked_copy(c->gw->gateway->config, message, strlen(message));
    telex_respond_error(c->req, status, type, code, NULL, "%s", masked);
    free(masked);
    c->inline_bytes = c->req->bytes_sent;
}

/* Appends one event (data) as `data: <data>\n\n` (subscribers that send
 * ids add them as they write).
 * one_line: data is known to hold no CR or LF (a validated JSON object
 * whose whitespace has none: JSON strings cannot hold raw line breaks). */
static int append_event_cut(chat_t *c, const char *data, size_t len, int one_line, size_t cut_from, size_t cut_to);

/* After an append: the stream's readers are woken now, or once at the end
 * of the provider read being parsed (on_batch). */
static void wake_readers(chat_t *c)
{
    if (c->in_batch)
        c->notify_pending = true;
    else
        telex_stream_notify(c->stream);
}

static int append_event(chat_t *c, const char *data, size_t len, int one_line)
{
    return append_event_cut(c, data, len, one_line, 0, 0);
}

/* The same, without the bytes data[cut_from..cut_to) (a "usage":null the
 * client did not ask for). */
static int append_event_cut(chat_t *c, const char *data, size_t len, int one_line, size_t cut_from, size_t cut_to)
{
    telex_sse_out_event_t ev = {.retry = -1, .data = data, .data_len = len};
    telex_log_piece_t pieces[4];
    size_t n = 0;
    char stackbuf[4096];
    char *buf = stackbuf;
    char *joined = NULL;
    if (cut_to > cut_from && !one_line) {
        /* rare (a chunk with line breaks in its whitespace): join the two parts */
        joined = telex_xmalloc(len - (cut_to - cut_from));
        memcpy(joined, data, cut_from);
        memcpy(joined + cut_from, data + cut_to, len - cut_to);
        ev.data = joined;
        ev.data_len = len - (cut_to - cut_from);
    }
    if (one_line && len != 0) {
        /* What the encoder would write, in pieces straight into the log: no
         * scan for line breaks and no buffer to assemble the event in first. */
        pieces[n++] = (telex_log_piece_t){"data: ", 6};
        if (cut_to > cut_from) {
            pieces[n++] = (telex_log_piece_t){data, cut_from};
            pieces[n++] = (telex_log_piece_t){data + cut_to, len - cut_to};
        } else {
            pieces[n++] = (telex_log_piece_t){data, len};
        }
        pieces[n++] = (telex_log_piece_t){"\n\n", 2};
    } else {
        /* Most events fit the stack buffer: encoded in one pass; a larger
         * one is measured and encoded into an allocation of its size. */
        size_t written = 0;
        int rc = telex_sse_encode_event(buf, sizeof(stackbuf), &ev, &written);
        if (rc == TELEX_SSE_ENOSPC) {
            size_t need = telex_sse_encoded_size(&ev);
            buf = need != SIZE_MAX ? telex_xmalloc(need) : NULL;
            rc = buf != NULL ? telex_sse_encode_event(buf, need, &ev, &written) : -1;
        }
        free(joined);
        if (rc != 0) {
            if (buf != stackbuf)
                free(buf);
            return -1;
        }
        pieces[n++] = (telex_log_piece_t){buf, written};
    }
    int64_t appended = telex_log_appendv(c->stream->log, pieces, n);
    if (appended == -ENOSPC && c->resumable) {
        /* Full: drop the history every subscriber has written, then retry
         * once (the history of a live laggard is kept: then it fails). */
        telex_stream_release_acked_or_all(c->stream);
        appended = telex_log_appendv(c->stream->log, pieces, n);
    }
    if (buf != stackbuf)
        free(buf);
    if (appended < 0)
        return -1;
    c->events++;
    wake_readers(c);
    return 0;
}

/* Appends one named event (`event: <type>` + `data: <json>`, json one line:
 * the Responses wire). */
static int append_typed_event(chat_t *c, const char *type, const char *json, size_t len)
{
    telex_log_piece_t pieces[5] = {
        {"event: ", 7}, {type, strlen(type)}, {"\ndata: ", 7}, {json, len}, {"\n\n", 2},
    };
    /* every event but an `error` leaves ERROR_EVENT_ROOM free for one */
    size_t need = 7 + pieces[1].len + 7 + len + 2;
    size_t room = strcmp(type, "error") != 0 && c->log_cap > ERROR_EVENT_ROOM ? ERROR_EVENT_ROOM : 0;
    telex_log_t *log = c->stream->log;
    if (telex_log_retained(log) + need + room > c->log_cap && c->resumable)
        telex_stream_release_acked_or_all(c->stream);
    if (telex_log_retained(log) + need + room > c->log_cap)
        return -1;
    int64_t appended = telex_log_appendv(log, pieces, 5);
    if (appended == -ENOSPC && c->resumable) {
        telex_stream_release_acked_or_all(c->stream);
        appended = telex_log_appendv(log, pieces, 5);
    }
    if (appended < 0)
        return -1;
    c->events++;
    wake_readers(c);
    return 0;
}

int telex_chat_emit_event(void *user, const char *type, const char *json, size_t len)
{
    return append_typed_event(user, type, json, len);
}

/* The process-wide budget of all streams' logs (resume.max_total_bytes,
 * docs/memory.md): over it, streams drop the history their readers have been
 * sent and pause their providers once a reader lags LOW_WATER behind. */
static int worker_over_budget(gateway_worker_t *gw)
{
    uint64_t budget = gw->gateway->config->resume.max_total_bytes;
    return budget != 0 && telex_log_total_bytes() > budget;
}

static int over_budget(chat_t *c)
{
    return worker_over_budget(c->gw);
}

/* A Responses background answer with no reader attached (no GET with
 * stream=true): nobody would ever free room in its log, so it must never
 * wait for one. Its log drops the history nobody has been sent instead of
 * pausing the provider; GET /v1/responses/{id} answers from the Response
 * kept with the stream (keep_response_notes), not from the log. */
static int unread_background(chat_t *c)
{
    return c->background && telex_stream_subscribers(c->stream, NULL) == 0;
}

/* Drops the history every reader has been sent; for an unread background
 * answer, all of it (as an append at ENOSPC does). Atomic with a reader
 * attaching: one that attached first keeps what it has not been sent. */
static void release_history(chat_t *c)
{
    if (c->background)
        telex_stream_release_acked_or_all(c->stream);
    else
        telex_stream_release_acked(c->stream);
}

/* Bytes of the log the slowest attached reader has not been sent yet
 * (UINT64_MAX when nobody is attached). */
static uint64_t unsent(chat_t *c)
{
    uint64_t acked = telex_stream_min_acked(c->stream);
    uint64_t end = telex_log_end(c->stream->log);
    if (acked == UINT64_MAX)
        return UINT64_MAX;
    return acked < end ? end - acked : 0;
}

/* Whether the provider must wait (never for a background answer nobody
 * reads: nobody would free room): the log is near its own bound; a live
 * reader lags HIGH_WATER behind (with resume too: a reader that stops
 * reading costs ~HIGH_WATER, not resume.max_bytes); or the global budget is
 * spent and this stream's readers lag LOW_WATER (or nobody reads it). */
static int must_pause(chat_t *c)
{
    if (unread_background(c))
        return 0;
    if (telex_log_retained(c->stream->log) > c->pause_above)
        return 1;
    uint64_t lag = unsent(c);
    if (c->resumable && lag != UINT64_MAX && lag > HIGH_WATER)
        return 1;
    return lag > LOW_WATER && over_budget(c);
}

/* The other side of must_pause, with hysteresis. */
static int may_go_on(chat_t *c)
{
    if (unread_background(c))
        return 1;
    if (telex_log_retained(c->stream->log) >= c->resume_below)
        return 0;
    uint64_t lag = unsent(c);
    if (c->resumable && lag != UINT64_MAX && lag >= LOW_WATER)
        return 0;
    return lag <= LOW_WATER / 2 || !over_budget(c);
}

/* Over the global budget of logs: the ended answers on this worker that
 * nobody is reading lose their history, oldest first (a later resume gets
 * 410 resume_position_dropped), until the total is back under it. Returns
 * whether the total is still over the budget. */
static int evict_ended(gateway_worker_t *gw)
{
    for (h2o_linklist_t *l = gw->chats.prev; l != &gw->chats; l = l->prev) { /* oldest first */
        chat_t *c = chat_of(l);
        if (!over_budget(c))
            return 0;
        if (c->state == CHAT_ENDED && c->resumable && telex_stream_subscribers(c->stream, NULL) == 0 &&
            telex_log_retained(c->stream->log) > 0)
            telex_stream_release_acked_or_all(c->stream);
    }
    return worker_over_budget(gw);
}

/* Back-pressure: keep the retained log under its bound by dropping what
 * every subscriber has written, and pause the upstream while a subscriber
 * lags too far behind (must_pause). A background answer nobody reads drops
 * its whole history instead and never pauses (unread_background). */
static void regulate(chat_t *c)
{
    telex_log_t *log = c->stream->log;
    size_t retained = telex_log_retained(log);
    int full = retained > c->pause_above, tight = over_budget(c);
    /* the readers' lag (a lock) is looked at every LAG_STEP bytes */
    if (!full && !tight && (!c->resumable || retained < c->lag_check_at))
        return;
    /* Every LAG_STEP bytes (or when the log is near its own bound): over the
     * global budget, ended answers nobody reads lose their history first
     * (evict_ended walks the worker's streams); then, near its bound or still
     * over the budget, this log drops the history every reader has been
     * sent. In between, only the cheap checks of must_pause. */
    if (full || retained >= c->lag_check_at) {
        if (tight)
            tight = evict_ended(c->gw);
        if (c->resumable && (full || tight))
            release_history(c);
        c->lag_check_at = telex_log_retained(log) + LAG_STEP;
    }
    if (!c->paused && c->up != NULL && must_pause(c)) {
        assert(c->state == CHAT_COMMITTED); /* regulate runs after a commit */
        c->paused = true;
        atomic_store(&c->stream->wants_acks, 1);
        telex_upstream_pause(c->up);
        /* The provider is silent because we asked it to be: no idle timeout. */
        uv_timer_stop(c->deadline);
    }
}

static void end_with_error_event(chat_t *c, const char *type, const char *code, const char *message,
                                 const char *outcome)
{
    /* the message may quote the provider, which may quote the key it was given */
    char *masked = telex_secrets_masked_copy(c->gw->gateway->config, message, strlen(message));
    if (c->renc != NULL) { /* Responses: response.failed, never response.completed */
        /* response.failed repeats the whole Response: when even that does
         * not fit the log, OpenAI's small error event is the last word */
        if (telex_responses_enc_fail(c->renc, code, masked) != 0 &&
            telex_responses_enc_error(c->renc, code, masked) != 0)
            telex_responses_enc_error(c->renc, code, "the answer's events outgrew the stream's log");
        free(masked);
        finish(c, outcome);
        return;
    }
    if (c->menc != NULL) { /* Messages: event: error, never message_stop */
        telex_messages_enc_fail(c->menc, strcmp(code, "shutting_down") == 0 ? "overloaded_error" : "api_error",
                                masked);
        free(masked);
        finish(c, outcome);
        return;
    }
    json_t *err = json_pack("{s:{s:s,s:s,s:s}}", "error", "message", masked, "type", type, "code", code);
    free(masked);
    char *text = err ? telex_json_dumps(err, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(err);
    if (text != NULL) {
        append_event(c, text, strlen(text), 0);
        free(text);
    }
    finish(c, outcome);
}

/* ------------------------------------------------------------ commit */

static void on_deadline(uv_timer_t *timer);

static uint64_t idle_timeout_ms(chat_t *c)
{
    return (uint64_t)(c->gw->gateway->config->streaming.idle_timeout_seconds * 1000);
}

/* The commit timeout (a stream not yet committed). */
void telex_chat_start_commit_deadline(chat_t *c, double seconds)
{
    c->idle_armed = false;
    uv_timer_start(c->deadline, on_deadline, (uint64_t)(seconds * 1000), 0);
}

/* (Re)starts the idle timeout, counting from now. */
void telex_chat_restart_idle_deadline(chat_t *c)
{
    c->idle_armed = true;
    c->idle_from_ms = uv_now(&c->gw->worker->loop);
    uv_timer_start(c->deadline, on_deadline, idle_timeout_ms(c), 0);
}

/* The provider sent something: the idle timeout counts from now. Lazy, as
 * this runs for every chunk: the running timer is left alone (no timer-heap
 * update per event) and on_deadline re-arms it for the remainder when it
 * fires before the provider has really been silent for idle_timeout. */
static void touch_idle_deadline(chat_t *c)
{
    if (c->idle_armed && uv_is_active((uv_handle_t *)c->deadline))
        c->idle_from_ms = uv_now(&c->gw->worker->loop);
    else
        telex_chat_restart_idle_deadline(c);
}

/* The request gets its response: headers (the stream id among them) and
 * the log from position 0 as its first subscriber. NULL, or what failed. */
static const char *hand_over(chat_t *c, h2o_req_t *req)
{
    char url[128], token[TELEX_RESUME_TOKEN_LEN + 1];
    const char *headers[7] = {NULL};
    size_t h = 0;
    if (c->ignored != NULL) {
        headers[h++] = "x-telex-ignored";
        headers[h++] = c->ignored;
    }
    if (c->resumable) {
        telex_resume_token(c->stream->id, token);
        snprintf(url, sizeof(url), "/v1/streams/%s?token=%s", c->stream->id, token);
        headers[h++] = "x-telex-stream-id";
        headers[h++] = c->stream->id;
        headers[h++] = "x-telex-resume-url";
        headers[h++] = url;
    }
    int flags = (c->resumable ? 0 : TELEX_SUB_RELEASE_AS_ACKED) |
                (c->telex_framing ? TELEX_SUB_KEEPALIVE : 0) |
                (c->telex_framing && c->resumable ? TELEX_SUB_EVENT_IDS : 0);
    if (c->background && !c->client_streams) {
        /* Responses background: the client gets the Response object now and
         * comes back for it (GET /v1/responses/{id}); nobody reads the log. */
        char *text = telex_responses_enc_response_text(c->renc);
        if (text == NULL) /* jansson refuses it (out of memory aborts: util/alloc.h) */
            return "the Response object could not be encoded as JSON";
        for (size_t i = 0; i < h; i += 2)
            telex_add_header(req, headers[i], headers[i + 1]);
        telex_respond(req, 200, "application/json", text, strlen(text));
        c->inline_bytes = strlen(text);
        free(text);
    } else if (telex_subscriber_start(c->gw, req, c->stream, 0, 0, flags, headers) != 0) {
        return "the stream's log no longer holds its first event";
    }
    return NULL;
}

/* Responses streamed to the client: response.created and
 * response.in_progress (each repeats the request's parameters) must fit the
 * empty log with ERROR_EVENT_ROOM to spare, or the request is refused (400)
 * while it is still the chat's. Background without a stream is not checked:
 * its client gets the Response object itself, and nobody reads its log. */
int telex_chat_check_start(chat_t *c, const char **why)
{
    *why = NULL;
    if (c->renc == NULL || !c->client_streams)
        return 0; /* background without a stream answers the Response object itself */
    size_t need = telex_responses_enc_start_bytes(c->renc);
    if (need != SIZE_MAX && need + ERROR_EVENT_ROOM <= c->log_cap)
        return 0;
    c->commit_status = 400;
    if (c->resumable)
        snprintf(c->commit_why, sizeof c->commit_why,
                 "The request's parameters, which response.created and response.in_progress repeat "
                 "(instructions, tools, metadata, ...), take %zu bytes of the stream; they exceed "
                 "resume.max_bytes of %zu bytes (less %u kept for an error event).",
                 need, c->log_cap, ERROR_EVENT_ROOM);
    else
        snprintf(c->commit_why, sizeof c->commit_why,
                 "The request's parameters, which response.created and response.in_progress repeat "
                 "(instructions, tools, metadata, ...), take %zu bytes of the stream; they exceed "
                 "the %zu bytes a stream holds without resume (limits.max_event_bytes).",
                 need, c->log_cap);
    *why = c->commit_why;
    return -1;
}

/* The original request becomes the first subscriber. In cluster mode this
 * does not wait for Redis to acknowledge the stream's registration: a node
 * asked for an id it cannot find yet waits for the registration
 * (cluster/mirror.c). Nothing here fails for want of memory (that aborts:
 * util/alloc.h, and jansson's allocator in cli/main.c); what can fail is
 * named in *why. Once the request has been handed over the chat is
 * COMMITTED, even when its first events then fail. */
int telex_chat_commit(chat_t *c, const char **why)
{
    if (telex_chat_check_start(c, why) != 0) /* exact now: usage may have joined the Response */
        return -1;
    if (c->resumable) {
        if (telex_registry_put(c->stream) != 0) { /* a stream created without locks (not shared) */
            *why = "the stream could not be registered for resume";
            return -1;
        }
        c->registered = true;
        telex_cluster_publish(c->stream, c->front); /* cluster mode: every event to Redis too */
    }
    if (c->renc != NULL) {
        /* the Response as it starts, kept before the client can hold its id:
         * a GET /v1/responses/{id} right after a background answer's object
         * (on another worker) once found the stream without it (404) */
        char *text = telex_responses_enc_response_text(c->renc);
        if (text != NULL)
            telex_stream_set_note(c->stream, TELEX_NOTE_RESPONSE, text);
    }
    if ((*why = hand_over(c, c->req)) != NULL)
        return -1;
    *c->link = NULL; /* the request is the subscriber's now */
    chat_set_state(c, CHAT_COMMITTED);
    c->status = 200;
    c->req = NULL;
    /* The front door's first events: telex_chat_check_start made sure
     * Responses' fit the empty log (they repeat the request's parameters);
     * Messages' message_start is small (no parameters repeated). Should one
     * still fail, telex_chat_fail_commit ends the stream with an error event. */
    *why = "the answer's first events could not be written to the stream's log";
    if (c->renc != NULL && telex_responses_enc_start(c->renc) != 0)
        return -1;
    if (c->menc != NULL && telex_messages_enc_start(c->menc) != 0)
        return -1;
    *why = NULL;
    return 0;
}

/* The answer cannot start: while the request is still the chat's, a status
 * saying why (400 when its first events would not fit the log, else 500);
 * after the hand-over, an error event ends the stream its client reads. */
void telex_chat_fail_commit(chat_t *c, const char *why)
{
    if (c->state == CHAT_COMMITTED) {
        snprintf(c->error_kind, sizeof(c->error_kind), "log_full");
        end_with_error_event(c, "server_error", "log_full", why, "error");
        return;
    }
    if (c->commit_status == 400)
        respond_error_json(c, 400, "invalid_request_error", "request_too_large", why);
    else
        respond_error_json(c, 500, "server_error", NULL, why);
    finish(c, "error");
}

/* ------------------------------------------------------------ upstream sink */

/* The log cannot take the answer's next event (resume.max_bytes): the
 * answer ends with an error event instead. */
static void end_log_full(chat_t *c)
{
    snprintf(c->error_kind, sizeof(c->error_kind), "log_full");
    end_with_error_event(c, "server_error", "log_full", "the answer outgrew resume.max_bytes", "error");
}

/* Responses and Messages: the chunk goes to the front door's encoder
 * (usage into its final event) instead of the log. */
static void relay_as_response(chat_t *c, const char *data, size_t len, json_t *chunk, const telex_json_facts_t *facts)
{
    json_t *own = NULL;
    /* Only text or a tool call's next arguments (most chunks), scanned, with
     * nothing jansson refuses (as a tree it would be dropped below) and no
     * usage (the adapter built no tree): no tree either. */
    telex_answer_delta_t d = {0};
    int plain = chunk == NULL && facts != NULL && !facts->finish_odd &&
                telex_answer_plain_delta_at(data, len, facts->choices_at, &d) == 1;
    if (!plain) {
        if (chunk == NULL && (chunk = own = telex_json_loadb(data, len, 0, NULL)) == NULL)
            return; /* the adapter validated it: cannot happen */
        json_t *usage = json_object_get(chunk, "usage");
        if (usage != NULL && !json_is_null(usage)) {
            if (telex_usage_annotate(chunk, &c->model->routes[c->route], &c->tokens, &c->cost) == 1)
                c->has_usage = true;
            json_decref(c->usage);
            c->usage = json_incref(usage);
            if (c->renc != NULL)
                telex_responses_enc_usage(c->renc, usage);
            else
                telex_messages_enc_usage(c->menc, usage);
        }
    }
    const char *why;
    if (c->state == CHAT_CALLING && telex_chat_commit(c, &why) != 0) {
        free(d.scratch);
        json_decref(own);
        telex_chat_fail_commit(c, why);
        return;
    }
    int rc;
    if (plain)
        rc = c->renc != NULL
                 ? telex_responses_enc_plain(c->renc, d.text, d.text_len, d.has_tool, d.tool_index, d.args, d.args_len)
                 : telex_messages_enc_plain(c->menc, d.text, d.text_len, d.has_tool, d.tool_index, d.args, d.args_len);
    else
        rc = c->renc != NULL ? telex_responses_enc_chunk(c->renc, chunk) : telex_messages_enc_chunk(c->menc, chunk);
    free(d.scratch);
    json_decref(own);
    if (rc != 0) {
        end_log_full(c);
        return;
    }
    regulate(c);
}

/* facts: util/json_scan.h's facts about data when the adapter has scanned
 * it (NULL: not scanned). */
static void on_chunk(void *user, const char *data, size_t len, json_t *chunk, const telex_json_facts_t *facts)
{
    chat_t *c = user;
    telex_json_facts_t own;
    if (!chat_running(c))
        return;
    /* Inter-token gaps are measured on the loop's clock (milliseconds, read
     * once per loop iteration): chunks of one read share a time, and the
     * histogram's smallest bound is 5 ms. A clock read per chunk showed in
     * profiles of flat-out runs (bench/findings.md, "Numbers that were in
     * code comments"). */
    uint64_t now_ms = uv_now(&c->gw->worker->loop);
    if (!c->first_event) {
        c->first_event = true;
        c->first_event_ns = uv_hrtime();
        release_request(c); /* no fallback after the first event */
    } else if (now_ms == c->last_chunk_ms && c->in_batch) {
        c->itl_zeros++; /* added once for the whole read (flush_itl_zeros) */
    } else {
        telex_metrics_inter_token_in(c->itl, (double)(now_ms - c->last_chunk_ms) / 1e3);
    }
    c->last_chunk_ms = now_ms;
    /* Not while telex paused the provider (regulate): a chunk still parsed
     * from the last read must not re-arm the idle timeout that the pause
     * stopped; resuming restarts it. */
    if (!c->paused)
        touch_idle_deadline(c);
    if (chunk != NULL) {
        telex_usage_estimator_chunk(&c->est, chunk);
    } else {
        /* a validated chunk without usage or error: count its text (from
         * the adapter's scan when it made one, else scanning it here) */
        if (facts == NULL && telex_json_scan_object(data, len, &own) == 0)
            facts = &own;
        if (facts != NULL) {
            c->est.completion_bytes += facts->completion_bytes;
            c->est.reasoning_bytes += facts->reasoning_bytes;
        }
    }
    if (c->renc != NULL || c->menc != NULL) {
        relay_as_response(c, data, len, chunk, facts);
        return;
    }
    json_t *usage = chunk != NULL ? json_object_get(chunk, "usage") : NULL; /* (most chunks: no tree) */
    char *stripped = NULL;
    if (usage != NULL && !json_is_null(usage)) {
        /* adds cost_usd to the usage object */
        if (telex_usage_annotate(chunk, &c->model->routes[c->route], &c->tokens, &c->cost) == 1)
            c->has_usage = true;
        json_decref(c->usage);
        c->usage = json_incref(usage);
        if (c->wants_usage && c->has_usage && (stripped = telex_usage_dump(chunk)) != NULL) {
            data = stripped;
            len = strlen(stripped);
        } else if (!c->wants_usage) {
            /* telex asked for usage; the client did not: drop it. */
            if (json_array_size(json_object_get(chunk, "choices")) == 0)
                return;
            json_t *copy = json_copy(chunk);
            json_object_del(copy, "usage");
            stripped = telex_json_dumps(copy, JSON_COMPACT | JSON_PRESERVE_ORDER);
            json_decref(copy);
            if (stripped != NULL) {
                data = stripped;
                len = strlen(stripped);
            }
        }
    }
    const char *why;
    if (c->state == CHAT_CALLING && telex_chat_commit(c, &why) != 0) {
        free(stripped);
        telex_chat_fail_commit(c, why);
        return;
    }
    /* telex asked the provider for usage; a client that did not must not
     * see the "usage":null an OpenAI provider then puts in every chunk. */
    size_t cut_from = 0, cut_to = 0;
    if (!c->wants_usage && stripped == NULL && facts != NULL && facts->null_usage_to != 0) {
        cut_from = facts->null_usage_from;
        cut_to = facts->null_usage_to;
    }
    int rc = append_event_cut(c, data, len, stripped == NULL && facts != NULL && !facts->line_breaks, cut_from,
                              cut_to);
    free(stripped);
    if (rc != 0) {
        end_log_full(c);
        return;
    }
    regulate(c);
}

static void on_done(void *user)
{
    chat_t *c = user;
    c->up = NULL;
    if (!chat_running(c))
        return;
    const char *why;
    if (c->state == CHAT_CALLING && telex_chat_commit(c, &why) != 0) {
        telex_chat_fail_commit(c, why);
        return;
    }
    if (c->renc != NULL || c->menc != NULL) {
        /* the closing events (Responses': the whole Response again) */
        int rc = c->renc != NULL ? telex_responses_enc_finish(c->renc) : telex_messages_enc_finish(c->menc);
        if (rc != 0) {
            end_log_full(c);
            return;
        }
    } else {
        static const char done[] = "[DONE]";
        append_event(c, done, sizeof(done) - 1, 1);
    }
    finish(c, "ok");
}

static int may_fall_back(const telex_upstream_failure_t *f)
{
    switch (f->kind) {
    case TELEX_UPSTREAM_CONNECT:
    case TELEX_UPSTREAM_TIMEOUT:
    case TELEX_UPSTREAM_CUT:
        return 1;
    case TELEX_UPSTREAM_STATUS:
        return f->status == 429 || f->status >= 500;
    default:
        return 0;
    }
}

/* The provider refused the gateway's own credentials: the operator's
 * problem, so 502 and a code that says so (a 401 would read as a bad telex
 * key); the detail goes to the log, never the provider's text. */
static void respond_provider_auth_failed(chat_t *c, int status)
{
    telex_log_event("error", "provider refused the gateway's credentials", "\"provider\":\"%s\",\"status\":%d",
                    c->provider_name, status);
    char msg[200];
    snprintf(msg, sizeof msg,
             "The provider refused the gateway's credentials (HTTP %d). This is a gateway configuration problem; "
             "its operator has the details in the log.",
             status);
    respond_error_json(c, 502, "upstream_error", "provider_auth_failed", msg);
}

/* Before commit: the failure becomes the response's status and body. */
static void respond_upstream_failure(chat_t *c, const telex_upstream_failure_t *f)
{
    if (c->req == NULL)
        return;
    if (f->kind == TELEX_UPSTREAM_STATUS && f->status == 429) {
        if (f->retry_after && f->retry_after[0])
            telex_add_header(c->req, "retry-after", f->retry_after);
        respond_error_json(c, 429, "rate_limit_error", "upstream_rate_limited", f->message);
        return;
    }
    if (f->kind == TELEX_UPSTREAM_STATUS && telex_provider_refused_credentials(f->status)) {
        respond_provider_auth_failed(c, f->status);
        return;
    }
    if (f->kind == TELEX_UPSTREAM_STATUS && f->status < 500) {
        /* The provider refused the request itself (bad parameter, ...):
         * relay its status and, when it is OpenAI-shaped, its body (with
         * any secret in it masked). */
        json_t *body = f->body ? telex_json_loadb(f->body, f->body_len, 0, NULL) : NULL;
        char *masked = json_is_object(json_object_get(body, "error"))
                           ? telex_secrets_masked_copy(c->gw->gateway->config, f->body, f->body_len)
                           : NULL;
        if (masked != NULL && c->front == TELEX_FRONT_MESSAGES) {
            /* the provider's message, in Anthropic's error shape */
            json_t *mj = telex_json_loadb(masked, f->body_len, 0, NULL);
            const char *m = json_string_value(json_object_get(json_object_get(mj, "error"), "message"));
            respond_error_json(c, f->status, "invalid_request_error", "upstream_rejected", m != NULL ? m : f->message);
            json_decref(mj);
        } else if (masked != NULL) {
            c->status = f->status;
            telex_respond(c->req, f->status, "application/json", masked, f->body_len);
            c->inline_bytes = f->body_len;
        } else {
            respond_error_json(c, f->status, "invalid_request_error", "upstream_rejected", f->message);
        }
        free(masked);
        json_decref(body);
        return;
    }
    int status = f->kind == TELEX_UPSTREAM_TIMEOUT ? 504 : 502;
    respond_error_json(c, status, "upstream_error", telex_upstream_failure_name(f->kind), f->message);
}

static void on_failure(void *user, const telex_upstream_failure_t *f)
{
    chat_t *c = user;
    c->up = NULL;
    if (!chat_running(c))
        return;
    snprintf(c->error_kind, sizeof(c->error_kind), "%s", telex_upstream_failure_name(f->kind));
    telex_metrics_upstream_error(metrics_of(c), c->provider_name, c->error_kind);
    if (!c->first_event && may_fall_back(f) && c->route + 1 < c->model->n_routes && !c->gw->shutting_down) {
        telex_log_event("warn", "falling back", "\"from\":\"%s\",\"error\":\"%s\",\"status\":%d", c->provider_name,
                        c->error_kind, f->status);
        telex_metrics_fallback(metrics_of(c), c->model_name, c->provider_name);
        c->route++;
        c->fallbacks++;
        /* the next provider gets its own idle_timeout (before commit, a stream's
         * deadline is still the commit timeout, which is about the client) */
        if (!c->stream_mode || c->state == CHAT_COMMITTED)
            telex_chat_restart_idle_deadline(c);
        telex_chat_start_route(c);
        return;
    }
    if (c->state == CHAT_CALLING) {
        respond_upstream_failure(c, f);
        finish(c, "upstream_error");
    } else {
        end_with_error_event(c, "upstream_error", telex_upstream_failure_name(f->kind), f->message,
                             "upstream_error");
    }
}

static void on_response(void *user, int status, const char *body, size_t len)
{
    chat_t *c = user;
    c->up = NULL;
    if (!chat_running(c) || c->req == NULL)
        return;
    if (telex_provider_refused_credentials(status)) {
        respond_provider_auth_failed(c, status);
        finish(c, "upstream_error");
        return;
    }
    c->status = status;
    c->first_event = true;
    c->first_event_ns = uv_hrtime();
    char *masked = NULL;
    if (status >= 400) /* a provider's error text may echo the key it was given */
        body = masked = telex_secrets_masked_copy(c->gw->gateway->config, body, len);
    json_t *j = telex_json_loadb(body, len, 0, NULL);
    json_t *usage = json_object_get(j, "usage");
    char *annotated = NULL;
    telex_usage_estimator_chunk(&c->est, j);
    if (status < 300 && telex_usage_annotate(j, &c->model->routes[c->route], &c->tokens, &c->cost) == 1) {
        c->has_usage = true;
        annotated = telex_usage_dump(j);
    }
    if (json_is_object(usage))
        c->usage = json_incref(usage);
    if (c->front == TELEX_FRONT_MESSAGES && status < 300 && j != NULL) {
        char id[TELEX_STREAM_ID_LEN + 8];
        snprintf(id, sizeof id, "msg_%s", c->stream->id + 3);
        char *msg = telex_messages_from_completion(j, id, c->model_name);
        if (msg != NULL) {
            free(annotated);
            annotated = msg;
        }
        if (c->ignored != NULL)
            telex_add_header(c->req, "x-telex-ignored", c->ignored);
    } else if (c->front == TELEX_FRONT_MESSAGES && status >= 400) {
        /* an OpenAI-shaped provider error, in Anthropic's shape */
        const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        char copy[400];
        snprintf(copy, sizeof copy, "%s", m != NULL ? m : "the provider refused the request");
        json_decref(j);
        free(annotated);
        free(masked);
        respond_error_json(c, status, "invalid_request_error", NULL, copy);
        finish(c, "ok");
        return;
    }
    if (c->front == TELEX_FRONT_RESPONSES && status < 300 && j != NULL) {
        /* the chat.completion (cost added) as a Response object */
        char id[TELEX_STREAM_ID_LEN + 8];
        snprintf(id, sizeof id, "resp_%s", c->stream->id + 3);
        char *resp = telex_responses_from_completion(j, id, c->model_name, c->resp_echo, (int64_t)time(NULL));
        if (resp != NULL) {
            free(annotated);
            annotated = resp;
        }
        if (c->ignored != NULL)
            telex_add_header(c->req, "x-telex-ignored", c->ignored);
    }
    json_decref(j);
    if (annotated != NULL) {
        body = annotated;
        len = strlen(annotated);
    }
    telex_respond(c->req, status, "application/json", body, len);
    c->inline_bytes = len;
    free(annotated);
    free(masked);
    finish(c, "ok");
}

/* A read's chunks: their readers are woken once, after the last (a flat-out
 * provider brings dozens of events per read; a wake-up each was a lock and
 * a send per event). */
static void on_batch(void *user, int begin)
{
    chat_t *c = user;
    c->in_batch = begin != 0;
    if (!begin)
        flush_itl_zeros(c);
    if (!begin && c->notify_pending) {
        c->notify_pending = false;
        telex_stream_notify(c->stream);
    }
}

static const telex_upstream_sink_t sink = {on_chunk, on_done, on_failure, on_response, on_batch};

static void on_deadline(uv_timer_t *timer)
{
    chat_t *c = timer->data;
    if (!chat_running(c))
        return;
    const telex_streaming_config_t *s = &c->gw->gateway->config->streaming;
    if (c->idle_armed) {
        /* Chunks since the timer was armed moved the deadline (lazily). */
        uint64_t limit = idle_timeout_ms(c), quiet = uv_now(timer->loop) - c->idle_from_ms;
        if (quiet < limit) {
            uv_timer_start(timer, on_deadline, limit - quiet, 0);
            return;
        }
    }
    if (c->state == CHAT_CALLING && c->stream_mode) {
        /* commit_timeout: answer with headers now, keep waiting for data. */
        const char *why;
        if (telex_chat_commit(c, &why) != 0) {
            telex_chat_fail_commit(c, why);
            return;
        }
        telex_chat_restart_idle_deadline(c);
        return;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "the provider sent nothing for %g seconds", s->idle_timeout_seconds);
    snprintf(c->error_kind, sizeof(c->error_kind), "idle_timeout");
    cancel_upstream(c);
    if (c->state == CHAT_COMMITTED) {
        end_with_error_event(c, "upstream_error", "idle_timeout", msg, "upstream_error");
    } else {
        respond_error_json(c, 504, "upstream_error", "idle_timeout", msg);
        finish(c, "upstream_error");
    }
}

/* ------------------------------------------------------------ producer wake */

static void on_grace_over(uv_timer_t *timer)
{
    chat_t *c = timer->data;
    if (!chat_running(c) || telex_stream_subscribers(c->stream, NULL) > 0)
        return;
    snprintf(c->error_kind, sizeof(c->error_kind), "abandoned");
    end_with_error_event(c, "cancelled", "abandoned",
                         "every client left and none came back within resume.grace_seconds", "client_gone");
}

/* Lets a paused provider go on when must_pause no longer holds. */
static void unpause_if_possible(chat_t *c)
{
    if (!c->paused || c->up == NULL)
        return;
    int tight = over_budget(c);
    if (tight)
        tight = evict_ended(c->gw); /* ended answers nobody reads lose their history first */
    if (c->resumable && (telex_log_retained(c->stream->log) >= c->resume_below || tight))
        release_history(c); /* a background answer whose last reader left: all of it */
    if (may_go_on(c)) {
        c->paused = false;
        atomic_store(&c->stream->wants_acks, 0);
        telex_chat_restart_idle_deadline(c);
        telex_upstream_resume(c->up);
    }
}

/* Subscribers attached, left or advanced; or a DELETE arrived. */
void telex_chat_on_wake(telex_wakeup_t *w)
{
    chat_t *c = H2O_STRUCT_FROM_MEMBER(chat_t, wake, w);
    if (!chat_running(c))
        return;
    if (atomic_load(&c->stream->cancel_requested)) {
        snprintf(c->error_kind, sizeof(c->error_kind), "cancelled");
        end_with_error_event(c, "cancelled", "cancelled", "the stream was cancelled (DELETE /v1/streams/{id})",
                             "cancelled");
        return;
    }
    unpause_if_possible(c);
    /* Resuming the provider parses what waited in its read buffer at once:
     * that may end the answer (finish arms the retention timer on c->life),
     * and the grace logic below must not stop or replace that timer, or
     * the ended stream stays registered with its log for good (the soak's
     * 15,872 bytes that outlived retention). */
    if (c->state != CHAT_COMMITTED)
        return;
    if (c->background) {
        /* runs to its end with or without readers (cancel or DELETE stop it) */
    } else if (telex_stream_subscribers(c->stream, NULL) == 0) {
        double grace = c->resumable ? c->gw->gateway->config->resume.grace_seconds : 0;
        if (!uv_is_active((uv_handle_t *)c->life))
            uv_timer_start(c->life, on_grace_over, (uint64_t)(grace * 1000), 0);
    } else {
        uv_timer_stop(c->life);
    }
}

/* ------------------------------------------------------------ routing */

void telex_chat_start_route(chat_t *c)
{
    const telex_route_t *route = &c->model->routes[c->route];
    c->provider_name = route->provider->name;
    c->itl = telex_metrics_inter_token_series(metrics_of(c), c->model_name, c->provider_name);
    json_t *up_body =
        telex_chat_upstream_body(c->body, telex_route_upstream_model(route, c->model_name), c->stream_mode);
    c->in_batch = false; /* a call cancelled mid-read (a fallback) never ended its batch */
    c->up = telex_upstream_start(&c->gw->upstream_env, route->provider, up_body, c->stream_mode, &sink, c);
    json_decref(up_body);
    /* The parsed request is kept only for a fallback to the next route. */
    if (c->route + 1 >= c->model->n_routes)
        release_request(c);
    if (c->up == NULL) {
        respond_error_json(c, 500, "server_error", NULL, "could not start the upstream request");
        finish(c, "error");
    }
}

/* ------------------------------------------------------------ sweeps */

void telex_chat_sweep(gateway_worker_t *gw)
{
    for (h2o_linklist_t *l = gw->chats.next, *next; l != &gw->chats; l = next) {
        next = l->next; /* finish may release c */
        chat_t *c = chat_of(l);
        if (!chat_running(c) && !uv_is_active((uv_handle_t *)c->life)) {
            /* An ended chat still on the list is waiting for its retention
             * (finish released every other one): without the timer it would
             * hold its stream and log for good. A bug (debug builds stop
             * here); release builds say so and arm the retention again. */
            assert(!"an ended stream lost its retention timer");
            telex_log_event("error", "an ended stream lost its retention timer", "\"stream_id\":\"%s\"",
                            c->stream->id);
            uv_timer_start(c->life, on_retention_end,
                           (uint64_t)(gw->gateway->config->resume.retention_seconds * 1000), 0);
            continue;
        }
        if (!chat_running(c) || c->req == NULL || !telex_client_has_gone(c->req))
            continue;
        h2o_req_t *req = c->req;
        finish(c, "client_gone");
        c->status = 499;
        telex_respond_error(req, 499, "invalid_request_error", "client_closed", NULL, "the client closed the request");
    }
    if (worker_over_budget(gw))
        evict_ended(gw);
    /* A provider paused for the budget with nobody to wake it (a stream in
     * its grace period, a background response nobody follows) goes on once
     * the budget allows it. */
    if (gw->gateway->config->resume.max_total_bytes != 0) {
        for (h2o_linklist_t *l = gw->chats.next, *next; l != &gw->chats; l = next) {
            next = l->next;
            chat_t *c = chat_of(l);
            if (c->paused && chat_running(c))
                unpause_if_possible(c);
        }
    }
    telex_subscribers_sweep(gw);
}

size_t telex_chat_running(gateway_worker_t *gw)
{
    size_t n = 0;
    for (h2o_linklist_t *l = gw->chats.next; l != &gw->chats; l = l->next)
        n += chat_running(chat_of(l));
    return n;
}

void telex_chat_end_all(gateway_worker_t *gw, const char *why)
{
    for (h2o_linklist_t *l = gw->chats.next, *next; l != &gw->chats; l = next) {
        next = l->next; /* finish may release c */
        chat_t *c = chat_of(l);
        if (!chat_running(c))
            continue;
        snprintf(c->error_kind, sizeof(c->error_kind), "shutdown");
        cancel_upstream(c);
        if (c->state == CHAT_COMMITTED) {
            end_with_error_event(c, "server_error", "shutting_down", why, "shutdown");
        } else {
            if (c->req != NULL)
                telex_add_header(c->req, "retry-after", "1");
            respond_error_json(c, 503, "server_error", "shutting_down", why);
            finish(c, "shutdown");
        }
    }
}
