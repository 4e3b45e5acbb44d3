/*
 * mock/exchange.c — one chat completion in flight, paced by a uv timer.
 *
 * An exchange owns a malloc'd struct with its uv_timer_t and h2o generator.
 * It is a small state machine driven by two events: the timer (the next
 * chunk is due) and h2o's `proceed` (the previous write is done; there is
 * never more than one write in flight, and its buffer lives in the
 * exchange until then). A stream is (wire.c writes each event in the
 * request's format, OpenAI's or Anthropic's):
 *
 *   [ttft_ms] headers + opening event (role chunk / message_start, ping)
 *   per segment (thinking, text, each tool call): its start event, then its
 *   content units · [delay_ms] · ..., then its end events
 *   finish event · usage chunk (OpenAI, when asked) · end ([DONE] / message_stop)
 *
 * Content units are paced: unit k+1 is due delay_ms after unit k was due;
 * the events between them go out at once. Faults are keyed to "after K
 * content units" and fire at the moment the next event would have gone
 * out: K = 0 is before the opening event.
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
#include "util/alloc.h"

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
    h2o_linklist_t link; /* in telex_mock_worker_t.exchanges */
    int phase;
    int pending_write; /* h2o_send issued, proceed not yet called */
    int ended;         /* final / error state sent, or request gone */
    int in_step;
    int opened, pinged, finish_sent, usage_sent;
    int fault_done[TELEX_MOCK_FAULT_COUNT];
    telex_mock_segment_t *segs;
    size_t n_segs;
    size_t seg;      /* current segment */
    int seg_state;   /* 0 not started, 1 units, 2 end part 0 sent */
    size_t seg_pos;  /* units of the current segment sent */
    int64_t units;   /* content units in the whole answer */
    int64_t content_sent;
    uint64_t due;         /* uv_now() ms when the next chunk may go */
    uint64_t stall_until; /* 0 = not stalled */
    uint64_t armed_ms;
    telex_mock_wire_t wire; /* the event being written lives in wire.buf */
    char *big;              /* oversize event */
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
    h2o_linklist_unlink(&x->link);
    w->active--;
    telex_mock_wire_free(&x->wire);
    free(x->segs);
    telex_mock_spec_free(&x->spec);
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

static void send_event(telex_mock_exchange_t *x, size_t len)
{
    send_bytes(x, x->wire.buf, len, H2O_SEND_STATE_IN_PROGRESS);
}

/* A line that is no event-stream field: invalid UTF-8, no colon, no data. */
static const char malformed_event[] = "\xff\xfe\xc3\x28 mock: malformed event-stream line\n\n";
static const char invalid_json_event[] = "data: {not json\n\n";

