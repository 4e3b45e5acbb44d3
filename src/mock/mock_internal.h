/*
 * mock/mock_internal.h — what the files of src/mock/ share, nothing more.
 *
 *  - mock.c     routing, request validation (OpenAI and Anthropic bodies),
 *               the `mock` object, small endpoints, error replies
 *  - answer.c   the deterministic answer text (generated words or a given
 *               text split at word boundaries), JSON string escaping
 *  - exchange.c one chat completion in flight: the order of its events,
 *               pacing timers, faults, client-gone detection
 *  - wire.c     the bytes of each event, whole answer and error body, in
 *               OpenAI's or Anthropic's format
 *  - journal.c  the ring of recent requests behind /mock/requests
 *
 * Not a public interface: only the files of src/mock/ include it.
 */
#ifndef TELEX_MOCK_INTERNAL_H
#define TELEX_MOCK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <jansson.h>
#include <uv.h>

#include "mock/mock.h"

/* ------------------------------------------------------------- answer */

/* The content tokens of one answer. Either generated (words picked from a
 * fixed list by a hash of seed and position) or a given text split so that
 * each token is its leading whitespace plus one word; concatenating the
 * tokens always gives back the text exactly. */
typedef struct telex_mock_answer {
    size_t count;
    uint64_t seed;      /* generated answers */
    char *text;         /* given text (NUL-terminated copy) or NULL */
    size_t *offsets;    /* given text: count + 1 token boundaries */
    size_t max_raw_len; /* longest token in bytes, unescaped */
} telex_mock_answer_t;

void telex_mock_answer_generate(telex_mock_answer_t *a, uint64_t seed, size_t count);
void telex_mock_answer_from_text(telex_mock_answer_t *a, const char *text, size_t len);
void telex_mock_answer_free(telex_mock_answer_t *a);
/* Raw bytes of token i (valid while `a` lives, or in scratch, which must
 * hold max_raw_len + 1 bytes). */
const char *telex_mock_answer_token(const telex_mock_answer_t *a, size_t i, char *scratch, size_t *len);
/* The whole answer as a malloc'd NUL-terminated string. */
char *telex_mock_answer_join(const telex_mock_answer_t *a, size_t *len);

/* FNV-1a, for seeds. */
uint64_t telex_mock_hash(uint64_t h, const void *data, size_t len);
#define TELEX_MOCK_HASH_INIT 0xcbf29ce484222325ULL

/* ---------------------------------------------------------- the request */

enum {
    TELEX_MOCK_FAULT_MALFORMED,    /* emits a bad event, stream goes on */
    TELEX_MOCK_FAULT_INVALID_JSON, /* emits `data: {not json`, goes on */
    TELEX_MOCK_FAULT_OVERSIZE,     /* emits one giant event, goes on */
    TELEX_MOCK_FAULT_ERROR,        /* emits the format's error event, ends the body */
    TELEX_MOCK_FAULT_STALL,        /* silence for stall_ms, then goes on */
    TELEX_MOCK_FAULT_CUT,          /* connection closed abruptly */
    TELEX_MOCK_FAULT_COUNT
};

/* A tool call the answer makes (mock.tool_calls). Its arguments stream in
 * fragments of about TELEX_MOCK_TOOL_FRAGMENT bytes (never splitting a UTF-8
 * sequence): frag[k]..frag[k+1] is fragment k. */
#define TELEX_MOCK_TOOL_FRAGMENT 8
typedef struct telex_mock_tool {
    char *id; /* as given, or generated: call_mock_<seq>_<i> / toolu_mock_<seq>_<i> */
    char *name;
    char *arguments; /* JSON text */
    size_t len;
    size_t *frag; /* n_frag + 1 offsets */
    size_t n_frag;
} telex_mock_tool_t;

/* One validated chat completion request with every knob resolved. */
typedef struct telex_mock_spec {
    uint64_t seq;
    int format;  /* of the answer: TELEX_MOCK_FORMAT_OPENAI / _ANTHROPIC */
    int stream;
    int include_usage; /* the client asked (stream_options.include_usage) */
    int usage;         /* mock.usage: send it when asked (default 1) */
    int stamp;
    int no_done;
    int64_t delay_ms, ttft_ms, stall_ms;
    int64_t status;      /* 0 = none */
    int64_t retry_after; /* -1 = none */
    int64_t fault_at[TELEX_MOCK_FAULT_COUNT]; /* -1 = off; else content count */
    int64_t oversize_bytes;
    int64_t prompt_tokens;
    int64_t cached_tokens; /* of prompt_tokens, <= it */
    int64_t created;
    char *model;         /* NUL-terminated, valid UTF-8 */
    char *finish_reason; /* mock.finish_reason as given, or NULL: the format's default */
    int refusal;         /* the answer is a refusal (OpenAI: delta.refusal) */
    telex_mock_answer_t answer;
    telex_mock_answer_t thinking; /* reasoning before the answer; count 0 = none */
    telex_mock_tool_t *tools;
    size_t n_tools;
} telex_mock_spec_t;

/* Content chunks ("units"): thinking tokens, answer tokens, tool argument
 * fragments, in that order; faults count these. */
int64_t telex_mock_spec_units(const telex_mock_spec_t *spec);

void telex_mock_spec_free(telex_mock_spec_t *spec);

/* -------------------------------------------------------------- journal */

typedef struct telex_mock_journal telex_mock_journal_t;

