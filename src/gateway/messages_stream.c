/*
 * gateway/messages_stream.c — chat chunks → Anthropic Messages events. See
 * messages_stream.h for the sequence.
 */
#include "gateway/messages_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/answer_model.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/json_dump.h"

enum { BLOCK_NONE, BLOCK_THINKING, BLOCK_TEXT, BLOCK_TOOL };

#define MAX_TOOLS 128

struct telex_messages_enc {
    char id[64];
    char *model;
    int64_t input_estimate;
    telex_responses_emit_fn emit;
    void *user;
    int open;         /* the kind of the open block (BLOCK_NONE: none) */
    int64_t open_tool; /* its tool index when a tool block */
    int index;        /* the open block's index; next = index + 1 */
    int blocks;       /* blocks started so far */
    int64_t done_tools[MAX_TOOLS]; /* tool indexes whose block has ended */
    size_t n_done;
    char finish[32];
    json_t *usage;    /* the provider's, chat-shaped */
    int stopped;
    /* for a whole Message object (no emit): the blocks as they are built */
    json_t *content;
    telex_buf_t args; /* the open tool block's arguments */
};

static int emit(telex_messages_enc_t *e, const char *type, json_t *ev)
{
    if (e->stopped || ev == NULL) {
        json_decref(ev);
        return -1;
    }
    if (e->emit == NULL) {
        json_decref(ev);
        return 0;
    }
    char *text = telex_json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(ev);
    if (text == NULL || e->emit(e->user, type, text, strlen(text)) != 0) {
        free(text);
        e->stopped = 1;
        return -1;
    }
    free(text);
    return 0;
}

telex_messages_enc_t *telex_messages_enc_new(const char *message_id, const char *model, int64_t input_estimate,
                                             telex_responses_emit_fn emit_fn, void *user)
{
    telex_messages_enc_t *e = telex_xcalloc(1, sizeof(*e));
    snprintf(e->id, sizeof e->id, "%s", message_id);
    e->model = telex_xstrdup(model);
    e->content = json_array();
    e->args.limit = 16u << 20; /* one tool call's arguments; past it the answer ends (log_full) */
    e->input_estimate = input_estimate;
    e->emit = emit_fn;
    e->user = user;
    e->index = -1;
    return e;
}

void telex_messages_enc_free(telex_messages_enc_t *e)
{
    if (e == NULL)
        return;
    free(e->model);
    json_decref(e->usage);
    json_decref(e->content);
    telex_buf_free(&e->args);
    free(e);
}

/* Anthropic usage from the provider's chat usage (or the estimate). */
static json_t *usage_json(telex_messages_enc_t *e, int at_start)
{
    json_int_t prompt = e->usage ? json_integer_value(json_object_get(e->usage, "prompt_tokens")) : e->input_estimate;
    json_int_t cached = e->usage ? json_integer_value(json_object_get(json_object_get(e->usage, "prompt_tokens_details"),
                                                                      "cached_tokens"))
                                 : 0;
    json_int_t out = e->usage ? json_integer_value(json_object_get(e->usage, "completion_tokens")) : 0;
    json_t *u = json_pack("{s:I,s:I,s:I,s:I}", "input_tokens", prompt - cached, "cache_creation_input_tokens",
                          (json_int_t)0, "cache_read_input_tokens", cached, "output_tokens", at_start ? 1 : out);
    json_t *cost = json_object_get(e->usage, "cost_usd");
    if (u != NULL && cost != NULL && !at_start)
        json_object_set(u, "cost_usd", cost);
    return u;
}

int telex_messages_enc_start(telex_messages_enc_t *e)
{
    json_t *msg = json_pack("{s:s,s:s,s:s,s:s,s:[],s:n,s:n,s:o}", "id", e->id, "type", "message", "role", "assistant",
                            "model", e->model, "content", "stop_reason", "stop_sequence", "usage", usage_json(e, 1));
    if (emit(e, "message_start", json_pack("{s:s,s:o}", "type", "message_start", "message", msg)) != 0)
        return -1;
    return emit(e, "ping", json_pack("{s:s}", "type", "ping"));
}

static int close_block(telex_messages_enc_t *e)
{
    if (e->open == BLOCK_NONE)
        return 0;
    json_t *block = json_array_get(e->content, (size_t)e->index);
    if (e->open == BLOCK_TOOL) {
        if (e->n_done < MAX_TOOLS)
            e->done_tools[e->n_done++] = e->open_tool;
        json_error_t err;
        json_t *input = e->args.len ? json_loadb(e->args.data, e->args.len, 0, &err) : json_object();
        json_object_set_new(block, "input", input != NULL ? input : json_object());
        e->args.len = 0;
    }
    e->open = BLOCK_NONE;
    return emit(e, "content_block_stop", json_pack("{s:s,s:i}", "type", "content_block_stop", "index", e->index));
}

