/*
 * mock/exchange.c — one chat completion in flight, paced by a uv timer.
 *
 * An exchange owns a malloc'd struct with its uv_timer_t and h2o generator.
 * It is a small state machine driven by two events: the timer (the next
 * chunk is due) and h2o's `proceed` (the previous write is done; there is
 * never more than one write in flight, and its buffer lives in the
 * exchange until then). A stream is:
 *
 *   [ttft_ms] headers + role chunk · content 1 · [delay_ms] content 2 ...
 *   content N · finish chunk · usage chunk (when asked) · data: [DONE]
 *
 * Faults are keyed to "after K content chunks" and fire at the moment the
 * next chunk would have gone out: K = 0 is before the role chunk.
 *
 * Lifetime: h2o may dispose the request at any time (client gone, write
 * error, our own abrupt close). A ref-counted chunk in req->pool tells us
 * (on_request_disposed); from then on req is NULL, the timer is closed and
 * the struct is freed in the uv_close callback. Waits longer than
 * POLL_MS are split so an HTTP/1 client that left is noticed within
 * POLL_MS even during a stall (telex_client_has_gone); HTTP/2 resets and
 * write errors arrive through h2o.
 */
#include "mock/mock_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define POLL_MS 200
#define DEFAULT_OVERSIZE (2 * 1024 * 1024)

enum { PHASE_STATUS, PHASE_WHOLE, PHASE_STREAM };

struct telex_mock_exchange {
    h2o_generator_t generator;
    uv_timer_t timer;
    telex_mock_worker_t *w;
    h2o_req_t *req; /* NULL once h2o has disposed of the request */
    telex_mock_spec_t spec;
    telex_mock_progress_t progress;
    telex_mock_exchange_t *prev, *next;
    int phase;
    int pending_write; /* h2o_send issued, proceed not yet called */
    int ended;         /* final / error state sent, or request gone */
    int in_step;
    int role_sent, finish_sent, usage_sent;
    int fault_done[TELEX_MOCK_FAULT_COUNT];
    int64_t content_sent;
    uint64_t due;         /* uv_now() ms when the next chunk may go */
    uint64_t stall_until; /* 0 = not stalled */
    uint64_t armed_ms;
    char *prefix; /* `data: {"id":...,"choices":[` */
    size_t prefix_len;
    char *buf; /* the event being written */
    size_t cap;
    char *big; /* oversize event */
};

static void step(telex_mock_exchange_t *x);

static telex_mock_journal_t *journal_of(telex_mock_exchange_t *x)
{
    return x->w->mock->journal;
}

static void record(telex_mock_exchange_t *x)
{
    telex_mock_journal_update(journal_of(x), x->spec.seq, &x->progress);
}

/* ------------------------------------------------------------ lifetime */

static void on_timer_closed(uv_handle_t *handle)
{
    telex_mock_exchange_t *x = handle->data;
    telex_mock_worker_t *w = x->w;
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        w->first = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    w->active--;
    telex_mock_spec_free(&x->spec);
    free(x->prefix);
    free(x->buf);
    free(x->big);
    free(x);
}

static void mark_gone(telex_mock_exchange_t *x)
{
    if (x->ended)
        return;
    x->ended = 1;
    int64_t now = telex_mock_unix_ms();
    x->progress.client_gone = 1;
    x->progress.gone_at_ms = now;
    x->progress.ended_ms = now;
    x->progress.outcome = "client_gone";
    record(x);
}

static void on_request_disposed(void *p)
{
    telex_mock_exchange_t *x = *(telex_mock_exchange_t **)p;
    mark_gone(x);
    x->req = NULL;
    uv_timer_stop(&x->timer);
    uv_close((uv_handle_t *)&x->timer, on_timer_closed);
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    telex_mock_exchange_t *x = H2O_STRUCT_FROM_MEMBER(telex_mock_exchange_t, generator, gen);
    x->pending_write = 0;
    step(x);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    /* h2o gave up on the response: the connection or stream went away. */
    mark_gone(H2O_STRUCT_FROM_MEMBER(telex_mock_exchange_t, generator, gen));
}

