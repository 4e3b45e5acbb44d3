/*
 * upstream/anthropic_request.c — an OpenAI chat request → an Anthropic
 * Messages request (contract in anthropic_map.h; the table of mappings is
 * docs/providers.md).
 *
 * Walks the request once, key by key. Messages: system and developer
 * messages (wherever they are) become the top-level `system` text blocks;
 * user content parts become text and image blocks; an assistant's
 * tool_calls become tool_use blocks (arguments parsed: Anthropic wants an
 * object); tool messages become tool_result blocks in a user turn;
 * consecutive turns of one role are merged, as Anthropic wants strict
 * alternation. What Anthropic cannot express (n > 1, logprobs, a JSON
 * response_format, audio and file parts, legacy functions) is a 400 naming
 * the parameter, never silently changed. A jansson call that fails sets
 * err->oom and is reported once at the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/anthropic_map.h"
#include "util/utf8.h"

typedef struct {
    telex_anthropic_request_error_t *err;
    int failed;
} ctx_t;

/* Bytes of s that are not UTF-8 → '?': a client's text that "%.40s" cut
 * inside a character would make the error body one jansson refuses. */
static void scrub_utf8(char *s)
{
    unsigned char *p = (unsigned char *)s, *end = p + strlen(s);
    while (p < end) {
        ptrdiff_t n = *p < 0x80 ? 1 : telex_utf8_check(p, end);
        for (ptrdiff_t k = n; k < 0; k++)
            *p++ = '?';
        p += n > 0 ? n : 0;
    }
}

__attribute__((format(printf, 4, 5))) static json_t *bad(ctx_t *c, const char *code, const char *param,
                                                         const char *fmt, ...)
{
    if (c->failed)
        return NULL;
    c->failed = 1;
    c->err->code = code;
    snprintf(c->err->param, sizeof(c->err->param), "%s", param);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err->message, sizeof(c->err->message), fmt, ap);
    va_end(ap);
    scrub_utf8(c->err->message);
    scrub_utf8(c->err->param);
    return NULL;
}

/* A jansson call failed. In the telex process none does: jansson aborts on
 * out of memory there (cli/main.c), and every string this file gives it
 * comes from the parsed request (UTF-8), cut only at ASCII bytes. It is
 * kept for tests/unit/test_anthropic.c, which fails each allocation in turn. */
static json_t *oom(ctx_t *c)
{
    if (!c->failed) {
        c->failed = 1;
        c->err->oom = 1;
        c->err->code = "server_error";
        c->err->param[0] = '\0';
        snprintf(c->err->message, sizeof(c->err->message), "A jansson call failed while translating the request.");
    }
    return NULL;
}

#define UNSUPPORTED "unsupported_by_provider"
#define INVALID "invalid_request"

/* obj[key] = value: value is stolen, whatever happens; an allocation that
 * failed (obj or value NULL, or the insertion) is OOM. */
static void set(ctx_t *c, json_t *obj, const char *key, json_t *value)
{
    if (obj == NULL) {
        json_decref(value);
        oom(c);
    } else if (value == NULL || json_object_set_new(obj, key, value) != 0) {
        oom(c);
    }
}

static void push(ctx_t *c, json_t *arr, json_t *value)
{
    if (arr == NULL) {
        json_decref(value);
        oom(c);
    } else if (value == NULL || json_array_append_new(arr, value) != 0) {
        oom(c);
    }
}

static json_t *text_block(ctx_t *c, const char *text, size_t len, json_t *part)
{
    json_t *b = json_object();
    set(c, b, "type", json_string("text"));
    set(c, b, "text", json_stringn(text, len));
    json_t *cc = json_object_get(part, "cache_control");
    if (cc != NULL)
        set(c, b, "cache_control", json_deep_copy(cc));
    return b;
}

