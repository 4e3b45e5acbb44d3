/*
 * gateway/responses_stream.h — an answer, as OpenAI's Responses API tells it.
 *
 * Every provider adapter hands the producer Chat Completions chunks (the
 * answer model telex relays: deltas of text, refusal, reasoning and tool
 * calls, a finish reason, usage). This encoder turns them into the
 * Responses stream, event by event, each with a strictly increasing
 * sequence_number from 0:
 *   response.created, response.in_progress
 *   per output item, in the order they first appear:
 *     response.output_item.added
 *     message:   response.content_part.added, response.output_text.delta …
 *                (response.refusal.delta … for a refusal part)
 *     reasoning: response.content_part.added (reasoning_text),
 *                response.reasoning_text.delta …
 *     function_call: response.function_call_arguments.delta …
 *   at the end, for every item in order: the .done events
 *     (response.output_text.done / refusal.done / reasoning_text.done /
 *     function_call_arguments.done, response.content_part.done,
 *     response.output_item.done)
 *   then response.completed — or response.incomplete (finish_reason length:
 *   max_output_tokens; content_filter) — or, for an answer that was cut,
 *   response.failed with the error; never response.completed for a cut one.
 * Items stay open until the end, so deltas that arrive interleaved (tool
 * calls of a provider that streams several at once) are never lost.
 * Only choice 0 is read (the Responses API has no n).
 */
#ifndef TELEX_GATEWAY_RESPONSES_STREAM_H
#define TELEX_GATEWAY_RESPONSES_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct telex_responses_enc telex_responses_enc_t;

/* Called for each event: type ("response.created", …) and its JSON text
 * (len bytes, one line). Returns 0, or -1 to stop the encoder (the log is
 * full): the call that produced the event then returns -1 too. */
typedef int (*telex_responses_emit_fn)(void *user, const char *type, const char *json, size_t len);

/* response_id: "resp_…"; model: the name the client asked for; echo: the
 * request's parameters the Response object repeats (borrowed, copied);
 * created_at: unix seconds. Never NULL. */
telex_responses_enc_t *telex_responses_enc_new(const char *response_id, const char *model, json_t *echo,
                                               int64_t created_at, telex_responses_emit_fn emit, void *user);
void telex_responses_enc_free(telex_responses_enc_t *e);

/* response.created and response.in_progress. */
int telex_responses_enc_start(telex_responses_enc_t *e);
/* The bytes response.created and response.in_progress take on the wire
 * (`event: <type>\ndata: <json>\n\n` each) were they sent now: what the
 * stream's log must hold at once (they repeat the request's parameters).
 * SIZE_MAX when they cannot be encoded. */
size_t telex_responses_enc_start_bytes(telex_responses_enc_t *e);
/* One chat chunk (a parsed object). */
int telex_responses_enc_chunk(telex_responses_enc_t *e, json_t *chunk);
/* A chunk that is only text and perhaps a tool call's next arguments
 * (gateway/answer_model.h's telex_answer_plain_delta): what
 * telex_responses_enc_chunk does with it, without the tree. */
int telex_responses_enc_plain(telex_responses_enc_t *e, const char *text, size_t len, int has_tool,
                              int64_t tool_index, const char *args, size_t args_len);
/* The provider's usage object (chat shape: prompt_tokens, …; cost_usd kept). */
void telex_responses_enc_usage(telex_responses_enc_t *e, json_t *usage);
/* The answer is complete: the .done events, then response.completed or
 * response.incomplete. */
int telex_responses_enc_finish(telex_responses_enc_t *e);
/* The answer was cut after the start: response.failed with the error. */
int telex_responses_enc_fail(telex_responses_enc_t *e, const char *code, const char *message);

/* The last word when the answer's own events no longer fit the log (not
 * even response.failed, which repeats the whole Response): OpenAI's small
 * `error` event {"type":"error","sequence_number":n,"code","message",
 * "param":null}, sent even after an emit failed; no event follows it. */
int telex_responses_enc_error(telex_responses_enc_t *e, const char *code, const char *message);

/* The Response object as it stands (status, output so far, usage); a new
 * reference, never NULL. */
json_t *telex_responses_enc_response(telex_responses_enc_t *e);
/* The same as JSON text (JSON_COMPACT | JSON_PRESERVE_ORDER), malloc'ed;
 * between telex_responses_enc_start_bytes and telex_responses_enc_start,
 * with nothing added since, a copy of the text the start events carry. */
char *telex_responses_enc_response_text(telex_responses_enc_t *e);

/* The Response object of the terminal event (completed, incomplete or
 * failed) once one was sent, else as telex_responses_enc_response; a new
 * reference. */
json_t *telex_responses_enc_final(telex_responses_enc_t *e);
/* The same as JSON text (JSON_COMPACT | JSON_PRESERVE_ORDER), malloc'ed,
 * the caller's: the very text the terminal event carried when one was sent
 * (handed over once; later calls write it again), else written now. */
char *telex_responses_enc_take_final_text(telex_responses_enc_t *e);

/* The output of a Response object as one chat assistant message (text and
 * tool_calls), for a conversation continued with previous_response_id; a
 * new reference, NULL only when open_memstream fails (glibc's own
 * allocation, which does not go through util/alloc.h). */
json_t *telex_responses_output_as_message(json_t *response);

/* A whole chat.completion (a non-streamed answer) as a Response object,
 * malloc'ed JSON text; NULL when the completion cannot be read as one chunk
 * (telex_answer_completion_as_chunk: no choice 0 with a finish_reason) or
 * its message cannot be encoded. */
char *telex_responses_from_completion(json_t *completion, const char *response_id, const char *model, json_t *echo,
                                      int64_t created_at);

#endif
