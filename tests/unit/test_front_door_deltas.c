/*
 * tests/unit/test_front_door_deltas.c — the per-chunk delta events of the
 * Responses and Messages encoders (gateway/responses_stream.c,
 * gateway/messages_stream.c), which are written as text without a jansson
 * tree: every event must be exactly the bytes jansson writes for its own
 * values (parsed back and written again with JSON_COMPACT |
 * JSON_PRESERVE_ORDER: the same bytes), carry the right fields, and keep
 * the sequence numbers in step with the events written from trees — for
 * texts with every kind of byte the escaper treats differently, and ones
 * long enough to leave the writers' stack buffers.
 *
 * And the text-only shortcut (telex_answer_plain_text, which spares most
 * chunks a tree): whenever it answers, its text is what the tree holds and
 * the chunk is text only, and the encoders emit the same events from it as
 * from the tree — on OpenAI's real chunk shapes (where it must answer) and
 * on 50,000 random ones (repeated keys, odd indexes, escapes, nulls).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "gateway/answer_model.h"
#include "gateway/messages_stream.h"
#include "gateway/responses_stream.h"
#include "util/json_load.h"
#include "util/json_scan.h"

#define MAX_EVENTS 512

typedef struct {
    int n;
    char *type[MAX_EVENTS];
    char *json[MAX_EVENTS];
} sink_t;

static int sink_emit(void *user, const char *type, const char *json, size_t len)
{
    sink_t *s = user;
    assert_true(s->n < MAX_EVENTS);
    assert_null(memchr(json, '\n', len)); /* one line */
    s->type[s->n] = strdup(type);
    s->json[s->n] = strndup(json, len);
    assert_int_equal(strlen(s->json[s->n]), len); /* no NUL inside */
    s->n++;
    return 0;
}

static void sink_free(sink_t *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->type[i]);
        free(s->json[i]);
    }
    s->n = 0;
}

/* The texts: plain, every escape jansson writes, bytes below 0x20, 0x7F,
 * '/', multi-byte UTF-8, and long ones (one of them all escapes). */
static char long_plain[3000], long_escapes[2000];

static const char *texts[] = {
    "hello",  " world",     "\"quoted\"", "back\\slash", "tab\there", "new\nline\r\n", "\b\f",
    "\x01\x1f", "del\x7f", "a/b</script>", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "{\"not\":\"json\"}",
    long_plain, long_escapes,
};
#define N_TEXTS (sizeof(texts) / sizeof(texts[0]))

static void fill_long_texts(void)
{
    for (size_t i = 0; i + 1 < sizeof(long_plain); i++)
        long_plain[i] = (char)('a' + i % 26);
    for (size_t i = 0; i + 1 < sizeof(long_escapes); i++)
        long_escapes[i] = "\"\\\n\x01"[i % 4];
}

/* {"choices":[{"index":0,"delta":{key:text}}]}, or a tool call's arguments */
static json_t *chunk_with(const char *key, const char *text)
{
    json_t *delta;
    if (strcmp(key, "tool") == 0)
        delta = json_pack("{s:[{s:i,s:s,s:s,s:{s:s,s:s}}]}", "tool_calls", "index", 0, "id", "call_1", "type", "function",
                          "function", "name", "lookup", "arguments", text);
    else
        delta = json_pack("{s:s}", key, text);
    json_t *chunk = json_pack("{s:[{s:i,s:o}]}", "choices", "index", 0, "delta", delta);
    assert_non_null(chunk);
    return chunk;
}

/* The event is jansson's own writing of its values, and its "type" (and
 * sequence_number, when expected >= 0) are as given. Returns it parsed. */
static json_t *canonical(const char *text, const char *type, int64_t seq)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (j == NULL)
        fail_msg("not JSON (%s): %.200s", err.text, text);
    char *again = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_non_null(again);
    if (strcmp(again, text) != 0)
        fail_msg("not jansson's bytes:\n  got  %.300s\n  want %.300s", text, again);
    free(again);
    assert_string_equal(json_string_value(json_object_get(j, "type")), type);
    if (seq >= 0)
        assert_int_equal(json_integer_value(json_object_get(j, "sequence_number")), seq);
    return j;
}

