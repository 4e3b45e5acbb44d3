/*
 * gateway/responses_request.c — Responses request → Chat Completions
 * request. See responses_request.h for what maps.
 */
#include "gateway/responses_request.h"

#include "gateway/answer_model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ctx {
    telex_responses_request_t *out;
    char *msg;
    size_t msglen;
    const char **param;
    int failed;
} ctx_t;

__attribute__((format(printf, 3, 4))) static int bad(ctx_t *c, const char *param, const char *fmt, ...)
{
    if (c->failed)
        return -1;
    c->failed = 1;
    *c->param = param;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, c->msglen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Adds name to the X-Telex-Ignored list (once). */
static void ignore(ctx_t *c, const char *name)
{
    telex_ignored_add(c->out->ignored, sizeof(c->out->ignored), name);
}

static json_t *text_part(const char *text)
{
    return json_pack("{s:s,s:s}", "type", "text", "text", text);
}

/* A message's content: a string stays a string; parts become chat parts. */
static json_t *message_content(ctx_t *c, json_t *content, int assistant)
{
    if (json_is_string(content))
        return json_incref(content);
    if (!json_is_array(content)) {
        bad(c, "input", "A message's content must be a string or an array of content parts.");
        return NULL;
    }
    json_t *parts = json_array();
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        const char *type = json_string_value(json_object_get(part, "type"));
        const char *text = json_string_value(json_object_get(part, "text"));
        if (type == NULL) {
            bad(c, "input", "Content part %zu has no type.", i);
        } else if (strcmp(type, "input_text") == 0 || strcmp(type, "output_text") == 0 || strcmp(type, "text") == 0) {
            if (text == NULL)
                bad(c, "input", "Content part %zu (%s) has no text.", i, type);
            else
                json_array_append_new(parts, text_part(text));
        } else if (strcmp(type, "refusal") == 0) {
            const char *r = json_string_value(json_object_get(part, "refusal"));
            json_array_append_new(parts, text_part(r != NULL ? r : ""));
        } else if (strcmp(type, "input_image") == 0) {
            json_t *url = json_object_get(part, "image_url");
            if (!json_is_string(url)) {
                bad(c, "input", "input_image part %zu needs an image_url (file_id images are not supported).", i);
            } else {
                json_t *img = json_pack("{s:O}", "url", url);
                json_t *detail = json_object_get(part, "detail");
                if (json_is_string(detail))
                    json_object_set(img, "detail", detail);
                json_array_append_new(parts, json_pack("{s:s,s:o}", "type", "image_url", "image_url", img));
            }
        } else {
            bad(c, "input", "Content part type '%.40s' is not supported by this gateway.", type);
        }
        if (c->failed)
            break;
    }
    if (c->failed) {
        json_decref(parts);
        return NULL;
    }
    if (assistant) {
        /* an assistant turn's text parts read as one string everywhere */
        char *joined = telex_answer_joined_text(parts);
        json_t *s = json_string(joined != NULL ? joined : "");
        free(joined);
        json_decref(parts);
        return s;
    }
    return parts;
}

/* The last message of msgs if it is an assistant message that can take
 * tool_calls (this turn's text, or earlier calls of the same turn). */
static json_t *open_assistant(json_t *msgs)
{
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    const char *role = json_string_value(json_object_get(last, "role"));
    return role != NULL && strcmp(role, "assistant") == 0 ? last : NULL;
}

static void add_tool_call(json_t *msgs, const char *call_id, const char *name, json_t *arguments)
{
    json_t *msg = open_assistant(msgs);
    if (msg == NULL) {
        msg = json_pack("{s:s,s:n}", "role", "assistant", "content");
        json_array_append_new(msgs, msg);
    }
    json_t *calls = json_object_get(msg, "tool_calls");
    if (calls == NULL) {
        calls = json_array();
        json_object_set_new(msg, "tool_calls", calls);
    }
    json_array_append_new(calls, json_pack("{s:s,s:s,s:{s:s,s:O}}", "id", call_id, "type", "function", "function",
                                           "name", name, "arguments", arguments));
}

