/*
 * fuzz_json_memo.c — libFuzzer target for the chunk scanner's memo
 * (src/util/json_scan.c, compiled in here).
 *
 * Input: up to four chunks (a stream's consecutive events) separated by the
 * byte 0xFF (never valid in JSON text, which is UTF-8; a fifth separator and
 * what follows stay in the fourth chunk); each chunk is scanned by telex_json_scan_object and,
 * in order, by telex_json_scan_object_memo with one memo for the whole
 * stream. Aborts when the two differ in anything they report (return value,
 * every fact, error_at on failure), when the memo holds bytes that are
 * not the first bytes of some chunk scanned so far, or a tail that with the
 * prefix is not a whole chunk scanned so far, and when a valid chunk's
 * choice-level finishes are not what jansson's tree says (check_finishes). Each chunk is scanned
 * from an exact-size copy, so reads past its end are caught.
 *
 * Build and run: `make fuzz FUZZ_SECONDS=N` (clang, -fsanitize=fuzzer,
 * address,undefined; seeds in tests/fuzz/corpus_json_memo/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../src/util/json_scan.c"

#define REQUIRE(cond)                                                                                           \
    do {                                                                                                        \
        if (!(cond)) {                                                                                          \
            fprintf(stderr, "fuzz_json_memo: %s (line %d)\n", #cond, __LINE__);                               \
            abort();                                                                                            \
        }                                                                                                       \
    } while (0)

/* A valid chunk's choice-level finishes are what openai.c's tree walk finds
 * (each element of "choices" with a non-null "finish_reason", by its integer
 * "index" or its position), unless the scan said finish_odd; a chunk
 * jansson refuses, or an index the walk would read as negative or not
 * read, is odd. */
static void check_finishes(const char *s, size_t n, const telex_json_facts_t *f)
{
    json_t *root = json_loadb(s, n, 0, NULL);
    if (root == NULL) {
        REQUIRE(f->finish_odd);
        return;
    }
    int k = 0;
    size_t i;
    json_t *choice;
    json_array_foreach(json_object_get(root, "choices"), i, choice)
    {
        json_t *fr = json_object_get(choice, "finish_reason");
        if (fr == NULL || json_is_null(fr))
            continue;
        json_t *jindex = json_object_get(choice, "index");
        if (jindex != NULL && (!json_is_integer(jindex) || json_integer_value(jindex) < 0 ||
                               json_integer_value(jindex) >= TELEX_JSON_MAX_INDEX)) {
            REQUIRE(f->finish_odd);
            break;
        }
        if (f->finish_odd)
            break;
        REQUIRE(k < f->n_finishes);
        REQUIRE(f->finish_index[k] == (jindex != NULL ? (uint32_t)json_integer_value(jindex) : (uint32_t)i));
        k++;
    }
    REQUIRE(f->finish_odd || k == f->n_finishes);
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t bounds[5] = {0}; /* chunk i is data[bounds[i] .. end of chunk i) */
    size_t ends[4] = {0};
    int n = 0;
    size_t from = 0;
    while (n < 4) {
        const uint8_t *sep = n < 3 ? memchr(data + from, 0xFF, size - from) : NULL;
        bounds[n] = from;
        ends[n] = sep != NULL ? (size_t)(sep - data) : size;
        n++;
        if (sep == NULL)
            break;
        from = ends[n - 1] + 1;
    }
    telex_json_memo_t memo = {0};
    char *seen[4] = {0};
    size_t seen_len[4] = {0};
    for (int i = 0; i < n; i++) {
        size_t len = ends[i] - bounds[i];
        char *chunk = malloc(len ? len : 1);
        REQUIRE(chunk != NULL);
        memcpy(chunk, data + bounds[i], len);
        telex_json_facts_t plain, memoed;
        int a = telex_json_scan_object(chunk, len, &plain);
        int b = telex_json_scan_object_memo(chunk, len, &memoed, &memo);
        REQUIRE(a == b);
        REQUIRE(plain.top_error == memoed.top_error && plain.top_usage == memoed.top_usage);
        REQUIRE(plain.finish == memoed.finish && plain.line_breaks == memoed.line_breaks);
        REQUIRE(plain.completion_bytes == memoed.completion_bytes && plain.reasoning_bytes == memoed.reasoning_bytes);
        REQUIRE(a == 0 || plain.error_at == memoed.error_at);
        REQUIRE(a != 0 || (plain.null_usage_from == memoed.null_usage_from && plain.null_usage_to == memoed.null_usage_to));
        REQUIRE(plain.finish_odd == memoed.finish_odd && plain.n_finishes == memoed.n_finishes);
        /* choices_at: the memo's is the scan's, or not known (in a tail) */
        REQUIRE(a != 0 || plain.choices_at == 0 || chunk[plain.choices_at] == '[');
        REQUIRE(a != 0 || memoed.choices_at == 0 || memoed.choices_at == plain.choices_at);
        REQUIRE(memcmp(plain.finish_index, memoed.finish_index,
                       sizeof(plain.finish_index[0]) * (size_t)plain.n_finishes) == 0);
        if (a == 0)
            check_finishes(chunk, len, &plain);
        seen[i] = chunk;
        seen_len[i] = len;
        if (memo.len != 0) {
            int found = 0;
            for (int k = 0; k <= i; k++)
                found |= seen_len[k] >= memo.len && memcmp(seen[k], memo.prefix, memo.len) == 0;
            REQUIRE(found);
            REQUIRE(memo.len <= TELEX_JSON_MEMO_MAX_PREFIX && memo.depth <= TELEX_JSON_MEMO_MAX_DEPTH);
        }
        if (memo.tail_len != 0) {
            /* prefix and tail together are some valid chunk scanned so far */
            size_t whole = (size_t)memo.len + memo.tail_len;
            int found = 0;
            for (int k = 0; k <= i; k++)
                found |= seen_len[k] == whole && memcmp(seen[k], memo.prefix, whole) == 0;
            REQUIRE(memo.len != 0 && found && memo.tail_len <= TELEX_JSON_MEMO_MAX_TAIL);
            REQUIRE(memo.n_holes <= TELEX_JSON_MEMO_MAX_HOLES);
        }
    }
    for (int i = 0; i < n; i++)
        free(seen[i]);
    telex_json_memo_clear(&memo);
    return 0;
}
