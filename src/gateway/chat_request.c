/*
 * gateway/chat_request.c — see chat_request.h.
 */
#include "gateway/chat_request.h"
#include "util/json_load.h"

#include <stdio.h>
#include <string.h>

static int bad(char *msg, size_t msglen, const char **param, const char *name, const char *text)
{
    snprintf(msg, msglen, "%s", text);
    *param = name;
    return 400;
}

static int check_message(json_t *m, size_t i, char *msg, size_t msglen, const char **param)
{
    static const char *roles[] = {"system", "developer", "user", "assistant", "tool", "function", NULL};
    if (!json_is_object(m)) {
        snprintf(msg, msglen, "messages[%zu] must be an object with a role and content.", i);
        *param = "messages";
        return 400;
    }
    const char *role = json_string_value(json_object_get(m, "role"));
    int known = 0;
    for (int r = 0; role != NULL && roles[r] != NULL && !known; r++)
        known = strcmp(role, roles[r]) == 0;
    if (!known) {
        snprintf(msg, msglen, "messages[%zu].role must be one of system, developer, user, assistant, tool.", i);
        *param = "messages";
        return 400;
    }
    json_t *content = json_object_get(m, "content");
    if (content != NULL && !json_is_string(content) && !json_is_array(content) && !json_is_null(content)) {
        snprintf(msg, msglen, "messages[%zu].content must be a string or an array of content parts.", i);
        *param = "messages";
        return 400;
    }
    if ((content == NULL || json_is_null(content)) && strcmp(role, "assistant") != 0) {
        snprintf(msg, msglen, "messages[%zu].content is required for role '%s'.", i, role);
        *param = "messages";
        return 400;
    }
    return 0;
}

/* The top-level members the checks read, found in one walk over the
 * request (json_object_get hashes its key: thirteen lookups cost several
 * times the walk over a request's few members). Duplicate members are
 * refused by the parse, so each name is found at most once. */
enum {
    M_MODEL,
    M_MESSAGES,
    M_STREAM,
    M_STREAM_OPTIONS,
    M_TEMPERATURE, /* the numbers: M_TEMPERATURE .. M_FREQUENCY_PENALTY */
    M_TOP_P,
    M_PRESENCE_PENALTY,
    M_FREQUENCY_PENALTY,
    M_MAX_TOKENS, /* the counts: M_MAX_TOKENS .. M_N */
    M_MAX_COMPLETION_TOKENS,
    M_N,
    M_COUNT
};
static const char *const member_names[M_COUNT] = {
    "model", "messages", "stream", "stream_options", "temperature", "top_p", "presence_penalty",
    "frequency_penalty", "max_tokens", "max_completion_tokens", "n",
};

static void find_members(json_t *body, json_t *found[M_COUNT])
{
    for (int k = 0; k < M_COUNT; k++)
        found[k] = NULL;
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value)
    {
        for (int k = 0; k < M_COUNT; k++) {
            if (key[0] == member_names[k][0] && strcmp(key, member_names[k]) == 0) {
                found[k] = value;
                break;
            }
        }
    }
}

int telex_chat_request_parse(const char *bytes, size_t len, telex_chat_request_t *out, char *msg, size_t msglen,
                             const char **param)
{
    memset(out, 0, sizeof(*out));
    *param = NULL;
    if (len == 0)
        return bad(msg, msglen, param, NULL, "The request body is empty; send a JSON object.");
    json_error_t jerr;
    json_t *body = telex_json_loadb(bytes, len, JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL) {
        snprintf(msg, msglen, "The request body is not valid JSON: %s (line %d, column %d).", jerr.text, jerr.line,
                 jerr.column);
        return 400;
    }
    int status = 0;
    if (!json_is_object(body)) {
        status = bad(msg, msglen, param, NULL, "The request body must be a JSON object.");
        goto fail;
    }
    json_t *member[M_COUNT];
    find_members(body, member);
    json_t *model = member[M_MODEL];
    if (model == NULL) {
        status = bad(msg, msglen, param, "model", "You must provide a model parameter.");
        goto fail;
    }
    if (!json_is_string(model) || json_string_length(model) == 0 || json_string_length(model) > 256) {
        status = bad(msg, msglen, param, "model", "model must be a non-empty string of at most 256 characters.");
        goto fail;
    }
    json_t *messages = member[M_MESSAGES];
    if (messages == NULL) {
        status = bad(msg, msglen, param, "messages", "You must provide a messages parameter.");
        goto fail;
    }
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        status = bad(msg, msglen, param, "messages", "messages must be a non-empty array.");
        goto fail;
    }
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m)
    {
        if ((status = check_message(m, i, msg, msglen, param)) != 0)
            goto fail;
    }
    json_t *stream = member[M_STREAM];
    if (stream != NULL && !json_is_boolean(stream) && !json_is_null(stream)) {
        status = bad(msg, msglen, param, "stream", "stream must be a boolean.");
        goto fail;
    }
    json_t *opts = member[M_STREAM_OPTIONS];
    if (opts != NULL && !json_is_object(opts) && !json_is_null(opts)) {
        status = bad(msg, msglen, param, "stream_options", "stream_options must be an object.");
        goto fail;
    }
    json_t *include_usage = json_object_get(opts, "include_usage");
    if (include_usage != NULL && !json_is_boolean(include_usage)) {
        status = bad(msg, msglen, param, "stream_options", "stream_options.include_usage must be a boolean.");
        goto fail;
    }
    for (int k = M_TEMPERATURE; k <= M_FREQUENCY_PENALTY; k++) {
        json_t *v = member[k];
        if (v != NULL && !json_is_number(v) && !json_is_null(v)) {
            snprintf(msg, msglen, "%s must be a number.", member_names[k]);
            *param = member_names[k];
            status = 400;
            goto fail;
        }
    }
    for (int k = M_MAX_TOKENS; k <= M_N; k++) {
        json_t *v = member[k];
        if (v != NULL && !json_is_null(v) && (!json_is_integer(v) || json_integer_value(v) < 1)) {
            snprintf(msg, msglen, "%s must be a positive integer.", member_names[k]);
            *param = member_names[k];
            status = 400;
            goto fail;
        }
    }
    out->body = body;
    out->model = json_string_value(model);
    out->stream = json_is_true(stream);
    out->include_usage = json_is_true(include_usage);
    return 0;
fail:
    json_decref(body);
    return status;
}

json_t *telex_chat_upstream_body(json_t *body, const char *upstream_model, int stream)
{
    /* One level copied, not the whole tree: a new object whose members are
     * the request's own values (referenced), where only model, stream and
     * stream_options change, each to a new value. stream_options is copied
     * one level too before include_usage is set in it, so body stays as the
     * client sent it for a fallback's call. Replacing a member keeps its
     * place and a new one goes last, as in a deep copy: the same bytes. */
    json_t *copy = json_copy(body);
    json_object_set_new(copy, "model", json_string(upstream_model));
    if (stream) {
        json_object_set_new(copy, "stream", json_true());
        json_t *opts = json_object_get(copy, "stream_options");
        opts = json_is_object(opts) ? json_copy(opts) : json_object();
        json_object_set_new(opts, "include_usage", json_true());
        json_object_set_new(copy, "stream_options", opts);
    }
    return copy;
}