static void test_responses_deltas(void **state)
{
    (void)state;
    static const struct {
        const char *key, *event;
    } kinds[] = {
        {"content", "response.output_text.delta"},
        {"refusal", "response.refusal.delta"},
        {"reasoning_content", "response.reasoning_text.delta"},
        {"tool", "response.function_call_arguments.delta"},
    };
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        sink_t s = {0};
        json_t *echo = json_object();
        telex_responses_enc_t *e = telex_responses_enc_new("resp_0123456789abcdef", "gpt-x", echo, 1700000000, sink_emit, &s);
        json_decref(echo);
        assert_int_equal(telex_responses_enc_start(e), 0);
        int deltas = 0;
        for (size_t t = 0; t < N_TEXTS; t++) {
            json_t *chunk = chunk_with(kinds[k].key, texts[t]);
            int before = s.n;
            assert_int_equal(telex_responses_enc_chunk(e, chunk), 0);
            json_decref(chunk);
            /* the first chunk also opens the item (and part): tree-written events first */
            assert_true(s.n > before);
            int last = s.n - 1;
            assert_string_equal(s.type[last], kinds[k].event);
            json_t *ev = canonical(s.json[last], kinds[k].event, last);
            assert_string_equal(json_string_value(json_object_get(ev, "delta")), texts[t]);
            assert_true(json_is_string(json_object_get(ev, "item_id")));
            assert_true(json_is_integer(json_object_get(ev, "output_index")));
            int has_content_index = json_object_get(ev, "content_index") != NULL;
            assert_int_equal(has_content_index, strcmp(kinds[k].key, "tool") != 0);
            int has_logprobs = json_object_get(ev, "logprobs") != NULL;
            assert_int_equal(has_logprobs, strcmp(kinds[k].key, "content") == 0);
            json_decref(ev);
            deltas++;
        }
        assert_int_equal(deltas, (int)N_TEXTS);
        assert_int_equal(telex_responses_enc_finish(e), 0);
        /* every event, tree-written or not, is canonical and numbered in order */
        for (int i = 0; i < s.n; i++)
            json_decref(canonical(s.json[i], s.type[i], i));
        telex_responses_enc_free(e);
        sink_free(&s);
    }
}

static void test_messages_deltas(void **state)
{
    (void)state;
    static const struct {
        const char *key, *delta_type, *field;
    } kinds[] = {
        {"content", "text_delta", "text"},
        {"reasoning_content", "thinking_delta", "thinking"},
        {"tool", "input_json_delta", "partial_json"},
    };
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        sink_t s = {0};
        telex_messages_enc_t *e = telex_messages_enc_new("msg_0123456789abcdef", "claude-x", 12, sink_emit, &s);
        assert_int_equal(telex_messages_enc_start(e), 0);
        for (size_t t = 0; t < N_TEXTS; t++) {
            json_t *chunk = chunk_with(kinds[k].key, texts[t]);
            assert_int_equal(telex_messages_enc_chunk(e, chunk), 0);
            json_decref(chunk);
            int last = s.n - 1;
            assert_string_equal(s.type[last], "content_block_delta");
            json_t *ev = canonical(s.json[last], "content_block_delta", -1);
            assert_int_equal(json_integer_value(json_object_get(ev, "index")), 0);
            json_t *d = json_object_get(ev, "delta");
            assert_int_equal(json_object_size(d), 2);
            assert_string_equal(json_string_value(json_object_get(d, "type")), kinds[k].delta_type);
            assert_string_equal(json_string_value(json_object_get(d, kinds[k].field)), texts[t]);
            json_decref(ev);
        }
        assert_int_equal(telex_messages_enc_finish(e), 0);
        for (int i = 0; i < s.n; i++)
            json_decref(canonical(s.json[i], s.type[i], -1));
        telex_messages_enc_free(e);
        sink_free(&s);
    }
}

/* What the tree says: 1 with choice 0's content text (or "") when the
 * chunk is text only for the encoders, else 0. */
