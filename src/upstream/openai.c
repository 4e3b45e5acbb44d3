/*
 * upstream/openai.c — any OpenAI-compatible /chat/completions endpoint
 * (OpenAI, vLLM, llama.cpp server, Ollama's /v1, OpenRouter...).
 *
 * The request body is sent as the gateway built it. A streamed answer is fed
 * through libtelex's parser; each event's data must be a JSON object (a
 * chunk) or the literal [DONE], and every line must be an event-stream field
 * (data, event, id, retry), a comment or blank: a WHATWG parser would skip
 * anything else, but from a provider it means a broken stream. A provider that ends the stream without
 * [DONE] still completes the answer if a chunk carried a finish_reason;
 * otherwise the answer was cut. Error bodies and plain answers are collected
 * up to env->max_response_bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <telex/sse.h>

#include "upstream/provider.h"
#include "util/buf.h"

#define MAX_HEADERS 32

typedef enum { MODE_WAITING, MODE_STREAM, MODE_COLLECT_ERROR, MODE_COLLECT_PLAIN } mode_t_;

typedef struct {
    telex_upstream_t base;
    telex_upstream_sink_t sink;
    void *user;
    telex_http_call_t *call;
    telex_sse_parser_t *parser;
    telex_buf_t body; /* error or plain response */
    int stream;
    mode_t_ mode;
    long status;
    char retry_after[32];
    int chunks;
    int finish_seen;
    /* line check (check_lines): where we are in the current line */
    int line_state;
    int after_cr;
    size_t stream_bytes;
    size_t bom_matched;
    size_t name_len;
    char name[8];
    int finished; /* reported done/failure/response */
    int cancelled;
    int depth; /* adapter frames on the stack */
} openai_t;

static void maybe_free(openai_t *o)
{
    if (o->depth > 0 || !(o->cancelled || o->finished))
        return;
    if (o->call == NULL) {
        telex_sse_parser_free(o->parser);
        telex_buf_free(&o->body);
        free(o);
    }
}

static void fail(openai_t *o, telex_upstream_failure_kind_t kind, int status, const char *message, const char *body,
                 size_t body_len)
{
    if (o->finished || o->cancelled)
        return;
    o->finished = 1;
    telex_upstream_failure_t f = {kind, status, o->retry_after, message, body, body_len};
    o->sink.on_failure(o->user, &f);
}

static void finish_done(openai_t *o)
{
    if (o->finished || o->cancelled)
        return;
    o->finished = 1;
    o->sink.on_done(o->user);
}

static int has_finish_reason(json_t *chunk)
{
    json_t *choices = json_object_get(chunk, "choices");
    size_t i;
    json_t *choice;
    json_array_foreach(choices, i, choice)
    {
        json_t *fr = json_object_get(choice, "finish_reason");
        if (fr != NULL && !json_is_null(fr))
            return 1;
    }
    return 0;
}

static int on_sse_event(void *user, const telex_sse_event_t *ev)
{
    openai_t *o = user;
    if (o->finished || o->cancelled)
        return 1;
    if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
        finish_done(o);
        return 1;
    }
    json_error_t jerr;
    json_t *chunk = json_loadb(ev->data, ev->data_len, 0, &jerr);
    if (chunk == NULL || !json_is_object(chunk)) {
        char msg[256];
        snprintf(msg, sizeof(msg), "the provider sent a chunk that is not a JSON object (%s)",
                 chunk == NULL ? jerr.text : "not an object");
        json_decref(chunk);
        fail(o, TELEX_UPSTREAM_BAD_JSON, 0, msg, NULL, 0);
        return 1;
    }
    json_t *error = json_object_get(chunk, "error");
    if (error != NULL && !json_is_null(error)) {
        const char *m = json_string_value(json_object_get(error, "message"));
        char msg[512];
        snprintf(msg, sizeof(msg), "the provider reported an error: %s", m != NULL ? m : "(no message)");
        fail(o, TELEX_UPSTREAM_ERROR_EVENT, 0, msg, ev->data, ev->data_len);
        json_decref(chunk);
        return 1;
    }
    if (has_finish_reason(chunk))
        o->finish_seen = 1;
    o->chunks++;
    o->sink.on_chunk(o->user, ev->data, ev->data_len, chunk);
    json_decref(chunk);
    return o->finished || o->cancelled;
}

enum { LINE_START, LINE_NAME, LINE_REST };

static int known_field(const char *name, size_t len)
{
    return (len == 4 && memcmp(name, "data", 4) == 0) || (len == 5 && memcmp(name, "event", 5) == 0) ||
           (len == 2 && memcmp(name, "id", 2) == 0) || (len == 5 && memcmp(name, "retry", 5) == 0);
}

