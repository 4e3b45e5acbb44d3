/*
 * upstream/sse_upstream.c — one HTTP call to a provider, for the adapters
 * (contract in sse_upstream.h).
 *
 * The response decides the mode at its headers: a status >= 400 collects the
 * error body, a plain request collects the answer, a stream must be
 * text/event-stream, and libtelex's parser reads it in strict mode: a line
 * that is not a known field, a comment or blank fails the call as soon as
 * its first bytes show it (an error page or a JSON body sent as an event
 * stream). Every
 * report goes through one place (fail, done, respond) that sets `finished`;
 * the state is freed by maybe_free once it is finished or cancelled, the
 * HTTP call and the fail-soon timer are gone, and no adapter frame is on the
 * stack (`depth`).
 */
#include "upstream/sse_upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/json_dump.h"
#include "util/json_load.h"

typedef enum { MODE_WAITING, MODE_STREAM, MODE_COLLECT_ERROR, MODE_COLLECT_PLAIN } mode_t_;

struct telex_sse_upstream {
    telex_upstream_t base; /* first: the gateway holds a telex_upstream_t * */
    const telex_sse_upstream_hooks_t *hooks;
    void *adapter;
    telex_upstream_sink_t sink;
    void *user;
    uv_loop_t *loop;
    telex_http_client_t *http;
    telex_http_call_t *call;
    telex_sse_parser_t *parser;
    telex_buf_t body; /* error or plain response; the fail-soon body */
    uv_timer_t *soon; /* fail_soon: malloc'd, freed in its close callback */
    telex_upstream_failure_kind_t soon_kind;
    int soon_status;
    char *soon_message;
    int stream;
    int http2; /* the provider's http2 (telex_http2_mode_t) */
    mode_t_ mode;
    long status;
    char retry_after[32];
    int finished; /* reported done/failure/response */
    int answered; /* finished by telex_sse_upstream_done: the whole answer is in */
    int cancelled;
    int depth; /* our frames on the stack */
};

/* ------------------------------------------------------------ lifetime */

static void free_now(telex_sse_upstream_t *u)
{
    if (u->hooks->destroy != NULL)
        u->hooks->destroy(u->adapter);
    telex_sse_parser_free(u->parser);
    telex_buf_free(&u->body);
    free(u->soon_message);
    free(u);
}

static void maybe_free(telex_sse_upstream_t *u)
{
    if (u->depth > 0 || !(u->cancelled || u->finished) || u->call != NULL || u->soon != NULL)
        return;
    free_now(u);
}

static void on_soon_closed(uv_handle_t *h)
{
    free(h);
}

static void close_soon(telex_sse_upstream_t *u)
{
    if (u->soon != NULL) {
        uv_close((uv_handle_t *)u->soon, on_soon_closed);
        u->soon = NULL;
    }
}

/* ------------------------------------------------------------ reports */

int telex_sse_upstream_stopped(const telex_sse_upstream_t *u)
{
    return u->finished || u->cancelled;
}

void telex_sse_upstream_fail(telex_sse_upstream_t *u, telex_upstream_failure_kind_t kind, int status,
                             const char *message, const char *body, size_t body_len)
{
    if (telex_sse_upstream_stopped(u))
        return;
    u->finished = 1;
    telex_upstream_failure_t f = {kind, status, u->retry_after, message, body, body_len};
    u->sink.on_failure(u->user, &f);
}

void telex_sse_upstream_done(telex_sse_upstream_t *u)
{
    if (telex_sse_upstream_stopped(u))
        return;
    u->finished = 1;
    u->answered = 1;
    u->sink.on_done(u->user);
}

void telex_sse_upstream_chunk(telex_sse_upstream_t *u, const char *data, size_t len, json_t *chunk,
                              const telex_json_facts_t *facts)
{
    if (telex_sse_upstream_stopped(u))
        return;
    u->sink.on_chunk(u->user, data, len, chunk, facts);
}

void telex_sse_upstream_respond(telex_sse_upstream_t *u, int status, const char *body, size_t len)
{
    if (telex_sse_upstream_stopped(u))
        return;
    u->finished = 1;
    u->sink.on_response(u->user, status, body, len);
}

