/*
 * util/json_scan.h — validate one JSON object and pick out the few facts
 * the relay needs, without building a tree or allocating.
 *
 * A provider streams hundreds of chunks per answer; the relay forwards each
 * one's bytes unchanged and only needs to know that it is a valid JSON
 * object, whether it carries a top-level `error` or `usage` (then, and only
 * then, it is parsed into a tree), whether any `finish_reason` is set, and
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
    size_t error_at;           /* on failure: offset of the offending byte */
} telex_json_facts_t;

/* Returns 0 when s[0..n) is exactly one JSON object (surrounding whitespace
 * allowed), filling *facts; -1 otherwise (facts->error_at says where). */
int telex_json_scan_object(const char *s, size_t n, telex_json_facts_t *facts);

#endif