/* Follows the lines of the stream across feeds. Returns len when every line
 * so far is a known field, a comment or blank, else the offset of the byte
 * that shows a line is not (the parser gets the bytes before it). */
static size_t check_lines(openai_t *o, const char *data, size_t len)
{
    static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};
    for (size_t i = 0; i < len; i++, o->stream_bytes++) {
        unsigned char ch = (unsigned char)data[i];
        if (o->stream_bytes < 3 && o->bom_matched == o->stream_bytes) {
            if (ch == bom[o->stream_bytes]) {
                o->bom_matched++; /* a byte order mark at the start is allowed */
                continue;
            }
            if (o->bom_matched > 0)
                return i;
        }
        int eol = ch == '\r' || ch == '\n';
        if (o->after_cr && ch == '\n') {
            o->after_cr = 0;
            continue;
        }
        o->after_cr = ch == '\r';
        switch (o->line_state) {
        case LINE_START:
            if (eol)
                break;
            if (ch == ':') {
                o->line_state = LINE_REST;
                break;
            }
            o->line_state = LINE_NAME;
            o->name_len = 0;
            /* fall through */
        case LINE_NAME:
            if (eol || ch == ':') {
                if (!known_field(o->name, o->name_len))
                    return i;
                o->line_state = eol ? LINE_START : LINE_REST;
                o->name_len = 0;
            } else if (o->name_len == 5) {
                return i; /* longer than any field name */
            } else {
                o->name[o->name_len++] = (char)ch;
            }
            break;
        default:
            if (eol)
                o->line_state = LINE_START;
        }
    }
    return len;
}

static void on_response(void *user, long status, const char *content_type, const char *retry_after)
{
    openai_t *o = user;
    o->status = status;
    snprintf(o->retry_after, sizeof(o->retry_after), "%s", retry_after);
    if (status >= 400) {
        o->mode = MODE_COLLECT_ERROR;
    } else if (!o->stream) {
        o->mode = MODE_COLLECT_PLAIN;
    } else if (strncasecmp(content_type, "text/event-stream", 17) == 0) {
        o->mode = MODE_STREAM;
    } else {
        char msg[256];
        snprintf(msg, sizeof(msg), "the provider answered with Content-Type '%.100s' instead of an event stream",
                 content_type[0] ? content_type : "(none)");
        o->depth++;
        fail(o, TELEX_UPSTREAM_PROTOCOL, (int)status, msg, NULL, 0);
        o->depth--;
        telex_http_call_cancel(o->call);
        o->call = NULL;
        maybe_free(o);
    }
}

static void on_body(void *user, const char *data, size_t len)
{
    openai_t *o = user;
    if (o->finished || o->cancelled)
        return;
    if (o->mode != MODE_STREAM) {
        if (telex_buf_append(&o->body, data, len) != 0) {
            o->depth++;
            fail(o, TELEX_UPSTREAM_PROTOCOL, (int)o->status, "the provider's response is larger than the limit",
                 NULL, 0);
            o->depth--;
            telex_http_call_cancel(o->call);
            o->call = NULL;
            maybe_free(o);
        }
        return;
    }
    o->depth++;
    size_t good = check_lines(o, data, len);
    int rc = telex_sse_parser_feed(o->parser, data, good);
    if (rc == TELEX_SSE_ETOOBIG)
        fail(o, TELEX_UPSTREAM_PROTOCOL, 0, "the provider sent an event larger than limits.max_event_bytes", NULL,
             0);
    else if (rc == TELEX_SSE_ENOMEM)
        fail(o, TELEX_UPSTREAM_PROTOCOL, 0, "out of memory while parsing the provider's stream", NULL, 0);
    else if (good < len)
        fail(o, TELEX_UPSTREAM_PROTOCOL, 0, "the provider sent a line that is not an event-stream field", NULL, 0);
    o->depth--;
    if (o->finished && o->call != NULL) {
        /* Done or failed: nothing more is needed from this connection. */
        telex_http_call_cancel(o->call);
        o->call = NULL;
    }
    maybe_free(o);
}

/* An error body's message, when it is OpenAI-shaped. */
static void error_message(const telex_buf_t *body, long status, char *out, size_t outlen)
{
    json_t *j = json_loadb(body->data ? body->data : "", body->len, 0, NULL);
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    if (m == NULL)
        m = json_string_value(json_object_get(j, "message"));
    snprintf(out, outlen, "the provider answered HTTP %ld%s%.300s", status, m ? ": " : "", m ? m : "");
    json_decref(j);
}

