/*
 * tests/unit/test_usage.c — tokens and cost: parsing the provider's usage
 * object (cached and reasoning details), cost at a route's prices, the
 * cost_usd the client sees on the final usage chunk, estimates when the
 * provider sends none, ledger rows, and the GET /v1/usage query string and
 * response body.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/usage.h"

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (j == NULL)
        fail_msg("bad test JSON: %s", e.text);
    return j;
}

static const telex_provider_t provider = {.name = "openai"};

static void test_parse(void **state)
{
    (void)state;
    telex_usage_t u;
    json_t *j = J("{\"prompt_tokens\":1200,\"completion_tokens\":300,\"total_tokens\":1500,"
                  "\"prompt_tokens_details\":{\"cached_tokens\":1000,\"audio_tokens\":0},"
                  "\"completion_tokens_details\":{\"reasoning_tokens\":200}}");
    assert_int_equal(telex_usage_parse(j, &u), 0);
    assert_int_equal(u.prompt_tokens, 1200);
    assert_int_equal(u.completion_tokens, 300);
    assert_int_equal(u.cached_tokens, 1000);
    assert_int_equal(u.reasoning_tokens, 200);
    assert_false(u.estimated);
    json_decref(j);

    j = J("{\"prompt_tokens\":5}"); /* partial: the rest is 0 */
    assert_int_equal(telex_usage_parse(j, &u), 0);
    assert_int_equal(u.prompt_tokens, 5);
    assert_int_equal(u.completion_tokens, 0);
    json_decref(j);

    j = J("{\"input_tokens\":7,\"output_tokens\":9}"); /* Anthropic-style names */
    assert_int_equal(telex_usage_parse(j, &u), 0);
    assert_int_equal(u.prompt_tokens, 7);
    assert_int_equal(u.completion_tokens, 9);
    json_decref(j);

    /* details larger than the totals are clamped */
    j = J("{\"prompt_tokens\":5,\"completion_tokens\":1,\"prompt_tokens_details\":{\"cached_tokens\":50},"
          "\"completion_tokens_details\":{\"reasoning_tokens\":9}}");
    assert_int_equal(telex_usage_parse(j, &u), 0);
    assert_int_equal(u.cached_tokens, 5);
    assert_int_equal(u.reasoning_tokens, 1);
    json_decref(j);

    static const char *const bad[] = {"null", "[]", "{}", "{\"prompt_tokens\":-1}", "{\"prompt_tokens\":\"5\"}",
                                      "{\"prompt_tokens\":1.5}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = J(bad[i]);
        if (telex_usage_parse(j, &u) != -1)
            fail_msg("%s was accepted", bad[i]);
        json_decref(j);
    }
    assert_int_equal(telex_usage_parse(NULL, &u), -1);
}

static void test_cost(void **state)
{
    (void)state;
    telex_route_t r = {.provider = &provider, .input_price_per_mtok = 2.5, .output_price_per_mtok = 10,
                       .cached_input_price_per_mtok = 1.25};
    telex_usage_t u = {.prompt_tokens = 1200, .completion_tokens = 300, .cached_tokens = 1000};
    /* 200 × 2.5 + 1000 × 1.25 + 300 × 10 = 500 + 1250 + 3000 = 4750 per million */
    assert_true(telex_usage_cost(&u, &r) == 0.00475);
    telex_usage_t one = {.prompt_tokens = 1};
    r.input_price_per_mtok = 0.15;
    assert_true(telex_usage_cost(&one, &r) == 0.00000015);
    assert_true(telex_usage_cost(&u, NULL) == 0);
    telex_route_t free_route = {.provider = &provider};
    assert_true(telex_usage_cost(&u, &free_route) == 0);
}