static void send_oversize(telex_mock_exchange_t *x)
{
    size_t total = (size_t)(x->spec.oversize_bytes > 0 ? x->spec.oversize_bytes : DEFAULT_OVERSIZE);
    static const char head[] = "data: {\"mock_padding\":\"";
    static const char tail[] = "\"}\n\n";
    if (total < sizeof(head) + sizeof(tail))
        total = sizeof(head) + sizeof(tail);
    x->big = telex_xmalloc(total);
    memcpy(x->big, head, sizeof(head) - 1);
    memset(x->big + sizeof(head) - 1, 'x', total - (sizeof(head) - 1) - (sizeof(tail) - 1));
    memcpy(x->big + total - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
    send_bytes(x, x->big, total, H2O_SEND_STATE_IN_PROGRESS);
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
            send_oversize(x);
            return 1;
        case TELEX_MOCK_FAULT_ERROR:
            finish(x, "error_event", 1);
            send_bytes(x, x->wire.buf, telex_mock_wire_error_event(&x->wire), H2O_SEND_STATE_FINAL);
            return -1;
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

/* The events of the current segment. Returns the bytes of the event to
 * send (in wire.buf), or 0 when the segments are all done. Sets *unit when
 * the event is a content unit. */
static size_t segment_event(telex_mock_exchange_t *x, int *unit)
{
    while (x->seg < x->n_segs) {
        const telex_mock_segment_t *seg = &x->segs[x->seg];
        size_t n = 0;
        if (x->seg_state == 0) {
            x->seg_state = 1;
            n = telex_mock_wire_segment_start(&x->wire, seg, x->seg);
        } else if (x->seg_state == 1 && x->seg_pos < seg->count) {
            n = telex_mock_wire_unit(&x->wire, seg, x->seg, x->seg_pos++);
            *unit = 1;
        } else if (x->seg_state == 1) {
            x->seg_state = 2;
            n = telex_mock_wire_segment_end(&x->wire, seg, x->seg, 0);
        } else {
            n = telex_mock_wire_segment_end(&x->wire, seg, x->seg, 1);
            x->seg++;
            x->seg_state = 0;
            x->seg_pos = 0;
        }
        if (n > 0)
            return n;
    }
    return 0;
}

/* Sends the next stream event. Returns 1 when something was sent. */
static int stream_next(telex_mock_exchange_t *x, uint64_t now)
{
    if (!x->finish_sent) {
        int r = apply_fault(x, now);
        if (r != 0)
            return r > 0;
    }
    if (!x->opened) {
        x->opened = 1;
        send_event(x, telex_mock_wire_open(&x->wire));
        return 1; /* the first unit follows at once: x->due has passed */
    }
    size_t n;
    if (!x->pinged) {
        x->pinged = 1;
        if ((n = telex_mock_wire_ping(&x->wire)) > 0) {
            send_event(x, n);
            return 1;
        }
    }
    int unit = 0;
    if ((n = segment_event(x, &unit)) > 0) {
        if (unit) {
            x->content_sent++;
            x->progress.content_events = x->content_sent;
            if (x->content_sent < x->units)
                x->due = next_due(x, now);
        }
        send_event(x, n);
        return 1;
    }
    if (!x->finish_sent) {
        x->finish_sent = 1;
        send_event(x, telex_mock_wire_finish(&x->wire));
        return 1;
    }
    if (x->spec.include_usage && x->spec.usage && !x->usage_sent) {
        x->usage_sent = 1;
        if ((n = telex_mock_wire_usage(&x->wire)) > 0) {
            send_event(x, n);
            return 1;
        }
    }
    finish(x, "completed", 1);
    if (x->spec.no_done) {
        h2o_send(x->req, NULL, 0, H2O_SEND_STATE_FINAL);
    } else {
        n = telex_mock_wire_end(&x->wire);
        send_bytes(x, x->wire.buf, n, H2O_SEND_STATE_FINAL);
    }
    return 0;
}

/* An error reply in the request's answer format. */
static void reply_error(telex_mock_exchange_t *x, int status, const char *message, int64_t retry_after)
{
    if (x->spec.format == TELEX_MOCK_FORMAT_ANTHROPIC) {
        telex_mock_reply_anthropic_error(x->req, status, message, retry_after);
        return;
    }
    const char *type = status == 429 ? "rate_limit_error"
                       : status == 401 ? "authentication_error"
                       : status == 403 ? "permission_error"
                       : status == 404 ? "not_found_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    const char *code = status == 429 ? "rate_limit_exceeded" : NULL;
    telex_mock_reply_error(x->req, status, message, type, NULL, code, retry_after);
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
    char *body = telex_mock_wire_whole(&x->spec);
    if (body == NULL) {
        finish(x, "out_of_memory", 0);
        req->res.headers = (h2o_headers_t){NULL, 0, 0};
        reply_error(x, 500, "mock: out of memory", -1);
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
    finish(x, "status", 1);
    reply_error(x, status, msg, x->spec.retry_after);
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

void telex_mock_exchange_start(telex_mock_worker_t *w, h2o_req_t *req, telex_mock_spec_t *spec)
{
    telex_mock_exchange_t *x = telex_xcalloc(1, sizeof(*x));
    x->spec = *spec;
    memset(spec, 0, sizeof(*spec));
    x->req = req;
    x->units = telex_mock_spec_units(&x->spec);
    telex_mock_wire_init(&x->wire, &x->spec);
    x->segs = telex_mock_wire_segments(&x->spec, &x->n_segs);
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
    h2o_linklist_insert(w->exchanges.next, &x->link); /* first */
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
    for (h2o_linklist_t *l = w->exchanges.next; l != &w->exchanges; l = l->next) {
        telex_mock_exchange_t *x = H2O_STRUCT_FROM_MEMBER(telex_mock_exchange_t, link, l);
        if (x->req != NULL && !x->ended)
            uv_timer_start(&x->timer, on_shutdown_tick, 0, 0);
    }
}
