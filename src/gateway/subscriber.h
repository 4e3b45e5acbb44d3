/*
 * gateway/subscriber.h — one HTTP response that streams a shared log.
 *
 * A subscriber is the original client of an answer, a client resuming it
 * (GET /v1/streams/{id} or a POST retried with Last-Event-ID), or a second
 * tab on the same answer. It is nothing but a position in the stream's log:
 * when woken (new events) or when h2o calls proceed (the last write is
 * done) it hands the events from its position on to h2o, pointing straight
 * into the log's segments. So all subscribers of an answer send identical
 * event bytes, and a slow one costs no memory. With the provider's framing
 * a write is whole events, at most 3 KiB of them in the write that carries
 * the response head and 16 KiB in later ones (one longer event goes alone):
 * readers that split every network read on blank lines (seeds 001/002)
 * then get whole events while they keep up, even when a burst of events
 * arrives at once (Chromium cuts its first read at byte 4,096 of the
 * response, and no later paced write up to 16 KiB: bench/findings.md
 * "Chromium's fetch reader"), and a burst costs a write per upstream read
 * or fewer rather than one per event. With telex's
 * framing (clients with a spec-exact parser) one write takes every pending
 * event.
 *
 * The log holds each event exactly as the front door's wire frames it (for
 * Chat Completions, OpenAI's own `data: <json>\n\n`). A subscriber with
 * telex's framing — resumers, and POSTs that opted in — writes it around
 * them: `id: <stream id>.<n>` before every event, `retry:` in the first
 * one (a response that starts after event 1 opens with
 * "retry: <resume.retry_ms>\n\n" instead, a block that dispatches no
 * event), and ": keepalive" comments in silences. Without the flags the
 * bytes are the provider's framing only: the naive readers that split
 * OpenAI's stream on blank lines and strip "data: " read it as they read
 * OpenAI's.
 *
 * It ends the response when the log is finished and drained, and detaches
 * from the stream when h2o disposes of the request (client gone, or
 * response complete).
 */
#ifndef TELEX_GATEWAY_SUBSCRIBER_H
#define TELEX_GATEWAY_SUBSCRIBER_H

#include <h2o.h>

#include "stream/stream.h"

struct gateway_worker;

/* Flags of telex_subscriber_start. */
enum {
    /* Drop log bytes as soon as they are written (a non-resumable stream
     * with one reader). */
    TELEX_SUB_RELEASE_AS_ACKED = 1,
    /* telex's framing: ids and retry: (see above) ... */
    TELEX_SUB_EVENT_IDS = 2,
    /* ... and ": keepalive" comments in silences (also without ids: a
     * stream that cannot be resumed has none to send). */
    TELEX_SUB_KEEPALIVE = 4,
};

/* Starts the 200 text/event-stream response on `req` (adding `extra`
 * headers given as name/value pairs, NULL-terminated) and streams the log of
 * `stream` from byte position `from`, where event `after` + 1 starts (`from`
 * is what telex_log_position_after(after) gave; 0 and 0 for the start).
 * Returns 0; -ENOENT when `from` is no longer in the log (the producer
 * dropped it: answer 410). Nothing was sent on failure. */
int telex_subscriber_start(struct gateway_worker *gw, h2o_req_t *req, telex_stream_t *stream, uint64_t from,
                           uint64_t after, int flags, const char *const *extra_headers);

/* HTTP/1 clients that left during silence (called by the worker's sweep). */
void telex_subscribers_sweep(struct gateway_worker *gw);

#endif
