/*
 * upstream/anthropic_stream.c — Anthropic's answers in OpenAI's shapes
 * (contract in anthropic_map.h; the mapping table is docs/providers.md).
 *
 * A stream is a state machine over Anthropic's events:
 *   message_start         → the first chunk, delta {role, content: ""}
 *   content_block_start   → text/thinking: their initial text, if any;
 *                           tool_use: a tool-call delta {index, id, type,
 *                           function: {name, arguments: ""}}
 *   content_block_delta   → text_delta: content; thinking_delta:
 *                           reasoning_content; input_json_delta: a
 *                           tool-call delta {index, function: {arguments}}
 *   content_block_stop    → nothing
 *   message_delta         → stop_reason: a chunk with finish_reason; usage
 *   message_stop          → the usage chunk (choices: []), then done
 *   ping                  → nothing;  error → a failure (ERROR_EVENT)
 * The OpenAI tool-call index counts tool_use blocks (content block indexes
 * count every block). Events of unknown types are skipped, as Anthropic's
 * versioning policy asks; a known event with a wrong shape, or out of order,
 * is a protocol failure. Usage: prompt_tokens = input_tokens + cache reads +
 * cache writes (OpenAI's prompt_tokens includes cached tokens),
 * prompt_tokens_details.cached_tokens = cache reads, completion_tokens =
 * output_tokens.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/anthropic_map.h"
#include "util/alloc.h"
#include "util/json_dump.h"
#include "util/json_load.h"

enum { BLOCK_NONE = 0, BLOCK_TEXT, BLOCK_THINKING, BLOCK_TOOL, BLOCK_OTHER };

void telex_anthropic_stream_init(telex_anthropic_stream_t *s, int64_t created)
{
    memset(s, 0, sizeof(*s));
    s->created = created;
    snprintf(s->id, sizeof(s->id), "msg");
}

void telex_anthropic_stream_free(telex_anthropic_stream_t *s)
{
    free(s->blocks);
    s->blocks = NULL;
    s->n_blocks = 0;
}

const char *telex_anthropic_finish_reason(const char *stop_reason)
{
    static const struct {
        const char *anthropic, *openai;
    } map[] = {
        {"end_turn", "stop"},     {"stop_sequence", "stop"},           {"pause_turn", "stop"},
        {"max_tokens", "length"}, {"model_context_window_exceeded", "length"},
        {"tool_use", "tool_calls"}, {"refusal", "content_filter"},
    };
    for (size_t i = 0; stop_reason != NULL && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(stop_reason, map[i].anthropic) == 0)
            return map[i].openai;
    return "stop";
}

/* ------------------------------------------------------------ building */

typedef struct {
    telex_anthropic_stream_t *s;
    json_t *out;
    telex_upstream_failure_kind_t *kind;
    char *message;
    size_t message_len;
} ev_ctx_t;

__attribute__((format(printf, 3, 4))) static int fail(ev_ctx_t *c, telex_upstream_failure_kind_t kind,
                                                      const char *fmt, ...)
{
    *c->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->message, c->message_len, fmt, ap);
    va_end(ap);
    return TELEX_ANTHROPIC_FAILED;
}

/* A jansson call failed. In the telex process (where jansson aborts on out
 * of memory) only the provider's message id or model, cut to fit inside a
 * UTF-8 character, gets here; tests/unit/test_anthropic.c fails allocations. */
static int oom(ev_ctx_t *c)
{
    return fail(c, TELEX_UPSTREAM_PROTOCOL,
                "the provider's stream could not be translated: its message id (over %zu bytes) or model (over %zu "
                "bytes) was cut inside a UTF-8 character",
                sizeof c->s->id - 1, sizeof c->s->model - 1);
}

