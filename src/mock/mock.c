/*
 * mock/mock.c — the mock's front: routing, request validation (an OpenAI
 * chat request on /v1/chat/completions and the Azure path, an Anthropic
 * Messages request on /v1/messages — checked as strictly as Anthropic does,
 * so a gateway that sends OpenAI-only parameters or malformed blocks there
 * gets a 400), the per-request `mock` object, the small endpoints
 * (/healthz, /v1/models, /mock/requests) and error replies in the request's
 * format. Chat completions are handed, fully resolved, to exchange.c. See
 * mock.h for the contract and docs/mock.md for the reference.
 */
#include "mock/mock_internal.h"
#include "util/alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_OVERSIZE (64 * 1024 * 1024)

/* ------------------------------------------------------------- replies */

static void reply_json(h2o_req_t *req, int status, const char *reason, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    req->res.content_length = len;
    h2o_send_inline(req, body, len);
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 500 ? "Client Error" : "Server Error";
    }
}

/* Sends error object o (consumed; NULL = out of memory, then `fallback`)
 * with a Retry-After when retry_after >= 0. */
static void reply_error_object(h2o_req_t *req, int status, json_t *o, size_t dump_flags, const char *fallback,
                               int64_t retry_after)
{
    char *body = o ? json_dumps(o, dump_flags) : NULL;
    json_decref(o);
    if (retry_after >= 0) {
        char *v = h2o_mem_alloc_pool(&req->pool, 24);
        int n = snprintf(v, 24, "%lld", (long long)retry_after);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, v, (size_t)n);
    }
    if (body == NULL) {
        reply_json(req, status, reason_of(status), fallback, strlen(fallback));
        return;
    }
    reply_json(req, status, reason_of(status), body, strlen(body));
    free(body);
}

void telex_mock_reply_error(h2o_req_t *req, int status, const char *message, const char *type, const char *param,
                            const char *code, int64_t retry_after)
{
    json_t *o = json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", message, "type", type, "param",
                          param ? json_string(param) : json_null(), "code", code ? json_string(code) : json_null());
    reply_error_object(req, status, o, JSON_COMPACT,
                       "{\"error\":{\"message\":\"mock: out of memory\",\"type\":\"server_error\",\"param\":null,"
                       "\"code\":null}}",
                       retry_after);
}

const char *telex_mock_anthropic_error_type(int status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

void telex_mock_reply_anthropic_error(h2o_req_t *req, int status, const char *message, int64_t retry_after)
{
    json_t *o = json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type",
                          telex_mock_anthropic_error_type(status), "message", message);
    reply_error_object(req, status, o, JSON_COMPACT | JSON_PRESERVE_ORDER,
                       "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"mock: out of memory\"}}",
                       retry_after);
}

/* Records the end of a request answered here (not by an exchange). */
static void journal_done(telex_mock_t *m, uint64_t seq, int status)
{
    telex_mock_progress_t p = {0};
    p.status = status;
    p.completed = 1;
    p.ended_ms = telex_mock_unix_ms();
    p.outcome = status < 400 ? "completed" : "rejected";
    telex_mock_journal_update(m->journal, seq, &p);
}

static void reject_as(telex_mock_t *m, uint64_t seq, h2o_req_t *req, int format, int status, const char *message,
                      const char *param)
{
    const char *type = status == 404 ? "not_found_error" : "invalid_request_error";
    if (format == TELEX_MOCK_FORMAT_ANTHROPIC)
        telex_mock_reply_anthropic_error(req, status, message, -1);
    else
        telex_mock_reply_error(req, status, message, type, param, NULL, -1);
    journal_done(m, seq, status);
}

static void reject(telex_mock_t *m, uint64_t seq, h2o_req_t *req, int status, const char *message, const char *param)
{
    reject_as(m, seq, req, TELEX_MOCK_FORMAT_OPENAI, status, message, param);
}

static void method_not_allowed(telex_mock_t *m, uint64_t seq, h2o_req_t *req, const char *allow)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    char msg[128];
    snprintf(msg, sizeof(msg), "mock: method not allowed here (allowed: %s)", allow);
    reject(m, seq, req, 405, msg, NULL);
}

/* -------------------------------------------------------- spec parsing */

void telex_mock_spec_free(telex_mock_spec_t *spec)
{
    free(spec->model);
    free(spec->finish_reason);
    telex_mock_answer_free(&spec->answer);
    telex_mock_answer_free(&spec->thinking);
    for (size_t i = 0; i < spec->n_tools; i++) {
        free(spec->tools[i].id);
        free(spec->tools[i].name);
        free(spec->tools[i].arguments);
        free(spec->tools[i].frag);
    }
    free(spec->tools);
    memset(spec, 0, sizeof(*spec));
}