static int tree_plain_text(json_t *chunk, const char **text, size_t *len)
{
    *text = "";
    *len = 0;
    json_t *choice = telex_answer_choice0(chunk);
    if (choice == NULL)
        return 1;
    json_t *delta = json_object_get(choice, "delta");
    json_t *r = telex_answer_reasoning(delta);
    if (r != NULL && json_string_length(r) > 0)
        return 0;
    json_t *refusal = json_object_get(delta, "refusal");
    if (json_is_string(refusal) && json_string_length(refusal) > 0)
        return 0;
    if (json_array_size(json_object_get(delta, "tool_calls")) > 0)
        return 0;
    if (json_string_value(json_object_get(choice, "finish_reason")) != NULL)
        return 0;
    json_t *content = json_object_get(delta, "content");
    if (json_is_string(content)) {
        *text = json_string_value(content);
        *len = json_string_length(content);
    }
    return 1;
}

/* The events both encoders emit for the chunk, from the tree and from the
 * text, are the same. */
static void same_events(json_t *chunk, const char *text, size_t len)
{
    sink_t a = {0}, b = {0};
    json_t *echo = json_object();
    telex_responses_enc_t *ra = telex_responses_enc_new("resp_x", "m", echo, 1, sink_emit, &a);
    telex_responses_enc_t *rb = telex_responses_enc_new("resp_x", "m", echo, 1, sink_emit, &b);
    json_decref(echo);
    assert_int_equal(telex_responses_enc_chunk(ra, chunk), telex_responses_enc_text(rb, text, len));
    assert_int_equal(a.n, b.n);
    for (int i = 0; i < a.n; i++)
        assert_string_equal(a.json[i], b.json[i]);
    telex_responses_enc_free(ra);
    telex_responses_enc_free(rb);
    sink_free(&a);
    sink_free(&b);
    telex_messages_enc_t *ma = telex_messages_enc_new("msg_x", "m", 1, sink_emit, &a);
    telex_messages_enc_t *mb = telex_messages_enc_new("msg_x", "m", 1, sink_emit, &b);
    assert_int_equal(telex_messages_enc_chunk(ma, chunk), telex_messages_enc_text(mb, text, len));
    assert_int_equal(a.n, b.n);
    for (int i = 0; i < a.n; i++)
        assert_string_equal(a.json[i], b.json[i]);
    telex_messages_enc_free(ma);
    telex_messages_enc_free(mb);
    sink_free(&a);
    sink_free(&b);
}

/* Checks the shortcut on one validated chunk; returns whether it answered. */
static int check_plain(const char *json)
{
    size_t n = strlen(json);
    telex_json_facts_t f;
    if (telex_json_scan_object(json, n, &f) != 0 || f.finish_odd)
        return -1; /* not for the shortcut: validated text that jansson takes (chat_relay.c) */
    json_t *tree = telex_json_loadb(json, n, 0, NULL);
    const char *text;
    size_t len;
    char *scratch;
    int got = telex_answer_plain_text(json, n, &text, &len, &scratch);
    if (got == 1) {
        if (tree == NULL)
            fail_msg("answered for a chunk jansson refuses: %s", json);
        const char *want;
        size_t want_len;
        if (tree_plain_text(tree, &want, &want_len) != 1)
            fail_msg("answered for a chunk that is not text only: %s", json);
        if (len != want_len || memcmp(text, want, len) != 0)
            fail_msg("text %.*s, the tree's %.*s: %s", (int)len, text, (int)want_len, want, json);
        same_events(tree, text, len);
    } else {
        assert_null(scratch);
    }
    free(scratch);
    json_decref(tree);
    return got;
}

