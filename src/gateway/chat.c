/*
 * gateway/chat.c — POST /v1/chat/completions: validate, route, relay.
 *
 * A chat lives from the request to the moment h2o disposes of it. Its
 * streamed life has two phases:
 *   - before commit: no response yet. An upstream failure that allows it
 *     (connect error, timeout, 429, 5xx, a stream cut before its first
 *     event) falls back to the model's next route; the last failure becomes
 *     a real HTTP status with an OpenAI-style error body.
 *   - after commit (the first upstream event, or commit_timeout, whichever
 *     comes first): 200 text/event-stream. Each upstream chunk is written as
 *     one SSE event at once; silence is filled with ": keepalive" comments;
 *     the end is `data: [DONE]` only when the upstream really finished —
 *     otherwise a final `data: {"error":{...}}` event and no [DONE].
 * The client leaving (h2o's stop, an HTTP/2 reset, or the HTTP/1 socket
 * probe in telex_chat_sweep) cancels the upstream at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <telex/sse.h>

#include "gateway/chat_request.h"
#include "gateway/gateway.h"
#include "http/respond.h"
#include "stream/sender.h"
#include "util/log.h"

#define HIGH_WATER (256u * 1024)
#define LOW_WATER (64u * 1024)

typedef struct chat {
    h2o_generator_t generator; /* first: h2o hands it back to proceed/stop */
    struct chat *prev, *next;
    gateway_worker_t *gw;
    h2o_req_t *req; /* NULL once h2o disposed of the request */
    json_t *body;   /* the client's request */
    const telex_model_t *model;
    size_t route;
    telex_upstream_t *up; /* NULL when no upstream call is running */
    telex_sender_t out;
    uv_timer_t *deadline;  /* commit timeout, then idle timeout */
    uv_timer_t *keepalive; /* silence filler after commit */
    int open_handles;
    int stream;
    int wants_usage;
    int committed;
    int first_event;
    int finished;
    int paused;
    int counted; /* holds a slot in active_streams */
    int status;
    const char *outcome;
    char error_kind[24];
    uint64_t started_ns;
    uint64_t first_event_ns;
    size_t events;
    size_t inline_bytes; /* body of a response sent in one piece (error, plain answer) */
    size_t fallbacks;
    json_t *usage;
    char method[16];
    char path[128];
    char model_name[128];
    char provider_name[64];
} chat_t;

static void start_route(chat_t *c);

/* ------------------------------------------------------------ lifetime */

static void on_handle_closed(uv_handle_t *handle)
{
    chat_t *c = handle->data;
    free(handle);
    if (--c->open_handles == 0) {
        json_decref(c->body);
        json_decref(c->usage);
        telex_sender_dispose(&c->out);
        free(c);
    }
}

static void stop_timers(chat_t *c)
{
    uv_timer_stop(c->deadline);
    uv_timer_stop(c->keepalive);
}

static void cancel_upstream(chat_t *c)
{
    if (c->up != NULL) {
        telex_upstream_t *up = c->up;
        c->up = NULL;
        telex_upstream_cancel(up);
    }
}

static void finish(chat_t *c, const char *outcome)
{
    if (c->finished)
        return;
    c->finished = 1;
    c->outcome = outcome;
    stop_timers(c);
    cancel_upstream(c);
    if (c->counted) {
        c->counted = 0;
        atomic_fetch_sub(&c->gw->gateway->active_streams, 1);
    }
}

static double ms_rounded(double ns)
{
    return (double)(long long)(ns / 1e3) / 1e3;
}

