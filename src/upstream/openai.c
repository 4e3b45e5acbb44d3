/*
 * upstream/openai.c — any OpenAI-compatible /chat/completions endpoint
 * (OpenAI, vLLM, llama.cpp server, Ollama's /v1, OpenRouter...) and Azure
 * OpenAI, which speaks the same protocol at another URL with another key
 * header:
 *   openai  POST {base_url}/chat/completions            Authorization: Bearer KEY
 *   azure   POST {endpoint}/openai/deployments/{deployment}/chat/completions
 *                ?api-version={api_version}             api-key: KEY
 * (the deployment is the route's upstream model name, percent-encoded).
 *
 * The request body is sent as the gateway built it. The transport and its
 * checks are sse_upstream.c's; here each event's data must be a JSON object
 * (a chunk, relayed untouched: tool-call deltas, reasoning_content and
 * refusal pass as they are) or the literal [DONE]. An object with a non-null
 * "error" is the provider's error event. A provider that ends the stream
 * without [DONE] still completes the answer if every choice (the request's
 * n) got its top-level finish_reason; otherwise the answer was cut. Plain answers and error
 * bodies are relayed as they are.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/sse_upstream.h"
#include "util/alloc.h"
#include "util/json_load.h"
#include "util/json_scan.h"


#define MAX_CHOICES 128 /* choices whose finish is tracked (n beyond it: finish_seen never set) */

typedef struct {
    int finish_seen; /* every choice (n of them) has finished */
    int n_choices;   /* the request's n (1 by default) */
    int n_finished;
    unsigned char finished[MAX_CHOICES];
    telex_json_memo_t memo; /* the chunks' shared first bytes (json_scan.h) */
} openai_t;

static void openai_free(void *adapter)
{
    openai_t *o = adapter;
    telex_json_memo_clear(&o->memo);
    free(o);
}

/* The answer is complete when all n choices have finished (n >= 1). */
static void mark_finished(openai_t *o, uint64_t index)
{
    if (index < MAX_CHOICES && !o->finished[index]) {
        o->finished[index] = 1;
        o->n_finished++;
    }
    if (o->n_finished >= o->n_choices)
        o->finish_seen = 1;
}

/* Marks the choices this chunk finishes, from its tree (a chunk the scan
 * could not say it for: json_scan.h's finish_odd, or one parsed anyway): a
 * top-level "finish_reason" of a choice (one nested deeper, e.g. inside
 * logprobs, is not the choice's). */
static void note_finishes(openai_t *o, json_t *chunk)
{
    json_t *choices = json_object_get(chunk, "choices");
    size_t i;
    json_t *choice;
    json_array_foreach(choices, i, choice)
    {
        json_t *fr = json_object_get(choice, "finish_reason");
        if (fr == NULL || json_is_null(fr))
            continue;
        json_t *jindex = json_object_get(choice, "index");
        json_int_t index = json_is_integer(jindex) ? json_integer_value(jindex) : (json_int_t)i;
        if (index >= 0)
            mark_finished(o, (uint64_t)index);
    }
}

static void on_event(telex_sse_upstream_t *u, const telex_sse_event_t *ev)
{
    openai_t *o = telex_sse_upstream_adapter(u);
    if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
        telex_sse_upstream_done(u);
        return;
    }
    /* Most chunks are only validated and relayed: no tree is built unless
     * one carries usage or an error (a tree per chunk was most of telex's
     * CPU; see docs/benchmarks.md), and the bytes a chunk shares with the
     * ones before it are not scanned again (the memo). */
    telex_json_facts_t facts;
    if (telex_json_scan_object_memo(ev->data, ev->data_len, &facts, &o->memo) != 0) {
        char msg[256];
        snprintf(msg, sizeof(msg), "the provider sent a chunk that is not a JSON object (bad byte at offset %zu)",
                 facts.error_at);
        telex_sse_upstream_fail(u, TELEX_UPSTREAM_BAD_JSON, 0, msg, NULL, 0);
        return;
    }
    if (facts.finish && !facts.top_error && !facts.top_usage) {
        if (!facts.finish_odd) {
            /* once per choice: the scan says which choices it finishes */
            for (int i = 0; i < facts.n_finishes; i++)
                mark_finished(o, facts.finish_index[i]);
        } else {
            /* anything unusual: parse it to see */
            json_t *chunk = telex_json_loadb(ev->data, ev->data_len, 0, NULL);
            note_finishes(o, chunk);
            json_decref(chunk);
        }
    }
    if (!facts.top_error && !facts.top_usage) {
        telex_sse_upstream_chunk(u, ev->data, ev->data_len, NULL, &facts);
        return;
    }
    json_error_t jerr;
    json_t *chunk = telex_json_loadb(ev->data, ev->data_len, 0, &jerr);
    if (chunk == NULL || !json_is_object(chunk)) {
        char msg[256];
        snprintf(msg, sizeof(msg), "the provider sent a chunk that is not a JSON object (%s)",
                 chunk == NULL ? jerr.text : "not an object");
        json_decref(chunk);
        telex_sse_upstream_fail(u, TELEX_UPSTREAM_BAD_JSON, 0, msg, NULL, 0);
        return;
    }
    json_t *error = json_object_get(chunk, "error");
    if (error != NULL && !json_is_null(error)) {
        const char *m = json_string_value(json_object_get(error, "message"));
        char msg[512];
        snprintf(msg, sizeof(msg), "the provider reported an error: %s", m != NULL ? m : "(no message)");
        telex_sse_upstream_fail(u, TELEX_UPSTREAM_ERROR_EVENT, 0, msg, ev->data, ev->data_len);
        json_decref(chunk);
        return;
    }
    note_finishes(o, chunk);
    telex_sse_upstream_chunk(u, ev->data, ev->data_len, chunk, &facts);
    json_decref(chunk);
}

