/*
 * gateway/resume.c — attaching to a streamed answer again.
 *
 *   GET /v1/streams/{id}       replays every event after Last-Event-ID
 *                              (header, or ?last_event_id=), or after the
 *                              first N events (?after=N, for a client that
 *                              only counted what it got), then follows the
 *                              answer live and ends like the original; from
 *                              the first event without either. Always in
 *                              telex's framing (ids, retry:, keep-alives).
 *   POST /v1/chat/completions  with a Last-Event-ID of a known stream does
 *                              the same instead of generating again, so a
 *                              fetch-based client can simply retry.
 *   DELETE /v1/streams/{id}    cancels the answer for every subscriber.
 *
 * Who may attach: the caller that started it (same API key, once keys
 * exist), or anyone presenting the resume token from X-Telex-Resume-Url
 * (?token=), which EventSource can carry. A stream started without a key
 * is reachable with its unguessable id alone. Anything else looks exactly
 * like an unknown stream: 404, so ids cannot be probed. An unknown or
 * expired stream answers 204 to a client that accepts text/event-stream —
 * the status that tells EventSource to stop reconnecting — and 404 JSON
 * otherwise. So does a finished stream resumed from its last event (the
 * client has it all), so that EventSource stops after the answer.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gateway/gateway.h"
#include "gateway/subscriber.h"
#include "http/respond.h"

#define PREFIX "/v1/streams/"

static int accepts_event_stream(h2o_req_t *req)
{
    h2o_iovec_t accept = telex_req_header(req, "accept");
    return accept.base != NULL && h2o_strstr(accept.base, accept.len, H2O_STRLIT("text/event-stream")) != SIZE_MAX;
}

static int unknown_stream(h2o_req_t *req, int allow_204)
{
    if (allow_204 && accepts_event_stream(req)) {
        req->res.status = 204;
        req->res.reason = "No Content";
        req->res.content_length = 0;
        h2o_send_inline(req, "", 0);
        return 0;
    }
    telex_respond_error(req, 404, "invalid_request_error", "stream_not_found", NULL,
                        "No such stream: it never existed, it expired, or it is not yours.");
    return 0;
}

/* Looks the stream up and checks the caller may use it. */
static telex_stream_t *find_authorized(h2o_req_t *req, const char *id, const char *caller_owner)
{
    telex_stream_t *s = telex_registry_get(id);
    if (s == NULL)
        return NULL;
    if (atomic_load(&s->deleted)) {
        telex_stream_unref(s);
        return NULL;
    }
    if (s->owner[0] == '\0')
        return s;
    h2o_iovec_t token = telex_query_param(req, "token");
    if (token.base != NULL && telex_resume_token_valid(id, token.base, token.len))
        return s;
    if (caller_owner != NULL && strcmp(caller_owner, s->owner) == 0)
        return s;
    telex_stream_unref(s);
    return NULL;
}

telex_stream_t *telex_resume_find(h2o_req_t *req, const char *stream_id, const char *caller_owner)
{
    return find_authorized(req, stream_id, caller_owner);
}

int telex_resume_attach_after(gateway_worker_t *gw, h2o_req_t *req, telex_stream_t *s, uint64_t after, int flags,
                              const char *param)
{
    uint64_t from = 0;
    int rc = telex_log_position_after(s->log, after, &from);
    if (rc == -ERANGE) {
        telex_respond_error(req, 400, "invalid_request_error", "bad_position", param,
                            "%s is past the events of this answer so far.", param);
        return 0;
    }
    const char *headers[] = {"x-telex-stream-id", s->id, NULL};
    if (rc == 0)
        rc = telex_subscriber_start(gw, req, s, from, after, flags, headers);
    if (rc == -ENOENT)
        telex_respond_error(req, 410, "invalid_request_error", "resume_position_dropped", param,
                            "The events after %llu are no longer kept (resume.max_bytes).", (unsigned long long)after);
    else
        gw->resumes++;
    return 0;
}

/* Parses the decimal count of ?after=N into *seq; -1 when it is not one. */
static int parse_count(h2o_iovec_t v, uint64_t *seq)
{
    if (v.len == 0 || v.len > 19)
        return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.base[i] < '0' || v.base[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(v.base[i] - '0');
    }
    *seq = n;
    return 0;
}

/* Attaches after event `last_event_id` (an event id; empty: see `after`)
 * or, without one, after the `after`-th event (a count: ?after=N). */
