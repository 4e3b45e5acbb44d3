/*
 * mock/mock.h — `telex mock`: a fake upstream that speaks OpenAI's and
 * Anthropic's APIs.
 *
 * It serves POST /v1/chat/completions (and the Azure shape
 * /openai/deployments/{name}/chat/completions) and POST /v1/messages
 * (Anthropic) with deterministic answers — text, reasoning/thinking, tool
 * calls — streamed as exact `chat.completion.chunk` SSE events or Anthropic
 * Messages events, paced by uv timers (no thread or sleep per stream),
 * GET /v1/models, GET /healthz, and a journal of the recent requests at
 * GET/DELETE /mock/requests. The path decides the format of the request and,
 * unless --format or the request's mock.format says otherwise, of the answer.
 *
 * Every knob (tokens, pacing, faults) has a process-wide default from
 * telex_mock_defaults_t and can be overridden per request by a `mock`
 * object in the request body. docs/mock.md is the user-facing reference.
 *
 * Use: fill a telex_mock_defaults_t, telex_mock_create() the shared state,
 * then give telex_mock_server_options() to telex_server_run(). The shared
 * state is read-only after start except the journal (mutex inside).
 */
#ifndef TELEX_MOCK_MOCK_H
#define TELEX_MOCK_MOCK_H

#include <stddef.h>
#include <stdint.h>

#include "http/server.h"

/* Limits on knobs; a request asking for more is a 400. */
#define TELEX_MOCK_MAX_TOKENS 1000000
#define TELEX_MOCK_MAX_DELAY_MS 3600000
#define TELEX_MOCK_DEFAULT_JOURNAL 1000

/* Wire formats of answers. */
#define TELEX_MOCK_FORMAT_BY_PATH (-1) /* the request's path decides */
#define TELEX_MOCK_FORMAT_OPENAI 0
#define TELEX_MOCK_FORMAT_ANTHROPIC 1

typedef struct telex_mock_defaults {
    int format;           /* TELEX_MOCK_FORMAT_*: of every answer */
    int64_t tokens;       /* content chunks per answer */
    int64_t delay_ms;     /* between content chunks */
    int64_t ttft_ms;      /* from request to the first chunk (or error) */
    int64_t stall_ms;     /* how long a stall lasts before the stream resumes */
    size_t journal_size;  /* requests kept for /mock/requests; 0 = none */
    const char *models;   /* GET /v1/models lists these ids (comma-separated; borrowed) */
} telex_mock_defaults_t;

typedef struct telex_mock telex_mock_t;

/* The documented defaults: format by path, 20 tokens, 20 ms apart, ttft 0,
 * stall 10 min, journal of 1000 requests, models "mock". */
void telex_mock_defaults_init(telex_mock_defaults_t *defaults);

/* Shared state for all workers (out of memory ends the process). */
telex_mock_t *telex_mock_create(const telex_mock_defaults_t *defaults);
void telex_mock_destroy(telex_mock_t *mock);

/* Fills the application part of server options (on_request, worker
 * init/dispose, shutdown, idle check, app, name). The caller sets the
 * listen address, worker count and limits. */
void telex_mock_server_options(telex_mock_t *mock, telex_server_options_t *options);

#endif