/* ------------------------------------------------------------ the stream */

static int on_sse_event(void *user, const telex_sse_event_t *ev)
{
    telex_sse_upstream_t *u = user;
    if (telex_sse_upstream_stopped(u))
        return 1;
    u->hooks->on_event(u, ev);
    return telex_sse_upstream_stopped(u);
}

/* ------------------------------------------------------------ HTTP events */

static void on_response(void *user, long status, const char *content_type, const char *retry_after)
{
    telex_sse_upstream_t *u = user;
    u->status = status;
    snprintf(u->retry_after, sizeof(u->retry_after), "%s", retry_after);
    if (status >= 400) {
        u->mode = MODE_COLLECT_ERROR;
    } else if (!u->stream) {
        u->mode = MODE_COLLECT_PLAIN;
    } else if (strncasecmp(content_type, "text/event-stream", 17) == 0) {
        u->mode = MODE_STREAM;
    } else {
        char msg[256];
        snprintf(msg, sizeof(msg), "the provider answered with Content-Type '%.100s' instead of an event stream",
                 content_type[0] ? content_type : "(none)");
        u->depth++;
        telex_sse_upstream_fail(u, TELEX_UPSTREAM_PROTOCOL, (int)status, msg, NULL, 0);
        u->depth--;
        telex_http_call_cancel(u->call);
        u->call = NULL;
        maybe_free(u);
    }
}

static void on_body(void *user, const char *data, size_t len)
{
    telex_sse_upstream_t *u = user;
    if (telex_sse_upstream_stopped(u))
        return;
    if (u->mode != MODE_STREAM) {
        if (telex_buf_append(&u->body, data, len) != 0) {
            u->depth++;
            telex_sse_upstream_fail(u, TELEX_UPSTREAM_PROTOCOL, (int)u->status,
                                    "the provider's response is larger than the limit", NULL, 0);
            u->depth--;
            telex_http_call_cancel(u->call);
            u->call = NULL;
            maybe_free(u);
        }
        return;
    }
    u->depth++;
    if (u->sink.on_batch != NULL)
        u->sink.on_batch(u->user, 1);
    int rc = telex_sse_parser_feed(u->parser, data, len);
    if (rc == TELEX_SSE_ETOOBIG)
        telex_sse_upstream_fail(u, TELEX_UPSTREAM_PROTOCOL, 0,
                                "the provider sent an event larger than limits.max_event_bytes", NULL, 0);
    else if (rc == TELEX_SSE_ENOMEM) /* libtelex returns it; in this process out of memory ends it */
        telex_out_of_memory(0);
    else if (rc == TELEX_SSE_EFIELD)
        telex_sse_upstream_fail(u, TELEX_UPSTREAM_PROTOCOL, 0,
                                "the provider sent a line that is not an event-stream field", NULL, 0);
    if (u->sink.on_batch != NULL && !telex_sse_upstream_stopped(u))
        u->sink.on_batch(u->user, 0); /* (once stopped, the sink may be gone) */
    u->depth--;
    if (u->finished && u->call != NULL) {
        /* Done or failed: nothing more is needed from this connection. After
         * the whole answer, the connection may still read the end of the
         * response's framing, so that it can be reused; after a failure it
         * closes (a provider stops generating when its connection closes). */
        if (u->answered)
            telex_http_call_drain(u->call);
        else
            telex_http_call_cancel(u->call);
        u->call = NULL;
    }
    maybe_free(u);
}

/* An error body's message, when it has one (OpenAI's and Anthropic's error
 * shapes both carry error.message). */
static void error_message(const telex_buf_t *body, long status, char *out, size_t outlen)
{
    json_t *j = telex_json_loadb(body->data ? body->data : "", body->len, 0, NULL);
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    if (m == NULL)
        m = json_string_value(json_object_get(j, "message"));
    snprintf(out, outlen, "the provider answered HTTP %ld%s%.300s", status, m ? ": " : "", m ? m : "");
    json_decref(j);
}