/* "data:image/png;base64,AAAA" or an http(s) URL → an image block. */
static json_t *image_block(ctx_t *c, json_t *part, const char *param)
{
    json_t *iu = json_object_get(part, "image_url");
    const char *url = json_is_string(iu) ? json_string_value(iu) : json_string_value(json_object_get(iu, "url"));
    if (url == NULL)
        return bad(c, INVALID, param, "An image_url part needs image_url.url.");
    json_t *source = json_object();
    if (strncmp(url, "data:", 5) == 0) {
        const char *semi = strchr(url, ';'), *comma = strchr(url, ',');
        if (semi == NULL || comma == NULL || semi > comma || strncmp(semi, ";base64,", 8) != 0) {
            json_decref(source);
            return bad(c, INVALID, param, "An image data URL must be data:<media type>;base64,<data>.");
        }
        set(c, source, "type", json_string("base64"));
        set(c, source, "media_type", json_stringn(url + 5, (size_t)(semi - (url + 5))));
        set(c, source, "data", json_string(comma + 1));
    } else if (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0) {
        set(c, source, "type", json_string("url"));
        set(c, source, "url", json_string(url));
    } else {
        json_decref(source);
        return bad(c, INVALID, param, "An image URL must be an http(s) URL or a base64 data URL.");
    }
    json_t *b = json_object();
    set(c, b, "type", json_string("image"));
    set(c, b, "source", source);
    return b;
}

/* Appends the blocks of one message's content (string or parts) to
 * blocks. images: image parts allowed (user turns). */
static void content_blocks(ctx_t *c, json_t *content, json_t *blocks, const char *param, int images, int skip_empty)
{
    if (content == NULL || json_is_null(content))
        return;
    if (json_is_string(content)) {
        if (json_string_length(content) > 0 || !skip_empty)
            push(c, blocks, text_block(c, json_string_value(content), json_string_length(content), NULL));
        return;
    }
    if (!json_is_array(content)) {
        bad(c, INVALID, param, "content must be a string or an array of content parts.");
        return;
    }
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        char p[96];
        snprintf(p, sizeof(p), "%.70s[%zu]", param, i);
        const char *type = json_string_value(json_object_get(part, "type"));
        if (type == NULL) {
            bad(c, INVALID, p, "A content part needs a string type.");
            return;
        }
        if (strcmp(type, "text") == 0 || strcmp(type, "refusal") == 0) {
            json_t *t = json_object_get(part, strcmp(type, "text") == 0 ? "text" : "refusal");
            if (!json_is_string(t)) {
                bad(c, INVALID, p, "A %s part needs a string %s.", type, type);
                return;
            }
            if (json_string_length(t) > 0 || !skip_empty)
                push(c, blocks, text_block(c, json_string_value(t), json_string_length(t), part));
        } else if (strcmp(type, "image_url") == 0 && images) {
            json_t *b = image_block(c, part, p);
            if (b == NULL)
                return;
            push(c, blocks, b);
        } else if ((strcmp(type, "image") == 0 || strcmp(type, "document") == 0) && images) {
            push(c, blocks, json_deep_copy(part)); /* already an Anthropic block */
        } else {
            bad(c, UNSUPPORTED, p, "Content parts of type '%.40s' are not supported by this model's provider (Anthropic).",
                type);
            return;
        }
    }
}

/* Appends a turn, merging it into the previous one of the same role. */
static void add_turn(ctx_t *c, json_t *messages, const char *role, json_t *blocks)
{
    if (blocks == NULL) {
        oom(c);
        return;
    }
    if (json_array_size(blocks) == 0) {
        json_decref(blocks);
        return;
    }
    json_t *last = json_array_get(messages, json_array_size(messages) - 1);
    const char *last_role = json_string_value(json_object_get(last, "role"));
    if (last_role != NULL && strcmp(last_role, role) == 0) {
        if (json_array_extend(json_object_get(last, "content"), blocks) != 0)
            oom(c);
        json_decref(blocks);
        return;
    }
    json_t *m = json_object();
    set(c, m, "role", json_string(role));
    set(c, m, "content", blocks);
    push(c, messages, m);
}

