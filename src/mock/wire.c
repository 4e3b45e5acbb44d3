/*
 * mock/wire.c — the bytes the mock sends, in OpenAI's or Anthropic's format.
 *
 * exchange.c decides which event comes next; this file writes it, into one
 * buffer sized at start for the largest event the request can produce
 * (telex_mock_wire_init), so writing never allocates. An answer is made of
 * segments — thinking, text, then one per tool call — each a run of content
 * units (tokens, or argument fragments):
 *
 *   OpenAI                                   Anthropic
 *   role chunk                               message_start (usage: input), ping
 *   -                                        content_block_start (per segment)
 *   delta.reasoning_content / content /      content_block_delta: thinking_delta /
 *     refusal / tool_calls[{index,id,type,     text_delta / input_json_delta
 *     function:{name,arguments}}] then
 *     tool_calls[{index,function:{arguments}}]
 *   -                                        signature_delta (thinking), content_block_stop
 *   finish chunk (finish_reason)             message_delta (stop_reason, usage: output)
 *   usage chunk (when asked)                 -
 *   data: [DONE]                             message_stop
 *
 * Usage is the same in both: prompt = words of the prompt, of which
 * cached_tokens were "cached"; completion = every unit; reasoning = the
 * thinking units (OpenAI's completion_tokens_details.reasoning_tokens).
 */
#include "mock/mock_internal.h"
#include "util/alloc.h"
#include "util/json_dump.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


int64_t telex_mock_spec_units(const telex_mock_spec_t *spec)
{
    int64_t n = (int64_t)spec->thinking.count + (int64_t)spec->answer.count;
    for (size_t i = 0; i < spec->n_tools; i++)
        n += (int64_t)spec->tools[i].n_frag;
    return n;
}

telex_mock_segment_t *telex_mock_wire_segments(const telex_mock_spec_t *spec, size_t *n)
{
    telex_mock_segment_t *s = telex_xcalloc(2 + spec->n_tools, sizeof(*s));
    size_t k = 0;
    if (spec->thinking.count > 0)
        s[k++] = (telex_mock_segment_t){TELEX_MOCK_SEG_THINKING, 0, spec->thinking.count};
    if (spec->answer.count > 0 || (spec->thinking.count == 0 && spec->n_tools == 0))
        s[k++] = (telex_mock_segment_t){TELEX_MOCK_SEG_TEXT, 0, spec->answer.count};
    for (size_t i = 0; i < spec->n_tools; i++)
        s[k++] = (telex_mock_segment_t){TELEX_MOCK_SEG_TOOL, i, spec->tools[i].n_frag};
    *n = k;
    return s;
}

static int anthropic(const telex_mock_wire_t *w)
{
    return w->spec->format == TELEX_MOCK_FORMAT_ANTHROPIC;
}

static const char *finish_reason(const telex_mock_spec_t *spec)
{
    if (spec->finish_reason != NULL)
        return spec->finish_reason;
    if (spec->format == TELEX_MOCK_FORMAT_ANTHROPIC)
        return spec->n_tools > 0 ? "tool_use" : spec->refusal ? "refusal" : "end_turn";
    return spec->n_tools > 0 ? "tool_calls" : "stop";
}

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ------------------------------------------------------------ writing */

static void w_raw(telex_mock_wire_t *w, const char *s, size_t len)
{
    if (w->n + len <= w->cap) {
        memcpy(w->buf + w->n, s, len);
        w->n += len;
    }
}

static void w_str(telex_mock_wire_t *w, const char *s)
{
    w_raw(w, s, strlen(s));
}

/* JSON string content (util/json_dump.h); the buffer is sized for 6 bytes
 * per input byte. */
static size_t escape(char *out, const char *s, size_t len)
{
    size_t pos = 0;
    return telex_json_escape(out, s, len, &pos, len, TELEX_JSON_ESCAPE_REPLACE);
}

static void w_esc(telex_mock_wire_t *w, const char *s, size_t len)
{
    if (w->n + 6 * len <= w->cap)
        w->n += escape(w->buf + w->n, s, len);
}