static void report_error_body(telex_sse_upstream_t *u)
{
    char msg[512];
    error_message(&u->body, u->status, msg, sizeof(msg));
    const char *body = u->body.data;
    size_t len = u->body.len;
    char *rewritten = NULL;
    if (u->hooks->error_body != NULL) {
        size_t rlen = 0;
        rewritten = u->hooks->error_body((int)u->status, body ? body : "", len, &rlen);
        if (rewritten != NULL) {
            body = rewritten;
            len = rlen;
        }
    }
    telex_sse_upstream_fail(u, TELEX_UPSTREAM_STATUS, (int)u->status, msg, body, len);
    free(rewritten);
}

static void on_complete(void *user, const char *error, int timed_out)
{
    telex_sse_upstream_t *u = user;
    u->call = NULL; /* the client frees the call after this returns */
    u->depth++;
    char msg[512];
    if (u->mode == MODE_WAITING) {
        snprintf(msg, sizeof(msg), "cannot reach the provider: %s", error ? error : "no response");
        telex_sse_upstream_fail(u, timed_out ? TELEX_UPSTREAM_TIMEOUT : TELEX_UPSTREAM_CONNECT, 0, msg, NULL, 0);
    } else if (u->mode == MODE_COLLECT_ERROR) {
        report_error_body(u);
    } else if (u->mode == MODE_COLLECT_PLAIN) {
        if (error != NULL) {
            snprintf(msg, sizeof(msg), "the provider's connection broke: %s", error);
            telex_sse_upstream_fail(u, TELEX_UPSTREAM_CUT, 0, msg, NULL, 0);
        } else if (u->hooks->on_plain != NULL && !telex_sse_upstream_stopped(u)) {
            u->hooks->on_plain(u, (int)u->status, u->body.data ? u->body.data : "", u->body.len);
        } else {
            telex_sse_upstream_respond(u, (int)u->status, u->body.data ? u->body.data : "", u->body.len);
        }
    } else if (error != NULL) {
        snprintf(msg, sizeof(msg), "the provider's stream broke off: %s", error);
        telex_sse_upstream_fail(u, TELEX_UPSTREAM_CUT, 0, msg, NULL, 0);
    } else if (u->hooks->on_eof != NULL && !telex_sse_upstream_stopped(u)) {
        u->hooks->on_eof(u);
    }
    /* whatever the hooks did, the call is over */
    telex_sse_upstream_fail(u, TELEX_UPSTREAM_CUT, 0, "the provider ended the stream before the answer was complete",
                            NULL, 0);
    u->depth--;
    u->finished = 1;
    maybe_free(u);
}

static void on_soon(uv_timer_t *timer)
{
    telex_sse_upstream_t *u = timer->data;
    u->depth++;
    telex_sse_upstream_fail(u, u->soon_kind, u->soon_status, u->soon_message, u->body.data, u->body.len);
    u->depth--;
    close_soon(u);
    maybe_free(u);
}

/* ------------------------------------------------------------ API */

telex_sse_upstream_t *telex_sse_upstream_new(const telex_provider_ops_t *ops, const telex_sse_upstream_hooks_t *hooks,
                                             void *adapter, const telex_upstream_env_t *env,
                                             const telex_upstream_sink_t *sink, void *user, int stream)
{
    telex_sse_upstream_t *u = telex_xcalloc(1, sizeof(*u));
    u->base.ops = ops;
    u->hooks = hooks;
    u->sink = *sink;
    u->user = user;
    u->loop = env->loop;
    u->http = env->http;
    u->stream = stream;
    u->body.limit = env->max_response_bytes;
    telex_sse_callbacks_t cb = {.on_event = on_sse_event};
    /* libtelex returns its out of memory (NULL); in this process that ends it
     * (the size is libtelex's own, unknown here: 0) */
    if ((u->parser = telex_sse_parser_new(env->max_event_bytes, &cb, u)) == NULL)
        telex_out_of_memory(0);
    /* EINVAL only for a limit below 6 bytes (limits.max_event_bytes is at least 64) */
    if (telex_sse_parser_set_strict(u->parser, 1) != 0)
        abort();
    /* the adapters use lengths only: an event's one data line is not copied */
    telex_sse_parser_set_in_place(u->parser, 1);
    u->adapter = adapter;
    return u;
}

