/*
 * gateway/messages_request.c — Anthropic Messages request → Chat
 * Completions request. See messages_request.h for what maps.
 */
#include "gateway/messages_request.h"

#include "gateway/answer_model.h"
#include "util/alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ctx {
    telex_messages_request_t *out;
    char *msg;
    size_t msglen;
    int failed;
} ctx_t;

__attribute__((format(printf, 2, 3))) static void bad(ctx_t *c, const char *fmt, ...)
{
    if (c->failed)
        return;
    c->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, c->msglen, fmt, ap);
    va_end(ap);
}

static void ignore(ctx_t *c, const char *name)
{
    telex_ignored_add(c->out->ignored, sizeof(c->out->ignored), name);
}

static json_t *image_part(ctx_t *c, json_t *block, size_t m, size_t i)
{
    json_t *source = json_object_get(block, "source");
    const char *type = json_string_value(json_object_get(source, "type"));
    if (type != NULL && strcmp(type, "url") == 0 && json_is_string(json_object_get(source, "url")))
        return json_pack("{s:s,s:{s:O}}", "type", "image_url", "image_url", "url", json_object_get(source, "url"));
    const char *media = json_string_value(json_object_get(source, "media_type"));
    const char *data = json_string_value(json_object_get(source, "data"));
    if (type == NULL || strcmp(type, "base64") != 0 || media == NULL || data == NULL) {
        bad(c, "messages.%zu.content.%zu: an image needs a base64 source (media_type, data) or a url source.", m, i);
        return NULL;
    }
    size_t n = strlen(media) + strlen(data) + 16;
    char *url = telex_xmalloc(n);
    snprintf(url, n, "data:%s;base64,%s", media, data);
    json_t *part = json_pack("{s:s,s:{s:s}}", "type", "image_url", "image_url", "url", url);
    free(url);
    return part;
}

/* One Anthropic message: appended to msgs as one or more chat messages
 * (tool results become tool messages, before the user's own text). */
static void add_message(ctx_t *c, json_t *msgs, json_t *m, size_t mi)
{
    const char *role = json_string_value(json_object_get(m, "role"));
    if (role == NULL ||
        (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0 && strcmp(role, "system") != 0)) {
        bad(c, "messages.%zu.role: must be \"user\", \"assistant\" or \"system\".", mi);
        return;
    }
    if (strcmp(role, "system") == 0) { /* what Claude Code sends mid-conversation */
        char *text = telex_answer_joined_text(json_object_get(m, "content"));
        if (text == NULL) {
            bad(c, "messages.%zu.content: must be a string or text blocks.", mi);
            return;
        }
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", text));
        free(text);
        return;
    }
    int assistant = role[0] == 'a';
    json_t *content = json_object_get(m, "content");
    if (json_is_string(content)) {
        json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", role, "content", content));
        return;
    }
    if (!json_is_array(content)) {
        bad(c, "messages.%zu.content: must be a string or an array of content blocks.", mi);
        return;
    }
    json_t *parts = json_array(), *calls = json_array();
    size_t i;
    json_t *b;
    json_array_foreach(content, i, b)
    {
        const char *type = json_string_value(json_object_get(b, "type"));
        if (type == NULL) {
            bad(c, "messages.%zu.content.%zu.type: Field required", mi, i);
        } else if (strcmp(type, "text") == 0) {
            json_t *text = json_object_get(b, "text");
            if (!json_is_string(text))
                bad(c, "messages.%zu.content.%zu.text: Field required", mi, i);
            else
                json_array_append_new(parts, json_pack("{s:s,s:O}", "type", "text", "text", text));
        } else if (strcmp(type, "image") == 0 && !assistant) {
            json_t *part = image_part(c, b, mi, i);
            if (part != NULL)
                json_array_append_new(parts, part);
        } else if (strcmp(type, "tool_use") == 0 && assistant) {
            const char *id = json_string_value(json_object_get(b, "id"));
            const char *name = json_string_value(json_object_get(b, "name"));
            json_t *input = json_object_get(b, "input");
            char *args = input != NULL ? json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY) : telex_xstrdup("{}");
            if (id == NULL || name == NULL || args == NULL)
                bad(c, "messages.%zu.content.%zu: tool_use needs id, name and input.", mi, i);
            else
                json_array_append_new(calls, json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", id, "type", "function", "function",
                                                       "name", name, "arguments", args));
            free(args);
        } else if (strcmp(type, "tool_result") == 0 && !assistant) {
            const char *id = json_string_value(json_object_get(b, "tool_use_id"));
            char *text = telex_answer_joined_text(json_object_get(b, "content"));
            if (id == NULL || text == NULL) {
                bad(c, "messages.%zu.content.%zu: tool_result needs tool_use_id.", mi, i);
            } else {
                int is_error = json_is_true(json_object_get(b, "is_error"));
                size_t n = strlen(text) + 8;
                char *out = telex_xmalloc(n);
                snprintf(out, n, "%s%s", is_error ? "Error: " : "", text);
                json_array_append_new(
                    msgs, json_pack("{s:s,s:s,s:s}", "role", "tool", "tool_call_id", id, "content", out));
                free(out);
            }
            free(text);
        } else if (strcmp(type, "thinking") == 0 || strcmp(type, "redacted_thinking") == 0) {
            ignore(c, "thinking blocks");
        } else {
            bad(c, "messages.%zu.content.%zu: content blocks of type '%.30s' are not supported by this gateway.", mi,
                i, type);
        }
        if (c->failed)
            break;
    }
    if (!c->failed && (json_array_size(parts) > 0 || json_array_size(calls) > 0)) {
        json_t *msg = json_pack("{s:s}", "role", role);
        if (assistant) {
            char *text = telex_answer_joined_text(parts);
            json_object_set_new(msg, "content", text != NULL && text[0] ? json_string(text) : json_null());
            free(text);
            if (json_array_size(calls) > 0)
                json_object_set(msg, "tool_calls", calls);
        } else {
            json_object_set(msg, "content", parts);
        }
        json_array_append_new(msgs, msg);
    }
    json_decref(parts);
    json_decref(calls);
}

