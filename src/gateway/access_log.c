/*
 * gateway/access_log.c — the `request` log line of a response telex
 * answered in one piece, and its count in the metrics. See access_log.h.
 */
#include "gateway/access_log.h"

#include <jansson.h>

#include "gateway/gateway.h"
#include "gateway/metrics.h"
#include "util/log.h"

void telex_access_log(h2o_req_t *req, const char *model, uint64_t started_ns)
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
    gateway_worker_t *gw = telex_worker_of(req)->app_worker;
    telex_metrics_request_done(telex_services_metrics(gw->gateway->services),
                               &(telex_metrics_request_t){.status = req->res.status,
                                                          .model = model,
                                                          .ttft_seconds = -1,
                                                          .duration_seconds = us / 1e6,
                                                          .bytes_out = req->bytes_sent});
}