int telex_sse_upstream_send(telex_sse_upstream_t *u, const char *url, const char *const *headers, const char *body,
                            size_t body_len, double connect_timeout_seconds)
{
    telex_http_request_t req = {
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = body_len,
        .connect_timeout_ms = (long)(connect_timeout_seconds * 1000),
        .http2 = (telex_http2_mode_t)u->http2,
    };
    telex_http_call_handlers_t handlers = {on_response, on_body, on_complete};
    u->call = telex_http_call_start(u->http, &req, &handlers, u);
    return u->call != NULL ? 0 : -1;
}

void telex_sse_upstream_fail_soon(telex_sse_upstream_t *u, telex_upstream_failure_kind_t kind, int status,
                                  const char *message, const char *body, size_t body_len)
{
    u->soon = telex_xmalloc(sizeof(*u->soon));
    u->soon_message = telex_xstrdup(message);
    u->body.limit = 0; /* no limit: the append cannot fail */
    if (body != NULL)
        telex_buf_append(&u->body, body, body_len);
    u->soon_kind = kind;
    u->soon_status = status;
    uv_timer_init(u->loop, u->soon);
    u->soon->data = u;
    uv_timer_start(u->soon, on_soon, 0, 0);
}

void telex_sse_upstream_discard(telex_sse_upstream_t *u)
{
    if (u != NULL)
        free_now(u);
}

telex_upstream_t *telex_sse_upstream_base(telex_sse_upstream_t *u)
{
    return &u->base;
}

void *telex_sse_upstream_adapter(const telex_sse_upstream_t *u)
{
    return u->adapter;
}

void telex_sse_upstream_pause(telex_upstream_t *upstream)
{
    telex_sse_upstream_t *u = (telex_sse_upstream_t *)upstream;
    if (u->call != NULL)
        telex_http_call_pause(u->call);
}

void telex_sse_upstream_resume(telex_upstream_t *upstream)
{
    telex_sse_upstream_t *u = (telex_sse_upstream_t *)upstream;
    if (u->call != NULL)
        telex_http_call_resume(u->call);
}

void telex_sse_upstream_cancel(telex_upstream_t *upstream)
{
    telex_sse_upstream_t *u = (telex_sse_upstream_t *)upstream;
    u->cancelled = 1;
    if (u->call != NULL) {
        telex_http_call_cancel(u->call);
        u->call = NULL;
    }
    close_soon(u);
    maybe_free(u);
}

#define MAX_EXTRA_HEADERS 32
#define MAX_OWN_HEADERS 4

telex_upstream_t *telex_sse_upstream_post_json(telex_sse_upstream_t *u, const telex_provider_t *provider,
                                               const char *url, const char *const *own_headers, json_t *body,
                                               size_t dump_flags)
{
    const char *headers[2 + MAX_OWN_HEADERS + MAX_EXTRA_HEADERS + 1];
    size_t n = 0;
    headers[n++] = "Content-Type: application/json";
    headers[n++] = u->stream ? "Accept: text/event-stream" : "Accept: application/json";
    for (size_t i = 0; own_headers != NULL && own_headers[i] != NULL && i < MAX_OWN_HEADERS; i++)
        headers[n++] = own_headers[i];
    char extra[MAX_EXTRA_HEADERS][512];
    size_t n_extra = 0;
    for (; n_extra < provider->n_headers && n_extra < MAX_EXTRA_HEADERS; n_extra++) {
        snprintf(extra[n_extra], sizeof(extra[n_extra]), "%s: %s", provider->headers[n_extra].name,
                 provider->headers[n_extra].value);
        headers[n++] = extra[n_extra];
    }
    headers[n] = NULL;
    u->http2 = provider->http2;
    char *text = telex_json_dumps(body, dump_flags);
    int rc = text != NULL ? telex_sse_upstream_send(u, url, headers, text, strlen(text), provider->timeout_seconds)
                          : -1;
    free(text);
    explicit_bzero(extra, n_extra * sizeof(extra[0])); /* only what was filled: 16 KiB per request otherwise */
    if (rc != 0) {
        telex_sse_upstream_discard(u);
        return NULL;
    }
    return telex_sse_upstream_base(u);
}