static void on_eof(telex_sse_upstream_t *u)
{
    openai_t *o = telex_sse_upstream_adapter(u);
    if (o->finish_seen)
        telex_sse_upstream_done(u); /* complete answer, provider just omits [DONE] */
    else
        telex_sse_upstream_fail(u, TELEX_UPSTREAM_CUT, 0,
                                "the provider ended the stream before the answer was complete", NULL, 0);
}

static const telex_sse_upstream_hooks_t hooks = {
    .on_event = on_event,
    .on_eof = on_eof,
    .destroy = openai_free,
};

/* s percent-encoded as one URL path segment (RFC 3986 unreserved kept). */
static void encode_segment(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s != '\0' && n + 4 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
            ch == '.' || ch == '_' || ch == '~') {
            out[n++] = (char)ch;
        } else {
            out[n++] = '%';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    out[n] = '\0';
}

/* The URL and the key header for the provider's kind. */
static void endpoint_of(const telex_provider_t *provider, json_t *body, char *url, size_t url_len, char *key,
                        size_t key_len)
{
    size_t u = 0, k = 0;
    url[0] = '\0';
    key[0] = '\0';
    if (provider->kind == TELEX_PROVIDER_AZURE) {
        char deployment[512];
        const char *model = json_string_value(json_object_get(body, "model"));
        encode_segment(deployment, sizeof(deployment), model != NULL ? model : "");
        telex_upstream_append(url, url_len, &u, provider->base_url);
        telex_upstream_append(url, url_len, &u, "/openai/deployments/");
        telex_upstream_append(url, url_len, &u, deployment);
        telex_upstream_append(url, url_len, &u, "/chat/completions?api-version=");
        telex_upstream_append(url, url_len, &u, provider->api_version != NULL ? provider->api_version : "");
        if (provider->api_key != NULL) {
            telex_upstream_append(key, key_len, &k, "api-key: ");
            telex_upstream_append(key, key_len, &k, provider->api_key);
        }
    } else {
        telex_upstream_append(url, url_len, &u, provider->base_url);
        telex_upstream_append(url, url_len, &u, "/chat/completions");
        if (provider->api_key != NULL) {
            telex_upstream_append(key, key_len, &k, "Authorization: Bearer ");
            telex_upstream_append(key, key_len, &k, provider->api_key);
        }
    }
}

static telex_upstream_t *openai_start(const telex_upstream_env_t *env, const telex_provider_t *provider,
                                      json_t *body, int stream, const telex_upstream_sink_t *sink, void *user)
{
    openai_t *o = telex_xcalloc(1, sizeof(*o));
    json_t *n = json_object_get(body, "n");
    o->n_choices = json_is_integer(n) && json_integer_value(n) > 1 ? (int)(json_integer_value(n) > MAX_CHOICES + 1
                                                                                ? MAX_CHOICES + 1
                                                                                : json_integer_value(n))
                                                                  : 1;
    telex_sse_upstream_t *u = telex_sse_upstream_new(&telex_openai_ops, &hooks, o, env, sink, user, stream);
    char url[2048], key[1024];
    endpoint_of(provider, body, url, sizeof(url), key, sizeof(key));
    const char *own[] = {key[0] != '\0' ? key : NULL, NULL};
    telex_upstream_t *up = telex_sse_upstream_post_json(u, provider, url, own, body, JSON_COMPACT);
    explicit_bzero(key, sizeof(key));
    return up;
}

const telex_provider_ops_t telex_openai_ops = {openai_start, telex_sse_upstream_pause, telex_sse_upstream_resume,
                                               telex_sse_upstream_cancel};
