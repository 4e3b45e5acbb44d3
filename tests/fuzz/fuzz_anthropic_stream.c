/*
 * fuzz_anthropic_stream.c — libFuzzer target for the Anthropic event →
 * chat-chunk mapping (src/upstream/anthropic_stream.c, and the JSON loader
 * and writer under it, compiled in here).
 *
 * Input: one flag byte, then what an Anthropic provider sends as its event
 * stream. The bytes go through libtelex's SSE parser (as sse_upstream.c
 * feeds them, within a 64 KiB event limit); every event goes to
 * telex_anthropic_stream_event with its `event:` type; a stream that ends
 * without DONE or FAILED goes to telex_anthropic_stream_eof. Each run checks,
 * aborting on any difference:
 *
 *  1. Every chunk appended is a JSON object with object
 *     "chat.completion.chunk", a string id, an integer created (the one
 *     given), a string model and an array of choices; each choice has index
 *     0 and a delta object; tool-call deltas carry an index below the
 *     number of tool_use blocks started; telex's writer and loader round
 *     trip it (json_equal).
 *  2. FAILED leaves a non-empty message and a failure kind; nothing is
 *     appended after DONE or FAILED (the caller stops), and DONE ends with
 *     the usage chunk (choices: []) when usage was seen, else with a chunk
 *     that has a finish_reason.
 *  3. Splitting never matters: the same chunks (as text) and the same end
 *     for the whole input fed at once and fed in pieces of flag-driven sizes.
 *  4. The whole input, taken as a plain Messages answer, gives a
 *     chat.completion or NULL with a message; as an error body, an OpenAI
 *     error object with a string message.
 *
 * Build and run: `make fuzz FUZZ_SECONDS=N` (clang, -fsanitize=fuzzer,
 * address,undefined; seeds in tests/fuzz/corpus_anthropic_stream/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <telex/sse.h>

#include "../../src/upstream/anthropic_stream.c"
#include "../../src/util/json_dump.c"
#include "../../src/util/json_load.c"
#include "../../src/util/json_scan.c"

#define REQUIRE(cond)                                                                                                  \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);                               \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

#define CREATED 1700000000

typedef struct {
    telex_anthropic_stream_t s;
    json_t *out;    /* every chunk, in order */
    int result;     /* TELEX_ANTHROPIC_* of the last event; 2 = eof complete, 3 = eof cut */
    int stopped;    /* DONE or FAILED: the caller stops feeding */
    char message[256];
} run_t;

static void check_chunk(const run_t *r, json_t *c)
{
    REQUIRE(json_is_object(c));
    REQUIRE(json_is_string(json_object_get(c, "id")));
    REQUIRE(strcmp(json_string_value(json_object_get(c, "object")), "chat.completion.chunk") == 0);
    REQUIRE(json_integer_value(json_object_get(c, "created")) == CREATED);
    REQUIRE(json_is_string(json_object_get(c, "model")));
    json_t *choices = json_object_get(c, "choices");
    REQUIRE(json_is_array(choices));
    size_t i;
    json_t *choice;
    json_array_foreach(choices, i, choice)
    {
        REQUIRE(json_integer_value(json_object_get(choice, "index")) == 0);
        json_t *delta = json_object_get(choice, "delta");
        REQUIRE(json_is_object(delta));
        json_t *calls = json_object_get(delta, "tool_calls");
        size_t k;
        json_t *call;
        json_array_foreach(calls, k, call)
        {
            json_int_t index = json_integer_value(json_object_get(call, "index"));
            REQUIRE(index >= 0 && index < r->s.n_tools);
        }
    }
    char *text = telex_json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER);
    REQUIRE(text != NULL);
    json_t *back = telex_json_loadb(text, strlen(text), 0, NULL);
    REQUIRE(back != NULL && json_equal(back, c));
    json_decref(back);
    free(text);
}