static void test_plain_text_real_shapes(void **state)
{
    (void)state;
    static const char *answered[] = {
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o\","
        "\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
        "\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"abc\"}",
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o\","
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}],"
        "\"usage\":null,\"obfuscation\":\"xyz\"}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"line\\nnext \\\"q\\\" \\u00e9 \\ud83d\\ude00 \\/\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"no index\"}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":null,\"content\":\"x\",\"tool_calls\":[]}}]}",
        "{ \"choices\" : [ { \"index\" : 0 , \"delta\" : { \"content\" : \"spaced\" } } ] }",
        "{\"choices\":[]}",
        "{\"id\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof(answered) / sizeof(answered[0]); i++)
        if (check_plain(answered[i]) != 1)
            fail_msg("no answer for %s", answered[i]);
    static const char *declined[] = {
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"think\"}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"no\"}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\",\"content\":\"b\"}}]}",
        "{\"choices\":[],\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}",
        "{\"choices\":[{\"index\":0.0,\"delta\":{\"content\":\"x\"}}]}",
        "{\"choices\":[{\"ind\\u0065x\":1,\"delta\":{\"content\":\"x\"}}]}",
    };
    for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++)
        if (check_plain(declined[i]) == 1)
            fail_msg("answered for %s", declined[i]);
}

static void test_plain_text_random_shapes(void **state)
{
    (void)state;
    static const char *index_v[] = {"0", "1", "2", "\"0\"", "0.0", "null", "-1", "00", "1e0", "12345678901234567890"};
    static const char *text_v[] = {"\"\"", "\"hi\"", "null", "7", "\"a\\nb\"", "\"\\u00e9\\ud83d\\ude00\"", "\"\\u0000\"",
                                   "\"q\\\"\\\\\"", "[\"x\"]", "{\"t\":\"x\"}"};
    static const char *empty_v[] = {"null", "\"\"", "[]", "\"x\"", "[{}]", "{}", " [ ] "};
    static const char *finish_v[] = {"null", "\"stop\"", "\"\"", "1"};
    static const char *delta_keys[] = {"content", "role", "refusal", "reasoning", "reasoning_content", "tool_calls", "extra"};
    static const char *choice_keys[] = {"index", "delta", "finish_reason", "logprobs"};
    uint64_t rng = 7;
#define NEXT(n) ((rng = rng * 6364136223846793005ULL + 1442695040888963407ULL), (size_t)((rng >> 33) % (n)))
    static char js[4096];
    int answered = 0, declined = 0;
    for (int iter = 0; iter < 50000; iter++) {
        size_t o = 0;
#define P(...) (o += (size_t)snprintf(js + o, sizeof(js) - o, __VA_ARGS__))
        P("{");
        int top = 0;
        if (NEXT(4) == 0)
            P("%s\"id\":\"c\"", top++ ? "," : "");
        size_t nchoices_keys = 1 + NEXT(2);
        for (size_t ck = 0; ck < nchoices_keys; ck++) {
            P("%s\"choices\":%s[", top++ ? "," : "", NEXT(5) == 0 ? " " : "");
            size_t nch = NEXT(3);
            for (size_t c = 0; c < nch; c++) {
                P("%s{", c ? "," : "");
                size_t nk = NEXT(5);
                for (size_t k = 0; k < nk; k++) {
                    const char *key = choice_keys[NEXT(4)];
                    P("%s\"%s\":", k ? "," : "", key);
                    if (strcmp(key, "index") == 0) {
                        P("%s", index_v[NEXT(10)]);
                    } else if (strcmp(key, "finish_reason") == 0) {
                        P("%s", finish_v[NEXT(4)]);
                    } else if (strcmp(key, "delta") == 0) {
                        P("{");
                        size_t nd = NEXT(4);
                        for (size_t d = 0; d < nd; d++) {
                            const char *dk = delta_keys[NEXT(7)];
                            P("%s\"%s\":%s", d ? "," : "", dk,
                              strcmp(dk, "content") == 0 || strcmp(dk, "role") == 0 ? text_v[NEXT(10)] : empty_v[NEXT(7)]);
                        }
                        P("}");
                    } else {
                        P("null");
                    }
                }
                P("}");
            }
            P("]");
        }
        P("}");
#undef P
        int got = check_plain(js);
        answered += got == 1;
        declined += got == 0;
    }
#undef NEXT
    assert_true(answered > 10000);
    assert_true(declined > 5000);
}

int main(void)
{
    fill_long_texts();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_responses_deltas),
        cmocka_unit_test(test_messages_deltas),
        cmocka_unit_test(test_plain_text_real_shapes),
        cmocka_unit_test(test_plain_text_random_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