static void tool_use_blocks(ctx_t *c, json_t *tool_calls, json_t *blocks, const char *param)
{
    if (tool_calls == NULL || json_is_null(tool_calls))
        return;
    if (!json_is_array(tool_calls)) {
        bad(c, INVALID, param, "tool_calls must be an array.");
        return;
    }
    size_t i;
    json_t *tc;
    json_array_foreach(tool_calls, i, tc)
    {
        char p[96];
        snprintf(p, sizeof(p), "%.70s[%zu]", param, i);
        json_t *fn = json_object_get(tc, "function");
        const char *id = json_string_value(json_object_get(tc, "id"));
        const char *name = json_string_value(json_object_get(fn, "name"));
        json_t *args = json_object_get(fn, "arguments");
        if (id == NULL || name == NULL) {
            bad(c, INVALID, p, "A tool call needs an id and function.name.");
            return;
        }
        json_t *input;
        if (args == NULL || json_is_null(args) || (json_is_string(args) && json_string_length(args) == 0)) {
            input = json_object();
        } else if (json_is_string(args)) {
            input = json_loadb(json_string_value(args), json_string_length(args), 0, NULL);
            if (!json_is_object(input)) {
                json_decref(input);
                bad(c, INVALID, p, "function.arguments must be a JSON object to be sent to Anthropic.");
                return;
            }
        } else if (json_is_object(args)) {
            input = json_deep_copy(args);
        } else {
            bad(c, INVALID, p, "function.arguments must be a string holding a JSON object.");
            return;
        }
        json_t *b = json_object();
        set(c, b, "type", json_string("tool_use"));
        set(c, b, "id", json_string(id));
        set(c, b, "name", json_string(name));
        set(c, b, "input", input);
        push(c, blocks, b);
    }
}

static void tool_result(ctx_t *c, json_t *msg, json_t *messages, const char *param)
{
    const char *id = json_string_value(json_object_get(msg, "tool_call_id"));
    char p[96];
    if (id == NULL) {
        snprintf(p, sizeof(p), "%.70s.tool_call_id", param);
        bad(c, INVALID, p, "A tool message needs a string tool_call_id.");
        return;
    }
    json_t *b = json_object();
    set(c, b, "type", json_string("tool_result"));
    set(c, b, "tool_use_id", json_string(id));
    json_t *content = json_object_get(msg, "content");
    if (json_is_array(content)) {
        json_t *blocks = json_array();
        snprintf(p, sizeof(p), "%.70s.content", param);
        content_blocks(c, content, blocks, p, 1, 0);
        set(c, b, "content", blocks);
    } else if (json_is_string(content)) {
        set(c, b, "content", json_copy(content));
    }
    json_t *blocks = json_array();
    push(c, blocks, b);
    add_turn(c, messages, "user", blocks);
}

static void translate_messages(ctx_t *c, json_t *in, json_t *out)
{
    json_t *msgs = json_object_get(in, "messages");
    json_t *system = json_array(), *messages = json_array();
    if (system == NULL || messages == NULL) {
        json_decref(system);
        json_decref(messages);
        oom(c);
        return;
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        char p[96], pc[96];
        snprintf(p, sizeof(p), "messages[%zu]", i);
        snprintf(pc, sizeof(pc), "messages[%zu].content", i);
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *content = json_object_get(m, "content");
        if (role == NULL) {
            bad(c, INVALID, p, "A message needs a string role.");
        } else if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            content_blocks(c, content, system, pc, 0, 1);
        } else if (strcmp(role, "user") == 0) {
            json_t *blocks = json_array();
            content_blocks(c, content, blocks, pc, 1, 0);
            add_turn(c, messages, "user", blocks);
        } else if (strcmp(role, "assistant") == 0) {
            json_t *blocks = json_array();
            content_blocks(c, content, blocks, pc, 0, 1);
            snprintf(pc, sizeof(pc), "messages[%zu].tool_calls", i);
            tool_use_blocks(c, json_object_get(m, "tool_calls"), blocks, pc);
            add_turn(c, messages, "assistant", blocks);
        } else if (strcmp(role, "tool") == 0) {
            tool_result(c, m, messages, p);
        } else {
            bad(c, UNSUPPORTED, p, "Messages with role '%.40s' are not supported by this model's provider (Anthropic).",
                role);
        }
        if (c->failed)
            break;
    }
    if (json_array_size(system) > 0)
        set(c, out, "system", system);
    else
        json_decref(system);
    set(c, out, "messages", messages);
}