/* A function_call_output's output: a string, or parts whose text is joined. */
static json_t *tool_output(json_t *output)
{
    if (json_is_string(output))
        return json_incref(output);
    if (json_is_array(output)) {
        char *joined = telex_answer_joined_text(output);
        json_t *s = json_string(joined != NULL ? joined : "");
        free(joined);
        return s;
    }
    char *text = json_dumps(output, JSON_COMPACT | JSON_ENCODE_ANY);
    json_t *s = json_string(text != NULL ? text : "");
    free(text);
    return s;
}

static void add_item(ctx_t *c, json_t *msgs, json_t *item, size_t i)
{
    if (!json_is_object(item)) {
        bad(c, "input", "input[%zu] must be an object.", i);
        return;
    }
    const char *type = json_string_value(json_object_get(item, "type"));
    if (type == NULL || strcmp(type, "message") == 0) {
        const char *role = json_string_value(json_object_get(item, "role"));
        if (role == NULL) {
            bad(c, "input", "input[%zu] has no role.", i);
            return;
        }
        int assistant = strcmp(role, "assistant") == 0;
        if (!assistant && strcmp(role, "user") != 0 && strcmp(role, "system") != 0 && strcmp(role, "developer") != 0) {
            bad(c, "input", "input[%zu] has role '%.20s'; use user, assistant, system or developer.", i, role);
            return;
        }
        json_t *content = message_content(c, json_object_get(item, "content"), assistant);
        if (content == NULL)
            return;
        json_array_append_new(msgs, json_pack("{s:s,s:o}", "role", strcmp(role, "developer") == 0 ? "system" : role,
                                              "content", content));
        return;
    }
    if (strcmp(type, "function_call") == 0 || strcmp(type, "custom_tool_call") == 0) {
        int custom = type[0] == 'c';
        const char *call_id = json_string_value(json_object_get(item, "call_id"));
        const char *name = json_string_value(json_object_get(item, "name"));
        json_t *args = json_object_get(item, custom ? "input" : "arguments");
        if (call_id == NULL || name == NULL || !json_is_string(args)) {
            bad(c, "input", "input[%zu] (%s) needs call_id, name and %s strings.", i, type,
                custom ? "input" : "arguments");
            return;
        }
        add_tool_call(msgs, call_id, name, args);
        return;
    }
    if (strcmp(type, "function_call_output") == 0 || strcmp(type, "custom_tool_call_output") == 0) {
        const char *call_id = json_string_value(json_object_get(item, "call_id"));
        json_t *output = json_object_get(item, "output");
        if (call_id == NULL || output == NULL) {
            bad(c, "input", "input[%zu] (%s) needs call_id and output.", i, type);
            return;
        }
        json_array_append_new(msgs,
                              json_pack("{s:s,s:s,s:o}", "role", "tool", "tool_call_id", call_id, "content", tool_output(output)));
        return;
    }
    if (strcmp(type, "reasoning") == 0) {
        ignore(c, "input reasoning items");
        return;
    }
    bad(c, "input", "input[%zu] has type '%.40s', which this gateway cannot send to a chat provider.", i, type);
}