static void test_estimate_cost(void **state)
{
    (void)state;
    telex_route_t routes[2] = {
        {.provider = &provider, .input_price_per_mtok = 1, .output_price_per_mtok = 4},
        {.provider = &provider, .input_price_per_mtok = 3, .output_price_per_mtok = 2},
    };
    telex_model_t m = {.name = "m", .routes = routes, .n_routes = 2};
    /* the highest prices of the routes: 3 in, 4 out; 100 prompt tokens */
    json_t *b = J("{\"max_tokens\":500}");
    assert_true(fabs(telex_usage_estimate_cost(b, &m, 100) - (100 * 3 + 500 * 4) / 1e6) < 1e-15);
    json_decref(b);
    b = J("{\"max_tokens\":500,\"max_completion_tokens\":50,\"n\":3}"); /* max_completion_tokens wins, times n */
    assert_true(fabs(telex_usage_estimate_cost(b, &m, 0) - (150 * 4) / 1e6) < 1e-15);
    json_decref(b);
    b = J("{}"); /* no limit: the default output estimate */
    assert_true(fabs(telex_usage_estimate_cost(b, &m, 0) - (TELEX_USAGE_DEFAULT_MAX_OUTPUT * 4) / 1e6) < 1e-15);
    json_decref(b);
    assert_true(telex_usage_estimate_cost(NULL, NULL, 10) == 0);
}

static void test_annotate_final_chunk(void **state)
{
    (void)state;
    telex_route_t r = {.provider = &provider, .input_price_per_mtok = 0.15, .output_price_per_mtok = 0.6,
                       .cached_input_price_per_mtok = 0.15};
    json_t *chunk = J("{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],"
                      "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":20,\"total_tokens\":30}}");
    telex_usage_t u;
    double cost = -1;
    assert_int_equal(telex_usage_annotate(chunk, &r, &u, &cost), 1);
    assert_true(cost == 0.0000135);
    char *text = telex_usage_dump(chunk);
    assert_string_equal(text, "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":"
                              "{\"prompt_tokens\":10,\"completion_tokens\":20,\"total_tokens\":30,"
                              "\"cost_usd\":1.35e-5}}");
    free(text);
    json_decref(chunk);
    /* a content chunk has no usage: untouched */
    chunk = J("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}");
    assert_int_equal(telex_usage_annotate(chunk, &r, &u, &cost), 0);
    text = telex_usage_dump(chunk);
    assert_string_equal(text, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}");
    free(text);
    json_decref(chunk);
    /* "usage": null (some providers send it on every chunk) */
    chunk = J("{\"choices\":[],\"usage\":null}");
    assert_int_equal(telex_usage_annotate(chunk, &r, &u, &cost), 0);
    json_decref(chunk);
}

static void test_estimates(void **state)
{
    (void)state;
    json_t *body = J("{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"12345678\"},"
                     "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"abcd\"},{\"type\":\"image_url\"}]},"
                     "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"function\":{\"arguments\":\"{}\"}}]}]}");
    telex_usage_estimator_t est;
    telex_usage_estimator_begin(&est, body);
    assert_int_equal(est.prompt_messages, 3);
    assert_int_equal(est.prompt_bytes, 14);
    /* ceil(14/4) = 4, + 4 per message, + 3 */
    assert_int_equal(telex_usage_estimate_request_tokens(body), 4 + 12 + 3);
    json_t *c1 = J("{\"choices\":[{\"delta\":{\"content\":\"Hello, \"}}]}");
    json_t *c2 = J("{\"choices\":[{\"delta\":{\"content\":\"world!\",\"reasoning_content\":\"think\"}}]}");
    json_t *c3 = J("{\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]}}]}");
    json_t *c4 = J("{\"choices\":[],\"usage\":null}");
    telex_usage_estimator_chunk(&est, c1);
    telex_usage_estimator_chunk(&est, c2);
    telex_usage_estimator_chunk(&est, c3);
    telex_usage_estimator_chunk(&est, c4);
    telex_usage_t u;
    telex_usage_estimator_result(&est, &u);
    assert_true(u.estimated);
    assert_int_equal(u.prompt_tokens, 19);
    assert_int_equal(u.reasoning_tokens, 2);         /* "think": 5 bytes */
    assert_int_equal(u.completion_tokens, 5 + 2);    /* 13 + 7 bytes of text and arguments, + reasoning */
    /* a non-streamed answer's message counts too */
    json_t *full = J("{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"12345678\"}}]}");
    telex_usage_estimator_t e2;
    telex_usage_estimator_begin(&e2, NULL);
    telex_usage_estimator_chunk(&e2, full);
    telex_usage_estimator_result(&e2, &u);
    assert_int_equal(u.completion_tokens, 2);
    assert_int_equal(u.prompt_tokens, 3);
    json_decref(full);
    json_decref(c1);
    json_decref(c2);
    json_decref(c3);
    json_decref(c4);
    json_decref(body);
}