static void translate_tools(ctx_t *c, json_t *tools, json_t *chat)
{
    if (tools == NULL || json_is_null(tools))
        return;
    if (!json_is_array(tools)) {
        bad(c, "tools: Input should be a valid list");
        return;
    }
    json_t *out = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        const char *type = json_string_value(json_object_get(t, "type"));
        if (type != NULL && strcmp(type, "custom") != 0) {
            char name[64];
            snprintf(name, sizeof name, "tools (%.40s)", type);
            ignore(c, name);
            continue;
        }
        const char *name = json_string_value(json_object_get(t, "name"));
        json_t *schema = json_object_get(t, "input_schema");
        if (name == NULL || !json_is_object(schema)) {
            bad(c, "tools.%zu: a tool needs a name and an input_schema object.", i);
            break;
        }
        json_t *fn = json_pack("{s:s,s:O}", "name", name, "parameters", schema);
        json_t *desc = json_object_get(t, "description");
        if (json_is_string(desc))
            json_object_set(fn, "description", desc);
        json_array_append_new(out, json_pack("{s:s,s:o}", "type", "function", "function", fn));
    }
    if (!c->failed && json_array_size(out) > 0)
        json_object_set(chat, "tools", out);
    json_decref(out);
}

static void translate_tool_choice(ctx_t *c, json_t *choice, json_t *chat)
{
    if (choice == NULL || json_is_null(choice))
        return;
    const char *type = json_string_value(json_object_get(choice, "type"));
    if (type == NULL) {
        bad(c, "tool_choice.type: Field required");
        return;
    }
    if (strcmp(type, "auto") == 0) {
        json_object_set_new(chat, "tool_choice", json_string("auto"));
    } else if (strcmp(type, "any") == 0) {
        json_object_set_new(chat, "tool_choice", json_string("required"));
    } else if (strcmp(type, "none") == 0) {
        json_object_set_new(chat, "tool_choice", json_string("none"));
    } else if (strcmp(type, "tool") == 0) {
        const char *name = json_string_value(json_object_get(choice, "name"));
        if (name == NULL) {
            bad(c, "tool_choice.name: Field required");
            return;
        }
        json_object_set_new(chat, "tool_choice", json_pack("{s:s,s:{s:s}}", "type", "function", "function", "name", name));
    } else {
        bad(c, "tool_choice.type: '%.20s' is not auto, any, tool or none.", type);
        return;
    }
    if (json_is_true(json_object_get(choice, "disable_parallel_tool_use")))
        json_object_set_new(chat, "parallel_tool_calls", json_false());
}