static json_t *usage_object(const telex_anthropic_stream_t *s)
{
    json_int_t prompt = s->input_tokens + s->cache_read + s->cache_creation;
    return json_pack("{s:I,s:I,s:I,s:{s:I}}", "prompt_tokens", prompt, "completion_tokens", s->output_tokens,
                     "total_tokens", prompt + s->output_tokens, "prompt_tokens_details", "cached_tokens",
                     s->cache_read);
}

/* {"id","object","created","model"} + choices (stolen). */
static json_t *chunk_with(const telex_anthropic_stream_t *s, json_t *choices)
{
    if (choices == NULL)
        return NULL;
    return json_pack("{s:s,s:s,s:I,s:s,s:o}", "id", s->id, "object", "chat.completion.chunk", "created",
                     (json_int_t)s->created, "model", s->model, "choices", choices);
}

/* Appends a chunk with one choice: delta (stolen) and finish_reason. */
static int emit(ev_ctx_t *c, json_t *delta, const char *finish)
{
    if (delta == NULL)
        return oom(c);
    json_t *choices = json_pack("[{s:i,s:o,s:n,s:o}]", "index", 0, "delta", delta, "logprobs", "finish_reason",
                                finish != NULL ? json_string(finish) : json_null());
    json_t *chunk = chunk_with(c->s, choices);
    if (chunk == NULL || json_array_append_new(c->out, chunk) != 0)
        return oom(c);
    return TELEX_ANTHROPIC_CONTINUE;
}

static int emit_usage(telex_anthropic_stream_t *s, json_t *out)
{
    if (!s->has_usage)
        return 0;
    json_t *chunk = chunk_with(s, json_array());
    json_t *usage = usage_object(s);
    if (chunk == NULL || usage == NULL) {
        json_decref(chunk);
        json_decref(usage);
        return -1;
    }
    if (json_object_set_new(chunk, "usage", usage) != 0) { /* usage is stolen either way */
        json_decref(chunk);
        return -1;
    }
    return json_array_append_new(out, chunk) == 0 ? 0 : -1; /* chunk is stolen either way */
}

static int emit_text(ev_ctx_t *c, const char *field, json_t *text)
{
    if (json_string_length(text) == 0)
        return TELEX_ANTHROPIC_CONTINUE;
    return emit(c, json_pack("{s:O}", field, text), NULL);
}

static int emit_arguments(ev_ctx_t *c, int tool, const char *args, size_t len)
{
    if (len == 0)
        return TELEX_ANTHROPIC_CONTINUE;
    return emit(c, json_pack("{s:[{s:i,s:{s:s%}}]}", "tool_calls", "index", tool, "function", "arguments", args, len),
                NULL);
}

static void read_usage(telex_anthropic_stream_t *s, json_t *usage)
{
    if (!json_is_object(usage))
        return;
    s->has_usage = 1;
    static const char *const keys[] = {"input_tokens", "output_tokens", "cache_read_input_tokens",
                                       "cache_creation_input_tokens"};
    json_int_t *slots[] = {&s->input_tokens, &s->output_tokens, &s->cache_read, &s->cache_creation};
    for (size_t i = 0; i < 4; i++) {
        json_t *v = json_object_get(usage, keys[i]);
        if (json_is_integer(v) && json_integer_value(v) >= 0)
            *slots[i] = json_integer_value(v);
    }
}

/* ------------------------------------------------------------ events */

/* The content block an event names; NULL after a failure. */
static telex_anthropic_block_t *block_of(ev_ctx_t *c, json_t *ev, const char *type, int must_be_open)
{
    telex_anthropic_stream_t *s = c->s;
    json_t *index = json_object_get(ev, "index");
    if (!json_is_integer(index) || json_integer_value(index) < 0 ||
        json_integer_value(index) >= TELEX_ANTHROPIC_MAX_BLOCKS) {
        fail(c, TELEX_UPSTREAM_PROTOCOL, "the provider sent %s without a valid content block index", type);
        return NULL;
    }
    size_t i = (size_t)json_integer_value(index);
    if (i >= s->n_blocks) {
        size_t n = i + 1 > 2 * s->n_blocks ? i + 1 : 2 * s->n_blocks;
        telex_anthropic_block_t *b = telex_xrealloc(s->blocks, n * sizeof(*b));
        memset(b + s->n_blocks, 0, (n - s->n_blocks) * sizeof(*b));
        s->blocks = b;
        s->n_blocks = n;
    }
    telex_anthropic_block_t *b = &s->blocks[i];
    if (must_be_open && !b->open) {
        fail(c, TELEX_UPSTREAM_PROTOCOL, "the provider sent %s for content block %zu, which is not open", type, i);
        return NULL;
    }
    return b;
}