static void test_record_rows(void **state)
{
    (void)state;
    telex_grant_t g = {.key_id = 12};
    telex_usage_record_t rec;
    char long_model[300];
    memset(long_model, 'm', sizeof long_model - 1);
    long_model[sizeof long_model - 1] = '\0';
    telex_usage_record_init(&rec, &g, long_model, NULL);
    assert_int_equal(rec.key_id, 12);
    assert_int_equal(strlen(rec.model), sizeof rec.model - 1);
    assert_string_equal(rec.provider, "");
    assert_true(rec.ttft_ms < 0);
    assert_true(rec.ts_ms > 1700000000000);
    assert_string_equal(rec.outcome, "ok");
    telex_usage_t u = {.prompt_tokens = 1, .completion_tokens = 2, .cached_tokens = 3, .reasoning_tokens = 4,
                       .estimated = true};
    telex_usage_record_set(&rec, &u, 0.5);
    assert_int_equal(rec.prompt_tokens, 1);
    assert_int_equal(rec.reasoning_tokens, 4);
    assert_int_equal(rec.estimated, 1);
    assert_true(rec.cost_usd == 0.5);
    telex_usage_record_init(&rec, NULL, "m", "p");
    assert_int_equal(rec.key_id, 0);
}

static void query_ok(const char *qs, telex_usage_query_t *q)
{
    telex_api_error_t e;
    memset(&e, 0, sizeof e);
    if (telex_usage_parse_query(qs, strlen(qs), 1767225600000, q, &e) != 0)
        fail_msg("%s: %s", qs, e.message);
}

static void query_bad(const char *qs, const char *param, const char *msg)
{
    telex_usage_query_t q;
    telex_api_error_t e;
    memset(&e, 0, sizeof e);
    assert_int_equal(telex_usage_parse_query(qs, strlen(qs), 1767225600000, &q, &e), 400);
    if ((param == NULL) != (e.param == NULL) || (param && strcmp(param, e.param) != 0) || strcmp(msg, e.message))
        fail_msg("%s: got param %s, \"%s\"", qs, e.param ? e.param : "(null)", e.message);
}

static void test_usage_query(void **state)
{
    (void)state;
    telex_usage_query_t q;
    query_ok("", &q);
    assert_int_equal(q.from_ms, 0);
    assert_int_equal(q.to_ms, 1767225600001);
    assert_int_equal(q.group, TELEX_USAGE_GROUP_NONE);
    assert_int_equal(q.key_id, -1);
    query_ok("from=2025-12-01&to=2025-12-31&group_by=day", &q);
    assert_int_equal(q.from_ms, 1764547200000);
    assert_int_equal(q.to_ms, 1767225600000); /* the end of Dec 31 */
    assert_int_equal(q.group, TELEX_USAGE_GROUP_DAY);
    query_ok("group_by=model&from=1764547200&to=2025-12-31T12%3A00%3A00Z&key=7", &q);
    assert_int_equal(q.from_ms, 1764547200000);
    assert_int_equal(q.to_ms, 1767182400000);
    assert_int_equal(q.group, TELEX_USAGE_GROUP_MODEL);
    assert_int_equal(q.key_id, 7);
    query_ok("group_by=key&&", &q);
    assert_int_equal(q.group, TELEX_USAGE_GROUP_KEY);

    query_bad("group_by=week", "group_by", "group_by='week' is not one of key, model, day.");
    query_bad("from=yesterday", "from",
              "from='yesterday' is not a time: use 2026-01-31, 2026-01-31T12:00:00Z or unix seconds.");
    query_bad("to=2026-02-30x", "to", "to='2026-02-30x' is not a time: use 2026-01-31, 2026-01-31T12:00:00Z or unix "
                                      "seconds.");
    query_bad("from=2026-01-02&to=2026-01-01", "from", "from must be before to.");
    query_bad("key=0", "key", "key='0' is not a key id (a positive integer).");
    query_bad("key=alice", "key", "key='alice' is not a key id (a positive integer).");
    query_bad("group=day", NULL, "Unknown query parameter 'group' (known: from, to, group_by, key).");
    query_bad("from=1&from=2", "from", "The query parameter from is given twice.");
    query_bad("from=%zz", NULL, "A query parameter is too long or badly encoded.");
    query_bad("from=%00", NULL, "A query parameter is too long or badly encoded.");
    char longq[200];
    snprintf(longq, sizeof longq, "from=%0100d", 1);
    query_bad(longq, NULL, "A query parameter is too long or badly encoded.");
    query_bad("\x01\x02=1", NULL, "Unknown query parameter '?" "?' (known: from, to, group_by, key).");
}

