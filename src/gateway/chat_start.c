/*
 * gateway/chat_start.c — POST /v1/chat/completions (and the Responses and
 * Messages front doors, translated to it): validate, admit, start a chat.
 *
 * A request becomes a chat (chat_internal.h) here: the key is checked, the
 * body's size, the translation of a Responses or Messages body into a chat
 * request, the chat request itself (chat_request.c), a "preset:" model, the
 * model, the key's limits and budget (cluster mode: Redis decides first),
 * shutdown and the concurrent-stream limit. Each refusal is answered here,
 * with its status and error body, and logged by access_log.c. An admitted
 * request gets its stream, its chat (timers, wakeup, log bounds, the front
 * door's encoder), its cluster registration, and the call to the model's
 * first route; from then on chat_relay.c produces the answer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/cluster.h"
#include "gateway/access_log.h"
#include "gateway/auth.h"
#include "gateway/chat_internal.h"
#include "gateway/chat_request.h"
#include "gateway/cluster_admit.h"
#include "gateway/gateway.h"
#include "gateway/metrics.h"
#include "gateway/presets.h"
#include "gateway/messages_request.h"
#include "gateway/messages_stream.h"
#include "gateway/responses_request.h"
#include "gateway/responses_stream.h"
#include "gateway/usage.h"
#include "http/respond.h"
#include "util/alloc.h"
#include "util/json_dump.h"
#include "util/json_load.h"

/* Longest method, path and model name kept for logs and accounting. */
#define METHOD_MAX 15
#define PATH_MAX_KEPT 127
#define MODEL_NAME_MAX 127

/* telex's framing for this POST: X-Telex-Event-Ids: 1 / true asks for
 * it, 0 / false declines it, and without the header streaming.event_ids
 * decides. */
int telex_wants_telex_framing(h2o_req_t *req, const telex_config_t *cfg)
{
    h2o_iovec_t v = telex_req_header(req, "x-telex-event-ids");
    if (v.base == NULL)
        return cfg->streaming.event_ids;
    return h2o_memis(v.base, v.len, H2O_STRLIT("1")) || h2o_lcstris(v.base, v.len, H2O_STRLIT("true"));
}

int telex_chat_handle(gateway_worker_t *gw, h2o_req_t *req)
{
    return telex_chat_handle_front(gw, req, req->entity.base, req->entity.len, NULL, TELEX_FRONT_CHAT);
}

int telex_chat_handle_body(gateway_worker_t *gw, h2o_req_t *req, const char *body_bytes, size_t body_len,
                           const char *preset)
{
    return telex_chat_handle_front(gw, req, body_bytes, body_len, preset, TELEX_FRONT_CHAT);
}

static int start_chat(gateway_worker_t *gw, h2o_req_t *req, const char *body_bytes, size_t body_len,
                      const char *preset, telex_grant_t grant, uint64_t started, int front,
                      const telex_responses_request_t *rr);

/* Responses: the client's body as a chat request (text in *chat_text);
 * answers the request itself and returns -1 when it is not one. */
