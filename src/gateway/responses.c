/*
 * gateway/responses.c — the OpenAI Responses API's own endpoints, on the
 * stream log every answer already has.
 *
 *   POST /v1/responses                 (router → telex_chat_handle_front)
 *   GET  /v1/responses/{id}            the Response object as it stands
 *   GET  /v1/responses/{id}?stream=true[&starting_after=N]
 *                                      the events after sequence_number N
 *                                      (all of them without it), then live
 *   POST /v1/responses/{id}/cancel     cancels a running answer; the
 *                                      Response object (status cancelled)
 *   DELETE /v1/responses/{id}          cancels it and forgets it
 *
 * A response id is the stream id's random part after "resp_" (st_X ↔
 * resp_X), so every Responses endpoint is /v1/streams/{id} underneath: the
 * same log, owner and token checks, retention. Event n of the log (1-based)
 * is the event with sequence_number n - 1. Only answers telex still holds
 * exist here: streamed ones (and background ones) within
 * resume.retention_seconds of their end; a non-streamed answer is not kept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"
#include "gateway/subscriber.h"
#include "http/respond.h"
#include "util/json_load.h"

#define PREFIX "/v1/responses"
#define RESP_ID_LEN (5 + TELEX_STREAM_ID_LEN - 3) /* "resp_" + 22 */

int telex_responses_is_path(h2o_req_t *req)
{
    h2o_iovec_t p = req->path_normalized;
    size_t n = sizeof(PREFIX) - 1;
    return p.len >= n && memcmp(p.base, PREFIX, n) == 0 && (p.len == n || p.base[n] == '/');
}

/* "resp_X" → "st_X" in out; 0 when it is not a response id. */
static int stream_id_of(const char *rid, size_t len, char *out)
{
    if (len != RESP_ID_LEN || memcmp(rid, "resp_", 5) != 0)
        return 0;
    memcpy(out, "st_", 3);
    memcpy(out + 3, rid + 5, len - 5);
    out[TELEX_STREAM_ID_LEN] = '\0';
    return telex_stream_id_valid(out, TELEX_STREAM_ID_LEN);
}

static int not_found(h2o_req_t *req, const char *rid, size_t len)
{
    telex_respond_error(req, 404, "invalid_request_error", "response_not_found", NULL,
                        "Response with id '%.*s' not found (it never existed, is not yours, was deleted, or is older "
                        "than resume.retention_seconds).",
                        (int)(len > 80 ? 80 : len), rid);
    return 0;
}

/* The kept Response object, with status replaced when status != NULL. */
static int respond_object(h2o_req_t *req, telex_stream_t *s, const char *status)
{
    char *text = telex_stream_copy_note(s, TELEX_NOTE_RESPONSE);
    if (text == NULL) {
        telex_respond_error(req, 404, "invalid_request_error", "response_not_found", NULL,
                            "This answer is not a Responses API response.");
        return 0;
    }
    if (status != NULL) {
        json_t *r = telex_json_loadb(text, strlen(text), 0, NULL);
        free(text);
        json_object_set_new(r, "status", json_string(status));
        text = r != NULL ? json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(r);
        if (text == NULL) { /* the note came from Redis (a mirror) and is not JSON: a parsed tree dumps */
            telex_respond_error(req, 500, "server_error", NULL, NULL,
                                "The Response object kept with this answer is not valid JSON.");
            return 0;
        }
    }
    telex_respond(req, 200, "application/json", text, strlen(text));
    free(text);
    return 0;
}

static int wrong_method(h2o_req_t *req, const char *allow)
{
    telex_add_header(req, "allow", allow);
    telex_respond_error(req, 405, "invalid_request_error", "method_not_allowed", NULL, "Use %s here.", allow);
    return 0;
}

