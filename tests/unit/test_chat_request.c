/*
 * tests/unit/test_chat_request.c — the body telex sends the provider: for
 * requests with and without stream_options (an object, null, absent),
 * stream true, false or absent, members before and after the ones telex
 * sets, nested tools and non-ASCII text, telex_chat_upstream_body (one
 * level copied) writes the bytes the deep copy it replaced wrote, leaves
 * the client's parsed request as it was, and a second route's body (a
 * fallback) built from that request is right too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/chat_request.h"
#include "util/json_dump.h"

/* The provider's body as telex built it before: the whole request deep
 * copied, then the same three members set. */
static json_t *deep_copy_body(json_t *body, const char *upstream_model, int stream)
{
    json_t *copy = json_deep_copy(body);
    json_object_set_new(copy, "model", json_string(upstream_model));
    if (stream) {
        json_object_set_new(copy, "stream", json_true());
        json_t *opts = json_object_get(copy, "stream_options");
        if (!json_is_object(opts)) {
            opts = json_object();
            json_object_set_new(copy, "stream_options", opts);
        }
        json_object_set_new(opts, "include_usage", json_true());
    }
    return copy;
}

static char *text_of(json_t *j)
{
    char *t = telex_json_dumps(j, JSON_COMPACT); /* as the OpenAI upstream sends it */
    assert_non_null(t);
    char *t2 = json_dumps(j, JSON_COMPACT);
    assert_non_null(t2);
    assert_string_equal(t, t2);
    free(t2);
    return t;
}

static const char *requests[] = {
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story.\"}],\"stream\":true}",
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":false,\"model\":\"m\",\"n\":1}",
    "{\"stream_options\":{\"include_usage\":false,\"x\":[1,2]},\"model\":\"m\",\"stream\":true,"
    "\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"h\\u00e9\"}]}",
    "{\"model\":\"m\",\"stream_options\":null,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
    "\"text\":\"\\u65e5\\u672c\"}]}],\"stream\":null,\"temperature\":0.25}",
    "{\"model\":\"preset:x\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"tools\":[{\"type\":\"function\","
    "\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{}}}}],\"stream\":true,"
    "\"stream_options\":{},\"max_tokens\":40,\"mock\":{\"tokens\":40,\"delay_ms\":50}}",
};

static void test_same_bytes_as_a_deep_copy(void **state)
{
    (void)state;
    for (size_t r = 0; r < sizeof requests / sizeof requests[0]; r++) {
        for (int stream = 0; stream <= 1; stream++) {
            telex_chat_request_t req;
            char msg[256];
            const char *param = NULL;
            assert_int_equal(telex_chat_request_parse(requests[r], strlen(requests[r]), &req, msg, sizeof msg, &param),
                             0);
            char *before = text_of(req.body);
            /* the first route, then a fallback's, from the same request */
            const char *models[] = {"gpt-4o-mini", "provider/other-model"};
            for (int route = 0; route < 2; route++) {
                json_t *got = telex_chat_upstream_body(req.body, models[route], stream);
                json_t *want = deep_copy_body(req.body, models[route], stream);
                char *g = text_of(got), *w = text_of(want);
                assert_string_equal(g, w);
                json_decref(want);
                free(w);
                /* the client's request is untouched, the copy still alive */
                char *after = text_of(req.body);
                assert_string_equal(after, before);
                free(after);
                char *g2 = text_of(got);
                assert_string_equal(g2, g);
                free(g2);
                free(g);
                json_decref(got);
            }
            char *after = text_of(req.body);
            assert_string_equal(after, before);
            free(after);
            free(before);
            json_decref(req.body);
        }
    }
}

/* The copy outlives the request (a provider may keep it): the values it
 * shares stay alive and unchanged after the request is released. */
static void test_copy_outlives_the_request(void **state)
{
    (void)state;
    const char *text = requests[3];
    telex_chat_request_t req;
    char msg[256];
    const char *param = NULL;
    assert_int_equal(telex_chat_request_parse(text, strlen(text), &req, msg, sizeof msg, &param), 0);
    json_t *want = deep_copy_body(req.body, "up", 1);
    json_t *got = telex_chat_upstream_body(req.body, "up", 1);
    json_t *opts = json_object_get(req.body, "stream_options");
    assert_true(json_is_false(json_object_get(opts, "include_usage"))); /* the client's object: not set */
    assert_ptr_not_equal(json_object_get(got, "stream_options"), opts);
    json_decref(req.body);
    char *g = text_of(got), *w = text_of(want);
    assert_string_equal(g, w);
    assert_non_null(strstr(g, "\"stream_options\":{\"include_usage\":true,\"x\":[1,2]}"));
    free(g);
    free(w);
    json_decref(got);
    json_decref(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_as_a_deep_copy),
        cmocka_unit_test(test_copy_outlives_the_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