__attribute__((format(printf, 2, 3))) static void w_fmt(telex_mock_wire_t *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->buf + w->n, w->cap - w->n, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < w->cap - w->n)
        w->n += (size_t)n;
}

static void w_stamp(telex_mock_wire_t *w)
{
    if (w->spec->stamp)
        w_fmt(w, ",\"mock_sent_ns\":%lld", (long long)monotonic_ns());
}

/* OpenAI: prefix, then the choice, then openai_end. */
static void openai_begin(telex_mock_wire_t *w)
{
    w->n = 0;
    w_raw(w, w->prefix, w->prefix_len);
}

static size_t openai_end(telex_mock_wire_t *w)
{
    w_str(w, "]");
    if (w->spec->include_usage)
        w_str(w, ",\"usage\":null");
    w_stamp(w);
    w_str(w, "}\n\n");
    return w->n;
}

static const char choice_tail[] = "},\"logprobs\":null,\"finish_reason\":null}";

/* Anthropic: `event: NAME` + `data: {"type":"NAME"`, fields, anthropic_end. */
static void anthropic_begin(telex_mock_wire_t *w, const char *name)
{
    w->n = 0;
    w_fmt(w, "event: %s\ndata: {\"type\":\"%s\"", name, name);
}

static size_t anthropic_end(telex_mock_wire_t *w)
{
    w_stamp(w);
    w_str(w, "}\n\n");
    return w->n;
}

static void usage_numbers(const telex_mock_spec_t *spec, int64_t *prompt, int64_t *cached, int64_t *completion)
{
    *prompt = spec->prompt_tokens;
    *cached = spec->cached_tokens < *prompt ? spec->cached_tokens : *prompt;
    *completion = telex_mock_spec_units(spec);
}

/* OpenAI's usage object. */
static void w_openai_usage(telex_mock_wire_t *w)
{
    int64_t p, c, u;
    usage_numbers(w->spec, &p, &c, &u);
    w_fmt(w, "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld", (long long)p, (long long)u,
          (long long)(p + u));
    if (c > 0)
        w_fmt(w, ",\"prompt_tokens_details\":{\"cached_tokens\":%lld}", (long long)c);
    if (w->spec->thinking.count > 0)
        w_fmt(w, ",\"completion_tokens_details\":{\"reasoning_tokens\":%zu}", w->spec->thinking.count);
    w_str(w, "}");
}

/* ------------------------------------------------------------ events */

static char *make_prefix(const telex_mock_spec_t *spec, size_t *len)
{
    size_t ml = strlen(spec->model);
    size_t cap = 200 + 6 * ml;
    char *p = telex_xmalloc(cap);
    int n = snprintf(p, cap,
                     "data: {\"id\":\"chatcmpl-mock-%llu\",\"object\":\"chat.completion.chunk\",\"created\":%lld,"
                     "\"model\":\"",
                     (unsigned long long)spec->seq, (long long)spec->created);
    size_t m = (size_t)n;
    m += escape(p + m, spec->model, ml);
    static const char rest[] = "\",\"system_fingerprint\":\"fp_mock\",\"choices\":[";
    memcpy(p + m, rest, sizeof(rest) - 1);
    m += sizeof(rest) - 1;
    *len = m;
    return p;
}

void telex_mock_wire_init(telex_mock_wire_t *w, const telex_mock_spec_t *spec)
{
    memset(w, 0, sizeof(*w));
    w->spec = spec;
    size_t piece = spec->answer.max_raw_len;
    if (spec->thinking.max_raw_len > piece)
        piece = spec->thinking.max_raw_len;
    if (TELEX_MOCK_TOOL_FRAGMENT + 4 > piece)
        piece = TELEX_MOCK_TOOL_FRAGMENT + 4;
    size_t names = 0;
    for (size_t i = 0; i < spec->n_tools; i++) {
        size_t l = strlen(spec->tools[i].id) + strlen(spec->tools[i].name);
        if (l > names)
            names = l;
    }
    size_t fr = spec->finish_reason != NULL ? strlen(spec->finish_reason) : 0;
    w->prefix = make_prefix(spec, &w->prefix_len);
    w->cap = 1024 + w->prefix_len + 6 * (strlen(spec->model) + piece + names + fr);
    w->buf = telex_xmalloc(w->cap);
}

