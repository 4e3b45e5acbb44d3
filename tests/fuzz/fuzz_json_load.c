/*
 * fuzz_json_load.c — libFuzzer target for telex's JSON loader and writer
 * (src/util/json_load.c, json_dump.c and the scanner under them, compiled
 * in here), against jansson's.
 *
 * Input: one flag byte, then the text. Bit 0 of the flag byte selects
 * JSON_REJECT_DUPLICATES. telex_json_loadb and json_loadb load the text
 * (from an exact-size copy, so reads past its end are caught); they must
 * agree: the same tree with keys in the same order, or NULL with the same
 * error text and position. A loaded tree is then written by
 * telex_json_dumps and json_dumps with the flag sets telex uses; the bytes
 * must be the same.
 *
 * Also the front doors' shortcut (gateway/answer_model.c,
 * telex_answer_plain_delta, compiled in here): for text the scanner
 * validates with nothing jansson refuses (no finish_odd: the only text
 * chat_relay.c gives it), whenever it answers, choice 0 of jansson's tree
 * has no reasoning, refusal or finish_reason, its text is the tree's
 * delta.content (or ""), and its tool call, when it reports one, is the
 * tree's only one, with that index, no id, no name and those arguments.
 * Started from the scan's choices_at (telex_answer_plain_delta_at, as the
 * relay calls it), it answers exactly as the whole walk.
 *
 * Build and run: `make fuzz FUZZ_SECONDS=N` (clang, -fsanitize=fuzzer,
 * address,undefined; seeds in tests/fuzz/corpus_json_load/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/util/json_dump.c"
#include "../../src/util/json_load.c"
#include "../../src/util/json_scan.c"
#include "../../src/gateway/answer_model.c"

#define REQUIRE(cond)                                                                                           \
    do {                                                                                                        \
        if (!(cond)) {                                                                                          \
            fprintf(stderr, "fuzz_json_load: %s (line %d)\n", #cond, __LINE__);                               \
            abort();                                                                                            \
        }                                                                                                       \
    } while (0)

static void same_text(char *a, char *b)
{
    REQUIRE((a == NULL) == (b == NULL));
    REQUIRE(a == NULL || strcmp(a, b) == 0);
    free(a);
    free(b);
}

/* The shortcut against jansson's tree of the same text. */
static void check_plain_delta(const char *text, size_t n, json_t *tree)
{
    telex_json_facts_t f;
    if (tree == NULL || telex_json_scan_object(text, n, &f) != 0 || f.finish_odd)
        return;
    telex_answer_delta_t d, at;
    int whole = telex_answer_plain_delta(text, n, &d);
    /* from the scan's choices_at (the relay's call): the same answer */
    int from = telex_answer_plain_delta_at(text, n, f.choices_at, &at);
    REQUIRE(whole == from);
    if (from == 1) {
        REQUIRE(at.text_len == d.text_len && memcmp(at.text, d.text, d.text_len) == 0);
        REQUIRE(at.has_tool == d.has_tool && at.tool_index == d.tool_index && at.args_len == d.args_len);
        REQUIRE(d.args_len == 0 || memcmp(at.args, d.args, d.args_len) == 0);
        free(at.scratch);
    }
    if (whole != 1)
        return;
    json_t *choice = telex_answer_choice0(tree);
    json_t *delta = json_object_get(choice, "delta");
    json_t *r = telex_answer_reasoning(delta);
    json_t *refusal = json_object_get(delta, "refusal");
    json_t *content = json_object_get(delta, "content");
    json_t *calls = json_object_get(delta, "tool_calls");
    REQUIRE(r == NULL || json_string_length(r) == 0);
    REQUIRE(!json_is_string(refusal) || json_string_length(refusal) == 0);
    REQUIRE(json_string_value(json_object_get(choice, "finish_reason")) == NULL);
    size_t want = json_is_string(content) ? json_string_length(content) : 0;
    REQUIRE(d.text_len == want && (want == 0 || memcmp(d.text, json_string_value(content), want) == 0));
    if (!d.has_tool) {
        REQUIRE(json_array_size(calls) == 0);
    } else {
        REQUIRE(json_array_size(calls) == 1);
        json_t *tc = json_array_get(calls, 0), *fn = json_object_get(tc, "function");
        json_t *args = json_object_get(fn, "arguments");
        REQUIRE(json_is_integer(json_object_get(tc, "index")) &&
                json_integer_value(json_object_get(tc, "index")) == d.tool_index);
        REQUIRE(json_string_value(json_object_get(tc, "id")) == NULL);
        REQUIRE(json_string_value(json_object_get(fn, "name")) == NULL);
        size_t want_args = json_is_string(args) ? json_string_length(args) : 0;
        REQUIRE(d.args_len == want_args && (want_args == 0 || memcmp(d.args, json_string_value(args), want_args) == 0));
    }
    free(d.scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t flags = (data[0] & 1) ? JSON_REJECT_DUPLICATES : 0;
    size_t n = size - 1;
    char *text = malloc(n ? n : 1);
    if (text == NULL)
        return 0;
    memcpy(text, data + 1, n);
    json_error_t ea, eb;
    json_t *a = json_loadb(text, n, flags, &ea);
    json_t *b = telex_json_loadb(text, n, flags, &eb);
    REQUIRE((a == NULL) == (b == NULL));
    if (a == NULL) {
        REQUIRE(strcmp(ea.text, eb.text) == 0);
        REQUIRE(ea.position == eb.position && ea.line == eb.line && ea.column == eb.column);
    } else {
        REQUIRE(json_equal(a, b));
        same_text(json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER), json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER));
        static const size_t dump_flags[] = {JSON_COMPACT, JSON_COMPACT | JSON_PRESERVE_ORDER,
                                            JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)};
        for (size_t i = 0; i < sizeof(dump_flags) / sizeof(dump_flags[0]); i++)
            same_text(json_dumps(a, dump_flags[i]), telex_json_dumps(a, dump_flags[i]));
    }
    if (flags == 0)
        check_plain_delta(text, n, a);
    json_decref(a);
    json_decref(b);
    free(text);
    return 0;
}
