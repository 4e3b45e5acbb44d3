/*
 * fuzz_provider_stream.c — libFuzzer target for the provider-response path:
 * the bytes of an OpenAI-compatible provider's response body through
 * upstream/sse_upstream.c (the line check, libtelex's parser within
 * max_event_bytes, error and plain bodies) and upstream/openai.c (the chunk
 * scanner with its memo, [DONE], error events, the finish of every choice),
 * compiled in here with the JSON loader and scanner. The HTTP client is not:
 * the target plays it (status, Content-Type, body pieces, the end), so the
 * calls the transport makes into it are stubbed below.
 *
 * Input: two flag bytes, then the body. Flag 0: bits 0-1 the request's n
 * (1-4), bit 2 a plain (non-stream) request, bit 3 an error status (4xx),
 * bit 4 the Content-Type is not an event stream, bit 5 the connection
 * breaks at the end instead of ending cleanly. Flag 1 seeds the piece
 * sizes. Each run checks, aborting on any difference:
 *
 *  1. The sink's contract (provider.h): chunks only before one final report
 *     (done, failure or response), exactly one final report per call; a
 *     relayed chunk is a JSON object as telex's loader reads it (and equals
 *     the tree passed with it) — or a valid one the loader refuses (a number
 *     beyond json_int_t or a double, \u0000, a lone surrogate: jansson's
 *     limits, relayed as sent), which the scan's facts must then flag
 *     (finish_odd); the facts say "no line breaks" only when it has
 *     none; a failure has a message and a valid kind.
 *  2. Splitting never matters: the transcript (every chunk's bytes, the
 *     final report, its kind, status and message) is the same for the body
 *     in one piece, in flag-driven pieces (exact-size copies, so reads past
 *     a piece are caught) and one byte at a time.
 *
 * Build and run: `make fuzz FUZZ_SECONDS=N` (clang, -fsanitize=fuzzer,
 * address,undefined; seeds in tests/fuzz/corpus_provider_stream/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/upstream/sse_upstream.c"
#include "../../src/upstream/openai.c"
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

/* ---- the HTTP client, played by the target ----------------------------- */

static int call_token; /* what u->call points to while the "connection" is open */

telex_http_call_t *telex_http_call_start(telex_http_client_t *client, const telex_http_request_t *request,
                                         const telex_http_call_handlers_t *handlers, void *user)
{
    (void)client, (void)request, (void)handlers, (void)user;
    return NULL; /* never called: the target starts the call itself */
}
void telex_http_call_pause(telex_http_call_t *call) { (void)call; }
void telex_http_call_resume(telex_http_call_t *call) { (void)call; }
void telex_http_call_cancel(telex_http_call_t *call) { REQUIRE(call == (telex_http_call_t *)&call_token); }
void telex_http_call_drain(telex_http_call_t *call) { REQUIRE(call == (telex_http_call_t *)&call_token); }
/* fail_soon's timer: never used here */
int uv_timer_init(uv_loop_t *loop, uv_timer_t *handle) { (void)loop, (void)handle; abort(); }
int uv_timer_start(uv_timer_t *handle, uv_timer_cb cb, uint64_t timeout, uint64_t repeat)
{
    (void)handle, (void)cb, (void)timeout, (void)repeat;
    abort();
}
void uv_close(uv_handle_t *handle, uv_close_cb close_cb) { (void)handle, (void)close_cb; abort(); }

/* ---- the sink ---------------------------------------------------------- */

enum { NONE, DONE, FAILURE, RESPONSE };

typedef struct {
    const char *body; /* the whole body (chunk data must lie in what was fed; checked by content) */
    size_t body_len;
    char *chunks; /* every chunk's bytes, each followed by '\n' */
    size_t chunks_len;
    size_t n_chunks;
    int final;
    int kind, status;
    char message[600];
    size_t response_len;
    int in_batch; /* between on_batch(1) and on_batch(0) */
} rec_t;

static void sink_chunk(void *user, const char *data, size_t len, json_t *chunk, const telex_json_facts_t *facts)
{
    rec_t *r = user;
    REQUIRE(r->final == NONE);
    REQUIRE(len > 0 && len <= r->body_len); /* an event's data lines joined: never longer than the body */
    json_t *j = telex_json_loadb(data, len, 0, NULL);
    REQUIRE(j != NULL ? json_is_object(j) : chunk == NULL && facts != NULL && facts->finish_odd);
    if (chunk != NULL)
        REQUIRE(json_equal(chunk, j));
    json_decref(j);
    if (facts != NULL && !facts->line_breaks)
        REQUIRE(memchr(data, '\n', len) == NULL && memchr(data, '\r', len) == NULL);
    r->chunks = realloc(r->chunks, r->chunks_len + len + 1);
    REQUIRE(r->chunks != NULL);
    memcpy(r->chunks + r->chunks_len, data, len);
    r->chunks[r->chunks_len + len] = '\n';
    r->chunks_len += len + 1;
    r->n_chunks++;
}

