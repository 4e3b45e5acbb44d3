/*
 * gateway/responses_request.h — an OpenAI Responses API request, turned
 * into the Chat Completions request every provider adapter takes.
 *
 * POST /v1/responses is a front door over the same producer as
 * /v1/chat/completions: its body is translated here into a chat body, and
 * the chat chunks that come back are encoded as Responses events by
 * gateway/responses_stream.h. What maps:
 *   instructions                    a system message first
 *   input (string)                  one user message
 *   input items: message (roles user, assistant, system, developer → system;
 *     content a string or input_text / output_text / input_image parts),
 *     function_call (→ an assistant message's tool_calls; consecutive calls
 *     are one message), function_call_output (→ a tool message),
 *     custom_tool_call / _output (the same, the input as the arguments)
 *   tools: function                 function tools
 *   tool_choice                     auto / none / required / {type: function, name}
 *   max_output_tokens               max_completion_tokens
 *   temperature, top_p, parallel_tool_calls, user, safety_identifier,
 *   prompt_cache_key, service_tier, top_logprobs   the same names
 *   text.format json_schema / json_object           response_format
 *   text.verbosity                  verbosity
 *   reasoning.effort                reasoning_effort
 *   stream                          stream
 * Hints a chat provider cannot take are left out and named in the
 * X-Telex-Ignored response header: hosted tools (web_search, file_search,
 * code_interpreter, image_generation, computer_use_preview, local_shell,
 * mcp, custom and namespace tools), reasoning items in the input,
 * reasoning.summary, include, truncation, max_tool_calls, client_metadata,
 * stream_options, store and metadata (both only echoed in the response).
 * What would change the answer's meaning if dropped is a 400 naming the
 * parameter: an input_file part, item_reference items, conversation, prompt,
 * an unknown item type. previous_response_id and background are the
 * front door's (gateway/responses.c), not translated here.
 */
#ifndef TELEX_GATEWAY_RESPONSES_REQUEST_H
#define TELEX_GATEWAY_RESPONSES_REQUEST_H

#include <stddef.h>

#include <jansson.h>

typedef struct telex_responses_request {
    json_t *chat;         /* the chat request body (owned by the caller on success) */
    json_t *echo;         /* what the Response object echoes: instructions, tools, ... (owned) */
    int stream;
    int background;
    const char *previous_response_id; /* points into the client's body, or NULL */
    char ignored[256];    /* comma-separated names for X-Telex-Ignored ("" when none) */
} telex_responses_request_t;

/* Translates the client's Responses body. history: the messages of the
 * response named by previous_response_id (borrowed; NULL when none), put
 * before the new input. Returns 0, or 400 with msg and *param (a static
 * name) filled in. */
int telex_responses_request_parse(json_t *body, json_t *history, telex_responses_request_t *out, char *msg,
                                  size_t msglen, const char **param);

void telex_responses_request_free(telex_responses_request_t *r);

#endif
