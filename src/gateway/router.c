/*
 * gateway/router.c — maps method + path to a handler, and owns the
 * per-worker gateway state and its 500 ms sweep (clients gone, heap trim
 * after a burst). Answers 404 for unknown paths, 405 (with Allow) for a wrong
 * method, 431 when the header section exceeds limits.max_header_bytes,
 * /healthz; GET /v1/models is models.c, the services' endpoints (/admin,
 * /v1/usage, /metrics, /v1/presets) are endpoints.c, and the `request`
 * line of what it answers itself is access_log.c.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "gateway/access_log.h"
#include "gateway/auth.h"
#include "gateway/cors.h"
#include "gateway/endpoints.h"
#include "gateway/gateway.h"
#include "gateway/metrics.h"
#include "gateway/models.h"
#include "gateway/presets.h"
#include "http/respond.h"
#include "stream/log.h"
#include "util/alloc.h"
#include "util/log.h"

static int path_is(h2o_req_t *req, const char *path)
{
    size_t n = strlen(path);
    return req->path_normalized.len == n && memcmp(req->path_normalized.base, path, n) == 0;
}

static int method_is(h2o_req_t *req, const char *method)
{
    return h2o_memis(req->method.base, req->method.len, method, strlen(method));
}

static size_t header_section_size(h2o_req_t *req)
{
    size_t n = req->input.path.len + req->method.len + 16;
    for (size_t i = 0; i < req->headers.size; i++)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    return n;
}

static int wrong_method(h2o_req_t *req, const char *allow)
{
    telex_add_header(req, "allow", allow);
    telex_respond_error(req, 405, "invalid_request_error", "method_not_allowed", NULL,
                        "Method %.*s is not allowed on %.*s; use %s.", (int)req->method.len, req->method.base,
                        (int)req->path_normalized.len, req->path_normalized.base, allow);
    return 0;
}

/* The caller's stream-owner identity for resume checks: "" when anonymous
 * or unauthenticated (a resume token still works then). */
static void caller_owner(gateway_worker_t *gw, h2o_req_t *req, char *out, size_t len)
{
    telex_grant_t grant;
    telex_api_error_t e;
    h2o_iovec_t authz = telex_req_header(req, "authorization");
    out[0] = '\0';
    if (telex_auth_authenticate(gw->gateway->services, authz.base, authz.len, &grant, &e) == 0)
        snprintf(out, len, "%s", grant.owner);
}

static int route(gateway_worker_t *gw, h2o_req_t *req, uint64_t started)
{
    const telex_config_t *cfg = gw->gateway->config;
    if (header_section_size(req) > cfg->limits.max_header_bytes) {
        telex_respond_error(req, 431, "invalid_request_error", "headers_too_large", NULL,
                            "The request's header section is larger than %llu bytes.",
                            (unsigned long long)cfg->limits.max_header_bytes);
        return 0;
    }
    if (path_is(req, "/v1/chat/completions") || path_is(req, "/chat/completions"))
        return wrong_method(req, "POST"); /* POST went to telex_chat_handle */
    if (path_is(req, "/v1/messages/count_tokens"))
        return telex_messages_count_tokens(gw, req);
    if (path_is(req, "/v1/messages"))
        return wrong_method(req, "POST");
    if (telex_responses_is_path(req)) {
        char owner[64];
        caller_owner(gw, req, owner, sizeof(owner));
        return telex_responses_handle(gw, req, owner[0] ? owner : NULL);
    }
    if (telex_resume_is_streams_path(req)) {
        char owner[64];
        caller_owner(gw, req, owner, sizeof(owner));
        size_t before = gw->resumes;
        int rc = telex_resume_handle(gw, req, owner[0] ? owner : NULL);
        if (gw->resumes != before)
            telex_metrics_resume(telex_services_metrics(gw->gateway->services));
        return rc;
    }
    telex_services_t *svc = gw->gateway->services;
    if (req->path_normalized.len >= 6 && memcmp(req->path_normalized.base, "/admin", 6) == 0 &&
        (req->path_normalized.len == 6 || req->path_normalized.base[6] == '/'))
        return telex_endpoint_admin(svc, req); /* TELEX_DEFERRED passes up */
    if (path_is(req, "/v1/usage"))
        return telex_endpoint_usage(svc, req);
    if (path_is(req, "/metrics"))
        return telex_endpoint_metrics(svc, req);
    if (path_is(req, "/v1/presets") || path_is(req, "/presets"))
        return telex_endpoint_presets(svc, req);
    const char *pname;
    size_t plen;
    if (telex_presets_name_from_path(req->path_normalized.base, req->path_normalized.len, &pname, &plen) == 0)
        return wrong_method(req, "POST");
    if (path_is(req, "/v1/models") || path_is(req, "/models")) {
        if (!method_is(req, "GET") && !method_is(req, "HEAD"))
            return wrong_method(req, "GET");
        return telex_models_handle(gw->models, req, started); /* TELEX_DEFERRED passes up */
    }
    if (path_is(req, "/healthz")) {
        if (!method_is(req, "GET") && !method_is(req, "HEAD"))
            return wrong_method(req, "GET");
        static const char ok[] = "{\"status\":\"ok\"}";
        telex_respond(req, gw->shutting_down ? 503 : 200, "application/json", ok, sizeof(ok) - 1);
        return 0;
    }
    if ((method_is(req, "GET") || method_is(req, "HEAD")) && telex_static_handle(req) == 0)
        return 0;
    telex_respond_error(req, 404, "invalid_request_error", "not_found", NULL, "Unknown path %.*s.",
                        (int)(req->path_normalized.len > 200 ? 200 : req->path_normalized.len),
                        req->path_normalized.base);
    return 0;
}