typedef struct {
    char message[256];
    char param[64];
} bad_t;

__attribute__((format(printf, 3, 4))) static int bad(bad_t *b, const char *param, const char *fmt, ...)
{
    va_list ap;
    snprintf(b->param, sizeof(b->param), "%s", param);
    va_start(ap, fmt);
    vsnprintf(b->message, sizeof(b->message), fmt, ap);
    va_end(ap);
    return -1;
}

static int get_int(json_t *v, const char *param, int64_t min, int64_t max, int64_t *out, bad_t *b)
{
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        char detail[96];
        snprintf(detail, sizeof(detail), "an integer from %lld to %lld", (long long)min, (long long)max);
        return bad(b, param, "mock: this value must be %s", detail);
    }
    *out = json_integer_value(v);
    return 0;
}

static int get_bool(json_t *v, const char *param, int *out, bad_t *b)
{
    if (!json_is_boolean(v))
        return bad(b, param, "mock: this value must be %s", "true or false");
    *out = json_is_true(v);
    return 0;
}

static const char *const fault_keys[TELEX_MOCK_FAULT_COUNT] = {
    [TELEX_MOCK_FAULT_MALFORMED] = "malformed_after", [TELEX_MOCK_FAULT_INVALID_JSON] = "invalid_json_after",
    [TELEX_MOCK_FAULT_OVERSIZE] = "oversize_after",   [TELEX_MOCK_FAULT_ERROR] = "error_after",
    [TELEX_MOCK_FAULT_STALL] = "stall_after",         [TELEX_MOCK_FAULT_CUT] = "cut_after",
};

/* What the `mock` object asks for beyond the knobs kept in the spec. */
typedef struct {
    int64_t tokens, seed;
    int has_seed;
    const char *text, *thinking;
    size_t text_len, thinking_len;
    json_t *tool_calls; /* borrowed */
    int format;         /* -1 = not given */
} asks_t;