static int translate_responses(gateway_worker_t *gw, h2o_req_t *req, const char *bytes, size_t len,
                               const telex_grant_t *grant, telex_responses_request_t *rr, char **chat_text)
{
    json_error_t jerr;
    char msg[512];
    const char *param = NULL;
    json_t *body = telex_json_loadb(bytes, len, 0, &jerr);
    if (body == NULL) {
        telex_respond_error(req, 400, "invalid_request_error", "invalid_json", NULL,
                            "The body is not valid JSON (%s at line %d, column %d).", jerr.text, jerr.line,
                            jerr.column);
        return -1;
    }
    json_t *history = NULL;
    const char *prev = json_string_value(json_object_get(body, "previous_response_id"));
    if (prev != NULL && (history = telex_responses_history(prev, grant->owner)) == NULL) {
        telex_respond_error(req, 404, "invalid_request_error", "previous_response_not_found", "previous_response_id",
                            "Previous response with id '%.80s' not found (it never existed, is not yours, or is "
                            "older than resume.retention_seconds).",
                            prev);
        json_decref(body);
        return -1;
    }
    int status = telex_responses_request_parse(body, history, rr, msg, sizeof msg, &param);
    if (status == 0 && rr->background && !gw->gateway->config->resume.enabled) {
        status = 400;
        param = "background";
        snprintf(msg, sizeof msg, "background needs resume.enabled: this gateway keeps no answers.");
    }
    json_decref(history);
    json_decref(body);
    if (status == 0 && (*chat_text = telex_json_dumps(rr->chat, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
        status = 500;
    if (status != 0) {
        telex_respond_error(req, status, status == 400 ? "invalid_request_error" : "server_error",
                            status == 400 ? "invalid_request" : NULL, param, "%s",
                            status == 400 ? msg : "The translated request could not be encoded as JSON.");
        telex_responses_request_free(rr);
        return -1;
    }
    return 0;
}

/* Messages: the client's body as a chat request; answers the request
 * itself and returns -1 when it is not one. */
static int translate_messages(h2o_req_t *req, const char *bytes, size_t len, telex_messages_request_t *mr,
                              char **chat_text)
{
    json_error_t jerr;
    char msg[512];
    json_t *body = telex_json_loadb(bytes, len, 0, &jerr);
    if (body == NULL) {
        telex_respond_error(req, 400, "invalid_request_error", NULL, NULL, "The body is not valid JSON (%s).", jerr.text);
        return -1;
    }
    int status = telex_messages_request_parse(body, mr, msg, sizeof msg);
    json_decref(body);
    if (status == 0 && (*chat_text = telex_json_dumps(mr->chat, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
        status = 500;
    if (status != 0) {
        telex_respond_error(req, status, "invalid_request_error", NULL, NULL, "%s",
                            status == 400 ? msg : "The translated request could not be encoded as JSON.");
        telex_messages_request_free(mr);
        return -1;
    }
    return 0;
}

int telex_chat_handle_front(gateway_worker_t *gw, h2o_req_t *req, const char *body_bytes, size_t body_len,
                            const char *preset, int front)
{
    const telex_config_t *cfg = gw->gateway->config;
    telex_services_t *svc = gw->gateway->services;
    uint64_t started = uv_hrtime();
    telex_grant_t grant;
    telex_api_error_t denial;
    char bearer[256]; /* Anthropic's clients send the key as x-api-key */
    h2o_iovec_t authz = front == TELEX_FRONT_MESSAGES ? telex_anthropic_authorization(req, bearer, sizeof bearer)
                                                     : telex_req_header(req, "authorization");
    if (telex_auth_authenticate(svc, authz.base, authz.len, &grant, &denial) != 0) {
        telex_api_error_respond(req, &denial);
        telex_access_log(req, NULL, started);
        return 0;
    }
    if (body_len > cfg->limits.max_body_bytes) {
        telex_respond_error(req, 413, "invalid_request_error", "request_too_large", NULL,
                            "The request body is %zu bytes; the limit is %llu.", body_len,
                            (unsigned long long)cfg->limits.max_body_bytes);
        telex_access_log(req, NULL, started);
        return 0;
    }
    if (front == TELEX_FRONT_MESSAGES) {
        telex_messages_request_t mr;
        char *chat_text = NULL;
        if (translate_messages(req, body_bytes, body_len, &mr, &chat_text) != 0) {
            telex_access_log(req, NULL, started);
            return 0;
        }
        telex_responses_request_t carrier = {0}; /* what start_chat takes from a translated request */
        snprintf(carrier.ignored, sizeof carrier.ignored, "%s", mr.ignored);
        int rc = start_chat(gw, req, chat_text, strlen(chat_text), preset, grant, started, front, &carrier);
        free(chat_text);
        telex_messages_request_free(&mr);
        return rc;
    }
    if (front != TELEX_FRONT_RESPONSES)
        return start_chat(gw, req, body_bytes, body_len, preset, grant, started, front, NULL);
    telex_responses_request_t rr;
    char *chat_text = NULL;
    if (translate_responses(gw, req, body_bytes, body_len, &grant, &rr, &chat_text) != 0) {
        telex_access_log(req, NULL, started);
        return 0;
    }
    int rc = start_chat(gw, req, chat_text, strlen(chat_text), preset, grant, started, front, &rr);
    free(chat_text);
    telex_responses_request_free(&rr);
    return rc;
}

static int start_chat(gateway_worker_t *gw, h2o_req_t *req, const char *body_bytes, size_t body_len,
                      const char *preset, telex_grant_t grant, uint64_t started, int front,
                      const telex_responses_request_t *rr)
{
    const telex_config_t *cfg = gw->gateway->config;
    telex_services_t *svc = gw->gateway->services;
    telex_api_error_t denial;
    telex_chat_request_t parsed;
    char msg[512];
    const char *param = NULL;
    int status = telex_chat_request_parse(body_bytes, body_len, &parsed, msg, sizeof(msg), &param);
    if (status != 0) {
        telex_respond_error(req, status, "invalid_request_error", status == 400 ? "invalid_request" : NULL, param,
                            "%s", msg);
        telex_access_log(req, NULL, started);
        return 0;
    }
    char preset_name[72] = "";
    if (preset != NULL) {
        snprintf(preset_name, sizeof preset_name, "%.64s", preset);
    } else if (strncmp(parsed.model, "preset:", 7) == 0) {
        snprintf(preset_name, sizeof preset_name, "%.64s", parsed.model + 7);
        size_t n = 0;
        char *expanded = telex_presets_apply_text(telex_services_presets(svc), parsed.body, cfg->limits.max_body_bytes,
                                                  &n, &denial);
        json_decref(parsed.body);
        if (expanded != NULL) {
            status = telex_chat_request_parse(expanded, n, &parsed, msg, sizeof(msg), &param);
            free(expanded);
            if (status != 0)
                telex_api_error_set(&denial, status, "invalid_request_error", "invalid_request", param, "%s", msg);
        }
        if (expanded == NULL || status != 0) {
            telex_api_error_respond(req, &denial);
            telex_access_log(req, NULL, started);
            return 0;
        }
    }
    const telex_model_t *model = telex_config_find_model(cfg, parsed.model);
    if (model == NULL) {
        telex_respond_error(req, 404, "invalid_request_error", "model_not_found", "model",
                            "The model '%.100s' does not exist on this gateway. GET /v1/models lists the models.",
                            parsed.model);
        telex_access_log(req, parsed.model, started);
        json_decref(parsed.body);
        return 0;
    }
    telex_usage_estimator_t est; /* the prompt's size: admission's estimate now, the chat's estimator later */
    telex_usage_estimator_begin(&est, parsed.body);
    telex_usage_t est_usage;
    telex_usage_estimator_result(&est, &est_usage);
    uint64_t est_prompt = est_usage.prompt_tokens; /* = telex_usage_estimate_request_tokens(parsed.body) */
    grant.estimate_usd = telex_usage_estimate_cost(parsed.body, model, est_prompt); /* reserved against a budget */
    if (telex_cluster_admit_hold(svc, req, &grant, est_prompt)) { /* cluster mode: Redis decides; handled again */
        json_decref(parsed.body);
        return 0;
    }
    if (telex_auth_admit(svc, &grant, parsed.model, preset_name[0] ? preset_name : NULL, est_prompt, &denial) != 0) {
        telex_api_error_respond(req, &denial);
        telex_access_log(req, parsed.model, started);
        json_decref(parsed.body);
        return 0;
    }
    if (gw->shutting_down) {
        telex_auth_release(svc, &grant);
        telex_add_header(req, "retry-after", "1");
        telex_respond_error(req, 503, "server_error", "shutting_down", NULL, "The gateway is shutting down.");
        telex_access_log(req, parsed.model, started);
        json_decref(parsed.body);
        return 0;
    }
    size_t active = atomic_fetch_add(&gw->gateway->active_streams, 1);
    if (active >= cfg->limits.max_concurrent_streams) {
        atomic_fetch_sub(&gw->gateway->active_streams, 1);
        telex_auth_release(svc, &grant);
        telex_add_header(req, "retry-after", "1");
        telex_respond_error(req, 503, "server_error", "too_many_streams", NULL,
                            "The gateway is at its limit of %llu concurrent streams; retry shortly.",
                            (unsigned long long)cfg->limits.max_concurrent_streams);
        telex_access_log(req, parsed.model, started);
        json_decref(parsed.body);
        return 0;
    }

    int background = rr != NULL && rr->background;
    int resumable = cfg->resume.enabled && (parsed.stream || background);
    size_t plain_cap = 4 * HIGH_WATER + 2 * cfg->limits.max_event_bytes;
    size_t method_len = req->method.len < METHOD_MAX ? req->method.len : METHOD_MAX;
    size_t path_len = req->path_normalized.len < PATH_MAX_KEPT ? req->path_normalized.len : PATH_MAX_KEPT;
    size_t model_len = strnlen(parsed.model, MODEL_NAME_MAX);
    telex_stream_t *stream = telex_stream_new(resumable ? cfg->resume.max_bytes : plain_cap, resumable);
    if (stream == NULL) { /* getrandom failed */
        atomic_fetch_sub(&gw->gateway->active_streams, 1);
        telex_auth_release(svc, &grant);
        telex_respond_error(req, 500, "server_error", NULL, NULL, "No random stream id could be drawn.");
        telex_access_log(req, parsed.model, started);
        json_decref(parsed.body);
        return 0;
    }
    chat_t *c = telex_xcalloc(1, sizeof(*c) + method_len + 1 + path_len + 1 + model_len + 1);
    chat_t **link = h2o_mem_alloc_shared(&req->pool, sizeof(chat_t *), telex_chat_on_req_disposed); /* aborts on OOM */
    *link = c;
    c->link = link;
    c->state = CHAT_CALLING; /* counted in active_streams (above) and the gauge until it ends */
    telex_metrics_stream_started(telex_services_metrics(svc));
    c->grant = grant;
    _Static_assert(sizeof stream->owner >= sizeof grant.owner, "a grant's owner fits the stream's");
    size_t owner_len = strnlen(grant.owner, sizeof grant.owner - 1);
    memcpy(stream->owner, grant.owner, owner_len); /* the owner resume checks; no snprintf per answer */
    stream->owner[owner_len] = '\0';
    c->est = est;
    c->gw = gw;
    c->req = req;
    c->body = parsed.body;
    c->model = model;
    c->stream = stream;
    c->log_cap = resumable ? cfg->resume.max_bytes : plain_cap;
    c->stream_mode = parsed.stream || background; /* background streams from the provider into the log */
    c->client_streams = parsed.stream;
    c->background = background;
    c->wants_usage = parsed.include_usage;
    c->resumable = resumable;
    c->telex_framing = telex_wants_telex_framing(req, cfg);
    c->front = front;
    if (rr != NULL && front == TELEX_FRONT_MESSAGES) {
        c->ignored = rr->ignored[0] ? telex_xstrdup(rr->ignored) : NULL;
        if (c->stream_mode) {
            char id[TELEX_STREAM_ID_LEN + 8];
            snprintf(id, sizeof id, "msg_%s", stream->id + 3);
            c->menc = telex_messages_enc_new(id, parsed.model, (int64_t)est_prompt, telex_chat_emit_event, c);
        }
    } else if (rr != NULL) {
        c->resp_echo = json_incref(rr->echo);
        c->resp_messages = json_incref(json_object_get(parsed.body, "messages"));
        c->ignored = rr->ignored[0] ? telex_xstrdup(rr->ignored) : NULL;
        if (c->stream_mode) {
            char id[TELEX_STREAM_ID_LEN + 8];
            snprintf(id, sizeof id, "resp_%s", stream->id + 3);
            c->renc = telex_responses_enc_new(id, parsed.model, rr->echo, (int64_t)time(NULL), telex_chat_emit_event,
                                              c);
        }
    }
    c->started_ns = started;
    /* Pause the upstream when the log holds this much; resume below the
     * second figure. Without resume the log holds only what the one reader
     * has not written yet. */
    size_t margin = cfg->limits.max_event_bytes + 64 * 1024;
    if (resumable) {
        /* Keep room for what curl may still deliver after a pause (one
         * event plus a read buffer); a small max_bytes pauses at half. */
        size_t max = cfg->resume.max_bytes;
        c->pause_above = max > margin + HIGH_WATER ? max - margin : max / 2;
        c->resume_below = c->pause_above > 2 * HIGH_WATER ? c->pause_above - HIGH_WATER : c->pause_above / 2;
    } else {
        c->pause_above = HIGH_WATER;
        c->resume_below = LOW_WATER;
    }
    char *name = c->names; /* calloc'd: each copy below is NUL-terminated */
    c->method = memcpy(name, req->method.base, method_len);
    name += method_len + 1;
    c->path = memcpy(name, req->path_normalized.base, path_len);
    name += path_len + 1;
    c->model_name = memcpy(name, parsed.model, model_len);
    c->provider_name = "";
    c->deadline = &c->timers[0];
    c->life = &c->timers[1];
    uv_timer_init(&gw->worker->loop, c->deadline);
    uv_timer_init(&gw->worker->loop, c->life);
    c->deadline->data = c->life->data = c;
    c->open = 3; /* two timers and the wakeup */
    telex_wakeup_init(&c->wake, gw->waker, telex_chat_on_wake, telex_chat_on_wake_retired);
    telex_stream_set_producer(stream, &c->wake);
    h2o_linklist_insert(gw->chats.next, &c->in_chats); /* first */
    gw->n_chats++;

    /* Responses: a request whose parameters (repeated by response.created)
     * would not fit the stream's log is answered 400 before any provider is
     * called; telex_chat_commit checks again, exactly, before the hand-over. */
    const char *unfit;
    if (telex_chat_check_start(c, &unfit) != 0) {
        telex_chat_fail_commit(c, unfit);
        return 0;
    }

    /* A stream commits at commit_timeout, then idles out; a plain request
     * has no commit: its provider may stay silent for idle_timeout (504). */
    if (c->stream_mode)
        telex_chat_start_commit_deadline(c, cfg->streaming.commit_timeout_seconds);
    else
        telex_chat_restart_idle_deadline(c);
    if (resumable && telex_cluster_enabled()) {
        /* cluster mode: Redis learns of the stream while the provider prepares its answer
         * (Responses: with the object as it starts, which commit sets again) */
        if (c->renc != NULL) {
            char *text = telex_responses_enc_response_text(c->renc);
            if (text != NULL)
                telex_stream_set_note(stream, TELEX_NOTE_RESPONSE, text);
        }
        c->reg = telex_cluster_register(stream, front);
    }
    telex_chat_start_route(c);
    if (c->background && !c->client_streams && c->state == CHAT_CALLING) {
        /* background: answer with the Response object now, generate on */
        const char *why;
        if (telex_chat_commit(c, &why) != 0)
            telex_chat_fail_commit(c, why);
        else
            telex_chat_restart_idle_deadline(c);
    }
    return 0;
}
