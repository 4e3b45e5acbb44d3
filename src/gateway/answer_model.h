/*
 * gateway/answer_model.h — small shared readings of telex's answer model,
 * the OpenAI Chat Completions chunk every provider adapter produces, for
 * the front doors that translate it (gateway/responses_*.c,
 * gateway/messages_*.c).
 */
#ifndef TELEX_GATEWAY_ANSWER_MODEL_H
#define TELEX_GATEWAY_ANSWER_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The chunk's choice 0 (the one whose index is 0, or that has none), or
 * NULL: the translated front doors have no n. Borrowed. */
json_t *telex_answer_choice0(json_t *chunk);

/* The reasoning text of a delta (reasoning_content, or reasoning), or NULL. */
json_t *telex_answer_reasoning(json_t *delta);

/* A whole chat.completion as one chunk: choice 0's message as its delta
 * (tool calls given their index), its finish_reason. A new reference; NULL
 * when the completion has no choice 0 with a finish_reason. */
json_t *telex_answer_completion_as_chunk(json_t *completion);

/* The "text" members of an array of parts (or a string itself) joined, as
 * a malloc'ed string; NULL only when open_memstream fails (glibc's own
 * allocation, which does not go through util/alloc.h). */
char *telex_answer_joined_text(json_t *parts);

/* Most chunks of a streamed answer carry nothing but text, choice 0's
 * delta.content, or the next piece of a tool call's arguments. For such a
 * chunk (text util/json_scan.c validated) this reads them without building
 * a tree: returns 1 and fills *d — text (choice 0's content; "" when none)
 * and, when the delta continues a tool call ({"index":i,"function":
 * {"arguments":…}}: no id, no name), has_tool, tool_index and args (may be
 * empty). Strings with escapes are decoded into d->scratch, which the
 * caller frees (NULL when none). Returns 0 — build the tree and read it —
 * for anything a front door must look at more closely: reasoning, a
 * refusal, a tool call's first delta or several calls, a finish_reason, a
 * repeated key on the way, an index that is not a plain integer, a string
 * jansson would refuse. Reads what telex_answer_choice0 and the encoders
 * read from the tree (tests/unit/test_front_door_deltas.c compares the
 * events both give). */
typedef struct {
    const char *text;
    size_t text_len;
    int has_tool;
    int64_t tool_index;
    const char *args;
    size_t args_len;
    char *scratch;
} telex_answer_delta_t;
int telex_answer_plain_delta(const char *json, size_t n, telex_answer_delta_t *d);
/* The same, given util/json_scan.h's choices_at for this very text from a
 * scan that found no finish_odd (0: not known): only the "choices" array is
 * walked (the other top-level members were most of the walk's work). */
int telex_answer_plain_delta_at(const char *json, size_t n, size_t choices_at, telex_answer_delta_t *d);

/* Writing a front door's per-chunk delta event as text, without a tree
 * (building, writing and freeing one cost ~13,000 instructions a chunk).
 * The writers give the bytes telex_json_dumps gives for the same values:
 * telex_answer_put_uint a decimal number, telex_answer_put_string a JSON
 * string with its quotes (util/json_dump.h's escaper; dst needs
 * TELEX_ANSWER_STRING_BOUND(n) bytes; SIZE_MAX when s is not valid UTF-8,
 * which jansson refuses too). Each returns the bytes written. */
#define TELEX_ANSWER_STRING_BOUND(n) (6 * (size_t)(n) + 2)
size_t telex_answer_put_uint(char *dst, uint64_t v);
size_t telex_answer_put_string(char *dst, const char *s, size_t n);

/* Adds name to a comma-separated list (X-Telex-Ignored) of capacity cap,
 * once; a name that does not fit is left out. */
void telex_ignored_add(char *list, size_t cap, const char *name);

#endif
