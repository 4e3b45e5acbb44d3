/*
 * gateway/answer_model.c — shared readings of the chat chunk. See
 * answer_model.h.
 */
#include "gateway/answer_model.h"
#include "util/alloc.h"
#include "util/json_dump.h"
#include "util/json_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *telex_answer_choice0(json_t *chunk)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(chunk, "choices"), i, c)
    {
        json_t *idx = json_object_get(c, "index");
        if (idx == NULL || (json_is_integer(idx) && json_integer_value(idx) == 0))
            return c;
    }
    return NULL;
}

json_t *telex_answer_reasoning(json_t *delta)
{
    json_t *r = json_object_get(delta, "reasoning_content");
    if (!json_is_string(r))
        r = json_object_get(delta, "reasoning");
    return json_is_string(r) ? r : NULL;
}

json_t *telex_answer_completion_as_chunk(json_t *completion)
{
    json_t *choice = json_array_get(json_object_get(completion, "choices"), 0);
    json_t *message = json_deep_copy(json_object_get(choice, "message"));
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(message, "tool_calls"), i, c)
    {
        if (json_object_get(c, "index") == NULL)
            json_object_set_new(c, "index", json_integer((json_int_t)i));
    }
    return json_pack("{s:[{s:i,s:o,s:O}]}", "choices", "index", 0, "delta", message ? message : json_object(),
                     "finish_reason", json_object_get(choice, "finish_reason"));
}

