/*
 * gateway/router.c — maps method + path to a handler, and owns the
 * per-worker gateway state. Answers 404 for unknown paths, 405 (with Allow)
 * for a wrong method, 431 when the header section exceeds
 * limits.max_header_bytes, /healthz and /v1/models.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"
#include "http/respond.h"
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

static int handle_models(gateway_worker_t *gw, h2o_req_t *req)
{
    const telex_config_t *cfg = gw->gateway->config;
    json_t *data = json_array();
    for (size_t i = 0; i < cfg->n_models; i++) {
        if (cfg->models[i].catch_all)
            continue;
        json_array_append_new(data, json_pack("{s:s,s:s,s:i,s:s}", "id", cfg->models[i].name, "object", "model",
                                              "created", 0, "owned_by", cfg->models[i].routes[0].provider->name));
    }
    json_t *list = json_pack("{s:s,s:o}", "object", "list", "data", data);
    char *text = json_dumps(list, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(list);
    if (text == NULL) {
        telex_respond_error(req, 500, "server_error", NULL, NULL, "out of memory");
        return 0;
    }
    telex_respond(req, 200, "application/json", text, strlen(text));
    free(text);
    return 0;
}

void telex_gateway_log_response(h2o_req_t *req, const char *model, uint64_t started_ns)
{
    json_t *line = json_pack("{s:s,s:s}", "level", "info", "msg", "request");
    if (line == NULL)
        return;
    /* json_stringn refuses invalid UTF-8 (a client can send any bytes) */
    json_t *method = json_stringn(req->method.base, req->method.len > 32 ? 32 : req->method.len);
    json_t *path = json_stringn(req->path_normalized.base, req->path_normalized.len > 200 ? 200 : req->path_normalized.len);
    json_object_set_new(line, "method", method != NULL ? method : json_string("?"));
    json_object_set_new(line, "path", path != NULL ? path : json_string("?"));
    json_object_set_new(line, "status", json_integer(req->res.status));
    json_object_set_new(line, "model", model != NULL ? json_string(model) : json_null());
    json_object_set_new(line, "provider", json_null());
    json_object_set_new(line, "stream", json_false());
    json_object_set_new(line, "ttft_ms", json_null());
    double us = (double)((uv_hrtime() - started_ns) / 1000);
    json_object_set_new(line, "duration_ms", json_real(us / 1e3));
    json_object_set_new(line, "events", json_integer(0));
    json_object_set_new(line, "bytes", json_integer((json_int_t)req->bytes_sent));
    json_object_set_new(line, "fallbacks", json_integer(0));
    json_object_set_new(line, "outcome", json_string(req->res.status < 400 ? "ok" : "rejected"));
    telex_log_json(line);
}

static int route(gateway_worker_t *gw, h2o_req_t *req)
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
    if (telex_resume_is_streams_path(req))
        return telex_resume_handle(gw, req, NULL);
    if (path_is(req, "/v1/models") || path_is(req, "/models")) {
        if (!method_is(req, "GET") && !method_is(req, "HEAD"))
            return wrong_method(req, "GET");
        return handle_models(gw, req);
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

    if (header_section_size(req) <= cfg->limits.max_header_bytes && method_is(req, "POST") &&
        (path_is(req, "/v1/chat/completions") || path_is(req, "/chat/completions"))) {
        if (telex_resume_try_post(gw, req, NULL))
            return 0;
        return telex_chat_handle(gw, req); /* logs its own line */
    }
    int rc = route(gw, req);
    telex_gateway_log_response(req, NULL, started);
    return rc;
}

static void on_sweep(uv_timer_t *timer)
{
    telex_chat_sweep(timer->data);
}

static void on_shutdown_deadline(uv_timer_t *timer)
{
    telex_chat_end_all(timer->data, "the server is shutting down");
}

int telex_gateway_worker_init(telex_worker_t *worker)
{
    gateway_worker_t *gw = calloc(1, sizeof(*gw));
    if (gw == NULL)
        return -1;
    gw->worker = worker;
    gw->gateway = worker->options->app;
    if ((gw->http = telex_http_client_new(&worker->loop)) == NULL ||
        (gw->waker = telex_waker_new(&worker->loop)) == NULL) {
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
    uv_timer_start(&gw->sweep, on_sweep, 500, 500);
    uv_unref((uv_handle_t *)&gw->sweep);
    uv_timer_init(&worker->loop, &gw->shutdown_timer);
    gw->shutdown_timer.data = gw;
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
    double grace = gw->gateway->config->streaming.shutdown_grace_seconds;
    uv_timer_start(&gw->shutdown_timer, on_shutdown_deadline, (uint64_t)(grace * 1000), 0);
}

int telex_gateway_is_idle(telex_worker_t *worker)
{
    gateway_worker_t *gw = worker->app_worker;
    return telex_chat_running(gw) == 0 && gw->n_subscribers == 0;
}

void telex_gateway_worker_start(telex_worker_t *worker)
{
    gateway_worker_t *gw = worker->app_worker;
    telex_waker_enter(gw->waker);
}