static int on_message_start(ev_ctx_t *c, json_t *ev)
{
    telex_anthropic_stream_t *s = c->s;
    json_t *msg = json_object_get(ev, "message");
    if (s->started)
        return fail(c, TELEX_UPSTREAM_PROTOCOL, "the provider sent a second message_start");
    if (!json_is_object(msg))
        return fail(c, TELEX_UPSTREAM_PROTOCOL, "the provider sent message_start without a message");
    const char *id = json_string_value(json_object_get(msg, "id"));
    const char *model = json_string_value(json_object_get(msg, "model"));
    if (id != NULL)
        snprintf(s->id, sizeof(s->id), "%s", id);
    snprintf(s->model, sizeof(s->model), "%s", model != NULL ? model : "");
    read_usage(s, json_object_get(msg, "usage"));
    s->started = 1;
    return emit(c, json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL);
}

static int on_block_start(ev_ctx_t *c, json_t *ev)
{
    telex_anthropic_block_t *b = block_of(c, ev, "content_block_start", 0);
    if (b == NULL)
        return TELEX_ANTHROPIC_FAILED;
    json_t *cb = json_object_get(ev, "content_block");
    const char *type = json_string_value(json_object_get(cb, "type"));
    if (type == NULL)
        return fail(c, TELEX_UPSTREAM_PROTOCOL, "the provider sent content_block_start without a typed content_block");
    if (b->kind != BLOCK_NONE)
        return fail(c, TELEX_UPSTREAM_PROTOCOL, "the provider started content block %lld twice",
                    (long long)json_integer_value(json_object_get(ev, "index")));
    b->open = 1;
    if (strcmp(type, "text") == 0) {
        b->kind = BLOCK_TEXT;
        return emit_text(c, "content", json_object_get(cb, "text"));
    }
    if (strcmp(type, "thinking") == 0) {
        b->kind = BLOCK_THINKING;
        return emit_text(c, "reasoning_content", json_object_get(cb, "thinking"));
    }
    if (strcmp(type, "tool_use") == 0) {
        const char *id = json_string_value(json_object_get(cb, "id"));
        const char *name = json_string_value(json_object_get(cb, "name"));
        if (id == NULL || name == NULL)
            return fail(c, TELEX_UPSTREAM_PROTOCOL, "the provider sent a tool_use block without an id and a name");
        b->kind = BLOCK_TOOL;
        b->tool = c->s->n_tools++;
        int rc = emit(c,
                      json_pack("{s:[{s:i,s:s,s:s,s:{s:s,s:s}}]}", "tool_calls", "index", b->tool, "id", id, "type",
                                "function", "function", "name", name, "arguments", ""),
                      NULL);
        json_t *input = json_object_get(cb, "input");
        if (rc == TELEX_ANTHROPIC_CONTINUE && json_object_size(input) > 0) {
            char *args = telex_json_dumps(input, JSON_COMPACT | JSON_PRESERVE_ORDER);
            rc = args != NULL ? emit_arguments(c, b->tool, args, strlen(args)) : oom(c);
            free(args);
        }
        return rc;
    }
    b->kind = BLOCK_OTHER; /* redacted_thinking, server tools...: not in OpenAI's format */
    return TELEX_ANTHROPIC_CONTINUE;
}