void telex_mock_wire_free(telex_mock_wire_t *w)
{
    free(w->prefix);
    free(w->buf);
    w->prefix = w->buf = NULL;
}

size_t telex_mock_wire_open(telex_mock_wire_t *w)
{
    const telex_mock_spec_t *spec = w->spec;
    if (!anthropic(w)) {
        openai_begin(w);
        w_str(w, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null");
        w_str(w, choice_tail);
        return openai_end(w);
    }
    anthropic_begin(w, "message_start");
    w_fmt(w, ",\"message\":{\"id\":\"msg_mock_%llu\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],"
             "\"model\":\"",
          (unsigned long long)spec->seq);
    w_esc(w, spec->model, strlen(spec->model));
    w_str(w, "\",\"stop_reason\":null,\"stop_sequence\":null");
    if (spec->usage) {
        int64_t p, c, u;
        usage_numbers(spec, &p, &c, &u);
        w_fmt(w,
              ",\"usage\":{\"input_tokens\":%lld,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":%lld,"
              "\"output_tokens\":1}",
              (long long)(p - c), (long long)c);
    }
    w_str(w, "}");
    return anthropic_end(w);
}

size_t telex_mock_wire_ping(telex_mock_wire_t *w)
{
    if (!anthropic(w))
        return 0;
    anthropic_begin(w, "ping");
    return anthropic_end(w);
}

size_t telex_mock_wire_segment_start(telex_mock_wire_t *w, const telex_mock_segment_t *seg, size_t index)
{
    const telex_mock_tool_t *t = seg->kind == TELEX_MOCK_SEG_TOOL ? &w->spec->tools[seg->tool] : NULL;
    if (!anthropic(w)) {
        if (t == NULL)
            return 0;
        openai_begin(w);
        w_fmt(w, "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":%zu,\"id\":\"", seg->tool);
        w_esc(w, t->id, strlen(t->id));
        w_str(w, "\",\"type\":\"function\",\"function\":{\"name\":\"");
        w_esc(w, t->name, strlen(t->name));
        w_str(w, "\",\"arguments\":\"\"}}]");
        w_str(w, choice_tail);
        return openai_end(w);
    }
    anthropic_begin(w, "content_block_start");
    w_fmt(w, ",\"index\":%zu,\"content_block\":", index);
    if (seg->kind == TELEX_MOCK_SEG_THINKING) {
        w_str(w, "{\"type\":\"thinking\",\"thinking\":\"\"}");
    } else if (seg->kind == TELEX_MOCK_SEG_TEXT) {
        w_str(w, "{\"type\":\"text\",\"text\":\"\"}");
    } else {
        w_str(w, "{\"type\":\"tool_use\",\"id\":\"");
        w_esc(w, t->id, strlen(t->id));
        w_str(w, "\",\"name\":\"");
        w_esc(w, t->name, strlen(t->name));
        w_str(w, "\",\"input\":{}}");
    }
    return anthropic_end(w);
}

size_t telex_mock_wire_unit(telex_mock_wire_t *w, const telex_mock_segment_t *seg, size_t index, size_t i)
{
    const telex_mock_spec_t *spec = w->spec;
    char scratch[32];
    const char *piece;
    size_t len;
    if (seg->kind == TELEX_MOCK_SEG_THINKING) {
        piece = telex_mock_answer_token(&spec->thinking, i, scratch, &len);
    } else if (seg->kind == TELEX_MOCK_SEG_TEXT) {
        piece = telex_mock_answer_token(&spec->answer, i, scratch, &len);
    } else {
        const telex_mock_tool_t *t = &spec->tools[seg->tool];
        piece = t->arguments + t->frag[i];
        len = t->frag[i + 1] - t->frag[i];
    }
    if (!anthropic(w)) {
        openai_begin(w);
        if (seg->kind == TELEX_MOCK_SEG_TOOL)
            w_fmt(w, "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":%zu,\"function\":{\"arguments\":\"",
                  seg->tool);
        else
            w_fmt(w, "{\"index\":0,\"delta\":{\"%s\":\"",
                  seg->kind == TELEX_MOCK_SEG_THINKING ? "reasoning_content" : spec->refusal ? "refusal" : "content");
        w_esc(w, piece, len);
        w_str(w, seg->kind == TELEX_MOCK_SEG_TOOL ? "\"}}]" : "\"");
        w_str(w, choice_tail);
        return openai_end(w);
    }
    static const char *const delta[][2] = {
        [TELEX_MOCK_SEG_THINKING] = {"thinking_delta", "thinking"},
        [TELEX_MOCK_SEG_TEXT] = {"text_delta", "text"},
        [TELEX_MOCK_SEG_TOOL] = {"input_json_delta", "partial_json"},
    };
    anthropic_begin(w, "content_block_delta");
    w_fmt(w, ",\"index\":%zu,\"delta\":{\"type\":\"%s\",\"%s\":\"", index, delta[seg->kind][0], delta[seg->kind][1]);
    w_esc(w, piece, len);
    w_str(w, "\"}");
    return anthropic_end(w);
}

size_t telex_mock_wire_segment_end(telex_mock_wire_t *w, const telex_mock_segment_t *seg, size_t index, int part)
{
    if (!anthropic(w))
        return 0;
    if (part == 0) {
        if (seg->kind != TELEX_MOCK_SEG_THINKING)
            return 0;
        anthropic_begin(w, "content_block_delta");
        w_fmt(w, ",\"index\":%zu,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"mock-signature-%llu\"}",
              index, (unsigned long long)w->spec->seq);
        return anthropic_end(w);
    }
    anthropic_begin(w, "content_block_stop");
    w_fmt(w, ",\"index\":%zu", index);
    return anthropic_end(w);
}

size_t telex_mock_wire_finish(telex_mock_wire_t *w)
{
    const char *fr = finish_reason(w->spec);
    if (!anthropic(w)) {
        openai_begin(w);
        w_str(w, "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"");
        w_esc(w, fr, strlen(fr));
        w_str(w, "\"}");
        return openai_end(w);
    }
    anthropic_begin(w, "message_delta");
    w_str(w, ",\"delta\":{\"stop_reason\":\"");
    w_esc(w, fr, strlen(fr));
    w_str(w, "\",\"stop_sequence\":null}");
    if (w->spec->usage)
        w_fmt(w, ",\"usage\":{\"output_tokens\":%lld}", (long long)telex_mock_spec_units(w->spec));
    return anthropic_end(w);
}

size_t telex_mock_wire_usage(telex_mock_wire_t *w)
{
    if (anthropic(w))
        return 0;
    openai_begin(w);
    w_str(w, "],\"usage\":");
    w_openai_usage(w);
    w_stamp(w);
    w_str(w, "}\n\n");
    return w->n;
}

size_t telex_mock_wire_end(telex_mock_wire_t *w)
{
    if (!anthropic(w)) {
        w->n = 0;
        w_str(w, "data: [DONE]\n\n");
        return w->n;
    }
    anthropic_begin(w, "message_stop");
    return anthropic_end(w);
}

size_t telex_mock_wire_error_event(telex_mock_wire_t *w)
{
    w->n = 0;
    if (anthropic(w))
        w_str(w, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
                 "\"mock: injected error event\"}}\n\n");
    else
        w_str(w, "data: {\"error\":{\"message\":\"mock: injected error event\",\"type\":\"server_error\","
                 "\"param\":null,\"code\":null}}\n\n");
    return w->n;
}

/* ------------------------------------------------------------ whole answers */

static json_t *joined(const telex_mock_answer_t *a)
{
    size_t len = 0;
    char *text = telex_mock_answer_join(a, &len);
    json_t *s = json_stringn(text, len);
    free(text);
    return s;
}

static json_t *whole_openai(const telex_mock_spec_t *spec)
{
    char id[48];
    snprintf(id, sizeof(id), "chatcmpl-mock-%llu", (unsigned long long)spec->seq);
    json_t *text = joined(&spec->answer);
    json_t *msg = json_pack("{s:s}", "role", "assistant");
    int ok = text != NULL && msg != NULL;
    int content_null = spec->refusal || (spec->answer.count == 0 && spec->n_tools > 0);
    ok = ok && json_object_set(msg, "content", content_null ? json_null() : text) == 0 &&
         json_object_set(msg, "refusal", spec->refusal ? text : json_null()) == 0;
    if (ok && spec->thinking.count > 0)
        ok = json_object_set_new(msg, "reasoning_content", joined(&spec->thinking)) == 0;
    if (ok && spec->n_tools > 0) {
        json_t *calls = json_array();
        ok = json_object_set_new(msg, "tool_calls", calls) == 0; /* stolen either way */
        for (size_t i = 0; ok && i < spec->n_tools; i++)
            ok = json_array_append_new(calls, json_pack("{s:s,s:s,s:{s:s,s:s%}}", "id", spec->tools[i].id, "type",
                                                        "function", "function", "name", spec->tools[i].name,
                                                        "arguments", spec->tools[i].arguments,
                                                        spec->tools[i].len)) == 0;
    }
    json_t *o = ok ? json_pack("{s:s,s:s,s:I,s:s,s:s,s:[{s:i,s:O,s:n,s:s}]}", "id", id, "object", "chat.completion",
                               "created", (json_int_t)spec->created, "model", spec->model, "system_fingerprint",
                               "fp_mock", "choices", "index", 0, "message", msg, "logprobs", "finish_reason",
                               finish_reason(spec))
                   : NULL;
    if (o != NULL && spec->usage) {
        telex_mock_wire_t w = {.spec = spec, .cap = 512};
        char buf[512];
        w.buf = buf;
        w_openai_usage(&w);
        json_t *u = json_loadb(buf, w.n, 0, NULL);
        if (u == NULL || json_object_set_new(o, "usage", u) != 0) {
            json_decref(o);
            o = NULL;
        }
    }
    json_decref(text);
    json_decref(msg);
    return o;
}

static json_t *whole_anthropic(const telex_mock_spec_t *spec)
{
    char id[48];
    snprintf(id, sizeof(id), "msg_mock_%llu", (unsigned long long)spec->seq);
    json_t *content = json_array();
    int ok = content != NULL;
    if (ok && spec->thinking.count > 0)
        ok = json_array_append_new(content, json_pack("{s:s,s:o,s:s}", "type", "thinking", "thinking",
                                                      joined(&spec->thinking), "signature", "mock-signature")) == 0;
    if (ok && (spec->answer.count > 0 || json_array_size(content) + spec->n_tools == 0))
        ok = json_array_append_new(content, json_pack("{s:s,s:o}", "type", "text", "text", joined(&spec->answer))) == 0;
    for (size_t i = 0; ok && i < spec->n_tools; i++) {
        json_t *input = json_loadb(spec->tools[i].arguments, spec->tools[i].len, 0, NULL);
        ok = json_array_append_new(content, json_pack("{s:s,s:s,s:s,s:o}", "type", "tool_use", "id",
                                                       spec->tools[i].id, "name", spec->tools[i].name, "input",
                                                       input != NULL ? input : json_object())) == 0;
    }
    json_t *o = ok ? json_pack("{s:s,s:s,s:s,s:s,s:O,s:s,s:n}", "id", id, "type", "message", "role", "assistant",
                               "model", spec->model, "content", content, "stop_reason", finish_reason(spec),
                               "stop_sequence")
                   : NULL;
    json_decref(content);
    if (o != NULL && spec->usage) {
        int64_t p, c, u;
        usage_numbers(spec, &p, &c, &u);
        if (json_object_set_new(o, "usage",
                                json_pack("{s:I,s:i,s:I,s:I}", "input_tokens", (json_int_t)(p - c),
                                          "cache_creation_input_tokens", 0, "cache_read_input_tokens", (json_int_t)c,
                                          "output_tokens", (json_int_t)u)) != 0) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

char *telex_mock_wire_whole(const telex_mock_spec_t *spec)
{
    json_t *o = spec->format == TELEX_MOCK_FORMAT_ANTHROPIC ? whole_anthropic(spec) : whole_openai(spec);
    if (o != NULL && spec->stamp)
        json_object_set_new(o, "mock_sent_ns", json_integer(monotonic_ns()));
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return body;
}
