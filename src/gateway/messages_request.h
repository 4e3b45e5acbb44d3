/*
 * gateway/messages_request.h — an Anthropic Messages API request, turned
 * into the Chat Completions request every provider adapter takes.
 *
 * POST /v1/messages is the third front door over the one producer: its
 * body becomes a chat body here and the chat chunks that come back are
 * encoded as Anthropic events by gateway/messages_stream.h. What maps:
 *   system (string or text blocks)   a first system message
 *   messages: user / assistant, content a string or blocks:
 *     text                           text (an assistant's joined into a string)
 *     image (base64 or url source)   image_url (a data: URL for base64)
 *     tool_use (assistant)           tool_calls (input as JSON arguments)
 *     tool_result (user)             a tool message (is_error: "Error: " first)
 *     thinking / redacted_thinking   left out (named in X-Telex-Ignored)
 *   max_tokens (required)            max_completion_tokens
 *   tools (custom: name, description, input_schema)   function tools
 *   tool_choice auto / any / tool / none              auto / required / {function} / none
 *     (disable_parallel_tool_use: parallel_tool_calls false)
 *   stop_sequences                   stop
 *   temperature, top_p, top_k, thinking   the same names (the Anthropic adapter
 *                                    sends them on; an OpenAI provider refuses
 *                                    what it does not know, with its 400)
 *   metadata.user_id                 user
 *   stream                           stream
 * Refused with a 400: a missing or non-positive max_tokens, document blocks,
 * an unknown block type, roles other than user and assistant. Server tools
 * (web_search_…, code_execution_…, any tool whose type is not "custom") are
 * left out and named in X-Telex-Ignored.
 */
#ifndef TELEX_GATEWAY_MESSAGES_REQUEST_H
#define TELEX_GATEWAY_MESSAGES_REQUEST_H

#include <stddef.h>

#include <jansson.h>

typedef struct telex_messages_request {
    json_t *chat;      /* the chat request body (owned by the caller on success) */
    int stream;
    char ignored[256]; /* for X-Telex-Ignored ("" when none) */
} telex_messages_request_t;

/* Returns 0, or 400 with msg filled in (Anthropic's errors name no
 * parameter; the message does). */
int telex_messages_request_parse(json_t *body, telex_messages_request_t *out, char *msg, size_t msglen);

void telex_messages_request_free(telex_messages_request_t *r);

#endif
