/*
 * upstream/anthropic.c — provider kind `anthropic`: the Anthropic Messages
 * API, POST {base_url}/v1/messages with x-api-key and anthropic-version.
 *
 * The gateway's OpenAI request is translated (anthropic_request.c); one that
 * cannot be expressed is answered with a 400 in OpenAI's error shape,
 * reported from the loop (never from inside start). The transport is
 * sse_upstream.c's. Each Anthropic event becomes zero or more OpenAI
 * `chat.completion.chunk` objects (anthropic_stream.c), relayed in order;
 * message_stop is the end of the answer (a stream that ends cleanly after a
 * stop_reason but without message_stop is complete too). An `error` event
 * fails the stream (ERROR_EVENT); an event that is not JSON (BAD_JSON) or
 * not a valid Anthropic event (PROTOCOL) fails it too. Plain answers become
 * a `chat.completion`; HTTP error bodies become OpenAI-shaped, so the
 * gateway can relay a 4xx as it is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "upstream/anthropic_map.h"
#include "upstream/sse_upstream.h"
#include "util/alloc.h"
#include "util/json_dump.h"


typedef struct {
    telex_anthropic_stream_t stream;
    json_t *chunks; /* what the current event became; reused */
} anthropic_t;

static void destroy(void *p)
{
    anthropic_t *a = p;
    if (a == NULL)
        return;
    telex_anthropic_stream_free(&a->stream);
    json_decref(a->chunks);
    free(a);
}

/* Relays the chunks collected in a->chunks. anthropic_stream.c builds them
 * with jansson's checked constructors only, so each dumps. */
static void relay(telex_sse_upstream_t *u, anthropic_t *a)
{
    size_t i;
    json_t *chunk;
    json_array_foreach(a->chunks, i, chunk)
    {
        if (telex_sse_upstream_stopped(u))
            break;
        char *text = telex_json_dumps(chunk, JSON_COMPACT | JSON_PRESERVE_ORDER);
        telex_sse_upstream_chunk(u, text, strlen(text), chunk, NULL);
        free(text);
    }
    json_array_clear(a->chunks);
}

static void on_event(telex_sse_upstream_t *u, const telex_sse_event_t *ev)
{
    anthropic_t *a = telex_sse_upstream_adapter(u);
    telex_upstream_failure_kind_t kind = TELEX_UPSTREAM_PROTOCOL;
    char msg[512];
    int rc = telex_anthropic_stream_event(&a->stream, ev->type, ev->type_len, ev->data, ev->data_len, a->chunks,
                                          &kind, msg, sizeof(msg));
    relay(u, a);
    if (rc == TELEX_ANTHROPIC_DONE)
        telex_sse_upstream_done(u);
    else if (rc == TELEX_ANTHROPIC_FAILED)
        telex_sse_upstream_fail(u, kind, 0, msg, kind == TELEX_UPSTREAM_ERROR_EVENT ? ev->data : NULL,
                                kind == TELEX_UPSTREAM_ERROR_EVENT ? ev->data_len : 0);
}

static void on_eof(telex_sse_upstream_t *u)
{
    anthropic_t *a = telex_sse_upstream_adapter(u);
    if (telex_anthropic_stream_eof(&a->stream, a->chunks)) {
        relay(u, a);
        telex_sse_upstream_done(u); /* a stop_reason came; only message_stop is missing */
        return;
    }
    json_array_clear(a->chunks);
    telex_sse_upstream_fail(u, TELEX_UPSTREAM_CUT, 0, "the provider ended the stream before the answer was complete",
                            NULL, 0);
}

static void on_plain(telex_sse_upstream_t *u, int status, const char *body, size_t len)
{
    char msg[256];
    json_error_t jerr;
    json_t *in = json_loadb(body, len, 0, &jerr);
    if (!json_is_object(in)) {
        snprintf(msg, sizeof(msg), "the provider's answer is not a JSON object (%s)",
                 in == NULL ? jerr.text : "not an object");
        json_decref(in);
        telex_sse_upstream_fail(u, TELEX_UPSTREAM_BAD_JSON, 0, msg, NULL, 0);
        return;
    }
    json_t *answer = telex_anthropic_response(in, (int64_t)time(NULL), msg, sizeof(msg));
    json_decref(in);
    if (answer == NULL) {
        telex_sse_upstream_fail(u, TELEX_UPSTREAM_PROTOCOL, 0, msg, NULL, 0);
        return;
    }
    char *text = telex_json_dumps(answer, JSON_COMPACT | JSON_PRESERVE_ORDER); /* checked constructors: it dumps */
    json_decref(answer);
    telex_sse_upstream_respond(u, status, text, strlen(text));
    free(text);
}

static const telex_sse_upstream_hooks_t hooks = {
    .on_event = on_event,
    .on_eof = on_eof,
    .on_plain = on_plain,
    .error_body = telex_anthropic_error_body,
    .destroy = destroy,
};

/* A request Anthropic cannot take: a 400 with an OpenAI error body, soon.
 * -1 when the body cannot be written (anthropic_map.h). */
static int refuse(telex_sse_upstream_t *u, const telex_anthropic_request_error_t *err)
{
    char *body = telex_anthropic_request_error_body(err);
    if (body == NULL)
        return -1;
    telex_sse_upstream_fail_soon(u, TELEX_UPSTREAM_STATUS, 400, err->message, body, strlen(body));
    free(body);
    return 0;
}

static telex_upstream_t *anthropic_start(const telex_upstream_env_t *env, const telex_provider_t *provider,
                                         json_t *body, int stream, const telex_upstream_sink_t *sink, void *user)
{
    anthropic_t *a = telex_xcalloc(1, sizeof(*a));
    telex_anthropic_stream_init(&a->stream, (int64_t)time(NULL));
    a->chunks = json_array(); /* jansson aborts on out of memory in telex (cli/main.c) */
    telex_sse_upstream_t *u = telex_sse_upstream_new(&telex_anthropic_ops, &hooks, a, env, sink, user, stream);
    telex_anthropic_request_error_t err;
    json_t *req = telex_anthropic_request(body, provider->max_tokens > 0 ? provider->max_tokens : 4096, stream, &err);
    if (req == NULL) {
        if (err.oom || refuse(u, &err) != 0) {
            telex_sse_upstream_discard(u);
            return NULL;
        }
        return telex_sse_upstream_base(u);
    }

    char url[2048], key[1024], version[256];
    size_t nu = 0, nv = 0, nk = 0;
    url[0] = version[0] = key[0] = '\0';
    telex_upstream_append(url, sizeof(url), &nu, provider->base_url);
    telex_upstream_append(url, sizeof(url), &nu, "/v1/messages");
    telex_upstream_append(version, sizeof(version), &nv, "anthropic-version: ");
    telex_upstream_append(version, sizeof(version), &nv,
                          provider->anthropic_version != NULL ? provider->anthropic_version : "2023-06-01");
    if (provider->api_key != NULL) {
        telex_upstream_append(key, sizeof(key), &nk, "x-api-key: ");
        telex_upstream_append(key, sizeof(key), &nk, provider->api_key);
    }
    const char *own[] = {version, key[0] != '\0' ? key : NULL, NULL};
    telex_upstream_t *up =
        telex_sse_upstream_post_json(u, provider, url, own, req, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(req);
    explicit_bzero(key, sizeof(key));
    return up;
}

const telex_provider_ops_t telex_anthropic_ops = {anthropic_start, telex_sse_upstream_pause,
                                                  telex_sse_upstream_resume, telex_sse_upstream_cancel};