static int get_string(json_t *v, const char *param, const char **out, size_t *len, bad_t *b)
{
    if (!json_is_string(v))
        return bad(b, param, "mock: %s must be a string", param);
    *out = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

/* mock.tool_calls: [{name, arguments (string or object), id?}] */
static int check_tool_calls(json_t *v, bad_t *b)
{
    if (!json_is_array(v) || json_array_size(v) > 64)
        return bad(b, "mock.tool_calls", "mock: %s must be an array of at most 64 tool calls", "mock.tool_calls");
    size_t i;
    json_t *tc;
    json_array_foreach(v, i, tc)
    {
        char param[64];
        snprintf(param, sizeof(param), "mock.tool_calls[%zu]", i);
        json_t *name = json_object_get(tc, "name"), *args = json_object_get(tc, "arguments");
        json_t *id = json_object_get(tc, "id");
        if (!json_is_object(tc) || !json_is_string(name) || json_string_length(name) == 0 ||
            (args != NULL && !json_is_string(args) && !json_is_object(args)) || (id != NULL && !json_is_string(id)))
            return bad(b, param, "mock: %s must be {\"name\": string, \"arguments\": string or object, \"id\"?: string}",
                       param);
        const char *key;
        json_t *x;
        json_object_foreach(tc, key, x)
        {
            if (strcmp(key, "name") != 0 && strcmp(key, "arguments") != 0 && strcmp(key, "id") != 0)
                return bad(b, param, "mock: unknown key '%s' in %s", key, param);
        }
    }
    return 0;
}

/* Applies the `mock` object over the defaults already in spec. */
static int parse_mock_object(json_t *mock, telex_mock_spec_t *spec, asks_t *a, bad_t *b)
{
    if (!json_is_object(mock))
        return bad(b, "mock", "mock: %s must be an object", "'mock'");
    const char *key;
    json_t *v;
    json_object_foreach(mock, key, v)
    {
        char param[64];
        snprintf(param, sizeof(param), "mock.%s", key);
        int r = 0, found = 0;
        for (int f = 0; f < TELEX_MOCK_FAULT_COUNT; f++)
            if (strcmp(key, fault_keys[f]) == 0) {
                found = 1;
                if (!json_is_null(v))
                    r = get_int(v, param, 0, TELEX_MOCK_MAX_TOKENS, &spec->fault_at[f], b);
            }
        if (found) {
            if (r != 0)
                return r;
            continue;
        }
        if (strcmp(key, "tokens") == 0)
            r = get_int(v, param, 0, TELEX_MOCK_MAX_TOKENS, &a->tokens, b);
        else if (strcmp(key, "delay_ms") == 0)
            r = get_int(v, param, 0, TELEX_MOCK_MAX_DELAY_MS, &spec->delay_ms, b);
        else if (strcmp(key, "ttft_ms") == 0)
            r = get_int(v, param, 0, TELEX_MOCK_MAX_DELAY_MS, &spec->ttft_ms, b);
        else if (strcmp(key, "stall_ms") == 0)
            r = get_int(v, param, 0, TELEX_MOCK_MAX_DELAY_MS, &spec->stall_ms, b);
        else if (strcmp(key, "status") == 0)
            r = get_int(v, param, 400, 599, &spec->status, b);
        else if (strcmp(key, "retry_after") == 0)
            r = get_int(v, param, 0, 86400, &spec->retry_after, b);
        else if (strcmp(key, "oversize_bytes") == 0)
            r = get_int(v, param, 64, MAX_OVERSIZE, &spec->oversize_bytes, b);
        else if (strcmp(key, "cached_tokens") == 0)
            r = get_int(v, param, 0, INT64_MAX / 4, &spec->cached_tokens, b);
        else if (strcmp(key, "seed") == 0) {
            r = get_int(v, param, INT64_MIN, INT64_MAX, &a->seed, b);
            a->has_seed = 1;
        } else if (strcmp(key, "usage") == 0)
            r = get_bool(v, param, &spec->usage, b);
        else if (strcmp(key, "stamp") == 0)
            r = get_bool(v, param, &spec->stamp, b);
        else if (strcmp(key, "no_done") == 0)
            r = get_bool(v, param, &spec->no_done, b);
        else if (strcmp(key, "text") == 0)
            r = get_string(v, param, &a->text, &a->text_len, b);
        else if (strcmp(key, "refusal") == 0) {
            r = get_string(v, param, &a->text, &a->text_len, b);
            spec->refusal = 1;
        } else if (strcmp(key, "thinking") == 0)
            r = get_string(v, param, &a->thinking, &a->thinking_len, b);
        else if (strcmp(key, "tool_calls") == 0) {
            r = check_tool_calls(v, b);
            a->tool_calls = v;
        } else if (strcmp(key, "finish_reason") == 0) {
            const char *fr;
            size_t len;
            if ((r = get_string(v, param, &fr, &len, b)) == 0 && (len == 0 || len > 64))
                r = bad(b, param, "mock: %s must be 1 to 64 characters", param);
            if (r == 0)
                spec->finish_reason = telex_xstrndup(fr, len);
        } else if (strcmp(key, "format") == 0) {
            const char *f = json_string_value(v);
            if (f != NULL && strcmp(f, "openai") == 0)
                a->format = TELEX_MOCK_FORMAT_OPENAI;
            else if (f != NULL && strcmp(f, "anthropic") == 0)
                a->format = TELEX_MOCK_FORMAT_ANTHROPIC;
            else
                r = bad(b, param, "mock: %s must be \"openai\" or \"anthropic\"", param);
        } else
            return bad(b, param, "mock: unknown key '%s' (see docs/mock.md)", param);
        if (r != 0)
            return r;
    }
    return 0;
}

static int64_t count_words(const char *s, size_t len)
{
    int64_t n = 0;
    int in = 0;
    for (size_t i = 0; i < len; i++) {
        int space = s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r';
        if (!space && !in)
            n++;
        in = !space;
    }
    return n;
}

/* Validates the messages and counts their words (the mock's prompt_tokens). */
static int check_messages(json_t *messages, int64_t *words, bad_t *b)
{
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return bad(b, "messages", "mock: %s must be a non-empty array", "'messages'");
    size_t i;
    json_t *msg;
    json_array_foreach(messages, i, msg)
    {
        char param[48];
        snprintf(param, sizeof(param), "messages[%zu]", i);
        if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "role")))
            return bad(b, param, "mock: %s must be an object with a string 'role'", param);
        json_t *c = json_object_get(msg, "content");
        if (json_is_string(c)) {
            *words += count_words(json_string_value(c), json_string_length(c));
        } else if (json_is_array(c)) {
            size_t k;
            json_t *part;
            json_array_foreach(c, k, part)
            {
                json_t *t = json_object_get(part, "text");
                if (json_is_string(t))
                    *words += count_words(json_string_value(t), json_string_length(t));
            }
        }
    }
    return 0;
}

/* ---- Anthropic Messages requests, checked as Anthropic does ---- */

