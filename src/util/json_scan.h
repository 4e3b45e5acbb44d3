/*
 * util/json_scan.h — validate one JSON object and pick out the few facts
 * the relay needs, without building a tree or allocating.
 *
 * A provider streams hundreds of chunks per answer; the relay forwards each
 * one's bytes unchanged and only needs to know that it is a valid JSON
 * object, whether it carries a top-level `error` or `usage` (then, and only
 * then, it is parsed into a tree), where a top-level `"usage":null` is (a
 * client that did not ask for usage must not see the one telex asked the
 * provider for), whether any `finish_reason` is set (and which choices a
 * choice-level one finishes), and
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
#define TELEX_JSON_MAX_FINISHES 4
#define TELEX_JSON_MAX_INDEX 1000000

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
    size_t choices_at;         /* offset of the '[' of a top-level "choices" array (with
                                  finish_odd clear, the only top-level "choices"); 0: none,
                                  or after a memo's tail (below) when it lies in the tail */
    /* Choice-level finishes: a non-null "finish_reason" member (last one
     * wins) of an object that is an element of the top-level "choices"
     * array (the last top-level "choices"), each with the choice's "index"
     * (last one wins; its position in the array when it has none).
     * finish_odd: something these cannot say exactly (more than
     * TELEX_JSON_MAX_FINISHES of them, an index that is not a plain
     * non-negative integer below TELEX_JSON_MAX_INDEX, more than one
     * top-level "choices", a key with an escape) or something jansson
     * refuses in a valid object (\u0000, a lone surrogate, an integer too
     * long for json_int_t, a real that may overflow): build a tree
     * instead. A memo never keeps a tail with such a string or number. */
    uint8_t finish_odd;
    uint8_t n_finishes;
    /* internal: where the scan is among the choices */
    uint8_t in_choices;        /* the top-level "choices" array is open */
    uint8_t choices_seen;      /* a top-level "choices" member was read */
    uint8_t choice_finish;     /* the open choice has a non-null finish_reason */
    int32_t choice_index;      /* its index + 1 (0: none; -1: not a plain integer) */
    uint32_t choice_pos;       /* its position in "choices" */
    uint32_t finish_index[TELEX_JSON_MAX_FINISHES];
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
 * TELEX_JSON_MEMO_MAX_DEPTH are not kept.
 *
 * The rest of the chunk, its tail (`"Hel"},"logprobs":null,
 * "finish_reason":null}]}`), is also the same every time but for its
 * string values' contents (the text; OpenAI's random "obfuscation") and
 * its numbers (a per-chunk timestamp). So the memo also keeps the tail of
 * the last valid chunk that had its prefix, with where those holes are (up
 * to TELEX_JSON_MEMO_MAX_HOLES of them; tails up to
 * TELEX_JSON_MEMO_MAX_TAIL bytes), and the facts at its end. A chunk whose
 * tail has the same bytes outside the holes, and a valid string or number
 * in each, went through the very same states: its facts are the memo's,
 * with the text counted from its own strings and a "usage":null cut moved
 * by how much longer or shorter its holes are. Only its holes are scanned.
 *
 * A zeroed memo is empty; it owns one allocation of about the prefix's
 * and the tail's size, freed by telex_json_memo_clear. */
#define TELEX_JSON_MEMO_MAX_PREFIX 1024
#define TELEX_JSON_MEMO_MAX_DEPTH 16
#define TELEX_JSON_MEMO_MAX_TAIL 1024
#define TELEX_JSON_MEMO_MAX_HOLES 6

typedef struct telex_json_memo {
    char *prefix; /* the prefix's bytes, then the tail's */
    uint32_t len; /* bytes of prefix that are valid (0: empty memo) */
    uint32_t cap;
    telex_json_facts_t facts; /* the facts of those bytes */
    uint8_t depth;
    uint8_t key;
    char stack[TELEX_JSON_MEMO_MAX_DEPTH];
    /* the tail (tail_len 0: none) */
    uint16_t tail_len;
    uint8_t n_holes;
    uint8_t usage_holes;                            /* holes before the tail's "usage":null cut
                                                       (0xFF: no cut in the tail) */
    uint16_t hole_from[TELEX_JSON_MEMO_MAX_HOLES];  /* [from, to): a string value's contents or a */
    uint16_t hole_to[TELEX_JSON_MEMO_MAX_HOLES];    /* number, offsets in the tail */
    uint8_t hole_key[TELEX_JSON_MEMO_MAX_HOLES];    /* a string's key, or a number (json_scan.c) */
    telex_json_facts_t tail_facts;                  /* the facts at the end of that chunk */
} telex_json_memo_t;

int telex_json_scan_object_memo(const char *s, size_t n, telex_json_facts_t *facts, telex_json_memo_t *memo);
void telex_json_memo_clear(telex_json_memo_t *memo);

#endif