static void translate_tools(ctx_t *c, json_t *tools, json_t *out)
{
    if (json_is_null(tools))
        return;
    if (!json_is_array(tools)) {
        bad(c, INVALID, "tools", "tools must be an array.");
        return;
    }
    json_t *list = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        char p[48];
        snprintf(p, sizeof(p), "tools[%zu]", i);
        const char *type = json_string_value(json_object_get(t, "type"));
        json_t *fn = json_object_get(t, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        if (type == NULL || strcmp(type, "function") != 0) {
            bad(c, UNSUPPORTED, p, "Only tools of type 'function' can be sent to this model's provider (Anthropic).");
            break;
        }
        if (name == NULL) {
            bad(c, INVALID, p, "A function tool needs function.name.");
            break;
        }
        json_t *a = json_object();
        set(c, a, "name", json_string(name));
        json_t *desc = json_object_get(fn, "description");
        if (json_is_string(desc))
            set(c, a, "description", json_copy(desc));
        json_t *params = json_object_get(fn, "parameters");
        if (json_is_object(params))
            set(c, a, "input_schema", json_deep_copy(params));
        else
            set(c, a, "input_schema", json_pack("{s:s,s:{}}", "type", "object", "properties"));
        push(c, list, a);
    }
    if (c->failed)
        json_decref(list);
    else
        set(c, out, "tools", list);
}

static void translate_tool_choice(ctx_t *c, json_t *in, json_t *out)
{
    json_t *choice = json_object_get(in, "tool_choice");
    json_t *parallel = json_object_get(in, "parallel_tool_calls");
    if (json_array_size(json_object_get(out, "tools")) == 0)
        return; /* nothing to choose from */
    json_t *tc = NULL;
    if (choice == NULL || json_is_null(choice)) {
        if (!json_is_false(parallel))
            return;
        tc = json_pack("{s:s}", "type", "auto");
    } else if (json_is_string(choice)) {
        const char *s = json_string_value(choice);
        const char *type = strcmp(s, "auto") == 0 ? "auto" : strcmp(s, "none") == 0 ? "none"
                                                         : strcmp(s, "required") == 0 ? "any"
                                                                                      : NULL;
        if (type == NULL) {
            bad(c, INVALID, "tool_choice", "tool_choice must be auto, none, required or a function.");
            return;
        }
        tc = json_pack("{s:s}", "type", type);
    } else {
        const char *name = json_string_value(json_object_get(json_object_get(choice, "function"), "name"));
        if (name == NULL) {
            bad(c, INVALID, "tool_choice", "tool_choice must be auto, none, required or a function.");
            return;
        }
        tc = json_pack("{s:s,s:s}", "type", "tool", "name", name);
    }
    if (tc != NULL && json_is_false(parallel) && strcmp(json_string_value(json_object_get(tc, "type")), "none") != 0)
        set(c, tc, "disable_parallel_tool_use", json_true());
    set(c, out, "tool_choice", tc);
}

/* OpenAI parameters with no Anthropic equivalent that do not change what the
 * answer looks like: dropped. */
static const char *const dropped[] = {
    "stream_options", "frequency_penalty", "presence_penalty", "seed",       "logit_bias", "store",
    "metadata",       "reasoning_effort",  "top_logprobs",     "modalities", "prediction", "service_tier",
    "prompt_cache_key", "safety_identifier", "verbosity",     "web_search_options",
};