static int on_block_delta(ev_ctx_t *c, json_t *ev)
{
    telex_anthropic_block_t *b = block_of(c, ev, "content_block_delta", 1);
    if (b == NULL)
        return TELEX_ANTHROPIC_FAILED;
    json_t *delta = json_object_get(ev, "delta");
    const char *type = json_string_value(json_object_get(delta, "type"));
    if (type == NULL)
        return fail(c, TELEX_UPSTREAM_PROTOCOL, "the provider sent content_block_delta without a typed delta");
    static const struct {
        const char *type, *field;
        int block;
        const char *out;
    } kinds[] = {
        {"text_delta", "text", BLOCK_TEXT, "content"},
        {"thinking_delta", "thinking", BLOCK_THINKING, "reasoning_content"},
        {"input_json_delta", "partial_json", BLOCK_TOOL, NULL},
    };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(type, kinds[i].type) != 0)
            continue;
        json_t *v = json_object_get(delta, kinds[i].field);
        if (!json_is_string(v))
            return fail(c, TELEX_UPSTREAM_PROTOCOL, "the provider sent a %s without a string %s", type,
                        kinds[i].field);
        if (b->kind != kinds[i].block)
            return fail(c, TELEX_UPSTREAM_PROTOCOL, "the provider sent a %s into a content block of another type",
                        type);
        if (kinds[i].out != NULL)
            return emit_text(c, kinds[i].out, v);
        return emit_arguments(c, b->tool, json_string_value(v), json_string_length(v));
    }
    return TELEX_ANTHROPIC_CONTINUE; /* signature_delta, citations_delta, newer kinds */
}

static int on_message_delta(ev_ctx_t *c, json_t *ev)
{
    telex_anthropic_stream_t *s = c->s;
    json_t *delta = json_object_get(ev, "delta");
    if (!json_is_object(delta))
        return fail(c, TELEX_UPSTREAM_PROTOCOL, "the provider sent message_delta without a delta");
    read_usage(s, json_object_get(ev, "usage"));
    const char *stop = json_string_value(json_object_get(delta, "stop_reason"));
    if (stop == NULL)
        return TELEX_ANTHROPIC_CONTINUE;
    s->finished = 1;
    return emit(c, json_object(), telex_anthropic_finish_reason(stop));
}

static int dispatch(ev_ctx_t *c, const char *type, json_t *ev)
{
    telex_anthropic_stream_t *s = c->s;
    if (strcmp(type, "ping") == 0)
        return TELEX_ANTHROPIC_CONTINUE;
    if (strcmp(type, "error") == 0) {
        json_t *e = json_object_get(ev, "error");
        const char *m = json_string_value(json_object_get(e, "message"));
        const char *t = json_string_value(json_object_get(e, "type"));
        return fail(c, TELEX_UPSTREAM_ERROR_EVENT, "the provider reported an error: %.300s%s%.60s%s",
                    m != NULL ? m : "(no message)", t != NULL ? " (" : "", t != NULL ? t : "", t != NULL ? ")" : "");
    }
    static const char *const known[] = {"message_start", "content_block_start", "content_block_delta",
                                        "content_block_stop", "message_delta", "message_stop"};
    int k = -1;
    for (int i = 0; i < 6; i++)
        if (strcmp(type, known[i]) == 0)
            k = i;
    if (k < 0)
        return TELEX_ANTHROPIC_CONTINUE; /* a newer event type: skipped */
    if (k > 0 && !s->started)
        return fail(c, TELEX_UPSTREAM_PROTOCOL, "the provider sent %s before message_start", type);
    if (s->stopped)
        return fail(c, TELEX_UPSTREAM_PROTOCOL, "the provider sent %s after message_stop", type);
    switch (k) {
    case 0:
        return on_message_start(c, ev);
    case 1:
        return on_block_start(c, ev);
    case 2:
        return on_block_delta(c, ev);
    case 3: {
        telex_anthropic_block_t *b = block_of(c, ev, "content_block_stop", 1);
        if (b == NULL)
            return TELEX_ANTHROPIC_FAILED;
        b->open = 0;
        return TELEX_ANTHROPIC_CONTINUE;
    }
    case 4:
        return on_message_delta(c, ev);
    default:
        s->stopped = 1;
        if (!s->finished) { /* every OpenAI answer ends with a finish_reason */
            s->finished = 1;
            if (emit(c, json_object(), "stop") != TELEX_ANTHROPIC_CONTINUE)
                return TELEX_ANTHROPIC_FAILED;
        }
        return emit_usage(s, c->out) == 0 ? TELEX_ANTHROPIC_DONE : oom(c);
    }
}