static int words_of_text_blocks(json_t *content, const char *param, int64_t *words, bad_t *b)
{
    if (json_is_string(content)) {
        *words += count_words(json_string_value(content), json_string_length(content));
        return 0;
    }
    if (!json_is_array(content))
        return bad(b, param, "%s: Input should be a valid string or a list of blocks", param);
    size_t i;
    json_t *blk;
    json_array_foreach(content, i, blk)
    {
        json_t *t = json_object_get(blk, "text");
        const char *type = json_string_value(json_object_get(blk, "type"));
        if (type == NULL || strcmp(type, "text") != 0 || !json_is_string(t))
            return bad(b, param, "%s.%zu: Input should be a text block", param, i);
        *words += count_words(json_string_value(t), json_string_length(t));
    }
    return 0;
}

/* One content block of a message with `role`. */
static int check_block(json_t *blk, const char *role, const char *param, int64_t *words, bad_t *b)
{
    const char *type = json_string_value(json_object_get(blk, "type"));
    int user = strcmp(role, "user") == 0;
    if (!json_is_object(blk) || type == NULL)
        return bad(b, param, "%s: Input should be a valid content block with a type", param);
    if (strcmp(type, "text") == 0) {
        json_t *t = json_object_get(blk, "text");
        if (!json_is_string(t))
            return bad(b, param, "%s.text: Field required", param);
        if (json_string_length(t) == 0)
            return bad(b, param, "%s: text content blocks must be non-empty", param);
        *words += count_words(json_string_value(t), json_string_length(t));
        return 0;
    }
    if (strcmp(type, "image") == 0 || strcmp(type, "document") == 0) {
        json_t *src = json_object_get(blk, "source");
        const char *st = json_string_value(json_object_get(src, "type"));
        if (!user || st == NULL)
            return bad(b, param, "%s: %s blocks need a typed source and belong to user turns", param, type);
        if (strcmp(st, "base64") == 0 && (!json_is_string(json_object_get(src, "media_type")) ||
                                          !json_is_string(json_object_get(src, "data"))))
            return bad(b, param, "%s.source: base64 sources need media_type and data", param);
        if (strcmp(st, "url") == 0 && !json_is_string(json_object_get(src, "url")))
            return bad(b, param, "%s.source.url: Field required", param);
        return 0;
    }
    if (strcmp(type, "tool_use") == 0) {
        if (user || !json_is_string(json_object_get(blk, "id")) || !json_is_string(json_object_get(blk, "name")) ||
            !json_is_object(json_object_get(blk, "input")))
            return bad(b, param, "%s: tool_use blocks need id, name and an object input, in assistant turns", param);
        return 0;
    }
    if (strcmp(type, "tool_result") == 0) {
        json_t *c = json_object_get(blk, "content");
        char p[96];
        if (!user || !json_is_string(json_object_get(blk, "tool_use_id")))
            return bad(b, param, "%s: tool_result blocks need tool_use_id, in user turns", param);
        snprintf(p, sizeof(p), "%.80s.content", param);
        return c == NULL ? 0 : words_of_text_blocks(c, p, words, b);
    }
    if ((strcmp(type, "thinking") == 0 || strcmp(type, "redacted_thinking") == 0) && !user)
        return 0;
    return bad(b, param, "%s.type: Input tag '%.40s' does not match any of the expected tags", param, type);
}