static void log_request(chat_t *c)
{
    double now = (double)uv_hrtime();
    json_t *line = json_pack("{s:s,s:s,s:s,s:s,s:i}", "level", "info", "msg", "request", "method", c->method, "path",
                             c->path, "status", c->status);
    if (line == NULL)
        return;
    json_object_set_new(line, "model", json_string(c->model_name));
    json_object_set_new(line, "provider", c->provider_name[0] ? json_string(c->provider_name) : json_null());
    json_object_set_new(line, "stream", json_boolean(c->stream));
    json_object_set_new(line, "ttft_ms",
                        c->first_event ? json_real(ms_rounded((double)(c->first_event_ns - c->started_ns))) : json_null());
    json_object_set_new(line, "duration_ms", json_real(ms_rounded(now - (double)c->started_ns)));
    json_object_set_new(line, "events", json_integer((json_int_t)c->events));
    json_object_set_new(line, "bytes", json_integer((json_int_t)(c->committed ? c->out.bytes_sent : c->inline_bytes)));
    json_object_set_new(line, "fallbacks", json_integer((json_int_t)c->fallbacks));
    json_object_set_new(line, "outcome", json_string(c->outcome ? c->outcome : "client_gone"));
    if (c->error_kind[0] && strcmp(c->outcome ? c->outcome : "", "ok") != 0)
        json_object_set_new(line, "error", json_string(c->error_kind));
    if (c->usage != NULL)
        json_object_set(line, "usage", c->usage);
    telex_log_json(line);
}

/* h2o is done with the request (response sent, or client gone). */
static void on_req_disposed(void *p)
{
    chat_t *c = *(chat_t **)p;
    c->req = NULL;
    c->out.req = NULL;
    finish(c, "client_gone");
    log_request(c);
    gateway_worker_t *gw = c->gw;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        gw->chats = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    gw->n_chats--;
    uv_close((uv_handle_t *)c->deadline, on_handle_closed);
    uv_close((uv_handle_t *)c->keepalive, on_handle_closed);
}

/* ------------------------------------------------------------ responding */

static void respond_error_json(chat_t *c, int status, const char *type, const char *code, const char *message)
{
    if (c->req == NULL)
        return;
    c->status = status;
    telex_respond_error(c->req, status, type, code, NULL, "%s", message);
    c->inline_bytes = c->req->bytes_sent;
}

static void on_keepalive(uv_timer_t *timer)
{
    chat_t *c = timer->data;
    static const char ping[] = ": keepalive\n\n";
    if (c->req != NULL && !c->finished)
        telex_sender_append(&c->out, ping, sizeof(ping) - 1);
}

static void restart_keepalive(chat_t *c)
{
    uint64_t ms = (uint64_t)(c->gw->gateway->config->streaming.keepalive_seconds * 1000);
    if (ms > 0)
        uv_timer_start(c->keepalive, on_keepalive, ms, ms);
}

static void on_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    chat_t *c = (chat_t *)generator;
    telex_sender_on_proceed(&c->out);
    if (c->paused && c->up != NULL && telex_sender_backlog(&c->out) < LOW_WATER) {
        c->paused = 0;
        telex_upstream_resume(c->up);
    }
}

static void on_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    chat_t *c = (chat_t *)generator;
    finish(c, "client_gone");
}

static void commit(chat_t *c)
{
    h2o_req_t *req = c->req;
    c->committed = 1;
    c->status = 200;
    req->res.status = 200;
    req->res.reason = "OK";
    telex_add_header(req, "content-type", "text/event-stream; charset=utf-8");
    telex_add_header(req, "cache-control", "no-cache");
    telex_add_header(req, "x-accel-buffering", "no");
    c->generator.proceed = on_proceed;
    c->generator.stop = on_stop;
    h2o_start_response(req, &c->generator);
    const telex_config_t *cfg = c->gw->gateway->config;
    telex_sender_init(&c->out, req, 4 * HIGH_WATER + 2 * cfg->limits.max_event_bytes);
    restart_keepalive(c);
}

static void send_event(chat_t *c, const char *data, size_t len)
{
    telex_sse_out_event_t ev = {.retry = -1, .data = data, .data_len = len};
    if (telex_sender_append_event(&c->out, &ev) != 0) {
        /* Only a reader far slower than the upstream gets here: pausing the
         * upstream at HIGH_WATER keeps the backlog well below the limit. */
        snprintf(c->error_kind, sizeof(c->error_kind), "client_too_slow");
        telex_sender_close(&c->out, 1);
        finish(c, "client_too_slow");
        return;
    }
    c->events++;
    restart_keepalive(c);
    if (!c->paused && c->up != NULL && telex_sender_backlog(&c->out) > HIGH_WATER) {
        c->paused = 1;
        telex_upstream_pause(c->up);
    }
}