json_t *telex_anthropic_request(json_t *in, uint64_t default_max_tokens, int stream,
                                telex_anthropic_request_error_t *err)
{
    memset(err, 0, sizeof(*err));
    ctx_t c = {.err = err};
    json_t *out = json_object();
    if (out == NULL)
        return oom(&c);
    const char *key;
    json_t *v;
    json_object_foreach(in, key, v)
    {
        int drop = 0;
        for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
            drop |= strcmp(key, dropped[i]) == 0;
        if (drop || strcmp(key, "max_tokens") == 0 || strcmp(key, "max_completion_tokens") == 0 ||
            strcmp(key, "tool_choice") == 0 || strcmp(key, "parallel_tool_calls") == 0 ||
            strcmp(key, "stream") == 0) {
            continue;
        } else if (strcmp(key, "messages") == 0) {
            translate_messages(&c, in, out);
        } else if (strcmp(key, "tools") == 0) {
            translate_tools(&c, v, out);
        } else if (strcmp(key, "stop") == 0) {
            if (json_is_string(v))
                set(&c, out, "stop_sequences", json_pack("[O]", v));
            else if (json_is_array(v))
                set(&c, out, "stop_sequences", json_copy(v));
            else if (!json_is_null(v))
                bad(&c, INVALID, "stop", "stop must be a string or an array of strings.");
        } else if (strcmp(key, "user") == 0) {
            if (json_is_string(v))
                set(&c, out, "metadata", json_pack("{s:O}", "user_id", v));
        } else if (strcmp(key, "n") == 0) {
            if (!json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 1))
                bad(&c, UNSUPPORTED, "n", "This model's provider (Anthropic) gives one choice per request: n must be 1.");
        } else if (strcmp(key, "logprobs") == 0) {
            if (json_is_true(v))
                bad(&c, UNSUPPORTED, "logprobs", "This model's provider (Anthropic) does not return logprobs.");
        } else if (strcmp(key, "response_format") == 0) {
            const char *type = json_string_value(json_object_get(v, "type"));
            if (!json_is_null(v) && (type == NULL || strcmp(type, "text") != 0))
                bad(&c, UNSUPPORTED, "response_format",
                    "response_format '%.40s' is not supported by this model's provider (Anthropic); describe the format "
                    "in the prompt, or use a tool with an input schema.",
                    type != NULL ? type : "?");
        } else if (strcmp(key, "functions") == 0 || strcmp(key, "function_call") == 0) {
            bad(&c, UNSUPPORTED, key, "The legacy %s parameter is not supported with this model's provider (Anthropic); use tools.",
                key);
        } else {
            set(&c, out, key, json_deep_copy(v)); /* model, temperature, top_p, Anthropic's own parameters... */
        }
        if (c.failed)
            break;
    }
    if (!c.failed) {
        json_t *mt = json_object_get(in, "max_completion_tokens");
        if (mt == NULL || json_is_null(mt))
            mt = json_object_get(in, "max_tokens");
        if (mt != NULL && !json_is_null(mt)) {
            if (!json_is_integer(mt) || json_integer_value(mt) < 1)
                bad(&c, INVALID, json_object_get(in, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens",
                    "max_tokens must be a positive integer.");
            else
                set(&c, out, "max_tokens", json_integer(json_integer_value(mt)));
        } else {
            set(&c, out, "max_tokens", json_integer((json_int_t)default_max_tokens));
        }
    }
    if (!c.failed)
        translate_tool_choice(&c, in, out);
    if (!c.failed && stream)
        set(&c, out, "stream", json_true());
    if (c.failed) {
        json_decref(out);
        return NULL;
    }
    return out;
}

char *telex_anthropic_request_error_body(const telex_anthropic_request_error_t *err)
{
    json_t *e = json_pack("{s:{s:s,s:s,s:o,s:s}}", "error", "message", err->message, "type",
                          err->oom ? "server_error" : "invalid_request_error", "param",
                          err->param[0] ? json_string(err->param) : json_null(), "code",
                          err->code != NULL ? err->code : INVALID);
    char *text = e != NULL ? json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(e);
    return text;
}