static int check_anthropic(json_t *body, int64_t *words, bad_t *b)
{
    static const char *const keys[] = {"model",       "messages", "max_tokens",  "system",  "stop_sequences",
                                       "stream",      "temperature", "top_p",    "top_k",   "tools",
                                       "tool_choice", "metadata", "thinking",    "service_tier", "mock"};
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        int known = 0;
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            known |= strcmp(key, keys[i]) == 0;
        if (!known)
            return bad(b, key, "%.60s: Extra inputs are not permitted", key);
    }
    if (!json_is_string(json_object_get(body, "model")))
        return bad(b, "model", "%s: Field required", "model");
    json_t *mt = json_object_get(body, "max_tokens");
    if (mt == NULL)
        return bad(b, "max_tokens", "%s: Field required", "max_tokens");
    if (!json_is_integer(mt) || json_integer_value(mt) < 1)
        return bad(b, "max_tokens", "%s: Input should be an integer greater than 0", "max_tokens");
    json_t *system = json_object_get(body, "system");
    if (system != NULL && words_of_text_blocks(system, "system", words, b) != 0)
        return -1;
    json_t *t = json_object_get(body, "temperature");
    if (t != NULL && (!json_is_number(t) || json_number_value(t) < 0 || json_number_value(t) > 1))
        return bad(b, "temperature", "%s: Input should be a number from 0 to 1", "temperature");
    json_t *stops = json_object_get(body, "stop_sequences");
    size_t i;
    json_t *item;
    if (stops != NULL && !json_is_array(stops))
        return bad(b, "stop_sequences", "%s: Input should be a valid list", "stop_sequences");
    json_array_foreach(stops, i, item)
    {
        if (!json_is_string(item))
            return bad(b, "stop_sequences", "stop_sequences.%zu: Input should be a valid string", i);
    }
    json_t *tools = json_object_get(body, "tools");
    if (tools != NULL && !json_is_array(tools))
        return bad(b, "tools", "%s: Input should be a valid list", "tools");
    json_array_foreach(tools, i, item)
    {
        if (!json_is_string(json_object_get(item, "name")) || !json_is_object(json_object_get(item, "input_schema")))
            return bad(b, "tools", "tools.%zu: a tool needs a name and an input_schema object", i);
    }
    json_t *tc = json_object_get(body, "tool_choice");
    if (tc != NULL) {
        const char *type = json_string_value(json_object_get(tc, "type"));
        if (type == NULL || (strcmp(type, "auto") && strcmp(type, "any") && strcmp(type, "none") &&
                             strcmp(type, "tool")) ||
            (strcmp(type, "tool") == 0 && !json_is_string(json_object_get(tc, "name"))))
            return bad(b, "tool_choice", "%s: Input should be {type: auto|any|none} or {type: tool, name}",
                       "tool_choice");
    }
    json_t *md = json_object_get(body, "metadata");
    if (md != NULL && (!json_is_object(md) || json_object_size(md) != (json_object_get(md, "user_id") ? 1u : 0u)))
        return bad(b, "metadata", "%s: only user_id is permitted", "metadata");
    json_t *messages = json_object_get(body, "messages");
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return bad(b, "messages", "%s: Input should be a non-empty list", "messages");
    json_t *msg;
    json_array_foreach(messages, i, msg)
    {
        char param[64];
        snprintf(param, sizeof(param), "messages.%zu", i);
        const char *role = json_string_value(json_object_get(msg, "role"));
        json_t *content = json_object_get(msg, "content");
        if (role == NULL || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
            return bad(b, param, "%s.role: Input should be 'user' or 'assistant'", param);
        if (json_is_string(content)) {
            *words += count_words(json_string_value(content), json_string_length(content));
            continue;
        }
        if (!json_is_array(content))
            return bad(b, param, "%s.content: Input should be a valid string or list", param);
        size_t k;
        json_t *blk;
        json_array_foreach(content, k, blk)
        {
            char bp[96];
            snprintf(bp, sizeof(bp), "%s.content.%zu", param, k);
            if (check_block(blk, role, bp, words, b) != 0)
                return -1;
        }
    }
    return 0;
}

/* ---- the spec ---- */

/* Splits a tool's arguments into fragments of about TELEX_MOCK_TOOL_FRAGMENT
 * bytes, never inside a UTF-8 sequence. */
static void fragment(telex_mock_tool_t *t)
{
    size_t max = t->len / TELEX_MOCK_TOOL_FRAGMENT + 2;
    t->frag = telex_xmalloc((max + 1) * sizeof(size_t));
    size_t n = 0, at = 0;
    t->frag[0] = 0;
    while (at < t->len) {
        size_t next = at + TELEX_MOCK_TOOL_FRAGMENT;
        if (next >= t->len)
            next = t->len;
        while (next < t->len && ((unsigned char)t->arguments[next] & 0xC0) == 0x80)
            next++;
        t->frag[++n] = next;
        at = next;
    }
    t->n_frag = n;
}

static int build_tools(telex_mock_spec_t *spec, json_t *calls, bad_t *b)
{
    size_t n = json_array_size(calls);
    if (n == 0)
        return 0;
    spec->tools = telex_xcalloc(n, sizeof(*spec->tools));
    spec->n_tools = n;
    for (size_t i = 0; i < n; i++) {
        json_t *tc = json_array_get(calls, i), *args = json_object_get(tc, "arguments");
        const char *id = json_string_value(json_object_get(tc, "id"));
        telex_mock_tool_t *t = &spec->tools[i];
        char gen[64];
        snprintf(gen, sizeof(gen), "%s_mock_%llu_%zu", spec->format == TELEX_MOCK_FORMAT_ANTHROPIC ? "toolu" : "call",
                 (unsigned long long)spec->seq, i);
        t->id = telex_xstrdup(id != NULL ? id : gen);
        t->name = telex_xstrdup(json_string_value(json_object_get(tc, "name")));
        t->arguments = json_is_string(args)  ? telex_xstrndup(json_string_value(args), json_string_length(args))
                       : json_is_object(args) ? json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER)
                                              : telex_xstrdup("{}");
        if (t->arguments == NULL) /* jansson's own allocation */
            return bad(b, "", "mock: %s", "out of memory");
        t->len = strlen(t->arguments);
        fragment(t);
    }
    return 0;
}

