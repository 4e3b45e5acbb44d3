/*
 * util/json_scan.h — validate one JSON object and pick out the few facts
 * the relay needs, without building a tree or allocating.
 *
 * A provider streams hundreds of chunks per answer; the relay forwards each
 * one's bytes unchanged and only needs to know that it is a valid JSON
 * object, whether it carries a top-level `error` or `usage` (then, and only
 * then, it is parsed into a tree), where a top-level `"usage":null` is (a
 * client that did not ask for usage must not see the one telex asked the
 * provider for), whether any `finish_reason` is set, and
 * roughly how much text it carries (for usage estimates when a provider
 * reports none). The grammar is RFC 8259's, strings must be valid UTF-8
 * (as jansson requires), and nesting deeper than TELEX_JSON_SCAN_MAX_DEPTH
 * is refused.
 */
#ifndef TELEX_UTIL_JSON_SCAN_H
#define TELEX_UTIL_JSON_SCAN_H

#include <stddef.h>
#include <stdint.h>

#define TELEX_JSON_SCAN_MAX_DEPTH 64

typedef struct telex_json_facts {
    int top_error;             /* a top-level "error" that is not null */
    int top_usage;             /* a top-level "usage" that is not null */
    int finish;                /* some "finish_reason" (any depth) that is not null */
    uint64_t completion_bytes; /* string bytes of "content", "refusal", "arguments" */
    uint64_t reasoning_bytes;  /* string bytes of "reasoning", "reasoning_content" */
    int line_breaks;           /* whitespace held a CR or LF (strings cannot: without
                                  this, a valid object is one line of text) */
    size_t null_usage_from;    /* a top-level "usage":null member: the bytes to cut */
    size_t null_usage_to;      /* [from, to) so the object stays valid without it,
                                  with one adjacent comma (to == 0: none) */
    int null_usage_open;       /* internal: the cut still wants the comma after it */
    size_t error_at;           /* on failure: offset of the offending byte */
} telex_json_facts_t;

/* Returns 0 when s[0..n) is exactly one JSON object (surrounding whitespace
 * allowed), filling *facts; -1 otherwise (facts->error_at says where). */
int telex_json_scan_object(const char *s, size_t n, telex_json_facts_t *facts);

/* The chunks of one streamed answer mostly share their first bytes: in
 * OpenAI's shape everything up to the text, `{"id":"chatcmpl-…","object":
 * "chat.completion.chunk",…,"delta":{"content":` (two thirds of a chunk),
 * is the same every time. A memo keeps those bytes of an earlier chunk and
 * the scanner's state right after them — taken at the value of the first
 * "content", "refusal", "arguments", "reasoning" or "reasoning_content"
 * key — so a chunk that starts with the same bytes is scanned from there on.
 * The scanner's state after a prefix depends on those bytes alone, so the
 * result (return value and every fact, error_at included) is exactly that
 * of telex_json_scan_object. A chunk that does not match (or that the memo
 * has not seen yet) is scanned whole and leaves its own prefix in the memo.
 * Prefixes longer than TELEX_JSON_MEMO_MAX_PREFIX bytes or deeper than
 * TELEX_JSON_MEMO_MAX_DEPTH are not kept. A zeroed memo is empty; it owns
 * one allocation of about the prefix's size, freed by
 * telex_json_memo_clear. */
#define TELEX_JSON_MEMO_MAX_PREFIX 1024
#define TELEX_JSON_MEMO_MAX_DEPTH 16

typedef struct telex_json_memo {
    char *prefix;
    uint32_t len; /* bytes of prefix that are valid (0: empty memo) */
    uint32_t cap;
    telex_json_facts_t facts; /* the facts of those bytes */
    uint8_t depth;
    uint8_t key;
    char stack[TELEX_JSON_MEMO_MAX_DEPTH];
} telex_json_memo_t;

int telex_json_scan_object_memo(const char *s, size_t n, telex_json_facts_t *facts, telex_json_memo_t *memo);
void telex_json_memo_clear(telex_json_memo_t *memo);

#endif