static void test_usage_json(void **state)
{
    (void)state;
    telex_usage_query_t q = {.from_ms = 1764547200000, .to_ms = 1767225600000, .group = TELEX_USAGE_GROUP_KEY,
                             .key_id = -1};
    telex_usage_row_t rows[2];
    memset(rows, 0, sizeof rows);
    rows[0].requests = 2;
    rows[0].prompt_tokens = 10;
    rows[0].completion_tokens = 5;
    rows[0].cost_usd = 0.1;
    rows[1].key_id = 3;
    snprintf(rows[1].key_name, sizeof rows[1].key_name, "alice");
    rows[1].requests = 1;
    rows[1].prompt_tokens = 1;
    rows[1].completion_tokens = 1;
    rows[1].estimated_requests = 1;
    rows[1].failed_requests = 1;
    rows[1].cost_usd = 0.2;
    json_t *j = telex_usage_to_json(&q, rows, 2, 0);
    char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    assert_string_equal(
        text, "{\"object\":\"usage\",\"from\":\"2025-12-01T00:00:00Z\",\"to\":\"2026-01-01T00:00:00Z\",\"group_by\":"
              "\"key\",\"data\":[{\"requests\":2,\"prompt_tokens\":10,\"completion_tokens\":5,\"cached_tokens\":0,"
              "\"reasoning_tokens\":0,\"total_tokens\":15,\"estimated_requests\":0,\"failed_requests\":0,"
              "\"cost_usd\":0.1,\"key_id\":null,\"key_name\":null},{\"requests\":1,\"prompt_tokens\":1,"
              "\"completion_tokens\":1,\"cached_tokens\":0,\"reasoning_tokens\":0,\"total_tokens\":2,"
              "\"estimated_requests\":1,\"failed_requests\":1,\"cost_usd\":0.2,\"key_id\":3,\"key_name\":\"alice\"}],"
              "\"total\":{\"requests\":3,\"prompt_tokens\":11,\"completion_tokens\":6,\"cached_tokens\":0,"
              "\"reasoning_tokens\":0,\"total_tokens\":17,\"estimated_requests\":1,\"failed_requests\":1,"
              "\"cost_usd\":0.3},\"truncated\":false}");
    free(text);
    json_decref(j);
    q.group = TELEX_USAGE_GROUP_NONE;
    q.key_id = 3;
    j = telex_usage_to_json(&q, NULL, 0, 0);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "total"), "requests")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "key_id")), 3);
    json_decref(j);
    /* the one way to NULL (usage.h): a cost that is not a finite number (a ledger edited by hand) */
    rows[1].cost_usd = 1.0 / 0.0;
    assert_null(telex_usage_to_json(&q, rows, 2, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),      cmocka_unit_test(test_cost), cmocka_unit_test(test_estimate_cost),         cmocka_unit_test(test_annotate_final_chunk),
        cmocka_unit_test(test_estimates),  cmocka_unit_test(test_record_rows),  cmocka_unit_test(test_usage_query),
        cmocka_unit_test(test_usage_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
