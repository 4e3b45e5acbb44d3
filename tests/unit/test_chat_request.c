/*
 * tests/unit/test_chat_request.c — the body telex sends the provider: for
 * requests with and without stream_options (an object, null, absent),
 * stream true, false or absent, members before and after the ones telex
 * sets, nested tools and non-ASCII text, telex_chat_upstream_body (one
 * level copied) writes the bytes the deep copy it replaced wrote, leaves
 * the client's parsed request as it was, and a second route's body (a
 * fallback) built from that request is right too. And the parse's
 * refusals (each naming its parameter, the first fault of several) and
 * what it reads from a valid request.
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

/* Each refusal names its parameter, in the order the checks run (a body
 * with two faults gets the first one's): the walk that finds the members
 * changed nothing here. */
static void test_parse_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *body, *param, *msg;
    } cases[] = {
        {"", NULL, "The request body is empty; send a JSON object."},
        {"[1]", NULL, "The request body must be a JSON object."},
        {"{\"messages\":[]}", "model", "You must provide a model parameter."},
        {"{\"model\":\"\",\"messages\":[]}", "model",
         "model must be a non-empty string of at most 256 characters."},
        {"{\"model\":7}", "model", "model must be a non-empty string of at most 256 characters."},
        {"{\"n\":0,\"model\":\"m\"}", "messages", "You must provide a messages parameter."},
        {"{\"model\":\"m\",\"messages\":[]}", "messages", "messages must be a non-empty array."},
        {"{\"model\":\"m\",\"messages\":{}}", "messages", "messages must be a non-empty array."},
        {"{\"model\":\"m\",\"messages\":[1]}", "messages",
         "messages[0] must be an object with a role and content."},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"robot\"}]}",
         "messages", "messages[1].role must be one of system, developer, user, assistant, tool."},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages",
         "messages[0].content must be a string or an array of content parts."},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"tool\"}]}", "messages",
         "messages[0].content is required for role 'tool'."},
        {"{\"stream\":\"yes\",\"top_p\":\"x\",\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}",
         "stream", "stream must be a boolean."},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stream_options\":1}",
         "stream_options", "stream_options must be an object."},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],"
         "\"stream_options\":{\"include_usage\":1}}",
         "stream_options", "stream_options.include_usage must be a boolean."},
        {"{\"n\":0,\"frequency_penalty\":\"x\",\"top_p\":[],\"model\":\"m\","
         "\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}",
         "top_p", "top_p must be a number."},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"presence_penalty\":{}}",
         "presence_penalty", "presence_penalty must be a number."},
        {"{\"n\":0,\"max_completion_tokens\":1.5,\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}",
         "max_completion_tokens", "max_completion_tokens must be a positive integer."},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"n\":0}", "n",
         "n must be a positive integer."},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"max_tokens\":-1}",
         "max_tokens", "max_tokens must be a positive integer."},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        telex_chat_request_t req;
        char msg[256];
        const char *param = "unset";
        assert_int_equal(telex_chat_request_parse(cases[i].body, strlen(cases[i].body), &req, msg, sizeof msg, &param),
                         400);
        if (cases[i].param == NULL)
            assert_null(param);
        else
            assert_string_equal(param, cases[i].param);
        assert_string_equal(msg, cases[i].msg);
    }
}

/* What a valid request gives: its model, stream and include_usage, with
 * members telex does not check (and look-alike names) passed over. */
static void test_parse_accepts(void **state)
{
    (void)state;
    static const struct {
        const char *body, *model;
        int stream, include_usage;
    } cases[] = {
        {"{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}", "a", 0, 0},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":null}],\"stream\":true,\"model\":\"b\"}", "b", 1, 0},
        {"{\"m\":1,\"models\":2,\"streams\":\"x\",\"n_\":\"y\",\"model\":\"c\",\"stream\":false,\"n\":null,"
         "\"temperature\":null,\"top_p\":1,\"max_tokens\":3,\"stream_options\":{\"include_usage\":true},"
         "\"messages\":[{\"role\":\"user\",\"content\":[]}],\"tools\":[]}",
         "c", 0, 1},
        {"{\"model\":\"d\",\"messages\":[{\"role\":\"developer\",\"content\":\"x\"}],\"stream\":null,"
         "\"stream_options\":null}",
         "d", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        telex_chat_request_t req;
        char msg[256];
        const char *param = NULL;
        assert_int_equal(telex_chat_request_parse(cases[i].body, strlen(cases[i].body), &req, msg, sizeof msg, &param),
                         0);
        assert_string_equal(req.model, cases[i].model);
        assert_int_equal(req.stream, cases[i].stream);
        assert_int_equal(req.include_usage, cases[i].include_usage);
        json_decref(req.body);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_as_a_deep_copy),
        cmocka_unit_test(test_copy_outlives_the_request),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_parse_accepts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