/* Turns the body into a spec (seq: the journal's number for ids). dialect:
 * the request's format (by path);
 * format: of the answer (the --format default, or -1 = the dialect). 0, or
 * -1 with *b filled (a 400). */
static int build_spec(telex_mock_t *m, json_t *body, uint64_t seq, int dialect, const char *deployment,
                      size_t deployment_len, telex_mock_spec_t *spec, bad_t *b)
{
    memset(spec, 0, sizeof(*spec));
    spec->seq = seq;
    spec->delay_ms = m->defaults.delay_ms;
    spec->ttft_ms = m->defaults.ttft_ms;
    spec->stall_ms = m->defaults.stall_ms;
    spec->retry_after = -1;
    spec->usage = 1;
    for (int f = 0; f < TELEX_MOCK_FAULT_COUNT; f++)
        spec->fault_at[f] = -1;
    asks_t a = {.tokens = m->defaults.tokens, .format = -1};
    int64_t words = 0;

    if (!json_is_object(body))
        return bad(b, "", "mock: the request body must be a JSON %s", "object");
    json_t *model = json_object_get(body, "model");
    if (dialect == TELEX_MOCK_FORMAT_ANTHROPIC) {
        if (check_anthropic(body, &words, b) != 0)
            return -1;
    } else {
        if (model != NULL && !json_is_string(model))
            return bad(b, "model", "mock: %s must be a string", "'model'");
        if (model == NULL && deployment == NULL)
            return bad(b, "model", "you must provide a model parameter%s", "");
        if (check_messages(json_object_get(body, "messages"), &words, b) != 0)
            return -1;
    }
    json_t *stream = json_object_get(body, "stream");
    if (stream != NULL && !json_is_null(stream) && get_bool(stream, "stream", &spec->stream, b) != 0)
        return -1;
    if (dialect == TELEX_MOCK_FORMAT_ANTHROPIC) {
        spec->include_usage = 1; /* Anthropic always reports usage */
    } else {
        json_t *so = json_object_get(body, "stream_options");
        if (so != NULL && !json_is_null(so)) {
            if (!json_is_object(so))
                return bad(b, "stream_options", "mock: %s must be an object", "'stream_options'");
            json_t *iu = json_object_get(so, "include_usage");
            if (iu != NULL && get_bool(iu, "stream_options.include_usage", &spec->include_usage, b) != 0)
                return -1;
        }
        json_t *bs = json_object_get(body, "seed");
        if (bs != NULL && !json_is_null(bs)) {
            if (get_int(bs, "seed", INT64_MIN, INT64_MAX, &a.seed, b) != 0)
                return -1;
            a.has_seed = 1;
        }
    }
    json_t *mock = json_object_get(body, "mock");
    if (mock != NULL && parse_mock_object(mock, spec, &a, b) != 0)
        return -1;
    if (spec->retry_after >= 0 && spec->status == 0)
        return bad(b, "mock.retry_after", "mock: %s needs mock.status", "mock.retry_after");
    spec->format = a.format >= 0 ? a.format : m->defaults.format >= 0 ? m->defaults.format : dialect;

    uint64_t s;
    if (a.has_seed) {
        s = (uint64_t)a.seed;
    } else { /* the prompt decides */
        char *dump = json_dumps(json_object_get(body, "messages"), JSON_COMPACT | JSON_SORT_KEYS);
        if (dump == NULL)
            return bad(b, "", "mock: %s", "out of memory");
        s = telex_mock_hash(TELEX_MOCK_HASH_INIT, dump, strlen(dump));
        free(dump);
    }
    if (a.text != NULL) {
        telex_mock_answer_from_text(&spec->answer, a.text, a.text_len);
    } else {
        telex_mock_answer_generate(&spec->answer, s, (size_t)a.tokens);
    }
    if (a.thinking != NULL)
        telex_mock_answer_from_text(&spec->thinking, a.thinking, a.thinking_len);
    if (build_tools(spec, a.tool_calls, b) != 0)
        return -1;
    int64_t units = telex_mock_spec_units(spec);
    for (int f = 0; f < TELEX_MOCK_FAULT_COUNT; f++) /* "after more chunks than there are" = after the last */
        if (spec->fault_at[f] > units)
            spec->fault_at[f] = units;
    spec->prompt_tokens = words > 0 ? words : 1;
    spec->created = (int64_t)time(NULL);
    spec->model = model != NULL ? telex_xstrdup(json_string_value(model)) : telex_xstrndup(deployment, deployment_len);
    return 0;
}

