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

#include "gateway/messages_stream.h"
#include "gateway/responses_stream.h"

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

int main(void)
{
    fill_long_texts();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_responses_deltas),
        cmocka_unit_test(test_messages_deltas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
