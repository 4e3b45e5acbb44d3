/*
 * gateway/responses_stream.c — chat chunks → Responses events. See
 * responses_stream.h for the event sequence.
 */
#include "gateway/responses_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/answer_model.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/json_dump.h"

enum { ITEM_MESSAGE, ITEM_REASONING, ITEM_FUNCTION };

typedef struct item {
    int kind;
    char id[64];
    /* message: its parts in the order they appeared (at most text, refusal) */
    int text_part;    /* content index of the output_text part; -1: none */
    int refusal_part; /* content index of the refusal part; -1: none */
    int nparts;
    telex_buf_t text;    /* output_text, or reasoning_text */
    telex_buf_t refusal; /* message: refusal text */
    /* function_call: */
    int64_t tool_index; /* the chat tool_calls index */
    char *call_id;
    char *name;
    telex_buf_t args;
    /* The buffers as JSON strings, made (and their UTF-8 checked) once for
     * the several terminal events and the final Response that hold them
     * (buf_string); a buffer only grows, so one of the same length is the
     * same text. */
    json_t *text_json, *refusal_json, *args_json;
} item_t;

#define MAX_ITEMS 128 /* output items of one answer (tool calls, mostly) */
#define MAX_ITEM_BYTES (16u << 20) /* text of one item; past it the answer ends (log_full) */

struct telex_responses_enc {
    char id[64];
    char *model;
    json_t *echo;
    int64_t created_at;
    telex_responses_emit_fn emit;
    void *user;
    uint64_t seq;
    item_t items[MAX_ITEMS];
    size_t n;
    int message;   /* index of the message item; -1 */
    int reasoning; /* index of the reasoning item; -1 */
    char finish[32];
    json_t *usage; /* Responses-shaped */
    json_t *final; /* the terminal event's Response object */
    char *final_text; /* its JSON text, as sent (telex_responses_enc_take_final_text) */
    int stopped;   /* an emit failed: no more events */
    /* The Response object of the two start events as JSON text, made once:
     * telex_responses_enc_start_bytes measures the events (twice per
     * answer) and telex_responses_enc_start sends them; it depends only on
     * what the encoder was made with. */
    char *start_response;
};

/* ------------------------------------------------------------ emitting */

/* {"type":type,"sequence_number":seq, …fields} as JSON text (malloc'ed;
 * NULL when it cannot be encoded). fields: stolen. */
static char *event_text(const char *type, uint64_t seq, json_t *fields)
{
    json_t *ev = fields != NULL ? json_pack("{s:s,s:I}", "type", type, "sequence_number", (json_int_t)seq) : NULL;
    if (ev == NULL || json_object_update(ev, fields) != 0) {
        json_decref(ev);
        json_decref(fields);
        return NULL;
    }
    json_decref(fields);
    char *text = telex_json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(ev);
    return text;
}

/* Sends a ready event's text (emit's bookkeeping without its tree). */
static int emit_text(telex_responses_enc_t *e, const char *type, const char *text, size_t len)
{
    if (e->stopped)
        return -1;
    if (e->emit == NULL)
        return 0;
    if (e->emit(e->user, type, text, len) != 0) {
        e->stopped = 1;
        return -1;
    }
    e->seq++;
    return 0;
}

/* Sends {"type":type,"sequence_number":n, …fields} (fields: stolen). */
static int emit(telex_responses_enc_t *e, const char *type, json_t *fields)
{
    if (e->stopped || fields == NULL) {
        json_decref(fields);
        return -1;
    }
    if (e->emit == NULL) { /* building a Response object only */
        json_decref(fields);
        return 0;
    }
    char *text = event_text(type, e->seq, fields);
    if (text == NULL) {
        e->stopped = 1;
        return -1;
    }
    int rc = emit_text(e, type, text, strlen(text));
    free(text);
    return rc;
}

/* A delta event, written as text: {"type":type,"sequence_number":n,
 * "item_id":item_id,"output_index":output_index[,"content_index":
 * content_index],"delta":text[,"logprobs":[]]} (content_index < 0: none)
 * — the bytes emit() makes of
 * the same fields (tests/unit/test_front_door_deltas.c compares them), for
 * every chunk without a tree (answer_model.h). */