/* Makes a block of kind the open one (closing another first). */
static int open_block(telex_messages_enc_t *e, int kind, int64_t tool, json_t *block)
{
    if (block == NULL || close_block(e) != 0) {
        json_decref(block);
        return -1;
    }
    e->open = kind;
    e->open_tool = tool;
    e->index = e->blocks++;
    json_array_append(e->content, block);
    return emit(e, "content_block_start",
                json_pack("{s:s,s:i,s:o}", "type", "content_block_start", "index", e->index, "content_block", block));
}

/* {"type":"content_block_delta","index":e->index,"delta":{"type":type,
 * field:text}} written as text: the bytes emit() makes of the same tree
 * (tests/unit/test_front_door_deltas.c compares them), for every chunk
 * without one (answer_model.h). */
static int emit_delta(telex_messages_enc_t *e, const char *type, const char *field, const char *text, size_t len)
{
    if (e->stopped)
        return -1;
    if (e->emit == NULL)
        return 0;
    size_t type_len = strlen(type), field_len = strlen(field);
    size_t cap = 96 + type_len + field_len + TELEX_ANSWER_STRING_BOUND(len);
    char stack[1024];
    char *out = cap <= sizeof(stack) ? stack : telex_xmalloc(cap), *o = out;
#define PUT(lit) (memcpy(o, lit, sizeof(lit) - 1), o += sizeof(lit) - 1)
    PUT("{\"type\":\"content_block_delta\",\"index\":");
    o += telex_answer_put_uint(o, (uint64_t)e->index);
    PUT(",\"delta\":{\"type\":\"");
    memcpy(o, type, type_len), o += type_len; /* (constants: nothing to escape) */
    PUT("\",\"");
    memcpy(o, field, field_len), o += field_len;
    PUT("\":");
    size_t w = telex_answer_put_string(o, text, len);
    if (w != SIZE_MAX) {
        o += w;
        PUT("}}");
    }
#undef PUT
    int rc = w != SIZE_MAX && e->emit(e->user, "content_block_delta", out, (size_t)(o - out)) == 0 ? 0 : -1;
    if (out != stack)
        free(out);
    if (rc != 0)
        e->stopped = 1;
    return rc;
}

static int delta(telex_messages_enc_t *e, const char *type, const char *field, const char *text, size_t len)
{
    json_t *block = json_array_get(e->content, (size_t)e->index);
    if (e->emit != NULL) {
        /* streaming: the events carry the text; nothing to keep */
    } else if (e->open == BLOCK_TEXT || e->open == BLOCK_THINKING) {
        const char *key = e->open == BLOCK_TEXT ? "text" : "thinking";
        const char *old = json_string_value(json_object_get(block, key));
        size_t n = strlen(old);
        char *joined = telex_xmalloc(n + len + 1);
        memcpy(joined, old, n);
        memcpy(joined + n, text, len);
        joined[n + len] = '\0';
        json_object_set_new(block, key, json_string(joined));
        free(joined);
    } else if (telex_buf_append(&e->args, text, len) != 0) {
        return -1;
    }
    return emit_delta(e, type, field, text, len);
}

/* Text for the text block (opened when another or none is open). */
static int add_text(telex_messages_enc_t *e, const char *text, size_t len)
{
    if (len == 0)
        return 0;
    if (e->open != BLOCK_TEXT && open_block(e, BLOCK_TEXT, -1, json_pack("{s:s,s:s}", "type", "text", "text", "")) != 0)
        return -1;
    return delta(e, "text_delta", "text", text, len);
}

/* A tool call's delta: its block (opened at its first delta; id and name
 * may be NULL; nothing once its block has ended, see the header) and the
 * next piece of its arguments. */
static int tool_delta(telex_messages_enc_t *e, int64_t tool, const char *id, const char *name, const char *args,
                      size_t len)
{
    if (e->open != BLOCK_TOOL || e->open_tool != tool) {
        int ended = 0;
        for (size_t k = 0; k < e->n_done; k++)
            ended |= e->done_tools[k] == tool;
        if (ended)
            return 0;
        char made[64];
        if (id == NULL) {
            snprintf(made, sizeof made, "toolu_%.32s_%d", e->id + 4, e->blocks);
            id = made;
        }
        if (open_block(e, BLOCK_TOOL, tool,
                       json_pack("{s:s,s:s,s:s,s:{}}", "type", "tool_use", "id", id, "name", name ? name : "", "input")) != 0)
            return -1;
    }
    return len > 0 ? delta(e, "input_json_delta", "partial_json", args, len) : 0;
}