static int get_response(gateway_worker_t *gw, h2o_req_t *req, telex_stream_t *s)
{
    h2o_iovec_t stream = telex_query_param(req, "stream");
    if (stream.base == NULL || !h2o_memis(stream.base, stream.len, H2O_STRLIT("true")))
        return respond_object(req, s, NULL);
    char *note = telex_stream_copy_note(s, TELEX_NOTE_RESPONSE);
    if (note == NULL) /* a chat stream, not a response */
        return respond_object(req, s, NULL);
    free(note);
    uint64_t after = 0; /* events to skip: sequence numbers 0 .. N are events 1 .. N + 1 */
    h2o_iovec_t sa = telex_query_param(req, "starting_after");
    if (sa.base != NULL) {
        uint64_t n = 0;
        int ok = sa.len > 0 && sa.len <= 19;
        for (size_t i = 0; ok && i < sa.len; i++) {
            ok = sa.base[i] >= '0' && sa.base[i] <= '9';
            n = n * 10 + (uint64_t)(sa.base[i] - '0');
        }
        if (!ok) {
            telex_respond_error(req, 400, "invalid_request_error", "invalid_request", "starting_after",
                                "starting_after must be a sequence number (0, 1, 2 ...).");
            return 0;
        }
        after = n + 1;
    }
    int flags = telex_wants_telex_framing(req, gw->gateway->config) ? TELEX_SUB_EVENT_IDS | TELEX_SUB_KEEPALIVE : 0;
    return telex_resume_attach_after(gw, req, s, after, flags, "starting_after");
}

int telex_responses_handle(gateway_worker_t *gw, h2o_req_t *req, const char *caller_owner)
{
    h2o_iovec_t p = req->path_normalized;
    size_t n = sizeof(PREFIX) - 1;
    int is_get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"));
    int is_post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    int is_delete = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"));
    if (p.len == n || (p.len == n + 1 && p.base[n] == '/'))
        return wrong_method(req, "POST"); /* a POST went to telex_chat_handle_front */
    const char *rid = p.base + n + 1;
    size_t rlen = p.len - n - 1;
    const char *slash = memchr(rid, '/', rlen);
    size_t idlen = slash != NULL ? (size_t)(slash - rid) : rlen;
    int cancel = slash != NULL && h2o_memis(slash, rlen - idlen, H2O_STRLIT("/cancel"));
    if (slash != NULL && !cancel)
        return not_found(req, rid, rlen);
    if (cancel ? !is_post : !(is_get || is_delete))
        return wrong_method(req, cancel ? "POST" : "GET, DELETE");
    char sid[TELEX_STREAM_ID_LEN + 1];
    telex_stream_t *s = NULL;
    if (!gw->gateway->config->resume.enabled || !stream_id_of(rid, idlen, sid) ||
        (s = telex_resume_find(req, sid, caller_owner)) == NULL)
        return not_found(req, rid, idlen);
    int rc;
    if (is_get) {
        rc = get_response(gw, req, s);
    } else {
        int finished = telex_log_finished(s->log);
        if (!finished) {
            atomic_store(&s->cancel_requested, 1);
            telex_stream_poke_producer(s);
        }
        if (cancel) {
            rc = respond_object(req, s, finished ? NULL : "cancelled");
        } else {
            atomic_store(&s->deleted, 1);
            char body[128];
            int len = snprintf(body, sizeof body, "{\"id\":\"%.*s\",\"object\":\"response\",\"deleted\":true}",
                               (int)idlen, rid);
            telex_respond(req, 200, "application/json", body, (size_t)len);
            rc = 0;
        }
    }
    telex_stream_unref(s);
    return rc;
}

json_t *telex_responses_history(const char *response_id, const char *owner)
{
    char sid[TELEX_STREAM_ID_LEN + 1];
    if (!stream_id_of(response_id, strlen(response_id), sid))
        return NULL;
    telex_stream_t *s = telex_registry_get(sid);
    if (s == NULL)
        return NULL;
    json_t *history = NULL;
    if (!atomic_load(&s->deleted) && (s->owner[0] == '\0' || strcmp(s->owner, owner) == 0)) {
        char *text = telex_stream_copy_note(s, TELEX_NOTE_CONVERSATION);
        if (text != NULL)
            history = telex_json_loadb(text, strlen(text), 0, NULL);
        free(text);
    }
    telex_stream_unref(s);
    return history;
}
