/*
 * tests/unit/test_models.c — GET /v1/models' parts that need no network:
 * reading a provider's list (OpenAI's and Anthropic's shapes, entries that
 * are skipped, answers that are refused) and merging the lists after the
 * configured models (order kept, no id twice, the catch-all never listed).
 * The fetch, the cache and the waiting are tested end to end in
 * tests/integration/models.test.js.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "gateway/models.h"
#include "upstream/model_list.h"

static int parse(telex_provider_kind_t kind, const char *text, telex_model_list_t *out, char *err, size_t errlen)
{
    return telex_model_list_parse(kind, text, strlen(text), "prov", out, err, errlen);
}

static void test_openai_shape(void **state)
{
    (void)state;
    telex_model_list_t l;
    char err[200] = "";
    const char *text = "{\"object\":\"list\",\"data\":["
                       "{\"id\":\"gpt-4o\",\"object\":\"model\",\"created\":1715367049,\"owned_by\":\"system\"},"
                       "{\"id\":\"o3\",\"object\":\"model\"},"             /* no created, no owner */
                       "{\"id\":42},{\"name\":\"no id\"},{\"id\":\"\"},7," /* skipped */
                       "{\"id\":\"gpt-4o\",\"owned_by\":\"again\"}]}";    /* repeated: skipped */
    assert_int_equal(parse(TELEX_PROVIDER_OPENAI, text, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].id, "gpt-4o");
    assert_int_equal(l.items[0].created, 1715367049);
    assert_string_equal(l.items[0].owned_by, "system");
    assert_string_equal(l.items[1].id, "o3");
    assert_int_equal(l.items[1].created, 0);
    assert_string_equal(l.items[1].owned_by, "prov");
    telex_model_list_free(&l);
}

static void test_anthropic_shape(void **state)
{
    (void)state;
    telex_model_list_t l;
    char err[200] = "";
    const char *text = "{\"data\":["
                       "{\"type\":\"model\",\"id\":\"claude-a\",\"display_name\":\"A\",\"created_at\":\"2025-02-19T00:00:00Z\"},"
                       "{\"type\":\"model\",\"id\":\"claude-b\",\"created_at\":\"2024-10-22T12:30:00.123+02:00\"},"
                       "{\"type\":\"model\",\"id\":\"claude-c\",\"created_at\":\"yesterday\"}],"
                       "\"has_more\":false,\"first_id\":\"claude-a\",\"last_id\":\"claude-c\"}";
    assert_int_equal(parse(TELEX_PROVIDER_ANTHROPIC, text, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.items[0].id, "claude-a");
    assert_int_equal(l.items[0].created, 1739923200);
    assert_string_equal(l.items[0].owned_by, "prov");
    assert_int_equal(l.items[1].created, 1729600200 - 2 * 3600); /* the offset applied */
    assert_int_equal(l.items[2].created, 0);                      /* unreadable: 0 */
    telex_model_list_free(&l);
}

static void test_refused(void **state)
{
    (void)state;
    telex_model_list_t l;
    char err[200];
    static const char *const bad[] = {"", "not json", "[]", "{\"data\":{}}", "{\"object\":\"list\"}", "{\"data\":[1,"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(parse(TELEX_PROVIDER_OPENAI, bad[i], &l, err, sizeof err), -1);
        assert_non_null(strstr(err, "model list"));
        assert_int_equal(l.n, 0);
    }
    /* an empty list is a list */
    assert_int_equal(parse(TELEX_PROVIDER_OPENAI, "{\"data\":[]}", &l, err, sizeof err), 0);
    assert_int_equal(l.n, 0);
    telex_model_list_free(&l);
}

static void test_supported_kinds(void **state)
{
    (void)state;
    telex_provider_t p = {.name = "p", .base_url = "http://127.0.0.1:1"};
    p.kind = TELEX_PROVIDER_OPENAI;
    assert_true(telex_model_list_supported(&p));
    p.kind = TELEX_PROVIDER_ANTHROPIC;
    assert_true(telex_model_list_supported(&p));
    p.kind = TELEX_PROVIDER_AZURE;
    assert_false(telex_model_list_supported(&p));
    p.kind = TELEX_PROVIDER_DEMO;
    assert_false(telex_model_list_supported(&p));
}

static void test_render_merges(void **state)
{
    (void)state;
    telex_provider_t providers[] = {{.name = "demo", .kind = TELEX_PROVIDER_DEMO},
                                    {.name = "oa", .kind = TELEX_PROVIDER_OPENAI}};
    telex_route_t r_demo = {.provider = &providers[0], .model = "demo"};
    telex_route_t r_named = {.provider = &providers[1], .model = "up-named"};
    telex_route_t r_all = {.provider = &providers[1], .model = NULL};
    telex_model_t models[] = {{.name = "named", .routes = &r_named, .n_routes = 1},
                              {.name = "*", .catch_all = true, .routes = &r_all, .n_routes = 1},
                              {.name = "demo", .routes = &r_demo, .n_routes = 1}};
    telex_config_t cfg = {.providers = providers, .n_providers = 2, .models = models, .n_models = 3,
                          .catch_all = &models[1]};
    telex_model_info_t a[] = {{"x", 5, "o1"}, {"named", 6, "o1"}, {"y", 7, "o1"}};
    telex_model_info_t b[] = {{"y", 8, "o2"}, {"z", 9, "o2"}};
    telex_model_list_t la = {a, 3}, lb = {b, 2};
    const telex_model_list_t *lists[] = {&la, &lb};
    size_t len = 0;
    char *text = telex_models_render(&cfg, lists, 2, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    assert_string_equal(text, "{\"object\":\"list\",\"data\":["
                              "{\"id\":\"named\",\"object\":\"model\",\"created\":0,\"owned_by\":\"oa\"},"
                              "{\"id\":\"demo\",\"object\":\"model\",\"created\":0,\"owned_by\":\"demo\"},"
                              "{\"id\":\"x\",\"object\":\"model\",\"created\":5,\"owned_by\":\"o1\"},"
                              "{\"id\":\"y\",\"object\":\"model\",\"created\":7,\"owned_by\":\"o1\"},"
                              "{\"id\":\"z\",\"object\":\"model\",\"created\":9,\"owned_by\":\"o2\"}]}");
    free(text);
    /* no lists: the configured models alone */
    text = telex_models_render(&cfg, NULL, 0, &len);
    assert_non_null(strstr(text, "\"named\""));
    assert_null(strstr(text, "\"*\""));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_shape),     cmocka_unit_test(test_anthropic_shape),
        cmocka_unit_test(test_refused),          cmocka_unit_test(test_supported_kinds),
        cmocka_unit_test(test_render_merges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