int telex_messages_enc_plain(telex_messages_enc_t *e, const char *text, size_t len, int has_tool, int64_t tool_index,
                             const char *args, size_t args_len)
{
    if (add_text(e, text, len) != 0)
        return -1;
    if (has_tool && tool_delta(e, tool_index, NULL, NULL, args, args_len) != 0)
        return -1;
    return e->stopped ? -1 : 0;
}

int telex_messages_enc_chunk(telex_messages_enc_t *e, json_t *chunk)
{
    json_t *choice = telex_answer_choice0(chunk), *c;
    size_t i;
    if (choice == NULL)
        return 0;
    json_t *d = json_object_get(choice, "delta");
    json_t *reasoning = telex_answer_reasoning(d);
    if (reasoning != NULL && json_string_length(reasoning) > 0) {
        if (e->open != BLOCK_THINKING &&
            open_block(e, BLOCK_THINKING, -1, json_pack("{s:s,s:s,s:s}", "type", "thinking", "thinking", "", "signature", "")) != 0)
            return -1;
        if (delta(e, "thinking_delta", "thinking", json_string_value(reasoning), json_string_length(reasoning)) != 0)
            return -1;
    }
    json_t *content = json_object_get(d, "content");
    if (json_is_string(content) && add_text(e, json_string_value(content), json_string_length(content)) != 0)
        return -1;
    json_array_foreach(json_object_get(d, "tool_calls"), i, c)
    {
        json_t *jindex = json_object_get(c, "index");
        int64_t tool = json_is_integer(jindex) ? (int64_t)json_integer_value(jindex) : (int64_t)i;
        json_t *fn = json_object_get(c, "function");
        json_t *args = json_object_get(fn, "arguments");
        if (tool_delta(e, tool, json_string_value(json_object_get(c, "id")), json_string_value(json_object_get(fn, "name")),
                       json_string_value(args), json_is_string(args) ? json_string_length(args) : 0) != 0)
            return -1;
    }
    const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
    if (finish != NULL)
        snprintf(e->finish, sizeof e->finish, "%s", finish);
    return e->stopped ? -1 : 0;
}

void telex_messages_enc_usage(telex_messages_enc_t *e, json_t *usage)
{
    if (!json_is_object(usage))
        return;
    json_decref(e->usage);
    e->usage = json_incref(usage);
}

static const char *stop_reason(const char *finish)
{
    if (strcmp(finish, "length") == 0)
        return "max_tokens";
    if (strcmp(finish, "tool_calls") == 0 || strcmp(finish, "function_call") == 0)
        return "tool_use";
    if (strcmp(finish, "content_filter") == 0)
        return "refusal";
    return "end_turn";
}

int telex_messages_enc_finish(telex_messages_enc_t *e)
{
    if (close_block(e) != 0)
        return -1;
    json_t *u = usage_json(e, 0);
    if (emit(e, "message_delta",
             json_pack("{s:s,s:{s:s,s:n},s:o}", "type", "message_delta", "delta", "stop_reason", stop_reason(e->finish),
                       "stop_sequence", "usage", u)) != 0)
        return -1;
    return emit(e, "message_stop", json_pack("{s:s}", "type", "message_stop"));
}

int telex_messages_enc_fail(telex_messages_enc_t *e, const char *error_type, const char *message)
{
    return emit(e, "error",
                json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type", error_type, "message", message));
}

char *telex_messages_from_completion(json_t *completion, const char *message_id, const char *model)
{
    telex_messages_enc_t *e = telex_messages_enc_new(message_id, model, 0, NULL, NULL);
    if (e == NULL)
        return NULL;
    json_t *chunk = telex_answer_completion_as_chunk(completion);
    char *text = NULL;
    if (chunk != NULL && telex_messages_enc_chunk(e, chunk) == 0 && close_block(e) == 0) {
        telex_messages_enc_usage(e, json_object_get(completion, "usage"));
        json_t *m = json_pack("{s:s,s:s,s:s,s:s,s:O,s:s,s:n,s:o}", "id", e->id, "type", "message", "role", "assistant",
                              "model", e->model, "content", e->content, "stop_reason", stop_reason(e->finish),
                              "stop_sequence", "usage", usage_json(e, 0));
        text = m != NULL ? telex_json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(m);
    }
    json_decref(chunk);
    telex_messages_enc_free(e);
    return text;
}