static void on_timer(uv_timer_t *timer)
{
    telex_mock_exchange_t *x = timer->data;
    if (x->req == NULL || x->ended || x->pending_write)
        return;
    /* A long wait is sliced into POLL_MS ticks: look whether the client left. */
    if ((x->armed_ms == POLL_MS || x->stall_until != 0) && telex_client_has_gone(x->req)) {
        mark_gone(x);
        h2o_send(x->req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    step(x);
}

static void arm(telex_mock_exchange_t *x, uint64_t ms)
{
    x->armed_ms = ms < POLL_MS ? ms : POLL_MS;
    uv_timer_start(&x->timer, on_timer, x->armed_ms, 0);
}

/* ------------------------------------------------------------- writing */

static void finish(telex_mock_exchange_t *x, const char *outcome, int completed)
{
    x->ended = 1;
    x->progress.completed = completed;
    x->progress.outcome = outcome;
    x->progress.ended_ms = telex_mock_unix_ms();
    record(x);
}

static void send_bytes(telex_mock_exchange_t *x, const char *data, size_t len, h2o_send_state_t state)
{
    h2o_iovec_t iov = h2o_iovec_init(data, len);
    x->progress.events++;
    if (state == H2O_SEND_STATE_IN_PROGRESS)
        x->pending_write = 1;
    record(x);
    h2o_send(x->req, &iov, 1, state);
}

/* Ends the response abruptly, like an upstream that crashed. For HTTP/1
 * the socket is shut down first: h2o would otherwise append a deliberately
 * broken chunk, and a dead upstream sends nothing more (the client sees the
 * last complete event, then EOF in the middle of the chunked body). For
 * HTTP/2, h2o resets the stream. */
static void cut(telex_mock_exchange_t *x, const char *outcome)
{
    finish(x, outcome, 0);
    h2o_req_t *req = x->req;
    if (req->version < 0x200 && req->conn->callbacks->get_socket != NULL) {
        h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
        int fd = sock != NULL ? h2o_socket_get_fd(sock) : -1;
        if (fd >= 0)
            shutdown(fd, SHUT_RDWR);
    }
    h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR); /* may dispose req at once */
}

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Builds `prefix choices ] [usage:null] [mock_sent_ns] }\n\n` in x->buf. */
static size_t chunk(telex_mock_exchange_t *x, const char *choices, size_t choices_len, const char *usage)
{
    size_t n = 0;
    memcpy(x->buf, x->prefix, x->prefix_len);
    n += x->prefix_len;
    memcpy(x->buf + n, choices, choices_len);
    n += choices_len;
    x->buf[n++] = ']';
    if (usage != NULL)
        n += (size_t)snprintf(x->buf + n, x->cap - n, ",\"usage\":%s", usage);
    if (x->spec.stamp)
        n += (size_t)snprintf(x->buf + n, x->cap - n, ",\"mock_sent_ns\":%lld", (long long)monotonic_ns());
    memcpy(x->buf + n, "}\n\n", 3);
    return n + 3;
}

static const char *usage_null(telex_mock_exchange_t *x)
{
    return x->spec.include_usage ? "null" : NULL;
}

static void send_role(telex_mock_exchange_t *x)
{
    static const char c[] = "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},"
                            "\"logprobs\":null,\"finish_reason\":null}";
    size_t n = chunk(x, c, sizeof(c) - 1, usage_null(x));
    send_bytes(x, x->buf, n, H2O_SEND_STATE_IN_PROGRESS);
}

static void send_content(telex_mock_exchange_t *x, size_t i)
{
    char scratch[32];
    size_t tl;
    const char *tok = telex_mock_answer_token(&x->spec.answer, i, scratch, &tl);
    /* The choice is built in place after the prefix (the token escaped
     * straight into the buffer), then the prefix and the tail around it. */
    static const char open[] = "{\"index\":0,\"delta\":{\"content\":\"";
    static const char close[] = "\"},\"logprobs\":null,\"finish_reason\":null}";
    char *c = x->buf + x->prefix_len;
    size_t n = 0;
    memcpy(c, open, sizeof(open) - 1);
    n += sizeof(open) - 1;
    n += telex_mock_json_escape(c + n, tok, tl);
    memcpy(c + n, close, sizeof(close) - 1);
    n += sizeof(close) - 1;
    memcpy(x->buf, x->prefix, x->prefix_len);
    size_t m = x->prefix_len + n;
    x->buf[m++] = ']';
    if (x->spec.include_usage) {
        memcpy(x->buf + m, ",\"usage\":null", 13);
        m += 13;
    }
    if (x->spec.stamp)
        m += (size_t)snprintf(x->buf + m, x->cap - m, ",\"mock_sent_ns\":%lld", (long long)monotonic_ns());
    memcpy(x->buf + m, "}\n\n", 3);
    send_bytes(x, x->buf, m + 3, H2O_SEND_STATE_IN_PROGRESS);
}

static void send_finish(telex_mock_exchange_t *x)
{
    static const char c[] = "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}";
    size_t n = chunk(x, c, sizeof(c) - 1, usage_null(x));
    send_bytes(x, x->buf, n, H2O_SEND_STATE_IN_PROGRESS);
}

static void send_usage(telex_mock_exchange_t *x)
{
    char u[160];
    long long p = (long long)x->spec.prompt_tokens, c = (long long)x->spec.answer.count;
    snprintf(u, sizeof(u), "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld}", p, c, p + c);
    size_t n = chunk(x, "", 0, u);
    send_bytes(x, x->buf, n, H2O_SEND_STATE_IN_PROGRESS);
}

/* A line that is no event-stream field: invalid UTF-8, no colon, no data. */
static const char malformed_event[] = "\xff\xfe\xc3\x28 mock: malformed event-stream line\n\n";
static const char invalid_json_event[] = "data: {not json\n\n";

static int send_oversize(telex_mock_exchange_t *x)
{
    size_t total = (size_t)(x->spec.oversize_bytes > 0 ? x->spec.oversize_bytes : DEFAULT_OVERSIZE);
    static const char head[] = "data: {\"mock_padding\":\"";
    static const char tail[] = "\"}\n\n";
    if (total < sizeof(head) + sizeof(tail))
        total = sizeof(head) + sizeof(tail);
    if ((x->big = malloc(total)) == NULL)
        return -1;
    memcpy(x->big, head, sizeof(head) - 1);
    memset(x->big + sizeof(head) - 1, 'x', total - (sizeof(head) - 1) - (sizeof(tail) - 1));
    memcpy(x->big + total - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
    send_bytes(x, x->big, total, H2O_SEND_STATE_IN_PROGRESS);
    return 0;
}

/* ------------------------------------------------------------- phases */

/* Applies the faults due after `content_sent` chunks. Returns 1 when one
 * fired and the step must look again (event sent or stall begun), -1 when
 * the exchange ended, 0 when none. */
static int apply_fault(telex_mock_exchange_t *x, uint64_t now)
{
    for (int f = 0; f < TELEX_MOCK_FAULT_COUNT; f++) {
        if (x->fault_done[f] || x->spec.fault_at[f] != x->content_sent)
            continue;
        x->fault_done[f] = 1;
        switch (f) {
        case TELEX_MOCK_FAULT_MALFORMED:
            send_bytes(x, malformed_event, sizeof(malformed_event) - 1, H2O_SEND_STATE_IN_PROGRESS);
            return 1;
        case TELEX_MOCK_FAULT_INVALID_JSON:
            send_bytes(x, invalid_json_event, sizeof(invalid_json_event) - 1, H2O_SEND_STATE_IN_PROGRESS);
            return 1;
        case TELEX_MOCK_FAULT_OVERSIZE:
            if (send_oversize(x) != 0) {
                cut(x, "out_of_memory");
                return -1;
            }
            return 1;
        case TELEX_MOCK_FAULT_STALL:
            if (x->spec.stall_ms <= 0)
                continue;
            x->stall_until = now + (uint64_t)x->spec.stall_ms;
            x->progress.outcome = "stalled";
            record(x);
            return 1;
        default:
            cut(x, "cut");
            return -1;
        }
    }
    return 0;
}

/* When the next content chunk is due. Chunks keep to the planned timeline
 * (previous due + delay), so timer lateness does not add up over a long
 * answer; but when the loop is far behind, a gap is never shorter than
 * half the delay — catching up never turns into a burst. */
static uint64_t next_due(const telex_mock_exchange_t *x, uint64_t now)
{
    uint64_t delay = (uint64_t)x->spec.delay_ms;
    uint64_t planned = x->due + delay;
    return planned >= now + delay / 2 ? planned : now + delay / 2;
}

/* Sends the next stream event. Returns 1 when something was sent. */
static int stream_next(telex_mock_exchange_t *x, uint64_t now)
{
    if (!x->finish_sent) {
        int r = apply_fault(x, now);
        if (r != 0)
            return r > 0;
    }
    if (!x->role_sent) {
        x->role_sent = 1;
        send_role(x);
        return 1; /* content 1 follows at once: x->due has passed */
    }
    if ((size_t)x->content_sent < x->spec.answer.count) {
        send_content(x, (size_t)x->content_sent);
        x->content_sent++;
        x->progress.content_events = x->content_sent;
        if ((size_t)x->content_sent < x->spec.answer.count)
            x->due = next_due(x, now);
        return 1;
    }
    if (!x->finish_sent) {
        x->finish_sent = 1;
        send_finish(x);
        return 1;
    }
    if (x->spec.include_usage && x->spec.usage && !x->usage_sent) {
        x->usage_sent = 1;
        send_usage(x);
        return 1;
    }
    finish(x, "completed", 1);
    if (x->spec.no_done) {
        h2o_send(x->req, NULL, 0, H2O_SEND_STATE_FINAL);
    } else {
        static const char done[] = "data: [DONE]\n\n";
        send_bytes(x, done, sizeof(done) - 1, H2O_SEND_STATE_FINAL);
    }
    return 0;
}

static void send_whole(telex_mock_exchange_t *x)
{
    h2o_req_t *req = x->req;
    if (x->spec.fault_at[TELEX_MOCK_FAULT_CUT] >= 0) {
        req->res.status = 200;
        req->res.reason = "OK";
        h2o_start_response(req, &x->generator);
        cut(x, "cut");
        return;
    }
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    if (x->spec.fault_at[TELEX_MOCK_FAULT_INVALID_JSON] >= 0) {
        finish(x, "completed", 1);
        req->res.content_length = 9;
        h2o_send_inline(req, H2O_STRLIT("{not json"));
        return;
    }
    size_t len = 0;
    char *text = telex_mock_answer_join(&x->spec.answer, &len);
    json_t *o = json_object(), *choice = json_object(), *msg = json_object(), *choices = json_array();
    char *body = NULL;
    char id[48];
    snprintf(id, sizeof(id), "chatcmpl-mock-%llu", (unsigned long long)x->spec.seq);
    if (text != NULL && o != NULL && choice != NULL && msg != NULL && choices != NULL) {
        json_object_set_new(o, "id", json_string(id));
        json_object_set_new(o, "object", json_string("chat.completion"));
        json_object_set_new(o, "created", json_integer(x->spec.created));
        json_object_set_new(o, "model", json_string(x->spec.model));
        json_object_set_new(o, "system_fingerprint", json_string("fp_mock"));
        json_object_set_new(msg, "role", json_string("assistant"));
        json_object_set_new(msg, "content", json_stringn(text, len));
        json_object_set_new(msg, "refusal", json_null());
        json_object_set_new(choice, "index", json_integer(0));
        json_object_set(choice, "message", msg);
        json_object_set_new(choice, "logprobs", json_null());
        json_object_set_new(choice, "finish_reason", json_string("stop"));
        json_array_append(choices, choice);
        json_object_set(o, "choices", choices);
        if (x->spec.usage) {
            json_int_t p = x->spec.prompt_tokens, c = (json_int_t)x->spec.answer.count;
            json_object_set_new(o, "usage", json_pack("{sI,sI,sI}", "prompt_tokens", p, "completion_tokens", c,
                                                      "total_tokens", p + c));
        }
        if (x->spec.stamp)
            json_object_set_new(o, "mock_sent_ns", json_integer(monotonic_ns()));
        body = json_dumps(o, JSON_COMPACT);
    }
    free(text);
    json_decref(o);
    json_decref(choice);
    json_decref(msg);
    json_decref(choices);
    if (body == NULL) {
        finish(x, "out_of_memory", 0);
        req->res.headers = (h2o_headers_t){NULL, 0, 0};
        telex_mock_reply_error(req, 500, "mock: out of memory", "server_error", NULL, NULL, -1);
        return;
    }
    finish(x, "completed", 1);
    req->res.content_length = strlen(body);
    h2o_send_inline(req, body, strlen(body));
    free(body);
}

static void send_status(telex_mock_exchange_t *x)
{
    int status = (int)x->spec.status;
    char msg[96];
    snprintf(msg, sizeof(msg), "mock: injected HTTP status %d", status);
    const char *type = status == 429 ? "rate_limit_error"
                       : status == 401 ? "authentication_error"
                       : status == 403 ? "permission_error"
                       : status == 404 ? "not_found_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    const char *code = status == 429 ? "rate_limit_exceeded" : NULL;
    finish(x, "status", 1);
    telex_mock_reply_error(x->req, status, msg, type, NULL, code, x->spec.retry_after);
}

/* Does what is due now. Returns 1 when it wrote (the caller loops while
 * nothing is pending), 0 when it is waiting or done. */
static int step_once(telex_mock_exchange_t *x)
{
    uint64_t now = uv_now(x->w->loop);
    if (x->w->shutting_down) {
        cut(x, "shutdown");
        return 0;
    }
    if (x->stall_until != 0) {
        if (now < x->stall_until) {
            arm(x, x->stall_until - now);
            return 0;
        }
        x->stall_until = 0;
        x->due = now; /* the timeline restarts after a stall */
        x->progress.outcome = "in_progress";
        record(x);
    }
    if (now < x->due) {
        arm(x, x->due - now);
        return 0;
    }
    switch (x->phase) {
    case PHASE_STATUS:
        send_status(x);
        return 0;
    case PHASE_WHOLE:
        if (!x->fault_done[TELEX_MOCK_FAULT_STALL] && x->spec.fault_at[TELEX_MOCK_FAULT_STALL] >= 0 &&
            x->spec.stall_ms > 0) {
            x->fault_done[TELEX_MOCK_FAULT_STALL] = 1;
            x->stall_until = now + (uint64_t)x->spec.stall_ms;
            x->progress.outcome = "stalled";
            record(x);
            return 1;
        }
        send_whole(x);
        return 0;
    default:
        return stream_next(x, now);
    }
}

static void step(telex_mock_exchange_t *x)
{
    if (x->in_step)
        return; /* a proceed from inside h2o_send: the loop below goes on */
    x->in_step = 1;
    while (x->req != NULL && !x->ended && !x->pending_write)
        if (!step_once(x))
            break;
    x->in_step = 0;
}

/* --------------------------------------------------------------- start */

static char *make_prefix(const telex_mock_spec_t *spec, size_t *len)
{
    size_t ml = strlen(spec->model);
    size_t cap = 200 + 6 * ml;
    char *p = malloc(cap);
    if (p == NULL)
        return NULL;
    int n = snprintf(p, cap, "data: {\"id\":\"chatcmpl-mock-%llu\",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":\"",
                     (unsigned long long)spec->seq, (long long)spec->created);
    size_t m = (size_t)n;
    m += telex_mock_json_escape(p + m, spec->model, ml);
    static const char rest[] = "\",\"system_fingerprint\":\"fp_mock\",\"choices\":[";
    memcpy(p + m, rest, sizeof(rest) - 1);
    m += sizeof(rest) - 1;
    *len = m;
    return p;
}

void telex_mock_exchange_start(telex_mock_worker_t *w, h2o_req_t *req, telex_mock_spec_t *spec)
{
    telex_mock_exchange_t *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        telex_mock_spec_free(spec);
        telex_mock_reply_error(req, 500, "mock: out of memory", "server_error", NULL, NULL, -1);
        return;
    }
    x->spec = *spec;
    memset(spec, 0, sizeof(*spec));
    x->prefix = make_prefix(&x->spec, &x->prefix_len);
    x->cap = x->prefix_len + 256 + 6 * x->spec.answer.max_raw_len;
    x->buf = malloc(x->cap);
    if (x->prefix == NULL || x->buf == NULL) {
        telex_mock_spec_free(&x->spec);
        free(x->prefix);
        free(x->buf);
        free(x);
        telex_mock_reply_error(req, 500, "mock: out of memory", "server_error", NULL, NULL, -1);
        return;
    }
    x->w = w;
    x->req = req;
    x->generator.proceed = on_proceed;
    x->generator.stop = on_stop;
    x->progress.status = x->spec.status != 0 ? (int)x->spec.status : 200;
    x->progress.outcome = "in_progress";
    x->phase = x->spec.status != 0 ? PHASE_STATUS : x->spec.stream ? PHASE_STREAM : PHASE_WHOLE;
    x->due = uv_now(w->loop) + (uint64_t)x->spec.ttft_ms;
    uv_timer_init(w->loop, &x->timer);
    x->timer.data = x;
    x->next = w->first;
    if (w->first != NULL)
        w->first->prev = x;
    w->first = x;
    w->active++;
    telex_mock_exchange_t **ref = h2o_mem_alloc_shared(&req->pool, sizeof(*ref), on_request_disposed);
    *ref = x;

    if (x->phase == PHASE_STREAM) {
        /* h2o 2.2 writes the headers together with the first event. */
        req->res.status = 200;
        req->res.reason = "OK";
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/event-stream"));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
        h2o_start_response(req, &x->generator);
    }
    step(x);
}

static void on_shutdown_tick(uv_timer_t *timer)
{
    telex_mock_exchange_t *x = timer->data;
    step(x);
}

void telex_mock_exchange_shutdown(telex_mock_worker_t *w)
{
    w->shutting_down = 1;
    for (telex_mock_exchange_t *x = w->first; x != NULL; x = x->next)
        if (x->req != NULL && !x->ended)
            uv_timer_start(&x->timer, on_shutdown_tick, 0, 0);
}