int telex_gateway_on_request(telex_worker_t *worker, h2o_req_t *req)
{
    gateway_worker_t *gw = worker->app_worker;
    const telex_config_t *cfg = gw->gateway->config;
    uint64_t started = uv_hrtime();

    int taken = telex_cluster_intercept(req);
    if (taken == TELEX_CLUSTER_ANSWERED) /* 503 shutting_down (cluster mode, stopping) */
        telex_access_log(req, NULL, started);
    if (taken != 0)
        return 0; /* a stream of another node: handled again once mirrored here */
    if (telex_cors_handle(cfg, req) == 0) { /* a CORS preflight */
        telex_access_log(req, NULL, started);
        return 0;
    }
    if (telex_services_anonymous_allowed(gw->gateway->services) && !path_is(req, "/healthz")) {
        /* no keys: no other web page may use the gateway through a browser
         * (/healthz tells nothing and load balancers' probes send any Host) */
        char msg[400];
        const char *code;
        bool has_body = req->entity.len > 0 && !method_is(req, "GET") && !method_is(req, "HEAD");
        int status = telex_cors_check_anonymous(cfg, req->authority, telex_req_header(req, "origin"),
                                                telex_req_header(req, "content-type"), has_body, &code, msg, sizeof msg);
        if (status != 0) {
            telex_respond_error(req, status, "invalid_request_error", code, NULL, "%s", msg);
            telex_access_log(req, NULL, started);
            return 0;
        }
    }
    int small_headers = header_section_size(req) <= cfg->limits.max_header_bytes;
    if (small_headers && method_is(req, "POST") &&
        (path_is(req, "/v1/chat/completions") || path_is(req, "/chat/completions"))) {
        char owner[64] = "";
        if (telex_req_header(req, "last-event-id").base != NULL) /* only a resume needs the owner */
            caller_owner(gw, req, owner, sizeof(owner));
        if (telex_resume_try_post(gw, req, owner[0] ? owner : NULL)) {
            telex_metrics_resume(telex_services_metrics(gw->gateway->services));
            telex_access_log(req, NULL, started);
            return 0;
        }
        return telex_chat_handle(gw, req); /* logs its own line */
    }
    if (small_headers && method_is(req, "POST") && (path_is(req, "/v1/responses") || path_is(req, "/responses")))
        return telex_chat_handle_front(gw, req, req->entity.base, req->entity.len, NULL, TELEX_FRONT_RESPONSES);
    if (small_headers && method_is(req, "POST") && path_is(req, "/v1/messages"))
        return telex_chat_handle_front(gw, req, req->entity.base, req->entity.len, NULL, TELEX_FRONT_MESSAGES);
    const char *pname;
    size_t plen;
    if (small_headers && method_is(req, "POST") &&
        telex_presets_name_from_path(req->path_normalized.base, req->path_normalized.len, &pname, &plen) == 0) {
        /* authenticate first: an unknown caller learns nothing about presets */
        telex_grant_t grant;
        telex_api_error_t e;
        h2o_iovec_t authz = telex_req_header(req, "authorization");
        size_t n = 0;
        char *body = NULL;
        if (telex_auth_authenticate(gw->gateway->services, authz.base, authz.len, &grant, &e) == 0)
            body = telex_presets_expand_request(telex_services_presets(gw->gateway->services),
                                                req->path_normalized.base, req->path_normalized.len,
                                                req->entity.base, req->entity.len, cfg->limits.max_body_bytes, &n, &e);
        if (body == NULL) {
            telex_api_error_respond(req, &e);
            telex_access_log(req, NULL, started);
            return 0;
        }
        char name[72];
        snprintf(name, sizeof name, "%.*s", (int)(plen < 64 ? plen : 64), pname);
        int rc = telex_chat_handle_body(gw, req, body, n, name);
        free(body);
        return rc;
    }
    int rc = route(gw, req, started);
    if (rc == TELEX_DEFERRED)
        return 0; /* answered later; logged by off_loop.c or models.c */
    telex_access_log(req, NULL, started);
    return rc;
}

/* After a burst, hands the heap pages that finished streams freed back to the
 * system: glibc keeps them in the process otherwise, and the next burst's
 * allocations reuse them only in part (fragments), so RSS would ratchet up to
 * the largest burst plus its fragments. Checked on the sweep, once per burst:
 * when the count has fallen by TRIM_DROP to half its peak, and not again
 * until it has risen; a trim takes a few ms. */