static int on_event(void *user, const telex_sse_event_t *ev)
{
    run_t *r = user;
    REQUIRE(!r->stopped);
    size_t before = json_array_size(r->out);
    telex_upstream_failure_kind_t kind = (telex_upstream_failure_kind_t)-1;
    r->message[0] = '\0';
    /* as upstream/anthropic.c passes them */
    int rc = telex_anthropic_stream_event(&r->s, ev->type, ev->type_len, ev->data, ev->data_len, r->out, &kind, r->message,
                                          sizeof(r->message));
    for (size_t i = before; i < json_array_size(r->out); i++)
        check_chunk(r, json_array_get(r->out, i));
    r->result = rc;
    if (rc == TELEX_ANTHROPIC_FAILED) {
        REQUIRE(r->message[0] != '\0');
        REQUIRE(kind == TELEX_UPSTREAM_BAD_JSON || kind == TELEX_UPSTREAM_PROTOCOL ||
                kind == TELEX_UPSTREAM_ERROR_EVENT);
        r->stopped = 1;
    } else if (rc == TELEX_ANTHROPIC_DONE) {
        /* the usage chunk when usage was seen; else the finish chunk */
        json_t *last = json_array_get(r->out, json_array_size(r->out) - 1);
        REQUIRE(last != NULL);
        json_t *choices = json_object_get(last, "choices");
        if (r->s.has_usage)
            REQUIRE(json_array_size(choices) == 0 && json_is_object(json_object_get(last, "usage")));
        else
            REQUIRE(json_is_string(json_object_get(json_array_get(choices, 0), "finish_reason")));
        r->stopped = 1;
    } else {
        REQUIRE(rc == TELEX_ANTHROPIC_CONTINUE);
    }
    return r->stopped; /* stop the parser */
}

/* Feeds in[0..len) in pieces (0: all at once); fills r. Returns the chunks
 * as one text, for comparison. */
static char *run(const uint8_t *in, size_t len, size_t piece, run_t *r)
{
    memset(r, 0, sizeof(*r));
    telex_anthropic_stream_init(&r->s, CREATED);
    r->out = json_array();
    telex_sse_callbacks_t cb = {.on_event = on_event};
    telex_sse_parser_t *p = telex_sse_parser_new(64 * 1024, &cb, r);
    REQUIRE(p != NULL && r->out != NULL);
    int rc = 0;
    for (size_t at = 0; at < len && !r->stopped && rc == 0;) {
        size_t n = piece == 0 || len - at < piece ? len - at : piece;
        char *copy = malloc(n); /* exact size: reads past a feed are caught */
        REQUIRE(copy != NULL);
        memcpy(copy, in + at, n);
        rc = telex_sse_parser_feed(p, copy, n);
        free(copy);
        at += n;
    }
    if (!r->stopped && rc == 0) {
        /* the body ended cleanly (a last event without its blank line is
         * dropped, as the WHATWG rules say) */
        size_t before = json_array_size(r->out);
        r->result = telex_anthropic_stream_eof(&r->s, r->out) ? 2 : 3;
        for (size_t i = before; i < json_array_size(r->out); i++)
            check_chunk(r, json_array_get(r->out, i));
    } else if (rc != 0 && rc != TELEX_SSE_ESTOPPED) {
        r->result = 100 + rc; /* the parser's error (an event over the limit) */
    }
    telex_sse_parser_free(p);
    char *text = telex_json_dumps(r->out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    REQUIRE(text != NULL);
    json_decref(r->out);
    telex_anthropic_stream_free(&r->s);
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = 1 + data[0] % 64;
    const uint8_t *in = data + 1;
    size_t len = size - 1;

    run_t whole, pieces;
    char *a = run(in, len, 0, &whole);
    char *b = run(in, len, piece, &pieces);
    REQUIRE(strcmp(a, b) == 0);
    REQUIRE(whole.result == pieces.result);
    REQUIRE(strcmp(whole.message, pieces.message) == 0);
    free(a);
    free(b);

    /* 4. the same bytes as a plain answer and as an error body */
    json_t *answer = telex_json_loadb((const char *)in, len, 0, NULL);
    if (answer != NULL) {
        char message[256] = "";
        json_t *completion = telex_anthropic_response(answer, CREATED, message, sizeof(message));
        if (completion != NULL) {
            REQUIRE(strcmp(json_string_value(json_object_get(completion, "object")), "chat.completion") == 0);
            REQUIRE(json_is_array(json_object_get(completion, "choices")));
            char *text = telex_json_dumps(completion, JSON_COMPACT);
            REQUIRE(text != NULL);
            free(text);
        } else {
            REQUIRE(message[0] != '\0');
        }
        json_decref(completion);
        json_decref(answer);
    }
    size_t out_len = 0;
    char *err = telex_anthropic_error_body(400 + data[0] % 200, (const char *)in, len, &out_len);
    REQUIRE(err != NULL);
    json_t *e = telex_json_loadb(err, out_len, 0, NULL);
    REQUIRE(e != NULL);
    REQUIRE(json_is_string(json_object_get(json_object_get(e, "error"), "message")));
    json_decref(e);
    free(err);
    return 0;
}