static void on_complete(void *user, const char *error, int timed_out)
{
    openai_t *o = user;
    o->call = NULL; /* the client frees the call after this returns */
    o->depth++;
    char msg[512];
    if (o->mode == MODE_WAITING) {
        snprintf(msg, sizeof(msg), "cannot reach the provider: %s", error ? error : "no response");
        fail(o, timed_out ? TELEX_UPSTREAM_TIMEOUT : TELEX_UPSTREAM_CONNECT, 0, msg, NULL, 0);
    } else if (o->mode == MODE_COLLECT_ERROR) {
        error_message(&o->body, o->status, msg, sizeof(msg));
        fail(o, TELEX_UPSTREAM_STATUS, (int)o->status, msg, o->body.data, o->body.len);
    } else if (o->mode == MODE_COLLECT_PLAIN) {
        if (error != NULL) {
            snprintf(msg, sizeof(msg), "the provider's connection broke: %s", error);
            fail(o, TELEX_UPSTREAM_CUT, 0, msg, NULL, 0);
        } else if (!o->finished && !o->cancelled) {
            o->finished = 1;
            o->sink.on_response(o->user, (int)o->status, o->body.data ? o->body.data : "", o->body.len);
        }
    } else if (error != NULL) {
        snprintf(msg, sizeof(msg), "the provider's stream broke off: %s", error);
        fail(o, TELEX_UPSTREAM_CUT, 0, msg, NULL, 0);
    } else if (o->finish_seen) {
        finish_done(o); /* complete answer, provider just omits [DONE] */
    } else {
        fail(o, TELEX_UPSTREAM_CUT, 0, "the provider ended the stream before the answer was complete", NULL, 0);
    }
    o->depth--;
    o->finished = 1;
    maybe_free(o);
}

static telex_upstream_t *openai_start(const telex_upstream_env_t *env, const telex_provider_t *provider,
                                      json_t *body, int stream, const telex_upstream_sink_t *sink, void *user)
{
    openai_t *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->base.ops = &telex_openai_ops;
    o->sink = *sink;
    o->user = user;
    o->stream = stream;
    o->body.limit = env->max_response_bytes;
    telex_sse_callbacks_t cb = {.on_event = on_sse_event};
    if ((o->parser = telex_sse_parser_new(env->max_event_bytes, &cb, o)) == NULL)
        goto fail;

    char url[2048];
    snprintf(url, sizeof(url), "%s/chat/completions", provider->base_url);
    char auth[1024];
    const char *headers[MAX_HEADERS + 4];
    size_t n = 0;
    headers[n++] = "Content-Type: application/json";
    headers[n++] = stream ? "Accept: text/event-stream" : "Accept: application/json";
    if (provider->api_key != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", provider->api_key);
        headers[n++] = auth;
    }
    char extra[MAX_HEADERS][512];
    for (size_t i = 0; i < provider->n_headers && i < MAX_HEADERS; i++) {
        snprintf(extra[i], sizeof(extra[i]), "%s: %s", provider->headers[i].name, provider->headers[i].value);
        headers[n++] = extra[i];
    }
    headers[n] = NULL;

    char *text = json_dumps(body, JSON_COMPACT);
    if (text == NULL)
        goto fail;
    telex_http_request_t req = {
        .url = url,
        .headers = headers,
        .body = text,
        .body_len = strlen(text),
        .connect_timeout_ms = (long)(provider->timeout_seconds * 1000),
    };
    telex_http_call_handlers_t handlers = {on_response, on_body, on_complete};
    o->call = telex_http_call_start(env->http, &req, &handlers, o);
    free(text);
    explicit_bzero(auth, sizeof(auth));
    if (o->call == NULL)
        goto fail;
    return &o->base;
fail:
    telex_sse_parser_free(o->parser);
    free(o);
    return NULL;
}

static void openai_pause(telex_upstream_t *u)
{
    openai_t *o = (openai_t *)u;
    if (o->call != NULL)
        telex_http_call_pause(o->call);
}

static void openai_resume(telex_upstream_t *u)
{
    openai_t *o = (openai_t *)u;
    if (o->call != NULL)
        telex_http_call_resume(o->call);
}

static void openai_cancel(telex_upstream_t *u)
{
    openai_t *o = (openai_t *)u;
    o->cancelled = 1;
    if (o->call != NULL) {
        telex_http_call_cancel(o->call);
        o->call = NULL;
    }
    maybe_free(o);
}

const telex_provider_ops_t telex_openai_ops = {openai_start, openai_pause, openai_resume, openai_cancel};