static int attach(gateway_worker_t *gw, h2o_req_t *req, const char *id, h2o_iovec_t last_event_id, h2o_iovec_t after,
                  const char *caller_owner)
{
    telex_stream_t *s = find_authorized(req, id, caller_owner);
    if (s == NULL)
        return unknown_stream(req, 1);
    uint64_t seq = 0, from = 0;
    if (last_event_id.len > 0) {
        char other[TELEX_STREAM_ID_LEN + 1];
        if (telex_event_id_parse(last_event_id.base, last_event_id.len, other, &seq) != 0 || strcmp(other, id) != 0) {
            telex_stream_unref(s);
            telex_respond_error(req, 400, "invalid_request_error", "bad_last_event_id", "Last-Event-ID",
                                "Last-Event-ID is not an event of stream %s.", id);
            return 0;
        }
    } else if (after.base != NULL && parse_count(after, &seq) != 0) {
        telex_stream_unref(s);
        telex_respond_error(req, 400, "invalid_request_error", "bad_after", "after",
                            "after must be the number of events already received (0, 1, 2 ...).");
        return 0;
    }
    int rc = telex_log_position_after(s->log, seq, &from);
    if (rc == -ERANGE) {
        telex_stream_unref(s);
        int by_count = last_event_id.len == 0;
        telex_respond_error(req, 400, "invalid_request_error", by_count ? "bad_after" : "bad_last_event_id",
                            by_count ? "after" : "Last-Event-ID", "Stream %s has no event %llu yet.", id,
                            (unsigned long long)seq);
        return 0;
    }
    if (rc == 0 && telex_log_finished(s->log) && from == telex_log_end(s->log) && accepts_event_stream(req)) {
        /* The client has the whole answer: nothing will ever follow. An
         * empty 200 would make EventSource reconnect every retry: interval
         * until the stream expires; 204 tells it to stop. */
        telex_stream_unref(s);
        return unknown_stream(req, 1);
    }
    const char *headers[] = {"x-telex-stream-id", s->id, NULL};
    if (rc == 0) /* attaching checks the position again, atomically with the producer's releases */
        rc = telex_subscriber_start(gw, req, s, from, seq, TELEX_SUB_EVENT_IDS | TELEX_SUB_KEEPALIVE, headers);
    if (rc == -ENOENT) {
        telex_respond_error(req, 410, "invalid_request_error", "resume_position_dropped", "Last-Event-ID",
                            "The events after %llu are no longer kept (resume.max_bytes); the answer cannot be "
                            "resumed from there.",
                            (unsigned long long)seq);
    } else {
        gw->resumes++;
    }
    telex_stream_unref(s);
    return 0;
}

/* The {id} of /v1/streams/{id}, copied into out; 0 when it is not one. */
static int stream_id_of_path(h2o_req_t *req, char *out)
{
    h2o_iovec_t p = req->path_normalized;
    size_t n = sizeof(PREFIX) - 1;
    if (p.len != n + TELEX_STREAM_ID_LEN || memcmp(p.base, PREFIX, n) != 0 ||
        !telex_stream_id_valid(p.base + n, TELEX_STREAM_ID_LEN))
        return 0;
    memcpy(out, p.base + n, TELEX_STREAM_ID_LEN);
    out[TELEX_STREAM_ID_LEN] = '\0';
    return 1;
}

int telex_resume_is_streams_path(h2o_req_t *req)
{
    h2o_iovec_t p = req->path_normalized;
    return p.len > sizeof(PREFIX) - 1 && memcmp(p.base, PREFIX, sizeof(PREFIX) - 1) == 0;
}

int telex_resume_handle(gateway_worker_t *gw, h2o_req_t *req, const char *caller_owner)
{
    char id[TELEX_STREAM_ID_LEN + 1];
    int is_get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"));
    int is_delete = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"));
    if (!is_get && !is_delete) {
        telex_add_header(req, "allow", "GET, DELETE");
        telex_respond_error(req, 405, "invalid_request_error", "method_not_allowed", NULL,
                            "Use GET to attach to a stream, DELETE to cancel it.");
        return 0;
    }
    if (!gw->gateway->config->resume.enabled || !stream_id_of_path(req, id))
        return unknown_stream(req, is_get);
    if (is_get) {
        h2o_iovec_t last = telex_req_header(req, "last-event-id");
        if (last.base == NULL)
            last = telex_query_param(req, "last_event_id");
        return attach(gw, req, id, last, telex_query_param(req, "after"), caller_owner);
    }
    telex_stream_t *s = find_authorized(req, id, caller_owner);
    if (s == NULL)
        return unknown_stream(req, 0);
    int finished = telex_log_finished(s->log);
    if (!finished) {
        atomic_store(&s->cancel_requested, 1);
        telex_stream_poke_producer(s);
    }
    char body[160];
    int n = snprintf(body, sizeof(body), "{\"id\":\"%s\",\"object\":\"stream\",\"status\":\"%s\"}", s->id,
                     finished ? "finished" : "cancelled");
    telex_stream_unref(s);
    telex_respond(req, 200, "application/json", body, (size_t)n);
    return 0;
}

int telex_resume_try_post(gateway_worker_t *gw, h2o_req_t *req, const char *caller_owner)
{
    h2o_iovec_t last = telex_req_header(req, "last-event-id");
    char id[TELEX_STREAM_ID_LEN + 1];
    uint64_t seq;
    if (last.base == NULL || !gw->gateway->config->resume.enabled ||
        telex_event_id_parse(last.base, last.len, id, &seq) != 0)
        return 0; /* not a resume: generate */
    attach(gw, req, id, last, h2o_iovec_init(NULL, 0), caller_owner);
    return 1;
}