int telex_messages_request_parse(json_t *body, telex_messages_request_t *out, char *msg, size_t msglen)
{
    memset(out, 0, sizeof(*out));
    ctx_t c = {out, msg, msglen, 0};
    if (!json_is_object(body)) {
        bad(&c, "The request body must be a JSON object.");
        return 400;
    }
    json_t *model = json_object_get(body, "model");
    if (!json_is_string(model) || json_string_length(model) == 0) {
        bad(&c, "model: Field required");
        return 400;
    }
    json_t *max = json_object_get(body, "max_tokens");
    if (!json_is_integer(max) || json_integer_value(max) < 1) {
        bad(&c, max == NULL ? "max_tokens: Field required" : "max_tokens: must be a positive integer.");
        return 400;
    }
    json_t *stream = json_object_get(body, "stream");
    if (stream != NULL && !json_is_boolean(stream)) {
        bad(&c, "stream: Input should be a valid boolean");
        return 400;
    }
    out->stream = json_is_true(stream);
    json_t *messages = json_object_get(body, "messages");
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        bad(&c, "messages: at least one message is required.");
        return 400;
    }
    json_t *chat = json_object();
    json_t *msgs = json_array();
    json_object_set(chat, "model", model);
    json_t *system = json_object_get(body, "system");
    if (json_is_string(system)) {
        json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "system", "content", system));
    } else if (json_is_array(system)) {
        char *text = telex_answer_joined_text(system);
        if (text != NULL)
            json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", text));
        free(text);
    } else if (system != NULL && !json_is_null(system)) {
        bad(&c, "system: must be a string or an array of text blocks.");
    }
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m)
    {
        if (c.failed)
            break;
        add_message(&c, msgs, m, i);
    }
    json_object_set_new(chat, "messages", msgs);
    if (!c.failed)
        translate_tools(&c, json_object_get(body, "tools"), chat);
    if (!c.failed)
        translate_tool_choice(&c, json_object_get(body, "tool_choice"), chat);
    json_object_set(chat, "max_completion_tokens", max);
    json_t *stops = json_object_get(body, "stop_sequences");
    if (!c.failed && stops != NULL && !json_is_null(stops)) {
        if (!json_is_array(stops))
            bad(&c, "stop_sequences: Input should be a valid list");
        else
            json_object_set(chat, "stop", stops);
    }
    static const char *const same[] = {"temperature", "top_p", "top_k", "service_tier"};
    for (size_t k = 0; k < sizeof same / sizeof same[0]; k++) {
        json_t *v = json_object_get(body, same[k]);
        if (v != NULL && !json_is_null(v))
            json_object_set(chat, same[k], v);
    }
    /* extended thinking with a budget is passed on (an Anthropic provider takes
     * it; another refuses it with its own 400); adaptive or disabled thinking
     * is the model's own business: left out and named */
    json_t *thinking = json_object_get(body, "thinking");
    const char *ttype = json_string_value(json_object_get(thinking, "type"));
    if (ttype != NULL && strcmp(ttype, "enabled") == 0)
        json_object_set(chat, "thinking", thinking);
    else if (thinking != NULL && !json_is_null(thinking))
        ignore(&c, "thinking");
    /* every other member this gateway does not map is named, never dropped silently */
    static const char *const known[] = {"model", "messages", "system", "max_tokens", "stream", "tools",
                                        "tool_choice", "stop_sequences", "temperature", "top_p", "top_k",
                                        "service_tier", "thinking", "metadata", "mock"};
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value)
    {
        int found = 0;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            found |= strcmp(key, known[k]) == 0;
        if (!found && !json_is_null(value))
            ignore(&c, key);
    }
    json_t *user = json_object_get(json_object_get(body, "metadata"), "user_id");
    if (json_is_string(user))
        json_object_set(chat, "user", user);
    if (out->stream)
        json_object_set_new(chat, "stream", json_true());
    json_t *mock = json_object_get(body, "mock");
    if (mock != NULL)
        json_object_set(chat, "mock", mock);
    if (c.failed) {
        json_decref(chat);
        return 400;
    }
    out->chat = chat;
    return 0;
}

void telex_messages_request_free(telex_messages_request_t *r)
{
    json_decref(r->chat);
    r->chat = NULL;
}