#define TRIM_DROP 512
static void give_back_memory(gateway_worker_t *gw)
{
    size_t streams = gw->n_chats + gw->n_subscribers;
    if (streams == 0)
        telex_log_cache_drop(); /* an idle worker keeps no spare log segments */
    /* open connections count too: a burst of connections that sent bodies
     * (or a flood refused by http/guard) leaves freed buffers the same way */
    size_t now = streams + gw->worker->connections;
    if (now >= gw->streams_peak) {
        if (now > gw->streams_peak)
            gw->trimmed = 0; /* rising again: a new burst may follow */
        gw->streams_peak = now;
        return;
    }
    if (gw->trimmed) {
        /* Still falling after a trim: the peak follows the fall, so the rest
         * of the same burst's end never counts as a second drop (a sweep that
         * trimmed at 580 streams once trimmed again at 0). */
        gw->streams_peak = now;
        return;
    }
    if (gw->streams_peak - now < TRIM_DROP || now > gw->streams_peak / 2)
        return;
#ifdef __GLIBC__
    uint64_t t0 = uv_hrtime();
    telex_log_cache_drop();
    malloc_trim(0);
    telex_log_event("info", "heap trimmed", "\"streams\":%zu,\"connections\":%zu,\"peak\":%zu,\"ms\":%.2f", streams,
                    gw->worker->connections, gw->streams_peak, (double)(uv_hrtime() - t0) / 1e6);
#endif
    gw->streams_peak = now;
    gw->trimmed = 1;
}

static void on_sweep(uv_timer_t *timer)
{
    telex_chat_sweep(timer->data);
    give_back_memory(timer->data);
}

static void on_shutdown_deadline(uv_timer_t *timer)
{
    telex_chat_end_all(timer->data, "the server is shutting down");
}

/* cluster mode: a request held while a stream was mirrored, handled again */
static int redispatch(void *worker, h2o_req_t *req)
{
    return telex_gateway_on_request(worker, req);
}

int telex_gateway_worker_init(telex_worker_t *worker)
{
    gateway_worker_t *gw = telex_xcalloc(1, sizeof(*gw));
    gw->worker = worker;
    gw->gateway = worker->options->app;
    h2o_linklist_init_anchor(&gw->chats);
    h2o_linklist_init_anchor(&gw->subscribers);
    gw->http = telex_http_client_new(&worker->loop);
    /* a provider read's events go out before the loop handles the next socket */
    telex_http_client_set_after_read(gw->http, telex_waker_drain_current);
    if ((gw->waker = telex_waker_new(&worker->loop)) == NULL || (gw->models = telex_models_worker_new(gw)) == NULL) {
        free(gw);
        return -1;
    }
    const telex_config_t *cfg = gw->gateway->config;
    gw->upstream_env.loop = &worker->loop;
    gw->upstream_env.http = gw->http;
    gw->upstream_env.max_event_bytes = cfg->limits.max_event_bytes;
    gw->upstream_env.max_response_bytes = 8u << 20;
    uv_timer_init(&worker->loop, &gw->sweep);
    gw->sweep.data = gw;
    uv_timer_start(&gw->sweep, on_sweep, TELEX_SWEEP_MS, TELEX_SWEEP_MS);
    uv_unref((uv_handle_t *)&gw->sweep);
    uv_timer_init(&worker->loop, &gw->shutdown_timer);
    gw->shutdown_timer.data = gw;
    if (telex_cluster_enabled() &&
        (gw->cluster = telex_cluster_worker_new(&worker->loop, gw->waker, worker->index, redispatch, worker)) == NULL)
        return -1;
    worker->app_worker = gw;
    return 0;
}

void telex_gateway_worker_dispose(telex_worker_t *worker)
{
    /* The loop has stopped; the process is exiting. Upstream transfers are
     * abandoned with it. */
    (void)worker;
}

void telex_gateway_on_shutdown(telex_worker_t *worker)
{
    gateway_worker_t *gw = worker->app_worker;
    gw->shutting_down = 1;
    telex_models_worker_shutdown(gw->models);
    telex_cluster_worker_shutdown(gw->cluster); /* cluster mode: no request left waiting for Redis */
    double grace = gw->gateway->config->streaming.shutdown_grace_seconds;
    uv_timer_start(&gw->shutdown_timer, on_shutdown_deadline, (uint64_t)(grace * 1000), 0);
}

int telex_gateway_is_idle(telex_worker_t *worker)
{
    gateway_worker_t *gw = worker->app_worker;
    return telex_chat_running(gw) == 0 && gw->n_subscribers == 0 &&
           telex_cluster_worker_idle(gw->cluster); /* cluster mode: the last events reached Redis */
}

void telex_gateway_worker_start(telex_worker_t *worker)
{
    gateway_worker_t *gw = worker->app_worker;
    telex_waker_enter(gw->waker);
    telex_cluster_worker_start(gw->cluster);
}
