/*
 * upstream/anthropic_map.h — OpenAI Chat Completions ↔ Anthropic Messages,
 * as pure functions (no I/O), for anthropic.c and the unit tests.
 *
 *  - telex_anthropic_request (anthropic_request.c): an OpenAI chat request
 *    as the gateway built it → the Anthropic /v1/messages body, or a clear
 *    400 for what cannot be expressed.
 *  - telex_anthropic_stream_* (anthropic_stream.c): Anthropic's event stream
 *    → OpenAI `chat.completion.chunk` objects, one event at a time.
 *  - telex_anthropic_response, telex_anthropic_error_body
 *    (anthropic_stream.c): a plain Messages answer → `chat.completion`; an
 *    Anthropic error body → OpenAI's error shape.
 * docs/providers.md lists every mapping and what does not map.
 *
 * A jansson call that fails (NULL) is a failure of the translation, never a
 * crash: tests/unit/test_anthropic.c fails every jansson allocation in turn.
 * In the telex process jansson aborts on out of memory instead (cli/main.c),
 * so there only bad input reaches these paths (a provider's id or model cut
 * inside a UTF-8 sequence, say). Other allocations abort (util/alloc.h).
 */
#ifndef TELEX_UPSTREAM_ANTHROPIC_MAP_H
#define TELEX_UPSTREAM_ANTHROPIC_MAP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "upstream/provider.h"

/* ------------------------------------------------------------- request */

typedef struct telex_anthropic_request_error {
    int oom;           /* a jansson call failed (only allocations can: tests fail them) */
    char message[320]; /* what is wrong, for the client */
    char param[96];    /* the OpenAI parameter, e.g. "messages[2].content[0]" */
    const char *code;  /* "unsupported_by_provider" or "invalid_request" */
} telex_anthropic_request_error_t;

/* The Anthropic Messages body for OpenAI request `in` (borrowed): system and
 * developer messages → system; user/assistant/tool messages → messages with
 * text, image, tool_use and tool_result blocks (consecutive same-role
 * messages merged); max_completion_tokens / max_tokens / default_max_tokens
 * → max_tokens; stop → stop_sequences; tools, tool_choice,
 * parallel_tool_calls, user → their Anthropic forms; OpenAI-only parameters
 * without an equivalent dropped (docs/providers.md); anything else passed
 * through as it is. stream: add "stream": true. Returns a new reference, or
 * NULL with *err filled. */
json_t *telex_anthropic_request(json_t *in, uint64_t default_max_tokens, int stream,
                                telex_anthropic_request_error_t *err);

/* err as an OpenAI error body (malloc'd, NUL-terminated), or NULL when a
 * jansson allocation fails (tests only: message and param are kept UTF-8,
 * a client's text cut inside a character shows '?' for the cut bytes). */
char *telex_anthropic_request_error_body(const telex_anthropic_request_error_t *err);

/* ------------------------------------------------------------- stream */

typedef struct telex_anthropic_block {
    int kind;      /* ANTHROPIC_BLOCK_*: text, thinking, tool_use, other; 0 = never started */
    int open;      /* started and not stopped */
    int tool;      /* tool_use: the OpenAI tool_calls index */
} telex_anthropic_block_t;

typedef struct telex_anthropic_stream {
    int64_t created;
    char id[128];
    char model[256];
    int started;  /* message_start seen */
    int finished; /* a stop_reason seen */
    int stopped;  /* message_stop seen */
    int has_usage;
    json_int_t input_tokens, output_tokens, cache_read, cache_creation;
    int n_tools;
    telex_anthropic_block_t *blocks; /* by content block index */
    size_t n_blocks;
} telex_anthropic_stream_t;

#define TELEX_ANTHROPIC_MAX_BLOCKS 4096

enum {
    TELEX_ANTHROPIC_CONTINUE = 0, /* more events to come */
    TELEX_ANTHROPIC_DONE = 1,     /* message_stop: the answer is complete */
    TELEX_ANTHROPIC_FAILED = -1,  /* *kind and message are set */
};

/* created: the `created` of every chunk (Unix seconds). */
void telex_anthropic_stream_init(telex_anthropic_stream_t *s, int64_t created);
void telex_anthropic_stream_free(telex_anthropic_stream_t *s);

/* One SSE event (type: the `event:` field, "message" when none; data: its
 * data). Appends the chunks it becomes (zero or more objects) to `out`.
 * Returns TELEX_ANTHROPIC_CONTINUE, _DONE (message_stop; the usage chunk,
 * choices: [], was appended when the stream carried usage) or _FAILED with *kind (BAD_JSON: data is not a
 * JSON object; PROTOCOL: not a valid event; ERROR_EVENT: an `error` event)
 * and message. */
int telex_anthropic_stream_event(telex_anthropic_stream_t *s, const char *type, size_t type_len, const char *data,
                                 size_t data_len, json_t *out, telex_upstream_failure_kind_t *kind, char *message,
                                 size_t message_len);

/* The stream ended without message_stop: when a stop_reason was seen the
 * answer is complete — appends the usage chunk and returns 1; else 0 (cut). */
int telex_anthropic_stream_eof(telex_anthropic_stream_t *s, json_t *out);

/* Anthropic stop_reason → OpenAI finish_reason. */
const char *telex_anthropic_finish_reason(const char *stop_reason);

/* ------------------------------------------------------------- plain */

/* A Messages answer (parsed, borrowed) → a new `chat.completion` object, or
 * NULL with a message when it is not one (or jansson failed). */
json_t *telex_anthropic_response(json_t *answer, int64_t created, char *message, size_t message_len);

/* An Anthropic error body ({"type":"error","error":{"type","message"}}) or
 * any other → {"error":{"message","type","param":null,"code":null}}
 * (malloc'd, *out_len set), or NULL when jansson fails. */
char *telex_anthropic_error_body(int status, const char *body, size_t len, size_t *out_len);

#endif
