/*
 * tests/unit/test_responses_start.c — the Responses encoder's measure of its
 * first events (telex_responses_enc_start_bytes, which chat_relay.c compares
 * with the stream's log bound before the hand-over) against the bytes
 * telex_responses_enc_start really emits, and its last-word `error` event
 * (telex_responses_enc_error) after an emit failed, and the Response
 * object's text (telex_responses_enc_response_text) in every state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "gateway/responses_stream.h"

typedef struct {
    size_t wire;     /* bytes as `event: <type>\ndata: <json>\n\n` */
    int events;
    int fail_after;  /* emits that succeed before one fails; -1: never */
    char last_type[64];
    char last_json[1024];
} sink_t;

static int sink_emit(void *user, const char *type, const char *json, size_t len)
{
    sink_t *s = user;
    if (s->fail_after >= 0 && s->events >= s->fail_after)
        return -1;
    s->events++;
    s->wire += 7 + strlen(type) + 7 + len + 2;
    snprintf(s->last_type, sizeof s->last_type, "%s", type);
    snprintf(s->last_json, sizeof s->last_json, "%.*s", (int)(len < 1023 ? len : 1023), json);
    return 0;
}

static json_t *echo_with_instructions(size_t n)
{
    char *text = malloc(n + 1);
    assert_non_null(text);
    memset(text, 'x', n);
    text[n] = '\0';
    json_t *echo = json_pack("{s:s,s:[{s:s,s:s}]}", "instructions", text, "tools", "type", "function", "name", "f");
    free(text);
    return echo;
}

static void start_bytes_are_what_start_emits(void **state)
{
    (void)state;
    size_t sizes[] = {0, 10, 5000, 100000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        json_t *echo = echo_with_instructions(sizes[i]);
        sink_t s = {.fail_after = -1};
        telex_responses_enc_t *e = telex_responses_enc_new("resp_abc", "gpt-x", echo, 1700000000, sink_emit, &s);
        size_t want = telex_responses_enc_start_bytes(e);
        assert_int_equal(s.events, 0); /* measuring emits nothing */
        assert_int_equal(telex_responses_enc_start(e), 0);
        assert_int_equal(s.events, 2);
        assert_int_equal(want, s.wire);
        assert_true(want > 2 * sizes[i]); /* both events repeat the instructions */
        telex_responses_enc_free(e);
        json_decref(echo);
    }
}

static void error_event_after_a_failed_emit(void **state)
{
    (void)state;
    json_t *echo = echo_with_instructions(100);
    sink_t s = {.fail_after = 1}; /* response.created goes, response.in_progress fails */
    telex_responses_enc_t *e = telex_responses_enc_new("resp_abc", "gpt-x", echo, 1700000000, sink_emit, &s);
    assert_int_equal(telex_responses_enc_start(e), -1);
    assert_int_equal(telex_responses_enc_fail(e, "log_full", "too big"), -1); /* stopped */
    s.fail_after = -1;
    assert_int_equal(telex_responses_enc_error(e, "log_full", "the answer outgrew resume.max_bytes"), 0);
    assert_string_equal(s.last_type, "error");
    json_t *ev = json_loads(s.last_json, 0, NULL);
    assert_non_null(ev);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "error");
    assert_int_equal(json_integer_value(json_object_get(ev, "sequence_number")), 1); /* right after created */
    assert_string_equal(json_string_value(json_object_get(ev, "code")), "log_full");
    assert_string_equal(json_string_value(json_object_get(ev, "message")), "the answer outgrew resume.max_bytes");
    assert_true(json_is_null(json_object_get(ev, "param")));
    json_decref(ev);
    /* the last word: nothing follows it */
    json_t *chunk = json_loads("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}", 0, NULL);
    assert_int_equal(telex_responses_enc_chunk(e, chunk), -1);
    assert_int_equal(s.events, 2);
    json_decref(chunk);
    telex_responses_enc_free(e);
    json_decref(echo);
}

/* telex_responses_enc_response_text is jansson's writing of
 * telex_responses_enc_response in every state: fresh, measured (then it is
 * the start events' text), after usage or an item joined, after the start. */
static void check_response_text(telex_responses_enc_t *e)
{
    char *text = telex_responses_enc_response_text(e);
    json_t *r = telex_responses_enc_response(e);
    char *want = json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_non_null(text);
    assert_string_equal(text, want);
    free(want);
    free(text);
    json_decref(r);
}

static void response_text_is_the_response(void **state)
{
    (void)state;
    json_t *echo = echo_with_instructions(50);
    json_t *usage = json_pack("{s:i,s:i,s:i}", "prompt_tokens", 7, "completion_tokens", 3, "total_tokens", 10);
    json_t *chunk = json_loads("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}", 0, NULL);
    for (int variant = 0; variant < 2; variant++) {
        sink_t s = {.fail_after = -1};
        telex_responses_enc_t *e = telex_responses_enc_new("resp_abc", "gpt-x", echo, 1700000000, sink_emit, &s);
        check_response_text(e);
        assert_true(telex_responses_enc_start_bytes(e) != SIZE_MAX);
        check_response_text(e);
        if (variant == 0)
            telex_responses_enc_usage(e, usage);
        else
            assert_int_equal(telex_responses_enc_chunk(e, chunk), 0);
        check_response_text(e);
        assert_int_equal(telex_responses_enc_start(e), 0);
        check_response_text(e);
        telex_responses_enc_free(e);
    }
    json_decref(chunk);
    json_decref(usage);
    json_decref(echo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(start_bytes_are_what_start_emits),
        cmocka_unit_test(error_event_after_a_failed_emit),
        cmocka_unit_test(response_text_is_the_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