static int emit_delta(telex_responses_enc_t *e, const char *type, const char *item_id, int output_index,
                      int content_index, const char *text, size_t len, int logprobs)
{
    if (e->stopped)
        return -1;
    if (e->emit == NULL)
        return 0;
    size_t type_len = strlen(type), id_len = strlen(item_id);
    size_t cap = 160 + type_len + TELEX_ANSWER_STRING_BOUND(id_len) + TELEX_ANSWER_STRING_BOUND(len);
    char stack[1024];
    char *out = cap <= sizeof(stack) ? stack : telex_xmalloc(cap), *o = out;
#define PUT(lit) (memcpy(o, lit, sizeof(lit) - 1), o += sizeof(lit) - 1)
    PUT("{\"type\":\"");
    memcpy(o, type, type_len), o += type_len; /* (a constant: nothing to escape) */
    PUT("\",\"sequence_number\":");
    o += telex_answer_put_uint(o, e->seq);
    PUT(",\"item_id\":");
    size_t w = telex_answer_put_string(o, item_id, id_len);
    if (w != SIZE_MAX) {
        o += w;
        PUT(",\"output_index\":");
        o += telex_answer_put_uint(o, (uint64_t)output_index);
        if (content_index >= 0) {
            PUT(",\"content_index\":");
            o += telex_answer_put_uint(o, (uint64_t)content_index);
        }
        PUT(",\"delta\":");
        w = telex_answer_put_string(o, text, len);
    }
    if (w != SIZE_MAX) {
        o += w;
        if (logprobs)
            PUT(",\"logprobs\":[]");
        PUT("}");
    }
#undef PUT
    int rc = w != SIZE_MAX ? emit_text(e, type, out, (size_t)(o - out)) : (e->stopped = 1, -1);
    if (out != stack)
        free(out);
    return rc;
}

static json_t *buf_string(const telex_buf_t *b, json_t **cache)
{
    if (*cache == NULL || json_string_length(*cache) != b->len) {
        json_decref(*cache);
        json_t *s = json_stringn(b->data != NULL ? b->data : "", b->len);
        *cache = s != NULL ? s : json_string(""); /* invalid UTF-8 cannot happen: it came from JSON strings */
    }
    return json_incref(*cache); /* (never changed in place: shared by the trees) */
}

static json_t *text_part_json(item_t *it, int with_text)
{
    return json_pack("{s:s,s:o,s:[],s:[]}", "type", "output_text", "text",
                     with_text ? buf_string(&it->text, &it->text_json) : json_string(""), "annotations", "logprobs");
}

static json_t *refusal_part_json(item_t *it, int with_text)
{
    return json_pack("{s:s,s:o}", "type", "refusal", "refusal",
                     with_text ? buf_string(&it->refusal, &it->refusal_json) : json_string(""));
}

static json_t *reasoning_part_json(item_t *it, int with_text)
{
    return json_pack("{s:s,s:o}", "type", "reasoning_text", "text",
                     with_text ? buf_string(&it->text, &it->text_json) : json_string(""));
}

/* The item as a JSON object; full: with its text so far (else as added). */
static json_t *item_json(item_t *it, const char *status, int full)
{
    if (it->kind == ITEM_MESSAGE) {
        json_t *content = json_array();
        for (int k = 0; full && k < it->nparts; k++)
            json_array_append_new(content, k == it->text_part ? text_part_json(it, 1) : refusal_part_json(it, 1));
        return json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", it->id, "type", "message", "status", status, "role",
                         "assistant", "content", content);
    }
    if (it->kind == ITEM_REASONING) {
        json_t *content = json_array();
        if (full)
            json_array_append_new(content, reasoning_part_json(it, 1));
        return json_pack("{s:s,s:s,s:[],s:o}", "id", it->id, "type", "reasoning", "summary", "content", content);
    }
    return json_pack("{s:s,s:s,s:s,s:o,s:s,s:s}", "id", it->id, "type", "function_call", "status", status, "arguments",
                     full ? buf_string(&it->args, &it->args_json) : json_string(""), "call_id",
                     it->call_id ? it->call_id : "", "name", it->name ? it->name : "");
}

/* ------------------------------------------------------------ the Response */

static json_t *echoed(telex_responses_enc_t *e, const char *key, json_t *fallback)
{
    json_t *v = json_object_get(e->echo, key);
    if (v != NULL) {
        json_decref(fallback);
        return json_incref(v);
    }
    return fallback;
}

