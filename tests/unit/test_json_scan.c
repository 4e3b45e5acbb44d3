/*
 * test_json_scan.c — the allocation-free chunk scanner agrees with jansson
 * on what is a valid JSON object, and extracts the relay's facts.
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

#include "util/json_scan.h"

static int scan(const char *s, telex_json_facts_t *f)
{
    return telex_json_scan_object(s, strlen(s), f);
}

static void test_facts_of_real_chunks(void **state)
{
    telex_json_facts_t f;
    assert_int_equal(scan("{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{"
                          "\"content\":\"Hello\"},\"finish_reason\":null}],\"usage\":null}",
                          &f),
                     0);
    assert_false(f.top_error);
    assert_false(f.top_usage);
    assert_false(f.finish);
    assert_int_equal(f.completion_bytes, 5);

    assert_int_equal(scan("{\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}", &f), 0);
    assert_true(f.finish);
    assert_int_equal(scan("{\"choices\":[],\"usage\":{\"prompt_tokens\":3}}", &f), 0);
    assert_true(f.top_usage);
    assert_int_equal(scan("{\"error\":{\"message\":\"boom\"}}", &f), 0);
    assert_true(f.top_error);
    assert_int_equal(scan("{\"error\":null,\"usage\":null}", &f), 0);
    assert_false(f.top_error);
    assert_false(f.top_usage);
    /* only top-level error/usage count; finish_reason anywhere */
    assert_int_equal(scan("{\"x\":{\"error\":1,\"usage\":{}},\"y\":[{\"finish_reason\":\"length\"}]}", &f), 0);
    assert_false(f.top_error);
    assert_false(f.top_usage);
    assert_true(f.finish);
    /* reasoning, refusal, tool-call arguments */
    assert_int_equal(scan("{\"choices\":[{\"delta\":{\"reasoning_content\":\"abc\",\"refusal\":\"no\",\"tool_calls\":"
                          "[{\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]}}]}",
                          &f),
                     0);
    assert_int_equal(f.reasoning_bytes, 3);
    assert_int_equal(f.completion_bytes, 2 + 9); /* raw bytes between the quotes: {\"a\":1} */
}

static void test_rejects_what_is_not_one_object(void **state)
{
    static const char *bad[] = {
        "", "[]", "\"s\"", "1", "null", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{,}", "{\"a\":1}{}",
        "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":-}", "{\"a\":tru}", "{\"a\":nul}",
        "{\"a\":\"\\x\"}", "{\"a\":\"\\u12g4\"}", "{\"a\":\"tab\there\"}", "{a:1}", "{\"a\":[1,]}", "{\"a\":[1 2]}",
        "{\"a\":\"\xff\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":1} x", "{'a':1}",
    };
    telex_json_facts_t f;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (scan(bad[i], &f) != -1)
            fail_msg("accepted %s", bad[i]);
    }
    static const char *good[] = {
        "{}", " {\"a\" : [ ] } ", "{\"a\":[{},[],\"\",0,-0.5e+3,true,false,null]}", "{\"\\u00e9\":\"\xc3\xa9\xe2\x82\xac\"}",
        "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}", "{\"emoji\":\"\xf0\x9f\x8e\x89\"}",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (scan(good[i], &f) != 0)
            fail_msg("refused %s at %zu", good[i], f.error_at);
    }
}

static void test_depth_is_bounded(void **state)
{
    char deep[400];
    size_t n = 0;
    deep[n++] = '{';
    deep[n++] = '"';
    deep[n++] = 'a';
    deep[n++] = '"';
    deep[n++] = ':';
    for (int i = 0; i < 100; i++)
        deep[n++] = '[';
    for (int i = 0; i < 100; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    telex_json_facts_t f;
    assert_int_equal(telex_json_scan_object(deep, n, &f), -1);
}

/* Random corruptions of real chunks: valid for the scanner exactly when
 * jansson loads a JSON object (inputs avoid \u escapes and long numbers,
 * where jansson is stricter about NUL, surrogates and integer range). */
static void test_agrees_with_jansson_on_corruptions(void **state)
{
    static const char *seeds[] = {
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":17,\"model\":\"m\",\"choices\":[{"
        "\"index\":0,\"delta\":{\"content\":\" w\\n\"},\"finish_reason\":null}],\"usage\":null}",
        "{\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3,\"total_tokens\":5,\"x\":[true,false,"
        "null,-1.5e3]}}",
    };
    static const char alphabet[] = "{}[]\",:0123456789-.eEtrufalsn \\\n\xc3\xa9";
    uint64_t rng = 42;
    char buf[512];
    int agreed = 0;
    for (int iter = 0; iter < 20000; iter++) {
        const char *seed = seeds[iter % 2];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int edits = 1 + (int)((rng >> 33) % 3);
        for (int e = 0; e < edits; e++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t at = (size_t)((rng >> 33) % n);
            int op = (int)((rng >> 20) % 3);
            char ch = alphabet[(rng >> 40) % (sizeof(alphabet) - 1)];
            if (op == 0) {
                buf[at] = ch;
            } else if (op == 1 && n + 1 < sizeof(buf)) {
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = ch;
                n++;
            } else if (n > 1) {
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
            }
        }
        if (memmem(buf, n, "\\u", 2) != NULL)
            continue;
        telex_json_facts_t f;
        int mine = telex_json_scan_object(buf, n, &f) == 0;
        json_t *j = json_loadb(buf, n, 0, NULL);
        int theirs = j != NULL && json_is_object(j);
        if (theirs && mine) {
            json_t *usage = json_object_get(j, "usage");
            assert_int_equal(f.top_usage, usage != NULL && !json_is_null(usage));
        }
        json_decref(j);
        if (mine != theirs)
            fail_msg("disagree (scanner %d, jansson %d) on: %.*s", mine, theirs, (int)n, buf);
        agreed++;
    }
    assert_true(agreed > 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_facts_of_real_chunks),
        cmocka_unit_test(test_rejects_what_is_not_one_object),
        cmocka_unit_test(test_depth_is_bounded),
        cmocka_unit_test(test_agrees_with_jansson_on_corruptions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
