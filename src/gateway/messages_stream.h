/*
 * gateway/messages_stream.h — an answer, as Anthropic's Messages API tells it.
 *
 * Turns the Chat Completions chunks every adapter produces (the answer
 * model) into Anthropic's event sequence:
 *   message_start (usage.input_tokens: the gateway's estimate until the
 *   provider reports it), ping,
 *   per content block, in order: content_block_start, content_block_delta
 *   (thinking_delta for reasoning, text_delta, input_json_delta for a tool
 *   call's arguments) …, content_block_stop — a block ends when the next
 *   begins,
 *   message_delta (stop_reason: end_turn, max_tokens, tool_use, refusal;
 *   usage), message_stop.
 * An answer cut after the start ends with `event: error` and Anthropic's
 * error object — never message_stop. Only choice 0 is read.
 * Tool calls are expected one after another, as chat providers stream them;
 * argument deltas for a tool call whose block has ended are dropped.
 */
#ifndef TELEX_GATEWAY_MESSAGES_STREAM_H
#define TELEX_GATEWAY_MESSAGES_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "gateway/responses_stream.h" /* telex_responses_emit_fn: the same event sink */

typedef struct telex_messages_enc telex_messages_enc_t;

/* message_id: "msg_…"; model: the name the client asked for;
 * input_estimate: input tokens for message_start before the provider says.
 * Never NULL. */
telex_messages_enc_t *telex_messages_enc_new(const char *message_id, const char *model, int64_t input_estimate,
                                             telex_responses_emit_fn emit, void *user);
void telex_messages_enc_free(telex_messages_enc_t *e);

int telex_messages_enc_start(telex_messages_enc_t *e);
int telex_messages_enc_chunk(telex_messages_enc_t *e, json_t *chunk);
/* A chunk that is only text and perhaps a tool call's next arguments
 * (gateway/answer_model.h's telex_answer_plain_delta): what
 * telex_messages_enc_chunk does with it, without the tree. */
int telex_messages_enc_plain(telex_messages_enc_t *e, const char *text, size_t len, int has_tool, int64_t tool_index,
                             const char *args, size_t args_len);
void telex_messages_enc_usage(telex_messages_enc_t *e, json_t *usage);
int telex_messages_enc_finish(telex_messages_enc_t *e);
/* error_type: Anthropic's (api_error, overloaded_error, …). */
int telex_messages_enc_fail(telex_messages_enc_t *e, const char *error_type, const char *message);

/* A whole chat.completion as an Anthropic Message object, malloc'ed JSON
 * text; NULL when the completion cannot be read as one chunk
 * (telex_answer_completion_as_chunk: no choice 0 with a finish_reason) or
 * its message cannot be encoded. */
char *telex_messages_from_completion(json_t *completion, const char *message_id, const char *model);

#endif