static json_t *response_json(telex_responses_enc_t *e, const char *status, const char *item_status, json_t *error,
                             json_t *incomplete)
{
    json_t *output = json_array();
    for (size_t i = 0; i < e->n; i++)
        json_array_append_new(output, item_json(&e->items[i], item_status, 1));
    json_t *r = json_pack("{s:s,s:s,s:I,s:s}", "id", e->id, "object", "response", "created_at",
                          (json_int_t)e->created_at, "status", status);
    if (r == NULL) {
        json_decref(output);
        json_decref(error);
        json_decref(incomplete);
        return NULL;
    }
    json_object_set_new(r, "background", echoed(e, "background", json_false()));
    json_object_set_new(r, "error", error != NULL ? error : json_null());
    json_object_set_new(r, "incomplete_details", incomplete != NULL ? incomplete : json_null());
    json_object_set_new(r, "instructions", echoed(e, "instructions", json_null()));
    json_object_set_new(r, "max_output_tokens", echoed(e, "max_output_tokens", json_null()));
    json_object_set_new(r, "metadata", echoed(e, "metadata", json_object()));
    json_object_set_new(r, "model", json_string(e->model));
    json_object_set_new(r, "output", output);
    json_object_set_new(r, "parallel_tool_calls", echoed(e, "parallel_tool_calls", json_true()));
    json_object_set_new(r, "previous_response_id", echoed(e, "previous_response_id", json_null()));
    json_object_set_new(r, "reasoning", echoed(e, "reasoning", json_pack("{s:n,s:n}", "effort", "summary")));
    json_object_set_new(r, "store", echoed(e, "store", json_true()));
    json_object_set_new(r, "temperature", echoed(e, "temperature", json_null()));
    json_object_set_new(r, "text", echoed(e, "text", json_pack("{s:{s:s}}", "format", "type", "text")));
    json_object_set_new(r, "tool_choice", echoed(e, "tool_choice", json_string("auto")));
    json_object_set_new(r, "tools", echoed(e, "tools", json_array()));
    json_object_set_new(r, "top_p", echoed(e, "top_p", json_null()));
    json_object_set_new(r, "truncation", echoed(e, "truncation", json_string("disabled")));
    json_object_set_new(r, "usage", e->usage != NULL ? json_incref(e->usage) : json_null());
    json_object_set_new(r, "user", echoed(e, "user", json_null()));
    return r;
}

json_t *telex_responses_enc_response(telex_responses_enc_t *e)
{
    return response_json(e, "in_progress", "in_progress", NULL, NULL);
}

/* ------------------------------------------------------------ life */

telex_responses_enc_t *telex_responses_enc_new(const char *response_id, const char *model, json_t *echo,
                                               int64_t created_at, telex_responses_emit_fn emit_fn, void *user)
{
    telex_responses_enc_t *e = telex_xcalloc(1, sizeof(*e));
    snprintf(e->id, sizeof e->id, "%s", response_id);
    e->model = telex_xstrdup(model);
    e->echo = echo != NULL ? json_deep_copy(echo) : json_object();
    e->created_at = created_at;
    e->emit = emit_fn;
    e->user = user;
    e->message = e->reasoning = -1;
    return e;
}

void telex_responses_enc_free(telex_responses_enc_t *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n; i++) {
        telex_buf_free(&e->items[i].text);
        telex_buf_free(&e->items[i].refusal);
        telex_buf_free(&e->items[i].args);
        json_decref(e->items[i].text_json);
        json_decref(e->items[i].refusal_json);
        json_decref(e->items[i].args_json);
        free(e->items[i].call_id);
        free(e->items[i].name);
    }
    free(e->model);
    json_decref(e->echo);
    json_decref(e->usage);
    json_decref(e->final);
    free(e->final_text);
    free(e->start_response);
    free(e);
}

static const char *const start_types[2] = {"response.created", "response.in_progress"};

/* The start events' Response object as text (NULL when it cannot be made). */
static const char *start_response(telex_responses_enc_t *e)
{
    if (e->start_response == NULL) {
        json_t *r = response_json(e, "in_progress", "", NULL, NULL);
        e->start_response = r != NULL ? telex_json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(r);
    }
    return e->start_response;
}

/* {"type":type,"sequence_number":seq,"response":<response, JSON text>}:
 * the bytes event_text writes for the same fields (type is a constant);
 * malloc'ed, *len its length. */
#define EVENT_HEAD_MAX 128 /* the head below, for the longest type (~40 bytes) */