/* After commit: the answer ends with an error event and no [DONE]. */
static void end_with_error_event(chat_t *c, const char *type, const char *code, const char *message)
{
    json_t *err = json_pack("{s:{s:s,s:s,s:s}}", "error", "message", message, "type", type, "code", code);
    char *text = err ? json_dumps(err, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(err);
    if (text != NULL) {
        send_event(c, text, strlen(text));
        free(text);
    }
    telex_sender_close(&c->out, 0);
}

/* ------------------------------------------------------------ upstream sink */

static void on_deadline(uv_timer_t *timer);

static void restart_deadline(chat_t *c, double seconds)
{
    uv_timer_start(c->deadline, on_deadline, (uint64_t)(seconds * 1000), 0);
}

static void on_chunk(void *user, const char *data, size_t len, json_t *chunk)
{
    chat_t *c = user;
    if (c->finished || c->req == NULL)
        return;
    if (!c->first_event) {
        c->first_event = 1;
        c->first_event_ns = uv_hrtime();
    }
    restart_deadline(c, c->gw->gateway->config->streaming.idle_timeout_seconds);
    json_t *usage = json_object_get(chunk, "usage");
    char *stripped = NULL;
    if (usage != NULL && !json_is_null(usage)) {
        json_decref(c->usage);
        c->usage = json_incref(usage);
        if (!c->wants_usage) {
            /* telex asked for usage; the client did not: drop it. */
            if (json_array_size(json_object_get(chunk, "choices")) == 0)
                return;
            json_t *copy = json_copy(chunk);
            json_object_del(copy, "usage");
            stripped = json_dumps(copy, JSON_COMPACT | JSON_PRESERVE_ORDER);
            json_decref(copy);
            if (stripped != NULL) {
                data = stripped;
                len = strlen(stripped);
            }
        }
    }
    if (!c->committed)
        commit(c);
    send_event(c, data, len);
    free(stripped);
}

static void on_done(void *user)
{
    chat_t *c = user;
    c->up = NULL;
    if (c->finished || c->req == NULL)
        return;
    if (!c->committed)
        commit(c);
    static const char done[] = "[DONE]";
    send_event(c, done, sizeof(done) - 1);
    telex_sender_close(&c->out, 0);
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

/* Before commit: the failure becomes the response's status and body. */
static void respond_upstream_failure(chat_t *c, const telex_upstream_failure_t *f)
{
    if (f->kind == TELEX_UPSTREAM_STATUS && f->status == 429) {
        if (f->retry_after && f->retry_after[0])
            telex_add_header(c->req, "retry-after", f->retry_after);
        respond_error_json(c, 429, "rate_limit_error", "upstream_rate_limited", f->message);
        return;
    }
    if (f->kind == TELEX_UPSTREAM_STATUS && f->status < 500) {
        /* The provider refused the request itself (bad parameter, ...):
         * relay its status and, when it is OpenAI-shaped, its body. */
        json_t *body = f->body ? json_loadb(f->body, f->body_len, 0, NULL) : NULL;
        if (json_is_object(json_object_get(body, "error"))) {
            c->status = f->status;
            telex_respond(c->req, f->status, "application/json", f->body, f->body_len);
            c->inline_bytes = f->body_len;
        } else {
            respond_error_json(c, f->status, "invalid_request_error", "upstream_rejected", f->message);
        }
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
    if (c->finished || c->req == NULL)
        return;
    snprintf(c->error_kind, sizeof(c->error_kind), "%s", telex_upstream_failure_name(f->kind));
    if (!c->first_event && may_fall_back(f) && c->route + 1 < c->model->n_routes && !c->gw->shutting_down) {
        telex_log_event("warn", "falling back", "\"from\":\"%s\",\"error\":\"%s\",\"status\":%d", c->provider_name,
                        c->error_kind, f->status);
        c->route++;
        c->fallbacks++;
        /* the next provider gets its own idle_timeout (before commit, a stream's
         * deadline is still the commit timeout, which is about the client) */
        if (!c->stream || c->committed)
            restart_deadline(c, c->gw->gateway->config->streaming.idle_timeout_seconds);
        start_route(c);
        return;
    }
    if (!c->committed)
        respond_upstream_failure(c, f);
    else
        end_with_error_event(c, "upstream_error", telex_upstream_failure_name(f->kind), f->message);
    finish(c, "upstream_error");
}

static void on_response(void *user, int status, const char *body, size_t len)
{
    chat_t *c = user;
    c->up = NULL;
    if (c->finished || c->req == NULL)
        return;
    c->status = status;
    c->first_event = 1;
    c->first_event_ns = uv_hrtime();
    json_t *j = json_loadb(body, len, 0, NULL);
    json_t *usage = json_object_get(j, "usage");
    if (json_is_object(usage))
        c->usage = json_incref(usage);
    json_decref(j);
    telex_respond(c->req, status, "application/json", body, len);
    c->inline_bytes = len;
    finish(c, "ok");
}

static const telex_upstream_sink_t sink = {on_chunk, on_done, on_failure, on_response};

static void on_deadline(uv_timer_t *timer)
{
    chat_t *c = timer->data;
    if (c->finished || c->req == NULL)
        return;
    const telex_streaming_config_t *s = &c->gw->gateway->config->streaming;
    if (!c->committed && c->stream) {
        /* commit_timeout: answer with headers now, keep waiting for data. */
        commit(c);
        telex_sender_flush(&c->out);
        restart_deadline(c, s->idle_timeout_seconds);
        return;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "the provider sent nothing for %g seconds", s->idle_timeout_seconds);
    snprintf(c->error_kind, sizeof(c->error_kind), "idle_timeout");
    cancel_upstream(c);
    if (c->committed)
        end_with_error_event(c, "upstream_error", "idle_timeout", msg);
    else
        respond_error_json(c, 504, "upstream_error", "idle_timeout", msg);
    finish(c, "upstream_error");
}

/* ------------------------------------------------------------ routing */

static void start_route(chat_t *c)
{
    const telex_route_t *route = &c->model->routes[c->route];
    snprintf(c->provider_name, sizeof(c->provider_name), "%s", route->provider->name);
    json_t *up_body = telex_chat_upstream_body(c->body, telex_route_upstream_model(route, c->model_name), c->stream);
    if (up_body == NULL) {
        respond_error_json(c, 500, "server_error", NULL, "out of memory");
        finish(c, "error");
        return;
    }
    c->up = telex_upstream_start(&c->gw->upstream_env, route->provider, up_body, c->stream, &sink, c);
    json_decref(up_body);
    if (c->up == NULL) {
        respond_error_json(c, 500, "server_error", NULL, "could not start the upstream request");
        finish(c, "error");
    }
}

int telex_chat_handle(gateway_worker_t *gw, h2o_req_t *req)
{
    const telex_config_t *cfg = gw->gateway->config;
    uint64_t started = uv_hrtime();
    if (req->entity.len > cfg->limits.max_body_bytes) {
        telex_respond_error(req, 413, "invalid_request_error", "request_too_large", NULL,
                            "The request body is %zu bytes; the limit is %llu.", req->entity.len,
                            (unsigned long long)cfg->limits.max_body_bytes);
        telex_gateway_log_response(req, NULL, started);
        return 0;
    }
    telex_chat_request_t parsed;
    char msg[512];
    const char *param = NULL;
    int status = telex_chat_request_parse(req->entity.base, req->entity.len, &parsed, msg, sizeof(msg), &param);
    if (status != 0) {
        telex_respond_error(req, status, "invalid_request_error", status == 400 ? "invalid_request" : NULL, param,
                            "%s", msg);
        telex_gateway_log_response(req, NULL, started);
        return 0;
    }
    const telex_model_t *model = telex_config_find_model(cfg, parsed.model);
    if (model == NULL) {
        telex_respond_error(req, 404, "invalid_request_error", "model_not_found", "model",
                            "The model '%.100s' does not exist on this gateway. GET /v1/models lists the models.",
                            parsed.model);
        telex_gateway_log_response(req, parsed.model, started);
        json_decref(parsed.body);
        return 0;
    }
    if (gw->shutting_down) {
        telex_add_header(req, "retry-after", "1");
        telex_respond_error(req, 503, "server_error", "shutting_down", NULL, "The gateway is shutting down.");
        telex_gateway_log_response(req, parsed.model, started);
        json_decref(parsed.body);
        return 0;
    }
    size_t active = atomic_fetch_add(&gw->gateway->active_streams, 1);
    if (active >= cfg->limits.max_concurrent_streams) {
        atomic_fetch_sub(&gw->gateway->active_streams, 1);
        telex_add_header(req, "retry-after", "1");
        telex_respond_error(req, 503, "server_error", "too_many_streams", NULL,
                            "The gateway is at its limit of %llu concurrent streams; retry shortly.",
                            (unsigned long long)cfg->limits.max_concurrent_streams);
        telex_gateway_log_response(req, parsed.model, started);
        json_decref(parsed.body);
        return 0;
    }

    chat_t *c = calloc(1, sizeof(*c));
    uv_timer_t *t1 = malloc(sizeof(uv_timer_t)), *t2 = malloc(sizeof(uv_timer_t));
    chat_t **link = c ? h2o_mem_alloc_shared(&req->pool, sizeof(chat_t *), on_req_disposed) : NULL;
    if (c == NULL || t1 == NULL || t2 == NULL || link == NULL) {
        atomic_fetch_sub(&gw->gateway->active_streams, 1);
        free(c);
        free(t1);
        free(t2);
        telex_respond_error(req, 500, "server_error", NULL, NULL, "out of memory");
        telex_gateway_log_response(req, parsed.model, started);
        json_decref(parsed.body);
        return 0;
    }
    *link = c;
    c->counted = 1;
    c->gw = gw;
    c->req = req;
    c->body = parsed.body;
    c->model = model;
    c->stream = parsed.stream;
    c->wants_usage = parsed.include_usage;
    c->started_ns = started;
    c->status = 0;
    snprintf(c->method, sizeof(c->method), "%.*s", (int)req->method.len, req->method.base);
    snprintf(c->path, sizeof(c->path), "%.*s", (int)req->path_normalized.len, req->path_normalized.base);
    snprintf(c->model_name, sizeof(c->model_name), "%s", parsed.model);
    c->deadline = t1;
    c->keepalive = t2;
    uv_timer_init(&gw->worker->loop, t1);
    uv_timer_init(&gw->worker->loop, t2);
    t1->data = t2->data = c;
    c->open_handles = 2;
    telex_sender_init(&c->out, req, 0);
    c->next = gw->chats;
    if (gw->chats != NULL)
        gw->chats->prev = c;
    gw->chats = c;
    gw->n_chats++;

    /* A stream commits at commit_timeout, then idles out; a plain request
     * has no commit: its provider may stay silent for idle_timeout (504). */
    restart_deadline(c, c->stream ? cfg->streaming.commit_timeout_seconds : cfg->streaming.idle_timeout_seconds);
    start_route(c);
    return 0;
}

/* ------------------------------------------------------------ sweeps */

void telex_chat_sweep(gateway_worker_t *gw)
{
    for (chat_t *c = gw->chats; c != NULL; c = c->next) {
        if (c->finished || c->req == NULL || !telex_client_has_gone(c->req))
            continue;
        finish(c, "client_gone");
        if (c->committed)
            telex_sender_close(&c->out, 1);
        else
            respond_error_json(c, 499, "invalid_request_error", "client_closed", "the client closed the request");
    }
}

void telex_chat_end_all(gateway_worker_t *gw, const char *why)
{
    for (chat_t *c = gw->chats; c != NULL; c = c->next) {
        if (c->finished || c->req == NULL)
            continue;
        snprintf(c->error_kind, sizeof(c->error_kind), "shutdown");
        cancel_upstream(c);
        if (c->committed) {
            end_with_error_event(c, "server_error", "shutting_down", why);
        } else {
            telex_add_header(c->req, "retry-after", "1");
            respond_error_json(c, 503, "server_error", "shutting_down", why);
        }
        finish(c, "shutdown");
    }
}