int telex_anthropic_stream_event(telex_anthropic_stream_t *s, const char *type, size_t type_len, const char *data,
                                 size_t data_len, json_t *out, telex_upstream_failure_kind_t *kind, char *message,
                                 size_t message_len)
{
    ev_ctx_t c = {s, out, kind, message, message_len};
    json_error_t jerr;
    json_t *ev = telex_json_loadb(data, data_len, 0, &jerr);
    if (!json_is_object(ev)) {
        json_decref(ev);
        return fail(&c, TELEX_UPSTREAM_BAD_JSON, "the provider sent an event that is not a JSON object (%s)",
                    ev == NULL ? jerr.text : "not an object");
    }
    const char *t = json_string_value(json_object_get(ev, "type"));
    int named = type_len > 0 && !(type_len == 7 && memcmp(type, "message", 7) == 0);
    char name[64];
    int rc;
    if (t != NULL && named && (strlen(t) != type_len || memcmp(t, type, type_len) != 0)) {
        rc = fail(&c, TELEX_UPSTREAM_PROTOCOL, "the provider sent an event '%.*s' whose data is of type '%.40s'",
                  (int)(type_len > 40 ? 40 : type_len), type, t);
    } else if (t == NULL && !named) {
        rc = fail(&c, TELEX_UPSTREAM_PROTOCOL, "the provider sent an event without a type");
    } else {
        if (t == NULL) {
            snprintf(name, sizeof(name), "%.*s", (int)(type_len >= sizeof(name) ? sizeof(name) - 1 : type_len), type);
            t = name;
        }
        rc = dispatch(&c, t, ev);
    }
    json_decref(ev);
    return rc;
}

int telex_anthropic_stream_eof(telex_anthropic_stream_t *s, json_t *out)
{
    if (!s->finished || s->stopped)
        return 0;
    s->stopped = 1;
    return emit_usage(s, out) == 0;
}

/* ------------------------------------------------------------ plain answers */

