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
 * prefix is not a whole chunk scanned so far. Each chunk is scanned
 * from an exact-size copy, so reads past its end are caught.
 *
 * Build and run: `make fuzz FUZZ_SECONDS=N` (clang, -fsanitize=fuzzer,
 * address,undefined; seeds in tests/fuzz/corpus_json_memo/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/util/json_scan.c"

#define REQUIRE(cond)                                                                                           \
    do {                                                                                                        \
        if (!(cond)) {                                                                                          \
            fprintf(stderr, "fuzz_json_memo: %s (line %d)\n", #cond, __LINE__);                               \
            abort();                                                                                            \
        }                                                                                                       \
    } while (0)

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