char *telex_answer_joined_text(json_t *parts)
{
    if (json_is_string(parts))
        return telex_xstrdup(json_string_value(parts));
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return NULL;
    size_t i;
    json_t *p;
    json_array_foreach(parts, i, p)
    {
        const char *t = json_string_value(json_object_get(p, "text"));
        if (t != NULL)
            fputs(t, f);
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

void telex_ignored_add(char *list, size_t cap, const char *name)
{
    size_t n = strlen(list), len = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += len)
        if ((p == list || p[-1] == ' ') && (p[len] == ',' || p[len] == '\0'))
            return;
    if (n + len + 3 >= cap)
        return;
    if (n > 0) {
        memcpy(list + n, ", ", 2);
        n += 2;
    }
    memcpy(list + n, name, len + 1);
}

size_t telex_answer_put_uint(char *dst, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    for (size_t i = 0; i < n; i++)
        dst[i] = digits[n - 1 - i];
    return n;
}

size_t telex_answer_put_string(char *dst, const char *s, size_t n)
{
    size_t pos = 0;
    dst[0] = '"';
    size_t w = n != 0 ? telex_json_escape(dst + 1, s, n, &pos, n, 0) : 0;
    if (w == TELEX_JSON_ESCAPE_BAD_UTF8)
        return SIZE_MAX;
    dst[1 + w] = '"';
    return w + 2;
}

/* ---- telex_answer_plain_delta: a walk over validated JSON --------------- */

typedef struct {
    const char *p, *end;
} walk_t;

static void ws(walk_t *w)
{
    while (w->p < w->end && (*w->p == ' ' || *w->p == '\t' || *w->p == '\n' || *w->p == '\r'))
        w->p++;
}

/* At an opening quote: past the string; *raw and *raw_len its undecoded text,
 * *escaped whether it holds a backslash. */
static void string_raw(walk_t *w, const char **raw, size_t *raw_len, int *escaped)
{
    const char *s = ++w->p;
    *escaped = 0;
    for (;;) {
        const char *q = telex_json_quote_or_backslash(w->p, w->end); /* (validated: a quote ends it) */
        if (*q == '"') {
            w->p = q;
            break;
        }
        *escaped = 1;
        w->p = q + 2; /* past the escaped byte (\u's digits are plain) */
    }
    *raw = s;
    *raw_len = (size_t)(w->p - s);
    w->p++;
}

static void skip_value(walk_t *w)
{
    int depth = 0;
    do {
        ws(w);
        char c = *w->p;
        if (c == '"') {
            const char *r;
            size_t n;
            int e;
            string_raw(w, &r, &n, &e);
        } else if (c == '{' || c == '[') {
            depth++;
            w->p++;
        } else if (c == '}' || c == ']') {
            depth--;
            w->p++;
        } else if (c == ',' || c == ':') {
            w->p++;
        } else { /* a number or literal */
            while (w->p < w->end && *w->p != ',' && *w->p != '}' && *w->p != ']' && *w->p != ' ' &&
                   *w->p != '\t' && *w->p != '\n' && *w->p != '\r')
                w->p++;
        }
        ws(w);
    } while (depth > 0);
}

/* At a value: is it null, "" or []? (then past it) */
static int empty_value(walk_t *w)
{
    if (w->end - w->p >= 4 && memcmp(w->p, "null", 4) == 0) {
        w->p += 4;
        return 1;
    }
    if (w->end - w->p >= 2 && (memcmp(w->p, "\"\"", 2) == 0)) {
        w->p += 2;
        return 1;
    }
    if (*w->p == '[') {
        walk_t t = {w->p + 1, w->end};
        ws(&t);
        if (*t.p == ']') {
            w->p = t.p + 1;
            return 1;
        }
    }
    return 0;
}

#define KEY_IS(lit) (klen == sizeof(lit) - 1 && memcmp(key, lit, klen) == 0)

/* Calls member(w, key, klen, ctx) at each member's value of the object at
 * w->p (its '{'); member returns 0 when it read (or skipped) the value, -1
 * to give up. A key with an escape gives up. */
static int members(walk_t *w, int (*member)(walk_t *, const char *, size_t, void *), void *ctx)
{
    w->p++; /* '{' */
    ws(w);
    if (*w->p == '}') {
        w->p++;
        return 0;
    }
    for (;;) {
        ws(w);
        const char *key;
        size_t klen;
        int escaped;
        string_raw(w, &key, &klen, &escaped);
        if (escaped)
            return -1;
        ws(w);
        w->p++; /* ':' */
        ws(w);
        if (member(w, key, klen, ctx) != 0)
            return -1;
        ws(w);
        if (*w->p++ == '}')
            return 0;
    }
}

/* A plain non-negative integer (what the tree reads as json_integer),
 * else -1: the tree decides. */
static int plain_uint(walk_t *w, int64_t *v)
{
    const char *s = w->p;
    while (w->p < w->end && *w->p >= '0' && *w->p <= '9')
        w->p++;
    size_t n = (size_t)(w->p - s);
    if (n == 0 || n > 18 || (s[0] == '0' && n > 1) || (w->p < w->end && (*w->p == '.' || *w->p == 'e' || *w->p == 'E')))
        return -1;
    *v = 0;
    for (size_t i = 0; i < n; i++)
        *v = *v * 10 + (s[i] - '0');
    return 0;
}

typedef struct {
    const char *raw;
    size_t len;
    int escaped;
} raw_string_t;

typedef struct {
    int seen_index, seen_delta, seen_finish, seen_content, seen_tools;
    int has_index;
    int64_t index;
    raw_string_t content; /* raw NULL: none */
    /* one tool call's continuing delta: {"index":i,"function":{"arguments":…}} */
    int has_tool, seen_tool_index, seen_function, seen_args;
    int64_t tool_index;
    raw_string_t args;
} choice_t;

static int function_member(walk_t *w, const char *key, size_t klen, void *ctx)
{
    choice_t *c = ctx;
    if (KEY_IS("arguments")) {
        if (c->seen_args++)
            return -1;
        if (*w->p == '"')
            string_raw(w, &c->args.raw, &c->args.len, &c->args.escaped);
        else
            skip_value(w); /* not a string: no arguments, as json_is_string says */
        return 0;
    }
    if (KEY_IS("name")) /* only a call's first delta names it: that one goes to the tree */
        return w->end - w->p >= 4 && memcmp(w->p, "null", 4) == 0 ? (w->p += 4, 0) : -1;
    return -1;
}

static int tool_member(walk_t *w, const char *key, size_t klen, void *ctx)
{
    choice_t *c = ctx;
    if (KEY_IS("index"))
        return c->seen_tool_index++ ? -1 : plain_uint(w, &c->tool_index);
    if (KEY_IS("function")) {
        if (c->seen_function++ || *w->p != '{')
            return -1;
        return members(w, function_member, c);
    }
    if (KEY_IS("type")) {
        skip_value(w);
        return 0;
    }
    if (KEY_IS("id")) /* a call's first delta: to the tree */
        return w->end - w->p >= 4 && memcmp(w->p, "null", 4) == 0 ? (w->p += 4, 0) : -1;
    return -1;
}

/* "tool_calls": empty, or exactly one continuing call's delta. */
static int tool_calls(walk_t *w, choice_t *c)
{
    if (c->seen_tools++)
        return -1;
    if (empty_value(w))
        return 0;
    if (*w->p != '[')
        return -1;
    w->p++;
    ws(w);
    if (*w->p != '{' || members(w, tool_member, c) != 0 || !c->seen_tool_index)
        return -1;
    ws(w);
    if (*w->p != ']')
        return -1; /* more than one call */
    w->p++;
    c->has_tool = 1;
    return 0;
}

static int delta_member(walk_t *w, const char *key, size_t klen, void *ctx)
{
    choice_t *c = ctx;
    if (KEY_IS("content")) {
        if (c->seen_content++)
            return -1;
        if (*w->p == '"') {
            string_raw(w, &c->content.raw, &c->content.len, &c->content.escaped);
            return 0;
        }
        skip_value(w); /* null or not a string: no text, as json_is_string says */
        return 0;
    }
    if (KEY_IS("tool_calls"))
        return tool_calls(w, c);
    if (KEY_IS("reasoning_content") || KEY_IS("reasoning") || KEY_IS("refusal"))
        return empty_value(w) ? 0 : -1;
    skip_value(w);
    return 0;
}

static int choice_member(walk_t *w, const char *key, size_t klen, void *ctx)
{
    choice_t *c = ctx;
    if (KEY_IS("index")) {
        if (c->seen_index++ || plain_uint(w, &c->index) != 0)
            return -1;
        c->has_index = 1;
        return 0;
    }
    if (KEY_IS("delta")) {
        if (c->seen_delta++)
            return -1;
        if (*w->p != '{') {
            skip_value(w);
            return 0;
        }
        return members(w, delta_member, c);
    }
    if (KEY_IS("finish_reason")) {
        if (c->seen_finish++)
            return -1;
        return w->end - w->p >= 4 && memcmp(w->p, "null", 4) == 0 ? (w->p += 4, 0) : -1;
    }
    skip_value(w);
    return 0;
}

typedef struct {
    int seen_choices;
    int found; /* choice 0 read */
    choice_t c;
} chunk_t;

/* At the '[' of "choices": finds choice 0 (k->found, k->c). */
static int choices_array(walk_t *w, chunk_t *k)
{
    w->p++;
    ws(w);
    while (*w->p != ']') {
        if (*w->p != '{')
            return -1;
        choice_t c = {0};
        if (members(w, choice_member, &c) != 0)
            return -1;
        /* the first element whose index is 0 or that has none */
        if (!k->found && (!c.has_index || c.index == 0)) {
            k->found = 1;
            k->c = c;
        }
        ws(w);
        if (*w->p == ',')
            w->p++;
        ws(w);
    }
    w->p++;
    return 0;
}

static int chunk_member(walk_t *w, const char *key, size_t klen, void *ctx)
{
    chunk_t *k = ctx;
    if (!KEY_IS("choices")) {
        skip_value(w);
        return 0;
    }
    if (k->seen_choices++ || *w->p != '[')
        return -1; /* (jansson keeps the last of repeated keys; not a list: the tree decides) */
    return choices_array(w, k);
}

/* A raw string's text: where it lies, or decoded at *o (advanced). */
static int decoded(const raw_string_t *r, const char *end, char **o, const char **text, size_t *len)
{
    if (r->raw == NULL) {
        *text = "";
        *len = 0;
        return 0;
    }
    if (!r->escaped) {
        *text = r->raw;
        *len = r->len;
        return 0;
    }
    const char *after;
    size_t m = telex_json_unescape(r->raw, end, *o, &after);
    if (m == SIZE_MAX)
        return -1;
    *text = *o;
    *len = m;
    *o += m;
    return 0;
}

/* At "choices"' '[': OpenAI's text chunk exactly as OpenAI writes it, one
 * choice [{"index":0,"delta":{"content":"…"},"logprobs":null,
 * "finish_reason":null}], is read by comparing its bytes (the walk spent
 * ~800 instructions on them); returns 1 with k filled (what choices_array
 * gives for it), 0 (w untouched) for anything else. Only from choices_at:
 * the whole walk, which the tests compare this with, never takes it. */
static int openai_text_choice(walk_t *w, chunk_t *k)
{
    static const char head[] = "[{\"index\":0,\"delta\":{\"content\":\"";
    static const char tail[] = "},\"logprobs\":null,\"finish_reason\":null}]";
    size_t hn = sizeof(head) - 1, tn = sizeof(tail) - 1;
    if ((size_t)(w->end - w->p) < hn + 1 + tn || memcmp(w->p, head, hn) != 0)
        return 0;
    walk_t t = {w->p + hn - 1, w->end}; /* at the text's opening quote */
    raw_string_t text;
    string_raw(&t, &text.raw, &text.len, &text.escaped);
    if ((size_t)(t.end - t.p) < tn || memcmp(t.p, tail, tn) != 0)
        return 0;
    memset(k, 0, sizeof(*k));
    k->found = 1;
    k->c.seen_index = k->c.has_index = k->c.seen_delta = k->c.seen_finish = k->c.seen_content = 1;
    k->c.content = text;
    w->p = t.p + tn;
    return 1;
}

int telex_answer_plain_delta(const char *json, size_t n, telex_answer_delta_t *d)
{
    return telex_answer_plain_delta_at(json, n, 0, d);
}

/* With choices_at, only the "choices" array is walked. The whole walk
 * differs from that only in the other top-level members, which it skips:
 * on a valid object skipping cannot fail, so the whole walk's verdict could
 * differ only through what makes the scan's finish_odd (a key with an
 * escape, a second top-level "choices"). */
int telex_answer_plain_delta_at(const char *json, size_t n, size_t choices_at, telex_answer_delta_t *d)
{
    walk_t w = {json, json + n};
    chunk_t k = {0};
    memset(d, 0, sizeof(*d));
    d->text = "";
    if (choices_at != 0 && choices_at < n && json[choices_at] == '[') {
        w.p = json + choices_at;
        if (!openai_text_choice(&w, &k) && choices_array(&w, &k) != 0)
            return 0;
    } else {
        ws(&w);
        if (w.p >= w.end || *w.p != '{' || members(&w, chunk_member, &k) != 0)
            return 0;
    }
    if (!k.found)
        return 1; /* no choice 0: nothing for the encoders */
    const choice_t *c = &k.c;
    if ((c->content.raw != NULL && c->content.escaped) || (c->has_tool && c->args.raw != NULL && c->args.escaped))
        d->scratch = telex_xmalloc(c->content.len + c->args.len + 1);
    char *o = d->scratch;
    if (decoded(&c->content, json + n, &o, &d->text, &d->text_len) != 0)
        goto refused;
    if (c->has_tool) {
        d->has_tool = 1;
        d->tool_index = c->tool_index;
        if (decoded(&c->args, json + n, &o, &d->args, &d->args_len) != 0)
            goto refused;
    }
    return 1;
refused: /* a string jansson refuses: the tree path decides */
    free(d->scratch);
    memset(d, 0, sizeof(*d));
    return 0;
}