static void sink_done(void *user)
{
    rec_t *r = user;
    REQUIRE(r->final == NONE);
    r->final = DONE;
}

static void sink_failure(void *user, const telex_upstream_failure_t *f)
{
    rec_t *r = user;
    REQUIRE(r->final == NONE);
    REQUIRE(f->message != NULL && f->message[0] != '\0');
    REQUIRE(f->kind >= TELEX_UPSTREAM_CONNECT && f->kind <= TELEX_UPSTREAM_ERROR_EVENT);
    REQUIRE(f->retry_after != NULL);
    r->final = FAILURE;
    r->kind = (int)f->kind;
    r->status = f->status;
    snprintf(r->message, sizeof(r->message), "%s", f->message);
}

static void sink_response(void *user, int status, const char *body, size_t len)
{
    rec_t *r = user;
    REQUIRE(r->final == NONE);
    REQUIRE(len <= r->body_len && (len == 0 || memcmp(body, r->body, len) == 0));
    r->final = RESPONSE;
    r->status = status;
    r->response_len = len;
}

/* on_batch's contract (provider.h): begin and end alternate, and the end
 * comes only while the call is still running. */
static void sink_batch(void *user, int begin)
{
    rec_t *r = user;
    REQUIRE(r->final == NONE);
    REQUIRE(r->in_batch == !begin);
    r->in_batch = begin;
}

static const telex_upstream_sink_t sink = {sink_chunk, sink_done, sink_failure, sink_response, sink_batch};

/* ---- one call ---------------------------------------------------------- */

static uint64_t rng;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

enum { WHOLE, PIECES, BYTES };

static void run(uint8_t flags, uint8_t seed, const char *body, size_t len, int mode, rec_t *r)
{
    memset(r, 0, sizeof(*r));
    r->body = body;
    r->body_len = len;
    openai_t *o = calloc(1, sizeof(*o));
    REQUIRE(o != NULL);
    o->n_choices = 1 + (flags & 3);
    telex_upstream_env_t env = {.loop = NULL, .http = NULL, .max_event_bytes = 2048, .max_response_bytes = 4096};
    int stream = !(flags & 4);
    telex_sse_upstream_t *u = telex_sse_upstream_new(&telex_openai_ops, &hooks, o, &env, &sink, r, stream);
    REQUIRE(u != NULL);
    u->call = (telex_http_call_t *)&call_token;
    long status = flags & 8 ? 400 + (seed % 100) : 200;
    on_response(u, status, flags & 16 ? "application/json" : "text/event-stream", flags & 8 ? "7" : "");
    /* a failure frees u as soon as its frames unwind (call cancelled) */
    rng = 0x9E3779B97F4A7C15u ^ seed ^ ((uint64_t)len << 16);
    size_t max_piece = (size_t)1 << (seed % 9);
    for (size_t at = 0; at < len && r->final == NONE;) {
        size_t n = mode == WHOLE ? len : mode == BYTES ? 1 : 1 + (size_t)(rnd() % max_piece);
        if (n > len - at)
            n = len - at;
        char *copy = malloc(n);
        REQUIRE(copy != NULL);
        memcpy(copy, body + at, n);
        on_body(u, copy, n);
        free(copy);
        at += n;
    }
    if (r->final == NONE)
        on_complete(u, flags & 32 ? "connection reset by peer" : NULL, 0); /* frees u */
    /* else: reported from on_body or on_response, which cancelled (or
     * drained) the call and freed u */
    REQUIRE(r->final != NONE);
}

static void same(const rec_t *a, const rec_t *b)
{
    REQUIRE(a->final == b->final);
    REQUIRE(a->n_chunks == b->n_chunks && a->chunks_len == b->chunks_len);
    REQUIRE(a->chunks_len == 0 || memcmp(a->chunks, b->chunks, a->chunks_len) == 0);
    REQUIRE(a->kind == b->kind && a->status == b->status);
    REQUIRE(strcmp(a->message, b->message) == 0);
    REQUIRE(a->response_len == b->response_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t flags = data[0], seed = data[1];
    const char *body = (const char *)data + 2;
    size_t len = size - 2;
    rec_t whole, pieces, bytes;
    run(flags, seed, body, len, WHOLE, &whole);
    run(flags, seed, body, len, PIECES, &pieces);
    same(&whole, &pieces);
    if (len <= 4096) {
        run(flags, seed, body, len, BYTES, &bytes);
        same(&whole, &bytes);
        free(bytes.chunks);
    }
    free(whole.chunks);
    free(pieces.chunks);
    return 0;
}