/* Writes that event's text up to its "response" value; returns its length. */
static size_t response_event_head(char *out, const char *type, uint64_t seq)
{
    return (size_t)snprintf(out, EVENT_HEAD_MAX, "{\"type\":\"%s\",\"sequence_number\":%llu,\"response\":", type,
                            (unsigned long long)seq);
}

static char *response_event_text(const char *type, uint64_t seq, const char *response, size_t *len)
{
    size_t rlen = strlen(response);
    char *text = telex_xmalloc(EVENT_HEAD_MAX + rlen + 2);
    size_t head = response_event_head(text, type, seq);
    memcpy(text + head, response, rlen);
    memcpy(text + head + rlen, "}", 2);
    *len = head + rlen + 1;
    return text;
}

static char *start_event_text(telex_responses_enc_t *e, const char *type, uint64_t seq, size_t *len)
{
    const char *r = start_response(e);
    return r != NULL ? response_event_text(type, seq, r, len) : NULL;
}

char *telex_responses_enc_response_text(telex_responses_enc_t *e)
{
    /* The start events' text, while it is kept (until they are sent) and
     * still says what a new one would: no item and no usage since. */
    if (e->start_response != NULL && e->n == 0 && e->usage == NULL)
        return telex_xstrdup(e->start_response);
    json_t *now = telex_responses_enc_response(e);
    char *text = telex_json_dumps(now, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(now);
    return text;
}

int telex_responses_enc_start(telex_responses_enc_t *e)
{
    for (int i = 0; i < 2; i++) {
        if (e->stopped)
            return -1;
        size_t len;
        char *text = start_event_text(e, start_types[i], e->seq, &len);
        if (text == NULL)
            return -1;
        int rc = emit_text(e, start_types[i], text, len);
        free(text);
        if (rc != 0)
            return -1;
    }
    free(e->start_response); /* (sent: not needed again) */
    e->start_response = NULL;
    return 0;
}

size_t telex_responses_enc_start_bytes(telex_responses_enc_t *e)
{
    const char *r = start_response(e);
    if (r == NULL)
        return SIZE_MAX;
    size_t total = 0;
    for (int i = 0; i < 2; i++) {
        char head[EVENT_HEAD_MAX];
        size_t json = response_event_head(head, start_types[i], e->seq + (uint64_t)i) + strlen(r) + 1;
        /* event: <type>\ndata: <json>\n\n */
        total += 7 + strlen(start_types[i]) + 7 + json + 2;
    }
    return total;
}

/* ------------------------------------------------------------ deltas */

/* A new output item of kind; emits response.output_item.added. */
static item_t *add_item(telex_responses_enc_t *e, int kind, int *index)
{
    if (e->n == MAX_ITEMS)
        return NULL;
    item_t *it = &e->items[e->n];
    memset(it, 0, sizeof(*it));
    /* an item's text is kept for its .done events: bounded like an answer */
    it->text.limit = it->refusal.limit = it->args.limit = MAX_ITEM_BYTES;
    it->kind = kind;
    it->text_part = it->refusal_part = -1;
    static const char *const prefix[] = {"msg", "rs", "fc"};
    /* the response id's random part keeps item ids unique across responses */
    snprintf(it->id, sizeof it->id, "%s_%.32s_%zu", prefix[kind], e->id + (strncmp(e->id, "resp_", 5) == 0 ? 5 : 0),
             e->n);
    *index = (int)e->n++;
    return it;
}

static int emit_item_added(telex_responses_enc_t *e, int index)
{
    return emit(e, "response.output_item.added",
                json_pack("{s:i,s:o}", "output_index", index, "item", item_json(&e->items[index], "in_progress", 0)));
}

static int message_item(telex_responses_enc_t *e)
{
    if (e->message < 0) {
        int index;
        if (add_item(e, ITEM_MESSAGE, &index) == NULL || emit_item_added(e, index) != 0)
            return -1;
        e->message = index;
    }
    return e->message;
}

static int add_text(telex_responses_enc_t *e, const char *text, size_t len)
{
    int index = message_item(e);
    if (index < 0)
        return -1;
    item_t *it = &e->items[index];
    if (it->text_part < 0) {
        it->text_part = it->nparts++;
        if (emit(e, "response.content_part.added",
                 json_pack("{s:s,s:i,s:i,s:o}", "item_id", it->id, "output_index", index, "content_index",
                           it->text_part, "part", text_part_json(it, 0))) != 0)
            return -1;
    }
    if (telex_buf_append(&it->text, text, len) != 0)
        return -1;
    return emit_delta(e, "response.output_text.delta", it->id, index, it->text_part, text, len, 1);
}

static int add_refusal(telex_responses_enc_t *e, const char *text, size_t len)
{
    int index = message_item(e);
    if (index < 0)
        return -1;
    item_t *it = &e->items[index];
    if (it->refusal_part < 0) {
        it->refusal_part = it->nparts++;
        if (emit(e, "response.content_part.added",
                 json_pack("{s:s,s:i,s:i,s:o}", "item_id", it->id, "output_index", index, "content_index",
                           it->refusal_part, "part", refusal_part_json(it, 0))) != 0)
            return -1;
    }
    if (telex_buf_append(&it->refusal, text, len) != 0)
        return -1;
    return emit_delta(e, "response.refusal.delta", it->id, index, it->refusal_part, text, len, 0);
}

static int add_reasoning(telex_responses_enc_t *e, const char *text, size_t len)
{
    if (e->reasoning < 0) {
        int index;
        item_t *it = add_item(e, ITEM_REASONING, &index);
        if (it == NULL || emit_item_added(e, index) != 0)
            return -1;
        e->reasoning = index;
        if (emit(e, "response.content_part.added",
                 json_pack("{s:s,s:i,s:i,s:o}", "item_id", it->id, "output_index", index, "content_index", 0, "part",
                           reasoning_part_json(it, 0))) != 0)
            return -1;
    }
    item_t *it = &e->items[e->reasoning];
    if (telex_buf_append(&it->text, text, len) != 0)
        return -1;
    return emit_delta(e, "response.reasoning_text.delta", it->id, e->reasoning, 0, text, len, 0);
}

/* A tool call's delta: its item (made, and announced, at its first delta;
 * id and name may be NULL) and the next piece of its arguments. */
static int tool_call(telex_responses_enc_t *e, int64_t tool_index, const char *id, const char *name, const char *args,
                     size_t len)
{
    int index = -1;
    for (size_t i = 0; i < e->n; i++)
        if (e->items[i].kind == ITEM_FUNCTION && e->items[i].tool_index == tool_index)
            index = (int)i;
    if (index < 0) {
        item_t *it = add_item(e, ITEM_FUNCTION, &index);
        if (it == NULL)
            return -1;
        it->tool_index = tool_index;
        char made[48];
        if (id == NULL) {
            snprintf(made, sizeof made, "call_%.32s_%d", e->id + 5, index);
            id = made;
        }
        it->call_id = telex_xstrdup(id);
        it->name = telex_xstrdup(name != NULL ? name : "");
        if (emit_item_added(e, index) != 0)
            return -1;
    } else if (name != NULL && e->items[index].name[0] == '\0') {
        char *n = telex_xstrdup(name); /* a provider that names the call after its first delta */
        free(e->items[index].name);
        e->items[index].name = n;
    }
    if (len == 0)
        return 0;
    item_t *it = &e->items[index];
    if (telex_buf_append(&it->args, args, len) != 0)
        return -1;
    return emit_delta(e, "response.function_call_arguments.delta", it->id, index, -1, args, len, 0);
}

static int add_tool_call(telex_responses_enc_t *e, json_t *tc, size_t position)
{
    json_t *jindex = json_object_get(tc, "index");
    int64_t tool_index = json_is_integer(jindex) ? (int64_t)json_integer_value(jindex) : (int64_t)position;
    json_t *fn = json_object_get(tc, "function");
    json_t *args = json_object_get(fn, "arguments");
    return tool_call(e, tool_index, json_string_value(json_object_get(tc, "id")),
                     json_string_value(json_object_get(fn, "name")), json_string_value(args),
                     json_is_string(args) ? json_string_length(args) : 0);
}

int telex_responses_enc_chunk(telex_responses_enc_t *e, json_t *chunk)
{
    json_t *choice = telex_answer_choice0(chunk);
    size_t i;
    json_t *c;
    if (choice == NULL)
        return 0;
    json_t *delta = json_object_get(choice, "delta");
    json_t *reasoning = telex_answer_reasoning(delta);
    if (reasoning != NULL && json_string_length(reasoning) > 0 &&
        add_reasoning(e, json_string_value(reasoning), json_string_length(reasoning)) != 0)
        return -1;
    json_t *content = json_object_get(delta, "content");
    if (json_is_string(content) && json_string_length(content) > 0 &&
        add_text(e, json_string_value(content), json_string_length(content)) != 0)
        return -1;
    json_t *refusal = json_object_get(delta, "refusal");
    if (json_is_string(refusal) && json_string_length(refusal) > 0 &&
        add_refusal(e, json_string_value(refusal), json_string_length(refusal)) != 0)
        return -1;
    json_t *calls = json_object_get(delta, "tool_calls");
    json_array_foreach(calls, i, c)
    {
        if (add_tool_call(e, c, i) != 0)
            return -1;
    }
    const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
    if (finish != NULL)
        snprintf(e->finish, sizeof e->finish, "%s", finish);
    return e->stopped ? -1 : 0;
}

int telex_responses_enc_plain(telex_responses_enc_t *e, const char *text, size_t len, int has_tool,
                              int64_t tool_index, const char *args, size_t args_len)
{
    if (len > 0 && add_text(e, text, len) != 0)
        return -1;
    if (has_tool && tool_call(e, tool_index, NULL, NULL, args, args_len) != 0)
        return -1;
    return e->stopped ? -1 : 0;
}

void telex_responses_enc_usage(telex_responses_enc_t *e, json_t *usage)
{
    if (!json_is_object(usage))
        return;
    json_int_t in = json_integer_value(json_object_get(usage, "prompt_tokens"));
    json_int_t out = json_integer_value(json_object_get(usage, "completion_tokens"));
    json_int_t cached = json_integer_value(json_object_get(json_object_get(usage, "prompt_tokens_details"), "cached_tokens"));
    json_int_t reasoning =
        json_integer_value(json_object_get(json_object_get(usage, "completion_tokens_details"), "reasoning_tokens"));
    json_t *u = json_pack("{s:I,s:{s:I},s:I,s:{s:I},s:I}", "input_tokens", in, "input_tokens_details", "cached_tokens",
                          cached, "output_tokens", out, "output_tokens_details", "reasoning_tokens", reasoning,
                          "total_tokens", in + out);
    json_t *cost = json_object_get(usage, "cost_usd");
    if (u != NULL && cost != NULL)
        json_object_set(u, "cost_usd", cost);
    json_decref(e->usage);
    e->usage = u;
}

/* ------------------------------------------------------------ the end */

/* The terminal event {"type":type,"sequence_number":n,"response":<e->final>}:
 * written around the final Response's text (what emit's event_text makes of
 * it, byte for byte: tests/unit/test_front_door_deltas.c compares), which is
 * kept (final_text) for the stream's stored Response — it was written a
 * second time for that. */
static int emit_final(telex_responses_enc_t *e, const char *type)
{
    free(e->final_text);
    e->final_text = e->final != NULL ? telex_json_dumps(e->final, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (e->stopped || e->final_text == NULL)
        return -1;
    if (e->emit == NULL) /* building a Response object only */
        return 0;
    size_t len;
    char *text = response_event_text(type, e->seq, e->final_text, &len);
    int rc = emit_text(e, type, text, len);
    free(text);
    return rc;
}

/* The usual message, one output_text part: its three closing events
 * (output_text.done, content_part.done, output_item.done) written as text
 * around its text escaped once — the bytes emit() makes of the trees
 * close_item builds otherwise (tests/unit/test_front_door_deltas.c compares
 * them); the text was written three times, each from a tree. 1 when the
 * text cannot be written this way (then close_item's trees decide). */
static int close_text_message(telex_responses_enc_t *e, int index, const char *status)
{
    item_t *it = &e->items[index];
    if (e->stopped)
        return -1;
    if (e->emit == NULL)
        return 0;
    size_t id_len = strlen(it->id), n = it->text.len;
    char id[TELEX_ANSWER_STRING_BOUND(sizeof(it->id))];
    char *text = telex_xmalloc(TELEX_ANSWER_STRING_BOUND(n));
    size_t idq = telex_answer_put_string(id, it->id, id_len);
    size_t tq = telex_answer_put_string(text, it->text.data != NULL ? it->text.data : "", n);
    if (idq == SIZE_MAX || tq == SIZE_MAX) {
        free(text);
        return 1;
    }
    char *out = telex_xmalloc(320 + strlen(status) + 3 * idq + tq), *o;
    int rc = 0;
#define PUT(lit) (memcpy(o, lit, sizeof(lit) - 1), o += sizeof(lit) - 1)
#define PUTN(p, len) (memcpy(o, p, len), o += (len))
#define PART() (PUT("{\"type\":\"output_text\",\"text\":"), PUTN(text, tq), PUT(",\"annotations\":[],\"logprobs\":[]}"))
    for (int step = 0; step < 3 && rc == 0; step++) {
        static const char *const types[3] = {"response.output_text.done", "response.content_part.done",
                                              "response.output_item.done"};
        o = out;
        PUT("{\"type\":\"");
        PUTN(types[step], strlen(types[step]));
        PUT("\",\"sequence_number\":");
        o += telex_answer_put_uint(o, e->seq);
        if (step < 2) {
            PUT(",\"item_id\":");
            PUTN(id, idq);
            PUT(",\"output_index\":");
            o += telex_answer_put_uint(o, (uint64_t)index);
            PUT(",\"content_index\":0,");
            if (step == 0) {
                PUT("\"text\":");
                PUTN(text, tq);
                PUT(",\"logprobs\":[]}");
            } else {
                PUT("\"part\":");
                PART();
                PUT("}");
            }
        } else {
            PUT(",\"output_index\":");
            o += telex_answer_put_uint(o, (uint64_t)index);
            PUT(",\"item\":{\"id\":");
            PUTN(id, idq);
            PUT(",\"type\":\"message\",\"status\":\"");
            PUTN(status, strlen(status)); /* (a constant: nothing to escape) */
            PUT("\",\"role\":\"assistant\",\"content\":[");
            PART();
            PUT("]}}");
        }
        rc = emit_text(e, types[step], out, (size_t)(o - out));
    }
#undef PART
#undef PUTN
#undef PUT
    free(out);
    free(text);
    return rc;
}

static int close_item(telex_responses_enc_t *e, int index, const char *status)
{
    item_t *it = &e->items[index];
    if (it->kind == ITEM_MESSAGE && it->nparts == 1 && it->text_part == 0) {
        int rc = close_text_message(e, index, status);
        if (rc <= 0)
            return rc;
    }
    if (it->kind == ITEM_MESSAGE) {
        for (int k = 0; k < it->nparts; k++) {
            int text = k == it->text_part;
            json_t *done = text ? json_pack("{s:s,s:i,s:i,s:o,s:[]}", "item_id", it->id, "output_index", index,
                                            "content_index", k, "text", buf_string(&it->text, &it->text_json),
                                            "logprobs")
                                : json_pack("{s:s,s:i,s:i,s:o}", "item_id", it->id, "output_index", index,
                                            "content_index", k, "refusal", buf_string(&it->refusal, &it->refusal_json));
            if (emit(e, text ? "response.output_text.done" : "response.refusal.done", done) != 0 ||
                emit(e, "response.content_part.done",
                     json_pack("{s:s,s:i,s:i,s:o}", "item_id", it->id, "output_index", index, "content_index", k,
                               "part", text ? text_part_json(it, 1) : refusal_part_json(it, 1))) != 0)
                return -1;
        }
    } else if (it->kind == ITEM_REASONING) {
        if (emit(e, "response.reasoning_text.done",
                 json_pack("{s:s,s:i,s:i,s:o}", "item_id", it->id, "output_index", index, "content_index", 0, "text",
                           buf_string(&it->text, &it->text_json))) != 0 ||
            emit(e, "response.content_part.done",
                 json_pack("{s:s,s:i,s:i,s:o}", "item_id", it->id, "output_index", index, "content_index", 0, "part",
                           reasoning_part_json(it, 1))) != 0)
            return -1;
    } else if (emit(e, "response.function_call_arguments.done",
                    json_pack("{s:s,s:i,s:s,s:o}", "item_id", it->id, "output_index", index, "name", it->name,
                              "arguments", buf_string(&it->args, &it->args_json))) != 0) {
        return -1;
    }
    return emit(e, "response.output_item.done",
                json_pack("{s:i,s:o}", "output_index", index, "item", item_json(it, status, 1)));
}

int telex_responses_enc_finish(telex_responses_enc_t *e)
{
    const char *reason = NULL;
    if (strcmp(e->finish, "length") == 0)
        reason = "max_output_tokens";
    else if (strcmp(e->finish, "content_filter") == 0)
        reason = "content_filter";
    const char *item_status = reason != NULL ? "incomplete" : "completed";
    for (size_t i = 0; i < e->n; i++)
        if (close_item(e, (int)i, item_status) != 0)
            return -1;
    json_decref(e->final);
    e->final = reason != NULL ? response_json(e, "incomplete", item_status, NULL, json_pack("{s:s}", "reason", reason))
                              : response_json(e, "completed", item_status, NULL, NULL);
    return emit_final(e, reason != NULL ? "response.incomplete" : "response.completed");
}

int telex_responses_enc_fail(telex_responses_enc_t *e, const char *code, const char *message)
{
    json_decref(e->final);
    e->final = response_json(e, strcmp(code, "cancelled") == 0 ? "cancelled" : "failed", "incomplete",
                             json_pack("{s:s,s:s}", "code", code, "message", message), NULL);
    return emit_final(e, "response.failed");
}

char *telex_responses_enc_take_final_text(telex_responses_enc_t *e)
{
    char *text = e->final_text;
    e->final_text = NULL;
    if (text == NULL) {
        json_t *final = telex_responses_enc_final(e);
        text = telex_json_dumps(final, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(final);
    }
    return text;
}

int telex_responses_enc_error(telex_responses_enc_t *e, const char *code, const char *message)
{
    if (e->emit == NULL)
        return 0;
    char *text = event_text("error", e->seq,
                            json_pack("{s:s,s:s,s:n}", "code", code, "message", message, "param"));
    int rc = text != NULL ? e->emit(e->user, "error", text, strlen(text)) : -1;
    free(text);
    e->stopped = 1;
    if (rc == 0)
        e->seq++;
    return rc != 0 ? -1 : 0;
}

json_t *telex_responses_enc_final(telex_responses_enc_t *e)
{
    return e->final != NULL ? json_incref(e->final) : telex_responses_enc_response(e);
}

json_t *telex_responses_output_as_message(json_t *response)
{
    json_t *msg = json_pack("{s:s,s:n}", "role", "assistant", "content");
    json_t *calls = json_array();
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (msg == NULL || calls == NULL || f == NULL) {
        json_decref(msg);
        json_decref(calls);
        if (f != NULL)
            fclose(f);
        free(text);
        return NULL;
    }
    size_t i, k;
    json_t *item, *part;
    json_t *only = NULL; /* the one text part, when there is one: used as it is */
    int parts = 0;
    json_array_foreach(json_object_get(response, "output"), i, item)
    {
        const char *type = json_string_value(json_object_get(item, "type"));
        if (type != NULL && strcmp(type, "message") == 0) {
            json_array_foreach(json_object_get(item, "content"), k, part)
            {
                json_t *t = json_object_get(part, "text");
                if (json_is_string(t)) {
                    fputs(json_string_value(t), f);
                    only = parts++ == 0 ? t : NULL;
                }
            }
        } else if (type != NULL && strcmp(type, "function_call") == 0) {
            json_array_append_new(calls, json_pack("{s:O,s:s,s:{s:O,s:O}}", "id", json_object_get(item, "call_id"),
                                                   "type", "function", "function", "name",
                                                   json_object_get(item, "name"), "arguments",
                                                   json_object_get(item, "arguments")));
        }
    }
    fclose(f);
    if (len > 0)
        json_object_set_new(msg, "content", only != NULL ? json_incref(only) : json_stringn(text, len));
    free(text);
    if (json_array_size(calls) > 0)
        json_object_set(msg, "tool_calls", calls);
    json_decref(calls);
    return msg;
}

/* ------------------------------------------------------------ whole answers */

char *telex_responses_from_completion(json_t *completion, const char *response_id, const char *model, json_t *echo,
                                      int64_t created_at)
{
    telex_responses_enc_t *e = telex_responses_enc_new(response_id, model, echo, created_at, NULL, NULL);
    if (e == NULL)
        return NULL;
    json_t *chunk = telex_answer_completion_as_chunk(completion);
    char *text = NULL;
    if (chunk != NULL && telex_responses_enc_chunk(e, chunk) == 0) {
        telex_responses_enc_usage(e, json_object_get(completion, "usage"));
        const char *reason = strcmp(e->finish, "length") == 0           ? "max_output_tokens"
                             : strcmp(e->finish, "content_filter") == 0 ? "content_filter"
                                                                        : NULL;
        json_t *r = response_json(e, reason ? "incomplete" : "completed", reason ? "incomplete" : "completed", NULL,
                                  reason ? json_pack("{s:s}", "reason", reason) : NULL);
        text = r != NULL ? telex_json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(r);
    }
    json_decref(chunk);
    telex_responses_enc_free(e);
    return text;
}