/* ------------------------------------------------------------ handlers */

static void handle_chat(telex_mock_worker_t *w, h2o_req_t *req, int dialect, const char *deployment,
                        size_t deployment_len)
{
    telex_mock_t *m = w->mock;
    json_error_t jerr;
    json_t *body = NULL;
    if (req->entity.base != NULL)
        body = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &jerr);
    uint64_t seq = telex_mock_journal_add(m->journal, req, body);
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        json_decref(body);
        method_not_allowed(m, seq, req, "POST");
        return;
    }
    if (body == NULL) {
        char msg[256];
        if (req->entity.base == NULL)
            snprintf(msg, sizeof(msg), "mock: the request has no body; send a JSON object");
        else
            snprintf(msg, sizeof(msg), "mock: the body is not valid JSON (line %d, column %d: %s)", jerr.line,
                     jerr.column, jerr.text);
        reject_as(m, seq, req, dialect, 400, msg, NULL);
        return;
    }
    telex_mock_spec_t spec;
    bad_t b;
    int r = build_spec(m, body, seq, dialect, deployment, deployment_len, &spec, &b);
    json_decref(body);
    if (r != 0) {
        telex_mock_spec_free(&spec);
        reject_as(m, seq, req, dialect, 400, b.message, b.param[0] ? b.param : NULL);
        return;
    }
    telex_mock_exchange_start(w, req, &spec);
}

/* GET /v1/models: the ids of --models, in OpenAI's list shape, or in
 * Anthropic's when the request has an anthropic-version header (or the
 * mock answers everything as anthropic). */
static void handle_models(telex_mock_t *m, uint64_t seq, h2o_req_t *req)
{
    int anthropic = m->defaults.format == TELEX_MOCK_FORMAT_ANTHROPIC ||
                    h2o_find_header_by_str(&req->headers, H2O_STRLIT("anthropic-version"), -1) != -1;
    json_t *data = json_array();
    const char *p = m->defaults.models;
    while (data != NULL && p != NULL && *p != '\0') {
        size_t n = strcspn(p, ",");
        json_t *item = n == 0 ? NULL
                       : anthropic ? json_pack("{s:s,s:s%,s:s%,s:s}", "type", "model", "id", p, n, "display_name", p, n,
                                               "created_at", "2023-11-14T22:13:20Z")
                                   : json_pack("{s:s%,s:s,s:i,s:s}", "id", p, n, "object", "model", "created",
                                               1700000000, "owned_by", "telex-mock");
        json_array_append_new(data, item);
        p += n + (p[n] == ',');
    }
    json_t *root = anthropic ? json_pack("{s:O,s:b}", "data", data, "has_more", 0)
                             : json_pack("{s:s,s:O}", "object", "list", "data", data);
    json_decref(data);
    char *text = root != NULL ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (text == NULL) {
        reject(m, seq, req, 500, "mock: out of memory", NULL);
        return;
    }
    /* h2o_send_inline copies the body into the request's pool */
    reply_json(req, 200, "OK", text, strlen(text));
    free(text);
    journal_done(m, seq, 200);
}

static uint64_t query_since(h2o_req_t *req)
{
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *q = req->path.base + req->query_at + 1;
    size_t len = req->path.len - req->query_at - 1;
    for (size_t i = 0; i + 6 <= len; i++) {
        if ((i == 0 || q[i - 1] == '&') && memcmp(q + i, "since=", 6) == 0) {
            uint64_t v = 0;
            for (size_t k = i + 6; k < len && q[k] >= '0' && q[k] <= '9' && v < UINT64_MAX / 10; k++)
                v = v * 10 + (uint64_t)(q[k] - '0');
            return v;
        }
    }
    return 0;
}

static void handle_journal(telex_mock_t *m, h2o_req_t *req)
{
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"))) {
        telex_mock_journal_clear(m->journal);
        reply_json(req, 200, "OK", H2O_STRLIT("{\"cleared\":true}"));
        return;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, DELETE"));
        telex_mock_reply_error(req, 405, "mock: method not allowed here (allowed: GET, DELETE)",
                               "invalid_request_error", NULL, NULL, -1);
        return;
    }
    size_t len = 0;
    char *dump = telex_mock_journal_dump(m->journal, query_since(req), &len);
    reply_json(req, 200, "OK", dump, len);
    free(dump);
}