json_t *telex_anthropic_response(json_t *in, int64_t created, char *message, size_t message_len)
{
    json_t *content = json_object_get(in, "content");
    if (!json_is_array(content)) {
        snprintf(message, message_len, "the provider's answer is not an Anthropic message (no content array)");
        return NULL;
    }
    telex_anthropic_stream_t s;
    telex_anthropic_stream_init(&s, created);
    const char *id = json_string_value(json_object_get(in, "id"));
    const char *model = json_string_value(json_object_get(in, "model"));
    snprintf(s.id, sizeof(s.id), "%s", id != NULL ? id : "msg");
    snprintf(s.model, sizeof(s.model), "%s", model != NULL ? model : "");
    read_usage(&s, json_object_get(in, "usage"));

    json_t *msg = json_pack("{s:s}", "role", "assistant"), *tools = json_array();
    char *text = NULL, *thinking = NULL;
    size_t text_len = 0, thinking_len = 0;
    int ok = msg != NULL && tools != NULL, has_text = 0;
    size_t i;
    json_t *b;
    json_array_foreach(content, i, b)
    {
        const char *type = json_string_value(json_object_get(b, "type"));
        if (!ok || type == NULL)
            continue;
        json_t *t = NULL;
        char **acc = NULL;
        size_t *acc_len = NULL;
        if (strcmp(type, "text") == 0) {
            t = json_object_get(b, "text");
            acc = &text;
            acc_len = &text_len;
            has_text = 1;
        } else if (strcmp(type, "thinking") == 0) {
            t = json_object_get(b, "thinking");
            acc = &thinking;
            acc_len = &thinking_len;
        } else if (strcmp(type, "tool_use") == 0) {
            json_t *input = json_object_get(b, "input");
            char *args =
                input != NULL ? telex_json_dumps(input, JSON_COMPACT | JSON_PRESERVE_ORDER) : telex_xstrdup("{}");
            json_t *tc = json_pack("{s:s?,s:s,s:{s:s?,s:s?}}", "id", json_string_value(json_object_get(b, "id")), "type",
                                   "function", "function", "name", json_string_value(json_object_get(b, "name")),
                                   "arguments", args);
            if (args != NULL && tc != NULL) {
                ok = json_array_append_new(tools, tc) == 0; /* tc is stolen either way */
            } else {
                ok = 0;
                json_decref(tc);
            }
            free(args);
        }
        if (acc != NULL && json_is_string(t)) {
            size_t n = json_string_length(t);
            char *grown = telex_xrealloc(*acc, *acc_len + n + 1);
            memcpy(grown + *acc_len, json_string_value(t), n);
            *acc_len += n;
            grown[*acc_len] = '\0';
            *acc = grown;
        }
    }
    if (ok) {
        json_t *c = has_text || json_array_size(tools) == 0 ? json_stringn(text ? text : "", text_len) : json_null();
        ok = c != NULL && json_object_set_new(msg, "content", c) == 0 &&
             json_object_set_new(msg, "refusal", json_null()) == 0;
        if (ok && thinking != NULL)
            ok = json_object_set_new(msg, "reasoning_content", json_stringn(thinking, thinking_len)) == 0;
        if (ok && json_array_size(tools) > 0)
            ok = json_object_set(msg, "tool_calls", tools) == 0;
    }
    free(text);
    free(thinking);
    json_decref(tools);
    json_t *out = NULL;
    if (ok) {
        const char *stop = json_string_value(json_object_get(in, "stop_reason"));
        out = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:O,s:n,s:s}]}", "id", s.id, "object", "chat.completion",
                        "created", (json_int_t)created, "model", s.model, "choices", "index", 0, "message", msg,
                        "logprobs", "finish_reason", telex_anthropic_finish_reason(stop));
        if (out != NULL && s.has_usage && json_object_set_new(out, "usage", usage_object(&s)) != 0) {
            json_decref(out);
            out = NULL;
        }
    }
    json_decref(msg);
    if (out == NULL) /* as oom() above: in the telex process only an id or model cut inside a character */
        snprintf(message, message_len,
                 "the provider's answer could not be translated: its message id (over %zu bytes) or model (over %zu "
                 "bytes) was cut inside a UTF-8 character",
                 sizeof s.id - 1, sizeof s.model - 1);
    return out;
}

char *telex_anthropic_error_body(int status, const char *body, size_t len, size_t *out_len)
{
    json_t *in = telex_json_loadb(body, len, 0, NULL);
    json_t *e = json_object_get(in, "error");
    const char *m = json_string_value(json_object_get(e, "message"));
    const char *t = json_string_value(json_object_get(e, "type"));
    char fallback[96];
    if (m == NULL) {
        snprintf(fallback, sizeof(fallback), "the provider answered HTTP %d", status);
        m = fallback;
    }
    if (t == NULL)
        t = status == 429 ? "rate_limit_error" : status >= 500 ? "api_error" : "invalid_request_error";
    json_t *o = json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message", m, "type", t, "param", "code");
    char *text = o != NULL ? telex_json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    json_decref(in);
    if (text != NULL)
        *out_len = strlen(text);
    return text;
}