static void translate_tools(ctx_t *c, json_t *tools, json_t *chat)
{
    if (tools == NULL || json_is_null(tools))
        return;
    if (!json_is_array(tools)) {
        bad(c, "tools", "tools must be an array.");
        return;
    }
    json_t *out = json_array();
    size_t i;
    json_t *tool;
    json_array_foreach(tools, i, tool)
    {
        const char *type = json_string_value(json_object_get(tool, "type"));
        if (type == NULL) {
            bad(c, "tools", "tools[%zu] has no type.", i);
            break;
        }
        if (strcmp(type, "function") != 0) {
            char name[64];
            snprintf(name, sizeof name, "tools (%.40s)", type);
            ignore(c, name);
            continue;
        }
        const char *name = json_string_value(json_object_get(tool, "name"));
        if (name == NULL) {
            bad(c, "tools", "tools[%zu] (function) has no name.", i);
            break;
        }
        json_t *fn = json_pack("{s:s}", "name", name);
        static const char *const copied[] = {"description", "parameters", "strict"};
        for (size_t k = 0; k < 3; k++) {
            json_t *v = json_object_get(tool, copied[k]);
            if (v != NULL && !json_is_null(v))
                json_object_set(fn, copied[k], v);
        }
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
    if (json_is_string(choice)) {
        const char *s = json_string_value(choice);
        if (strcmp(s, "auto") != 0 && strcmp(s, "none") != 0 && strcmp(s, "required") != 0) {
            bad(c, "tool_choice", "tool_choice '%.20s' is not auto, none or required.", s);
            return;
        }
        json_object_set(chat, "tool_choice", choice);
        return;
    }
    const char *type = json_string_value(json_object_get(choice, "type"));
    const char *name = json_string_value(json_object_get(choice, "name"));
    if (type != NULL && strcmp(type, "function") == 0 && name != NULL) {
        json_object_set_new(chat, "tool_choice", json_pack("{s:s,s:{s:s}}", "type", "function", "function", "name", name));
        return;
    }
    ignore(c, "tool_choice");
}

static void translate_text(ctx_t *c, json_t *text, json_t *chat)
{
    if (text == NULL || json_is_null(text))
        return;
    json_t *format = json_object_get(text, "format");
    const char *type = json_string_value(json_object_get(format, "type"));
    if (type != NULL && strcmp(type, "json_schema") == 0) {
        json_t *schema = json_object_get(format, "schema");
        const char *name = json_string_value(json_object_get(format, "name"));
        if (!json_is_object(schema) || name == NULL) {
            bad(c, "text.format", "text.format (json_schema) needs a name and a schema object.");
            return;
        }
        json_t *js = json_pack("{s:s,s:O}", "name", name, "schema", schema);
        json_t *strict = json_object_get(format, "strict"), *desc = json_object_get(format, "description");
        if (json_is_boolean(strict))
            json_object_set(js, "strict", strict);
        if (json_is_string(desc))
            json_object_set(js, "description", desc);
        json_object_set_new(chat, "response_format", json_pack("{s:s,s:o}", "type", "json_schema", "json_schema", js));
    } else if (type != NULL && strcmp(type, "json_object") == 0) {
        json_object_set_new(chat, "response_format", json_pack("{s:s}", "type", "json_object"));
    } else if (type != NULL && strcmp(type, "text") != 0) {
        bad(c, "text.format", "text.format type '%.30s' is not text, json_object or json_schema.", type);
        return;
    }
    json_t *verbosity = json_object_get(text, "verbosity");
    if (json_is_string(verbosity))
        json_object_set(chat, "verbosity", verbosity);
}

int telex_responses_request_parse(json_t *body, json_t *history, telex_responses_request_t *out, char *msg,
                                  size_t msglen, const char **param)
{
    memset(out, 0, sizeof(*out));
    ctx_t c = {out, msg, msglen, param, 0};
    *param = NULL;
    if (!json_is_object(body)) {
        bad(&c, NULL, "The request body must be a JSON object.");
        return 400;
    }
    json_t *model = json_object_get(body, "model");
    if (!json_is_string(model) || json_string_length(model) == 0) {
        bad(&c, "model", "You must provide a model parameter.");
        return 400;
    }
    json_t *stream = json_object_get(body, "stream"), *background = json_object_get(body, "background");
    if (stream != NULL && !json_is_boolean(stream) && !json_is_null(stream)) {
        bad(&c, "stream", "stream must be a boolean.");
        return 400;
    }
    if (background != NULL && !json_is_boolean(background) && !json_is_null(background)) {
        bad(&c, "background", "background must be a boolean.");
        return 400;
    }
    out->stream = json_is_true(stream);
    out->background = json_is_true(background);
    json_t *prev = json_object_get(body, "previous_response_id");
    if (prev != NULL && !json_is_null(prev) && !json_is_string(prev)) {
        bad(&c, "previous_response_id", "previous_response_id must be a string.");
        return 400;
    }
    out->previous_response_id = json_string_value(prev);
    static const char *const refused[] = {"conversation", "prompt"};
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(body, refused[i]);
        if (v != NULL && !json_is_null(v)) {
            bad(&c, refused[i], "%s is not supported by this gateway; send the input itself.", refused[i]);
            return 400;
        }
    }

    json_t *chat = json_object();
    json_t *msgs = json_array();
    json_object_set(chat, "model", model);
    json_t *instructions = json_object_get(body, "instructions");
    if (instructions != NULL && !json_is_null(instructions)) {
        if (!json_is_string(instructions))
            bad(&c, "instructions", "instructions must be a string.");
        else
            json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "system", "content", instructions));
    }
    if (history != NULL) {
        size_t i;
        json_t *m;
        json_array_foreach(history, i, m)
        {
            const char *role = json_string_value(json_object_get(m, "role"));
            if (role == NULL || strcmp(role, "system") != 0) /* this request's instructions replace the old ones */
                json_array_append(msgs, m);
        }
    }
    json_t *input = json_object_get(body, "input");
    if (json_is_string(input)) {
        json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "user", "content", input));
    } else if (json_is_array(input)) {
        size_t i;
        json_t *item;
        json_array_foreach(input, i, item)
        {
            add_item(&c, msgs, item, i);
            if (c.failed)
                break;
        }
    } else if (input != NULL && !json_is_null(input)) {
        bad(&c, "input", "input must be a string or an array of input items.");
    }
    if (!c.failed && json_array_size(msgs) == 0)
        bad(&c, "input", "You must provide input (a string or input items).");
    json_object_set_new(chat, "messages", msgs);
    if (!c.failed)
        translate_tools(&c, json_object_get(body, "tools"), chat);
    if (!c.failed)
        translate_tool_choice(&c, json_object_get(body, "tool_choice"), chat);
    if (!c.failed)
        translate_text(&c, json_object_get(body, "text"), chat);
    json_t *mot = json_object_get(body, "max_output_tokens");
    if (!c.failed && mot != NULL && !json_is_null(mot)) {
        if (!json_is_integer(mot) || json_integer_value(mot) < 1)
            bad(&c, "max_output_tokens", "max_output_tokens must be a positive integer.");
        else
            json_object_set(chat, "max_completion_tokens", mot);
    }
    static const char *const same[] = {"temperature", "top_p", "parallel_tool_calls", "user", "safety_identifier",
                                        "prompt_cache_key", "service_tier", "top_logprobs"};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        json_t *v = json_object_get(body, same[i]);
        if (v != NULL && !json_is_null(v))
            json_object_set(chat, same[i], v);
    }
    json_t *reasoning = json_object_get(body, "reasoning");
    if (json_is_object(reasoning)) {
        json_t *effort = json_object_get(reasoning, "effort");
        if (json_is_string(effort))
            json_object_set(chat, "reasoning_effort", effort);
        json_t *summary = json_object_get(reasoning, "summary");
        if (summary != NULL && !json_is_null(summary))
            ignore(&c, "reasoning.summary");
    }
    static const char *const hints[] = {"include", "truncation", "max_tool_calls", "client_metadata", "stream_options"};
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++) {
        json_t *v = json_object_get(body, hints[i]);
        if (v != NULL && !json_is_null(v))
            ignore(&c, hints[i]);
    }
    if (out->stream)
        json_object_set_new(chat, "stream", json_true());
    /* telex's own knobs for `telex mock` pass through, as on /v1/chat/completions */
    json_t *mock = json_object_get(body, "mock");
    if (mock != NULL)
        json_object_set(chat, "mock", mock);
    if (c.failed) {
        json_decref(chat);
        return 400;
    }
    /* what the Response object says back */
    json_t *echo = json_object();
    static const char *const echoed[] = {"instructions", "max_output_tokens", "parallel_tool_calls", "reasoning",
                                         "store", "temperature", "text", "tool_choice", "tools", "top_p",
                                         "truncation", "user", "metadata", "previous_response_id", "service_tier",
                                         "prompt_cache_key", "safety_identifier", "background"};
    for (size_t i = 0; i < sizeof echoed / sizeof echoed[0]; i++) {
        json_t *v = json_object_get(body, echoed[i]);
        if (v != NULL)
            json_object_set(echo, echoed[i], v);
    }
    out->chat = chat;
    out->echo = echo;
    return 0;
}

void telex_responses_request_free(telex_responses_request_t *r)
{
    json_decref(r->chat);
    json_decref(r->echo);
    r->chat = r->echo = NULL;
}