typedef struct telex_mock_progress {
    int status;
    int64_t events;         /* SSE events written (any kind, [DONE] too) */
    int64_t content_events; /* content chunks written */
    int completed;          /* the whole response was handed to the socket */
    int client_gone;        /* the client left before the end */
    int64_t gone_at_ms;     /* unix ms, when noticed; 0 when not gone */
    int64_t ended_ms;       /* unix ms; 0 while in flight */
    const char *outcome;    /* static string */
} telex_mock_progress_t;

telex_mock_journal_t *telex_mock_journal_new(size_t capacity);
void telex_mock_journal_free(telex_mock_journal_t *j);
/* Records a request (method, path, headers without secrets, body: the
 * parsed JSON when given, else the raw bytes) and returns its sequence
 * number (> 0, also when capacity is 0 or recording failed). */
uint64_t telex_mock_journal_add(telex_mock_journal_t *j, h2o_req_t *req, json_t *body);
void telex_mock_journal_update(telex_mock_journal_t *j, uint64_t seq, const telex_mock_progress_t *p);
/* {"requests":[...], "total":N} of entries with seq > since, oldest first;
 * malloc'd. */
char *telex_mock_journal_dump(telex_mock_journal_t *j, uint64_t since, size_t *len);
void telex_mock_journal_clear(telex_mock_journal_t *j);
int64_t telex_mock_unix_ms(void);

/* ---------------------------------------------------- shared and worker */

struct telex_mock {
    telex_mock_defaults_t defaults;
    telex_mock_journal_t *journal;
};

typedef struct telex_mock_exchange telex_mock_exchange_t;

typedef struct telex_mock_worker {
    telex_mock_t *mock;
    uv_loop_t *loop;
    int shutting_down;
    size_t active;                /* exchanges not yet freed */
    h2o_linklist_t exchanges;     /* of telex_mock_exchange_t.link: in flight, newest first */
} telex_mock_worker_t;

/* Takes ownership of *spec (also on failure). Answers the request:
 * status fault, streamed chunks or one chat.completion object. */
void telex_mock_exchange_start(telex_mock_worker_t *w, h2o_req_t *req, telex_mock_spec_t *spec);
/* Graceful shutdown: cut every exchange of the worker soon. */
void telex_mock_exchange_shutdown(telex_mock_worker_t *w);

/* Sends {"error":{message,type,param,code}} with `status`; retry_after >= 0
 * adds Retry-After. */
void telex_mock_reply_error(h2o_req_t *req, int status, const char *message, const char *type, const char *param,
                            const char *code, int64_t retry_after);
/* The same in Anthropic's shape, {"type":"error","error":{type,message}},
 * the type chosen by status (telex_mock_anthropic_error_type). */
void telex_mock_reply_anthropic_error(h2o_req_t *req, int status, const char *message, int64_t retry_after);
/* invalid_request_error, authentication_error, ..., overloaded_error (529). */
const char *telex_mock_anthropic_error_type(int status);

/* ------------------------------------------------------------------ wire */

/* The parts of a streamed answer, in order. */
enum { TELEX_MOCK_SEG_THINKING, TELEX_MOCK_SEG_TEXT, TELEX_MOCK_SEG_TOOL };
typedef struct telex_mock_segment {
    int kind;
    size_t tool;  /* TOOL: index into spec->tools */
    size_t count; /* units */
} telex_mock_segment_t;

/* Writes events into buf (cap bytes, enough for any event of the spec:
 * telex_mock_wire_cap). Every function returns the bytes written, 0 when the
 * format has no such event. */
typedef struct telex_mock_wire {
    const telex_mock_spec_t *spec;
    char *buf;
    size_t cap;
    size_t n;       /* being written */
    char *prefix;   /* OpenAI: `data: {"id":...,"choices":[` */
    size_t prefix_len;
} telex_mock_wire_t;

/* Sizes the buffer for the longest event (free with telex_mock_wire_free). */
void telex_mock_wire_init(telex_mock_wire_t *w, const telex_mock_spec_t *spec);
void telex_mock_wire_free(telex_mock_wire_t *w);
/* The segments of the answer (malloc'd, *n set). */
telex_mock_segment_t *telex_mock_wire_segments(const telex_mock_spec_t *spec, size_t *n);
size_t telex_mock_wire_open(telex_mock_wire_t *w);  /* role chunk / message_start */
size_t telex_mock_wire_ping(telex_mock_wire_t *w);  /* Anthropic only */
size_t telex_mock_wire_segment_start(telex_mock_wire_t *w, const telex_mock_segment_t *seg, size_t index);
size_t telex_mock_wire_unit(telex_mock_wire_t *w, const telex_mock_segment_t *seg, size_t index, size_t i);
/* part 0: thinking's signature (Anthropic); part 1: content_block_stop. */
size_t telex_mock_wire_segment_end(telex_mock_wire_t *w, const telex_mock_segment_t *seg, size_t index, int part);
size_t telex_mock_wire_finish(telex_mock_wire_t *w); /* finish chunk / message_delta */
size_t telex_mock_wire_usage(telex_mock_wire_t *w);  /* OpenAI's usage chunk */
size_t telex_mock_wire_end(telex_mock_wire_t *w);    /* [DONE] / message_stop */
size_t telex_mock_wire_error_event(telex_mock_wire_t *w);
/* The whole (non-streamed) answer, malloc'd, or NULL (OOM). */
char *telex_mock_wire_whole(const telex_mock_spec_t *spec);

#endif