static int is_get(h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
           h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
}

/* "/openai/deployments/{name}/chat/completions" → name */
static int azure_deployment(h2o_iovec_t path, const char **name, size_t *len)
{
    static const char head[] = "/openai/deployments/", tail[] = "/chat/completions";
    size_t hl = sizeof(head) - 1, tl = sizeof(tail) - 1;
    if (path.len <= hl + tl || memcmp(path.base, head, hl) != 0 || memcmp(path.base + path.len - tl, tail, tl) != 0)
        return 0;
    *name = path.base + hl;
    *len = path.len - hl - tl;
    return memchr(*name, '/', *len) == NULL;
}

static int on_request(telex_worker_t *worker, h2o_req_t *req)
{
    telex_mock_worker_t *w = worker->app_worker;
    telex_mock_t *m = w->mock;
    h2o_iovec_t path = req->path_normalized;
    const char *dep = NULL;
    size_t dep_len = 0;

    if (h2o_memis(path.base, path.len, H2O_STRLIT("/healthz"))) {
        if (is_get(req))
            reply_json(req, 200, "OK", H2O_STRLIT("{\"status\":\"ok\"}"));
        else {
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET"));
            telex_mock_reply_error(req, 405, "mock: method not allowed here (allowed: GET)", "invalid_request_error",
                                   NULL, NULL, -1);
        }
        return 0;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/mock/requests"))) {
        handle_journal(m, req);
        return 0;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/v1/chat/completions"))) {
        handle_chat(w, req, TELEX_MOCK_FORMAT_OPENAI, NULL, 0);
        return 0;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/v1/messages"))) {
        handle_chat(w, req, TELEX_MOCK_FORMAT_ANTHROPIC, NULL, 0);
        return 0;
    }
    if (azure_deployment(path, &dep, &dep_len)) {
        handle_chat(w, req, TELEX_MOCK_FORMAT_OPENAI, dep, dep_len);
        return 0;
    }
    uint64_t seq = telex_mock_journal_add(m->journal, req, NULL);
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/v1/models"))) {
        if (is_get(req))
            handle_models(m, seq, req);
        else
            method_not_allowed(m, seq, req, "GET");
        return 0;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "mock: no such endpoint (%.*s); see docs/mock.md",
             (int)(path.len > 80 ? 80 : path.len), path.base);
    reject(m, seq, req, 404, msg, NULL);
    return 0;
}

/* -------------------------------------------------------------- worker */

static int worker_init(telex_worker_t *worker)
{
    telex_mock_worker_t *w = telex_xcalloc(1, sizeof(*w));
    w->mock = worker->options->app;
    w->loop = &worker->loop;
    h2o_linklist_init_anchor(&w->exchanges);
    worker->app_worker = w;
    return 0;
}

static void worker_dispose(telex_worker_t *worker)
{
    /* Exchanges still in flight (hard shutdown deadline) belong to a loop
     * that no longer runs; the process is exiting, so they stay. */
    telex_mock_worker_t *w = worker->app_worker;
    if (w != NULL && w->active == 0)
        free(w);
    worker->app_worker = NULL;
}

static void on_shutdown(telex_worker_t *worker)
{
    telex_mock_exchange_shutdown(worker->app_worker);
}

static int is_idle(telex_worker_t *worker)
{
    telex_mock_worker_t *w = worker->app_worker;
    return w->active == 0;
}

void telex_mock_defaults_init(telex_mock_defaults_t *d)
{
    d->format = TELEX_MOCK_FORMAT_BY_PATH;
    d->tokens = 20;
    d->delay_ms = 20;
    d->ttft_ms = 0;
    d->stall_ms = 600000;
    d->journal_size = TELEX_MOCK_DEFAULT_JOURNAL;
    d->models = "mock";
}

telex_mock_t *telex_mock_create(const telex_mock_defaults_t *defaults)
{
    telex_mock_t *m = telex_xcalloc(1, sizeof(*m));
    m->defaults = *defaults;
    m->journal = telex_mock_journal_new(defaults->journal_size);
    return m;
}

void telex_mock_destroy(telex_mock_t *m)
{
    if (m == NULL)
        return;
    telex_mock_journal_free(m->journal);
    free(m);
}

void telex_mock_server_options(telex_mock_t *m, telex_server_options_t *o)
{
    o->name = "mock";
    o->on_request = on_request;
    o->worker_init = worker_init;
    o->worker_dispose = worker_dispose;
    o->on_shutdown = on_shutdown;
    o->is_idle = is_idle;
    o->app = m;
}
